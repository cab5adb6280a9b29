"""The matmul weights of a pipeline stage under FP8 (service.core.memory.fp8_copy_params with the stage's
embedding and LM head): the FP8 copies, and a gathered ZeRO-3 stage's FP8 all-gather output, cover the
stage's block weights, not the whole model's share of the stage's parameters, which counts the last
stage's LM head (or the first stage's embedding) as matmul weights in part."""

from __future__ import annotations

import pytest

from service.core.finetune import finetune_memory
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.memory import Parallelism, Precision, training_memory
from service.core.mixed_stages import MemoryTables
from service.core.plan import PlanSpec
from service.core.plan_space import layer_tables, layout_grid, memory_arrays, search_axes, shard_tables
from tests.core.helpers import hardware, preset

ARCH = preset("llama-3-8b")  # 32 layers of 218,112,000 parameters (218,103,808 of them matmul weights)
# 8 stages of 4 layers: the last holds 4 layers, the final norm (4,096) and the LM head (128,256 x 4,096)
LAST_STAGE = 4 * 218_112_000 + 4_096 + 525_336_576
assert LAST_STAGE == 1_397_788_672
# the blocks' share of what is not embedding or LM head: 6,979,321,856 / (8,030,261,248 - 2 x 525,336,576)
MATMUL = (4 * 218_112_000 + 4_096) * 6_979_321_856 / 6_979_588_096  # 872,418,815.9: 4 x 218,103,808 + 3,583.9
ZERO_1 = 2 * LAST_STAGE + 1_744_837_632  # BF16 weights + 2 FP8 bytes a matmul weight: ceil(2 x 872,418,815.86)
GATHERED = 1_923_158_529  # ceil(2 x 1,397,788,672 - 872,418,815.86): matmul weights in FP8, the LM head in BF16


def _weights(zero: int) -> int:
    par = Parallelism(pp=8, dp=8, zero_stage=zero)
    return training_memory(ARCH, parallelism=par, precision=Precision.FP8, include_activations=False).weights_bytes


def test_the_last_stage_s_fp8_copies_leave_out_its_lm_head() -> None:
    # before: 0.869 (the model's share) x 1,397,788,672 = 1,214,856,743 "matmul" weights, 685 MB of copies too many
    assert _weights(1) == ZERO_1 == 4_540_414_976
    assert pytest.approx(4 * 218_103_808, abs=4_096) == MATMUL


def test_a_gathered_stage_holds_its_lm_head_in_bf16() -> None:
    # before: 1,580,720,601 bytes, the LM head's 0.869 counted at one FP8 byte
    assert _weights(3) == GATHERED


def test_the_planner_and_the_stages_over_pools_count_the_same() -> None:
    fixed = {"tp": 1, "pp": 8, "dp": 8, "cp": 1, "ep": 1, "zero_stage": 1, "micro_batch_size": 1, "recompute": "full",
             "pipeline_schedule": "1f1b", "virtual_stages": 1, "sequence_parallel": False, "offload_optimizer": False}  # fmt: skip
    spec = PlanSpec(n_gpus=64, seq_len=4096, global_batch_size=64, fixed=fixed, precision=Precision.FP8)
    hw = hardware("h100-sxm")
    axes = search_axes(ARCH, hw, spec)
    grid = layout_grid(ARCH, spec, axes)
    mem = memory_arrays(ARCH, spec, grid, shard_tables(ARCH, spec, axes), layer_tables(ARCH, spec, axes))
    assert float(mem["weights"][0]) == ZERO_1
    tables = MemoryTables(ARCH, spec, [1])
    for zero, expected in ((1, ZERO_1), (3, GATHERED)):
        cfg = {"tp": 1, "dp": 8, "zero": zero, "b": 1, "rc": 2}
        last = tables.memory(cfg, 4, in_flight=1, first=False, last=True, optimizer_per_param=12.0)
        assert float(last.weights) == pytest.approx(expected, abs=1)


def test_a_fine_tune_s_frozen_base_counts_the_same_matmul_weights() -> None:
    par = Parallelism(pp=8, dp=8, zero_stage=1)
    spec = FinetuneSpec(method=FinetuneMethod.LORA, fp8_params=False)
    ft = finetune_memory(ARCH, spec, parallelism=par, precision=Precision.FP8, include_activations=False)
    assert ft.base_weights_bytes == 2 * LAST_STAGE
    copies = ft.memory.weights_bytes - ft.base_weights_bytes - ft.adapter_weights_bytes
    assert copies == ZERO_1 - 2 * LAST_STAGE == 1_744_837_632
