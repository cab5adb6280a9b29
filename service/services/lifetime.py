"""The lifetime optimum of a model for a target loss: the size that minimises training plus
inference FLOPs (Sardana et al. 2023), and the size that minimises training plus serving
dollars, side by side. Serving is memory-bound (each decode step reads the weights), so its
dollars fall faster with the size than its FLOPs: the dollar optimum is the smaller model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from service.core import cost, scaling, serving, serving_choice, shapes
from service.core.dtypes import Dtype
from service.schemas import budget as s
from service.schemas.cost import PriceQuote
from service.services import budget_plan as bp
from service.services import rates
from service.services import serving as serving_service
from service.services.budget import planned, price_for, require_used
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import catalog_gpu

GRID_POINTS = 8  # sizes between the smallest that reaches the loss and the Chinchilla optimum
REFINE_STEPS = 10  # golden-section steps around the grid's best


@dataclass(frozen=True)
class Pricing:
    """What the request's GPUs cost and how the training GPU runs."""

    train_gpu: GpuView
    train_price: PriceQuote
    serve_gpu: GpuView
    serve_price: PriceQuote


@dataclass(frozen=True)
class Choice:
    """One size for the target loss, priced."""

    params: float
    tokens: float
    training_usd: float
    serving_usd: float
    usd_per_token: float | None  # None: no replica inside a node serves it
    training_mfu: float | None
    serving: str
    architecture: s.ShapeUsed

    @property
    def total_usd(self) -> float:
        return self.training_usd + self.serving_usd

    def schema(self) -> s.LifetimeChoice:
        return s.LifetimeChoice(
            params=round(self.params), tokens=round(self.tokens), tokens_per_param=self.tokens / self.params,
            training_flops=6 * self.params * self.tokens, training_usd=self.training_usd, serving_usd=self.serving_usd,
            total_usd=self.total_usd, usd_per_million_served_tokens=None if self.usd_per_token is None else self.usd_per_token * 1e6,
            training_mfu=self.training_mfu, serving=self.serving, architecture=self.architecture,
            serving_usd_per_flop_over_training=self.flop_price_ratio,
        )  # fmt: skip

    @property
    def flop_price_ratio(self) -> float | None:
        if self.usd_per_token is None or self.training_usd <= 0:
            return None
        return (self.usd_per_token / (2 * self.params)) / (self.training_usd / (6 * self.params * self.tokens))


def served_token_usd(arch: Any, gpu: GpuView, price: PriceQuote, req: s.LifetimeRequest) -> tuple[float | None, str]:
    """Dollars per served token, from the serving model (the one /v1/plan/serving and
    /v1/cost/inference use): a request's replica-time (its prefill and its share of decode steps
    at the largest batch the KV cache admits) over its prompt + output tokens, bf16 weights and KV."""
    hw, _ = serving_service.serving_hardware(gpu, Dtype.BF16)
    chosen = serving_choice.choose_replica(
        arch, hw, weights=serving.weight_bytes(arch, Dtype.BF16), kv_dtype=Dtype.BF16, prompt_tokens=req.prompt_tokens,
        output_tokens=req.output_tokens, max_time_to_first_token_seconds=req.max_time_to_first_token_seconds,
        max_time_per_output_token_seconds=req.max_time_per_output_token_seconds,
    )  # fmt: skip
    if isinstance(chosen, str):
        return None, f"no replica inside a node of {gpu.id} serves it ({chosen})"
    seconds = chosen.prefill_seconds + req.output_tokens * chosen.decode_step_seconds / chosen.batch
    usd = price.usd_per_gpu_hour * chosen.tp / cost.SECONDS_PER_HOUR * seconds / (req.prompt_tokens + req.output_tokens)
    return usd, f"{gpu.id}: tp={chosen.tp}, batch {chosen.batch}"


class Pricer:
    """Training plus serving dollars of a size, each size priced once."""

    def __init__(self, req: s.LifetimeRequest, catalog: CatalogReader, pricing: Pricing) -> None:
        self.req, self.catalog, self.pricing = req, catalog, pricing
        self.law = scaling.ScalingLaw(req.scaling_law)
        self.seen: dict[float, Choice] = {}
        self.unplanned: str | None = None  # why a size fell back to the MFU

    def training(self, arch: Any, training_flops: float) -> tuple[float, float | None]:
        """Training dollars and MFU: by the size's best plan on n_gpus, else at the MFU."""
        p = self.pricing
        if planned(self.req):
            assert self.req.n_gpus is not None
            timed = bp.time_on(arch, self.req.shape_family.value, p.train_gpu, self.req.n_gpus, self.req)
            if timed.best is not None:
                hours = timed.wall_clock_hours(training_flops, self.req.effective_time_fraction)
                return cost.dollars(hours * timed.n_gpus, p.train_price.usd_per_gpu_hour), timed.best.mfu
            self.unplanned = f"{timed.reason} (n_gpus {self.req.n_gpus}); that size is timed at the MFU"
        rate = rates.rate(p.train_gpu, self.req)
        efficiency, _ = rates.scaling_efficiency(self.req)
        r = cost.training_cost(training_flops, flops_per_s_per_gpu=rate.flops_per_s_per_gpu, n_gpus=1,
                               scaling_efficiency=efficiency, usd_per_gpu_hour=p.train_price.usd_per_gpu_hour, mfu=rate.mfu)  # fmt: skip
        return r.cost_usd or 0.0, rate.mfu

    def __call__(self, n_params: float) -> Choice:
        if n_params in self.seen:
            return self.seen[n_params]
        tokens = scaling.tokens_for_loss(n_params, self.req.target_loss, self.law)
        arch = shapes.representative_architecture(n_params, self.req.shape_family)
        training_usd, mfu = self.training(arch, 6 * n_params * tokens)
        p = self.pricing
        per_token, how = served_token_usd(arch, p.serve_gpu, p.serve_price, self.req)
        if per_token is None:  # too big for one node: its inference FLOPs (2N per token) at the training rate
            rate = rates.rate(p.train_gpu, self.req)
            seconds = 2 * n_params * self.req.inference_tokens / rate.flops_per_s_per_gpu
            serving_usd = p.train_price.usd_per_gpu_hour * seconds / cost.SECONDS_PER_HOUR
        else:
            serving_usd = per_token * self.req.inference_tokens
        shape = bp.shape_used(arch, self.req.shape_family.value)
        choice = Choice(n_params, tokens, training_usd, serving_usd, per_token, mfu, how, shape)
        self.seen[n_params] = choice
        return choice


