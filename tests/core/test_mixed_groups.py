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
from service.core.memory import Parallelism, training_memory
from service.core.mixed_groups import _group_seconds, _rows, busiest_params, plan_groups, ring_hardware, split_batch
from service.core.mixed_stages import MemoryTables
from service.core.plan import PlanSpec, plan, workload_for
from service.core.plan_mixed import Pool
from tests.core.helpers import hardware, preset

SAME_SPACE = {"pipeline_schedule": "1f1b", "virtual_stages": 1, "cp": 1, "offload_optimizer": False, "sequence_parallel": True}


def _pool(gpu: str, n: int) -> Pool:
    return Pool(gpu=gpu, hardware=hardware(gpu), n_gpus=n)


def _shares(plan_) -> dict[int, int]:
    """Sequences a step of each group: its replicas x micro-batch x micro-batches."""
    first = {st.group: st for st in reversed(plan_.stages)}
    return {g: st.dp * st.micro_batch_size * st.microbatches for g, st in first.items()}


def test_two_pools_of_one_gpu_as_groups_step_as_one_pool_of_their_sum() -> None:
    """The rung of the ladder: two pools of 64 H100s as two data-parallel groups are the
    single-type planner's 128 H100s, layout for layout (the same ring over every replica, half
    the batch each) and at the best layout of the same space."""
    arch, h100 = preset("llama-3-70b"), hardware("h100-sxm")
    pools = [_pool("h100-sxm", 64)] * 2
    fixed = {"tp": 8, "zero_stage": 1, "micro_batch_size": 1, "recompute": "none"}
    spec = PlanSpec(n_gpus=128, seq_len=8192, global_batch_size=512, top_k=3, fixed=fixed)
    found = plan_groups(arch, pools, spec)
    assert len(found.plans) == 3
    for p in found.plans:
        whole = plan(arch, h100, dataclasses.replace(spec, fixed=fixed | SAME_SPACE | {"pp": p.pp}, top_k=1)).plans[0]
        assert _shares(p) == {0: 256, 1: 256} and p.dp == whole.dp
        assert p.step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)
        assert p.step == pytest.approx(whole.step, rel=1e-12)
        assert p.mfu == pytest.approx(whole.mfu, rel=1e-12)
    free = PlanSpec(n_gpus=128, seq_len=8192, global_batch_size=512, top_k=1)
    best = plan_groups(arch, pools, free).plans[0]
    whole = plan(arch, h100, dataclasses.replace(free, fixed=SAME_SPACE)).plans[0]
    assert best.step_seconds == pytest.approx(whole.step_seconds, rel=1e-12)


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
