"""``POST /v1/plan`` over pools of GPU types: each pool's own plans (the single-type planner), the
pipelines across pools (:mod:`service.core.plan_mixed`) and the data-parallel groups of different
types (:mod:`service.core.mixed_groups`), ranked together, with the best plan on one
pool as ``best_homogeneous``. Without ``pools`` the request is :func:`service.services.plan.plan`'s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core import mixed_groups
from service.core import plan as core
from service.core import plan_mixed as mixed
from service.core.architecture import Architecture
from service.core.compute import require_architecture
from service.core.context import check_context
from service.core.cost import planned_training_cost
from service.core.errors import InvalidSpecError
from service.core.fp8 import check_recipe
from service.core.memory import Precision
from service.core.pipeline import PipelineSchedule
from service.errors import Unprocessable
from service.schemas import plan as s
from service.schemas.cost import PriceQuote
from service.schemas.layout import PlanItem, PlanMemory, PlanStage, StepTimeParts
from service.services import energy as energy_service
from service.services import plan as single
from service.services.answers import not_keepable
from service.services.catalog_reader import CatalogReader, GpuView, HeavyWork, light_work_only
from service.services.lru import LruCache
from service.services.models import catalog_gpu, resolve_model, training_seq_len
from service.services.pricing import listed_price

MIXED_FORMULA = (
    "plans over pools: one pipeline through the pools, each stage dp x tp GPUs of one type with its own layers; step = "
    "sum_j t_j + (m-1) max_j t_j (1F1B over unequal stages: Alpa §5.1 Eq. 2; Metis §5; FlashFlex §4) + sends at the slowest "
    "boundary's link + the slowest stage's own gradient reduction and optimizer; each stage's time and memory from the "
    "single-type models. Or data-parallel groups, one per pool: each group's step = the single-type step of its replicas at "
    "its own micro-batch size and count; with one tp x pp split in all, its gradient reduction and optimizer those of one "
    "ring over every replica at the slowest link between the pools (ZeRO over all replicas); with each group's own split, "
    "its own reduction over its own replicas (ZeRO over them) + an all-reduce across the groups in which each GPU of group k "
    "moves 2(G-1)/G * P * gradient bytes / n_k over its own scale-out link (capped by the link between the pools), the "
    "slowest group setting its pace (hierarchical all-reduce: Jia et al. 2018; Mikami et al. 2018); step = the slowest "
    "group's, the batch split so they finish together (Whale, ATC'22)"
)
MIXED_PLANS: LruCache[mixed.MixedResult] = LruCache(64)  # pipelines over pools already searched (pure)


@dataclass(frozen=True)
class PoolView:
    view: GpuView
    cluster: single.Cluster
    n_gpus: int


def plan(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    """``POST /v1/plan``: over pools when the request gives them, else one GPU type at a time."""
    if req.pools is None:
        return single.plan(req, catalog)
    return plan_over_pools(req, catalog)


def pool_cluster(
    req: s.PlanRequest, catalog: CatalogReader, known: set[str], i: int, pool: s.Pool
) -> tuple[GpuView, single.Cluster]:
    """Pool ``i``'s GPU and hardware; a 422 names its field when the GPU is unknown, cannot run the
    request's FP8 (no FP8 tensor cores; MXFP8 off Blackwell) or a count is not whole nodes."""
    if pool.gpu not in known:
        raise Unprocessable.for_field(f"pools.{i}.gpu", f"unknown GPU {pool.gpu!r}; known: {', '.join(sorted(known))}")
    view = catalog_gpu(catalog, pool.gpu)
    cluster = single.cluster_for(view, req.precision, gpus_per_node=pool.gpus_per_node,
                                 intra_node_bandwidth_bytes_per_s=pool.intra_node_bandwidth_bytes_per_s,
                                 inter_node_bandwidth_bytes_per_s=pool.inter_node_bandwidth_bytes_per_s,
                                 precision_field=f"pools.{i}.gpu", **single.cluster_options(req))  # fmt: skip
    if req.precision is Precision.FP8:
        check_recipe(req.fp8_recipe, gpu=view.id, blackwell=single.is_blackwell(cluster), field=f"pools.{i}.gpu")
    node = cluster.hardware.gpus_per_node
    for name in ("n_gpus", "max_n_gpus"):
        n = getattr(pool, name)
        if n is not None and n > node and n % node:
            raise Unprocessable.for_field(
                f"pools.{i}.{name}", f"{name}={n} is not a multiple of gpus_per_node={node} (whole nodes)"
            )
    return view, cluster


