"""The step-time model and the planner against published runs, and the planner's rules.

Goldens cite their table; the tolerance is the issue's ±10 % on throughput. The model has no
per-run factor: one set of hardware numbers (the seed catalog) and the sourced constants of
service.core.steptime price every row.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np
import pytest

from service.core.compute import AttentionFormula, Recompute, training_flops
from service.core.errors import InvalidSpecError
from service.core.kernels import MEGATRON, CrossEntropy
from service.core.memory import Parallelism, Precision, expert_params_per_gpu, params_per_gpu, training_memory
from service.core.params import count_params
from service.core.pipeline import SCHEDULES
from service.core.plan import (
    DIMENSIONS,
    RECOMPUTES,
    PlanSpec,
    gpu_counts,
    layer_tables,
    layout_grid,
    memory_arrays,
    plan,
    plan_for_deadline,
    search_axes,
    shard_tables,
)
from service.core.spec import make_architecture
from service.core.steptime import Layout, Workload, ring_all_reduce_seconds, ring_gather_seconds, step_time
from tests.core.helpers import hardware, preset

TOLERANCE = 0.10

# Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
# Megatron-LM", Table 1: GPT models on A100-80GB (DGX A100: NVLink 3, 8 x 200 Gb/s HDR per node),
# seq 2048, vocabulary 51,200, full recomputation, fp16. Micro-batch sizes and interleaving from
# the paper's scripts (Megatron-LM examples/sc21/run_table_1.sh); rows from 39B on used
# Megatron's "local" DDP, which reduces gradients after the backward pass.
# (params, heads, hidden, layers, tp, pp, gpus, batch, micro-batch, virtual stages, TFLOP/s per GPU)
NARAYANAN_TABLE_1 = [
    ("1.7B", 24, 2304, 24, 1, 1, 32, 512, 16, 1, 137),
    ("3.6B", 32, 3072, 30, 2, 1, 64, 512, 16, 1, 138),
    ("7.5B", 32, 4096, 36, 4, 1, 128, 512, 16, 1, 142),
    ("18.4B", 48, 6144, 40, 8, 1, 256, 1024, 8, 1, 135),
    ("39.1B", 64, 8192, 48, 8, 2, 512, 1536, 4, 1, 138),
    ("76.1B", 80, 10240, 60, 8, 4, 1024, 1792, 2, 3, 140),
    ("145.6B", 96, 12288, 80, 8, 8, 1536, 2304, 2, 2, 148),
    ("310.1B", 128, 16384, 96, 8, 16, 1920, 2160, 1, 2, 155),
    ("529.6B", 128, 20480, 105, 8, 35, 2520, 2520, 1, 3, 163),
    ("1008.0B", 160, 25600, 128, 8, 64, 3072, 3072, 1, 1, 163),
]


def gpt(heads: int, hidden: int, layers: int):
    return make_architecture(n_layers=layers, d_model=hidden, n_heads=heads, d_ff=4 * hidden, vocab_size=51200,
                             position="learned", max_seq_len=2048, bias=True, tied_embeddings=True)  # fmt: skip


def narayanan_spec(n: int, batch: int, *, overlap: bool, fixed: dict | None = None) -> PlanSpec:
    return PlanSpec(n_gpus=n, seq_len=2048, global_batch_size=batch, flash_attention=False, dropout=True,
                    overlap_grad_reduce=overlap, fixed=fixed or {}, top_k=1)  # fmt: skip


@pytest.mark.parametrize("row", NARAYANAN_TABLE_1, ids=[r[0] for r in NARAYANAN_TABLE_1])
def test_narayanan_table_1_throughput_and_the_planner_beats_it(row) -> None:
    name, heads, hidden, layers, tp, pp, n, batch, mbs, v, paper_tflops = row
    arch = gpt(heads, hidden, layers)
    a100 = hardware("a100-80gb-sxm")
    dp = n // (tp * pp)
    overlap = tp < 8 and pp == 1  # torch DDP (overlapping) for the first three rows, "local" DDP after
    fixed = {"tp": tp, "pp": pp, "dp": dp, "cp": 1, "ep": 1, "zero_stage": 0, "offload_optimizer": False,
             "micro_batch_size": mbs, "recompute": "full", "sequence_parallel": False, "virtual_stages": v,
             "pipeline_schedule": "interleaved" if v > 1 else "1f1b"}  # fmt: skip
    paper = plan(arch, a100, narayanan_spec(n, batch, overlap=overlap, fixed=fixed))
    assert paper.search.considered == 1 and len(paper.plans) == 1, paper.reason
    p = paper.plans[0]
    # the paper counts hardware FLOPs with full recompute: 96*B*s*l*h^2*(1 + s/6h + V/16lh) (§5.1)
    megatron = 96 * batch * 2048 * layers * hidden**2 * (1 + 2048 / (6 * hidden) + 51200 / (16 * layers * hidden))
    predicted = megatron / p.step_seconds / n / 1e12
    assert predicted == pytest.approx(paper_tflops, rel=TOLERANCE), name
    assert p.hfu * 312 == pytest.approx(predicted, rel=0.01)  # hfu counts the same FLOPs
    # the planner, free to choose everything for the same model, cluster and batch, does at least as well
    best = plan(arch, a100, narayanan_spec(n, batch, overlap=overlap))
    assert best.plans and best.plans[0].step_seconds <= p.step_seconds * (1 + 1e-9)
    assert best.search.considered > 100 and not best.search.cut


@pytest.mark.parametrize(
    ("model", "n_gpus", "dropout", "loss"),
    [("llama-2-13b", 64, True, CrossEntropy.FUSED), ("mixtral-8x7b", 64, False, CrossEntropy.FUSED),
     ("gpt2", 16, True, CrossEntropy.FUSED), ("llama-3-8b", 32, True, CrossEntropy.EAGER)],
)  # fmt: skip
def test_memory_arrays_equal_the_scalar_core(model: str, n_gpus: int, dropout: bool, loss: CrossEntropy) -> None:
    # the vectorised memory the planner prunes with is the memory calculator's, layout by layout
    # (experts included: ZeRO shards them over dp*cp/ep ranks; PyTorch's eager loss on the last stage)
    arch = preset(model)
    spec = PlanSpec(n_gpus=n_gpus, seq_len=1024, global_batch_size=256, dropout=dropout, cross_entropy=loss)
    axes = search_axes(arch, hardware("h100-sxm"), spec)
    grid = layout_grid(arch, spec, axes)
    mem = memory_arrays(arch, spec, grid, shard_tables(arch, spec, axes), layer_tables(arch, spec, axes))
    rng = random.Random(7)
    for i in rng.sample(range(len(grid["tp"])), 80):
        row = {k: grid[k][i].item() for k in grid}
        par = Parallelism(dp=row["dp"], tp=row["tp"], pp=row["pp"], cp=row["cp"], ep=row["ep"],
                          virtual_stages=row["virtual_stages"], sequence_parallel=row["sequence_parallel"],
                          zero_stage=row["zero_stage"], offload_optimizer=row["offload_optimizer"],
                          pipeline_schedule=SCHEDULES[row["pipeline_schedule"]])  # fmt: skip
        exact = training_memory(arch, parallelism=par, micro_batch_size=row["micro_batch_size"], seq_len=1024,
                                recompute=RECOMPUTES[row["recompute"]], flash_attention=True, dropout=dropout,
                                microbatches=row["microbatches"], kernels=replace(MEGATRON, cross_entropy=loss))  # fmt: skip
        assert mem["total"][i] == exact.total_bytes, row
        assert (mem["weights"][i], mem["gradients"][i], mem["optimizer"][i], mem["activations"][i]) == (
            exact.weights_bytes,
            exact.gradients_bytes,
            exact.optimizer_bytes,
            exact.activations_bytes,
        ), row


def test_zero_shards_experts_over_their_own_replicas() -> None:
    # Mixtral on 8 GPUs with ep = 8: each GPU holds one expert per layer, replicated nowhere else,
    # so ZeRO shards only the dense parameters (DeepSpeed-MoE §5; Megatron-Core's expert
    # data-parallel group): ZeRO-3 saves 7/8 of the dense weights and nothing of the experts'
    arch = preset("mixtral-8x7b")
    par = Parallelism(dp=8, ep=8)
    experts = expert_params_per_gpu(arch, par)
    assert experts == 32 * 3 * 4096 * 14336  # 32 layers, one expert each
    dense = params_per_gpu(arch, par) - experts
    zero0 = training_memory(arch, parallelism=par, seq_len=1024, flash_attention=True, kernels=MEGATRON)
    zero3 = training_memory(
        arch, parallelism=Parallelism(dp=8, ep=8, zero_stage=3), seq_len=1024, flash_attention=True, kernels=MEGATRON
    )
    assert zero0.weights_bytes - zero3.weights_bytes == 2 * dense - -(-2 * dense // 8)
    assert zero3.weights_bytes >= 2 * experts


def test_step_parts_sum_and_vanish_without_their_parallelism() -> None:
    arch = preset("llama-2-7b")
    h100 = hardware("h100-sxm")
    work = Workload(seq_len=4096, global_batch_size=64)
    params = params_per_gpu(arch, Parallelism())

    def at(**kw):
        base = dict(tp=1, pp=1, dp=8, cp=1, ep=1, zero_stage=1, offload_optimizer=False, micro_batch_size=1, recompute=0,
                    sequence_parallel=False, virtual_stages=1, params_per_gpu=params)  # fmt: skip
        return step_time(arch, h100, work, Layout(**(base | kw)))

    single = at()
    parts = [single.compute_seconds, single.recompute_seconds, single.tp_comm_seconds, single.cp_comm_seconds,
             single.ep_comm_seconds, single.pp_comm_seconds, single.bubble_seconds, single.dp_comm_seconds,
             single.optimizer_seconds]  # fmt: skip
    assert float(sum(parts)) == pytest.approx(float(single.step_seconds))
    assert single.tp_comm_seconds == single.pp_comm_seconds == single.bubble_seconds == single.cp_comm_seconds == 0
    assert single.recompute_seconds == 0
    # full recompute repeats the forward: about a third of forward + backward (a little less: the attention
    # core's backward is 2.5x its forward FLOPs, at the kernel's slower backward rate)
    full = at(recompute=2)
    assert 0.28 < float(full.recompute_seconds) / float(full.compute_seconds) < 1 / 3
    # the bubble is (p-1)/(v*m) of the ideal pipeline time, m = 64 / (dp * b) micro-batches
    piped = at(pp=4, dp=2, params_per_gpu=params_per_gpu(arch, Parallelism(pp=4)))
    ideal = piped.compute_seconds + piped.recompute_seconds + piped.tp_comm_seconds
    assert float(piped.bubble_seconds) == pytest.approx(float(ideal) * 3 / 32)
    interleaved = at(pp=4, dp=2, virtual_stages=2, params_per_gpu=params_per_gpu(arch, Parallelism(pp=4)))
    assert float(interleaved.bubble_seconds) == pytest.approx(float(piped.bubble_seconds) / 2)
    # tensor parallelism pays its all-reduces on NVLink; more ranks, more exposed communication
    assert 0 < float(at(tp=2, dp=4).tp_comm_seconds) < float(at(tp=8, dp=1).tp_comm_seconds)


def _llama_2_7b_dp8_reduced_after_backward(zero_stage: int) -> tuple:
    """Llama 2 7B at dp 8 on one H100 node, ZeRO ``zero_stage``, gradients reduced after the backward:
    (architecture, hardware, parameters a GPU, layout, workload, the node's collective bandwidth)."""
    arch, h100 = preset("llama-2-7b"), hardware("h100-sxm")
    params = params_per_gpu(arch, Parallelism())
    lay = Layout(tp=1, pp=1, dp=8, cp=1, ep=1, zero_stage=zero_stage, offload_optimizer=False, micro_batch_size=1,
                 recompute=0, sequence_parallel=False, virtual_stages=1, params_per_gpu=params)  # fmt: skip
    work = Workload(seq_len=4096, global_batch_size=64, overlap_grad_reduce=False)
    return arch, h100, params, lay, work, h100.intra_node_bandwidth_bytes_per_s * h100.kernels.intra_node_collective


def test_a_dense_model_pays_no_expert_gradient_collective() -> None:
    # a dense model has no routed experts to reduce: its gradients are one ring all-reduce over the
    # data-parallel ranks, 2(n-1)/n * S / B + 2 log2(n) hops (no second, empty collective's latency).
    # Llama 2 7B, ZeRO-0, dp 8 on one H100 node, reduced after the backward: all of it exposed
    arch, h100, params, lay, work, bw = _llama_2_7b_dp8_reduced_after_backward(zero_stage=0)
    expected = 2 * 7 / 8 * 2 * params / bw + 2 * 3 * 5e-6
    assert float(step_time(arch, h100, work, lay).dp_comm_seconds) == pytest.approx(expected, rel=1e-12)


def test_gradients_reduced_after_the_backward_are_counted_once() -> None:
    # overlap_grad_reduce False (Megatron-LM's "local" DDP): ZeRO-1 reduce-scatters every gradient after
    # the backward, all of it exposed; the last bucket is part of it, not an edge on top. Left: the
    # weights' all-gather beside the forward and its first bucket before it. Llama 2 7B, dp 8 on one
    # H100 node: ring reduce-scatter and all-gather (n-1)/n * S / B + log2(n) hops of 5 us
    from service.core.steptime import OVERLAP_INTERFERENCE, layer_times, layout_sizes

    arch, h100, params, lay, work, bw = _llama_2_7b_dp8_reduced_after_backward(zero_stage=1)

    def ring(size: float) -> float:
        return 7 / 8 * size / bw + 3 * 5e-6

    forward = 32 * float(layer_times(arch, h100, work, layout_sizes(arch, work, lay)).forward)
    gather = ring(2 * params)
    beside_forward = max(0.0, gather - forward) + OVERLAP_INTERFERENCE * min(gather, forward)
    bucket = 32000 * 4096  # the embedding, larger than Megatron-Core's 40M-parameter bucket
    expected = ring(2 * params) + beside_forward + ring(2 * bucket)
    assert float(step_time(arch, h100, work, lay).dp_comm_seconds) == pytest.approx(expected, rel=1e-12)


def test_ring_collectives() -> None:
    # formula sheet, "Parallel time": 2(n-1)/n * S / B for an all-reduce, half for RS or AG
    assert float(ring_all_reduce_seconds(8e9, 8, 100e9, 0.0)) == pytest.approx(2 * 7 / 8 * 8e9 / 100e9)
    assert float(ring_gather_seconds(8e9, 8, 100e9, 0.0)) == pytest.approx(7 / 8 * 8e9 / 100e9)
    assert float(ring_all_reduce_seconds(8e9, 1, 100e9, 1e-5)) == 0.0
    assert float(ring_all_reduce_seconds(1.0, 1024, 100e9, 1e-5)) == pytest.approx(20 * 1e-5, rel=0.01)  # latency-bound


def test_small_hidden_per_tensor_rank_runs_less_efficiently() -> None:
    # the same model on the same 8 GPUs: more tensor parallelism, thinner matmuls, lower MFU
    arch = preset("llama-2-7b")
    spec = lambda tp: PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=64,  # noqa: E731
                               fixed={"tp": tp, "pp": 1, "zero_stage": 0, "recompute": "none", "micro_batch_size": 1,
                                      "sequence_parallel": tp > 1, "cp": 1, "virtual_stages": 1, "offload_optimizer": False})  # fmt: skip
    mfu = [plan(arch, hardware("h100-sxm", memory_bytes=10**12), spec(tp)).plans[0].mfu for tp in (1, 2, 4, 8)]
    assert mfu == sorted(mfu, reverse=True) and mfu[0] > mfu[-1] * 1.1


