"""``POST /v1/plan``'s entry: pools carrying ``max_n_gpus`` ask what to rent (the fleet and plan that
meet ``deadline_days`` at the least cost, or finish soonest within ``budget_usd``:
:mod:`service.core.procure`), other requests go to :func:`service.services.plan_pools.plan`.

Each fleet is planned by the existing planners: one type by :func:`service.services.plan.cached_plan`
at the batch its size gets, two types by the pipelines over pools
(:func:`service.services.plan_pools._mixed`). The answer's ``plans`` are the fleets that meet the
goal, best first; ``best_homogeneous`` the best single-type fleet; ``gpus`` each type's best fleet
alone (or why it has none); ``search`` what the fleet search covered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core import plan as core
from service.core import procure as fleet_search
from service.core.architecture import Architecture
from service.core.compute import require_architecture
from service.core.context import check_context
from service.core.errors import InvalidSpecError
from service.core.memory import Precision
from service.core.plan_space import _flops_per_token
from service.errors import Unprocessable
from service.schemas import plan as s
from service.schemas.cost import PriceQuote
from service.schemas.layout import PlanItem
from service.services import energy as energy_service
from service.services import plan as single
from service.services import plan_pools as pooled
from service.services.answers import not_keepable
from service.services.catalog_reader import CatalogReader
from service.services.models import resolve_model, training_seq_len
from service.services.pricing import listed_price

PROCURE_SEARCH_SECONDS = 20.0  # the bound on a fleet search; a search cut by it says so and is not kept
FORMULA = (
    "what to rent: fleets of one or two GPU types, each type's GPUs priced cheapest pool first; a fleet's hours = tokens / "
    "its best plan's tokens/s / effective-time fraction, dollars = hours x the GPUs its plan uses x their prices; fleets whose "
    "best case (peak x the highest kernel efficiency; for mixes, each type's best rate in its own plans) cannot win are not "
    "planned (service.core.procure)"
)


def plan(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    """``POST /v1/plan``: a fleet search when pools carry ``max_n_gpus``, else the pools' or one type's plans."""
    if req.procurement:
        return procure(req, catalog)
    return pooled.plan(req, catalog)


@dataclass(frozen=True)
class _Type:
    """One GPU type of the request's pools: its hardware, its price ladder and where each price came from."""

    pool: pooled._Pool
    kind: fleet_search.FleetType
    quotes: list[PriceQuote]


def _quote(catalog: CatalogReader, req: s.PlanRequest, i: int, pool: s.Pool) -> PriceQuote:
    if pool.usd_per_gpu_hour is not None:
        return PriceQuote(usd_per_gpu_hour=pool.usd_per_gpu_hour, provider=None, pricing=None, as_of=None,
                          source=f"request: pools.{i}.usd_per_gpu_hour", chosen="explicit")  # fmt: skip
    quote = listed_price(catalog, pool.gpu, req, many=True)
    if quote is None:
        raise Unprocessable.for_field(
            f"pools.{i}.usd_per_gpu_hour", f"the catalog has no {req.pricing.value} price for {pool.gpu}: give this pool's price"
        )
    return quote


def best_rate_flops_per_s(cluster: single.Cluster, arch: Architecture, seq_len: int, precision: Precision) -> float:
    """A GPU's best case in model FLOP/s: its dense peak times the highest share of it any kernel
    the step-time model times reaches (the sustained matmul rate, FP8's for FP8, or the attention
    core's at the sequence length); no plan's MFU passes it (:mod:`service.core.procure`)."""
    hw = cluster.hardware
    eff = hw.kernels
    matmul = eff.matmul
    if precision is Precision.FP8 and hw.fp8_peak_flops_per_s:
        matmul = max(matmul, (eff.matmul_fp8 or eff.matmul) * hw.fp8_peak_flops_per_s / hw.peak_flops_per_s)
    forward, backward = eff.attention_fractions(seq_len, arch.d_head)
    return hw.peak_flops_per_s * max(matmul, float(forward), float(backward))


