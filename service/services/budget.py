"""Budget use cases: dollars, FLOPs or a target loss to the model size (scaling laws), timed by
the best plan of that size on the request's cluster (the step-time model, as /v1/cost/training
times a run: :mod:`service.services.budget_plan`), or at a stated MFU where the request gives no
cluster or gives its own throughput; and the lifetime optimum of training plus serving, in FLOPs
(Sardana et al.) and in dollars (:mod:`service.services.lifetime`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.core import compute, cost, scaling
from service.core.architecture import Architecture
from service.errors import Unprocessable
from service.schemas import budget as s
from service.schemas import inputs
from service.schemas.cost import PriceQuote
from service.schemas.layout import PlanItem
from service.services import budget_plan as bp
from service.services import energy as energy_service
from service.services import plan as plan_service
from service.services import rates
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import catalog_gpu
from service.services.pricing import resolve_price

MFU_NOTE = "a stated MFU (the request's, else the GPU's catalog default, else 0.40): give n_gpus or deadline_days to time the run by its plan"


@dataclass(frozen=True)
class Economics:
    """GPU-hours, wall clock, dollars and the price of a run on the request's GPU, how they were
    timed (a plan or an MFU), and their energy and CO2e when asked for (all None without a GPU)."""

    gpu_hours: float | None = None
    wall_clock_hours: float | None = None
    cost_usd: float | None = None
    price: PriceQuote | None = None
    assumptions: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, float | None] = field(default_factory=dict)  # energy_kwh and co2e_tonnes, when asked for
    formulas: tuple[str, ...] = ()
    n_gpus: int | None = None
    mfu: float | None = None
    time_from: str | None = None
    fits: bool | None = None
    reason: str | None = None
    plan: PlanItem | None = None
    architecture: s.ShapeUsed | None = None


BudgetLike = s.BudgetRequest | s.ForLossRequest | s.LifetimeRequest  # a throughput, a price choice and an optional GPU


def planned(req: BudgetLike) -> bool:
    """Whether the planner times the run: a GPU and a cluster (n_gpus or a deadline), and no
    throughput of the request's own."""
    return (
        req.gpu is not None
        and (req.n_gpus is not None or req.deadline_days is not None)
        and req.mfu is None
        and req.achieved_tflops_per_gpu is None
    )


def require_used(req: BudgetLike, fixed: Architecture | None = None) -> None:
    """A 422 naming each input the answer would not read, and why: one that times, prices or weighs
    the run on a GPU type (:data:`service.schemas.budget.NEEDS_GPU`) without ``gpu``, one only the
    planner reads when it does not run, one only a stated MFU reads when the planner runs
    (:func:`service.schemas.budget.unused_inputs`), and where it runs a mixture's step-time option on
    the dense shapes it plans (the families', or the explicit model ``fixed`` without experts) and
    a fine-tune's (no budget run has adapters). Never an answer that silently drops one."""
    reasons = {name: f"needs gpu ({s.NEEDS_GPU[name]})" for name in s.given_without_gpu(req)}
    reasons |= {name: why for name, why in s.unused_inputs(req, planned(req)).items() if name not in reasons}
    if planned(req):
        moe = fixed is not None and fixed.is_moe
        reasons |= inputs.inapplicable_options(req, moe=moe, adapters=False)
    if reasons:
        raise Unprocessable.for_fields(reasons)


def price_for(catalog: CatalogReader, gpu: GpuView, req: BudgetLike) -> PriceQuote:
    price = resolve_price(catalog, gpu.id, req)
    if price.usd_per_gpu_hour <= 0:
        raise Unprocessable.for_field(
            "gpu", f"the current price for {gpu.id} is $0/GPU-hour, so any budget buys unlimited compute; give usd_per_gpu_hour"
        )
    return price


def _energy(req: BudgetLike) -> energy_service.EnergyTerms | None:
    return energy_service.terms(req) if isinstance(req, s.BudgetRequest | s.ForLossRequest) else None


