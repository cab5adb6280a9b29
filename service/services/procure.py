"""``POST /v1/plan``'s entry: pools carrying ``max_n_gpus`` ask what to rent (the fleet and plan that
meet ``deadline_days`` at the least cost, or finish soonest within ``budget_usd``:
:mod:`service.core.procure`), other requests go to :func:`service.services.plan_pools.plan`.

Each fleet is planned by the existing planners: one type by :func:`service.services.plan.cached_plan`
at the batch its size gets, two types by the pipelines over pools
(:func:`service.services.plan_pools.mixed_plans`). The answer's ``plans`` are the fleets that meet the
goal, best first; ``best_homogeneous`` the best single-type fleet; ``gpus`` each type's best fleet
alone (or why it has none); ``search`` what the fleet search covered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core import plan as core
from service.core import procure as fleet_search
from service.core import spot
from service.core.architecture import Architecture
from service.core.compute import require_architecture
from service.core.context import check_context
from service.core.errors import InvalidSpecError
from service.core.params import count_params
from service.core.plan_space import flops_per_token_by_recompute
from service.errors import Unprocessable
from service.schemas import inputs
from service.schemas import plan as s
from service.schemas.base import Pricing
from service.schemas.cost import PriceChoice, PriceQuote
from service.schemas.layout import PlanItem
from service.schemas.spot import SpotOptions, spot_detail
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
    "planned (service.core.procure); a fleet holding spot GPUs: the expected hours of its plan's hours with interruptions, "
    "checkpoints at Daly's interval and restarts (Daly 2006; service.core.spot), dollars at those hours"
)


def plan(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    """``POST /v1/plan``: a fleet search when pools carry ``max_n_gpus``, else the pools' or one type's plans.
    A step-time option no step of the run reads (a mixture's on a dense model, a fine-tune's without
    adapters) is a 422 naming it (:func:`service.schemas.inputs.inapplicable_options`)."""
    arch = require_architecture(resolve_model(req.model, catalog), "the planner")
    adapters = req.finetune is not None and req.finetune.is_adapter
    if unread := inputs.inapplicable_options(req, moe=arch.is_moe, adapters=adapters):
        raise Unprocessable.for_fields(unread)
    if req.procurement:
        return procure(req, catalog)
    return pooled.plan(req, catalog)


@dataclass(frozen=True)
class _Type:
    """One GPU type of the request's pools: its hardware, its price ladder and where each price came from."""

    pool: pooled.PoolView
    kind: fleet_search.FleetType
    quotes: list[PriceQuote]


@dataclass(frozen=True)
class _Rung:
    """One pool of a GPU's price ladder: its least and most GPUs, its price, its interruptions per
    node-hour (None: not spot), and whether it is owned or held (priced by the request or given a
    least count: in both ladders of a GPU bought on demand and on spot)."""

    least: int
    most: int
    quote: PriceQuote
    interruptions: float | None
    owned: bool


def _quote(catalog: CatalogReader, req: s.PlanRequest, i: int, pool: s.Pool, pricing: Pricing) -> PriceQuote:
    if pool.usd_per_gpu_hour is not None:
        return PriceQuote(usd_per_gpu_hour=pool.usd_per_gpu_hour, provider=None, pricing=pool.pricing, as_of=None,
                          source=f"request: pools.{i}.usd_per_gpu_hour", chosen="explicit")  # fmt: skip
    quote = listed_price(catalog, pool.gpu, PriceChoice(provider=req.provider, pricing=pricing), many=True)
    if quote is None:
        raise Unprocessable.for_field(
            f"pools.{i}.usd_per_gpu_hour", f"the catalog has no {pricing.value} price for {pool.gpu}: give this pool's price"
        )
    return quote


