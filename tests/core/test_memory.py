"""Training and inference memory against the ZeRO paper and Transformers Math 101."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.compute import Recompute
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError, MissingArchitectureError
from service.core.fp8 import Fp8Recipe
from service.core.kernels import MEGATRON, CrossEntropy, Kernels
from service.core.memory import (
    CUDA_CONTEXT_BYTES,
    Optimizer,
    Parallelism,
    Precision,
    ZeroSharding,
    device_total_bytes,
    inference_memory,
    memory_fits,
    optimizer_state_bytes,
    sharded_states,
    training_memory,
)
from service.core.spec import make_params_only
from tests.core.helpers import preset

GB = 1e9


@pytest.mark.parametrize(("stage", "expected_gb"), [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1_example(stage: int, expected_gb: float) -> None:
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, N_d = 64, K = 12 (mixed-precision Adam):
    # baseline (2+2+K)*Psi = 120 GB; P_os 31.4 GB; P_os+g 16.6 GB; P_os+g+p 1.9 GB
    r = training_memory(make_params_only(7.5e9), parallelism=Parallelism(dp=64, zero_stage=stage), include_activations=False)
    assert r.total_bytes / GB == pytest.approx(expected_gb, abs=0.05)


def test_zero_paper_figure_1_over_arrays_is_the_scalar_formula() -> None:
    # the same Figure 1 example with the four ZeRO stages as one array (how the planner prices its
    # grid): each entry is the scalar answer to the byte, and the published 120 / 31.4 / 16.6 / 1.9 GB
    model, n = make_params_only(7.5e9), int(7.5e9)
    optimizer = optimizer_state_bytes(n, Optimizer.ADAMW, Precision.MIXED_BF16)
    stages = np.arange(4)
    zero = ZeroSharding(stage=stages, offload=np.zeros(4, dtype=bool), shards=np.full(4, 64.0))
    s = sharded_states(model, Precision.MIXED_BF16, zero, dense_params=np.full(4, float(n)), expert_params=np.zeros(4),
                       optimizer_dense=np.full(4, float(optimizer)), optimizer_expert=np.zeros(4),
                       fp8_recipe=Fp8Recipe.TENSORWISE)  # fmt: skip
    total = s.weights + s.gradients + s.optimizer
    scalar = [
        training_memory(model, parallelism=Parallelism(dp=64, zero_stage=z), include_activations=False).total_bytes
        for z in range(4)
    ]
    assert total.tolist() == scalar
    assert (total / GB).tolist() == pytest.approx([120.0, 31.4, 16.6, 1.9], abs=0.05)


def test_fits_counts_the_context_or_leaves_a_share() -> None:
    # the Figure 1 example on a 32 GB V100 (32 GiB): the baseline's 120 GB fits neither way; P_os
    # (31.4 GB) fits with its CUDA context counted (31.9 GB) and within the planner's 95 % (32.6 GB)
    v100 = 32 * 2**30
    totals = [
        training_memory(
            make_params_only(7.5e9), parallelism=Parallelism(dp=64, zero_stage=z), include_activations=False
        ).total_bytes
        for z in (0, 1)
    ]
    assert [memory_fits(device_total_bytes(t), v100) for t in totals] == [False, True]
    assert memory_fits(np.asarray(totals, dtype=np.float64), v100, usable_fraction=0.95).tolist() == [False, True]
    # the comparison is inclusive: a job that needs exactly the usable memory fits, a byte more does not
    assert memory_fits(device_total_bytes(v100 - CUDA_CONTEXT_BYTES), v100)
    assert not memory_fits(device_total_bytes(v100 - CUDA_CONTEXT_BYTES + 1), v100)


@pytest.mark.parametrize(
    ("optimizer", "precision", "bytes_per_param"),
    [
        (Optimizer.ADAMW, Precision.MIXED_BF16, 12),  # ZeRO §3: K = 12
        (Optimizer.ADAMW, Precision.FP32, 8),  # m and v, no master copy
        (Optimizer.ADAMW, Precision.BF16, 4),  # m and v in bf16
        (Optimizer.ADAMW_8BIT, Precision.MIXED_BF16, 6 + 8 / 256),  # master 4 + 1 + 1 + bitsandbytes' absmax per 256
        (Optimizer.SGD_MOMENTUM, Precision.MIXED_BF16, 8),  # master 4 + momentum 4
        (Optimizer.SGD, Precision.MIXED_BF16, 4),  # master only
        (Optimizer.SGD, Precision.FP32, 0),
        (Optimizer.LION, Precision.MIXED_BF16, 8),  # Chen et al. 2023: one momentum
    ],
)
def test_optimizer_bytes_per_param(optimizer: Optimizer, precision: Precision, bytes_per_param: float) -> None:
    n = 1_000_000_000
    assert optimizer_state_bytes(n, optimizer, precision) == pytest.approx(n * bytes_per_param, abs=1)


def test_transformers_math_101_sixteen_bytes_per_param() -> None:
    r = training_memory(make_params_only(1e9), include_activations=False)
    assert (r.weights_bytes, r.gradients_bytes, r.optimizer_bytes) == (2e9, 2e9, 12e9)


def test_adafactor_factored_states_are_tiny_next_to_adam() -> None:
    # Shazeer & Stern 2018 §3: an n x m matrix keeps n + m accumulators instead of n*m
    arch = preset("llama-2-7b")
    n = 6_738_415_616
    ada = optimizer_state_bytes(n, Optimizer.ADAFACTOR, Precision.FP32, arch)
    per_layer = (4096 + 4096) * 4 + 3 * (4096 + 11008)
    vectors = (2 * 32 + 1) * 4096  # norm gains keep full second moments
    expected = 4 * (32 * per_layer + 2 * (32000 + 4096) + vectors)
    assert ada == expected
    assert ada < n * 0.01  # under 0.01 byte/param, against AdamW's 8


def test_offload_moves_the_optimizer_to_the_host() -> None:
    on = training_memory(make_params_only(7e9), parallelism=Parallelism(dp=8, zero_stage=2), include_activations=False)
    off = training_memory(
        make_params_only(7e9),
        parallelism=Parallelism(dp=8, zero_stage=2, offload_optimizer=True),
        include_activations=False,
    )
    assert off.optimizer_bytes == 0
    assert off.cpu_offload_bytes == on.optimizer_bytes == 12 * 7e9 / 8
    with pytest.raises(InvalidSpecError) as err:
        training_memory(make_params_only(7e9), parallelism=Parallelism(offload_optimizer=True), include_activations=False)
    assert err.value.field == "parallelism.offload_optimizer"


def test_3d_parallel_shards_and_pipeline_stage() -> None:
    arch = preset("llama-2-70b")
    r = training_memory(arch, parallelism=Parallelism(dp=4, tp=8, pp=4, zero_stage=1), seq_len=4096)
    layers = 20  # 80 / 4
    per_layer = 8192 * (8192 * 2 + 1024 * 2) + 3 * 8192 * 28672
    norms = (2 * layers + 1) * 8192
    # the last stage carries the 32000 x 8192 LM head on top of its 20 layers
    expected = (layers * per_layer + 32000 * 8192) // 8 + norms
    assert r.params_per_gpu == expected
    assert r.weights_bytes == 2 * expected
    assert r.optimizer_bytes == 12 * expected // 4


def test_validation_names_the_field() -> None:
    arch = preset("llama-2-7b")
    with pytest.raises(InvalidSpecError, match="must divide n_heads") as err:
        training_memory(arch, parallelism=Parallelism(tp=3))
    assert err.value.field == "parallelism.tp"
    with pytest.raises(InvalidSpecError) as err:
        training_memory(arch, parallelism=Parallelism(pp=33))
    assert err.value.field == "parallelism.pp"
    with pytest.raises(MissingArchitectureError):
        training_memory(make_params_only(7e9))


def test_full_recompute_uses_less_than_selective_less_than_none() -> None:
    arch = preset("llama-2-7b")
    totals = [training_memory(arch, recompute=r, seq_len=4096).activations_bytes for r in list(Recompute)[:3]]
    none, selective, full = totals  # selective_op: tests/core/test_op_checkpoint.py
    assert full < selective < none
    # + output layer: transformers' final RMSNorm keeps its fp32 copy and the 16-bit normalised
    # tensor (4 + 2 bytes), the logit projection its 16-bit input (2), and its eager loss peaks at
    # 12 bytes a logit (the saved fp32 log-softmax, nll_loss's fp32 gradient and the log-softmax's)
    assert full == 32 * 2 * 4096 * 4096 + (4 + 2 + 2) * 4096 * 4096 + 12 * 4096 * 32000
    # (the layer full recompute rebuilds after the loss, 763 MB with SDPA, stays below the loss's 1.7 GB)
    megatron = training_memory(arch, recompute=Recompute.FULL, seq_len=4096, kernels=MEGATRON).activations_bytes
    # Megatron's kernels: the kept inputs (Korthikanti §4.3) and, above the fused loss's 4 bytes a logit and
    # the output layer's inputs (0.59 GB), the layer rebuilt in its backward, eager attention's scores included:
    # per token 16h + 6f + 2*a*s bytes without recompute, less the input its first norm shares with the kept set
    rebuilt = 4096 * (16 * 4096 + 6 * 11008 + 2 * 32 * 4096) - 2 * 4096 * 4096
    assert rebuilt == 1_579_155_456 > 4 * 4096 * 4096 + 4 * 4096 * 32000
    assert megatron == 32 * 2 * 4096 * 4096 + rebuilt


# --- inference -------------------------------------------------------------------------------


def test_llama_2_70b_kv_cache_per_token() -> None:
    # 2 (K, V) * 80 layers * 8 KV heads * 128 * 2 bytes = 327,680 bytes = 320 KiB per token
    r = inference_memory(preset("llama-2-70b"), seq_len=4096, batch_size=8)
    assert r.kv_cache_bytes_per_token == 327_680
    assert r.kv_cache_bytes == 327_680 * 4096 * 8


def test_weights_by_dtype_and_the_1_2x_rule() -> None:
    # Transformers Math 101: bytes/param fp32 4, fp16/bf16 2, int8 1, int4 0.5; total ≈ 1.2 x weights
    n = 7e9
    expected = {Dtype.FP32: 28e9, Dtype.BF16: 14e9, Dtype.FP16: 14e9, Dtype.FP8: 7e9, Dtype.INT8: 7e9, Dtype.INT4: 3.5e9}
    for dtype, weights in expected.items():
        r = inference_memory(make_params_only(n), dtype=dtype, seq_len=0)
        assert r.weights_bytes == weights
        assert r.total_bytes == pytest.approx(1.2 * weights, abs=1)


def test_gpus_needed_rounds_up() -> None:
    r = inference_memory(make_params_only(70e9), seq_len=0, gpu_memory_bytes=80 * 2**30)
    assert r.total_bytes == 168e9
    assert r.gpus_needed == 2


def test_kv_cache_needs_the_architecture() -> None:
    with pytest.raises(MissingArchitectureError):
        inference_memory(make_params_only(7e9))


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    # Llama-2-70B has 8 KV heads: at tp = 16 each rank still holds a whole KV head, so K and V
    # weights and activations per rank stay those of tp = 8 (Megatron-LM replicates them)
    arch = preset("llama-2-70b")
    at8 = training_memory(
        arch, parallelism=Parallelism(tp=8, sequence_parallel=True), seq_len=4096, recompute=Recompute.SELECTIVE
    )
    at16 = training_memory(
        arch, parallelism=Parallelism(tp=16, sequence_parallel=True), seq_len=4096, recompute=Recompute.SELECTIVE
    )
    kv_weights = 80 * 2 * 8192 * 1024  # K and V, all layers
    total, norms = 68_976_648_192, (2 * 80 + 1) * 8192
    assert at16.params_per_gpu == round((total - norms) / 16 + kv_weights * (1 / 8 - 1 / 16)) + norms
    kv_acts = 2 * 4096 * 2 * 1024 // 8  # e * s * b * 2 * kv_dim per layer, on each of 8 KV ranks
    # with sequence parallelism everything else halves from tp = 8 to tp = 16; K and V do not
    assert at16.activations.per_layer_bytes == (at8.activations.per_layer_bytes - kv_acts) // 2 + kv_acts
    assert at8.params_per_gpu > at16.params_per_gpu


def test_the_eager_loss_peaks_at_twelve_bytes_a_logit_sixteen_on_shards_the_fused_at_four() -> None:
    # Llama-3-8B (vocab 128,256) at 8,192 tokens: PyTorch's F.cross_entropy on upcast logits holds the saved
    # fp32 log-softmax, nll_loss's fp32 gradient and the log-softmax's gradient at once (12 bytes a logit);
    # Megatron's vocab-parallel loss works in place on its fp32 softmax (4, Korthikanti §4.3)
    arch = preset("llama-3-8b")
    common = dict(seq_len=8192, micro_batch_size=1, recompute=Recompute.FULL)
    eager = training_memory(arch, kernels=Kernels(cross_entropy=CrossEntropy.EAGER), **common).activations_bytes
    fused = training_memory(arch, kernels=Kernels(cross_entropy=CrossEntropy.FUSED), **common).activations_bytes
    assert eager - fused == 8 * 8192 * 128_256 == 8_405_385_216
    assert training_memory(arch, **common).activations_bytes == eager  # transformers' default: eager
    assert training_memory(arch, kernels=MEGATRON, **common).activations_bytes < eager
    # vocabulary-parallel over 4 tensor ranks: a quarter of the logits each, the eager loss now PyTorch's
    # loss_parallel, whose fused backward holds the saved fp32 log-softmax, zeros_like(x), exp(x), their sum
    # and its product with the gradient: four fp32 tensors at once, 16 bytes a logit (12 more than the fused 4)
    tp4 = dict(common, parallelism=Parallelism(tp=4))
    split = (training_memory(arch, kernels=Kernels(cross_entropy=CrossEntropy.EAGER), **tp4).activations_bytes
             - training_memory(arch, kernels=Kernels(cross_entropy=CrossEntropy.FUSED), **tp4).activations_bytes)  # fmt: skip
    assert split == (16 - 4) * 8192 * 128_256 // 4 == 3_152_019_456
