"""Cost and budget use cases: catalog GPU and price → core cost, compute and scaling math."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.core import compute, cost, finetune, memory, scaling, serving
from service.core.architecture import Architecture, ModelShape
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.memory import Precision
from service.core.plan import PlanResult
from service.errors import Unprocessable
from service.schemas import cost as s
from service.schemas.layout import StepTimeOptions
from service.services import energy as energy_service
from service.services import plan as plan_service
from service.services import serving as serving_service
from service.services.calculators import finetune_assumptions, finetune_compute_detail
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import model_assumptions, model_training_seq_len, resolve_gpu, resolve_model, training_seq_len
from service.services.plan import Cluster

DEFAULT_MFU = 0.40  # Transformers Math 101 / formula sheet: 37-50 % is what good large runs reach


@dataclass(frozen=True)
class Rate:
    flops_per_s_per_gpu: float  # before scaling efficiency
    mfu: float | None
    assumptions: dict[str, Any]


def _gpu(catalog: CatalogReader, gpu_id: str) -> GpuView:
    view, _ = resolve_gpu(gpu_id, None, catalog)
    assert view is not None
    return view


def _rate(gpu: GpuView, req: s.Throughput) -> Rate:
    """Per-GPU FLOP/s from the request's MFU (or the catalog's, or 0.40) and the GPU's peak."""
    if req.achieved_tflops_per_gpu is not None:
        flops = cost.achieved_flops_per_s(peak_tflops=None, mfu=None, achieved_tflops=req.achieved_tflops_per_gpu)
        return Rate(
            flops, None, {"achieved_tflops_per_gpu": req.achieved_tflops_per_gpu, "mfu_source": "explicit achieved TFLOP/s"}
        )
    peak = gpu.peak_tflops.get(req.dtype)
    if peak is None:
        known = ", ".join(k for k, v in gpu.peak_tflops.items() if v)
        raise Unprocessable.for_field("dtype", f"the catalog has no dense {req.dtype} peak for {gpu.id}; it has: {known}")
    if req.mfu is not None:
        mfu, source = req.mfu, "request"
    elif gpu.default_mfu is not None:
        mfu, source = gpu.default_mfu, f"catalog default for {gpu.id}"
    else:
        mfu, source = DEFAULT_MFU, "service default (no catalog MFU for this GPU)"
    flops = cost.achieved_flops_per_s(peak_tflops=peak, mfu=mfu, achieved_tflops=None)
    return Rate(flops, mfu, {"mfu": mfu, "mfu_source": source, "peak_tflops": peak, "peak_dtype": req.dtype})


def _rate_or_error(gpu: GpuView, req: s.Throughput) -> Rate | Unprocessable:
    try:
        return _rate(gpu, req)
    except Unprocessable as exc:
        return exc


def _efficiency(req: s.Throughput) -> tuple[float, str]:
    """An explicit scaling efficiency, else 1: an MFU (catalog or request) is an at-scale figure
    that already holds the losses of communication and bubbles (formula sheet, "Compute")."""
    if req.scaling_efficiency is not None:
        return req.scaling_efficiency, "request"
    return 1.0, "none applied: an MFU is measured at its run's scale and already holds the losses of scale"


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