def _pools(req: s.PlanRequest, catalog: CatalogReader, assumptions: dict[str, Any]) -> list[PoolView]:
    """The request's pools as clusters (a 422 naming the pool's field), pools of the same GPU on
    the same hardware merged into one (the step-time model cannot tell them apart) where their sum
    fills whole nodes or fits in one; else their whole nodes merged and each pool of part of a node
    kept apart (8 + 8 + 4 GPUs of 8 a node plan as 16 and 4: 20 fill no whole nodes)."""
    assert req.pools is not None
    known = set(catalog.gpu_ids())
    given: list[PoolView] = []
    for i, pool in enumerate(req.pools):
        view, cluster = pool_cluster(req, catalog, known, i, pool)
        assert pool.n_gpus is not None  # pools without max_n_gpus give n_gpus (service.schemas.plan.Pool)
        assumptions.update(cluster.assumptions)
        given.append(PoolView(view=view, cluster=cluster, n_gpus=pool.n_gpus))
    pools: list[PoolView] = []
    for p in given:
        kin = [q for q in given if q.view.id == p.view.id and q.cluster.hardware == p.cluster.hardware]
        if p is not kin[0]:
            continue  # merged with (or kept beside) the first of its kind
        node, total = p.cluster.hardware.gpus_per_node, sum(q.n_gpus for q in kin)
        whole = [q for q in kin if q.n_gpus % node == 0]
        parts = [kin] if total <= node or total % node == 0 else [whole] * bool(whole) + [[q] for q in kin if q.n_gpus % node]
        pools.extend(PoolView(view=p.view, cluster=p.cluster, n_gpus=sum(q.n_gpus for q in part)) for part in parts)
        if len(parts) < len(kin):
            assumptions[f"{p.view.id}.pools_merged"] = "pools of the same GPU on the same hardware plan as one pool of their sum"
    return pools


def mixed_plans(arch: Architecture, pools: list[PoolView], spec: core.PlanSpec, between: int | None) -> mixed.MixedResult:
    """:func:`service.core.mixed_groups.plan_over_pools` (pipelines across the pools and data-parallel
    groups of different types), memoised; heavy work (never on the event loop)."""
    core_pools = [mixed.Pool(gpu=p.view.id, hardware=p.cluster.hardware, n_gpus=p.n_gpus, blackwell=single.is_blackwell(p.cluster))
                  for p in pools]  # fmt: skip
    key = (arch, tuple(core_pools), between, *single.spec_key(spec))
    found = MIXED_PLANS.get(key)
    if found is not None:
        return found
    if light_work_only():
        raise HeavyWork("plan search over pools")
    result = mixed_groups.plan_over_pools(arch, core_pools, spec, between_pools_bytes_per_s=between)
    if result.search.cut:
        not_keepable()
    else:
        MIXED_PLANS.put(key, result)
    return result