def test_nothing_fits_is_an_answer_with_the_reason() -> None:
    result = plan(preset("llama-2-70b"), hardware("h100-sxm"), PlanSpec(n_gpus=1, seq_len=4096, global_batch_size=8))
    assert result.plans == [] and result.search.feasible == 0 and result.search.considered > 0
    assert "GiB per GPU" in result.reason and "weights" in result.reason


def test_every_dimension_fixed_is_one_prediction() -> None:
    arch = preset("llama-2-7b")
    fixed = {"tp": 2, "pp": 2, "dp": 2, "cp": 2, "ep": 1, "zero_stage": 2, "offload_optimizer": False, "micro_batch_size": 2,
             "recompute": "selective", "sequence_parallel": True, "virtual_stages": 2, "pipeline_schedule": "interleaved"}  # fmt: skip
    result = plan(arch, hardware("h100-sxm"), PlanSpec(n_gpus=16, seq_len=4096, global_batch_size=64, fixed=fixed))
    assert result.search.considered == 1 and len(result.plans) == 1
    p = result.plans[0]
    assert {k: getattr(p, k) if k != "recompute" else p.recompute.value for k in DIMENSIONS} == fixed
    assert p.gradient_accumulation_steps == 64 // (2 * 2)
    exact = training_memory(arch, parallelism=Parallelism(dp=2, tp=2, pp=2, cp=2, virtual_stages=2, sequence_parallel=True,
                                                          zero_stage=2), micro_batch_size=2, seq_len=4096,
                            recompute=Recompute.SELECTIVE, flash_attention=True, microbatches=16, kernels=MEGATRON)  # fmt: skip
    assert p.memory.total_bytes == exact.total_bytes
    flops = training_flops(
        arch, 1, include_attention=True, attention_formula=AttentionFormula.MEGATRON, seq_len=4096, causal=True
    )
    assert p.mfu == pytest.approx(flops.model_flops_per_token * p.tokens_per_second / 16 / 989.5e12)


