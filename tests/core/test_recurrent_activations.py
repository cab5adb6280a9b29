"""Training activations of recurrent layers as their fused kernels keep them, counted tensor by tensor
from the kernels' ``save_for_backward`` lists (state-spaces/mamba ``MambaSplitConv1dScanCombinedFn``
and ``MambaInnerFn``, transformers' ``RwkvLinearAttention``), and the layouts such layers allow."""

from __future__ import annotations

import dataclasses

import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.adapters import Projection, projection_shapes
from service.core.architecture import LayerType
from service.core.base_weights import BaseFormat, base_weight_bytes
from service.core.compute import Recompute
from service.core.errors import InvalidSpecError
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.kernels import MEGATRON
from service.core.memory import Precision, training_memory
from service.core.parallelism import Parallelism, context_parallel_problem, params_per_gpu, tensor_parallel_problem
from service.core.params import count_params
from service.core.plan import PlanSpec, plan
from service.core.recurrent import mamba2_mixer_params
from service.core.recurrent_activations import mixer_activation_bytes
from tests.core.helpers import preset
from tests.core.test_plan import hardware

S, B, E = 4096, 2, 2


def test_mamba2_layer_keeps_its_projection_output_scan_output_and_norm_statistics() -> None:
    # Mamba-2 2.7B (d_model 2560, expand 2 -> I = 5120, 80 heads, 1 group, state 128): the kernel saves
    # zxbcdt = z (5120) + xBC (5120 + 2*128) + dt (80) = 10,576 wide, out_x 5,120 wide, one fp32 rstd
    # per token and group; the in_proj input 2,560 wide is the replicated part
    arch = preset("mamba2-2.7b")
    mixer = mixer_activation_bytes(arch, LayerType.MAMBA2, seq_len=S, micro_batch_size=B, element_bytes=E)
    assert mixer.sharded_bytes == S * B * (E * 10576 + E * 5120 + 4)
    assert mixer.replicated_bytes == S * B * E * 2560
    # the layer: one RMSNorm (transformers' fp32 upcast: 4 + 2 bytes an element), no MLP
    layer = layer_activation_bytes(arch, ActivationOptions(seq_len=S, micro_batch_size=B, element_bytes=E))
    assert layer.total_bytes == S * B * ((4 + E) * 2560 + E * 2560 + E * 10576 + E * 5120 + 4)
    assert layer.scores_bytes == 0


def test_mamba_layer_keeps_xz_x_dbl_b_c_out_and_chunk_states() -> None:
    # Mamba 2.8B (d_model 2560 -> I = 5120, state 16, dt rank 160): xz 2I, x_dbl R + 2N, B and C copies
    # 2N, out I per token; fp32 chunk states 2N per channel every 2,048 tokens
    arch = preset("mamba-2.8b")
    per_token = E * (2 * 5120 + (160 + 32) + 32 + 5120)
    chunk_states = 4 * 5120 * 32 * 2  # two chunks of 2,048 in 4,096 tokens
    mixer = mixer_activation_bytes(arch, LayerType.MAMBA, seq_len=S, micro_batch_size=B, element_bytes=E)
    assert mixer.sharded_bytes == S * B * per_token + B * chunk_states
    halved = mixer_activation_bytes(arch, LayerType.MAMBA, seq_len=S, micro_batch_size=B, element_bytes=E, tp=2)
    assert halved.sharded_bytes == mixer.sharded_bytes // 2 and halved.replicated_bytes == mixer.replicated_bytes


def test_jamba_mamba_layers_run_the_unfused_kernels_and_keep_more() -> None:
    # Jamba's norms inside the mixer rule out mamba_inner_fn: 6I instead of 3I of inner-width tensors
    jamba = preset("jamba-1.5-mini")
    fused = dataclasses.replace(jamba, ssm_inner_norms=False)
    unfused_bytes = mixer_activation_bytes(jamba, LayerType.MAMBA, seq_len=S, micro_batch_size=1, element_bytes=E)
    fused_bytes = mixer_activation_bytes(fused, LayerType.MAMBA, seq_len=S, micro_batch_size=1, element_bytes=E)
    inner = 2 * 4096
    assert unfused_bytes.sharded_bytes - fused_bytes.sharded_bytes > S * E * 3 * inner


