"""What to rent (service.core.procure) and the bounds that prune searches: a bound never cuts what
it claims to, and the fleet search agrees with the single-type deadline walk."""

from __future__ import annotations

import numpy as np
import pytest

from service.core import plan as core
from service.core import procure
from service.core.plan_space import layer_tables, layout_grid, memory_arrays, search_axes, shard_tables
from service.core.spot import spot_run
from service.core.steptime import Layout, step_lower_bound, step_time
from tests.core.helpers import hardware, preset


@pytest.mark.parametrize(("model", "gpu", "n_gpus"), [("llama-3-8b", "h100-sxm", 64), ("llama-3-70b", "a100-80gb-sxm", 256),
                                                      ("mixtral-8x7b", "h100-sxm", 64)])  # fmt: skip
def test_the_step_floor_is_never_above_the_step(model: str, gpu: str, n_gpus: int) -> None:
    """step_lower_bound <= step_time on every layout of every pipeline size that fits."""
    arch, hw = preset(model), hardware(gpu)
    spec = core.PlanSpec(n_gpus=n_gpus, seq_len=4096, global_batch_size=256)
    work, axes = core.workload_for(spec), search_axes(arch, hw, spec)
    table = layer_tables(arch, spec, axes)
    checked = 0
    for p in axes["pp"].tolist():
        chunk = axes | {"pp": np.asarray([p]), "ep": axes["ep"][:1]}
        grid = layout_grid(arch, spec, chunk)
        if not len(grid["tp"]):
            continue
        mem = memory_arrays(arch, spec, grid, shard_tables(arch, spec, chunk), table)
        lay = Layout(
            **{k: grid[k] for k in core.DIMENSIONS}, params_per_gpu=mem["params"], expert_params_per_gpu=mem["expert_params"]
        )
        floor = np.asarray(step_lower_bound(arch, hw, work, lay))
        step = np.asarray(step_time(arch, hw, work, lay).step_seconds)
        assert np.all(floor <= step * (1 + 1e-12)) and np.all(floor > 0)
        checked += len(step)
    assert checked > 1000


def _kind(gpu: str, *, tiers: tuple[tuple[int, float], ...], most: int, rate: float, least: int = 0) -> procure.FleetType:
    return procure.FleetType(gpu=gpu, tiers=tiers, min_gpus=least, max_gpus=most, gpus_per_node=8, rate_flops_per_s=rate)


def test_a_price_ladder_takes_the_cheapest_gpus_first() -> None:
    kind = _kind("x", tiers=((64, 0.0), (1000, 2.0)), most=1064, rate=1e15)
    assert kind.usd_per_hour(64) == 0 and kind.usd_per_hour(96) == 64.0
    assert kind.sizes()[:4] == [1, 2, 4, 8] and kind.sizes()[-1] == 1064  # the most itself, though not in the series


def test_the_fleet_walk_is_the_deadline_walk_and_its_bounds_cut_only_losers() -> None:
    """With one type, the fleet search picks plan_for_deadline's size; the best case (peak x the
    best kernel share) cuts only counts that could not meet the deadline."""
    arch, hw = preset("llama-2-7b"), hardware("h100-sxm")
    tokens, hours = 2e11, 48.0
    spec = core.PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=512, top_k=1)
    walk = core.plan_for_deadline(arch, hw, spec, tokens=tokens, deadline_hours=hours, effective_time_fraction=0.9)

    def single(kind: procure.FleetType, n: int) -> procure.Outcome:
        result = core.plan(arch, hw, core.PlanSpec(**{**core.spec_fields(spec), "n_gpus": n}))
        if not result.plans:
            return procure.Outcome(hours=None)
        top = result.plans[0]
        return procure.Outcome(hours=tokens / top.tokens_per_second / 0.9 / 3600, used={kind.gpu: n},
                               flops_per_gpu={kind.gpu: top.tflops_per_gpu * 1e12}, plan=result)  # fmt: skip

    flops = tokens * walk.result.model_flops_per_token
    kind = _kind("h100-sxm", tiers=((131072, 3.0),), most=131072, rate=hw.peak_flops_per_s * hw.kernels.matmul)
    goal = procure.Goal(model_flops=flops, effective_time_fraction=0.9, deadline_hours=hours)
    found = procure.procure([kind], goal, single=single, mixed=None, time_limit_seconds=60)
    best = found.fleets[0]
    assert best.used == {"h100-sxm": walk.n_gpus}
    assert best.cost_usd == pytest.approx(3.0 * best.gpu_hours)
    tried = found.types["h100-sxm"].tried
    assert set(tried) <= {n for n, _ in walk.tried}
    assert all(h is None or h > hours for n, h in walk.tried if n < min(tried))  # what the bound cut missed the deadline
    assert found.tally.planned + found.tally.bounded + found.tally.past <= found.tally.space


