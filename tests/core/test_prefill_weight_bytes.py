"""A prefill reads its weights as their format stores them (service.core.weight_format), as a
decode step does: FP8 one byte (W8A8 on FP8 tensor cores: the activations one byte too), int4
half a byte and its group scales; only the matmuls' bytes move, not their FLOPs' rate (W4A16).

A toy dense model on a toy GPU whose every number is round: width 1,024, 8 heads, SwiGLU 4,096
wide, 2 layers; 1 PFLOP/s dense (FP8 too) at full efficiency, 1 TB/s of HBM at full efficiency.
One prompt token makes every block matmul a read of its weights.
"""

from __future__ import annotations

import dataclasses

import pytest

from service.core.dtypes import Dtype
from service.core.efficiency import KernelEfficiency
from service.core.serving import prefill_seconds, replica, weight_bytes
from service.core.spec import make_architecture
from service.core.steptime import Hardware
from service.core.weight_format import bytes_per_weight, linear_weight_bytes
from tests.core.helpers import hardware, preset

TOY = make_architecture(n_layers=2, d_model=1024, n_heads=8, d_ff=4096, vocab_size=1000, ffn="swiglu")
GPU = Hardware(
    peak_flops_per_s=1e15, matmul_efficiency=1.0, memory_bytes=80 * 10**9, memory_bandwidth_bytes_per_s=1e12, gpus_per_node=8,
    intra_node_bandwidth_bytes_per_s=450e9, inter_node_bandwidth_bytes_per_s=50e9, fp8_peak_flops_per_s=1e15,
    efficiency=KernelEfficiency(matmul=1.0, matmul_fp8=1.0, memory_bandwidth=1.0),
)  # fmt: skip
# a layer's block matrices (k_in, n_out): Q, K, V, O 1,024 x 1,024; gate and up 1,024 x 4,096; down 4,096 x 1,024
SHAPES = [(1024, 1024)] * 4 + [(1024, 4096)] * 2 + [(4096, 1024)]


def test_stored_bytes_of_a_matrix_by_format() -> None:
    assert linear_weight_bytes(Dtype.BF16, 1024, 4096) == (8_388_608, 0)
    assert linear_weight_bytes(Dtype.FP8, 1024, 4096) == (4_194_304, 4)  # one fp32 scale a tensor
    assert linear_weight_bytes(Dtype.INT8, 1024, 4096) == (4_194_304, 8_192)  # an fp16 scale a channel
    assert linear_weight_bytes(Dtype.INT4, 1024, 4096) == (2_097_152, 81_920)  # 8 groups x 4,096 x 2.5 bytes
    assert bytes_per_weight(Dtype.INT4, 1024, 4096) == pytest.approx(0.5 + 2.5 / 128)
    assert bytes_per_weight(Dtype.INT4, 1024, 4096, group_size=32) == pytest.approx(0.5 + 2.5 / 32)


def test_a_one_token_prefill_reads_fp8_and_int4_weights_at_their_size() -> None:
    # the whole prefill differs between formats by the block matmuls' bytes only (attention core, output
    # layer and all-reduces are 16-bit in all three): FP8 saves a byte a weight and a byte an input
    # (less 4 bytes of scale a tensor); int4 saves 1.5 bytes a weight less its group scales
    bf16 = prefill_seconds(TOY, GPU, tp=1, prompt_tokens=1)
    fp8 = prefill_seconds(TOY, GPU, tp=1, prompt_tokens=1, weights_format=Dtype.FP8)
    int4 = prefill_seconds(TOY, GPU, tp=1, prompt_tokens=1, weights_format=Dtype.INT4)
    fp8_saved = 2 * sum(k * n + k - 4 for k, n in SHAPES)
    int4_saved = 2 * sum(1.5 * k * n - 2.5 * (k // 128) * n for k, n in SHAPES)
    assert (fp8_saved, int4_saved) == (33_574_856, 49_676_288)
    assert bf16 - fp8 == pytest.approx(fp8_saved / 1e12, rel=1e-9)
    assert bf16 - int4 == pytest.approx(int4_saved / 1e12, rel=1e-9)


def test_weight_only_formats_compute_at_the_16_bit_rate() -> None:
    # a long prompt is compute-bound: int4 (W4A16, Marlin) runs at the 16-bit rate, FP8 on FP8 tensor
    # cores at the FP8 rate; a GPU without FP8 tensor cores runs FP8 weights at the 16-bit rate (FP8 Marlin)
    fast_fp8 = dataclasses.replace(GPU, fp8_peak_flops_per_s=2e15, memory_bandwidth_bytes_per_s=1e14)
    fast = dataclasses.replace(fast_fp8, fp8_peak_flops_per_s=None)
    bf16 = prefill_seconds(TOY, fast_fp8, tp=1, prompt_tokens=8192)
    matmuls = 2 * 8192 * 2 * sum(k * n for k, n in SHAPES) / 1e15  # both layers' block matmuls at 1 PFLOP/s
    assert prefill_seconds(TOY, fast_fp8, tp=1, prompt_tokens=8192, weights_format=Dtype.INT4) == pytest.approx(bf16, rel=1e-9)
    assert bf16 - prefill_seconds(TOY, fast_fp8, tp=1, prompt_tokens=8192, weights_format=Dtype.FP8) == pytest.approx(
        matmuls / 2, rel=1e-9
    )
    assert prefill_seconds(TOY, fast, tp=1, prompt_tokens=8192, weights_format=Dtype.FP8) == pytest.approx(
        prefill_seconds(TOY, fast, tp=1, prompt_tokens=8192), rel=1e-9
    )


def test_a_replicas_prefill_reads_its_int4_group_scales() -> None:
    # Llama-2-7B in int4 on an H100 at a 16-token prompt (memory-bound): smaller groups, more scales, a slower
    # prefill; and int4's prefill is faster than bf16's by about the weights' bytes
    arch, h100 = preset("llama-2-7b"), hardware("h100-sxm")
    given = {"kv_dtype": Dtype.BF16, "prompt_tokens": 16, "output_tokens": 16, "batch": 1}
    g128 = replica(arch, h100, tp=1, weights=weight_bytes(arch, Dtype.INT4), **given).prefill_seconds
    g32 = replica(arch, h100, tp=1, weights=weight_bytes(arch, Dtype.INT4, group_size=32), **given).prefill_seconds
    bf16 = replica(arch, h100, tp=1, weights=weight_bytes(arch, Dtype.BF16), **given).prefill_seconds
    extra_scales = weight_bytes(arch, Dtype.INT4, group_size=32).scale_bytes - weight_bytes(arch, Dtype.INT4).scale_bytes
    rate = h100.memory_bandwidth_bytes_per_s * h100.kernels.memory_bandwidth
    assert g32 - g128 == pytest.approx(extra_scales / rate, rel=1e-6)
    assert bf16 / g128 > 2.5