def test_a_hybrid_layer_is_the_mean_of_its_attention_and_mamba_layers() -> None:
    # Jamba 1.5 Mini: 4 attention and 28 Mamba layers of 32, every one with an MLP (MoE every other layer)
    jamba = preset("jamba-1.5-mini")
    opts = ActivationOptions(seq_len=S, micro_batch_size=1, flash_attention=True, kernels=MEGATRON)
    mean = layer_activation_bytes(jamba, opts).total_bytes
    attention_only = dataclasses.replace(jamba, layer_types=None)
    attention = layer_activation_bytes(attention_only, opts).total_bytes
    mamba_only = dataclasses.replace(jamba, layer_types=(LayerType.MAMBA,))
    mamba = layer_activation_bytes(mamba_only, opts).total_bytes
    assert jamba.attention_layers == 4 and jamba.layers_of(LayerType.MAMBA) == 28
    assert mean == pytest.approx((4 * attention + 28 * mamba) / 32, abs=2)


def test_a_recurrent_layer_keeps_the_same_bytes_per_token_at_any_context() -> None:
    # no S^2 term and no KV: 8K and 256K tokens keep the same bytes per token (Mamba-2 has no chunk states
    # kept; attention without a fused kernel would grow with the context)
    arch = preset("mamba2-2.7b")
    short = layer_activation_bytes(arch, ActivationOptions(seq_len=8192, micro_batch_size=1)).total_bytes
    long = layer_activation_bytes(arch, ActivationOptions(seq_len=262144, micro_batch_size=1)).total_bytes
    assert long == 32 * short


def test_recompute_of_a_recurrent_layer() -> None:
    arch = preset("mamba2-2.7b")

    def total(recompute: Recompute) -> int:
        return layer_activation_bytes(arch, ActivationOptions(seq_len=S, micro_batch_size=B, recompute=recompute)).total_bytes

    # selective recompute drops attention scores, which a mixer has none of; full keeps the layer input
    assert total(Recompute.SELECTIVE) == total(Recompute.NONE)
    assert total(Recompute.FULL) == E * S * B * 2560


def test_tensor_parallel_splits_mamba2_heads_and_groups_whole() -> None:
    grouped = dataclasses.replace(preset("mamba2-2.7b"), ssm_n_groups=8)  # 80 heads in 8 groups (Codestral's groups)
    assert tensor_parallel_problem(grouped, 8) is None
    assert "ssm_n_heads=80" in (tensor_parallel_problem(dataclasses.replace(grouped, ssm_n_groups=32), 32) or "")
    mamba2 = preset("mamba2-2.7b")  # one group: nothing to split
    assert "ssm_n_groups=1" in (tensor_parallel_problem(mamba2, 2) or "")
    # a transformer's rule is unchanged
    llama = preset("llama-2-7b")
    assert tensor_parallel_problem(llama, 8) is None and tensor_parallel_problem(llama, 3)


def test_context_parallelism_is_refused_for_recurrent_layers() -> None:
    jamba = preset("jamba-1.5-mini")
    assert context_parallel_problem(jamba, 2) and context_parallel_problem(jamba, 1) is None
    assert context_parallel_problem(preset("llama-2-7b"), 8) is None
    with pytest.raises(InvalidSpecError) as err:
        training_memory(jamba, precision=Precision.MIXED_BF16, parallelism=Parallelism(cp=2, dp=1), micro_batch_size=1,
                        seq_len=8192, flash_attention=True)  # fmt: skip
    assert err.value.field == "parallelism.cp"
    spec = PlanSpec(n_gpus=8, seq_len=8192, global_batch_size=64, fixed={"cp": 2})
    with pytest.raises(InvalidSpecError) as err:
        plan(jamba, hardware("h100-sxm"), spec)
    assert err.value.field == "fixed.cp"
    # the search leaves cp at 1 on its own
    searched = plan(jamba, hardware("h100-sxm"), PlanSpec(n_gpus=8, seq_len=8192, global_batch_size=64, top_k=50))
    assert searched.plans and all(p.cp == 1 for p in searched.plans)


