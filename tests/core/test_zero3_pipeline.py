"""ZeRO-3 under a pipeline as FSDP2 runs under PyTorch's pipeline schedules (torchtitan's ``apply_fsdp``:
``reshard_after_forward=False`` when pipelining; the schedule syncs and reshards only after the last
micro-batch): the stage's weights stay gathered and its gradients accumulate whole in fp32, the optimizer
states sharded; one gather and one reduce-scatter a step (:class:`service.core.memory.ZeroSharding`)."""

from __future__ import annotations

import pytest

from service.core.memory import Parallelism, Precision, training_memory
from service.core.plan import PlanSpec, plan
from tests.core.helpers import preset
from tests.core.test_plan import hardware

ARCH = preset("llama-3-8b")


def states(pp: int, zero: int) -> tuple[int, int, int, int]:
    m = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=pp, zero_stage=zero), seq_len=4096, include_activations=False)
    return m.params_per_gpu, m.weights_bytes, m.gradients_bytes, m.optimizer_bytes


def test_a_pipeline_keeps_zero_3_s_stage_whole_but_its_optimizer_states() -> None:
    p, weights, gradients, optimizer = states(pp=2, zero=3)
    assert (weights, gradients) == (2 * p, 4 * p)  # bf16 weights gathered, fp32 gradients accumulated
    assert optimizer == pytest.approx(12 * p / 4, abs=8)  # fp32 master and Adam's two moments over dp = 4
    # without a pipeline ZeRO-3 shards all three (Rajbhandari et al. 2020 §5.1)
    p1, w1, g1, o1 = states(pp=1, zero=3)
    assert (w1, g1) == (pytest.approx(2 * p1 / 4, abs=8), pytest.approx(2 * p1 / 4, abs=8))
    # under a pipeline it holds what ZeRO-1 holds, with its gradients in fp32
    _, w_one, g_one, o_one = states(pp=2, zero=1)
    assert (w_one, 2 * g_one, o_one) == (weights, gradients, optimizer)


def test_the_planner_prices_it_as_the_calculator_counts_it() -> None:
    fixed = {
        "tp": 1,
        "pp": 2,
        "dp": 4,
        "zero_stage": 3,
        "micro_batch_size": 1,
        "recompute": "full",
        "sequence_parallel": False,
        "pipeline_schedule": "1f1b",
    }
    best = plan(ARCH, hardware("h100-sxm"), PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=32, fixed=fixed, top_k=1)).plans[0]
    counted = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=2, zero_stage=3), seq_len=4096, include_activations=False)
    assert best.memory.weights_bytes == counted.weights_bytes and best.memory.gradients_bytes == counted.gradients_bytes
    assert best.memory.optimizer_bytes == counted.optimizer_bytes


def test_it_communicates_once_a_step_reducing_in_fp32() -> None:
    def step(zero: int) -> dict:
        fixed = {
            "tp": 1,
            "pp": 2,
            "dp": 4,
            "zero_stage": zero,
            "micro_batch_size": 1,
            "recompute": "full",
            "pipeline_schedule": "1f1b",
        }
        spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=32, fixed=fixed, top_k=1, precision=Precision.MIXED_BF16)
        return plan(ARCH, hardware("h100-sxm"), spec).plans[0].step

    # once a step as ZeRO-1, its reduce-scatter in fp32 (FSDP2's reduce dtype): more than ZeRO-1's bf16 one, less
    # than ZeRO-2's reduce-scatter of every micro-batch (8 here) or ZeRO-3's gathers and reductions of each
    assert step(1)["dp_comm_seconds"] < step(3)["dp_comm_seconds"] < step(2)["dp_comm_seconds"]


def test_its_bytes_per_parameter_are_the_gradients_it_counts() -> None:
    # the answer's gradient_bytes_per_param is the dtype the gradients are counted in: fp32 when gathered
    m = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=2, zero_stage=3), seq_len=4096, include_activations=False)
    assert m.gradients_bytes == m.bytes_per_param["gradients"] * m.params_per_gpu
    alone = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=1, zero_stage=3), seq_len=4096, include_activations=False)
    assert alone.bytes_per_param["gradients"] == 2