def _planned(model: ModelShape, gpu: GpuView, n_gpus: int, seq_len: int | None, req: s.Throughput) -> Planned | None:
    """The step-time model's best plan when the architecture is known and no throughput was given
    (None otherwise: the answer then uses the MFU). A recompute setting the request gives is
    held fixed; the planner models 16- and 32-bit training (another dtype falls back to the MFU)."""
    if req.mfu is not None or req.achieved_tflops_per_gpu is not None or not isinstance(model, Architecture):
        return None
    seq, _ = training_seq_len(model, seq_len)
    batch, _ = plan_service.batch_size(seq, None, getattr(req, "global_batch_tokens", None), n_gpus)
    fixed = plan_service.fixed_dimensions(getattr(req, "fixed", None))
    if "recompute" in req.model_fields_set and hasattr(req, "recompute"):
        fixed["recompute"] = req.recompute.value
    options = req if isinstance(req, StepTimeOptions) else None
    if options is not None and "precision" in req.model_fields_set:
        precision: Precision | None = options.precision  # the planner's precision, FP8 included
    else:
        precision = PRECISION_FOR_DTYPE.get(req.dtype)
    if precision is None:
        return Planned(plan=None, cluster=None, seq_len=seq, global_batch_size=batch,
                       reason=f"the planner models bf16, fp16, fp32 and fp8 training (give precision), not {req.dtype}")  # fmt: skip
    try:
        cluster = plan_service.cluster_for(gpu, precision, **plan_service.cluster_options(options))
        result = plan_service.best_plan(model, cluster, n_gpus=n_gpus, seq_len=seq, global_batch_size=batch,
                                        precision=precision, fixed=fixed, options=options)  # fmt: skip
    except (Unprocessable, InvalidSpecError) as exc:
        loc = (exc.errors[0].get("loc") or ["body"])[1:] if isinstance(exc, Unprocessable) and exc.errors else []
        field = exc.field if isinstance(exc, InvalidSpecError) else ".".join(str(part) for part in loc)
        if options is not None and _names_an_option(field, req):  # the request asked for what cannot run: say so
            raise
        reason = exc.detail if isinstance(exc, Unprocessable) else f"{exc.field}: {exc.reason}"
        return Planned(plan=None, cluster=None, seq_len=seq, global_batch_size=batch, reason=reason)
    return Planned(plan=result, cluster=cluster, seq_len=seq, global_batch_size=batch, reason=result.reason,
                   effective_time_fraction=getattr(req, "effective_time_fraction", cost.EFFECTIVE_TRAINING_TIME_FRACTION),
                   options=options, precision=precision)  # fmt: skip


STEP_TIME_FIELDS = ("precision", "fp8_recipe", "attention_kernel", "efficiency", "fixed")


def _names_an_option(field: str, req: s.Throughput) -> bool:
    """Whether a planner error is about a step-time option the request itself gave (a 422 then),
    rather than about a cluster the planner cannot lay out (the answer then falls back to the MFU)."""
    root = field.split(".")[0]
    return root in STEP_TIME_FIELDS and root in req.model_fields_set


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


def resolve_price(catalog_reader: CatalogReader, gpu_id: str, choice: s.PriceChoice) -> s.PriceQuote:
    """An explicit price, the provider's current price, or the cheapest current price."""
    if choice.usd_per_gpu_hour is not None:
        return s.PriceQuote(
            usd_per_gpu_hour=choice.usd_per_gpu_hour, provider=None, pricing=None, as_of=None, source="request", chosen="explicit"
        )
    catalog = catalog_reader.snapshot()
    if choice.provider is not None and catalog.item("providers", choice.provider) is None:
        known = ", ".join(catalog.ids("providers"))
        raise Unprocessable.for_field("provider", f"unknown provider {choice.provider!r}; known: {known}")
    rows = catalog.current_prices({"gpu_id": gpu_id, "provider_id": choice.provider, "pricing": choice.pricing})
    if not rows:
        where = f" from {choice.provider}" if choice.provider else ""
        raise Unprocessable.for_field(
            "usd_per_gpu_hour", f"the catalog has no {choice.pricing} price for {gpu_id}{where}; give usd_per_gpu_hour"
        )
    row = min(rows, key=lambda r: (r.usd_per_gpu_hour, r.provider_id))
    return s.PriceQuote(
        usd_per_gpu_hour=row.usd_per_gpu_hour,
        provider=row.provider_id,
        pricing=row.pricing,
        as_of=row.as_of,
        source=row.source,
        chosen="provider" if choice.provider else "cheapest",
    )


def listed_price(catalog: CatalogReader, gpu_id: str, choice: s.PriceChoice, *, many: bool) -> s.PriceQuote | None:
    """:func:`resolve_price`, except that a GPU compared among ``many`` without a price is listed
    unpriced (None) rather than failing the whole answer."""
    try:
        return resolve_price(catalog, gpu_id, choice)
    except Unprocessable:
        if many:
            return None
        raise