def dollar_optimum(pricer: Pricer, n_min: float, n_max: float) -> Choice | None:
    """The size of least total dollars in (n_min, n_max]: a grid in log N, then golden-section
    steps around its best point (discrete shapes and plans make the curve only piecewise smooth).
    Sizes no replica serves within the latency bounds are left out; None when none is served."""
    lo, hi = math.log(n_min * 1.001), math.log(n_max)
    grid = [lo + (hi - lo) * k / (GRID_POINTS - 1) for k in range(GRID_POINTS)]

    def usd(log_n: float) -> float:  # a size no replica serves within the bounds is no answer
        choice = pricer(math.exp(log_n))
        return choice.total_usd if choice.usd_per_token is not None else math.inf

    best = min(range(GRID_POINTS), key=lambda k: usd(grid[k]))
    a, b = grid[max(0, best - 1)], grid[min(GRID_POINTS - 1, best + 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(REFINE_STEPS):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if usd(c) <= usd(d):
            b = d
        else:
            a = c
    served = [choice for choice in pricer.seen.values() if choice.usd_per_token is not None]
    return min(served, key=lambda choice: choice.total_usd) if served else None


def lifetime(req: s.LifetimeRequest, catalog: CatalogReader) -> s.LifetimeResponse:
    require_used(req)
    law = scaling.ScalingLaw(req.scaling_law)
    r = scaling.lifetime_optimal(req.target_loss, req.inference_tokens, law)
    more: dict[str, Any] = {}
    flop = chinchilla = dollar = None
    price = None
    if req.gpu is not None:
        train_gpu = catalog_gpu(catalog, req.gpu)
        serve_gpu = catalog_gpu(catalog, req.serving_gpu, field="serving_gpu") if req.serving_gpu else train_gpu
        pricing = Pricing(train_gpu, price_for(catalog, train_gpu, req), serve_gpu, price_for(catalog, serve_gpu, req))
        price = pricing.train_price
        pricer = Pricer(req, catalog, pricing)
        flop, chinchilla = pricer(r.params), pricer(r.chinchilla_params)
        dollar = dollar_optimum(pricer, scaling.smallest_params_for_loss(req.target_loss, law), r.chinchilla_params)
        more |= ({} if planned(req) else rates.rate(train_gpu, req).assumptions) | {
            "serving": flop.serving, "training_cost_usd": flop.training_usd, "inference_cost_usd": flop.serving_usd,
            "training_time_from": "each size's best plan on n_gpus (step-time model)" if planned(req) else "the MFU",
            "serving_gpu": serve_gpu.id, "serving_price_usd_per_gpu_hour": pricing.serve_price.usd_per_gpu_hour,
            "serving_price_as_of": pricing.serve_price.as_of.isoformat() if pricing.serve_price.as_of else None,
            "serving_price_source": pricing.serve_price.source,
            "shape_family": req.shape_family.value, "dollar_optimum_search": f"{len(pricer.seen)} sizes priced",
            "price_as_of": price.as_of.isoformat() if price.as_of else None,
            "cost_note": "training dollars from the training throughput; served tokens priced by the serving model "
                         "(/v1/plan/serving) on the family's shape at each size, bf16 weights and KV cache",
        }  # fmt: skip
        if dollar is None:
            more["dollar_optimal"] = (
                f"none: no size from the smallest that reaches the loss to the Chinchilla optimum is served within the bounds on {serve_gpu.id}"
            )
        if pricer.unplanned:
            more["unplanned"] = pricer.unplanned
    return s.LifetimeResponse(
        params=round(r.params), tokens=round(r.tokens), tokens_per_param=r.tokens / r.params, training_flops=r.training_flops,
        inference_flops=r.inference_flops, total_flops=r.total_flops, chinchilla_params=round(r.chinchilla_params),
        chinchilla_tokens=round(r.chinchilla_tokens), chinchilla_total_flops=r.chinchilla_total_flops,
        flops_saved_fraction=1 - r.total_flops / r.chinchilla_total_flops,
        total_cost_usd=flop.total_usd if flop else None, chinchilla_total_cost_usd=chinchilla.total_usd if chinchilla else None,
        usd_per_million_served_tokens=None if flop is None or flop.usd_per_token is None else flop.usd_per_token * 1e6,
        price=price, flop_optimal=flop.schema() if flop else None, dollar_optimal=dollar.schema() if dollar else None,
        usd_saved=flop.total_usd - dollar.total_usd if flop and dollar and flop.usd_per_token is not None else None, formulas=[
            *r.formulas, "dollar optimum: minimise training $ + served tokens x $/token (serving model) over N for the same loss"],
        assumptions={"scaling_law": law.value, "inference_flops_per_token": "2*N (Kaplan et al. 2020)",
                     "prompt_tokens": req.prompt_tokens, "output_tokens": req.output_tokens} | more,
    )  # fmt: skip