def test_a_spot_ladder_counts_the_spot_nodes_it_takes() -> None:
    """16 GPUs owned, then spot GPUs at 0.01 interruptions per node-hour: a fleet of 44 takes 28 spot
    GPUs, four nodes (3.5 rounded up), so the job is interrupted 0.04 times an hour; its checkpoint
    is written by all six of its nodes; the run is spot_run's for that job."""
    kind = procure.FleetType(gpu="x", name="x spot", tiers=((16, 0.0), (1000, 2.0)), interruptions=(None, 0.01), min_gpus=0,
                             max_gpus=1016, gpus_per_node=8, rate_flops_per_s=1e15)  # fmt: skip
    assert kind.key == "x spot" and kind.spot
    assert kind.interruptions_per_hour(16) is None and kind.interruptions_per_hour(44) == pytest.approx(0.04)
    terms = procure.SpotTerms(checkpoint_bytes=14 * 8e9)
    run = terms.run(100.0, [(kind, 44)])
    expected = spot_run(100.0, n_nodes=4, interruptions_per_node_hour=0.01, checkpoint_seconds=14 * 8e9 / (1e9 * 6),
                        restart_seconds=600)  # fmt: skip
    assert run == expected
    assert terms.run(100.0, [(kind, 16)]) is None  # the owned GPUs alone are not interrupted


def _toy(kind: procure.FleetType, n: int) -> procure.Outcome:
    """A fleet that runs at exactly its best case: 1,000 GPU-hours of work."""
    return procure.Outcome(hours=1000 / n, used={kind.key: n}, flops_per_gpu={kind.gpu: 1e15}, plan=n)


@pytest.mark.parametrize(("rate", "winner"), [(0.0, "x spot"), (0.001, "x spot"), (2.0, "x")])
def test_spot_against_on_demand_of_one_gpu(rate: float, winner: str) -> None:
    """One GPU on demand at $2 and on spot at $1: at no interruptions the spot fleet is the
    on-demand formula at the spot price (the same hours, half the dollars); at two interruptions
    per node-hour restarts and lost work cost more than the discount and on demand wins."""
    on_demand = _kind("x", tiers=((4096, 2.0),), most=4096, rate=1e15)  # spot priced: limited, so its mixes are tried
    on_spot = procure.FleetType(gpu="x", name="x spot", tiers=((4096, 1.0),), interruptions=(rate,), min_gpus=0, max_gpus=4096,
                                gpus_per_node=8, rate_flops_per_s=1e15, priced=True)  # fmt: skip
    goal = procure.Goal(model_flops=1000 * 3600 * 1e15, effective_time_fraction=1.0, deadline_hours=100.0,
                        spot=procure.SpotTerms(checkpoint_bytes=14 * 8e9))  # fmt: skip

    def never(members: procure.Members) -> procure.Outcome:  # one GPU bought two ways is never mixed with itself
        raise AssertionError(members)

    found = procure.procure([on_demand, on_spot], goal, single=_toy, mixed=never, time_limit_seconds=60)
    best = found.fleets[0]
    assert list(best.used) == [winner] and best.hours <= 100.0
    if rate == 0.0:
        alone = procure.procure([on_demand], goal, single=_toy, mixed=None, time_limit_seconds=60).fleets[0]
        assert best.used["x spot"] == alone.used["x"] and best.hours == alone.hours == best.work_hours
        assert best.cost_usd == pytest.approx(best.hours * best.used["x spot"] * 1.0, rel=1e-15)
        assert best.cost_usd == pytest.approx(alone.cost_usd / 2, rel=1e-15)
    else:
        assert best.spot is None if winner == "x" else best.spot.overhead_fraction > 1


def _splits_512(kind: procure.FleetType, n: int) -> procure.Outcome:
    """``_toy``, except that a count of 33 nodes (264 GPUs) or more off the 2^k and 3 x 2^k node series
    cannot split the batch (``stop``), as a batch of 512 cannot be split over 33 or 67 nodes."""
    nodes = n // 8
    if n >= 264 and n % 8 == 0 and (nodes & (nodes - 1)) and (nodes // 3 & (nodes // 3 - 1) or nodes % 3):
        return procure.Outcome(hours=None, stop=True)
    return _toy(kind, n)


@pytest.mark.parametrize(("least", "most", "goal"), [(0, 536, {"budget_usd": 4000.0}), (264, 1024, {"deadline_hours": 24.0})])
def test_a_count_off_the_series_that_cannot_split_the_batch_ends_no_walk(least: int, most: int, goal: dict) -> None:
    """A most of 67 nodes (a budget walks down from it) or a least of 33 nodes (a deadline walks up
    from it) cannot split the batch; counts of the series past it can, and one of them is the answer."""
    kind = _kind("x", tiers=((most, 2.0),), most=most, least=least, rate=1e15)
    found = procure.procure([kind], procure.Goal(model_flops=1000 * 3600 * 1e15, effective_time_fraction=1.0, **goal),
                            single=_splits_512, mixed=None, time_limit_seconds=60)  # fmt: skip
    assert found.reason is None and found.fleets
    best = found.fleets[0]
    if "budget_usd" in goal:  # 1,000 GPU-hours at $2 cost $2,000 at any count: the most that splits, soonest
        assert best.used == {"x": 512} and best.cost_usd == pytest.approx(2000.0)
    else:  # every count costs $2,000: a count of the series past the least that meets 24 h
        assert best.used["x"] in (384, 512, 768) and best.hours <= 24.0 and best.cost_usd == pytest.approx(2000.0)