def training_cost(req: s.TrainingCostRequest, catalog: CatalogReader) -> s.TrainingCostResponse:
    model = resolve_model(req.model, catalog)
    model_notes = model_assumptions(model, req.model, req.seq_len)
    gpu = _gpu(catalog, req.gpu)
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
    if ft is None:
        flops = compute.training_flops(
            model, req.tokens, recompute=req.recompute, include_attention=req.include_attention, seq_len=seq
        )
    else:
        flops, ft_compute = finetune.finetune_training_flops(
            model, req.tokens, ft.spec(), recompute=req.recompute, include_attention=req.include_attention, seq_len=seq
        )
        ft_detail = finetune_compute_detail(ft_compute)
    # the step-time model plans full training; LoRA's (4P + 6P_a)D is timed at the MFU instead
    planned = None if ft is not None else _planned(model, gpu, req.n_gpus, req.seq_len, req)
    best = planned.plan.plans[0] if planned and planned.plan and planned.plan.plans else None
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
        rate = _rate(gpu, req)
        efficiency, efficiency_source = _efficiency(req)
        # MFU counts model FLOPs only (PaLM App. B): time = model FLOPs / (peak * MFU). Recompute
        # changes what the GPUs execute (hardware FLOPs, HFU), not the time at a given MFU.
        r = cost.training_cost(
            flops.model_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=req.n_gpus, scaling_efficiency=efficiency,
            usd_per_gpu_hour=price.usd_per_gpu_hour, mfu=rate.mfu,
        )  # fmt: skip
        rate_assumptions, mfu = (
            rate.assumptions | {"time_from": "model FLOPs at the MFU (recompute is already inside a measured MFU)"},
            rate.mfu,
        )
        time_formula = ("GPU-hours = FLOPs / (peak * MFU * scaling_efficiency) / 3600; wall clock = GPU-hours / n_gpus "
                        "(C = tau*T, Transformers Math 101)")  # fmt: skip
        if ft is not None:
            rate_assumptions["planner"] = ("not used: the step-time model plans full training; LoRA/QLoRA FLOPs are timed at the MFU "
                                           "(a pre-training MFU: small fine-tuning batches and QLoRA's dequantisation run slower)")  # fmt: skip
            rate_assumptions |= finetune_assumptions(ft_compute.spec, ft_compute.targets)
        elif planned is None and not isinstance(model, Architecture) and req.mfu is None and req.achieved_tflops_per_gpu is None:
            rate_assumptions["planner"] = "not used: the step-time model needs the architecture (a preset or its fields)"
        elif planned is not None and planned.plan is None:  # the cluster or batch admits no layout at all
            rate_assumptions["planner"] = f"not used: {planned.reason}"
        given = sorted(set(req.model_fields_set) & set(StepTimeOptions.model_fields) | ({"fixed"} & req.model_fields_set))
        if given:  # the step-time options shape the planner's answer only
            rate_assumptions["ignored"] = f"{', '.join(given)}: the time comes from the MFU, not the step-time model"
    fits = None if planned is None or planned.plan is None else best is not None
    reason = planned.reason if fits is False and planned is not None else None
    if ft is not None:  # the memory check the planner would have made, for the frozen base and adapters
        precision = PRECISION_FOR_DTYPE.get(req.dtype, Precision.MIXED_BF16)
        rate_assumptions["fits_precision"] = precision.value
        footprint, layout = finetune.smallest_finetune_footprint(model, ft.spec(), n_gpus=req.n_gpus, seq_len=seq,
                                                                 precision=precision)  # fmt: skip
        fits = footprint <= gpu.memory_bytes
        reason = (
            None
            if fits
            else f"needs {footprint / 2**30:.1f} GiB per GPU at best ({layout}); {gpu.id} has {gpu.memory_bytes / 2**30:.1f} GiB"
        )
        rate_assumptions |= {"fits_layout": layout, "fits_memory_bytes_per_gpu": footprint, "fits_seq_len": seq}
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


