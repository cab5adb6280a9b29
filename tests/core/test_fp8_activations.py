"""FP8 training keeps the linear layers' inputs for the backward in FP8 (service.core.fp8, "Activations"):
Transformer Engine's ``_Linear``/``_LayerNormLinear`` save the quantised input, torchao's Float8 linear
``input_fp8``, DeepSeek-V3 §3.3.3 "cache[s] the activations in FP8 format for the backward pass of the
Linear operator". The QKV, MLP and down projections' inputs drop from 2 bytes an element to 1 (+ the
recipe's scales); the output projection keeps an FP8 copy of the attention output beside the kernel's."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.compute import Recompute
from service.core.finetune import FinetuneSpec, Projection, finetune_memory
from service.core.fp8 import Fp8Recipe, linear_input_bytes
from service.core.kernels import MEGATRON, AttentionKernel, Kernels
from service.core.memory import Parallelism, Precision, training_memory
from service.core.pipeline import SCHEDULES
from service.core.plan import RECOMPUTES, PlanSpec, layer_tables, layout_grid, memory_arrays, search_axes, shard_tables
from tests.core.helpers import hardware, preset

# Llama-3-8B (models.json): h = 4096, f = 14336, 32 query heads of 128 (q_dim = 4096), 32 layers
H, F, Q_DIM, LAYERS = 4096, 14336, 4096, 32
S = 8192
# per token, before tensor parallelism: the QKV input (h), the MLP input (h) and the down projection's
# input (f) at 1 byte instead of 2, and the output projection's FP8 copy of the attention output (q_dim)
SAVED_PER_TOKEN = H + H + F - Q_DIM  # 18,432 bytes
FP8_ELEMENTS_PER_TOKEN = H + H + F + Q_DIM  # 26,624 elements kept in FP8, each with its scales


def llama_layer(linear_input: float | None, **kw: object) -> int:
    opts = ActivationOptions(seq_len=S, micro_batch_size=1, flash_attention=True, kernels=MEGATRON,
                             linear_input_bytes=linear_input, **kw)  # type: ignore[arg-type]  # fmt: skip
    return layer_activation_bytes(preset("llama-3-8b"), opts).total_bytes


def test_an_fp8_llama_layer_keeps_its_linear_inputs_in_one_byte() -> None:
    arch = preset("llama-3-8b")
    assert (arch.d_model, arch.d_ff, arch.q_dim, arch.n_layers) == (H, F, Q_DIM, LAYERS)
    bf16, fp8 = llama_layer(None), llama_layer(linear_input_bytes(Fp8Recipe.TENSORWISE))
    assert bf16 - fp8 == S * SAVED_PER_TOKEN == 150_994_944
    # tp = 8 with sequence parallelism: the norms' region (QKV and MLP inputs) and the tensor-parallel
    # region (down input, the FP8 copy of the attention output) are both split 8 ways
    t8 = dict(tp=8, sequence_parallel=True)
    assert llama_layer(None, **t8) - llama_layer(1.0, **t8) == S * (2 * H) // 8 + S * (F - Q_DIM) // 8 == 18_874_368
    # tp = 4 without sequence parallelism: the QKV and MLP inputs are kept whole on every rank
    t4 = dict(tp=4)
    assert llama_layer(None, **t4) - llama_layer(1.0, **t4) == S * 2 * H + S * (F - Q_DIM) // 4 == 88_080_384


@pytest.mark.parametrize("recipe", [Fp8Recipe.MXFP8, Fp8Recipe.BLOCKWISE])
def test_scaled_recipes_add_their_activation_scales(recipe: Fp8Recipe) -> None:
    # MXFP8: one 1-byte E8M0 scale per 32 elements (OCP MX v1.0 §5); DeepSeek-V3's blockwise: an fp32
    # scale per 1x128 tile (§3.3.1): 1/32 of a byte an element either way
    assert linear_input_bytes(recipe) == 1 + 1 / 32
    scaled = llama_layer(linear_input_bytes(recipe))
    assert scaled - llama_layer(1.0) == S * FP8_ELEMENTS_PER_TOKEN // 32 == 6_815_744


@pytest.mark.parametrize("recompute", [Recompute.FULL, Recompute.SELECTIVE_OP])
def test_full_recompute_and_saved_matmul_outputs_are_unchanged(recompute: Recompute) -> None:
    # full recompute keeps the layer's BF16 input; selective_op the BF16 outputs of its saved matmuls
    assert llama_layer(1.0, recompute=recompute) == llama_layer(None, recompute=recompute)
    assert llama_layer(33 / 32, recompute=recompute, tp=8, sequence_parallel=True) == llama_layer(
        None, recompute=recompute, tp=8, sequence_parallel=True
    )
    # and the formulas claim no FP8 inputs for them
    fp8 = training_memory(preset("llama-3-8b"), seq_len=S, flash_attention=True, recompute=recompute, precision=Precision.FP8)
    assert not any("inputs kept at" in f for f in fp8.formulas), fp8.formulas


def test_mla_keeps_the_latents_and_expert_inputs_in_fp8() -> None:
    # DeepSeek-V3: h = 7168, latents q 1536 + kv 512 (up-projections' inputs), 8 routed experts and
    # the shared one each keep the token's input (9h), expert width 8*2048 + 2048 = 18,432 (the dense
    # layers' 18,432 likewise), the output projection's input a*d_v = 128*128 gains an FP8 copy
    arch = preset("deepseek-v3")
    opts = dict(seq_len=4096, micro_batch_size=1, flash_attention=True, kernels=MEGATRON)
    bf16 = layer_activation_bytes(arch, ActivationOptions(**opts)).total_bytes  # type: ignore[arg-type]
    fp8 = layer_activation_bytes(arch, ActivationOptions(**opts, linear_input_bytes=1.0)).total_bytes  # type: ignore[arg-type]
    assert bf16 - fp8 == 4096 * (7168 + 1536 + 512 + 9 * 7168 + 18_432 - 128 * 128) == 4096 * 75_776


def test_training_memory_counts_fp8_inputs_by_recipe() -> None:
    arch = preset("llama-3-8b")
    common = dict(seq_len=S, flash_attention=True, kernels=MEGATRON, parallelism=Parallelism(dp=8))
    bf16 = training_memory(arch, **common)  # type: ignore[arg-type]
    fp8 = training_memory(arch, precision=Precision.FP8, **common)  # type: ignore[arg-type]
    mx = training_memory(arch, precision=Precision.FP8, fp8_recipe=Fp8Recipe.MXFP8, **common)  # type: ignore[arg-type]
    assert bf16.activations_bytes - fp8.activations_bytes == LAYERS * S * SAVED_PER_TOKEN
    assert mx.activations_bytes - fp8.activations_bytes == LAYERS * S * FP8_ELEMENTS_PER_TOKEN // 32
    assert any("keep their inputs for the backward in FP8" in n for n in fp8.notes)


Q_V = (Projection.Q, Projection.V)


@pytest.mark.parametrize("recipe", [Fp8Recipe.TENSORWISE, Fp8Recipe.MXFP8])
@pytest.mark.parametrize("attention", [AttentionKernel.FLASH, AttentionKernel.EAGER])
def test_an_fp8_lora_drops_exactly_the_fp8_bytes_of_the_frozen_inputs(recipe: Fp8Recipe, attention: AttentionKernel) -> None:
    # LoRA on q and v (no LoRA dropout): the adapters read the QKV input, so it stays; the frozen MLP,
    # down and output projections need no weight gradient, so their FP8 inputs go: h + f + q_dim
    # elements a token at 1 byte (+ scales), each term rounded up as the base rounds it, whatever the
    # attention kernel: eager attention keeps no 16-bit output of its own, so under FP8 the base keeps
    # only the output projection's FP8 copy, which goes with the frozen projection
    arch, tokens, li = preset("llama-3-8b"), 4096, linear_input_bytes(recipe)
    kernels = Kernels(attention=attention)
    common = dict(seq_len=tokens, kernels=kernels, precision=Precision.FP8, fp8_recipe=recipe)
    base = training_memory(arch, **common)  # type: ignore[arg-type]
    lora = finetune_memory(arch, FinetuneSpec(rank=16, targets=Q_V), **common)  # type: ignore[arg-type]
    per_layer = sum(-(-int(li * 32 * tokens * width) // 32) for width in (H, F, Q_DIM))  # ceil(li * tokens * width)
    assert lora.frozen_inputs_not_kept_bytes == LAYERS * per_layer
    assert lora.memory.activations_bytes == base.activations_bytes - LAYERS * per_layer + lora.adapter_activations_bytes
    # x*A of r = 16 for two adapters in 32 layers, BF16
    assert lora.adapter_activations_bytes == 2 * tokens * 16 * 2 * LAYERS


def test_the_planner_s_fp8_lora_activations_equal_the_scalar_core() -> None:
    # the vectorised tables (with a fine-tune's per-layer change) and finetune_memory, layout by layout
    arch = preset("llama-3-8b")
    lora = FinetuneSpec(rank=16, targets=Q_V)
    spec = PlanSpec(n_gpus=16, seq_len=2048, global_batch_size=64, precision=Precision.FP8, fp8_recipe=Fp8Recipe.MXFP8,
                    finetune=lora)  # fmt: skip
    axes = search_axes(arch, hardware("b200"), spec)
    grid = layout_grid(arch, spec, axes)
    mem = memory_arrays(arch, spec, grid, shard_tables(arch, spec, axes), layer_tables(arch, spec, axes))
    rows = [i for i in np.flatnonzero(grid["cp"] == 1).tolist() if RECOMPUTES[grid["recompute"][i]] is not Recompute.SELECTIVE_OP]
    for i in random.Random(5).sample(rows, 40):
        row = {k: grid[k][i].item() for k in grid}
        par = Parallelism(dp=row["dp"], tp=row["tp"], pp=row["pp"], ep=row["ep"], virtual_stages=row["virtual_stages"],
                          sequence_parallel=row["sequence_parallel"], zero_stage=row["zero_stage"],
                          offload_optimizer=row["offload_optimizer"], pipeline_schedule=SCHEDULES[row["pipeline_schedule"]])  # fmt: skip
        exact = finetune_memory(arch, lora, parallelism=par, micro_batch_size=row["micro_batch_size"], seq_len=2048,
                                recompute=RECOMPUTES[row["recompute"]], flash_attention=True, microbatches=row["microbatches"],
                                kernels=MEGATRON, precision=Precision.FP8, fp8_recipe=Fp8Recipe.MXFP8)  # fmt: skip
        assert mem["activations"][i] == exact.memory.activations_bytes, row


def test_without_a_fused_attention_kernel_only_the_fp8_copy_of_its_output_stays() -> None:
    # eager attention keeps no output of its own: the output projection's 16-bit input becomes its FP8 copy,
    # 2 bytes a q_dim element less instead of 1 more, so 2 * q_dim a token more saved than with a fused kernel
    eager = dict(flash_attention=False, kernels=Kernels(framework=MEGATRON.framework, attention=AttentionKernel.EAGER))
    arch = preset("llama-3-8b")

    def layer(li: float | None, **kw: object) -> int:
        opts = ActivationOptions(seq_len=S, micro_batch_size=1, linear_input_bytes=li, **kw)  # type: ignore[arg-type]
        return layer_activation_bytes(arch, opts).total_bytes

    assert llama_layer(None) - llama_layer(1.0) == S * SAVED_PER_TOKEN
    assert layer(None, **eager) - layer(1.0, **eager) == S * (H + H + F + Q_DIM)


def test_behind_an_output_gate_the_16_bit_product_is_kept_by_nothing() -> None:
    # a gated attention output (Qwen3-Next): the output projection's input is the gate's product, which only
    # the projection keeps; under FP8 its FP8 copy replaces it, 2 * q_dim a token more saved than ungated
    base = preset("llama-3-8b")
    gated = dataclasses.replace(base, attention_output_gate=True)
    opts = dict(seq_len=S, micro_batch_size=1, flash_attention=True, kernels=MEGATRON)

    def saving(arch) -> int:
        bf16 = layer_activation_bytes(arch, ActivationOptions(**opts)).total_bytes  # type: ignore[arg-type]
        fp8 = layer_activation_bytes(arch, ActivationOptions(linear_input_bytes=1.0, **opts)).total_bytes  # type: ignore[arg-type]
        return bf16 - fp8

    assert saving(gated) - saving(base) == S * 2 * Q_DIM


def test_under_selective_recompute_only_the_fp8_copy_of_the_attention_output_stays() -> None:
    # selective recompute reruns the attention core in the backward (Korthikanti §5: its scores and, with a
    # fused kernel, its log-sum-exp are not kept), so the kernel keeps no output of its own: the 16-bit
    # tensor was held only by the output projection, which under FP8 keeps its FP8 copy instead, as with
    # eager attention: 2h + f + q_dim bytes a token fewer, not 2h + f - q_dim
    selective = dict(recompute=Recompute.SELECTIVE)
    assert llama_layer(None, **selective) - llama_layer(1.0, **selective) == S * (H + H + F + Q_DIM)
    t8 = dict(selective, tp=8, sequence_parallel=True)
    assert llama_layer(None, **t8) - llama_layer(1.0, **t8) == S * (H + H + F + Q_DIM) // 8
    # a frozen output projection drops that FP8 copy and nothing else, as without recompute
    arch, common = preset("llama-3-8b"), dict(seq_len=4096, kernels=MEGATRON, flash_attention=True, precision=Precision.FP8,
                                              recompute=Recompute.SELECTIVE)  # fmt: skip
    base = training_memory(arch, **common)  # type: ignore[arg-type]
    lora = finetune_memory(arch, FinetuneSpec(rank=16, targets=Q_V), **common)  # type: ignore[arg-type]
    assert lora.frozen_inputs_not_kept_bytes == LAYERS * 4096 * (H + F + Q_DIM)
    assert (
        lora.memory.activations_bytes
        == base.activations_bytes - lora.frozen_inputs_not_kept_bytes + lora.adapter_activations_bytes
    )
    bf16 = training_memory(arch, **(common | dict(precision=Precision.MIXED_BF16)))  # type: ignore[arg-type]
    assert bf16.activations_bytes - base.activations_bytes == LAYERS * 4096 * (H + H + F + Q_DIM)
    assert not any("(2h + f - q_dim)" in f for f in base.formulas)
