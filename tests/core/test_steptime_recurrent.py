"""The step time of models with recurrent layers: their mean layer's projections and scans
(service.core.steptime_recurrent). The calibration sheet has no training throughput of a state-space
model, so these check the terms against the shapes and kernels they are built from, not a run."""

from __future__ import annotations

import pytest

from service.core.hardware import matmul_seconds, memory_rate
from service.core.plan import PlanSpec, plan
from service.core.steptime_recurrent import mean_layer_matmuls, scan_bytes_per_token, scan_seconds
from tests.core.helpers import preset
from tests.core.test_plan import hardware

H100 = hardware("h100-sxm")
TOKENS = 4096


def test_a_mamba2_layer_multiplies_through_its_own_projections_only() -> None:
    # Mamba-2 2.7B: in_proj 2,560 -> 10,576 (z, xBC, dt), out_proj 5,120 -> 2,560; no attention, no MLP
    arch = preset("mamba2-2.7b")
    seconds, casts = mean_layer_matmuls(arch, H100, tokens=TOKENS, tp=1, element_bytes=2, fp8=False,
                                        attention=(1.0, 1.0), mlp=(1.0, 1.0))  # fmt: skip
    expected = matmul_seconds(TOKENS, 2560, 10576, H100, 2) + matmul_seconds(TOKENS, 5120, 2560, H100, 2)
    assert seconds == pytest.approx(expected)
    assert casts == TOKENS * (2560 + 10576 + 5120 + 2560)
    # two tensor-parallel ranks: in_proj split by its output, out_proj by its input
    halved, _ = mean_layer_matmuls(arch, H100, tokens=TOKENS, tp=2, element_bytes=2, fp8=False,
                                   attention=(1.0, 1.0), mlp=(1.0, 1.0))  # fmt: skip
    assert halved == pytest.approx(matmul_seconds(TOKENS, 2560, 5288, H100, 2) + matmul_seconds(TOKENS, 2560, 2560, H100, 2))


def test_a_hybrid_weights_its_attention_and_mlp_by_the_layers_that_have_them() -> None:
    jamba = preset("jamba-1.5-mini")  # 4 attention layers of 32, an MLP in every layer
    seconds, _ = mean_layer_matmuls(jamba, H100, tokens=TOKENS, tp=1, element_bytes=2, fp8=False,
                                    attention=(8.0, 0.0), mlp=(3.0, 0.0))  # fmt: skip
    mamba_only, _ = mean_layer_matmuls(jamba, H100, tokens=TOKENS, tp=1, element_bytes=2, fp8=False,
                                       attention=(0.0, 0.0), mlp=(0.0, 0.0))  # fmt: skip
    assert seconds - mamba_only == pytest.approx(8.0 * 4 / 32 + 3.0)


def test_the_mamba2_scan_is_bound_by_its_bytes() -> None:
    # conv 2(I + 2GN), chunked scan reads x, B, C, dt, z and writes its output, the gated norm 3I: 41,808 elements
    arch = preset("mamba2-2.7b")
    assert scan_bytes_per_token(arch, 2) == 2 * (2 * 5376 + (5376 + 80 + 5120) + 5120 + 3 * 5120)
    forward, backward = scan_seconds(arch, H100, tokens=TOKENS, tp=1, element_bytes=2)
    assert forward == pytest.approx(TOKENS * scan_bytes_per_token(arch, 2) / memory_rate(H100))
    assert backward == 2 * forward


def test_a_state_space_model_plans_at_a_plausible_utilisation() -> None:
    # the projections run as any GEMM; the scans add memory-bound time, so the MFU is below a dense
    # transformer's of the same size on the same cluster
    mamba = plan(preset("mamba2-2.7b"), H100, PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=256)).plans[0]
    llama = plan(preset("llama-3.2-3b"), H100, PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=256)).plans[0]
    assert 0.3 < mamba.mfu < llama.mfu