def compare(req: s.CompareRequest, catalog: CatalogReader) -> s.CompareResponse:
    model = resolve_model(req.model, catalog)
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
    efficiency, efficiency_source = _efficiency(req)
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
            gpu = _gpu(catalog, row.gpu_id)
            views.append(gpu)
            terms = per_gpu[row.gpu_id] = _compare_terms(gpu, model, flops.model_flops, footprint, efficiency, req)
            terms |= energy.for_gpu(gpu).fields(terms["gpu_hours"])
        gpu_hours = terms["gpu_hours"]
        out.append(terms | {
            "provider": row.provider_id, "pricing": row.pricing, "usd_per_gpu_hour": row.usd_per_gpu_hour, "as_of": row.as_of,
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
        fits = footprint <= gpu.memory_bytes
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
    rate = _rate_or_error(gpu, req)
    if isinstance(rate, Unprocessable):  # no peak for the dtype: listed, not priced
        return terms | {"gpu_hours": None, "wall_clock_hours": None, "mfu": None, "note": rate.detail}
    r = cost.training_cost(
        model_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=req.n_gpus, scaling_efficiency=efficiency,
        usd_per_gpu_hour=None, mfu=rate.mfu,
    )  # fmt: skip
    return terms | {"gpu_hours": r.gpu_hours, "wall_clock_hours": r.wall_clock_hours, "mfu": rate.mfu, "note": note}


@dataclass(frozen=True)
class Economics:
    """GPU-hours, wall clock, dollars and the price of some FLOPs on the request's GPU, and their
    energy and CO2e when asked for (all None without a GPU)."""

    gpu_hours: float | None = None
    wall_clock_hours: float | None = None
    cost_usd: float | None = None
    price: s.PriceQuote | None = None
    assumptions: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, float | None] = field(default_factory=dict)  # energy_kwh and co2e_tonnes, when asked for
    formulas: tuple[str, ...] = ()


def _run_economics(
    catalog: CatalogReader, req: Any, compute_flops: float, n_gpus: int | None, energy: energy_service.EnergyTerms | None = None
) -> Economics:
    """With ``energy`` (the request's inputs), also the energy and CO2e of the GPU-hours."""
    if req.gpu is None:
        return Economics()
    gpu = _gpu(catalog, req.gpu)
    rate = _rate(gpu, req)
    efficiency, efficiency_source = _efficiency(req)
    price = resolve_price(catalog, gpu.id, req)
    r = cost.training_cost(
        compute_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=n_gpus or 1, scaling_efficiency=efficiency,
        usd_per_gpu_hour=price.usd_per_gpu_hour, mfu=rate.mfu,
    )  # fmt: skip
    return Economics(
        gpu_hours=r.gpu_hours,
        wall_clock_hours=r.wall_clock_hours if n_gpus else None,
        cost_usd=r.cost_usd,
        price=price,
        assumptions=rate.assumptions
        | {
            "scaling_efficiency": efficiency,
            "scaling_efficiency_source": efficiency_source,
            "price_as_of": price.as_of.isoformat() if price.as_of else None,
        }
        | (energy.assumptions([gpu], per_gpu=False) if energy else {}),
        energy=energy.for_gpu(gpu).fields(r.gpu_hours) if energy else {},
        formulas=(energy_service.FORMULA,) if energy else (),
    )


def _budget_response(
    shape: scaling.TrainingShape, economics: Economics, assumptions: dict[str, Any], extra_formulas: tuple[str, ...] = ()
) -> s.BudgetResponse:
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
        wall_clock_hours=economics.wall_clock_hours,
        cost_usd=economics.cost_usd,
        price=economics.price,
        formulas=[*shape.formulas, *extra_formulas, *economics.formulas],
        assumptions=assumptions | economics.assumptions,
    )


def budget(req: s.BudgetRequest, catalog: CatalogReader) -> s.BudgetResponse:
    if req.budget_usd is not None:
        gpu = _gpu(catalog, req.gpu)
        rate = _rate(gpu, req)
        efficiency, _ = _efficiency(req)
        price = resolve_price(catalog, gpu.id, req)
        if price.usd_per_gpu_hour <= 0:
            raise Unprocessable.for_field(
                "gpu",
                f"the current price for {gpu.id} is $0/GPU-hour, so any budget buys unlimited compute; give usd_per_gpu_hour",
            )
        flops = cost.flops_for_budget(
            req.budget_usd,
            usd_per_gpu_hour=price.usd_per_gpu_hour,
            flops_per_s_per_gpu=rate.flops_per_s_per_gpu,
            scaling_efficiency=efficiency,
        )
    else:
        flops = req.compute_flops
    shape = scaling.shape_for_budget(
        flops, req.scaling_law, n_params=req.n_params, tokens_per_param=req.tokens_per_param,
        budget_field="budget_usd" if req.budget_usd is not None else "compute_flops",
    )  # fmt: skip
    if req.n_params is not None:
        how = "fixed n_params: tokens = C / (6N)"
    elif req.tokens_per_param is not None:
        how = "fixed tokens_per_param r: N = sqrt(C / (6r))"
    else:
        how = "compute-optimal under the law"
    economics = _run_economics(catalog, req, flops, req.n_gpus, energy_service.terms(req))
    return _budget_response(shape, economics, {"scaling_law": req.scaling_law.value, "shape": how})