def mixed_item(plan: mixed.MixedPlan, pools: list[PoolView], req: s.PlanRequest, prices: dict[str, float | None],
                flops_per_token: float, energy: energy_service.EnergyTerms) -> PlanItem:  # fmt: skip
    """One pipeline over pools as answers give it; with ``tokens``, hours and dollars at each
    type's price per GPU-hour (None when one is unpriced) and energy at each type's TDP."""
    used = {p.view.id: 0 for p in pools}
    for st in plan.stages:
        used[st.gpu] += st.n_gpus
    run = None
    if req.tokens is not None:
        quotes = [prices.get(gpu) for gpu, n in used.items() if n]
        usd = None if any(q is None for q in quotes) else sum(prices[g] * n for g, n in used.items() if n) / plan.n_gpus  # type: ignore[operator]
        run = planned_training_cost(tokens=req.tokens, model_flops=flops_per_token * req.tokens, tokens_per_second=plan.tokens_per_second,
                                    n_gpus=plan.n_gpus, effective_time_fraction=req.effective_time_fraction, usd_per_gpu_hour=usd)  # fmt: skip
    energy_fields: dict[str, float | None] = {"energy_kwh": None, "co2e_tonnes": None}
    if run is not None:
        views = {p.view.id: p.view for p in pools}  # one GPU's pools counted once, at all of its GPUs used
        parts = [energy.for_gpu(views[gpu]).fields(run.wall_clock_hours * n) for gpu, n in used.items() if n]
        if all(part["energy_kwh"] is not None for part in parts):
            energy_fields = {name: sum(part[name] or 0.0 for part in parts) for name in energy_fields}
    stages = [PlanStage(gpu=st.gpu, n_gpus=st.n_gpus, layers=st.layers, tp=st.tp, dp=st.dp, micro_batch_size=st.micro_batch_size,
                        gradient_accumulation_steps=st.microbatches, recompute=st.recompute, zero_stage=st.zero_stage, group=st.group,
                        per_gpu_total_bytes=st.memory.total, per_gpu=_memory(st.memory), step_time=StepTimeParts(**st.step))
              for st in plan.stages]  # fmt: skip
    fullest = max(plan.stages, key=lambda st: st.memory.total)
    return PlanItem(
        gpu=" + ".join(dict.fromkeys(st.gpu for st in plan.stages)), n_gpus=plan.n_gpus, tp=plan.tp or max(st.tp for st in plan.stages),
        pp=plan.pp or len(plan.stages), dp=plan.dp, cp=1, ep=1, zero_stage=plan.zero_stage, micro_batch_size=plan.micro_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps, recompute=plan.recompute,
        sequence_parallel=any(st.tp > 1 for st in plan.stages), virtual_stages=1, offload_optimizer=False,
        pipeline_schedule=PipelineSchedule.ONE_F_ONE_B, per_gpu_total_bytes=fullest.memory.total, per_gpu=_memory(fullest.memory),
        cpu_offload_bytes=0, step_time_seconds=plan.step_seconds, step_time=StepTimeParts(**plan.step),
        tokens_per_second=plan.tokens_per_second, tflops_per_gpu=plan.tflops_per_gpu, mfu=plan.mfu, hfu=plan.hfu,
        training_hours=run.wall_clock_hours if run else None, gpu_hours=run.gpu_hours if run else None,
        cost_usd=run.cost_usd if run else None, stages=stages, cross_group_seconds=plan.cross_group_seconds, **energy_fields,
    )  # fmt: skip


def _memory(mem: Any) -> PlanMemory:
    return PlanMemory(weights_bytes=mem.weights, gradients_bytes=mem.gradients, optimizer_bytes=mem.optimizer,
                      activations_bytes=mem.activations)  # fmt: skip