def _rungs(req: s.PlanRequest, catalog: CatalogReader, i: int, pool: s.Pool, assumptions: dict[str, Any]) -> list[_Rung]:
    """Pool ``i`` as a rung of its GPU's ladder, and with ``compare_spot`` its twin rented on spot."""
    pricing = pool.pricing or req.pricing
    options = req.spot or SpotOptions()
    rate = options.interruptions_per_node_hour if pool.interruptions_per_node_hour is None else pool.interruptions_per_node_hour
    owned = pool.usd_per_gpu_hour is not None or bool(pool.n_gpus)
    least, most = pool.n_gpus or 0, pool.max_n_gpus or pool.n_gpus or 0
    rungs = [_Rung(least=least, most=most, quote=_quote(catalog, req, i, pool, pricing),
                   interruptions=rate if pricing is Pricing.SPOT else None, owned=owned)]  # fmt: skip
    if req.compare_spot and pricing is not Pricing.SPOT and not owned:
        twin = listed_price(catalog, pool.gpu, PriceChoice(provider=req.provider, pricing=Pricing.SPOT), many=True)
        if twin is None:
            assumptions[f"pools.{i}.compare_spot"] = f"the catalog has no spot price for {pool.gpu}: on demand only"
        else:
            rungs.append(_Rung(least=0, most=most, quote=twin, interruptions=rate, owned=False))
    return rungs


def _types(
    req: s.PlanRequest, catalog: CatalogReader, arch: Architecture, seq_len: int, assumptions: dict[str, Any]
) -> list[_Type]:
    """The pools as fleet types: pools of one GPU merged, their prices a ladder cheapest first; a GPU
    rented on demand and on spot two types (the spot ladder with the GPUs owned or held); a 422 names
    the pool's field."""
    assert req.pools is not None
    known = set(catalog.gpu_ids())
    merged: dict[str, tuple[pooled.PoolView, list[_Rung]]] = {}
    for i, pool in enumerate(req.pools):
        view, cluster = pooled.pool_cluster(req, catalog, known, i, pool)
        entry = merged.get(view.id)
        if entry is not None and entry[0].cluster.hardware != cluster.hardware:
            raise Unprocessable.for_field(
                f"pools.{i}", f"pools of {view.id} differ in their node or links: give one pool per GPU type"
            )
        assumptions.update(cluster.assumptions)
        merged[view.id] = (pooled.PoolView(view=view, cluster=cluster, n_gpus=0), ([] if entry is None else entry[1]) + _rungs(
            req, catalog, i, pool, assumptions))  # fmt: skip
    types = []
    for gpu, (pool, rungs) in merged.items():
        on_spot = [r for r in rungs if r.interruptions is not None]
        ladders = [("", [r for r in rungs if r.interruptions is None])]
        if on_spot:
            ladders.append((f"{gpu} spot", on_spot + [r for r in ladders[0][1] if r.owned]))
        for name, ladder in ladders:
            if ladder:
                types.append(_type(gpu, name, pool, sorted(ladder, key=lambda r: r.quote.usd_per_gpu_hour), arch, seq_len, req))
    if len({t.kind.gpu for t in types if t.kind.min_gpus > 0}) > 2:
        raise Unprocessable.for_field("pools", "a fleet holds one or two GPU types: at most two may fix a least count (n_gpus)")
    return types


def _type(gpu: str, name: str, pool: pooled.PoolView, ladder: list[_Rung], arch: Architecture, seq_len: int,
          req: s.PlanRequest) -> _Type:  # fmt: skip
    most = sum(r.most for r in ladder)
    kind = fleet_search.FleetType(gpu=gpu, name=name, tiers=tuple((r.most, r.quote.usd_per_gpu_hour) for r in ladder),
                                  interruptions=tuple(r.interruptions for r in ladder), min_gpus=sum(r.least for r in ladder),
                                  max_gpus=most, gpus_per_node=pool.cluster.hardware.gpus_per_node,
                                  rate_flops_per_s=fleet_search.best_rate_flops_per_s(pool.cluster.hardware, arch, seq_len, req.precision),
                                  priced=any(r.quote.source.startswith("request: pools") for r in ladder))  # fmt: skip
    return _Type(
        pool=pooled.PoolView(view=pool.view, cluster=pool.cluster, n_gpus=most), kind=kind, quotes=[r.quote for r in ladder]
    )


def _spot_terms(req: s.PlanRequest, arch: Architecture) -> fleet_search.SpotTerms:
    """How a spot fleet checkpoints and restarts: the request's ``spot``, else the stated defaults."""
    o = req.spot or SpotOptions()
    return fleet_search.SpotTerms(checkpoint_bytes=spot.CHECKPOINT_BYTES_PER_PARAM * count_params(arch).total,
                                  checkpoint_seconds=o.checkpoint_seconds, restart_seconds=o.restart_seconds,
                                  interval_hours=o.checkpoint_interval_hours)  # fmt: skip