def for_loss(req: s.ForLossRequest, catalog: CatalogReader) -> s.BudgetResponse:
    shape = scaling.compute_for_loss(req.target_loss, req.scaling_law)
    economics = _run_economics(catalog, req, shape.compute_flops, req.n_gpus, energy_service.terms(req))
    inverse = "inverse: on the optimal path alpha*A/N^alpha = beta*B/D^beta, so L - E = (A/N^alpha)(1 + alpha/beta)"
    return _budget_response(shape, economics, {"scaling_law": req.scaling_law.value, "target_loss": req.target_loss}, (inverse,))


def _served_token_usd(n_params: float, gpu: GpuView, price: s.PriceQuote, req: s.LifetimeRequest) -> tuple[float | None, str]:
    """Dollars per served token of a model of ``n_params``, from the serving model (the same one
    /v1/plan/serving and /v1/cost/inference use) on a representative Llama-style shape: a
    request's replica-time (its prefill and its share of decode steps at the largest batch the
    KV cache admits) over its prompt + output tokens."""
    arch = serving.representative_architecture(n_params)
    hw, _ = serving_service.serving_hardware(gpu, Dtype.BF16)
    chosen = serving.choose_replica(arch, hw, weights=serving.weight_bytes(arch, Dtype.BF16), kv_dtype=Dtype.BF16,
                                    prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens)  # fmt: skip
    if isinstance(chosen, str):
        return None, f"no replica inside a node serves {n_params:.3g} parameters ({chosen})"
    seconds = chosen.prefill_seconds + req.output_tokens * chosen.decode_step_seconds / chosen.batch
    usd = price.usd_per_gpu_hour * chosen.tp / cost.SECONDS_PER_HOUR * seconds / (req.prompt_tokens + req.output_tokens)
    shape = f"{arch.n_layers} layers x d_model {arch.d_model}, tp={chosen.tp}, batch {chosen.batch}"
    return usd, shape


def lifetime(req: s.LifetimeRequest, catalog: CatalogReader) -> s.LifetimeResponse:
    law = scaling.ScalingLaw(req.scaling_law)
    r = scaling.lifetime_optimal(req.target_loss, req.inference_tokens, law)
    more: dict[str, Any] = {}
    totals: list[float | None] = [None, None]
    price = None
    serving_usd: float | None = None
    if req.gpu is not None:
        gpu = _gpu(catalog, req.gpu)
        for i, (params, training_flops, inference_flops) in enumerate(
            (
                (r.params, r.training_flops, r.inference_flops),
                (
                    r.chinchilla_params,
                    6 * r.chinchilla_params * r.chinchilla_tokens,
                    2 * r.chinchilla_params * req.inference_tokens,
                ),
            )
        ):
            train = _run_economics(catalog, req, training_flops, None)
            price = price or train.price
            assert train.cost_usd is not None and train.price is not None
            per_token, how = _served_token_usd(params, gpu, train.price, req)
            if per_token is None:  # too big for one node: the inference FLOPs at the training rate, said so
                serve = _run_economics(catalog, req, inference_flops, None).cost_usd or 0.0
            else:
                serve = per_token * req.inference_tokens
            totals[i] = train.cost_usd + serve
            if i == 0:
                serving_usd = None if per_token is None else per_token * 1e6
                more |= train.assumptions | {"serving": how, "training_cost_usd": train.cost_usd, "inference_cost_usd": serve}
        more["cost_note"] = ("training FLOPs at the training throughput; served tokens priced by the serving model "
                             "(/v1/plan/serving) on a representative Llama-style shape, bf16 weights and KV cache")  # fmt: skip
    return s.LifetimeResponse(
        params=round(r.params), tokens=round(r.tokens), tokens_per_param=r.tokens / r.params, training_flops=r.training_flops,
        inference_flops=r.inference_flops, total_flops=r.total_flops, chinchilla_params=round(r.chinchilla_params),
        chinchilla_tokens=round(r.chinchilla_tokens), chinchilla_total_flops=r.chinchilla_total_flops,
        flops_saved_fraction=1 - r.total_flops / r.chinchilla_total_flops, total_cost_usd=totals[0],
        chinchilla_total_cost_usd=totals[1], usd_per_million_served_tokens=serving_usd, price=price, formulas=list(r.formulas),
        assumptions={"scaling_law": law.value, "inference_flops_per_token": "2*N (Kaplan et al. 2020)",
                     "prompt_tokens": req.prompt_tokens, "output_tokens": req.output_tokens} | more,
    )  # fmt: skip


