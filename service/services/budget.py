"""Budget use cases: dollars or a target loss to the compute-optimal model (scaling laws), and the
lifetime optimum of training plus serving; priced at the request's GPU and catalog price."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.core import cost, scaling, serving
from service.core.dtypes import Dtype
from service.errors import Unprocessable
from service.schemas import cost as s
from service.services import energy as energy_service
from service.services import rates
from service.services import serving as serving_service
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import catalog_gpu
from service.services.pricing import resolve_price


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


BudgetLike = s.BudgetRequest | s.ForLossRequest | s.LifetimeRequest  # a throughput, a price choice and an optional GPU


def _run_economics(
    catalog: CatalogReader,
    req: BudgetLike,
    compute_flops: float,
    n_gpus: int | None,
    energy: energy_service.EnergyTerms | None = None,
) -> Economics:
    """With ``energy`` (the request's inputs), also the energy and CO2e of the GPU-hours."""
    if req.gpu is None:
        return Economics()
    gpu = catalog_gpu(catalog, req.gpu)
    rate = rates.rate(gpu, req)
    efficiency, efficiency_source = rates.scaling_efficiency(req)
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
        gpu = catalog_gpu(catalog, req.gpu)
        rate = rates.rate(gpu, req)
        efficiency, _ = rates.scaling_efficiency(req)
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


@dataclass(frozen=True)
class LifetimeDollars:
    """Training plus serving dollars of one model size over its lifetime's served tokens."""

    training_usd: float
    serving_usd: float
    usd_per_token: float | None  # None: too big for one node, served at the training rate
    shape: str  # the serving shape, or why none serves it
    price: s.PriceQuote
    assumptions: dict[str, Any]

    @property
    def total_usd(self) -> float:
        return self.training_usd + self.serving_usd


def _lifetime_dollars(
    catalog: CatalogReader, req: s.LifetimeRequest, gpu: GpuView, params: float, training_flops: float, inference_flops: float
) -> LifetimeDollars:
    train = _run_economics(catalog, req, training_flops, None)
    assert train.cost_usd is not None and train.price is not None
    per_token, how = _served_token_usd(params, gpu, train.price, req)
    if per_token is None:  # too big for one node: the inference FLOPs at the training rate, said so
        serve = _run_economics(catalog, req, inference_flops, None).cost_usd or 0.0
    else:
        serve = per_token * req.inference_tokens
    return LifetimeDollars(train.cost_usd, serve, per_token, how, train.price, train.assumptions)


def lifetime(req: s.LifetimeRequest, catalog: CatalogReader) -> s.LifetimeResponse:
    law = scaling.ScalingLaw(req.scaling_law)
    r = scaling.lifetime_optimal(req.target_loss, req.inference_tokens, law)
    more: dict[str, Any] = {}
    total_usd = chinchilla_usd = serving_usd = None
    price = None
    if req.gpu is not None:
        gpu = catalog_gpu(catalog, req.gpu)
        optimal = _lifetime_dollars(catalog, req, gpu, r.params, r.training_flops, r.inference_flops)
        chinchilla = _lifetime_dollars(
            catalog, req, gpu, r.chinchilla_params, 6 * r.chinchilla_params * r.chinchilla_tokens,
            2 * r.chinchilla_params * req.inference_tokens,
        )  # fmt: skip
        price = optimal.price
        total_usd, chinchilla_usd = optimal.total_usd, chinchilla.total_usd
        serving_usd = None if optimal.usd_per_token is None else optimal.usd_per_token * 1e6
        more |= optimal.assumptions | {
            "serving": optimal.shape, "training_cost_usd": optimal.training_usd, "inference_cost_usd": optimal.serving_usd,
        }  # fmt: skip
        more["cost_note"] = ("training FLOPs at the training throughput; served tokens priced by the serving model "
                             "(/v1/plan/serving) on a representative Llama-style shape, bf16 weights and KV cache")  # fmt: skip
    return s.LifetimeResponse(
        params=round(r.params), tokens=round(r.tokens), tokens_per_param=r.tokens / r.params, training_flops=r.training_flops,
        inference_flops=r.inference_flops, total_flops=r.total_flops, chinchilla_params=round(r.chinchilla_params),
        chinchilla_tokens=round(r.chinchilla_tokens), chinchilla_total_flops=r.chinchilla_total_flops,
        flops_saved_fraction=1 - r.total_flops / r.chinchilla_total_flops, total_cost_usd=total_usd,
        chinchilla_total_cost_usd=chinchilla_usd, usd_per_million_served_tokens=serving_usd, price=price, formulas=list(r.formulas),
        assumptions={"scaling_law": law.value, "inference_flops_per_token": "2*N (Kaplan et al. 2020)",
                     "prompt_tokens": req.prompt_tokens, "output_tokens": req.output_tokens} | more,
    )  # fmt: skip
