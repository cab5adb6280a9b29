"""A LoRA fine-tune's frozen base under ZeRO-3 with a pipeline (FSDP2 keeps the stage gathered through the
step, :class:`service.core.memory.ZeroSharding` ``gathered``) holds what pre-training's gathered stage holds:
under FP8 with a 16-bit base, the matmul weights as FSDP2's all-gather output and no FP8 copies
(:func:`service.core.finetune_layout.frozen_base_bytes`)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from service.core.errors import InvalidSpecError
from service.core.finetune import FinetuneMethod, FinetuneSpec, finetune_memory
from service.core.fp8 import Fp8Recipe
from service.core.memory import Parallelism, Precision
from service.core.pipeline import SCHEDULES
from service.core.plan import RECOMPUTES, PlanSpec, layer_tables, layout_grid, memory_arrays, search_axes, shard_tables
from tests.core.helpers import hardware, preset

ARCH = preset("llama-3-8b")
LORA_BF16_BASE = FinetuneSpec(method=FinetuneMethod.LORA, fp8_params=False)  # a BF16 base, Transformer Engine's copies
# Llama 3 8B over 2 stages: the busiest holds 16 layers (218,112,000 parameters each), the 128,256 x 4,096 output
# layer and the final norm; 6,979,321,856 of the model's 8,030,261,248 parameters are matmul weights
STAGE_PARAMS = 16 * 218_112_000 + 128_256 * 4096 + 4096  # 4,015,132,672
# the blocks' share of the stage less its output layer: 6,979,321,856 of 8,030,261,248 - 2 x 128,256 x 4,096
STAGE_MATMUL = Fraction((STAGE_PARAMS - 128_256 * 4096) * 6_979_321_856, 6_979_588_096)  # 3,489,662,975.9
ADAPTERS = 2 * 20_971_520  # r=16 on q, k, v, o of 16 layers, bf16, whole under the gathered stage


def lora(zero: int, *, recipe: Fp8Recipe = Fp8Recipe.TENSORWISE, spec: FinetuneSpec = LORA_BF16_BASE, pp: int = 2):
    par = Parallelism(pp=pp, dp=4, zero_stage=zero)
    return finetune_memory(ARCH, spec, parallelism=par, precision=Precision.FP8, fp8_recipe=recipe, include_activations=False)


def test_a_gathered_stage_holds_its_frozen_base_s_matmul_weights_as_the_fp8_all_gather_output() -> None:
    # torchao's fsdp_pre_all_gather casts the BF16 shard of every Float8Linear weight, frozen or not, to FP8, and
    # FSDP2 keeps the gathered bytes through the step: 1 byte a matmul weight, 2 for the output layer and the norms,
    # no BF16 weight and no row- and column-wise copies (before: 2 p + 2 x matmul = 15,009,590,760 for the base)
    m = lora(3)
    assert m.memory.params_per_gpu - m.trainable_params_per_gpu == STAGE_PARAMS
    assert m.base_weights_bytes == math.ceil(2 * STAGE_PARAMS - STAGE_MATMUL) == 4_540_602_369
    assert m.memory.weights_bytes == 4_540_602_369 + ADAPTERS == 4_582_545_409
    # the same pipeline under ZeRO-1 keeps the BF16 base and Transformer Engine's two FP8 copies beside it
    assert lora(1).memory.weights_bytes == 2 * STAGE_PARAMS + math.ceil(2 * STAGE_MATMUL) + ADAPTERS == 15_051_534_336
    # without a pipeline ZeRO-3 shards the base over dp = 4 and gathers it layer by layer: no copies either
    assert lora(3, pp=1).base_weights_bytes == 2 * 8_030_261_248 // 4 == 4_015_130_624


@pytest.mark.parametrize("recipe", [Fp8Recipe.BLOCKWISE, Fp8Recipe.MXFP8])
def test_other_recipes_keep_the_gathered_frozen_base_in_bf16_and_no_copies(recipe: Fp8Recipe) -> None:
    # torchao's FSDP2 Float8 all-gather is the tensorwise weight's alone: gathered in BF16, cast for each matmul
    assert lora(3, recipe=recipe).base_weights_bytes == 2 * STAGE_PARAMS == 8_030_265_344


def test_fp8_primary_weights_are_held_gathered_as_they_are_stored() -> None:
    # Transformer Engine's fp8_model_init (the default under FP8 LoRA): the row- and column-wise FP8 weights and no
    # BF16 one, the same bytes as a stage ZeRO-1 keeps whole
    on = FinetuneSpec(method=FinetuneMethod.LORA)
    assert lora(3, spec=on).base_weights_bytes == lora(1, spec=on).base_weights_bytes == 2 * STAGE_PARAMS


def test_a_quantised_base_never_reaches_a_gathered_stage_under_fp8() -> None:
    # QLoRA's NF4 base runs under data parallelism alone and never in FP8: both are 422s before any bytes are counted
    qlora = FinetuneSpec(method=FinetuneMethod.QLORA)
    with pytest.raises(InvalidSpecError) as fp8:
        lora(3, spec=qlora, pp=1)
    with pytest.raises(InvalidSpecError) as pp:
        finetune_memory(ARCH, qlora, parallelism=Parallelism(pp=2, dp=4, zero_stage=3), include_activations=False)
    assert (fp8.value.field, pp.value.field) == ("precision", "parallelism.pp")


def test_the_planner_s_fine_tune_arrays_hold_the_calculator_s_gathered_base() -> None:
    # the planner's grid (service.core.plan_finetune.finetune_state_arrays) counts every layout as finetune_memory does
    spec = PlanSpec(n_gpus=16, seq_len=2048, global_batch_size=64, precision=Precision.FP8, finetune=LORA_BF16_BASE)
    axes = search_axes(ARCH, hardware("h100-sxm"), spec)
    grid = layout_grid(ARCH, spec, axes)
    mem = memory_arrays(ARCH, spec, grid, shard_tables(ARCH, spec, axes), layer_tables(ARCH, spec, axes))
    rows = np.flatnonzero((grid["zero_stage"] >= 1) & (grid["pp"] > 1))
    assert (grid["zero_stage"][rows] == 3).any()
    for i in rows[:: max(1, len(rows) // 40)]:
        row = {k: grid[k][i].item() for k in grid}
        par = Parallelism(dp=row["dp"], tp=row["tp"], pp=row["pp"], cp=row["cp"], ep=row["ep"],
                          virtual_stages=row["virtual_stages"], sequence_parallel=row["sequence_parallel"],
                          zero_stage=row["zero_stage"], offload_optimizer=row["offload_optimizer"],
                          pipeline_schedule=SCHEDULES[row["pipeline_schedule"]])  # fmt: skip
        exact = finetune_memory(ARCH, LORA_BF16_BASE, parallelism=par, precision=Precision.FP8, seq_len=2048,
                                micro_batch_size=row["micro_batch_size"], recompute=RECOMPUTES[row["recompute"]],
                                microbatches=row["microbatches"])  # fmt: skip
        assert mem["weights"][i] == exact.memory.weights_bytes, row