def inference_cost(req: s.InferenceCostRequest, catalog: CatalogReader) -> s.InferenceCostResponse:
    """A replica of ``n_gpus`` (tensor-parallel) GPUs at ``batch_size``, priced by the serving
    model that ``POST /v1/plan/serving`` uses (:mod:`service.core.serving`)."""
    model = resolve_model(req.model, catalog)
    arch = compute.require_architecture(model, "serving cost (the KV cache)")
    model_notes = model_assumptions(model, req.model, req.prompt_tokens + req.output_tokens, field="output_tokens")
    serving.check_tensor_parallel(arch, req.n_gpus)
    gpu = _gpu(catalog, req.gpu)
    price = resolve_price(catalog, gpu.id, req)
    fmt = req.dtype
    hw, peak_dtype = serving_service.serving_hardware(gpu, fmt)
    kv_dtype = req.kv_dtype or Dtype.BF16
    weights = serving.weight_bytes(arch, fmt)
    r = serving.replica(arch, hw, tp=req.n_gpus, weights=weights, kv_dtype=kv_dtype, prompt_tokens=req.prompt_tokens,
                        output_tokens=req.output_tokens, batch=req.batch_size)  # fmt: skip
    money = serving.serving_cost(
        r, usd_per_gpu_hour=price.usd_per_gpu_hour, prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens
    )
    needed = r.weights_bytes + req.batch_size * r.kv_cache_bytes_per_sequence
    assumptions: dict[str, Any] = model_notes | {
        "kv_dtype": kv_dtype.value, "kv_dtype_source": "request" if req.kv_dtype else "default bf16 (not the weights' format)",
        "mean_context_tokens": req.prompt_tokens + req.output_tokens / 2, "peak_dtype": peak_dtype,
        "gpu_memory_utilization": serving.GPU_MEMORY_UTILIZATION, "runtime_reserve_bytes": serving.RUNTIME_RESERVE_BYTES,
        "price_as_of": price.as_of.isoformat() if price.as_of else None,
        "replica": f"{req.n_gpus} x {gpu.id}, weights sharded with tensor parallelism",
        "model": "the serving model of POST /v1/plan/serving",
    }  # fmt: skip
    if {"bandwidth_utilisation", "compute_utilisation"} & req.model_fields_set:  # read without the deprecation warning
        assumptions["utilisation_fields"] = "ignored: the serving model's sourced efficiencies apply (deprecated fields)"
    return s.InferenceCostResponse(
        usd_per_million_output_tokens=money.usd_per_million_output_tokens,
        usd_per_million_input_tokens=money.usd_per_million_input_tokens,
        output_tokens_per_second=r.output_tokens_per_second,
        decode_step_seconds=r.decode_step_seconds,
        decode_bound=r.decode_bound,
        prefill_seconds=r.prefill_seconds,
        time_per_output_token_seconds=r.time_per_output_token_seconds,
        fits=r.max_batch >= req.batch_size,
        memory_needed_bytes=needed,
        memory_available_bytes=r.usable_memory_bytes,
        price=price,
        formulas=list(serving_service.FORMULAS),
        assumptions=assumptions,
    )