def plan_over_pools(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    """Each pool's plans, the pipelines over the pools, ranked by step time (one global batch)."""
    arch = require_architecture(resolve_model(req.model, catalog), "the planner")
    seq_len, seq_source = training_seq_len(arch, req.seq_len)
    assumptions: dict[str, Any] = {}
    pools = _pools(req, catalog, assumptions)
    total = sum(p.n_gpus for p in pools)
    batch, batch_source = single.batch_size(seq_len, req.global_batch_size, req.global_batch_tokens, total)
    fixed = single.fixed_dimensions(req.fixed)
    assumptions |= {"seq_len": seq_len, "seq_len_source": seq_source, "global_batch_size": batch, "global_batch_source": batch_source,
                    "effective_time_fraction": req.effective_time_fraction, "usable_memory_fraction": req.usable_memory_fraction,
                    "flash_attention": req.flash_attention, "between_pools_bandwidth_bytes_per_s": req.between_pools_bandwidth_bytes_per_s
                    or "the slower pool's scale-out link"} | single.options_assumptions(req)  # fmt: skip
    if warning := check_context(arch, seq_len):
        assumptions["seq_len_warning"] = warning
    energy = energy_service.terms(req)
    prices = {p.view.id: (None if req.tokens is None else listed_price(catalog, p.view.id, req, many=True)) for p in pools}
    items: list[PlanItem] = []
    summaries: list[s.GpuSummary] = []
    searched: list[str] = []
    considered = feasible = 0
    seconds, cut = 0.0, False
    for pool in pools:
        spec = core.PlanSpec(n_gpus=pool.n_gpus, seq_len=seq_len, global_batch_size=batch, precision=req.precision,
                             optimizer=req.optimizer, flash_attention=req.flash_attention, dropout=req.dropout, fixed=fixed,
                             top_k=req.top_k, usable_memory_fraction=req.usable_memory_fraction,
                             **single.spec_options(req, pool.cluster))  # fmt: skip
        try:
            result = single.cached_plan(arch, pool.cluster.hardware, spec)
        except InvalidSpecError as exc:
            summaries.append(single.unfit_summary(pool.view.id, pool.n_gpus, f"{exc.field}: {exc.reason}", None, None))
            continue
        considered, feasible = considered + result.search.considered, feasible + result.search.feasible
        seconds, cut = seconds + result.search.seconds, cut or result.search.cut
        searched.append(f"{pool.view.id} x{pool.n_gpus}: {result.search.searched}")
        price = prices[pool.view.id]
        usd = price.usd_per_gpu_hour if price else None
        pool_items = [single.plan_item(pool.view.id, pool.n_gpus, p, req.tokens, req.effective_time_fraction, usd,
                                       result.model_flops_per_token, energy=energy.for_gpu(pool.view)) for p in result.plans]  # fmt: skip
        items.extend(pool_items)
        summaries.append(_summary(pool, pool_items, result, price, batch))
    best_homogeneous = min(items, key=lambda i: i.step_time_seconds) if items else None
    reasons = [f"{g.gpu}: {g.reason}" for g in summaries if not g.fits]
    if len(pools) > 1:
        spec = core.PlanSpec(n_gpus=total, seq_len=seq_len, global_batch_size=batch, precision=req.precision, optimizer=req.optimizer,
                             flash_attention=req.flash_attention, dropout=req.dropout, fixed=fixed, top_k=req.top_k,
                             usable_memory_fraction=req.usable_memory_fraction, **single.spec_options(req, pools[0].cluster))  # fmt: skip
        found = mixed_plans(arch, pools, spec, req.between_pools_bandwidth_bytes_per_s)
        considered, feasible = considered + found.search.considered, feasible + found.search.feasible
        seconds, cut = seconds + found.search.seconds, cut or found.search.cut
        searched.append(found.search.searched)
        usd = {gpu: q.usd_per_gpu_hour if q else None for gpu, q in prices.items()}
        items.extend(mixed_item(p, pools, req, usd, found.model_flops_per_token, energy) for p in found.plans)
        if found.reason and not found.plans:
            reasons.append(f"pipelines over the pools: {found.reason}")
    items.sort(key=lambda i: (i.step_time_seconds, i.per_gpu_total_bytes))
    items = items[: req.top_k]
    if req.tokens is not None:
        assumptions |= energy.assumptions([p.view for p in pools], per_gpu=True)
    fitting = [g for g in summaries if g.fits]
    priced = [g for g in fitting if g.cost_usd is not None]
    return s.PlanResponse(
        plans=items,
        search=s.SearchStats(considered=considered, feasible=feasible, returned=len(items), seconds=seconds, cut=cut,
                             searched="; ".join(searched) or "nothing"),
        reason=None if items else "; ".join(reasons), gpus=summaries, best_homogeneous=best_homogeneous,
        fastest_gpu=max(fitting, key=lambda g: g.tokens_per_second or 0.0).gpu if fitting else None,
        cheapest_gpu=min(priced, key=lambda g: g.cost_usd or 0.0).gpu if priced else None,
        global_batch_size=batch, seq_len=seq_len,
        formulas=[*single.FORMULAS, MIXED_FORMULA] + ([energy_service.FORMULA] if req.tokens is not None else []),
        assumptions=assumptions,
    )  # fmt: skip


def _summary(
    pool: PoolView, pool_items: list[PlanItem], result: core.PlanResult, price: PriceQuote | None, batch: int
) -> s.GpuSummary:
    """One pool's best plan alone, or why it has none."""
    stats = s.SearchStats(considered=result.search.considered, feasible=result.search.feasible, returned=result.search.returned,
                          seconds=result.search.seconds, cut=result.search.cut, searched=result.search.searched)  # fmt: skip
    if not pool_items:
        return single.unfit_summary(pool.view.id, pool.n_gpus, result.reason, stats, None)
    top = pool_items[0]
    return s.GpuSummary(gpu=pool.view.id, n_gpus=pool.n_gpus, fits=True, reason=None, tokens_per_second=top.tokens_per_second,
                        mfu=top.mfu, training_hours=top.training_hours, gpu_hours=top.gpu_hours, energy_kwh=top.energy_kwh,
                        co2e_tonnes=top.co2e_tonnes, cost_usd=top.cost_usd, price=price, search=stats, global_batch_size=batch)  # fmt: skip
