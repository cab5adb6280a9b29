"""A model size timed by its best plan on the request's cluster (the step-time model, as
/v1/cost/training times a run), and the fixed point that turns dollars into the size whose own
plan the dollars buy: size -> architecture -> plan -> model FLOP/s -> FLOPs -> size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from service.core import compute, cost, scaling, shapes
from service.core import plan as core
from service.core.architecture import Architecture
from service.core.errors import InvalidSpecError
from service.core.params import count_params
from service.errors import Unprocessable
from service.schemas import budget as s
from service.services import plan as plan_service
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import resolve_model, training_seq_len

MAX_FIXED_POINT_STEPS = 8
SIZE_TOLERANCE = 0.01  # a size within 1 % of the planned architecture's count is that architecture
MAX_CLUSTER_GPUS = 131_072


@dataclass(frozen=True)
class Timed:
    """An architecture on ``n_gpus`` GPUs: its best plan, or why none fits."""

    arch: Architecture
    source: str  # the shape family, or "request"
    n_gpus: int
    cluster: plan_service.Cluster
    seq_len: int
    global_batch_size: int
    best: core.Plan | None
    reason: str | None

    @property
    def params(self) -> float:
        """Active parameters: the P of C = 6PD, as /v1/cost/training counts them."""
        return compute.active_params(self.arch)

    @property
    def model_flops_per_s(self) -> float:
        """The cluster's model FLOP/s (6P per token) at this plan."""
        assert self.best is not None
        return 6 * self.params * self.best.tokens_per_second

    def wall_clock_hours(self, model_flops: float, effective_time_fraction: float) -> float:
        """Hours to run ``model_flops`` at this plan, downtime included (as /v1/cost/training)."""
        return model_flops / self.model_flops_per_s / effective_time_fraction / cost.SECONDS_PER_HOUR

    def shape_used(self) -> s.ShapeUsed:
        return shape_used(self.arch, self.source)


def shape_used(a: Architecture, source: str) -> s.ShapeUsed:
    """An architecture as the budget answers show it."""
    return s.ShapeUsed(source=source, params=count_params(a).total, n_layers=a.n_layers, d_model=a.d_model, n_heads=a.n_heads,
                       n_kv_heads=a.n_kv_heads, d_head=a.d_head, d_ff=a.d_ff, vocab_size=a.vocab_size,
                       tied_embeddings=a.tied_embeddings)  # fmt: skip


Planned = s.BudgetRequest | s.ForLossRequest | s.LifetimeRequest


def fixed_architecture(req: Planned, catalog: CatalogReader) -> Architecture | None:
    """The request's explicit model, which must have an architecture to be planned."""
    if not isinstance(req, s.BudgetRequest) or req.model is None:
        return None
    model = resolve_model(req.model, catalog)
    if not isinstance(model, Architecture):
        raise Unprocessable.for_field(
            "model", "give an architecture (a preset or its fields) to plan; for a bare count give n_params"
        )
    return model


def architecture_for(n_params: float, req: Planned, fixed: Architecture | None) -> tuple[Architecture, str]:
    if fixed is not None:
        return fixed, "request"
    return shapes.representative_architecture(n_params, req.shape_family), req.shape_family.value


def time_on(arch: Architecture, source: str, gpu: GpuView, n_gpus: int, req: Planned) -> Timed:
    """``arch``'s best plan on ``n_gpus`` of ``gpu`` with the request's step-time options and the
    batch /v1/cost/training would use. A cluster the batch cannot split, or no layout that fits,
    is a plan of None with the reason; options the GPU cannot run are the request's 422."""
    seq, _ = training_seq_len(arch, req.seq_len)
    batch, _ = plan_service.batch_size(seq, None, req.global_batch_tokens, n_gpus)
    cluster = plan_service.cluster_for(gpu, req.precision, **plan_service.cluster_options(req))
    try:
        result = plan_service.best_plan(arch, cluster, n_gpus=n_gpus, seq_len=seq, global_batch_size=batch,
                                        precision=req.precision, options=req)  # fmt: skip
    except InvalidSpecError as exc:
        return Timed(arch, source, n_gpus, cluster, seq, batch, None, f"{exc.field}: {exc.reason}")
    best = result.plans[0] if result.plans else None
    return Timed(arch, source, n_gpus, cluster, seq, batch, best, None if best else (result.reason or "no layout fits"))


def gpus_for_deadline(gpu_hours: float, deadline_hours: float, gpus_per_node: int) -> int | None:
    """The smallest cluster that spends ``gpu_hours`` within ``deadline_hours``: whole nodes
    (1, 2 or 4 GPUs below one node). More GPUs for the same dollars only lower the MFU."""
    need = gpu_hours / deadline_hours
    if need <= gpus_per_node:
        return next(n for n in (1, 2, 4, gpus_per_node) if n >= need or n == gpus_per_node)
    n = math.ceil(need / gpus_per_node) * gpus_per_node
    return n if n <= MAX_CLUSTER_GPUS else None


