"""Training cost and the comparison of GPU types: FLOPs, then time from the planner's best plan
(the step-time model) when the architecture is known and no throughput is given, else from the
MFU (:mod:`service.services.rates`), priced by :mod:`service.services.pricing`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from service.core import compute, cost, finetune, memory, spot
from service.core.architecture import Architecture, ModelShape
from service.core.errors import InvalidSpecError
from service.core.finetune_spec import FinetuneSpec
from service.core.memory import Precision
from service.core.params import count_params
from service.core.plan import PlanResult
from service.errors import Unprocessable
from service.schemas import cost as s
from service.schemas import inputs
from service.schemas.base import sent
from service.schemas.finetune import Finetune
from service.schemas.layout import StepTimeOptions
from service.schemas.spot import spot_detail
from service.services import energy as energy_service
from service.services import plan as plan_service
from service.services import rates
from service.services.calculators import finetune_assumptions, finetune_compute_detail
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import catalog_gpu, model_assumptions, model_training_seq_len, resolve_model, training_seq_len
from service.services.plan import Cluster
from service.services.pricing import resolve_price


@dataclass(frozen=True)
class Planned:
    """The planner's answer for a training run on a catalog GPU: its best plan, or why none fits."""

    plan: PlanResult | None
    cluster: Cluster | None
    seq_len: int
    global_batch_size: int
    reason: str | None
    effective_time_fraction: float = cost.EFFECTIVE_TRAINING_TIME_FRACTION
    options: StepTimeOptions | None = None
    precision: Precision = Precision.MIXED_BF16


PRECISION_FOR_DTYPE = {"bf16": Precision.MIXED_BF16, "fp16": Precision.MIXED_FP16, "fp32": Precision.FP32}


Costed = s.TrainingCostRequest | s.CompareRequest  # the requests whose time the planner may give


def _planned(
    model: ModelShape, gpu: GpuView, n_gpus: int, seq_len: int | None, req: Costed, finetune: FinetuneSpec | None = None
) -> Planned | None:
    """The step-time model's best plan when the architecture is known and no throughput was given
    (None otherwise: the answer then uses the MFU). A recompute other than none the request gives is
    held fixed; the planner models 16- and 32-bit training (another dtype falls back to the MFU).
    A training-cost request also brings its step-time options, fixed dimensions and downtime; a
    comparison plans with the defaults. ``finetune`` plans a LoRA/QLoRA fine-tune."""
    if req.mfu is not None or req.achieved_tflops_per_gpu is not None or not isinstance(model, Architecture):
        return None
    seq, _ = training_seq_len(model, seq_len)
    batch, _ = plan_service.batch_size(seq, None, req.global_batch_tokens, n_gpus)
    options = req if isinstance(req, s.TrainingCostRequest) else None
    fixed = plan_service.fixed_dimensions(options.fixed if options is not None else None)
    if options is not None and sent(options, "recompute"):  # "none" sent, as left out: the planner's choice
        fixed["recompute"] = options.recompute.value
    if options is not None and sent(req, "precision"):  # the default sent explicitly: the dtype's, as left out
        precision: Precision | None = options.precision  # the planner's precision, FP8 included
    else:
        precision = PRECISION_FOR_DTYPE.get(req.dtype)
    if precision is None:
        return Planned(plan=None, cluster=None, seq_len=seq, global_batch_size=batch,
                       reason=f"the planner models bf16, fp16, fp32 and fp8 training (give precision), not {req.dtype}")  # fmt: skip
    try:
        cluster = plan_service.cluster_for(gpu, precision, **plan_service.cluster_options(options))
        result = plan_service.best_plan(model, cluster, n_gpus=n_gpus, seq_len=seq, global_batch_size=batch,
                                        precision=precision, fixed=fixed, options=options, finetune=finetune)  # fmt: skip
    except (Unprocessable, InvalidSpecError) as exc:
        loc = (exc.errors[0].get("loc") or ["body"])[1:] if isinstance(exc, Unprocessable) and exc.errors else []
        field = exc.field if isinstance(exc, InvalidSpecError) else ".".join(str(part) for part in loc)
        if options is not None and _names_an_option(field, req):  # the request asked for what cannot run: say so
            raise
        if finetune is not None and field.startswith("finetune"):  # the fine-tune itself is at fault
            raise
        reason = exc.detail if isinstance(exc, Unprocessable) else f"{exc.field}: {exc.reason}"
        return Planned(plan=None, cluster=None, seq_len=seq, global_batch_size=batch, reason=reason)
    downtime = options.effective_time_fraction if options is not None else cost.EFFECTIVE_TRAINING_TIME_FRACTION
    return Planned(plan=result, cluster=cluster, seq_len=seq, global_batch_size=batch, reason=result.reason,
                   effective_time_fraction=downtime, options=options, precision=precision)  # fmt: skip