def _types(
    req: s.PlanRequest, catalog: CatalogReader, arch: Architecture, seq_len: int, assumptions: dict[str, Any]
) -> list[_Type]:
    """The pools as fleet types (pools of one GPU merged, their prices a ladder cheapest first); a 422 names the pool's field."""
    assert req.pools is not None
    known = set(catalog.gpu_ids())
    merged: dict[str, tuple[pooled._Pool, list[tuple[int, int, PriceQuote]]]] = {}
    for i, pool in enumerate(req.pools):
        view, cluster = pooled.pool_cluster(req, catalog, known, i, pool)
        least, most = pool.n_gpus or 0, pool.max_n_gpus or pool.n_gpus or 0
        entry = merged.get(view.id)
        if entry is not None and entry[0].cluster.hardware != cluster.hardware:
            raise Unprocessable.for_field(
                f"pools.{i}", f"pools of {view.id} differ in their node or links: give one pool per GPU type"
            )
        assumptions.update(cluster.assumptions)
        ladder = ([] if entry is None else entry[1]) + [(least, most, _quote(catalog, req, i, pool))]
        merged[view.id] = (pooled._Pool(view=view, cluster=cluster, n_gpus=most), ladder)
    types = []
    for gpu, (pool, ladder) in merged.items():
        ladder.sort(key=lambda rung: rung[2].usd_per_gpu_hour)
        most = sum(rung[1] for rung in ladder)
        kind = fleet_search.FleetType(gpu=gpu, tiers=tuple((rung[1], rung[2].usd_per_gpu_hour) for rung in ladder),
                                      min_gpus=sum(rung[0] for rung in ladder), max_gpus=most,
                                      gpus_per_node=pool.cluster.hardware.gpus_per_node,
                                      rate_flops_per_s=best_rate_flops_per_s(pool.cluster, arch, seq_len, req.precision),
 priced=any(rung[2].source.startswith('request: pools') for rung in ladder))  # fmt: skip
        types.append(_Type(pool=pooled._Pool(view=pool.view, cluster=pool.cluster, n_gpus=most), kind=kind,
                           quotes=[rung[2] for rung in ladder]))  # fmt: skip
    if sum(t.kind.min_gpus > 0 for t in types) > 2:
        raise Unprocessable.for_field("pools", "a fleet holds one or two GPU types: at most two may fix a least count (n_gpus)")
    return types


@dataclass
class _Context:
    """What every fleet's plan shares."""

    req: s.PlanRequest
    arch: Architecture
    seq_len: int
    fixed: dict[str, Any]
    by_gpu: dict[str, _Type]

    def batch(self, n: int) -> int:
        return single.batch_size(self.seq_len, self.req.global_batch_size, self.req.global_batch_tokens, n)[0]

    def spec(self, n: int, cluster: single.Cluster) -> core.PlanSpec:
        req = self.req
        return core.PlanSpec(n_gpus=n, seq_len=self.seq_len, global_batch_size=self.batch(n), precision=req.precision,
                             optimizer=req.optimizer, flash_attention=req.flash_attention, dropout=req.dropout, fixed=self.fixed,
                             top_k=req.top_k, usable_memory_fraction=req.usable_memory_fraction,
                             **single.spec_options(req, cluster))  # fmt: skip

    def hours(self, tokens_per_second: float) -> float:
        assert self.req.tokens is not None
        return self.req.tokens / tokens_per_second / self.req.effective_time_fraction / 3600

    def single(self, kind: fleet_search.FleetType, n: int) -> fleet_search.Outcome:
        """One type's best plan on ``n`` GPUs (plan_for_deadline's walk: a batch that no longer splits stops it)."""
        cluster = self.by_gpu[kind.gpu].pool.cluster
        try:
            result = single.cached_plan(self.arch, cluster.hardware, self.spec(n, cluster))
        except InvalidSpecError as exc:
            return fleet_search.Outcome(hours=None, stop=exc.field == "global_batch_size")
        if not result.plans:
            return fleet_search.Outcome(hours=None)
        top = result.plans[0]
        return fleet_search.Outcome(hours=self.hours(top.tokens_per_second), used={kind.gpu: n},
                                    flops_per_gpu={kind.gpu: top.tflops_per_gpu * 1e12}, plan=(kind.gpu, n, result))  # fmt: skip

    def mixed(self, members: tuple[tuple[fleet_search.FleetType, int], ...]) -> fleet_search.Outcome:
        """A pipeline across two types' GPUs (the plan may leave some idle: the fleet is what it uses)."""
        pools = [
            pooled._Pool(view=self.by_gpu[k.gpu].pool.view, cluster=self.by_gpu[k.gpu].pool.cluster, n_gpus=n) for k, n in members
        ]
        total = sum(n for _, n in members)
        try:
            found = pooled._mixed(
                self.arch, pools, self.spec(total, pools[0].cluster), self.req.between_pools_bandwidth_bytes_per_s
            )
        except InvalidSpecError:
            return fleet_search.Outcome(hours=None)
        if not found.plans:
            return fleet_search.Outcome(hours=None)
        top = found.plans[0]
        used = {p.view.id: 0 for p in pools}
        for st in top.stages:
            used[st.gpu] += st.n_gpus
        return fleet_search.Outcome(hours=self.hours(top.tokens_per_second), used=used, plan=(pools, found))


