"""Data-parallel groups of different GPU types (service.core.mixed_groups): the sanity ladder (two
pools of one GPU are one pool of their sum; a much slower pool takes few micro-batches), the
batch split is the best of every split, a group's step is the single-type model's, and its memory
is the memory calculator's on its own GPU."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from service.core.kernels import MEGATRON
from service.core.memory import Parallelism, Precision, ZeroSharding, optimizer_shard_bytes, sharded_states, training_memory
from service.core.mixed_groups import (
    _group_seconds,
    _rows,
    busiest_params,
    cross_group_seconds,
    own_split_rows,
    plan_groups,
    plan_over_pools,
    ring_hardware,
    split_batch,
)
from service.core.mixed_stages import MemoryTables, layout
from service.core.parallelism import stage_end_params
from service.core.plan import PlanSpec, plan, workload_for
from service.core.plan_mixed import Pool, plan_mixed
from service.core.steptime import RECOMPUTE_CODES, step_time
from tests.core.helpers import hardware, preset

SAME_SPACE = {"pipeline_schedule": "1f1b", "virtual_stages": 1, "cp": 1, "offload_optimizer": False, "sequence_parallel": True}


def _pool(gpu: str, n: int) -> Pool:
    return Pool(gpu=gpu, hardware=hardware(gpu), n_gpus=n)


def _shares(plan_) -> dict[int, int]:
    """Sequences a step of each group: its replicas x micro-batch x micro-batches."""
    first = {st.group: st for st in reversed(plan_.stages)}
    return {g: st.dp * st.micro_batch_size * st.microbatches for g, st in first.items()}


@pytest.mark.parametrize("precision", [Precision.MIXED_BF16, Precision.FP8])
def test_two_pools_of_one_gpu_as_groups_step_as_one_pool_of_their_sum(precision: Precision) -> None:
    """The rung of the ladder: two pools of 64 H100s as two data-parallel groups are the
    single-type planner's 128 H100s, layout for layout (the same ring over every replica, half
    the batch each) and at the best layout of the same space; in BF16 and in FP8 (the matmuls at
    the FP8 peak, their casts, the FP8 weight copies and kept inputs in memory)."""
    arch, h100 = preset("llama-3-70b"), hardware("h100-sxm")
    pools = [_pool("h100-sxm", 64)] * 2
    fixed = {"tp": 8, "zero_stage": 1, "micro_batch_size": 1, "recompute": "none"}
    spec = PlanSpec(n_gpus=128, seq_len=8192, global_batch_size=512, top_k=3, fixed=fixed, precision=precision)
    found = plan_groups(arch, pools, spec)
    assert len(found.plans) == 3
    for p in found.plans:
        whole = plan(arch, h100, dataclasses.replace(spec, fixed=fixed | SAME_SPACE | {"pp": p.pp}, top_k=1)).plans[0]
        assert _shares(p) == {0: 256, 1: 256} and p.dp == whole.dp
        assert p.step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)
        assert p.step == pytest.approx(whole.step, rel=1e-12)
        assert p.mfu == pytest.approx(whole.mfu, rel=1e-12)
    free = PlanSpec(n_gpus=128, seq_len=8192, global_batch_size=512, top_k=1, precision=precision)
    best = plan_groups(arch, pools, free).plans[0]
    whole = plan(arch, h100, dataclasses.replace(free, fixed=SAME_SPACE)).plans[0]
    assert best.step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)


def test_a_tied_lm_head_is_the_embedding_on_a_groups_one_stage() -> None:
    """Qwen2.5-0.5B ties its LM head to the embedding (151,936 x 896 = 136M of its 494M
    parameters): a group of one pipeline stage holds that matrix once, as the single-type planner
    and the memory calculator count ``pp = 1``, so two pools of 16 H100s step as one pool of 32
    (the reduction and optimizer over the same parameters) and each group holds what
    training_memory says."""
    arch, h100 = preset("qwen2.5-0.5b"), hardware("h100-sxm")
    assert arch.tied_embeddings
    fixed = {"tp": 1, "zero_stage": 1, "micro_batch_size": 4, "recompute": "none"}
    spec = PlanSpec(n_gpus=32, seq_len=4096, global_batch_size=128, top_k=3, fixed=fixed)
    found = plan_groups(arch, [_pool("h100-sxm", 16)] * 2, spec)
    one_stage = [p for p in found.plans if p.pp == 1]
    assert one_stage
    for p in one_stage:
        whole = plan(arch, h100, dataclasses.replace(spec, fixed=fixed | SAME_SPACE | {"pp": 1, "sequence_parallel": False},
                                                     top_k=1)).plans[0]  # fmt: skip
        assert whole.dp == p.dp and p.step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)
        assert p.step == pytest.approx(whole.step, rel=1e-12)
        for st in p.stages:
            expected = training_memory(arch, parallelism=Parallelism(tp=1, pp=1, dp=p.dp, zero_stage=1),
                                       micro_batch_size=4, seq_len=4096, recompute=st.recompute, flash_attention=True,
                                       microbatches=st.microbatches, kernels=MEGATRON)  # fmt: skip
            assert st.memory.total == pytest.approx(expected.total_bytes, rel=1e-6)


def test_a_fixed_micro_batch_of_any_size_is_searched_over_pools() -> None:
    """The single-type planner takes a fixed micro-batch of 3 (beside the powers of two it
    searches), and so do plans over pools: two pools of 64 H100s as groups step as the 128 do at
    micro-batch 3, and a pipeline over H100 and A100 pools runs it, every stage within its GPU."""
    arch, h100 = preset("llama-3-8b"), hardware("h100-sxm")
    fixed = {"tp": 2, "micro_batch_size": 3}
    spec = PlanSpec(n_gpus=128, seq_len=4096, global_batch_size=384, top_k=2, fixed=fixed)
    found = plan_groups(arch, [_pool("h100-sxm", 64)] * 2, spec)
    assert found.plans and all(st.micro_batch_size == 3 for p in found.plans for st in p.stages)
    whole = plan(arch, h100, dataclasses.replace(spec, fixed=fixed | SAME_SPACE, top_k=1)).plans[0]
    assert found.plans[0].step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)
    pools = [_pool("h100-sxm", 64), _pool("a100-80gb-sxm", 64)]
    pipelines = plan_mixed(arch, pools, dataclasses.replace(spec, fixed={"micro_batch_size": 3}))
    assert pipelines.plans and all(st.micro_batch_size == 3 for p in pipelines.plans for st in p.stages)
    for st in pipelines.plans[0].stages:
        assert st.memory.total <= pools[st.pool].hardware.memory_bytes * spec.usable_memory_fraction


def test_a_fixed_selective_op_recompute_is_planned_over_pools() -> None:
    """``selective_op`` (torchtitan's op-level checkpointing) is searched only where a request fixes
    it; plans over pools take it too (its activations, not an index past the searched three): two
    pools of 64 H100s as groups step and hold what the 128 do, and a pipeline over H100 and A100
    pools runs it within every stage's memory."""
    arch, h100 = preset("llama-3-8b"), hardware("h100-sxm")
    fixed = {"tp": 2, "recompute": "selective_op", "micro_batch_size": 2, "zero_stage": 1}
    spec = PlanSpec(n_gpus=128, seq_len=4096, global_batch_size=512, top_k=2, fixed=fixed)
    found = plan_groups(arch, [_pool("h100-sxm", 64)] * 2, spec)
    assert found.plans and all(st.recompute == "selective_op" for p in found.plans for st in p.stages)
    best = found.plans[0]
    whole = plan(arch, h100, dataclasses.replace(spec, fixed=fixed | SAME_SPACE | {"pp": best.pp}, top_k=1)).plans[0]
    assert best.step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)
    assert max(st.memory.total for st in best.stages) == pytest.approx(whole.memory.total_bytes, rel=1e-6)
    pools = [_pool("h100-sxm", 64), _pool("a100-80gb-sxm", 64)]
    pipelines = plan_mixed(arch, pools, dataclasses.replace(spec, fixed={"recompute": "selective_op"}))
    assert pipelines.plans and all(st.recompute == "selective_op" for st in pipelines.plans[0].stages)
    for st in pipelines.plans[0].stages:
        assert st.memory.total <= pools[st.pool].hardware.memory_bytes * spec.usable_memory_fraction