def test_plans_are_ranked_and_fit() -> None:
    h100 = hardware("h100-sxm")
    result = plan(preset("llama-3-70b"), h100, PlanSpec(n_gpus=256, seq_len=8192, global_batch_size=512, top_k=10))
    steps = [p.step_seconds for p in result.plans]
    assert len(steps) == 10 and steps == sorted(steps)
    assert all(p.memory.total_bytes <= h100.memory_bytes * 0.95 for p in result.plans)
    assert all(p.tp * p.pp * p.dp * p.cp == 256 and p.tp <= 8 for p in result.plans)
    assert result.search.considered >= result.search.feasible >= 10 and not result.search.cut
    assert 0.3 < result.plans[0].mfu < 0.7 and result.plans[0].hfu >= result.plans[0].mfu


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (dict(n_gpus=12, seq_len=4096, global_batch_size=64), "n_gpus"),
        (dict(n_gpus=16, seq_len=4096, global_batch_size=64, fixed={"tp": 3}), "fixed.tp"),
        (dict(n_gpus=16, seq_len=4096, global_batch_size=64, fixed={"pp": 64}), "fixed.pp"),
        (dict(n_gpus=16, seq_len=4096, global_batch_size=64, fixed={"ep": 2}), "fixed.ep"),
        (dict(n_gpus=16, seq_len=4096, global_batch_size=7, fixed={"dp": 16}), "global_batch_size"),
        (dict(n_gpus=16, seq_len=4096, global_batch_size=64, fixed={"cp": 2}, flash_attention=False), "fixed.cp"),
    ],
)
def test_impossible_requests_name_the_field(spec: dict, field: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        plan(preset("llama-2-7b"), hardware("h100-sxm"), PlanSpec(**spec))
    assert err.value.field == field


def test_uneven_pipeline_stages_are_searched() -> None:
    # 126 layers on 16 stages (Llama 3 405B): the busiest stage holds ceil(126/16) = 8 layers
    arch = preset("llama-3.1-405b")
    result = plan(
        arch, hardware("h100-sxm"), PlanSpec(n_gpus=1024, seq_len=8192, global_batch_size=512, fixed={"pp": 16, "tp": 8})
    )
    assert result.plans and all(p.pp == 16 for p in result.plans)
    assert result.plans[0].memory.activations is not None and result.plans[0].memory.activations.layers_per_stage == 8


def test_mixture_of_experts_searches_expert_parallelism() -> None:
    result = plan(
        preset("mixtral-8x7b"), hardware("h100-sxm"), PlanSpec(n_gpus=64, seq_len=4096, global_batch_size=256, top_k=20)
    )
    assert result.plans and {p.ep for p in result.plans} - {1}
    assert any(p.step["ep_comm_seconds"] > 0 for p in result.plans if p.ep > 1)


def test_a_search_past_its_time_bound_says_cut() -> None:
    spec = PlanSpec(n_gpus=1024, seq_len=4096, global_batch_size=1024, time_limit_seconds=0.0)
    result = plan(preset("llama-2-70b"), hardware("h100-sxm"), spec)
    assert (
        result.search.cut and "pp in [1]" in result.search.searched and result.search.considered > 0
    )  # one size, then the bound
    full = plan(preset("llama-2-70b"), hardware("h100-sxm"), PlanSpec(n_gpus=1024, seq_len=4096, global_batch_size=1024))
    assert result.search.considered < full.search.considered and not full.search.cut


def test_deadline_finds_the_smallest_cluster_that_meets_it() -> None:
    arch, h100 = preset("llama-2-7b"), hardware("h100-sxm")
    spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=1024)
    found = plan_for_deadline(arch, h100, spec, tokens=2e12, deadline_hours=30 * 24, effective_time_fraction=0.9)
    assert found.n_gpus is not None and found.result is not None
    hours = dict(found.tried)
    meeting = {n: h for n, h in hours.items() if h is not None and h <= 30 * 24}
    assert found.n_gpus in meeting and min(meeting, key=lambda n: n * meeting[n]) == found.n_gpus  # least GPU-hours
    assert all(h is None or h > 30 * 24 for n, h in hours.items() if n < min(meeting))  # smaller clusters are too slow
    assert any(n < min(meeting) for n in hours)
    assert gpu_counts(8, 64) == [1, 2, 4, 8, 16, 24, 32, 48, 64]
    # the size chosen carries the plans a search of that size alone returns
    alone = plan(arch, h100, PlanSpec(n_gpus=found.n_gpus, seq_len=4096, global_batch_size=1024))
    assert found.result.plans == alone.plans and found.result.search.considered == alone.search.considered


