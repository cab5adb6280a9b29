"""ZeRO-3's all-gather under FP8 moves the matmul weights as FSDP2 gathers them: tensorwise in FP8, one byte
(torchtitan's ``enable_fsdp_float8_all_gather``: torchao's ``fsdp_pre_all_gather`` casts a ``Float8Linear``'s
shard to FP8), the embedding, the output layer and the norms in BF16, blockwise and MXFP8 in BF16; per layer
and micro-batch, or once a step for a stage kept gathered under a pipeline
(:func:`service.core.fp8.zero3_gather_bytes_per_param`, :func:`service.core.steptime.dp_comm_step_seconds`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from service.core.finetune import FinetuneMethod, FinetuneSpec
from service.core.fp8 import Fp8Recipe, zero3_gather_bytes_per_param
from service.core.memory import Parallelism, Precision, params_per_gpu, training_memory
from service.core.plan import PlanSpec, resolve_finetune, workload_for
from service.core.plan_finetune import adapter_load
from service.core.steptime import LayerTimes, Layout, Workload, dp_comm_step_seconds, layout_sizes, link_bandwidths
from tests.core.helpers import hardware, preset

ARCH = preset("llama-3-8b")  # 8,030,261,248 parameters, 6,979,321,856 of them matmul weights
H100 = hardware("h100-sxm")
SHARE = 6_979_321_856 / 8_030_261_248


def test_a_parameter_gathers_one_fp8_byte_a_matmul_weight_under_tensorwise_scaling() -> None:
    assert zero3_gather_bytes_per_param(2, SHARE, Fp8Recipe.TENSORWISE) * 8_030_261_248 == pytest.approx(
        2 * 8_030_261_248 - 6_979_321_856, rel=1e-15
    )  # 9,081,200,640 bytes for the model: 1.131 a parameter, not the 1 counted before for every weight
    for recipe in (Fp8Recipe.BLOCKWISE, Fp8Recipe.MXFP8, None):  # torchtitan refuses the FP8 all-gather with a recipe_name
        assert zero3_gather_bytes_per_param(2, SHARE, recipe) == 2


def exposed_dp_seconds(recipe: Fp8Recipe | None, *, pp: int, dp: int) -> float:
    """dp_comm_step_seconds with no compute to hide behind: every gather and reduction exposed."""
    work = Workload(seq_len=8192, global_batch_size=16, zero3_fp8_recipe=recipe)
    params = params_per_gpu(ARCH, Parallelism(pp=pp, dp=dp))
    lay = Layout(tp=1, pp=pp, dp=dp, cp=1, ep=1, zero_stage=3, offload_optimizer=False, micro_batch_size=1, recompute=0,
                 sequence_parallel=False, virtual_stages=1, params_per_gpu=params)  # fmt: skip
    z = layout_sizes(ARCH, work, lay)
    idle = LayerTimes(*(np.float64(0.0),) * 6)
    return float(dp_comm_step_seconds(ARCH, H100, work, lay, z, idle, 32 // pp, 16 / dp))


def test_per_micro_batch_gathers_move_the_fp8_bytes() -> None:
    # FSDP over 8 GPUs of a node, 2 micro-batches of the 8B model, each gathering the weights for the forward and
    # again for the backward: 4 ring all-gathers, 7/8 of 9,081,200,640 bytes each instead of 16,060,522,496 in BF16
    nvlink = link_bandwidths(H100)[0]
    saved = 4 * 7 / 8 * (2 * 8_030_261_248 - 9_081_200_640) / nvlink
    assert exposed_dp_seconds(None, pp=1, dp=8) - exposed_dp_seconds(Fp8Recipe.TENSORWISE, pp=1, dp=8) == pytest.approx(saved)
    assert exposed_dp_seconds(Fp8Recipe.BLOCKWISE, pp=1, dp=8) == exposed_dp_seconds(None, pp=1, dp=8)


def test_a_gathered_stage_s_once_a_step_gather_moves_the_fp8_bytes() -> None:
    # 2 stages, FSDP over 4 GPUs: the busiest stage's 4,015,132,672 parameters gathered once a step (before: in BF16,
    # 8,030,265,344 bytes), its matmul weights in FP8: 2 x 4,015,132,672 - 3,489,662,708.0 = 4,540,602,636.0 bytes
    nvlink = link_bandwidths(H100)[0]
    fp8_bytes = 2 * 4_015_132_672 - 4_015_132_672 * SHARE
    saved = 3 / 4 * (2 * 4_015_132_672 - fp8_bytes) / nvlink
    assert exposed_dp_seconds(None, pp=2, dp=4) - exposed_dp_seconds(Fp8Recipe.TENSORWISE, pp=2, dp=4) == pytest.approx(saved)


def test_the_planner_s_workload_carries_the_recipe_of_its_fp8_all_gather() -> None:
    spec = PlanSpec(n_gpus=8, seq_len=8192, global_batch_size=16)
    assert workload_for(spec).zero3_fp8_recipe is None
    fp8 = dataclasses.replace(spec, precision=Precision.FP8, fp8_recipe=Fp8Recipe.MXFP8)
    assert workload_for(fp8).zero3_fp8_recipe is Fp8Recipe.MXFP8


def test_a_fine_tune_s_frozen_bf16_base_gathers_as_pre_training_s_weights() -> None:
    # LoRA on a BF16 base under FP8 (fp8_params false): the frozen matmul weights go in FP8 under tensorwise scaling,
    # 2 - 0.869 = 1.131 bytes a parameter; FP8 primary weights (fp8_params) already gather 1 byte a matmul weight
    def gather(fp8_params: bool, recipe: Fp8Recipe | None) -> float:
        ft = resolve_finetune(ARCH, FinetuneSpec(method=FinetuneMethod.LORA, fp8_params=fp8_params), Precision.FP8)
        return adapter_load(ARCH, ft, base_params=0, base_expert_params=0, fp8_recipe=recipe).base_gather_bytes_per_param

    assert gather(False, Fp8Recipe.TENSORWISE) == pytest.approx(2 - SHARE) == pytest.approx(1.130872)
    assert gather(False, Fp8Recipe.BLOCKWISE) == gather(False, None) == 2
    assert gather(True, Fp8Recipe.TENSORWISE) == pytest.approx(2 - SHARE)


@pytest.mark.parametrize(("recipe", "note"), [(Fp8Recipe.TENSORWISE, "at 1 bytes a parameter (FSDP2's FP8 all-gather output)"),
                                              (Fp8Recipe.MXFP8, "at 2 bytes a parameter (gathered in BF16, cast for each matmul)")])  # fmt: skip
def test_the_memory_note_names_what_zero_3_gathers_layer_by_layer(recipe: Fp8Recipe, note: str) -> None:
    m = training_memory(ARCH, parallelism=Parallelism(dp=8, zero_stage=3), seq_len=8192, include_activations=False,
                        precision=Precision.FP8, fp8_recipe=recipe)  # fmt: skip
    assert any(f"under ZeRO-3: matmul weights gathered layer by layer {note}" in n for n in m.notes)