STEP_TIME_FIELDS = ("precision", "fp8_recipe", "attention_kernel", "efficiency", "fixed")


# What the planner of a cost answer runs with (an architecture, and no throughput of the request's own).
PLANNER_RUNS = "the model's architecture (a preset or its fields)"
COST_PLANNER_INPUTS = (*inputs.STEP_TIME_INPUTS, "fixed", "global_batch_tokens", "effective_time_fraction", "seq_len")
SEQ_AT_AN_MFU = "at a stated MFU it counts the attention FLOPs (include_attention) and an adapter fine-tune's memory only"


def plans(model: ModelShape, req: Costed) -> bool:
    """Whether the planner times the run: the architecture is known and no throughput was given
    (it may still find no layout, and the answer then falls back to the MFU)."""
    return isinstance(model, Architecture) and not inputs.stated_rate(req)


def require_used(req: s.TrainingCostRequest, model: ModelShape) -> None:
    """A 422 naming each input the answer would not read, and why (:mod:`service.schemas.inputs`):
    the planner's (step-time options, fixed, the batch, the downtime, the sequence where nothing
    else counts it) when the planner does not run; ``scaling_efficiency``, and ``dtype`` beside
    ``precision``, when it does; a mixture's step-time options on a dense model and a fine-tune's
    without adapters."""
    adapters = req.finetune is not None and req.finetune.is_adapter
    if not plans(model, req):
        names = [f for f in COST_PLANNER_INPUTS if f != "seq_len" or not (req.include_attention or adapters)]
        reasons = inputs.planner_only(req, names, PLANNER_RUNS, inputs.stated_rate(req),
                                      inputs.AT_AN_MFU | {"seq_len": SEQ_AT_AN_MFU})  # fmt: skip
    else:
        unread = {"scaling_efficiency"} | ({"dtype"} if inputs.given(req, ["precision"]) else set())
        reasons = inputs.mfu_only(req, {f: why for f, why in inputs.MFU_INPUTS.items() if f in unread})
        moe = isinstance(model, Architecture) and model.is_moe
        reasons |= inputs.inapplicable_options(req, moe=moe, adapters=adapters)
    if reasons:
        raise Unprocessable.for_fields(reasons)


def _names_an_option(field: str, req: Costed) -> bool:
    """Whether a planner error is about a step-time option the request itself gave (a 422 then),
    rather than about a cluster the planner cannot lay out (the answer then falls back to the MFU)."""
    root = field.split(".")[0]
    return root in STEP_TIME_FIELDS and sent(req, root)  # a default sent means what leaving it out does


def _plan_assumptions(planned: Planned) -> dict[str, Any]:
    out: dict[str, Any] = {"seq_len": planned.seq_len, "global_batch_size": planned.global_batch_size}
    if planned.cluster is not None:
        out |= planned.cluster.assumptions
    if planned.options is not None:
        out |= plan_service.options_assumptions(planned.options) | {"precision": planned.precision.value}
    if planned.plan is not None and planned.plan.plans:
        best = planned.plan.plans[0]
        out |= {"time_from": "the planner's best plan (step-time model, POST /v1/plan)", "plan": plan_service.plan_summary(best),
                "predicted_mfu": best.mfu, "effective_time_fraction": planned.effective_time_fraction}  # fmt: skip
    return out