def test_a_step_ceiling_skips_only_plans_slower_than_it() -> None:
    arch, a100 = preset("llama-3-8b"), hardware("a100-80gb-sxm")
    spec = PlanSpec(n_gpus=256, seq_len=8192, global_batch_size=512)
    full = plan(arch, a100, spec)
    steps = [p.step_seconds for p in full.plans]
    for ceiling in (steps[0] * 0.999, steps[0], steps[4], steps[-1] * 1.001):
        bounded = plan(arch, a100, spec, step_ceiling_seconds=ceiling)
        within = [p for p in full.plans if p.step_seconds <= ceiling]
        assert bounded.plans[: len(within)] == within  # every plan within the ceiling, where it was
        assert (bounded.search.considered, bounded.search.feasible) == (full.search.considered, full.search.feasible)


def test_grid_respects_every_rule() -> None:
    arch = preset("llama-3-8b")
    spec = PlanSpec(n_gpus=64, seq_len=8192, global_batch_size=128)
    g = layout_grid(arch, spec, search_axes(arch, hardware("h100-sxm"), spec))
    t, p, d, c, b, v, z = (g[k] for k in ("tp", "pp", "dp", "cp", "micro_batch_size", "virtual_stages", "zero_stage"))
    assert np.all(t * p * d * c == 64) and np.all(arch.n_heads % t == 0) and np.all(t <= 8)
    assert np.all(128 % (d * b) == 0)
    assert np.all((v == 1) | ((p * v <= arch.n_layers) & (g["microbatches"] % p == 0)))
    assert np.all(~g["sequence_parallel"] | (t > 1)) and np.all(~g["offload_optimizer"] | (z >= 1))