def test_a_groups_step_is_affine_in_its_micro_batches() -> None:
    """The search prices each group layout at two micro-batch counts; every other count's step (the
    single-type step with the ring's reduction) lies on that line."""
    arch = preset("llama-3-8b")
    pools = [_pool("h100-sxm", 64), _pool("a100-40gb-sxm", 64)]
    spec = PlanSpec(n_gpus=128, seq_len=4096, global_batch_size=512)
    work, tables = workload_for(spec), MemoryTables(arch, spec, [1, 2, 4, 8])
    rings = ring_hardware(pools, (0, 1), None)
    rows = {name: np.asarray(v) for name, v in
            {"tp": [2, 4, 1], "pp": [2, 1, 4], "dp": [16, 16, 16], "D": [32, 32, 32], "zero": [0, 2, 3], "b": [1, 4, 2],
             "rc": [0, 1, 2]}.items()}  # fmt: skip
    priced = _rows(arch, pools[1], rows, rings[1], spec, work, tables)
    for i in range(3):
        cfg = {name: int(rows[name][i]) for name in rows}
        params = float(busiest_params(arch, tables, cfg["tp"], cfg["pp"]))
        for m in (1, 3, 7, 20):
            seconds, parts = _group_seconds(arch, pools[1], rings[1], work, cfg | {"m": m}, params)
            assert seconds == pytest.approx(priced["alpha"][i] + priced["beta"][i] * m, rel=1e-9)
            assert seconds == pytest.approx(sum(parts.values()), rel=1e-12)