def training_cost(req: s.TrainingCostRequest, catalog: CatalogReader) -> s.TrainingCostResponse:
    model = resolve_model(req.model, catalog)
    require_used(req, model)
    model_notes = model_assumptions(model, req.model, req.seq_len)
    gpu = catalog_gpu(catalog, req.gpu)
    price = resolve_price(catalog, gpu.id, req)
    energy = energy_service.terms(req)
    gpu_energy = energy.for_gpu(gpu)
    ft = req.finetune if req.finetune and req.finetune.is_adapter else None
    ft_detail = None
    if ft is not None and ft.method == "qlora" and req.dtype not in PRECISION_FOR_DTYPE:
        raise Unprocessable.for_field(
            "dtype",
            f"QLoRA dequantises its 4-bit base to 16-bit for every matmul (Dettmers et al. 2023 §3): "
            f"time it at a bf16, fp16 or fp32 peak, not {req.dtype}",
        )
    seq, _ = model_training_seq_len(model, req.seq_len)  # the planner's, the memory check's and the attention FLOPs' length
    # the step-time model plans full training and LoRA/QLoRA fine-tunes (service.core.steptime_finetune)
    planned = _planned(model, gpu, req.n_gpus, req.seq_len, req, ft.spec() if ft is not None else None)
    best = planned.plan.plans[0] if planned and planned.plan and planned.plan.plans else None
    recompute = best.recompute if best is not None else req.recompute  # the hardware FLOPs of the run that is timed
    if ft is None:
        flops = compute.training_flops(
            model, req.tokens, recompute=recompute, include_attention=req.include_attention, seq_len=seq
        )
    else:
        flops, ft_compute = finetune.finetune_training_flops(
            model, req.tokens, ft.spec(), recompute=recompute, include_attention=req.include_attention, seq_len=seq
        )
        ft_detail = finetune_compute_detail(ft_compute)
    if best is not None:
        r = cost.planned_training_cost(
            tokens=req.tokens, model_flops=flops.model_flops, tokens_per_second=best.tokens_per_second, n_gpus=req.n_gpus,
            effective_time_fraction=req.effective_time_fraction, usd_per_gpu_hour=price.usd_per_gpu_hour,
        )  # fmt: skip
        assert planned is not None and planned.cluster is not None
        # MFU of the run as this answer counts its FLOPs (the request's formula, over the
        # wall clock): consistent with achieved_tflops_per_gpu; the plan's own is in assumptions
        mfu = r.achieved_flops_per_s_per_gpu / planned.cluster.hardware.peak_flops_per_s
        rate_assumptions: dict[str, Any] = {
            "mfu_source": "the step-time model's plan, counted with this answer's FLOPs over the wall clock (downtime included)"
        }
        efficiency, efficiency_source = 1.0, "none applied: the step-time model prices the plan's communication"
        time_formula = ("wall clock = tokens / (plan tokens/s) / effective-time fraction; GPU-hours = n_gpus * wall clock "
                        "(step-time model: POST /v1/plan)")  # fmt: skip
    else:
        timed = _time_at_mfu(req, gpu, model, flops.model_flops, price, planned, ft_compute if ft is not None else None)
        r, mfu, rate_assumptions, efficiency, efficiency_source, time_formula = timed
    r, spot_detail = _on_spot(req, r, model, gpu, planned)
    if spot_detail is not None and mfu is not None:
        mfu /= spot_detail.overhead_fraction  # the MFU over the wall clock paid for
    fits = None if planned is None or planned.plan is None else best is not None
    reason = planned.reason if fits is False and planned is not None else None
    if ft is not None and best is None and (planned is None or planned.plan is None):  # no plan: the least footprint
        fits, reason, fit_notes = _finetune_fits(req, model, ft, gpu, seq)
        rate_assumptions |= fit_notes
    if ft is not None and planned is not None and planned.cluster is not None:
        rate_assumptions |= plan_service.finetune_assumptions(model, ft.spec(), planned.precision)  # type: ignore[arg-type]
    plan_item = None
    if best is not None:
        plan_item = plan_service.plan_item(gpu.id, req.n_gpus, best, req.tokens, req.effective_time_fraction,
                                           price.usd_per_gpu_hour, planned.plan.model_flops_per_token, energy=gpu_energy)  # fmt: skip
    return s.TrainingCostResponse(
        total_flops=flops.model_flops,
        hardware_flops=flops.hardware_flops,
        gpu_hours=r.gpu_hours,
        **gpu_energy.fields(r.gpu_hours),
        wall_clock_hours=r.wall_clock_hours,
        wall_clock_days=r.wall_clock_hours / 24,
        cost_usd=r.cost_usd or 0.0,
        price=price,
        gpu=gpu.id,
        n_gpus=req.n_gpus,
        mfu=mfu,
        achieved_tflops_per_gpu=r.achieved_flops_per_s_per_gpu / 1e12,
        scaling_efficiency=efficiency,
        fits=fits,
        reason=reason,
        plan=plan_item,
        finetune=ft_detail,
        spot=spot_detail,
        formulas=[flops.formula, time_formula, energy_service.FORMULA],
        assumptions=model_notes
        | rate_assumptions
        | (_plan_assumptions(planned) if planned else {})
        | {
            "scaling_efficiency": efficiency,
            "scaling_efficiency_source": efficiency_source,
            "price_as_of": price.as_of.isoformat() if price.as_of else None,
            "price_chosen": price.chosen,
            "implied_hfu": None if mfu is None or best is not None else mfu * flops.hardware_flops / flops.model_flops,
        }
        | energy.assumptions([gpu], per_gpu=False)
        | ({"attention_seq_len": seq} if req.include_attention else {}),
    )