def deadline_unmet(gpu_hours: float, deadline_days: float) -> str:
    """Why no cluster of up to :data:`MAX_CLUSTER_GPUS` spends ``gpu_hours`` within the deadline."""
    return f"deadline_days: spending {gpu_hours:.3g} GPU-hours within {deadline_days:g} days needs more than {MAX_CLUSTER_GPUS:,} GPUs"


@dataclass(frozen=True)
class BudgetRun:
    """What a budget buys on a cluster: the FLOPs at the size's own plan, the plan, and how the
    fixed point went."""

    compute_flops: float
    timed: Timed
    steps: int
    converged: bool


def size_for(compute_flops: float, req: s.BudgetRequest, fixed: Architecture | None) -> float:
    """The size the law (or the request) gives for ``compute_flops``."""
    if fixed is not None:
        return compute.active_params(fixed)
    shape = scaling.shape_for_budget(compute_flops, req.scaling_law, n_params=req.n_params,
                                     tokens_per_param=req.tokens_per_param, budget_field="budget_usd")  # fmt: skip
    return shape.params


def solve_budget(
    req: s.BudgetRequest, gpu: GpuView, n_gpus: int, training_seconds: float, first_guess_flops: float, fixed: Architecture | None
) -> BudgetRun | Timed:
    """The fixed point: from a first guess of the FLOPs, the law's size, its architecture and
    best plan, the FLOPs that plan's throughput buys in ``training_seconds``; again until the law
    gives back a size within 1 % of the planned architecture's, or an architecture comes back
    (its plan, and so the FLOPs, would repeat). Shapes are discrete, so
    the walk can end in a two-cycle; it then keeps the architecture whose own FLOPs give back the
    size nearest its count. A size with no layout ends the search with that :class:`Timed`."""
    flops = first_guess_flops
    seen: dict[Architecture, tuple[Timed, float]] = {}
    timed: Timed | None = None
    for step in range(1, MAX_FIXED_POINT_STEPS + 1):
        size = size_for(flops, req, fixed)
        if timed is not None and abs(math.log(size / timed.params)) <= SIZE_TOLERANCE:
            return BudgetRun(flops, timed, step - 1, True)  # the law gives back this architecture's size
        arch, source = architecture_for(size, req, fixed)
        if arch in seen:
            return _settle(seen, req, fixed, step - 1, converged=True)
        timed = time_on(arch, source, gpu, n_gpus, req)
        if timed.best is None:
            return timed
        flops = timed.model_flops_per_s * training_seconds
        seen[arch] = (timed, flops)
        if fixed is not None:
            break
    return _settle(seen, req, fixed, len(seen), converged=fixed is not None)


def _settle(
    seen: dict[Architecture, tuple[Timed, float]], req: s.BudgetRequest, fixed: Architecture | None, steps: int, converged: bool
) -> BudgetRun:
    """Of the architectures planned, the one most consistent with itself: the size the law gives
    for the FLOPs its own plan buys, nearest its own active parameters."""

    def miss(item: tuple[Timed, float]) -> float:
        timed, flops = item
        return abs(math.log(size_for(flops, req, fixed) / timed.params))

    timed, flops = min(seen.values(), key=miss)
    return BudgetRun(flops, timed, steps, converged)


def spend_within_deadline(
    req: s.BudgetRequest, gpu: GpuView, n_gpus: int, gpu_hours: float, first_guess_flops: float, fixed: Architecture | None
) -> tuple[BudgetRun | Timed, int, float]:
    """``gpu_hours`` spent on ``n_gpus`` (:func:`solve_budget`), with the cluster size and its training
    seconds. A deadline's cluster with no layout (33 nodes cannot split a 512-sequence batch) gives
    way to the next two counts of :func:`service.core.plan.gpu_counts`' series above it, which spend
    the same dollars sooner (plan_for_deadline's walk); of those that plan, the one whose plan buys
    the most FLOPs."""

    def spend(n: int) -> tuple[BudgetRun | Timed, int, float]:
        seconds = gpu_hours / n * cost.SECONDS_PER_HOUR * req.effective_time_fraction
        return solve_budget(req, gpu, n, seconds, first_guess_flops, fixed), n, seconds

    first = spend(n_gpus)
    if req.n_gpus is not None or isinstance(first[0], BudgetRun):
        return first
    node = plan_service.cluster_for(gpu, req.precision, **plan_service.cluster_options(req)).hardware.gpus_per_node
    larger = [n for n in core.gpu_counts(node, MAX_CLUSTER_GPUS) if n > n_gpus][:2]
    runs = [(run, n, seconds) for run, n, seconds in map(spend, larger) if isinstance(run, BudgetRun)]
    return max(runs, key=lambda planned: planned[0].compute_flops, default=first)