def _brute(best: list[np.ndarray], batch: int) -> float:
    ranges = [range(1, batch) for _ in best[:-1]]
    steps = [max(*(f[s] for f, s in zip(best, shares, strict=False)), best[-1][batch - sum(shares)])
             for shares in itertools.product(*ranges) if sum(shares) < batch]  # fmt: skip
    return min(steps, default=np.inf)


@pytest.mark.parametrize("pools", [2, 3, 4])
def test_the_split_of_the_batch_is_the_best_of_every_split(pools: int) -> None:
    """Steps per share drawn at random (each group reaches some shares only): the split found is
    the least slowest-group step over every split, and its shares sum to the batch."""
    rng = np.random.default_rng(7 + pools)
    batch = 24 if pools < 4 else 14
    for _ in range(20):
        best = []
        for _ in range(pools):
            f = np.where(rng.random(batch + 1) < 0.6, rng.random(batch + 1) * 10, np.inf)
            f[0] = np.inf
            best.append(f)
        split = split_batch(best, batch)
        expected = _brute(best, batch)
        if not np.isfinite(expected):
            assert split is None
            continue
        assert split is not None
        step, shares = split
        assert step == pytest.approx(expected) and sum(shares) == batch
        assert max(f[s] for f, s in zip(best, shares, strict=True)) == pytest.approx(step)


def test_each_group_holds_what_the_memory_calculator_says_on_its_own_gpu() -> None:
    """An H100 group beside an A100 40 GB group: each group's busiest stage is training_memory's
    answer for its layout (ZeRO over every replica of both groups, its own micro-batches in
    flight), within its own GPU's usable memory."""
    arch = preset("llama-3-8b")
    pools = [_pool("h100-sxm", 64), _pool("a100-40gb-sxm", 64)]
    spec = PlanSpec(n_gpus=128, seq_len=4096, global_batch_size=512, top_k=3)
    found = plan_groups(arch, pools, spec)
    assert found.plans and not found.search.cut and "all 1 subsets" in found.search.searched
    for p in found.plans:
        for g in (0, 1):
            stages = [st for st in p.stages if st.group == g]
            st = stages[0]
            assert len(stages) == p.pp and sum(s.layers for s in stages) == arch.n_layers
            expected = training_memory(arch, parallelism=Parallelism(tp=st.tp, pp=p.pp, dp=p.dp, zero_stage=p.zero_stage,
                                                                     sequence_parallel=st.tp > 1),
                                       micro_batch_size=st.micro_batch_size, seq_len=4096, recompute=st.recompute,
                                       flash_attention=True, microbatches=st.microbatches, kernels=MEGATRON)  # fmt: skip
            assert max(s.memory.total for s in stages) == pytest.approx(expected.total_bytes, rel=1e-6)
            assert max(s.memory.total for s in stages) <= hardware(st.gpu).memory_bytes * spec.usable_memory_fraction
        assert sum(_shares(p).values()) == 512
        assert p.dp == sum(st.dp for st in p.stages[:: p.pp])