def _spot_text(terms: fleet_search.SpotTerms | None) -> str:
    assert terms is not None
    checkpoint = (f"{terms.checkpoint_seconds:g} s" if terms.checkpoint_seconds is not None else
                  f"{terms.checkpoint_bytes / 1e9:,.0f} GB ({spot.CHECKPOINT_BYTES_PER_PARAM} bytes a parameter: weights, fp32 "
                  f"master copy, Adam moments) written at {terms.write_bytes_per_s_per_node / 1e9:g} GB/s per node of the fleet")  # fmt: skip
    interval = f"every {terms.interval_hours:g} h" if terms.interval_hours is not None else "at Daly's optimal interval"
    return (f"spot fleets: expected hours and dollars (Daly 2006's complete model): the job is interrupted when any spot node "
            f"is (each pool's rate per node-hour, summed over its nodes), checkpoints of {checkpoint} {interval} (Young's "
            f"sqrt(2 C M) to first order), restarts of {terms.restart_seconds:g} s; the deadline is met (the budget spent) in "
            f"expectation, not with certainty; effective_time_fraction still applies to the work")  # fmt: skip


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
        cluster = self.by_gpu[kind.key].pool.cluster
        try:
            result = single.cached_plan(self.arch, cluster.hardware, self.spec(n, cluster))
        except InvalidSpecError as exc:
            return fleet_search.Outcome(hours=None, stop=exc.field == "global_batch_size")
        if not result.plans:
            return fleet_search.Outcome(hours=None)
        top = result.plans[0]
        return fleet_search.Outcome(hours=self.hours(top.tokens_per_second), used={kind.key: n},
                                    flops_per_gpu={kind.gpu: top.tflops_per_gpu * 1e12}, plan=(kind.key, n, result))  # fmt: skip

    def mixed(self, members: tuple[tuple[fleet_search.FleetType, int], ...]) -> fleet_search.Outcome:
        """A plan over two types' GPUs, a pipeline across them or a data-parallel group on each (a pipeline
        may leave some idle: the fleet is what it uses)."""
        pools = [
            pooled.PoolView(view=self.by_gpu[k.key].pool.view, cluster=self.by_gpu[k.key].pool.cluster, n_gpus=n)
            for k, n in members
        ]
        total = sum(n for _, n in members)
        try:
            found = pooled.mixed_plans(
                self.arch, pools, self.spec(total, pools[0].cluster), self.req.between_pools_bandwidth_bytes_per_s
            )
        except InvalidSpecError:
            return fleet_search.Outcome(hours=None)
        if not found.plans:
            return fleet_search.Outcome(hours=None)
        top = found.plans[0]
        used = {k.key: 0 for k, _ in members}
        for st in top.stages:
            used[members[st.pool][0].key] += st.n_gpus
        return fleet_search.Outcome(hours=self.hours(top.tokens_per_second), used=used, plan=(pools, found))


def _item(ctx: _Context, fleet: fleet_search.Fleet, energy: energy_service.EnergyTerms) -> PlanItem:
    """A fleet's plan as answers give it, each type's GPUs at the mean price of the pools it uses; on
    spot, its hours, GPU-hours, dollars and energy at the expected wall clock (``spot`` says what
    they include)."""
    req = ctx.req
    price = {ctx.by_gpu[k].kind.gpu: ctx.by_gpu[k].kind.usd_per_hour(n) / n for k, n in fleet.used.items() if n}
    if len(fleet.used) == 1:
        key, n, result = fleet.plan
        gpu = ctx.by_gpu[key].kind.gpu
        item = single.plan_item(gpu, n, result.plans[0], req.tokens, req.effective_time_fraction, price[gpu],
                                result.model_flops_per_token, energy=energy.for_gpu(ctx.by_gpu[key].pool.view))  # fmt: skip
    else:
        pools, found = fleet.plan
        item = pooled.mixed_item(found.plans[0], pools, req, price, found.model_flops_per_token, energy)
    if fleet.spot is None:
        return item
    scale = fleet.hours / fleet.work_hours
    scaled = {name: None if getattr(item, name) is None else getattr(item, name) * scale
              for name in ("gpu_hours", "energy_kwh", "co2e_tonnes")}  # fmt: skip
    return item.model_copy(update=scaled | {"training_hours": fleet.hours, "cost_usd": fleet.cost_usd,
                                            "spot": spot_detail(fleet.spot, fleet.work_hours)})  # fmt: skip