def _on_spot(
    req: s.TrainingCostRequest, r: cost.TrainingCost, model: ModelShape, gpu: GpuView, planned: Planned | None
) -> tuple[cost.TrainingCost, s.SpotDetail | None]:
    """The run on interruptible nodes (:mod:`service.core.spot`): its expected wall clock, GPU-hours
    and dollars with checkpoints at Daly's interval and restarts; unchanged without ``spot``."""
    if req.spot is None:
        return r, None
    o = req.spot
    node = (planned.cluster.hardware.gpus_per_node if planned and planned.cluster else None) or gpu.gpus_per_node or 8
    n_nodes = -(-req.n_gpus // node)
    checkpoint = o.checkpoint_seconds
    if checkpoint is None:  # bf16 weights, fp32 master weights and two Adam moments (Transformers Math 101)
        params = count_params(model).total if isinstance(model, Architecture) else model.n_params
        checkpoint = spot.checkpoint_seconds(params, n_nodes)
    run = spot.spot_run(r.wall_clock_hours, n_nodes=n_nodes, interruptions_per_node_hour=o.interruptions_per_node_hour,
                        checkpoint_seconds=checkpoint, restart_seconds=o.restart_seconds,
                        interval_hours=o.checkpoint_interval_hours)  # fmt: skip
    gpu_hours = run.expected_wall_clock_hours * req.n_gpus
    usd = None if r.cost_usd is None else r.cost_usd * run.overhead_fraction
    adjusted = dataclasses.replace(r, gpu_hours=gpu_hours, wall_clock_hours=run.expected_wall_clock_hours, cost_usd=usd,
                                   achieved_flops_per_s_per_gpu=r.achieved_flops_per_s_per_gpu / run.overhead_fraction)  # fmt: skip
    detail = spot_detail(run, r.wall_clock_hours)
    return adjusted, detail


def _time_at_mfu(
    req: s.TrainingCostRequest,
    gpu: GpuView,
    model: ModelShape,
    model_flops: float,
    price: s.PriceQuote,
    planned: Planned | None,
    ft_compute: finetune.FinetuneCompute | None,
) -> tuple[cost.TrainingCost, float | None, dict[str, Any], float, str, str]:
    """A run timed at the MFU (no plan): its cost, MFU, assumptions (why the planner was not
    used, which step-time options its failed search read), scaling efficiency with its source,
    and the time formula."""
    rate = rates.rate(gpu, req)
    efficiency, efficiency_source = rates.scaling_efficiency(req)
    # MFU counts model FLOPs only (PaLM App. B): time = model FLOPs / (peak * MFU). Recompute
    # changes what the GPUs execute (hardware FLOPs, HFU), not the time at a given MFU.
    r = cost.training_cost(
        model_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=req.n_gpus, scaling_efficiency=efficiency,
        usd_per_gpu_hour=price.usd_per_gpu_hour, mfu=rate.mfu,
    )  # fmt: skip
    rate_assumptions = rate.assumptions | {"time_from": "model FLOPs at the MFU (recompute is already inside a measured MFU)"}
    time_formula = ("GPU-hours = FLOPs / (peak * MFU * scaling_efficiency) / 3600; wall clock = GPU-hours / n_gpus "
                    "(C = tau*T, Transformers Math 101)")  # fmt: skip
    if ft_compute is not None:
        rate_assumptions |= finetune_assumptions(ft_compute.spec, ft_compute.targets)
    if ft_compute is not None and planned is not None and planned.plan is None:
        rate_assumptions["planner"] = f"not used: {planned.reason}"
    elif ft_compute is not None and planned is None:
        rate_assumptions["planner"] = "not used: an MFU or achieved TFLOP/s was given (or no architecture)"
    elif planned is None and not isinstance(model, Architecture) and req.mfu is None and req.achieved_tflops_per_gpu is None:
        rate_assumptions["planner"] = "not used: the step-time model needs the architecture (a preset or its fields)"
    elif planned is not None and planned.plan is None:  # the cluster or batch admits no layout at all
        rate_assumptions["planner"] = f"not used: {planned.reason}"
    # the planner ran and found no plan (without it, or with a stated MFU, they are a 422: require_used)
    given = inputs.given(req, (*inputs.STEP_TIME_INPUTS, "fixed")) if planned is not None else []
    if given:
        rate_assumptions["ignored"] = (
            f"{', '.join(given)}: the planner found no plan with them, so the time comes from the MFU, not the step-time model"
        )
    return r, rate.mfu, rate_assumptions, efficiency, efficiency_source, time_formula


def _finetune_fits(
    req: s.TrainingCostRequest, model: ModelShape, ft: Finetune, gpu: GpuView, seq: int
) -> tuple[bool, str | None, dict[str, Any]]:
    """Whether the adapter fine-tune fits the GPU at its least memory (the check the planner would
    make, for the frozen base and the adapters), why not, and the layout it assumed."""
    precision = PRECISION_FOR_DTYPE.get(req.dtype, Precision.MIXED_BF16)
    footprint, layout = finetune.smallest_finetune_footprint(model, ft.spec(), n_gpus=req.n_gpus, seq_len=seq,
                                                             precision=precision)  # fmt: skip
    fits = memory.memory_fits(footprint, gpu.memory_bytes)
    reason = (
        None
        if fits
        else f"needs {footprint / 2**30:.1f} GiB per GPU at best ({layout}); {gpu.id} has {gpu.memory_bytes / 2**30:.1f} GiB"
    )
    notes = {
        "fits_precision": precision.value,
        "fits_layout": layout,
        "fits_memory_bytes_per_gpu": footprint,
        "fits_seq_len": seq,
    }
    return fits, reason, notes


def compare(req: s.CompareRequest, catalog: CatalogReader) -> s.CompareResponse:
    model = resolve_model(req.model, catalog)
    if not plans(model, req) and (unread := inputs.planner_only(req, ["global_batch_tokens"], PLANNER_RUNS,
                                                                 inputs.stated_rate(req))):  # fmt: skip
        raise Unprocessable.for_fields(unread)
    model_notes = model_assumptions(model, req.model, req.seq_len)
    flops = compute.training_flops(model, req.tokens)
    snapshot = catalog.snapshot()
    rows = snapshot.current_prices({"pricing": req.pricing})
    wanted_gpus = set(req.gpus) if req.gpus else None
    wanted_providers = set(req.providers) if req.providers else None
    for name, wanted, table in (("gpus", wanted_gpus, "gpus"), ("providers", wanted_providers, "providers")):
        known = snapshot.ids(table)
        unknown = sorted((wanted or set()) - set(known))
        if unknown:
            raise Unprocessable.for_field(name, f"unknown: {', '.join(unknown)}; known: {', '.join(known)}")
    efficiency, efficiency_source = rates.scaling_efficiency(req)
    energy = energy_service.terms(req)
    footprint = memory.smallest_training_footprint(
        model, n_gpus=req.n_gpus, seq_len=model_training_seq_len(model, req.seq_len)[0]
    )
    per_gpu: dict[str, dict[str, Any]] = {}  # one plan and one unpriced run per GPU type, whatever its providers
    views: list[GpuView] = []  # the GPU types listed, for their TDPs
    out: list[dict[str, Any]] = []  # rows as dicts: the response validates them all in one pass
    for row in rows:
        if (wanted_gpus and row.gpu_id not in wanted_gpus) or (wanted_providers and row.provider_id not in wanted_providers):
            continue
        terms = per_gpu.get(row.gpu_id)
        if terms is None:
            gpu = catalog_gpu(catalog, row.gpu_id)
            views.append(gpu)
            terms = per_gpu[row.gpu_id] = _compare_terms(gpu, model, flops.model_flops, footprint, efficiency, req)
            terms |= energy.for_gpu(gpu).fields(terms["gpu_hours"])
        gpu_hours = terms["gpu_hours"]
        out.append(terms | {
            "provider": row.provider_id, "pricing": row.pricing, "usd_per_gpu_hour": row.usd_per_gpu_hour, "as_of": row.as_of,
            "source": row.source,
            "cost_usd": None if gpu_hours is None else cost.dollars(gpu_hours, row.usd_per_gpu_hour),
        })  # fmt: skip
    metric = "cost_usd" if req.sort_by == "cost" else "wall_clock_hours"
    out.sort(key=lambda r: (not r["fits"], r[metric] is None, r[metric] or 0.0))
    return s.CompareResponse.model_validate(dict(
        rows=out,
        total_flops=flops.model_flops,
        formulas=[flops.formula,
                  "with the architecture: time from each GPU type's best plan (step-time model, POST /v1/plan) / effective-time fraction",
                  "otherwise: cost = FLOPs / (peak * MFU * scaling_efficiency) / 3600 * price (Transformers Math 101)",
                  "fits: a plan fits (planner), else least per-GPU memory over tp 1/2/4/8, ZeRO-3, full recompute, micro-batch 1 "
                  "(Rajbhandari et al. 2020; Korthikanti et al. 2022)", energy_service.FORMULA],
        assumptions=model_notes | {
                     "pricing": req.pricing, "scaling_efficiency": efficiency, "scaling_efficiency_source": efficiency_source,
                     "mfu": req.mfu, "mfu_source": "request" if req.mfu else (
                         "predicted per GPU type by the step-time model" if isinstance(model, Architecture)
                         else "each GPU's catalog default (an at-scale figure), else 0.40"),
                     "effective_time_fraction": cost.EFFECTIVE_TRAINING_TIME_FRACTION,
                     "sort_by": req.sort_by, "unfit_rows": "sorted last"}
                    | energy.assumptions(views, per_gpu=True),
    ))  # fmt: skip


def _compare_terms(
    gpu: GpuView, model: ModelShape, model_flops: float, footprint: int, efficiency: float, req: s.CompareRequest
) -> dict[str, Any]:
    """What a comparison row of ``gpu`` holds whatever its provider and price: whether and how the
    run fits, its GPU-hours and wall clock (from the best plan, else the MFU), the MFU, a note."""
    plan = _planned(model, gpu, req.n_gpus, req.seq_len, req)
    best = plan.plan.plans[0] if plan and plan.plan and plan.plan.plans else None
    if plan is not None and plan.plan is not None:
        fits = best is not None
        note = "" if fits else (plan.reason or "no layout fits")
        least = memory.device_total_bytes(best.memory.total_bytes) if best else footprint
    else:
        fits = memory.memory_fits(footprint, gpu.memory_bytes)
        note = "" if fits else f"needs {footprint / 2**30:.1f} GiB per GPU at best; has {gpu.memory_bytes / 2**30:.1f} GiB"
        least = footprint
    terms: dict[str, Any] = {"gpu": gpu.id, "fits": fits, "min_memory_bytes_per_gpu": least,
                             "plan": plan_service.plan_summary(best) if best else None}  # fmt: skip
    if best is not None:
        r = cost.planned_training_cost(
            tokens=req.tokens, model_flops=model_flops, tokens_per_second=best.tokens_per_second, n_gpus=req.n_gpus,
            effective_time_fraction=cost.EFFECTIVE_TRAINING_TIME_FRACTION, usd_per_gpu_hour=None,
        )  # fmt: skip
        return terms | {"gpu_hours": r.gpu_hours, "wall_clock_hours": r.wall_clock_hours, "mfu": best.mfu, "note": note}
    rate = rates.rate_or_error(gpu, req)
    if isinstance(rate, Unprocessable):  # no peak for the dtype: listed, not priced
        return terms | {"gpu_hours": None, "wall_clock_hours": None, "mfu": None, "note": rate.detail}
    r = cost.training_cost(
        model_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=req.n_gpus, scaling_efficiency=efficiency,
        usd_per_gpu_hour=None, mfu=rate.mfu,
    )  # fmt: skip
    return terms | {"gpu_hours": r.gpu_hours, "wall_clock_hours": r.wall_clock_hours, "mfu": rate.mfu, "note": note}
