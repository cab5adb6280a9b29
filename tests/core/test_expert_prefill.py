"""A mixture's prefill priced one routed expert at a time (service.core.expert_prefill).

A toy mixture on a toy GPU whose every number is round: width 1,024, experts 512 wide (SwiGLU: gate,
up and down, 3 x 1,024 x 512 = 1,572,864 weights an expert, 3,145,728 bytes in 16 bits), 1 PFLOP/s
at full efficiency, 1 TB/s of HBM read at full efficiency, a grouped-GEMM tile cost ``K0`` of 1,024.
"""

from __future__ import annotations

import dataclasses

import pytest

from service.core import expert_serving as ep_core
from service.core.efficiency import KernelEfficiency
from service.core.expert_prefill import experts_touched, routed_expert_seconds
from service.core.serving import prefill_seconds
from service.core.spec import make_architecture
from service.core.steptime import Hardware

TOY = make_architecture(n_layers=2, d_model=1024, n_heads=8, d_ff=512, vocab_size=1000, ffn="swiglu", n_experts=8,
                        experts_per_token=2)  # fmt: skip
GPU = Hardware(
    peak_flops_per_s=1e15, matmul_efficiency=1.0, memory_bytes=80 * 10**9, memory_bandwidth_bytes_per_s=1e12, gpus_per_node=8,
    intra_node_bandwidth_bytes_per_s=450e9, inter_node_bandwidth_bytes_per_s=50e9,
    efficiency=KernelEfficiency(matmul=1.0, memory_bandwidth=1.0, grouped_gemm_fixed_k=1024, grouped_gemm_fixed_k_fp8=2048),
)  # fmt: skip
EXPERT_BYTES = 3 * 1024 * 512 * 2


def test_one_token_reads_the_two_experts_it_picks() -> None:
    # k = 2 of 8: one token touches 2 experts, one row each; each GEMM is its weights' read at 1 TB/s
    # (gate, up: 1 x 1,024 in, 1 x 512 out; down: 1 x 512 in, 1 x 1,024 out), 1,051,648 bytes a GEMM
    assert experts_touched(TOY, 1) == pytest.approx(2.0)
    per_gemm = 2 * (1024 + 1024 * 512 + 512)
    assert routed_expert_seconds(TOY, GPU, tokens=1) == pytest.approx(2 * 3 * per_gemm / 1e12, rel=1e-12)
    # one matmul over the layer would have read one expert's weights: half of it
    assert 2 * 3 * per_gemm / 1e12 == pytest.approx(6.309888e-6)


def test_a_long_prompt_runs_every_expert_at_its_grouped_gemm_rate() -> None:
    # 4,096 tokens x 2 over 8 experts: all touched, 1,024 rows each; at 10 TB/s every GEMM is compute-bound.
    # Grouped-GEMM share f(K)/f(8,192), f(K) = K / (K + 1,024): up and gate reduce over 1,024 (0.5625),
    # down over 512 (0.375); one GEMM's FLOPs 2 x 1,024 x 1,024 x 512 = 1.0737e9, 1.0737 us at 1 PFLOP/s
    fast_memory = dataclasses.replace(GPU, memory_bandwidth_bytes_per_s=1e13)
    assert experts_touched(TOY, 4096) == 8.0
    gemm = 2 * 1024 * 1024 * 512 / 1e15
    expected = 8 * (2 * gemm / 0.5625 + gemm / 0.375)
    assert expected == pytest.approx(5.344848e-5, rel=1e-6)
    assert routed_expert_seconds(TOY, fast_memory, tokens=4096) == pytest.approx(expected, rel=1e-12)
    # FP8 matmuls take FP8's tile cost (2,048): f = (1,024 / 3,072) / (8,192 / 10,240) = 0.41667, down 0.25
    fp8 = 8 * (2 * gemm / (1024 / 3072 * 10240 / 8192) + gemm / (512 / 2560 * 10240 / 8192))
    assert routed_expert_seconds(TOY, fast_memory, tokens=4096, fp8=True) == pytest.approx(fp8, rel=1e-12)


def test_a_short_prompt_in_a_wide_mixture_reads_only_the_experts_it_touches() -> None:
    # the same model with 64 experts against 2 (both k = 2), 4 tokens: the 2-expert model touches both, the
    # 64-expert one 64 (1 - (31/32)^4) = 7.6328; the routed rows are 8 in both, so the prefills differ by the
    # extra experts' weights read, 5.6328 x 3,145,728 bytes a layer at 1 TB/s; nothing else differs
    wide, narrow = (dataclasses.replace(TOY, n_experts=e) for e in (64, 2))
    assert experts_touched(wide, 4) == pytest.approx(7.63275146484375)
    extra = 2 * 5.63275146484375 * EXPERT_BYTES / 1e12  # two layers
    assert extra == pytest.approx(35.438208e-6)
    assert prefill_seconds(wide, GPU, tp=1, prompt_tokens=4) - prefill_seconds(narrow, GPU, tp=1, prompt_tokens=4) == pytest.approx(
        extra, rel=1e-9
    )  # fmt: skip


def test_an_expert_parallel_gpu_runs_its_own_experts_on_the_units_tokens() -> None:
    # EP 4: a GPU holds 2 of the 8 experts; the unit's 4 GPUs each prefill one token, so a local expert is missed
    # with probability (3/4)^4 and 2 (1 - 0.31640625) = 1.3671875 are touched, the GPU's 2 routed rows over them;
    # bytes: the touched experts' weights plus rows in and out, 3 x (1,024 + 512) x 2 rows x 2 bytes
    assert experts_touched(TOY, 1, ep=4) == pytest.approx(1.3671875)
    moved = 1.3671875 * EXPERT_BYTES + 3 * (1024 + 512) * 2 * 2
    assert moved == 4_319_232
    assert routed_expert_seconds(TOY, GPU, tokens=1, ep=4) == pytest.approx(moved / 1e12, rel=1e-12)
    # the unit's prompt prices its GPU's experts so (balanced: imbalance 1, all-to-all and core alike)
    given = {"ep": 4, "prompt_tokens": 1, "element_bytes": 2, "imbalance": 1.0}
    tp1 = prefill_seconds(TOY, GPU, tp=1, prompt_tokens=1)
    unit = ep_core.ep_prompt_seconds(TOY, GPU, **given) - float(
        ep_core.all_to_all_seconds(TOY, GPU, ep=4, tokens=1, element_bytes=2)
    )
    assert unit - tp1 == pytest.approx(2 * (moved / 1e12 - routed_expert_seconds(TOY, GPU, tokens=1)), rel=1e-9)


def test_tensor_parallel_ranks_split_every_touched_expert() -> None:
    # TP 2: each of the 2 touched experts' GEMMs is 1 x 1,024 x 256 (gate, up) and 1 x 256 x 1,024 (down) on a rank
    per_gemm = 2 * (1024 + 1024 * 256 + 256)
    assert routed_expert_seconds(TOY, GPU, tokens=1, tp=2) == pytest.approx(2 * 3 * per_gemm / 1e12, rel=1e-12)
    assert routed_expert_seconds(TOY, GPU, tokens=0) == 0.0
    dense = dataclasses.replace(TOY, n_experts=1, experts_per_token=1)
    assert routed_expert_seconds(dense, GPU, tokens=100) == 0.0
