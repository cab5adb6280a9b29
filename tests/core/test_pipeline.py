"""Pipeline schedules (service.core.pipeline) against their published formulas, and the planner's
vectorised memory against the scalar core under every schedule.

Exact counts are tested exactly; the bubbles are sums of a few float terms (rel 1e-12).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from service.core import pipeline
from service.core.fp8 import Fp8Recipe
from service.core.kernels import MEGATRON
from service.core.memory import Parallelism, Precision, expert_params_per_gpu, params_per_gpu, training_memory
from service.core.pipeline import (
    DUALPIPE,
    DUALPIPEV,
    INTERLEAVED,
    ONE_F_ONE_B,
    SCHEDULES,
    ZERO_BUBBLE,
    PipelineSchedule,
    bubble_seconds,
    in_flight,
    parameter_copies,
    schedule_problem,
    stage_layers,
)
from service.core.plan import RECOMPUTES, PlanSpec, layer_tables, layout_grid, memory_arrays, plan, search_axes, shard_tables
from tests.core.helpers import hardware, preset

# One micro-batch over one stage: forward F, whole backward B (of which W is the weight-gradient part)
F, B, W = 1.0, 2.0, 1.0


# --- bubbles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pp", [2, 4, 8, 16])
def test_bubbles_are_the_dualpipe_readme_table(pp: int) -> None:
    # deepseek-ai/DualPipe README, "Pipeline Bubbles and Memory Usage Comparison" (DeepSeek-V3,
    # arXiv 2412.19437 §3.2.1, Table 2): 1F1B (PP-1)(F+B); ZB1P (PP-1)(F+B-2W);
    # DualPipe (PP/2-1)(F&B+B-3W), with F&B = F+B (overlapped chunks' compute adds)
    def bubble(code: int) -> float:
        return float(bubble_seconds(code, pp, 1, F + B, B, W))

    assert bubble(ONE_F_ONE_B) == pytest.approx((pp - 1) * (F + B), rel=1e-12)
    assert bubble(ZERO_BUBBLE) == pytest.approx((pp - 1) * (F + B - 2 * W), rel=1e-12)
    assert bubble(DUALPIPE) == pytest.approx((pp / 2 - 1) * ((F + B) + B - 3 * W), rel=1e-12)
    # the schedules rank as the table does: DualPipe < ZB1P < 1F1B once the pipeline is deep
    if pp >= 4:
        assert bubble(DUALPIPE) < bubble(ZERO_BUBBLE) < bubble(ONE_F_ONE_B)


def test_zero_bubble_with_fewer_micro_batches_than_stages_keeps_the_first_stages_critical_path() -> None:
    # Qi et al. 2023 §3.1's (p-1)(F+B-2W) fills the first stage's wait with other micro-batches' W
    # passes; with m < p that stage's first backward still waits for a micro-batch's forward through
    # all p stages and its input gradient (B - W) back through p - 1, then runs its m backwards:
    # step pF + (p-1)(B-W) + mB, bubble (p-m)F + (p-1)(B-W). F, B, W = 1, 2, 1 on 8 stages:
    def bubble(m: float) -> float:
        return float(bubble_seconds(ZERO_BUBBLE, 8, 1, F + B, B, W, m))

    assert bubble(1) == 14.0  # one micro-batch: 8 F + 8 (B - W) + W = 17 in all, 3 of it work
    assert bubble(1) + 1 * (F + B) == 8 * F + 8 * (B - W) + W
    assert bubble(2) == 13.0 and bubble(4) == 11.0
    assert bubble(8) == bubble(32) == 7 * (F + B - 2 * W) == 7.0  # m >= p: the paper's
    assert float(bubble_seconds(ZERO_BUBBLE, 8, 1, F + B, B, W)) == 7.0  # m not given: the paper's
    # never more than 1F1B's (p-1)(F+B) = 21
    assert bubble(1) < float(bubble_seconds(ONE_F_ONE_B, 8, 1, F + B, B, W, 1)) == 21.0


def test_zero_bubble_step_at_one_micro_batch_saves_one_weight_gradient_per_stage() -> None:
    # through the step-time model: ZB-H1 takes (p-1)W off 1F1B's bubble with one micro-batch
    # (bubble above) and 2(p-1)W with m >= p, the same layer times in both
    from service.core.steptime import Layout, Workload, step_time

    arch, h100 = preset("llama-3-8b"), hardware("h100-sxm")

    def saved(batch: int) -> float:
        lay = dict(tp=1, pp=8, dp=1, cp=1, ep=1, zero_stage=0, offload_optimizer=False, micro_batch_size=1, recompute=0,
                   sequence_parallel=False, virtual_stages=1, params_per_gpu=1e9)  # fmt: skip
        work = Workload(seq_len=4096, global_batch_size=batch)
        one, zb = (float(step_time(arch, h100, work, Layout(**lay, pipeline_schedule=code)).bubble_seconds)
                   for code in (ONE_F_ONE_B, ZERO_BUBBLE))  # fmt: skip
        return one - zb

    assert saved(1) > 0
    assert saved(1) == pytest.approx(saved(8) / 2, rel=1e-12)


@pytest.mark.parametrize(("pp", "v"), [(2, 2), (4, 2), (8, 3), (16, 4)])
def test_interleaved_bubble_shrinks_by_the_virtual_stages(pp: int, v: int) -> None:
    # Narayanan et al. 2021 §2.2.2: the interleaved schedule's bubble fraction is (p-1)/(v m) of the
    # ideal m(F+B), i.e. (p-1)/v micro-batch times; v = 1 is 1F1B's (p-1)/m (§2.2.1)
    m = 4 * pp
    bubble = float(bubble_seconds(INTERLEAVED, pp, v, F + B, B, W))
    assert bubble == pytest.approx((pp - 1) / v * (F + B), rel=1e-12)
    assert bubble / (m * (F + B)) == pytest.approx((pp - 1) / (v * m), rel=1e-12)
    assert float(bubble_seconds(INTERLEAVED, pp, 1, F + B, B, W)) == float(bubble_seconds(ONE_F_ONE_B, pp, 1, F + B, B, W))


def test_no_bubble_without_a_pipeline_and_none_below_zero() -> None:
    for code in range(len(SCHEDULES)):
        assert float(bubble_seconds(code, 1, 1, F + B, B, W)) == 0.0
    # DualPipe with two stages: PP/2 - 1 = 0
    assert float(bubble_seconds(DUALPIPE, 2, 1, F + B, B, W)) == 0.0
    # a weight-gradient part larger than the formula can absorb leaves no negative bubble
    assert float(bubble_seconds(ZERO_BUBBLE, 8, 1, 1.0, 0.9, 0.8)) == 0.0
    assert float(bubble_seconds(DUALPIPE, 8, 1, 1.0, 0.9, 0.8)) == 0.0


def test_bubbles_vectorise_over_schedules_and_sizes() -> None:
    codes = np.arange(len(SCHEDULES))
    got = bubble_seconds(codes, np.full(5, 8), np.array([1, 2, 1, 1, 1]), F + B, B, W)
    # 1F1B 7*3; interleaved 7/2*3; ZB-H1 7*(3-2); DualPipe 3*(3+2-3); DualPipeV 16 half-stages: 7/2*(3+2-3)
    assert got.tolist() == pytest.approx([21.0, 10.5, 7.0, 6.0, 7.0], rel=1e-12)


# --- activations in flight -----------------------------------------------------------------------


@pytest.mark.parametrize(("pp", "m"), [(4, 8), (8, 8), (8, 32), (16, 64)])
def test_one_f_one_b_holds_p_minus_r_micro_batches(pp: int, m: int) -> None:
    # Narayanan et al. 2021 §2.2.1 (PipeDream-Flush): stage r runs p - r forwards before its first
    # backward; Korthikanti et al. 2022 §4.2.3: the first stage holds p micro-batches
    for r in range(pp):
        assert float(in_flight(ONE_F_ONE_B, pp, 1, m, rank=r)) == pp - r
        # ZB-H1 keeps 1F1B's memory (Qi et al. 2023 §3.1)
        assert float(in_flight(ZERO_BUBBLE, pp, 1, m, rank=r)) == pp - r


def test_one_f_one_b_never_holds_more_micro_batches_than_the_step_has() -> None:
    assert float(in_flight(ONE_F_ONE_B, 8, 1, 3, rank=0)) == 3
    assert float(in_flight(ONE_F_ONE_B, 8, 1, 3, rank=6)) == 2
    assert float(in_flight(ONE_F_ONE_B, 8, 1, 1, rank=7)) == 1
    # the rank is clamped to the last stage
    assert float(in_flight(ONE_F_ONE_B, 4, 1, 8, rank=9)) == 1
    # without a pipeline, one micro-batch whatever the schedule
    for code in range(len(SCHEDULES)):
        assert float(in_flight(code, 1, 1, 16, rank=0)) == 1


@pytest.mark.parametrize(("pp", "v"), [(2, 2), (4, 2), (4, 3), (8, 2), (8, 4), (16, 2)])
def test_interleaved_in_flight_is_megatrons_warm_up(pp: int, v: int) -> None:
    # Megatron-LM forward_backward_pipelining_with_interleaving: rank r runs
    # 2(p-r-1) + (v-1)p warm-up chunk forwards, then one more before its first backward; a chunk
    # is 1/v of the stage. On rank 0 that is p(1 + (p-1)/(p v)) (Korthikanti et al. 2022 §4.2.3).
    m = 2 * pp  # enough micro-batches that the warm-up is never cut short
    for r in range(pp):
        chunks = 2 * (pp - r - 1) + (v - 1) * pp + 1
        assert float(in_flight(INTERLEAVED, pp, v, m, rank=r)) == pytest.approx(chunks / v, rel=1e-12), r
    assert float(in_flight(INTERLEAVED, pp, v, m, rank=0)) == pytest.approx(pp * (1 + (pp - 1) / (pp * v)), rel=1e-12)


def test_interleaved_last_stage_holds_its_warm_up_chunks_beside_the_loss() -> None:
    # Megatron-LM's interleaved schedule: the last rank (r = p - 1) runs (v - 1)p warm-up chunk
    # forwards and one more before its first backward, which starts at the loss: (v-1)p + 1 chunks of
    # a stage of v, beside one micro-batch's output layer. Llama 3.2 1B (16 layers) on p = 4, v = 4:
    # 4 layers a stage, 13 chunks of one layer = 13 layers, with the fused loss
    from service.core.activations import ActivationOptions, layer_activation_bytes, stage_activation_bytes, stage_end_bytes
    from service.core.kernels import resolve_kernels

    arch = preset("llama-3.2-1b")
    opts = ActivationOptions(seq_len=8192, micro_batch_size=1, flash_attention=True, kernels=MEGATRON)
    layer = layer_activation_bytes(arch, opts).total_bytes
    k = resolve_kernels(MEGATRON, arch, flash_attention=True)
    mask, output = stage_end_bytes(arch, k, element_bytes=2, seq_len=8192, micro_batch_size=1, tp=1, sequence_parallel=False,
                                   dropout=False)  # fmt: skip
    got = stage_activation_bytes(arch, opts, pp=4, virtual_stages=4, microbatches=64, schedule=PipelineSchedule.INTERLEAVED)
    assert float(in_flight(INTERLEAVED, 4, 4, 64, rank=3)) == 13 / 4
    assert got.last_stage_bytes == 13 * layer + output
    assert got.first_stage_bytes == (4 + 3 / 4) * 4 * layer + mask == 19 * layer  # 2*3 + 12 + 1 chunks on rank 0
    assert got.peak_bytes == got.last_stage_bytes > got.first_stage_bytes  # the loss on top of 13 layers
    # 1F1B's last stage holds one micro-batch
    one = stage_activation_bytes(arch, opts, pp=4, microbatches=64, schedule=PipelineSchedule.ONE_F_ONE_B)
    assert one.last_stage_bytes == 4 * layer + output


def test_interleaved_in_flight_never_exceeds_the_micro_batches_of_the_step() -> None:
    # p = 4, v = 2, m = 4: total chunk micro-batches m*v = 8; warm-up 2*3 + 4 = 10 >= 8, so every
    # chunk forward runs before the first backward: 8 chunks = 4 stage micro-batches
    assert float(in_flight(INTERLEAVED, 4, 2, 4, rank=0)) <= 4


@pytest.mark.parametrize("pp", [2, 4, 8, 16])
def test_dualpipe_holds_pp_plus_one_and_two_parameter_copies(pp: int) -> None:
    # deepseek-ai/DualPipe README table: DualPipe 2x parameters, PP+1 activations; 1F1B and ZB1P 1x;
    # DualPipeV's row is for PP stages on PP/2 devices: pp GPUs hold 2pp + 1 half-stage micro-batches
    for r in range(pp):
        assert float(in_flight(DUALPIPE, pp, 1, 2 * pp, rank=r)) == pp + 1
        assert float(in_flight(DUALPIPEV, pp, 1, 2 * pp, rank=r)) == (2 * pp + 1) / 2
    assert [int(parameter_copies(code)) for code in range(len(SCHEDULES))] == [1, 1, 1, 2, 1]
    assert parameter_copies(np.array([DUALPIPE, ONE_F_ONE_B])).tolist() == [2, 1]


def test_dualpipe_doubles_the_parameters_a_gpu_holds() -> None:
    arch = preset("llama-2-13b")
    one = params_per_gpu(arch, Parallelism(pp=4, pipeline_schedule=PipelineSchedule.ONE_F_ONE_B))
    assert params_per_gpu(arch, Parallelism(pp=4, pipeline_schedule=PipelineSchedule.DUALPIPE)) == 2 * one
    assert params_per_gpu(arch, Parallelism(pp=4, pipeline_schedule=PipelineSchedule.DUALPIPEV)) == one
    assert params_per_gpu(arch, Parallelism(pp=4, pipeline_schedule=PipelineSchedule.ZERO_BUBBLE)) == one


def test_dualpipev_bubble_counts_its_half_stages() -> None:
    # deepseek-ai/DualPipe README (DualPipeV row, "based on the same number of PP stages", #Devices PP/2):
    # 8 GPUs run 16 stages of half a GPU's layers, each F, B, W half as long
    p = 8
    stages, f, b, w = 2 * p, F / 2, B / 2, W / 2
    readme = (stages / 2 - 1) * ((f + b) + b - 3 * w)
    assert float(bubble_seconds(DUALPIPEV, p, 1, F + B, B, W)) == pytest.approx(readme, rel=1e-12)


# --- layer placement -----------------------------------------------------------------------------


def test_llama_3_405b_stages() -> None:
    # Dubey et al. 2024 (Llama 3) §3.3.2: 126 layers on 16 stages, one layer fewer on the first and
    # the last stage (embedding, and output layer + loss): 7, 8 x 14, 7
    first, middle, last = stage_layers(126, 16)
    assert (first, middle, last) == (7, 8, 7)
    assert first + 14 * middle + last == 126


@pytest.mark.parametrize(
    ("layers", "pp", "v", "expected"),
    [
        (32, 4, 1, (8, 8, 8)),  # no room to spare: even stages
        (33, 4, 1, (8, 9, 8)),  # 36 - 33 = 3 spare: both ends lighter
        (31, 4, 1, (7, 8, 8)),  # one spare: the first stage only
        (40, 1, 1, (40, 40, 40)),  # one stage holds everything
        (126, 16, 2, (7, 8, 7)),  # two chunks of 4 per stage; still a layer off each end
        (96, 8, 3, (12, 12, 12)),
    ],
)
def test_stage_layers(layers: int, pp: int, v: int, expected: tuple[int, int, int]) -> None:
    got = stage_layers(layers, pp, v)
    assert got == expected
    if pp > 1:  # the stages hold every layer
        first, middle, last = got
        assert first + (pp - 2) * middle + last >= layers


def test_stage_layers_vectorise() -> None:
    first, middle, last = stage_layers(126, np.array([1, 2, 16, 126]), np.array([1, 1, 1, 1]))
    assert first.tolist() == [126, 63, 7, 1]
    assert middle.tolist() == [126, 63, 8, 1]
    assert last.tolist() == [126, 63, 7, 1]


# --- what cannot run -----------------------------------------------------------------------------


def test_schedule_problems_name_the_rule() -> None:
    dual, dualv = PipelineSchedule.DUALPIPE, PipelineSchedule.DUALPIPEV
    assert schedule_problem(dual, 3, 1, 8) == "dualpipe needs an even pipeline size (pp=3): micro-batches enter from both ends"
    assert schedule_problem(dualv, 5, 1, 20) is None  # DualPipeV runs 2pp half-stages: any pp
    assert schedule_problem(dual, 4, 1, 7) == "dualpipe needs at least 2*pp = 8 micro-batches per step (has 7)"
    assert schedule_problem(dualv, 4, 1, 5) == "dualpipev needs at least 2*pp = 8 micro-batches per step (has 5)"
    assert schedule_problem(PipelineSchedule.INTERLEAVED, 4, 1, 8) == "the interleaved schedule needs virtual_stages > 1"
    for schedule in (PipelineSchedule.ONE_F_ONE_B, PipelineSchedule.ZERO_BUBBLE, dual, dualv):
        assert "virtual_stages = 1" in schedule_problem(schedule, 4, 2, 8)


def test_schedules_that_can_run_have_no_problem() -> None:
    assert schedule_problem(PipelineSchedule.DUALPIPE, 4, 1, 8) is None
    assert schedule_problem(PipelineSchedule.DUALPIPE, 4, 1, None) is None  # micro-batches not known yet
    assert schedule_problem(PipelineSchedule.DUALPIPE, 1, 1, 1) is None  # no pipeline: nothing to schedule
    assert schedule_problem(PipelineSchedule.INTERLEAVED, 4, 2, 8) is None
    assert schedule_problem(PipelineSchedule.ZERO_BUBBLE, 3, 1, 1) is None
    assert schedule_problem(PipelineSchedule.ONE_F_ONE_B, 7, 1, 2) is None
    assert pipeline.default_schedule(1) is PipelineSchedule.ONE_F_ONE_B
    assert pipeline.default_schedule(2) is PipelineSchedule.INTERLEAVED


# --- the planner's memory, schedule by schedule --------------------------------------------------


LAYOUT = ("dp", "tp", "pp", "cp", "ep", "virtual_stages", "sequence_parallel", "zero_stage", "offload_optimizer")
PARTS = ("total", "weights", "gradients", "optimizer", "activations")


@pytest.mark.parametrize(
    ("model", "n_gpus", "dropout", "precision", "recipe"),
    [
        ("llama-2-13b", 64, True, Precision.MIXED_BF16, Fp8Recipe.TENSORWISE),
        ("mixtral-8x7b", 64, False, Precision.MIXED_BF16, Fp8Recipe.TENSORWISE),
        ("llama-3-8b", 64, False, Precision.FP8, Fp8Recipe.TENSORWISE),
        ("mixtral-8x7b", 64, True, Precision.FP8, Fp8Recipe.BLOCKWISE),
    ],
    ids=["llama-2-13b", "mixtral", "llama-3-8b-fp8", "mixtral-fp8-blockwise"],
)
def test_memory_arrays_equal_the_scalar_core_for_every_schedule(model, n_gpus, dropout, precision, recipe) -> None:
    # as tests/core/test_plan.py::test_memory_arrays_equal_the_scalar_core, with rows of each schedule
    arch = preset(model)
    spec = PlanSpec(n_gpus=n_gpus, seq_len=1024, global_batch_size=256, dropout=dropout, precision=precision, fp8_recipe=recipe)
    axes = search_axes(arch, hardware("h100-sxm"), spec)
    grid = layout_grid(arch, spec, axes)
    mem = memory_arrays(arch, spec, grid, shard_tables(arch, spec, axes), layer_tables(arch, spec, axes))
    rng = random.Random(11)
    for code in range(len(SCHEDULES)):
        rows = np.flatnonzero(grid["pipeline_schedule"] == code).tolist()
        assert len(rows) >= 20, SCHEDULES[code]
        for i in rng.sample(rows, 20):
            row = {k: grid[k][i].item() for k in grid}
            par = Parallelism(**{k: row[k] for k in LAYOUT}, pipeline_schedule=SCHEDULES[code])
            exact = training_memory(
                arch, parallelism=par, micro_batch_size=row["micro_batch_size"], seq_len=1024, dropout=dropout,
                recompute=RECOMPUTES[row["recompute"]], flash_attention=True, microbatches=row["microbatches"],
                kernels=MEGATRON, precision=precision, fp8_recipe=recipe,
            )  # fmt: skip
            got = {part: mem[part][i] for part in PARTS}
            assert got == {part: getattr(exact, f"{part}_bytes") for part in PARTS}, row


def test_fp8_weight_copies_add_to_the_weights() -> None:
    # service.core.fp8: BF16 weights stay and the row- and column-wise FP8 copies of the matmul
    # weights (1 byte each, tensorwise) sit beside them: between 2 and 4 bytes per parameter in all
    arch = preset("llama-3-8b")
    par = Parallelism(dp=8)
    bf16 = training_memory(arch, parallelism=par, seq_len=1024, flash_attention=True, kernels=MEGATRON)
    fp8 = training_memory(arch, parallelism=par, seq_len=1024, flash_attention=True, kernels=MEGATRON, precision=Precision.FP8)
    assert bf16.weights_bytes == 2 * bf16.params_per_gpu
    assert 2 * bf16.params_per_gpu < fp8.weights_bytes < 4 * bf16.params_per_gpu
    for part in ("gradients_bytes", "optimizer_bytes"):
        assert getattr(fp8, part) == getattr(bf16, part), part
    # the linear layers' inputs are kept in FP8 (service.core.activations): (h + h + f - q_dim) bytes
    # a token less in each of the 32 layers, h = q_dim = 4096, f = 14336
    assert bf16.activations_bytes - fp8.activations_bytes == 32 * 1024 * (4096 + 4096 + 14336 - 4096)


@pytest.mark.parametrize("model", ["mixtral-8x7b", "qwen3-30b-a3b"])
def test_parallel_folding_memory_arrays_equal_the_scalar_core(model: str) -> None:
    # expert_tensor_parallel = 1 (Megatron-Core's MoE parallel folding): whole experts, expert
    # parallelism over tp*dp, their ZeRO shards over tp*dp*cp/ep; the planner's arrays match the core
    arch = preset(model)
    spec = PlanSpec(n_gpus=32, seq_len=1024, global_batch_size=256, expert_tensor_parallel=1)
    axes = search_axes(arch, hardware("h100-sxm"), spec)
    grid = layout_grid(arch, spec, axes)
    folded = np.flatnonzero((grid["tp"] > 1) & (grid["ep"] > 1) & (grid["dp"] % grid["ep"] != 0))
    assert len(folded), "layouts only folding allows (ep dividing tp*dp, not dp) are searched"
    mem = memory_arrays(arch, spec, grid, shard_tables(arch, spec, axes), layer_tables(arch, spec, axes))
    rng = np.random.default_rng(3)
    for i in rng.choice(np.flatnonzero(grid["ep"] > 1), 60).tolist():
        row = {k: grid[k][i].item() for k in grid}
        par = Parallelism(dp=row["dp"], tp=row["tp"], pp=row["pp"], cp=row["cp"], ep=row["ep"], virtual_stages=row["virtual_stages"],
                          sequence_parallel=row["sequence_parallel"], zero_stage=row["zero_stage"],
                          offload_optimizer=row["offload_optimizer"], pipeline_schedule=SCHEDULES[row["pipeline_schedule"]],
                          expert_tensor_parallel=1)  # fmt: skip
        exact = training_memory(arch, parallelism=par, micro_batch_size=row["micro_batch_size"], seq_len=1024,
                                recompute=RECOMPUTES[row["recompute"]], flash_attention=True, microbatches=row["microbatches"],
                                kernels=MEGATRON)  # fmt: skip
        assert mem["total"][i] == exact.total_bytes, row
    # whole experts: tp 2 holds twice the expert weights of the split layout, nothing else changes
    split = Parallelism(tp=2, dp=16, ep=8)
    assert expert_params_per_gpu(arch, Parallelism(tp=2, dp=16, ep=8, expert_tensor_parallel=1)) == 2 * expert_params_per_gpu(
        arch, split
    )


@pytest.mark.parametrize("model", ["deepseek-v3", "mixtral-8x7b"])
def test_every_step_part_is_non_negative_on_uneven_interleaved_moe_stages(model: str) -> None:
    # pp 2 with interleaving leaves both stages a layer light: each stage's shard is counted from its
    # own layers (a DeepSeek stage once came out with negative dense parameters and exposed time)
    arch = preset(model)
    result = plan(arch, hardware("h100-sxm"), PlanSpec(n_gpus=64, seq_len=4096, global_batch_size=256, top_k=50,
                                                       fixed={"pp": 2, "ep": 8}))  # fmt: skip
    assert result.plans
    for p in result.plans:
        assert all(v >= 0 for v in p.step.values()), p.step
        par = Parallelism(
            tp=p.tp, pp=p.pp, dp=p.dp, ep=p.ep, virtual_stages=p.virtual_stages, pipeline_schedule=p.pipeline_schedule
        )
        assert params_per_gpu(arch, par) >= expert_params_per_gpu(arch, par) >= 0