def test_mfu_stays_below_one_at_long_context() -> None:
    # MFU counts the attention the kernel runs: causal FlashAttention skips the masked half
    arch = make_architecture(n_layers=8, d_model=1024, n_heads=8, d_ff=4096, vocab_size=32000, max_seq_len=1 << 20)
    for gpu in ("gaudi2", "a100-80gb-sxm", "h100-sxm"):
        result = plan(arch, hardware(gpu), PlanSpec(n_gpus=8, seq_len=1 << 18, global_batch_size=8))
        assert result.plans and all(0 < p.mfu <= p.hfu < 1 for p in result.plans), gpu


@pytest.mark.parametrize(
    ("fixed", "field"),
    [
        ({"tp": 1, "sequence_parallel": True}, "fixed.sequence_parallel"),
        ({"zero_stage": 0, "offload_optimizer": True}, "fixed.offload_optimizer"),
        ({"pp": 1, "virtual_stages": 2}, "fixed.virtual_stages"),
        ({"dp": 1, "cp": 1, "zero_stage": 2}, "fixed.zero_stage"),
    ],
)
def test_incompatible_fixed_dimensions_name_their_field(fixed: dict, field: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        plan(preset("llama-2-7b"), hardware("h100-sxm"), PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=64, fixed=fixed))
    assert err.value.field == field