def _summary(ctx: _Context, t: _Type, result: fleet_search.TypeResult | None, item: PlanItem | None) -> s.GpuSummary:
    """One type alone: its best fleet, or why it has none."""
    quote = t.quotes[0] if len(t.quotes) == 1 else None
    tried = result.tried if result is not None else None
    if item is None:
        reason = result.reason if result is not None else "another pool's least count (n_gpus) is in every fleet"
        return single.unfit_summary(t.kind.gpu, None, reason, None, tried).model_copy(update={"pricing": _pricing(ctx, t)})
    _, _, plans = result.best.plan if result and result.best else (None, None, None)
    stats = single.search_stats(plans.search) if plans is not None else None
    assert stats is not None
    return s.GpuSummary(gpu=t.kind.gpu, n_gpus=item.n_gpus, fits=True, reason=None, tokens_per_second=item.tokens_per_second,
                        mfu=item.mfu, training_hours=item.training_hours, gpu_hours=item.gpu_hours, energy_kwh=item.energy_kwh,
                        co2e_tonnes=item.co2e_tonnes, cost_usd=item.cost_usd, price=quote, search=stats, tried_n_gpus=tried,
                        global_batch_size=ctx.batch(item.n_gpus), pricing=_pricing(ctx, t))  # fmt: skip


def _pricing(ctx: _Context, t: _Type) -> Pricing:
    return Pricing.SPOT if t.kind.spot else ctx.req.pricing


def _fleet_text(ctx: _Context, fleet: fleet_search.Fleet) -> str:
    expected = " expected" if fleet.spot is not None else ""
    return " + ".join(f"{n} {g}" for g, n in fleet.used.items() if n) + f": {fleet.hours:.1f} h, ${fleet.cost_usd:,.0f}{expected}"


def procure(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    """The fleets that meet the deadline at the least cost (or finish soonest within the budget), best first."""
    assert req.tokens is not None
    arch = require_architecture(resolve_model(req.model, catalog), "the planner")
    seq_len, seq_source = training_seq_len(arch, req.seq_len)
    assumptions: dict[str, Any] = {}
    types = _types(req, catalog, arch, seq_len, assumptions)
    ctx = _Context(
        req=req, arch=arch, seq_len=seq_len, fixed=single.fixed_dimensions(req.fixed), by_gpu={t.kind.key: t for t in types}
    )
    # a fixed dimension no fleet size can satisfy is the request's error, as in the deadline search
    # (service.core.plan.plan_for_deadline), not a fleet that misses the deadline at every size
    core.validate_fixed(arch, ctx.spec(1, types[0].pool.cluster))
    goal = fleet_search.Goal(
        model_flops=req.tokens * flops_per_token_by_recompute(arch, seq_len, causal=req.flash_attention)[0],
        effective_time_fraction=req.effective_time_fraction,
        deadline_hours=req.deadline_days * 24 if req.deadline_days is not None else None, budget_usd=req.budget_usd,
        spot=_spot_terms(req, arch),
    )  # fmt: skip
    found = fleet_search.procure([t.kind for t in types], goal, single=ctx.single, mixed=ctx.mixed,
                                 time_limit_seconds=PROCURE_SEARCH_SECONDS)  # fmt: skip
    if found.tally.cut:
        not_keepable()
    energy = energy_service.terms(req)
    items = [_item(ctx, f, energy) for f in found.fleets[: req.top_k]]
    alone = {g: found.types[g].best for g in found.types if found.types[g].best is not None}
    alone_items = {g: _item(ctx, f, energy) for g, f in alone.items()}  # type: ignore[arg-type]
    summaries = [_summary(ctx, t, found.types.get(t.kind.key), alone_items.get(t.kind.key)) for t in types]
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
                    "spot": _spot_text(goal.spot) if any(t.kind.spot for t in types) else None,
                    } | single.options_assumptions(req)  # fmt: skip
    for t in types:
        assumptions[f"{t.kind.key}.fleet_prices"] = "; ".join(
            f"up to {n} at ${usd:g}/GPU-h{'' if rate is None else f' on spot ({rate:g} interruptions per node-hour)'} "
            f"({q.chosen}: {q.source}{f'; as of {q.as_of.isoformat()}' if q.as_of else ''})"
            for (n, usd), rate, q in zip(t.kind.tiers, t.kind.interruptions, t.quotes, strict=True)
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