def mfu_economics(catalog: CatalogReader, req: BudgetLike, compute_flops: float, reason: str | None = None) -> Economics:
    """The run timed at the MFU: GPU-hours = FLOPs / (peak * MFU * scaling efficiency) / 3600; the
    wall clock on ``n_gpus`` (or on the cluster a deadline needs). ``reason``: why no plan times it."""
    if req.gpu is None:
        return Economics()
    gpu = catalog_gpu(catalog, req.gpu)
    rate = rates.rate(gpu, req)
    efficiency, efficiency_source = rates.scaling_efficiency(req)
    price = resolve_price(catalog, gpu.id, req)
    r = cost.training_cost(compute_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=1, scaling_efficiency=efficiency,
                           usd_per_gpu_hour=price.usd_per_gpu_hour, mfu=rate.mfu)  # fmt: skip
    n, unmet = req.n_gpus, None
    if n is None and req.deadline_days is not None:
        node = gpu.gpus_per_node or plan_service.DEFAULT_GPUS_PER_NODE
        n = bp.gpus_for_deadline(r.gpu_hours, req.deadline_days * 24, node)
        if n is None:  # no cluster spends the GPU-hours in time: say so, never drop the deadline
            unmet = bp.deadline_unmet(r.gpu_hours, req.deadline_days)
    energy = _energy(req)
    return Economics(
        gpu_hours=r.gpu_hours,
        wall_clock_hours=r.gpu_hours / n if n else None,
        cost_usd=r.cost_usd,
        price=price,
        assumptions=rate.assumptions
        | {"scaling_efficiency": efficiency, "scaling_efficiency_source": efficiency_source,
           "price_as_of": price.as_of.isoformat() if price.as_of else None,
           "time_from": MFU_NOTE if reason is None else f"a stated MFU: no plan times the run ({reason})"}
        | (energy.assumptions([gpu], per_gpu=False) if energy else {}),
        energy=energy.for_gpu(gpu).fields(r.gpu_hours) if energy else {},
        formulas=(energy_service.FORMULA,) if energy else (),
        n_gpus=n, mfu=rate.mfu, time_from="mfu", fits=None if (reason or unmet) is None else False, reason=reason or unmet,
    )  # fmt: skip


def plan_economics(
    req: BudgetLike, gpu: GpuView, price: PriceQuote, timed: bp.Timed, compute_flops: float, notes: dict[str, Any]
) -> Economics:
    """A run of ``compute_flops`` model FLOPs timed by ``timed``'s plan: wall clock = FLOPs / (the
    plan's model FLOP/s) / effective-time fraction, GPU-hours = n_gpus * wall clock, as
    /v1/cost/training prices a planned run."""
    assert timed.best is not None
    eff = req.effective_time_fraction
    wall_hours = timed.wall_clock_hours(compute_flops, eff)
    gpu_hours = wall_hours * timed.n_gpus
    energy = _energy(req)
    gpu_energy = energy.for_gpu(gpu) if energy else None
    tokens = compute_flops / (6 * timed.params)  # what the planned architecture trains
    item = plan_service.plan_item(gpu.id, timed.n_gpus, timed.best, tokens, eff, price.usd_per_gpu_hour, 6 * timed.params,
                                  energy=gpu_energy)  # fmt: skip
    return Economics(
        gpu_hours=gpu_hours,
        wall_clock_hours=wall_hours,
        cost_usd=cost.dollars(gpu_hours, price.usd_per_gpu_hour),
        price=price,
        assumptions=timed.cluster.assumptions
        | plan_service.options_assumptions(req)
        | notes
        | {"time_from": "the best plan of the size on the cluster (step-time model, POST /v1/plan)",
           "plan": plan_service.plan_summary(timed.best), "predicted_mfu": timed.best.mfu, "seq_len": timed.seq_len,
           "global_batch_size": timed.global_batch_size, "effective_time_fraction": eff, "precision": req.precision.value,
           "architecture_params": timed.params, "architecture_tokens": tokens,
           "price_as_of": price.as_of.isoformat() if price.as_of else None, "price_chosen": price.chosen}
        | (energy.assumptions([gpu], per_gpu=False) if energy else {}),
        energy=gpu_energy.fields(gpu_hours) if gpu_energy else {},
        formulas=("wall clock = FLOPs / (6 * P * plan tokens/s) / effective-time fraction; GPU-hours = n_gpus * wall clock "
                  "(step-time model: POST /v1/plan)", *((energy_service.FORMULA,) if energy else ())),
        n_gpus=timed.n_gpus, mfu=compute_flops / (gpu_hours * cost.SECONDS_PER_HOUR * timed.cluster.hardware.peak_flops_per_s),
        time_from="plan", fits=True, plan=item, architecture=timed.shape_used(),
    )  # fmt: skip