def test_deadline_search_skips_sizes_the_fixed_dimensions_cannot_tile() -> None:
    arch, h100 = preset("llama-2-70b"), hardware("h100-sxm")
    spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=1024, fixed={"tp": 8})
    found = plan_for_deadline(arch, h100, spec, tokens=2e12, deadline_hours=60 * 24, effective_time_fraction=0.9,
                              batch_for=lambda n: max(1024, n // 4))  # fmt: skip
    assert found.n_gpus is not None and found.n_gpus >= 64 and all(p.tp == 8 for p in found.result.plans)
    assert dict(found.tried)[1] is None and found.considered > found.feasible > 0


def test_the_time_bound_holds_for_a_huge_space() -> None:
    # a mixture with 5,040 experts (60 expert-parallel sizes) on 5,040 nodes: thousands of chunks
    arch = make_architecture(n_layers=2520, d_model=64, n_heads=8, d_ff=16, vocab_size=100, n_experts=5040, experts_per_token=1)
    spec = PlanSpec(n_gpus=8 * 5040, seq_len=64, global_batch_size=8 * 5040 * 4, time_limit_seconds=0.5)
    started = time.perf_counter()
    result = plan(arch, hardware("h100-sxm"), spec)
    assert time.perf_counter() - started < 5 and result.search.cut and result.search.considered > 0


@pytest.mark.parametrize(("model", "gpu", "precision"), [("llama-3-8b", "h100-sxm", Precision.FP8), ("llama-2-7b", "a100-80gb-sxm",
                                                         Precision.MIXED_BF16), ("llama-3-8b", "l4", Precision.MIXED_BF16)])  # fmt: skip
def test_the_deadline_floor_at_the_best_rate_is_never_above_a_size_that_meets(model: str, gpu: str, precision: Precision) -> None:
    # the floor divides 6P tokens by the best rate any kernel of the step-time model reaches; a size that meets the
    # deadline is never below it, and it is above the floor at the dense peak (fewer sizes searched for nothing)
    from service.core.procure import best_rate_flops_per_s, deadline_floor

    arch, hw = preset(model), hardware(gpu)
    spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=1024, precision=precision)
    tokens, days = 1e12, 30
    floor = deadline_floor(arch, hw, tokens=tokens, deadline_days=days, precision=precision, effective_time_fraction=0.9,
                           adapters=False, seq_len=4096)  # fmt: skip
    found = plan_for_deadline(arch, hw, spec, tokens=tokens, deadline_hours=days * 24, effective_time_fraction=0.9)
    meeting = [n for n, hours in found.tried if hours is not None and hours <= days * 24]
    assert meeting and floor <= min(meeting)
    assert found.result is not None and found.result.plans[0].mfu * hw.peak_flops_per_s <= best_rate_flops_per_s(
        hw, arch, 4096, precision
    )
    peak = max(hw.peak_flops_per_s, hw.fp8_peak_flops_per_s or 0) if precision is Precision.FP8 else hw.peak_flops_per_s
    assert floor > 6 * count_params(arch).total * tokens / (days * 86_400 * 0.9 * peak)