def test_pipeline_and_tensor_shards_of_a_mamba_model_hold_its_own_layers() -> None:
    # Mamba-2 2.7B: 64 layers of one mixer and one RMSNorm, a tied 50,288 x 2,560 embedding. Two stages of 32
    # layers: the last holds its layers, the final norm and the head (a second copy of the tied embedding)
    arch = preset("mamba2-2.7b")
    layer = mamba2_mixer_params(arch) + 2560
    head = 50288 * 2560
    assert params_per_gpu(arch, Parallelism(pp=2)) == 32 * layer + head + 2560
    # tensor parallelism splits the mixers (no attention heads to replicate K/V for); norms stay whole
    total = count_params(arch).total
    assert params_per_gpu(arch, Parallelism(tp=2)) == pytest.approx(total / 2, rel=0.01)


def test_a_quantised_base_quantises_the_recurrent_projections_and_keeps_the_rest() -> None:
    # bitsandbytes quantises every nn.Linear of the blocks: Mamba-2's in_proj and out_proj; the embedding,
    # norms, convolutions, A_log, D and dt_bias stay in 16 bits
    arch = preset("mamba2-2.7b")
    base = base_weight_bytes(arch, BaseFormat.NF4, double_quant=True, kept_dtype=BaseFormat.BF16, compute_bytes=2)
    assert base.quantized_params == 64 * (2560 * 10576 + 5120 * 2560)
    assert base.kept_params == count_params(arch).total - base.quantized_params > 50288 * 2560


def test_adapters_on_a_model_without_attention_or_mlp_projections_are_refused() -> None:
    spec = PlanSpec(n_gpus=8, seq_len=2048, global_batch_size=16, finetune=FinetuneSpec(method=FinetuneMethod.QLORA, rank=64))
    with pytest.raises(InvalidSpecError) as err:
        plan(preset("mamba2-2.7b"), hardware("a100-80gb-sxm"), spec)
    assert err.value.field == "finetune.target_modules"
    # a hybrid's adapters sit on its attention layers and MLPs only
    jamba = preset("jamba-1.5-mini")
    assert projection_shapes(jamba)[Projection.Q][0].copies(jamba.n_layers) == 4


def test_hybrid_blocks_keep_each_part_once() -> None:
    opts = ActivationOptions(seq_len=S, micro_batch_size=1, flash_attention=True, kernels=MEGATRON)
    # Nemotron-H: single-operator blocks (Mamba-2, attention or MLP, one norm each): the MLP blocks' parts
    # are counted once per MLP block, the Mamba-2 blocks keep no MLP
    nemotron = preset("nemotron-h-8b")
    assert nemotron.layers_of(LayerType.MLP) == nemotron.mlp_layers > 0 and not nemotron.mixer_mlp
    mamba_layers, attention_layers = nemotron.layers_of(LayerType.MAMBA2), nemotron.attention_layers
    assert mamba_layers + attention_layers + nemotron.mlp_layers == nemotron.n_layers
    whole = layer_activation_bytes(nemotron, opts).total_bytes * nemotron.n_layers
    mixer = mixer_activation_bytes(nemotron, LayerType.MAMBA2, seq_len=S, micro_batch_size=1, element_bytes=E)
    assert whole > mamba_layers * (mixer.replicated_bytes + mixer.sharded_bytes)
    # Falcon-H1: attention and Mamba-2 side by side in every layer, reading one normalised input
    falcon = preset("falcon-h1-7b")
    both = layer_activation_bytes(falcon, opts).total_bytes
    attention = layer_activation_bytes(dataclasses.replace(falcon, layer_types=None), opts).total_bytes
    mixer = mixer_activation_bytes(falcon, LayerType.MAMBA2, seq_len=S, micro_batch_size=1, element_bytes=E)
    assert both == pytest.approx(attention + mixer.sharded_bytes, abs=1)