def _budget_response(
    shape: scaling.TrainingShape, economics: Economics, assumptions: dict[str, Any], extra_formulas: tuple[str, ...] = (),
    alternatives: list[s.BudgetPoint] | None = None,
) -> s.BudgetResponse:  # fmt: skip
    wall = economics.wall_clock_hours
    return s.BudgetResponse(
        compute_flops=shape.compute_flops,
        params=round(shape.params),  # counts are answered as integer-valued numbers (API.md)
        tokens=round(shape.tokens),
        tokens_per_param=shape.tokens_per_param,
        predicted_loss=shape.predicted_loss,
        optimal_params=round(shape.optimal_params),
        optimal_tokens=round(shape.optimal_tokens),
        optimal_loss=shape.optimal_loss,
        loss_gap=shape.loss_gap,
        loss=s.LOSS_MEANING,
        gpu_hours=economics.gpu_hours,
        **economics.energy,
        wall_clock_hours=wall,
        wall_clock_days=None if wall is None else wall / 24,
        cost_usd=economics.cost_usd,
        price=economics.price,
        n_gpus=economics.n_gpus,
        mfu=economics.mfu,
        time_from=economics.time_from,
        fits=economics.fits,
        reason=economics.reason,
        plan=economics.plan,
        architecture=economics.architecture,
        alternatives=alternatives or [],
        formulas=[*shape.formulas, *extra_formulas, *economics.formulas],
        assumptions=assumptions | economics.assumptions,
    )


def _shape_note(req: s.BudgetRequest) -> str:
    if req.model is not None:
        return "fixed model: tokens = C / (6N), N its active parameters"
    if req.n_params is not None:
        return "fixed n_params: tokens = C / (6N)"
    if req.tokens_per_param is not None:
        return "fixed tokens_per_param r: N = sqrt(C / (6r))"
    return "compute-optimal under the law"


def budget(req: s.BudgetRequest, catalog: CatalogReader) -> s.BudgetResponse:
    fixed = bp.fixed_architecture(req, catalog)
    require_used(req, fixed)
    notes = {"scaling_law": req.scaling_law.value, "shape": _shape_note(req)}
    n_params = compute.active_params(fixed) if fixed is not None else req.n_params
    if req.budget_usd is not None:
        gpu = catalog_gpu(catalog, req.gpu)
        price = price_for(catalog, gpu, req)
        if planned(req):
            return _budget_by_plan(req, catalog, gpu, price, fixed, notes)
        rate = rates.rate(gpu, req)
        efficiency, _ = rates.scaling_efficiency(req)
        flops = cost.flops_for_budget(req.budget_usd, usd_per_gpu_hour=price.usd_per_gpu_hour,
                                      flops_per_s_per_gpu=rate.flops_per_s_per_gpu, scaling_efficiency=efficiency)  # fmt: skip
    else:
        flops = req.compute_flops
    budget_field = "budget_usd" if req.budget_usd is not None else "compute_flops"
    shape = scaling.shape_for_budget(flops, req.scaling_law, n_params=n_params, tokens_per_param=req.tokens_per_param,
                                     budget_field=budget_field)  # fmt: skip
    if req.budget_usd is None and planned(req):  # FLOPs in: the law's shape timed by its plan
        return _budget_response(shape, _time_shape(req, catalog, shape, fixed), notes)
    return _budget_response(shape, mfu_economics(catalog, req, flops), notes)


def _time_shape(
    req: BudgetLike, catalog: CatalogReader, shape: scaling.TrainingShape, fixed: Architecture | None = None
) -> Economics:
    """A shape from the law (FLOPs or a loss in) timed by the best plan of its architecture on
    the request's cluster, or on the one that meets its deadline; at the MFU, said so, when none fits."""
    assert req.gpu is not None
    gpu = catalog_gpu(catalog, req.gpu)
    price = price_for(catalog, gpu, req)
    arch, source = bp.architecture_for(shape.params, req, fixed)
    tokens = shape.compute_flops / (6 * compute.active_params(arch))
    timed, reason, notes = bp.plan_for_tokens(arch, source, gpu, req, tokens)
    if timed is None or timed.best is None:
        why = reason or f"n_gpus: no layout of the {source} shape fits {req.n_gpus} {gpu.id}: {timed.reason if timed else ''}"
        return mfu_economics(catalog, req, shape.compute_flops, why)
    return plan_economics(req, gpu, price, timed, shape.compute_flops, notes)