ALTERNATIVE_SIZES = (0.5, 2.0)  # IsoFLOP neighbours of the optimum (Hoffmann et al. 2022 §3.2, Fig. 3)
OVERTRAINED_TOKENS_PER_PARAM = (100.0, 500.0)  # Llama 3 8B: ~1,900 (15T tokens); Llama 2 7B: ~290


def alternatives(req: s.BudgetRequest, gpu: GpuView, run: BudgetRun, training_seconds: float) -> list[s.BudgetPoint]:
    """Other sizes for the same dollars on the same cluster, each timed by its own plan: the
    IsoFLOP neighbours at half and twice the optimum, and over-trained sizes at 100 and 500
    tokens per parameter of the optimum's FLOPs (the size a team picks to serve cheaper). Each
    answers the architecture it planned (the family's shape nearest the size: its active
    parameters, the P of C = 6PD its plan's FLOPs count) with the tokens that plan trains and their loss."""
    optimum = scaling.optimal_shape(run.compute_flops, req.scaling_law)[0]
    sizes = [(f"isoflop {k:g}x", optimum * k) for k in ALTERNATIVE_SIZES]
    sizes += [(f"tokens_per_param {r:g}", math.sqrt(run.compute_flops / (6 * r))) for r in OVERTRAINED_TOKENS_PER_PARAM]
    fit = scaling.FITS[req.scaling_law]
    out = []
    for label, size in sizes:
        arch, source = architecture_for(size, req, None)
        timed = time_on(arch, source, gpu, run.timed.n_gpus, req)
        params = timed.params  # the architecture planned, not the size asked for (coarse at small sizes)
        if timed.best is None:
            out.append(s.BudgetPoint(label=label, params=params, tokens=0.0, tokens_per_param=0.0, compute_flops=0.0,
                                     predicted_loss=None, mfu=None, plan=timed.reason))  # fmt: skip
            continue
        flops = timed.model_flops_per_s * training_seconds
        tokens = round(flops / (6 * params))  # counts are integer-valued (API.md)
        out.append(s.BudgetPoint(label=label, params=params, tokens=tokens, tokens_per_param=tokens / params, compute_flops=flops,
                                 predicted_loss=fit.loss(params, tokens), mfu=timed.best.mfu,
                                 plan=plan_service.plan_summary(timed.best)))  # fmt: skip
    return out


def plan_for_tokens(
    arch: Architecture, source: str, gpu: GpuView, req: Planned, tokens: float
) -> tuple[Timed | None, str | None, dict[str, Any]]:
    """``arch`` trained on ``tokens`` tokens: on the request's ``n_gpus``, or on the cluster size of
    least GPU-hours that meets ``deadline_days`` (:func:`service.services.plan.deadline_search`). None with the reason when no size meets the deadline."""
    if req.n_gpus is not None:
        return time_on(arch, source, gpu, req.n_gpus, req), None, {}
    assert req.deadline_days is not None
    seq, _ = training_seq_len(arch, req.seq_len)
    cluster = plan_service.cluster_for(gpu, req.precision, **plan_service.cluster_options(req))
    spec = core.PlanSpec(n_gpus=cluster.hardware.gpus_per_node, seq_len=seq, global_batch_size=1, precision=req.precision,
                         top_k=1, time_limit_seconds=plan_service.DEADLINE_SEARCH_SECONDS,
                         **plan_service.spec_options(req, cluster))  # fmt: skip
    found = plan_service.deadline_search(
        arch, cluster.hardware, spec, tokens=tokens, deadline_days=req.deadline_days,
        effective_time_fraction=req.effective_time_fraction,
        batch_for=lambda n: plan_service.batch_size(seq, None, req.global_batch_tokens, n)[0],
    )  # fmt: skip
    notes = {"deadline_sizes_tried": ", ".join(str(n) for n, _ in found.tried)}
    if found.result is None or found.n_gpus is None or not found.result.plans:
        return None, f"deadline_days: no cluster of {gpu.id} trains {tokens:.3g} tokens within {req.deadline_days:g} days", notes
    timed = Timed(arch, source, found.n_gpus, cluster, seq,
                  plan_service.batch_size(seq, None, req.global_batch_tokens, found.n_gpus)[0], found.result.plans[0], None)  # fmt: skip
    return timed, None, notes