def test_a_much_slower_pool_is_given_few_micro_batches() -> None:
    """8 L4s (about a sixth of an H100's dense peak, and a slower network) beside 64 H100s: the
    groups finish together, so an L4 replica takes a small share of the batch; the split leaves no
    group more than one micro-batch's time behind the slowest."""
    arch = preset("llama-3-8b")
    pools = [_pool("h100-sxm", 64), _pool("l4", 8)]
    spec = PlanSpec(n_gpus=72, seq_len=4096, global_batch_size=512, top_k=3)
    found = plan_groups(arch, pools, spec)
    assert found.plans
    for p in found.plans:
        shares = _shares(p)
        assert sum(shares.values()) == 512
        fast, slow = (shares[st.group] / st.n_gpus for st in (p.stages[0], p.stages[p.pp]))
        assert slow < fast / 4
        for g in (0, 1):  # what each group's stages wait for is the slowest group
            st = p.stages[g * p.pp]
            assert sum(st.step.values()) == pytest.approx(p.step_seconds, rel=1e-12)


def test_three_pools_split_the_batch_over_every_subset() -> None:
    arch = preset("llama-3-8b")
    pools = [_pool("h100-sxm", 32), _pool("a100-80gb-sxm", 32), _pool("a100-40gb-sxm", 32)]
    found = plan_groups(arch, pools, PlanSpec(n_gpus=96, seq_len=4096, global_batch_size=256, top_k=4))
    assert "all 4 subsets" in found.search.searched and found.plans
    for p in found.plans:
        assert sum(_shares(p).values()) == 256
        assert p.n_gpus == sum(pools[k].n_gpus for k in {st.pool for st in p.stages})


def _groups(plan_) -> dict[int, list]:
    out: dict[int, list] = {}
    for st in plan_.stages:
        out.setdefault(st.group, []).append(st)
    return out


def test_the_all_reduce_across_groups_is_a_ring_over_the_groups_paced_by_the_busiest_link() -> None:
    """Llama-3-8B (P = 8,030,261,248 parameters, bf16 gradients: 2 bytes each) on 16 H100s (50 GB/s
    per GPU, NCCL share 0.93), 32 A100 40 GB (25 GB/s, share 0.8) and 64 A100 80 GB, 12.5 GB/s
    given between the pools: after its group's reduce-scatter each H100 holds P * 2 / 16 =
    1,003,782,656 bytes and sends 2 (G-1)/G of it over min(50, 12.5) GB/s * 0.93 = 11.625 GB/s; each
    A100 40 GB half that over 12.5 * 0.8 = 10 GB/s: the H100s set the pace, plus 2 log2(G) hops of 10 us."""
    arch = preset("llama-3-8b")
    pools = [_pool("h100-sxm", 16), _pool("a100-40gb-sxm", 32), _pool("a100-80gb-sxm", 64)]
    work = workload_for(PlanSpec(n_gpus=112, seq_len=4096, global_batch_size=512))
    shard = 8_030_261_248 * 2 / 16
    assert shard == 1_003_782_656
    two = cross_group_seconds(arch, pools, (0, 1), work, 12.5e9)
    assert two == pytest.approx(2 * 1 / 2 * shard / 11.625e9 + 2 * 1 * 10e-6, rel=1e-12)  # 0.0863 s
    assert 2 * 1 / 2 * (shard / 2) / 10e9 < two  # the A100 40 GB GPUs' half share at 10 GB/s: 0.0502 s
    three = cross_group_seconds(arch, pools, (0, 1, 2), work, 12.5e9)
    assert three == pytest.approx(2 * 2 / 3 * shard / 11.625e9 + 2 * np.log2(3) * 10e-6, rel=1e-12)
    # no link given: each group at its own scale-out link; the 32 A100s 40 GB hold twice the 64 A100s 80 GB's
    # share at the same 25 GB/s x 0.8
    assert cross_group_seconds(arch, pools, (1, 2), work, None) == pytest.approx(
        8_030_261_248 * 2 / 32 / (25e9 * 0.8) + 20e-6, rel=1e-12
    )