def _budget_by_plan(
    req: s.BudgetRequest,
    catalog: CatalogReader,
    gpu: GpuView,
    price: PriceQuote,
    fixed: Architecture | None,
    notes: dict[str, Any],
) -> s.BudgetResponse:
    """Dollars → the size whose own best plan on the cluster the dollars buy (the fixed point of
    :func:`service.services.budget_plan.solve_budget`); on a deadline, the cluster that spends
    them within it."""
    assert req.budget_usd is not None
    gpu_hours = req.budget_usd / price.usd_per_gpu_hour
    if gpu_hours < 1:
        raise Unprocessable.for_field(
            "budget_usd",
            f"${req.budget_usd:g} buys {gpu_hours:.2g} GPU-hours of {gpu.id} at ${price.usd_per_gpu_hour:g}: under one",
        )
    node = plan_service.cluster_for(gpu, req.precision, **plan_service.cluster_options(req)).hardware.gpus_per_node
    n = req.n_gpus or bp.gpus_for_deadline(gpu_hours, (req.deadline_days or 0) * 24, node)
    at_mfu = rates.rate(gpu, req).flops_per_s_per_gpu * gpu_hours * cost.SECONDS_PER_HOUR
    if n is None:
        return _unfit(req, catalog, at_mfu, fixed, notes, bp.deadline_unmet(gpu_hours, req.deadline_days or 0))
    run, n, seconds = bp.spend_within_deadline(req, gpu, n, gpu_hours, at_mfu, fixed)
    if isinstance(run, bp.Timed):
        size = compute.active_params(run.arch)
        return _unfit(req, catalog, at_mfu, fixed, notes, f"n_gpus: no layout of {size:.3g} parameters ({run.source} shape) fits "
                      f"{n} {gpu.id}: {run.reason}")  # fmt: skip
    best = run.timed.best
    assert best is not None
    if best.step_seconds > seconds:
        name = "budget_usd" if req.n_gpus is not None else "deadline_days"
        return _unfit(req, catalog, at_mfu, fixed, notes, f"{name}: one step takes {best.step_seconds:.3g} s on {n} {gpu.id}; "
                      f"the budget buys {seconds:.3g} s of training")  # fmt: skip
    n_params = compute.active_params(fixed) if fixed is not None else req.n_params
    shape = scaling.shape_for_budget(run.compute_flops, req.scaling_law, n_params=n_params,
                                     tokens_per_param=req.tokens_per_param, budget_field="budget_usd")  # fmt: skip
    economics = plan_economics(req, gpu, price, run.timed, run.compute_flops, {
        "fixed_point": f"{run.steps} plan(s): size -> architecture -> plan -> FLOPs -> size, "
                       f"{'until an architecture came back' if run.converged else 'stopped at the step limit'}",
        "n_gpus_from": "request" if req.n_gpus else "the deadline",
    })  # fmt: skip
    optimum = req.model is None and req.n_params is None and req.tokens_per_param is None
    points = bp.alternatives(req, gpu, run, seconds) if optimum else []
    return _budget_response(shape, economics, notes, alternatives=points)


def _unfit(
    req: s.BudgetRequest, catalog: CatalogReader, flops: float, fixed: Architecture | None, notes: dict[str, Any], reason: str
) -> s.BudgetResponse:
    """A budget no plan can spend as asked: the law's shape at the MFU, with ``fits: false`` and why."""
    n_params = compute.active_params(fixed) if fixed is not None else req.n_params
    shape = scaling.shape_for_budget(flops, req.scaling_law, n_params=n_params, tokens_per_param=req.tokens_per_param,
                                     budget_field="budget_usd")  # fmt: skip
    return _budget_response(shape, mfu_economics(catalog, req, flops, reason), notes)


INVERSE_FORMULA = "inverse: on the optimal path alpha*A/N^alpha = beta*B/D^beta, so L - E = (A/N^alpha)(1 + alpha/beta)"


def for_loss(req: s.ForLossRequest, catalog: CatalogReader) -> s.BudgetResponse:
    require_used(req)
    shape = scaling.compute_for_loss(req.target_loss, req.scaling_law)
    economics = _time_shape(req, catalog, shape) if planned(req) else mfu_economics(catalog, req, shape.compute_flops)
    return _budget_response(shape, economics, {"scaling_law": req.scaling_law.value, "target_loss": req.target_loss},
                            (INVERSE_FORMULA,))  # fmt: skip