def _item(ctx: _Context, fleet: fleet_search.Fleet, energy: energy_service.EnergyTerms) -> PlanItem:
    """A fleet's plan as answers give it, each type's GPUs at the mean price of the pools it uses."""
    req = ctx.req
    price = {g: ctx.by_gpu[g].kind.usd_per_hour(n) / n for g, n in fleet.used.items() if n}
    if len(fleet.used) == 1:
        gpu, n, result = fleet.plan
        return single.plan_item(gpu, n, result.plans[0], req.tokens, req.effective_time_fraction, price[gpu],
                                result.model_flops_per_token, energy=energy.for_gpu(ctx.by_gpu[gpu].pool.view))  # fmt: skip
    pools, found = fleet.plan
    return pooled._mixed_item(found.plans[0], pools, req, price, found.model_flops_per_token, energy)


def _summary(ctx: _Context, t: _Type, result: fleet_search.TypeResult | None, item: PlanItem | None) -> s.GpuSummary:
    """One type alone: its best fleet, or why it has none."""
    quote = t.quotes[0] if len(t.quotes) == 1 else None
    tried = result.tried if result is not None else None
    if item is None:
        reason = result.reason if result is not None else "another pool's least count (n_gpus) is in every fleet"
        return single._unfit(t.kind.gpu, None, reason, None, tried)
    _, _, plans = result.best.plan if result and result.best else (None, None, None)
    stats = single._stats(plans.search) if plans is not None else None
    assert stats is not None
    return s.GpuSummary(gpu=t.kind.gpu, n_gpus=item.n_gpus, fits=True, reason=None, tokens_per_second=item.tokens_per_second,
                        mfu=item.mfu, training_hours=item.training_hours, gpu_hours=item.gpu_hours, energy_kwh=item.energy_kwh,
                        co2e_tonnes=item.co2e_tonnes, cost_usd=item.cost_usd, price=quote, search=stats, tried_n_gpus=tried,
                        global_batch_size=ctx.batch(item.n_gpus))  # fmt: skip


def _fleet_text(ctx: _Context, fleet: fleet_search.Fleet) -> str:
    return " + ".join(f"{n} {g}" for g, n in fleet.used.items() if n) + f": {fleet.hours:.1f} h, ${fleet.cost_usd:,.0f}"