def test_a_group_of_its_own_split_steps_as_it_would_alone_plus_the_all_reduce_across() -> None:
    """A group layout priced for its own split lies on the line its two counts give, and each
    count's step is the single-type step of its replicas alone (its own reduction over its own
    replicas on its own network) plus the term across groups in its data-parallel part."""
    arch = preset("llama-3-8b")
    pools = [_pool("h100-sxm", 64), _pool("a100-40gb-sxm", 64)]
    spec = PlanSpec(n_gpus=128, seq_len=4096, global_batch_size=512)
    work, tables = workload_for(spec), MemoryTables(arch, spec, [1, 2, 4, 8])
    own = own_split_rows(arch, pools[1], spec, work, tables)
    cross = cross_group_seconds(arch, pools, (0, 1), work, None)
    picked = np.flatnonzero(own["mmax"] >= 1)[::97][:6].tolist()  # tp 1-4, pp 1-32, ZeRO 0-3, b 1-8, each recompute
    assert len(picked) == 6 and len(own["tp"]) > 1000
    for i in picked:
        cfg = {name: int(own[name][i]) for name in ("tp", "pp", "dp", "D", "zero", "b", "rc")}
        assert cfg["D"] == cfg["dp"] == 64 // (cfg["tp"] * cfg["pp"])
        params = float(busiest_params(arch, tables, cfg["tp"], cfg["pp"]))
        lay = layout(cfg["tp"], cfg["pp"], cfg["dp"], cfg["b"], cfg["rc"], cfg["zero"], params)
        for m in (1, 5):
            seconds, parts = _group_seconds(arch, pools[1], pools[1].hardware, work, cfg | {"m": m}, params, cross)
            alone = step_time(arch, pools[1].hardware, dataclasses.replace(work, global_batch_size=cfg["dp"] * cfg["b"] * m), lay)
            assert seconds == pytest.approx(float(alone.step_seconds) + cross, rel=1e-12)
            assert parts["dp_comm_seconds"] == pytest.approx(float(alone.dp_comm_seconds) + cross, rel=1e-12)
            assert seconds == pytest.approx(own["alpha"][i] + cross + own["beta"][i] * m, rel=1e-9)


def test_groups_of_their_own_splits_beat_one_shared_split_on_h100_and_a100_40gb() -> None:
    """Llama-3-70B on 64 H100 (80 GB) and 256 A100 40 GB: the best data-parallel groups give the two
    pools different tensor x pipeline splits, and step faster than the best groups sharing one split.
    Each group holds what the memory calculator says for its own layout, ZeRO over its own replicas,
    within its own GPU; each group's step is its single-type step alone plus the all-reduce across."""
    arch = preset("llama-3-70b")
    pools = [_pool("h100-sxm", 64), _pool("a100-40gb-sxm", 256)]
    spec = PlanSpec(n_gpus=320, seq_len=8192, global_batch_size=512, top_k=6)
    found = plan_groups(arch, pools, spec)
    assert "each group its own tp x pp" in found.search.searched
    own = [p for p in found.plans if p.cross_group_seconds is not None]
    shared = [p for p in found.plans if p.cross_group_seconds is None]
    assert own and shared
    best, best_shared = own[0], shared[0]
    assert found.plans[0] is best and best.step_seconds < best_shared.step_seconds
    work = workload_for(spec)
    assert best.cross_group_seconds == pytest.approx(cross_group_seconds(arch, pools, (0, 1), work, None), rel=1e-12)
    groups = _groups(best)
    splits = {(stages[0].gpu, stages[0].tp, len(stages), stages[0].zero_stage) for stages in groups.values()}
    assert len(splits) == 2 and len({(tp, pp) for _, tp, pp, _ in splits}) == 2  # different tp x pp per group
    assert best.dp == sum(stages[0].dp for stages in groups.values())
    assert best.pp == len(groups[1]) and groups[1][0].gpu == "a100-40gb-sxm"  # the largest group's stages
    assert sum(_shares(best).values()) == 512
    for stages in groups.values():
        st = stages[0]
        assert len({s.tp for s in stages}) == 1 and st.dp * st.tp * len(stages) == next(
            p.n_gpus for p in pools if p.gpu == st.gpu
        )
        assert sum(s.layers for s in stages) == arch.n_layers
        expected = training_memory(arch, parallelism=Parallelism(tp=st.tp, pp=len(stages), dp=st.dp, zero_stage=st.zero_stage,
                                                                 sequence_parallel=st.tp > 1),
                                   micro_batch_size=st.micro_batch_size, seq_len=8192, recompute=st.recompute,
                                   flash_attention=True, microbatches=st.microbatches, kernels=MEGATRON)  # fmt: skip
        assert max(s.memory.total for s in stages) == pytest.approx(expected.total_bytes, rel=1e-6)
        assert max(s.memory.total for s in stages) <= hardware(st.gpu).memory_bytes * spec.usable_memory_fraction
        hw = hardware(st.gpu)
        tables = MemoryTables(arch, spec, [st.tp])
        params = float(busiest_params(arch, tables, st.tp, len(stages)))
        lay = layout(st.tp, len(stages), st.dp, st.micro_batch_size, RECOMPUTE_CODES[st.recompute.value], st.zero_stage, params)
        alone = step_time(
            arch, hw, dataclasses.replace(work, global_batch_size=st.dp * st.micro_batch_size * st.microbatches), lay
        )
        assert st.step["dp_comm_seconds"] == pytest.approx(float(alone.dp_comm_seconds) + best.cross_group_seconds, rel=1e-12)
        waits = best.step_seconds - float(alone.step_seconds) - best.cross_group_seconds
        assert st.step["bubble_seconds"] == pytest.approx(float(alone.bubble_seconds) + waits, rel=1e-9, abs=1e-9)
        assert sum(st.step.values()) == pytest.approx(best.step_seconds, rel=1e-12)


