"""The fine-tuning step time against the calibration sheet's fine-tuning rows (published
throughputs; no value fitted to them): Megatron-Bridge's Llama3-70B LoRA and SFT on H100
(``docs/performance-summary.md``, DGX-H100, FP8, seq 4096, GBS 32, MBS 1), each within 15 %, and
MLPerf Training v4.0's Llama-2-70B LoRA on 1,024 H100 (NVIDIA Eos, NeMo 24.04; GBS 128, rank 16,
seq 8192, 89.2 s from run start to stop on 11,136 samples)."""

from __future__ import annotations

import pytest

from service.core.adapters import Projection
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.memory import Precision
from service.core.plan import PlanSpec, plan
from tests.core.helpers import preset
from tests.core.test_plan import hardware

ROW_TOLERANCE = 0.15  # the calibration sheet's bar per training row
H100 = hardware("h100-sxm")
FP8 = dict(precision=Precision.FP8, tp_comm_overlap=True, top_k=1)
# Megatron-Bridge's LoRA: rank 32 on linear_qkv, linear_proj, linear_fc1 and linear_fc2 (every projection), no dropout
BRIDGE_LORA = FinetuneSpec(method=FinetuneMethod.LORA, rank=32)


def tokens_per_second_per_gpu(arch, spec: PlanSpec) -> float:
    result = plan(arch, H100, spec)
    assert result.plans, result.reason
    return result.plans[0].tokens_per_second / spec.n_gpus


def test_megatron_bridge_llama3_70b_lora_on_8_h100() -> None:
    # TP2/PP4/VP20 (one layer a chunk), dp 1: 2,643 tok/s/GPU
    fixed = {"tp": 2, "pp": 4, "cp": 1, "virtual_stages": 20, "micro_batch_size": 1, "pipeline_schedule": "interleaved"}
    spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=32, finetune=BRIDGE_LORA, fixed=fixed, **FP8)
    assert tokens_per_second_per_gpu(preset("llama-3-70b"), spec) == pytest.approx(2643, rel=ROW_TOLERANCE)


def test_megatron_bridge_llama3_70b_sft_on_32_h100() -> None:
    # supervised fine-tuning trains every weight: the planner's full training, TP4/PP4/VP5, dp 2: 1,638 tok/s/GPU
    fixed = {"tp": 4, "pp": 4, "cp": 1, "virtual_stages": 5, "micro_batch_size": 1, "pipeline_schedule": "interleaved"}
    spec = PlanSpec(n_gpus=32, seq_len=4096, global_batch_size=32, fixed=fixed, **FP8)
    assert tokens_per_second_per_gpu(preset("llama-3-70b"), spec) == pytest.approx(1638, rel=ROW_TOLERANCE)


def test_lora_is_faster_than_full_training_by_the_frozen_backward() -> None:
    # the frozen base's backward computes dX only: at most 6PD/4PD = 1.5x faster, less the adapters,
    # the attention core and the element-wise kernels that do not shrink (Hu et al. 2021 §4.2: 1.33x on GPT-3)
    fixed = {"tp": 2, "pp": 4, "cp": 1, "virtual_stages": 20, "micro_batch_size": 1, "recompute": "full", "zero_stage": 0}
    arch = preset("llama-3-70b")
    common = dict(n_gpus=8, seq_len=4096, global_batch_size=32, fixed=fixed, top_k=1, usable_memory_fraction=1.0)
    lora = plan(arch, hardware("h100-sxm", memory_bytes=10**12), PlanSpec(finetune=BRIDGE_LORA, **common)).plans[0]
    full = plan(arch, hardware("h100-sxm", memory_bytes=10**12), PlanSpec(**common)).plans[0]
    assert 1.15 < full.step_seconds / lora.step_seconds < 1.5


def test_mlperf_v4_llama2_70b_lora_on_1024_h100() -> None:
    # MLPerf Training v4.0, NVIDIA Eos: 11,136 samples at GBS 128 = 87 steps in 89.2 s, time-to-train
    # from run start to stop. The step time leaves out the evaluation passes on the validation set
    # inside the timed region, the first steps' warm-up and the host's synchronisation between steps:
    # the predicted steps alone are a lower bound. LoRA rank 16 on the attention projections, dropout
    # 0.1 (the MLPerf reference), FP8
    ft = FinetuneSpec(method=FinetuneMethod.LORA, rank=16, targets=(Projection.Q, Projection.K, Projection.V, Projection.O),
                      dropout=0.1)  # fmt: skip
    spec = PlanSpec(n_gpus=1024, seq_len=8192, global_batch_size=128, finetune=ft, **FP8)
    result = plan(preset("llama-2-70b"), H100, spec)
    steps_seconds = 11136 / 128 * result.plans[0].step_seconds
    # a lower bound of the published time, not within its 25 % bar (about half of it): the gap is
    # reported, not fitted
    assert 0.4 < steps_seconds / 89.2 < 1
