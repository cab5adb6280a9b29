"""What to rent: the fleet (how many GPUs of each type) and its plan that trains ``tokens`` by a
deadline at the least cost, or soonest within a budget.

Each GPU type has a price ladder (``tiers``: GPUs owned at $0/h or a sunk price first, then what is
rented at a catalog price; a fleet of ``n`` takes the cheapest ``n``), a least and a most count, and
a best-case rate per GPU. A fleet is one type (``n`` from :func:`service.core.plan.gpu_counts`, whole
nodes) or two (a pipeline across both, :mod:`service.core.plan_mixed`, or a data-parallel group on
each, :mod:`service.core.mixed_groups`); its hours and dollars come
from its best plan, which the caller's evaluators give (the existing step-time and memory models).
Two types are mixed where one is *limited*: held at a least count, priced by the request (owned or
sunk), or unable to meet the goal alone within its most GPUs; that type at its most, the other's
counts walked as one type's are (Metis, Um et al. 2024 §4, and Sailor, SOSP'25, mix GPU types for
the same reason: the GPUs a team has, topped up). Mixing two freely rentable types is not searched:
a plan across types runs each no faster per GPU than its own plans (a pipeline adds boundary sends
and uneven stages; data-parallel groups, a gradient reduction across the types at the slowest link),
so it costs at least the cheaper type's dollars per FLOP.

The search is exhaustive over that space except where a bound proves a fleet cannot win:

- **best case**: ``tokens * model FLOPs per token / (sum of n_k * rate_k)`` hours at the
  effective-time fraction, ``rate_k`` a type's dense peak times the highest share of it any kernel
  the step-time model times reaches (its sustained matmul or attention efficiency: MFU cannot pass
  it); once a type's single-type plans are searched, the best model FLOP/s per GPU they reached
  (the same model; a plan across types only adds sends, uneven stages or a slower ring). A fleet
  whose best case misses the deadline, costs more than the cheapest answer found, or (budget) is
  over budget or slower than the fastest found, is not planned (the plan floor of
  :func:`deadline_floor`, per fleet).
- **one type** walks its counts as :func:`service.core.plan.plan_for_deadline` does (up from the
  floor, two counts past the first that meets the deadline), or down from its most (budget).

Types are tried cheapest best case first, so the bounds cut early; the count of fleets in the space,
planned and cut by a bound is in ``searched``.

**Spot capacity**: a type's tiers may be interruptible (``interruptions``, per node-hour). A fleet
that takes any is interrupted when any of its spot nodes is (their rates summed) and restarts from
its last checkpoint: its hours are the expected wall clock of :func:`service.core.spot.spot_run`
(Daly 2006's complete model at Daly's optimal interval, Young's to first order) on the hours of
its plan, its dollars those hours at its prices, and the deadline (or budget) is met in
expectation. With no interruptions the hours are the plan's, so a spot fleet at a rate of 0 costs
the on-demand formula at the spot price. One GPU bought on demand and on spot is two types of one
*family* (``gpu``): the search compares them and never mixes them (GPUs owned are in both ladders).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.core import spot
from service.core.architecture import Architecture
from service.core.errors import InvalidSpecError
from service.core.hardware import Hardware
from service.core.memory import Precision
from service.core.plan import gpu_counts
from service.core.plan_space import flops_per_token_by_recompute

MAX_PAST_FIRST = 2  # counts walked past the first that meets the deadline (plan_for_deadline's rule)


def best_rate_flops_per_s(hw: Hardware, arch: Architecture, seq_len: int, precision: Precision) -> float:
    """A GPU's best case in model FLOP/s: its dense peak times the highest share of it any kernel
    the step-time model times reaches (the sustained matmul rate, FP8's for FP8, or the attention
    core's at the sequence length); no plan's MFU passes it, so a fleet or cluster size whose best
    case misses the deadline need not be planned."""
    eff = hw.kernels
    matmul = eff.matmul
    if precision is Precision.FP8 and hw.fp8_peak_flops_per_s:
        matmul = max(matmul, (eff.matmul_fp8 or eff.matmul) * hw.fp8_peak_flops_per_s / hw.peak_flops_per_s)
    forward, backward = eff.attention_fractions(seq_len, arch.d_head)
    return hw.peak_flops_per_s * max(matmul, float(forward), float(backward))


def deadline_floor(
    arch: Architecture, hw: Hardware, *, tokens: float, deadline_days: float, precision: Precision,
    effective_time_fraction: float, adapters: bool, seq_len: int,
) -> int:  # fmt: skip
    """The fewest GPUs that could train ``tokens`` within the deadline even at their best case:
    a lower bound on the FLOPs, the model FLOPs per token (6 per matmul weight, the input embedding's
    lookup none, and the causal attention core: :func:`service.core.plan_space.flops_per_token_by_recompute`;
    two thirds of them for a frozen base with adapters, its forward and input gradients), over the
    deadline's training seconds at the GPU's best rate
    (:func:`best_rate_flops_per_s`: the dense peak times the highest share of it
    any kernel of the step-time model reaches). No plan on fewer GPUs can meet it, so a deadline
    search starts there."""
    per_token, _ = flops_per_token_by_recompute(arch, seq_len, causal=True)
    flops = (2 / 3 if adapters else 1.0) * per_token * tokens
    seconds = deadline_days * 86_400 * effective_time_fraction
    return max(1, math.floor(flops / (seconds * best_rate_flops_per_s(hw, arch, seq_len, precision))))


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetType:
    """GPUs of one type a fleet may hold: ``tiers`` ((count, usd per GPU-hour), cheapest first),
    between ``min_gpus`` and ``max_gpus`` (whole nodes of ``gpus_per_node`` beyond one node), each
    at most ``rate_flops_per_s`` model FLOP/s (the best case)."""

    gpu: str
    tiers: tuple[tuple[int, float], ...]
    min_gpus: int
    max_gpus: int
    gpus_per_node: int
    rate_flops_per_s: float
    priced: bool = False  # a pool of it priced by the request (owned at $0/h or a sunk price)
    name: str = ""  # the type's key when one GPU (its family, ``gpu``) is bought two ways; default ``gpu``
    interruptions: tuple[float | None, ...] = ()  # per tier: None not interruptible, else interruptions per node-hour

    @property
    def key(self) -> str:
        return self.name or self.gpu

    @property
    def spot(self) -> bool:
        """Any tier interruptible."""
        return any(rate is not None for rate in self.interruptions)

    def _taken(self, n: int) -> list[tuple[int, float, float | None]]:
        """(GPUs, price, interruptions per node-hour) of each tier of the cheapest ``n``."""
        taken, left = [], n
        rates = self.interruptions or (None,) * len(self.tiers)
        for (count, price), rate in zip(self.tiers, rates, strict=True):
            take = min(left, count)
            taken.append((take, price, rate))
            left -= take
        return taken

    def usd_per_hour(self, n: int) -> float:
        """The cheapest ``n`` GPUs of the ladder, per hour."""
        return sum(take * price for take, price, _ in self._taken(n))

    def interruptions_per_hour(self, n: int) -> float | None:
        """The cheapest ``n`` GPUs' interruptions per hour: each spot tier's nodes (whole, rounded up)
        times its rate; None when they take no spot tier."""
        spot_tiers = [(take, rate) for take, _, rate in self._taken(n) if rate is not None and take]
        if not spot_tiers:
            return None
        return sum(-(-take // self.gpus_per_node) * rate for take, rate in spot_tiers)

    def sizes(self) -> list[int]:
        """Counts to try: :func:`service.core.plan.gpu_counts` within [min, max], with the least and
        the most themselves."""
        counts = {n for n in gpu_counts(self.gpus_per_node, self.max_gpus) if self.min_gpus <= n <= self.max_gpus}
        counts |= {n for n in (self.min_gpus, self.max_gpus) if n >= 1}
        return sorted(counts)


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """A fleet's best plan as the caller's evaluator gives it: ``hours`` (None: no layout fits),
    the GPUs of each type the plan uses, its model FLOP/s per GPU of each type, the plan itself
    (opaque here), and ``stop`` (the batch does not split: on :func:`service.core.plan.gpu_counts`' series a
    larger count cannot split it either, so a walk up ends there)."""

    hours: float | None
    used: dict[str, int] = field(default_factory=dict)
    flops_per_gpu: dict[str, float] = field(default_factory=dict)
    plan: Any = None
    stop: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Fleet:
    """A fleet planned: GPUs used per type, its hours (expected, on spot) and dollars, the plan, and
    on spot the interruptions, checkpoints and restarts its hours include (``work_hours`` without)."""

    used: dict[str, int]
    hours: float
    cost_usd: float
    gpu_hours: float
    plan: Any
    work_hours: float = 0.0
    spot: spot.SpotRun | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SpotTerms:
    """How a fleet on spot checkpoints and restarts (:func:`service.core.spot.spot_run`): a
    checkpoint of ``checkpoint_bytes`` written by every node at ``write_bytes_per_s_per_node`` (or
    ``checkpoint_seconds`` given), ``restart_seconds``, and the interval (None: Daly's optimum)."""

    checkpoint_bytes: float
    write_bytes_per_s_per_node: float = spot.DEFAULT_CHECKPOINT_WRITE_BYTES_PER_S_PER_NODE
    checkpoint_seconds: float | None = None
    restart_seconds: float = spot.DEFAULT_RESTART_SECONDS
    interval_hours: float | None = None

    def run(self, work_hours: float, used: list[tuple[FleetType, int]]) -> spot.SpotRun | None:
        """The expected run of ``work_hours`` on the GPUs ``used`` (None: no spot GPU among them;
        infinite hours when interruptions come faster than the run can checkpoint)."""
        rates = [t.interruptions_per_hour(n) for t, n in used if n]
        if all(rate is None for rate in rates):
            return None
        nodes = sum(-(-n // t.gpus_per_node) for t, n in used if n)
        seconds = self.checkpoint_seconds
        if seconds is None:
            seconds = self.checkpoint_bytes / (self.write_bytes_per_s_per_node * max(nodes, 1))
        rate = sum(r for r in rates if r is not None)
        try:  # the job's rate over one "node" (spot_run multiplies nodes by the rate per node)
            return spot.spot_run(work_hours, n_nodes=1, interruptions_per_node_hour=rate, checkpoint_seconds=seconds,
                                 restart_seconds=self.restart_seconds, interval_hours=self.interval_hours)  # fmt: skip
        except InvalidSpecError:
            return spot.SpotRun(job_interruptions_per_hour=rate, mtbf_hours=1 / rate, checkpoint_seconds=seconds,
                                restart_seconds=self.restart_seconds, checkpoint_interval_hours=None, young_interval_hours=None,
                                expected_wall_clock_hours=math.inf, overhead_fraction=math.inf)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class Goal:
    """Deadline (least cost that meets ``deadline_hours``) or budget (soonest within ``budget_usd``)."""

    model_flops: float  # tokens x model FLOPs per token
    effective_time_fraction: float
    deadline_hours: float | None = None
    budget_usd: float | None = None
    spot: SpotTerms | None = None  # how spot fleets checkpoint and restart (needed when a type has spot tiers)

    def best_hours(self, rate_flops_per_s: float) -> float:
        return self.model_flops / rate_flops_per_s / self.effective_time_fraction / 3600

    def meets(self, hours: float, usd: float) -> bool:
        if self.deadline_hours is not None:
            return hours <= self.deadline_hours
        assert self.budget_usd is not None
        return usd <= self.budget_usd

    def rank(self, fleet: Fleet) -> tuple[float, float, float]:
        if self.deadline_hours is not None:
            return (fleet.cost_usd, fleet.gpu_hours, fleet.hours)
        return (fleet.hours, fleet.cost_usd, fleet.gpu_hours)

    def cannot_beat(self, hours_lb: float, usd_lb: float, best: Fleet | None) -> bool:
        """True when a fleet whose best case is (``hours_lb``, ``usd_lb``) can neither meet the goal
        nor beat ``best`` (costs are compared with a relative margin for rounding)."""
        if self.deadline_hours is not None:
            return hours_lb > self.deadline_hours or (best is not None and usd_lb > best.cost_usd * (1 + 1e-9))
        assert self.budget_usd is not None
        return usd_lb > self.budget_usd or (best is not None and hours_lb >= best.hours)


@dataclass
class Tally:
    """What the search covered: fleets in the space, planned, cut by a bound, and whether the time bound stopped it."""

    space: int = 0
    planned: int = 0
    bounded: int = 0
    past: int = 0  # counts past the end of a walk (two past the first that meets the deadline)
    cut: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class TypeResult:
    """One type alone: its best fleet (None: none meets the goal), the counts planned, and why not."""

    best: Fleet | None
    tried: list[int]
    reason: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcureResult:
    fleets: list[Fleet]  # every fleet planned that meets the goal, best first
    types: dict[str, TypeResult]
    tally: Tally
    searched: str
    reason: str | None
    seconds: float


Single = Callable[[FleetType, int], Outcome]
Mixed = Callable[[tuple[tuple[FleetType, int], ...]], Outcome]  # a plan over two types' pools (pipeline or groups)


def _expected(goal: Goal, work_hours: float, used: list[tuple[FleetType, int]]) -> tuple[float, spot.SpotRun | None]:
    """A fleet's hours: its plan's, or on spot the expected wall clock with interruptions (module docstring)."""
    if not any(t.spot for t, n in used if n):
        return work_hours, None
    if goal.spot is None:
        raise InvalidSpecError("spot", "a fleet on spot needs its checkpoint and restart terms")
    run = goal.spot.run(work_hours, used)
    return (work_hours, None) if run is None else (run.expected_wall_clock_hours, run)


def _fleet(goal: Goal, types: dict[str, FleetType], outcome: Outcome) -> Fleet | None:
    """A planned fleet's hours and dollars at the GPUs its plan uses (None: no plan, or it misses the goal)."""
    if outcome.hours is None:
        return None
    hours, run = _expected(goal, outcome.hours, [(types[g], n) for g, n in outcome.used.items()])
    if not math.isfinite(hours):
        return None
    usd = hours * sum(types[g].usd_per_hour(n) for g, n in outcome.used.items() if n)
    fleet = Fleet(used=dict(outcome.used), hours=hours, cost_usd=usd, gpu_hours=hours * sum(outcome.used.values()),
                  plan=outcome.plan, work_hours=outcome.hours, spot=run)  # fmt: skip
    return fleet if goal.meets(fleet.hours, fleet.cost_usd) else None


def _bound(goal: Goal, members: tuple[tuple[FleetType, int], ...], rates: dict[str, float]) -> tuple[float, float]:
    """(hours, dollars) of a fleet at its best case: one type on spot at its expected overhead (its
    plan uses every GPU of it), a mix at none (its plan may leave GPUs idle)."""
    hours = goal.best_hours(sum(n * rates[t.gpu] for t, n in members))
    if len(members) == 1:
        hours = _expected(goal, hours, list(members))[0]
    return hours, hours * sum(t.usd_per_hour(n) for t, n in members)


Members = tuple[tuple[FleetType, int], ...]


def _walk(goal: Goal, walk: list[Members], evaluate: Callable[[Members], Outcome], rates: dict[str, float],
          seen: dict[str, float], best: Fleet | None, tally: Tally, deadline_s: float) -> tuple[Fleet | None, list[int], bool]:  # fmt: skip
    """Fleets that differ in their last type's count, ascending: up from the floor (deadline, two
    counts past the first that meets it: plan_for_deadline's walk) or down from the most (budget),
    each bounded by its best case at ``rates``. Gives the best fleet found, the last type's counts
    planned, and whether any count's best case met the goal; ``seen`` keeps each type's best model
    FLOP/s per GPU in its own plans. A batch that does not split ends a walk up at a count of the
    series (:func:`_regular`), never a walk down: smaller counts may split it."""
    up = goal.budget_usd is None  # a budget walks down from the most
    if not up:
        walk = walk[::-1]
    tally.space += len(walk)
    tried: list[int] = []
    found: Fleet | None = None
    after = 0
    reachable = False  # a count whose best case meets the goal
    for i, members in enumerate(walk):
        hours_lb, usd_lb = _bound(goal, members, rates)
        reachable = reachable or not goal.cannot_beat(hours_lb, usd_lb, None)
        incumbent = min((f for f in (best, found) if f is not None), key=goal.rank, default=None)
        if goal.cannot_beat(hours_lb, usd_lb, incumbent):
            tally.bounded += 1
            continue
        if time.perf_counter() > deadline_s:
            tally.cut = True
            break
        outcome = evaluate(members)
        tally.planned += 1
        tried.append(members[-1][1])
        if len(members) == 1:
            seen[members[0][0].gpu] = max(seen.get(members[0][0].gpu, 0.0), outcome.flops_per_gpu.get(members[0][0].gpu, 0.0))
        fleet = _fleet(goal, {t.key: t for t, _ in members}, outcome)
        if fleet is not None:
            after += 1
            if found is None or goal.rank(fleet) < goal.rank(found):
                found = fleet
        if up and ((outcome.stop and _regular(members[-1])) or after > MAX_PAST_FIRST):
            tally.past += len(walk) - i - 1
            break
    return found, tried, reachable


def _regular(member: tuple[FleetType, int]) -> bool:
    """Whether a count is in :func:`service.core.plan.gpu_counts`' series, where a batch that does not
    split ends an upward walk (plan_for_deadline's rule); a least or most count off it (say 33 nodes)
    may fail to split a batch that larger counts in the series split."""
    t, n = member
    return n in gpu_counts(t.gpus_per_node, t.max_gpus)


def _limited(goal: Goal, types: list[FleetType], results: dict[str, TypeResult]) -> list[FleetType]:
    """Types a fleet mixes with another: held at a least count, priced by the request (owned or sunk:
    ``priced``), or unable to meet the goal alone within their most GPUs though their best case could."""
    return [t for t in types if t.min_gpus > 0 or t.priced
            or (t.key in results and results[t.key].best is None and results[t.key].tried)]  # fmt: skip


def procure(
    types: list[FleetType], goal: Goal, *, single: Single, mixed: Mixed | None, time_limit_seconds: float
) -> ProcureResult:
    """The fleets that meet ``goal`` best first (module docstring); ``single(t, n)`` and
    ``mixed(((a, n_a), (b, n_b)))`` plan one fleet each. Past ``time_limit_seconds`` the search
    stops between fleets and says ``cut``."""
    started = time.perf_counter()
    deadline_s = started + time_limit_seconds
    tally = Tally()
    rates = {t.gpu: t.rate_flops_per_s for t in types}
    deadline = goal.deadline_hours is not None
    floored = {t.gpu for t in types if t.min_gpus > 0}  # families every fleet holds (a least count)
    alone = [t for t in types if floored <= {t.gpu}]

    def first(t: FleetType) -> tuple[float, float]:  # cheapest best case first (deadline), else fastest
        hours, usd = _bound(goal, ((t, max(1, t.min_gpus) if deadline else t.max_gpus),), rates)
        return (usd, hours) if deadline else (hours, usd)

    fleets: list[Fleet] = []
    results: dict[str, TypeResult] = {}
    seen: dict[str, float] = {}
    for t in sorted(alone, key=first):
        best = min(fleets, key=goal.rank, default=None)
        found, tried, reachable = _walk(goal, [((t, n),) for n in t.sizes()], lambda m: single(m[0][0], m[0][1]), rates, seen,
                                        best, tally, deadline_s)  # fmt: skip
        results[t.key] = TypeResult(best=found, tried=tried, reason=None if found else _why(goal, t, tried, reachable))
        fleets.extend([found] if found else [])
    # mixes: a limited type at its most with each other type's counts, each type's GPUs at most as
    # fast as the best its own plans reached (when planned)
    mixing = {g: min(rates[g], seen[g]) if seen.get(g) else rates[g] for g in rates}
    limited = _limited(goal, types, results) if mixed is not None else []
    walked: set[tuple[str, str]] = set()
    for c in limited:
        for o in types:  # two families: one GPU bought two ways is never mixed with itself
            if o.gpu == c.gpu or (c.key, o.key) in walked or not floored <= {c.gpu, o.gpu}:
                continue
            walked.add((c.key, o.key))
            assert mixed is not None
            found, _, _ = _walk(goal, [((c, c.max_gpus), (o, n)) for n in o.sizes()], mixed, mixing, seen,
                                min(fleets, key=goal.rank, default=None), tally, deadline_s)  # fmt: skip
            fleets.extend([found] if found else [])
    fleets = list({tuple(sorted(f.used.items())): f for f in sorted(fleets, key=goal.rank, reverse=True)}.values())
    fleets.sort(key=goal.rank)
    searched = (f"{tally.space} fleets ({', '.join(f'{t.key} {t.min_gpus}-{t.max_gpus}' for t in types)}; each type alone, "
                f"and {', '.join(t.key for t in limited) or 'no type'} (limited, owned or held) at its most with each other type): "
                f"{tally.planned} planned, {tally.bounded} cut by their best case, {tally.past} past a walk's end"
                + (", the rest left at the time bound" if tally.cut else ""))  # fmt: skip
    reason = None
    if not fleets:
        why = "meets the deadline" if deadline else "fits the budget"
        reason = (
            f"no fleet {why}"
            + (" (the search stopped at its time bound)" if tally.cut else "")
            + ": "
            + "; ".join(r.reason or "" for r in results.values())
        )
    return ProcureResult(fleets=fleets, types=results, tally=tally, searched=searched, reason=reason,
                         seconds=time.perf_counter() - started)  # fmt: skip


def _why(goal: Goal, t: FleetType, tried: list[int], reachable: bool) -> str:
    goal_text = "meets the deadline" if goal.deadline_hours is not None else "fits the budget"
    reason = f"no count of up to {t.max_gpus} {t.key} {goal_text}"
    if not tried:
        reason = (
            f"{t.key} cannot beat the best fleet found even at its best case" if reachable else reason + " even at its best case"
        )
    return reason