def procure(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    """The fleets that meet the deadline at the least cost (or finish soonest within the budget), best first."""
    assert req.tokens is not None
    arch = require_architecture(resolve_model(req.model, catalog), "the planner")
    seq_len, seq_source = training_seq_len(arch, req.seq_len)
    assumptions: dict[str, Any] = {}
    types = _types(req, catalog, arch, seq_len, assumptions)
    ctx = _Context(
        req=req, arch=arch, seq_len=seq_len, fixed=single.fixed_dimensions(req.fixed), by_gpu={t.kind.gpu: t for t in types}
    )
    goal = fleet_search.Goal(
        model_flops=req.tokens * _flops_per_token(arch, seq_len, causal=req.flash_attention)[0],
        effective_time_fraction=req.effective_time_fraction,
        deadline_hours=req.deadline_days * 24 if req.deadline_days is not None else None, budget_usd=req.budget_usd,
    )  # fmt: skip
    mixing = req.precision is not Precision.FP8
    found = fleet_search.procure([t.kind for t in types], goal, single=ctx.single, mixed=ctx.mixed if mixing else None,
                                 time_limit_seconds=PROCURE_SEARCH_SECONDS)  # fmt: skip
    if found.tally.cut:
        not_keepable()
    energy = energy_service.terms(req)
    items = [_item(ctx, f, energy) for f in found.fleets[: req.top_k]]
    alone = {g: found.types[g].best for g in found.types if found.types[g].best is not None}
    alone_items = {g: _item(ctx, f, energy) for g, f in alone.items()}  # type: ignore[arg-type]
    summaries = [_summary(ctx, t, found.types.get(t.kind.gpu), alone_items.get(t.kind.gpu)) for t in types]
    homogeneous = [f for f in found.fleets if len(f.used) == 1]
    best_homogeneous = _item(ctx, homogeneous[0], energy) if homogeneous else None
    batch = ctx.batch(sum(found.fleets[0].used.values()) if found.fleets else 1)
    assumptions |= {"seq_len": seq_len, "seq_len_source": seq_source, "global_batch_size": batch,
                    "global_batch_source": single.batch_size(seq_len, req.global_batch_size, req.global_batch_tokens, None)[1]
                    + ", for each fleet size", "effective_time_fraction": req.effective_time_fraction,
                    "usable_memory_fraction": req.usable_memory_fraction, "flash_attention": req.flash_attention,
                    "objective": f"least cost within {req.deadline_days:g} days" if req.deadline_days is not None
                    else f"soonest within ${req.budget_usd:,.0f}",
                    "fleet": _fleet_text(ctx, found.fleets[0]) if found.fleets else None,
                    "fleet_bounds": "a fleet's best case: peak x the highest kernel efficiency (matmul, attention) per GPU; a mix: each "
                    "type's best model FLOP/s per GPU in its own plans searched",
                    "spot": "spot prices as listed; interruptions only through effective_time_fraction" if req.pricing.value == "spot"
                    else None} | single.options_assumptions(req)  # fmt: skip
    for t in types:
        assumptions[f"{t.kind.gpu}.fleet_prices"] = "; ".join(
            f"up to {n} at ${usd:g}/GPU-h ({q.chosen}: {q.source})" for (n, usd), q in zip(t.kind.tiers, t.quotes, strict=True)
        )
    if warning := check_context(arch, seq_len):
        assumptions["seq_len_warning"] = warning
    assumptions |= energy.assumptions([t.pool.view for t in types], per_gpu=True)
    fitting = [g for g in summaries if g.fits]
    return s.PlanResponse(
        plans=items,
        search=s.SearchStats(considered=found.tally.space, feasible=len(found.fleets), returned=len(items),
                             seconds=found.seconds, cut=found.tally.cut, searched=found.searched),
        reason=found.reason, gpus=summaries, best_homogeneous=best_homogeneous,
        fastest_gpu=max(fitting, key=lambda g: g.tokens_per_second or 0.0).gpu if fitting else None,
        cheapest_gpu=min(fitting, key=lambda g: g.cost_usd or 0.0).gpu if fitting else None,
        global_batch_size=batch, seq_len=seq_len,
        formulas=[*single.FORMULAS, pooled.MIXED_FORMULA, FORMULA, energy_service.FORMULA], assumptions=assumptions,
    )  # fmt: skip