def test_h100_and_h200_plan_in_fp8_faster_than_in_bf16_holding_the_fp8_memory() -> None:
    """Llama-3-70B on 64 H100 + 64 H200 (both 989 TFLOP/s dense BF16, 1,979 dense FP8): in FP8 the
    blocks' matmuls run at the FP8 peak on both pools, so the best plan over the pools steps faster
    than in BF16, though less than twice as fast (the attention core, norms and casts stay at their
    BF16 or HBM rates). Each plan's memory is the single-type memory in FP8: a data-parallel group's
    busiest stage is training_memory's for its layout; a pipeline stage's states are
    sharded_states' for its parameters (the FP8 weight copies below ZeRO-3)."""
    arch = preset("llama-3-70b")
    pools = [_pool("h100-sxm", 64), _pool("h200-sxm", 64)]
    # pipelines across the pools take the first places (some under ZeRO-3, the stages gathered with their matmul
    # weights in FP8); the pairs of data-parallel groups are planned on their own below
    bf16 = PlanSpec(n_gpus=128, seq_len=8192, global_batch_size=512, top_k=10)
    spec = dataclasses.replace(bf16, precision=Precision.FP8)
    fp8, base = plan_over_pools(arch, pools, spec), plan_over_pools(arch, pools, bf16)
    assert fp8.plans and base.plans and not fp8.search.cut
    assert base.plans[0].step_seconds / 2 < fp8.plans[0].step_seconds < base.plans[0].step_seconds
    groups = plan_groups(arch, pools, spec)  # both kinds of plan
    assert groups.plans and {p.groups > 1 for p in [*fp8.plans, *groups.plans]} == {True, False}
    per_param = workload_for(spec).optimizer_bytes_per_param
    for p in [*fp8.plans, *groups.plans]:
        for stages in _groups(p).values():
            st = stages[0]
            assert max(s.memory.total for s in stages) <= hardware(st.gpu).memory_bytes * spec.usable_memory_fraction
            if p.groups > 1:  # each group an even single-type pipeline, ZeRO over every replica or its own
                dp = p.dp if p.cross_group_seconds is None else st.dp
                expected = training_memory(arch, parallelism=Parallelism(tp=st.tp, pp=len(stages), dp=dp, zero_stage=st.zero_stage,
                                                                         sequence_parallel=st.tp > 1),
                                           micro_batch_size=st.micro_batch_size, seq_len=8192, recompute=st.recompute,
                                           flash_attention=True, microbatches=st.microbatches, kernels=MEGATRON,
                                           precision=Precision.FP8)  # fmt: skip
                assert max(s.memory.total for s in stages) == pytest.approx(expected.total_bytes, rel=1e-6)
                continue
            for i, s in enumerate(stages):  # a pipeline across the pools (2+ stages: ZeRO-3 keeps them gathered)
                params = int(s.memory.params)  # each stage's states on its own ranks, its embedding or LM head its own
                ends = stage_end_params(arch, Parallelism(tp=s.tp), first=i == 0, last=i == len(stages) - 1)
                zero = ZeroSharding(stage=s.zero_stage, offload=False, shards=s.dp, gathered=s.zero_stage >= 3)
                states = sharded_states(arch, Precision.FP8, zero,
                                        dense_params=params, expert_params=0, end_params=ends,
                                        optimizer_dense=optimizer_shard_bytes(params, 0, spec.optimizer, Precision.FP8, arch)[0],
                                        optimizer_expert=0, fp8_recipe=spec.fp8_recipe)  # fmt: skip
                assert s.memory.weights == pytest.approx(states.weights, rel=1e-6)
                assert s.memory.gradients == pytest.approx(states.gradients, rel=1e-6)
                assert s.memory.optimizer == pytest.approx(per_param * params / (s.dp if s.zero_stage else 1), rel=1e-6)
