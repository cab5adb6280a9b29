"""The layer recomputation rebuilds in its backward (service.core.activations.recompute_working_bytes):
full recompute keeps only each layer's input (Korthikanti et al. 2022 §5), but the layer whose backward runs
is rebuilt whole on top of the kept inputs, one layer of one micro-batch a GPU; it adds to a stage's peak
where that peak is in the backward (the first pipeline stage), after the loss's peak on the last stage."""

from __future__ import annotations

from service.core.activations import ActivationOptions, recompute_working_bytes
from service.core.compute import Recompute
from service.core.kernels import MEGATRON, Kernels
from service.core.memory import Parallelism, training_memory
from service.core.plan import PlanSpec, plan
from tests.core.helpers import hardware, preset

ARCH = preset("llama-3-8b")  # h 4096, 32 heads, 8 K/V heads (kv_dim 1024), SwiGLU d_ff 14336, 32 layers
S = 8192
KEPT = 2 * S * 4096  # full recompute keeps each layer's 16-bit input


def rebuilt(recompute: Recompute, kernels: Kernels = Kernels(), flash: bool = True, seq: int = S) -> int:
    opts = ActivationOptions(seq_len=seq, micro_batch_size=1, recompute=recompute, flash_attention=flash, kernels=kernels)
    return recompute_working_bytes(ARCH, opts)


def test_full_recompute_rebuilds_one_layer_without_recompute_transformers_kernels() -> None:
    # transformers with SDPA, per token: two RMSNorms each keep an fp32 copy and the 16-bit normalised tensor
    # (2 * 6h), the QKV and MLP inputs (2h + 2h), Q and the output projection's input (2 * 2 * 4096), K and V
    # (2 * 2 * 1024), the unfused SwiGLU's four d_ff-wide tensors (8 * 14336) and SDPA's fp32 log-sum-exp (4 * 32);
    # the 16-bit layer input the norm upcasts is kept apart (by the checkpoint), so nothing is shared
    per_token = 12 * 4096 + 2 * 4096 + 2 * 4096 + 4 * 4096 + 4 * 1024 + 8 * 14336 + 4 * 32
    assert per_token == 200_832
    assert rebuilt(Recompute.FULL) == S * per_token == 1_645_215_744
    assert rebuilt(Recompute.NONE) == 0


def test_megatron_kernels_share_the_layer_input_with_the_first_norm() -> None:
    # Megatron's fused norms keep their 16-bit input, which is the checkpoint's kept input: counted once;
    # per token 2 * 2h (norms) + 2h + 2h + 4 * 4096 + 4 * 1024 + 6 * 14336 (fused SwiGLU) + 4 * 32, less 2h
    per_token = 4 * 4096 + 4 * 4096 + 4 * 4096 + 4 * 1024 + 6 * 14336 + 4 * 32 - 2 * 4096
    assert rebuilt(Recompute.FULL, MEGATRON) == S * per_token == 1_074_790_400


def test_selective_rebuilds_the_attention_core_and_selective_op_the_ops_it_reruns() -> None:
    # selective (Korthikanti §5) reruns the attention core: with FlashAttention its log-sum-exp (4 bytes a query
    # and head), with eager attention the scores, 2 bytes each in Megatron's kernels (Llama-2-7B, 4,096 tokens)
    assert rebuilt(Recompute.SELECTIVE) == 4 * 32 * S == 1_048_576
    llama2 = preset("llama-2-7b")
    eager = ActivationOptions(seq_len=4096, micro_batch_size=1, recompute=Recompute.SELECTIVE, kernels=MEGATRON)
    assert recompute_working_bytes(llama2, eager) == 2 * 32 * 4096 * 4096 == 1_073_741_824
    # torchtitan's op policy saves wq's, wv's and w1's outputs and SDPA's output and log-sum-exp (reused), and w2's
    # partial sums (not read by the backward); the rest of the layer is rebuilt: Megatron's 139,392 bytes a token
    # less the block input (2h), Q, V and the gate (2 * (4096 + 1024 + 14336)) and SDPA's (2 * 4096 + 4 * 32)
    per_token = 139_392 - 2 * 4096 - 2 * (4096 + 1024 + 14336) - (2 * 4096 + 4 * 32)
    assert rebuilt(Recompute.SELECTIVE_OP, MEGATRON) == S * per_token == 687_865_856


def test_the_first_pipeline_stage_holds_the_rebuilt_layer_on_top_of_its_micro_batches() -> None:
    # Llama-3-8B on 4 stages of 8 layers, 1F1B, 8 micro-batches: the first stage keeps 4 micro-batches' inputs
    # and, when its backward starts, the rebuilt layer of one micro-batch
    m = training_memory(ARCH, parallelism=Parallelism(pp=4), seq_len=S, recompute=Recompute.FULL, microbatches=8)
    assert m.activations is not None
    assert m.activations.recompute_working_bytes == 1_645_215_744
    assert m.activations.first_stage_bytes == 4 * 8 * KEPT + 1_645_215_744 == 3_792_699_392
    # the last stage: its backward starts after the loss's peak (12 bytes a logit, 8,192 x 128,256 logits, and
    # the output layer's inputs 8 bytes a token element), which is the larger
    loss = 12 * S * 128_256 + 8 * S * 4096
    assert m.activations.last_stage_bytes == 8 * KEPT + loss
    # without a pipeline the loss's peak is the stage's: the rebuilt layer, smaller, comes after it
    one = training_memory(ARCH, seq_len=S, recompute=Recompute.FULL)
    assert one.activations_bytes == 32 * KEPT + loss


def test_the_rebuilt_layer_is_the_peak_where_it_exceeds_the_loss() -> None:
    # Megatron's kernels with eager attention at 8,192 tokens: the rebuilt layer holds its scores, 2 bytes each
    # (2 * 32 * 8,192 a token), beside the rest of the layer (139,392 - 128 bytes a token without the
    # log-sum-exp, less the shared 2h input): 5 GiB, above the fused loss's 4 bytes a logit and the output
    # layer's inputs (4.3 GB), so the one stage's peak is its kept inputs and the rebuilt layer
    m = training_memory(ARCH, seq_len=S, recompute=Recompute.FULL, kernels=MEGATRON)
    work = S * (139_392 - 4 * 32 + 2 * 32 * S - 2 * 4096)
    loss = 4 * S * 128_256 + 4 * S * 4096
    assert m.activations is not None and m.activations.recompute_working_bytes == work == 5 * 2**30
    assert work > loss == 4_336_910_336
    assert m.activations_bytes == 32 * KEPT + work


def test_the_planner_counts_it_where_the_layout_is_fixed() -> None:
    fixed = {"tp": 1, "pp": 4, "dp": 2, "cp": 1, "zero_stage": 1, "micro_batch_size": 1, "recompute": "full",
             "pipeline_schedule": "1f1b", "virtual_stages": 1}  # fmt: skip
    spec = PlanSpec(n_gpus=8, seq_len=S, global_batch_size=16, fixed=fixed, top_k=1, flash_attention=True)
    best = plan(ARCH, hardware("h100-sxm"), spec).plans[0]
    stage = best.memory.activations
    assert stage is not None and best.gradient_accumulation_steps == 8
    assert stage.recompute_working_bytes == 1_074_790_400  # Megatron's kernels, the planner's count
    assert stage.first_stage_bytes == 4 * 8 * KEPT + 1_074_790_400
