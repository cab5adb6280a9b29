"""Request and response models of the budget endpoints: dollars, FLOPs or a loss in, a model
size, its tokens and loss out, timed by the planner on the request's cluster."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from service.core.errors import InvalidSpecError
from service.core.limits import MAX_SEQ_LEN
from service.core.scaling import ScalingLaw
from service.core.shapes import ShapeFamily
from service.schemas import inputs
from service.schemas.base import Schema
from service.schemas.calculators import Estimate
from service.schemas.cost import GpuId, NGpus, PriceChoice, PriceQuote, Throughput
from service.schemas.energy import Co2eTonnes, EnergyChoice, EnergyKwh
from service.schemas.layout import PlanItem, StepTimeOptions
from service.schemas.model import ModelSpec

# Inputs that time, price or weigh a run on a GPU type, and why each needs ``gpu``: given without
# one, each is a 422 naming it (the service would otherwise answer null time fields, unexplained).
NEEDS_GPU: dict[str, str] = {
    "n_gpus": "the GPU type whose count it is",
    "deadline_days": "the GPU type whose cluster is sized to meet it",
    "mfu": "the GPU type whose peak FLOP/s it is a fraction of",
    "achieved_tflops_per_gpu": "the GPU type whose hours it times",
    "scaling_efficiency": "the GPU type whose throughput it scales",
    "dtype": "the GPU type whose peak for this dtype the MFU applies to",
    "usd_per_gpu_hour": "the GPU type whose hours it prices",
    "provider": "the GPU type whose price at this provider is used",
    "pricing": "the GPU type whose price of this kind is used",
    "pue": "the GPU type whose hours and power draw the energy follows",
    "grid_kg_co2e_per_kwh": "the GPU type whose hours and power draw the energy follows",
    "gpu_power_fraction": "the GPU type whose TDP it is a fraction of",
    "serving_gpu": "the GPU type that trains the model; serving_gpu only replaces it for serving",
    "max_time_to_first_token_seconds": "the GPU type whose serving it bounds",
    "max_time_per_output_token_seconds": "the GPU type whose serving it bounds",
}
PLANNED_RUN_INPUTS = ("n_gpus", "deadline_days", "mfu", "achieved_tflops_per_gpu", "scaling_efficiency", "dtype",
                      "usd_per_gpu_hour", "provider", "pricing")  # fmt: skip
ENERGY_INPUTS = ("pue", "grid_kg_co2e_per_kwh", "gpu_power_fraction")
SERVING_INPUTS = ("serving_gpu", "max_time_to_first_token_seconds", "max_time_per_output_token_seconds")


def gpu_field(inputs: tuple[str, ...], planner_cluster: bool = True) -> Any:
    """The optional ``gpu`` of a budget request, its description naming the ``inputs`` that need it."""
    return Field(
        None,
        description="Catalog GPU id, e.g. `h100-sxm`: the GPU type that times and prices the run. Without it the answer "
        "has no time, price or energy (null), and each of these inputs is a 422 naming it: " + ", ".join(inputs) + ". "
        "The planner's inputs (shape_family, seq_len, precision, ...) also need n_gpus"
        + (" or deadline_days" if planner_cluster else "")
        + " and no stated mfu.",
    )


# Inputs only the planner reads (its step-time options, the family whose shape it plans, the batch,
# the sequence and the downtime): the planner runs with ``gpu`` and ``n_gpus`` or ``deadline_days``
# and no throughput of the request's own; given otherwise, each is a 422 naming it.
PLANNER_INPUTS: tuple[str, ...] = (
    *inputs.STEP_TIME_INPUTS, "shape_family", "seq_len", "global_batch_tokens", "effective_time_fraction",
)  # fmt: skip
MFU_INPUTS = inputs.MFU_INPUTS  # inputs only a stated MFU reads, and why
# The lifetime optimum reads shape_family with any gpu (the serving model serves the family's shape at
# each size), and dtype with any gpu (sizes no replica serves are priced at the training rate).
LIFETIME_WITH_GPU = ("shape_family", "dtype")


def unused_inputs(req: Schema, planner: bool) -> dict[str, str]:
    """The inputs the request gives that its answer would not read, each with why: the planner's
    without the planner (``planner``: whether it runs), a stated MFU's with it, ``shape_family``
    beside an explicit ``model`` (:mod:`service.schemas.inputs`). Inputs that need ``gpu`` without
    one are :func:`given_without_gpu`'s; step-time options no step of the run reads (a mixture's on
    a dense model) are :func:`service.schemas.inputs.inapplicable_options`'."""
    lifetime = isinstance(req, LifetimeRequest)
    gpu = getattr(req, "gpu", None)
    kept = LIFETIME_WITH_GPU if lifetime else ()
    if planner:
        out = inputs.mfu_only(req, {f: why for f, why in MFU_INPUTS.items() if f not in kept})
    else:
        runs = "gpu and n_gpus" if lifetime else "gpu and n_gpus or deadline_days"
        rate = gpu is not None and inputs.stated_rate(req)
        out = inputs.planner_only(req, [f for f in PLANNER_INPUTS if f not in kept], runs, rate)
        if gpu is None:
            for f in inputs.given(req, [f for f in kept if f in PLANNER_INPUTS]):
                out[f] = "needs gpu (the GPU type that trains and serves the family's shape at each size)"
    if getattr(req, "model", None) is not None and inputs.given(req, ["shape_family"]):
        out["shape_family"] = "the explicit model fixes the architecture: give one or the other"
    return out


def given_without_gpu(req: Schema) -> list[str]:
    """The inputs of :data:`NEEDS_GPU` the request gives (not null; a defaulted one only when sent at another value)
    while it has no ``gpu``, in that order."""
    if getattr(req, "gpu", None) is not None:
        return []
    return inputs.given(req, NEEDS_GPU)


class PlannedRun(StepTimeOptions):
    """How the planner times a budget's run: on ``n_gpus`` GPUs, or on the cluster a deadline asks
    for, with the shape of a model family at each size (or one explicit model). The planner runs with
    `gpu` and `n_gpus` or `deadline_days` and no `mfu` or `achieved_tflops_per_gpu`; otherwise each of its
    inputs (the step-time options from `precision` to `efficiency`, `shape_family`, `seq_len`,
    `global_batch_tokens`, `effective_time_fraction`) is a 422 naming it, and where it runs, so are
    `dtype` and `scaling_efficiency` (a stated MFU's: the planner times the run at `precision`), the
    mixture-of-experts options on the dense shapes it plans (every family's; an explicit `model` without
    experts) and `cuda_graphs` (no budget run fine-tunes adapters)."""

    n_gpus: NGpus | None = Field(
        None,
        description="Cluster size of `gpu` (needs it): the run is timed by its best plan there (the step-time model, "
        "POST /v1/plan), or at the MFU when the request gives mfu or achieved_tflops_per_gpu (the planner's inputs are "
        "then a 422).",
    )
    deadline_days: float | None = Field(
        None, gt=0, le=36_500,
        description="Instead of n_gpus (needs `gpu`): the cluster of `gpu` that finishes within this many days is chosen.",
    )  # fmt: skip
    shape_family: ShapeFamily = Field(
        ShapeFamily.LLAMA3,
        description="Whose shape rules turn a parameter count into an architecture for the planner: llama3 (default), "
        "qwen2.5 or olmo2 (depth, width, GQA, d_ff and vocabulary interpolated between the family's released configs). "
        "The planner's (a 422 where it does not run, or beside `model`); the lifetime optimum serves it with any `gpu`.",
    )
    seq_len: int | None = Field(
        None,
        ge=1,
        le=MAX_SEQ_LEN,
        description="The planner's training sequence length; default the family's pre-training length.",
    )
    global_batch_tokens: int | None = Field(
        None,
        ge=1,
        le=10**12,
        description="The planner's tokens per optimizer step; default max(4M, 1,024 per GPU), as /v1/cost/training.",
    )
    effective_time_fraction: float = Field(
        0.9,
        ge=0.1,
        le=1,
        description="Wall-clock share spent training (failures, restarts), as /v1/cost/training: the planner's (a stated MFU "
        "is measured over the wall clock and holds it already).",
    )

    @model_validator(mode="after")
    def _one_cluster(self) -> PlannedRun:
        if self.n_gpus is not None and self.deadline_days is not None:
            raise ValueError("give n_gpus or deadline_days, not both")
        return self


class ShapeUsed(Schema):
    """The architecture the planner timed."""

    source: str = Field(description="The family whose shape rules built it, or `request` for an explicit model.")
    params: float = Field(description="Its exact parameter count.")
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    vocab_size: int
    tied_embeddings: bool


class BudgetPoint(Schema):
    """Another size for the same dollars, timed by its own best plan on the same cluster."""

    label: str = Field(description="`isoflop 0.5x`-style (a size around the optimum) or `tokens_per_param 100`-style.")
    params: float = Field(
        description="Active parameters of the architecture planned for the size (the family's shape nearest it)."
    )
    tokens: float = Field(description="The tokens its plan trains for the dollars: compute_flops / (6 params).")
    tokens_per_param: float
    compute_flops: float = Field(description="What the budget buys at this size's own plan.")
    predicted_loss: float | None = Field(description="None where no layout fits this size.")
    mfu: float | None
    plan: str | None = Field(description="The layout, or why none fits.")


class BudgetRequest(Throughput, PriceChoice, EnergyChoice, PlannedRun):
    """Dollars (`budget_usd`, with `gpu` and its price) or FLOPs (`compute_flops`) to a model size; with `gpu`, the
    run is also timed and priced (on `n_gpus`, on a deadline's cluster, or at the MFU)."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"budget_usd": 1_000_000, "gpu": "h100-sxm", "scaling_law": "hoffmann2022", "n_gpus": 256},
                {"compute_flops": 5.76e23, "scaling_law": "besiroglu2024"},
                {"compute_flops": 5.76e23, "gpu": "h100-sxm", "n_gpus": 1024, "usd_per_gpu_hour": 2.5},
                {"budget_usd": 100_000, "gpu": "h100-sxm", "tokens_per_param": 200},
                {"budget_usd": 5_000_000, "gpu": "h100-sxm", "deadline_days": 30, "shape_family": "qwen2.5"},
                {"budget_usd": 10_000_000, "gpu": "a100-80gb-sxm", "n_gpus": 2048, "model": {"preset": "llama-2-70b"}},
            ]
        }
    }

    budget_usd: float | None = Field(None, gt=0, le=1e13)
    model: ModelSpec | None = Field(
        None, description="An explicit architecture instead of a family's shape: its size is then fixed (n_params = its count)."
    )
    compute_flops: float | None = Field(None, gt=0, le=1e35)
    gpu: GpuId | None = gpu_field(PLANNED_RUN_INPUTS + ENERGY_INPUTS)
    scaling_law: ScalingLaw = ScalingLaw.HOFFMANN2022
    n_params: float | None = Field(None, ge=1, le=1e16, description="Fixed model size instead of the optimum.")
    tokens_per_param: float | None = Field(None, ge=1e-3, le=1e6, description="Fixed data/model ratio instead of the optimum.")

    @model_validator(mode="after")
    def _budget_or_compute(self) -> BudgetRequest:
        if (self.budget_usd is None) == (self.compute_flops is None):
            raise ValueError("give exactly one of budget_usd or compute_flops")
        if self.budget_usd is not None and self.gpu is None:
            raise InvalidSpecError("gpu", "budget_usd needs a gpu to turn dollars into FLOPs")
        if sum(x is not None for x in (self.n_params, self.tokens_per_param, self.model)) > 1:
            raise ValueError("give one of n_params, tokens_per_param or model (which fixes the size), not several")
        return self


class LossMeaning(Schema):
    unit: str = "nats per token"
    meaning: str
    limits: str


LOSS_MEANING = LossMeaning(
    meaning=(
        "cross-entropy the fit predicts on its own training distribution (MassiveText for the "
        "Hoffmann fit and its Besiroglu refit); compare losses only under the same law"
    ),
    limits=(
        "an extrapolation outside roughly 70M-16B parameters and 5B-500B tokens; it says nothing "
        "about other data, tokenizers, architectures or downstream accuracy"
    ),
)


class BudgetResponse(Estimate):
    compute_flops: float
    params: float
    tokens: float
    tokens_per_param: float
    predicted_loss: float
    optimal_params: float
    optimal_tokens: float
    optimal_loss: float
    loss_gap: float = Field(description="predicted_loss − optimal_loss: what a non-optimal shape gives up.")
    loss: LossMeaning
    gpu_hours: float | None
    energy_kwh: EnergyKwh = None
    co2e_tonnes: Co2eTonnes = None
    wall_clock_hours: float | None
    wall_clock_days: float | None = None
    cost_usd: float | None
    price: PriceQuote | None
    n_gpus: int | None = Field(None, description="The cluster the run is timed on: the request's, or the deadline's.")
    mfu: float | None = Field(
        None, description="Model FLOPs over the GPU-seconds paid (downtime included), as /v1/cost/training; or the MFU assumed."
    )
    time_from: str | None = Field(None, description="`plan` (the step-time model's best plan) or `mfu` (a stated MFU).")
    fits: bool | None = Field(
        None, description="False when no layout of this size fits the cluster, or the deadline cannot be met."
    )
    reason: str | None = Field(None, description="Why not, when `fits` is false.")
    plan: PlanItem | None = Field(None, description="The best plan the time comes from.")
    architecture: ShapeUsed | None = Field(None, description="The architecture the plan is for.")
    alternatives: list[BudgetPoint] = Field(
        default_factory=list,
        description="With a plan and budget_usd: other sizes for the same dollars, each timed by its own plan.",
    )


class ForLossRequest(Throughput, PriceChoice, EnergyChoice, PlannedRun):
    """A target loss to the compute-optimal run that reaches it; with `gpu`, its time and dollars."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"target_loss": 2.0, "scaling_law": "hoffmann2022", "gpu": "h100-sxm"},
                {"target_loss": 2.0, "gpu": "h100-sxm", "n_gpus": 1024},
            ]
        }
    }

    target_loss: float = Field(gt=0, le=100, description="Nats per token on the fit's data.")
    scaling_law: ScalingLaw = ScalingLaw.HOFFMANN2022
    gpu: GpuId | None = gpu_field(PLANNED_RUN_INPUTS + ENERGY_INPUTS)


class LifetimeRequest(Throughput, PriceChoice, PlannedRun):
    """A target loss and the tokens served over the model's lifetime to the size of least training plus inference
    FLOPs; with `gpu`, also the size of least training plus serving dollars. The planner runs with `gpu` and `n_gpus`;
    `shape_family` (the shape served at each size) and `dtype` (the peak that prices the sizes no replica serves) are
    read with any `gpu`."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"target_loss": 2.0, "inference_tokens": 2e13, "gpu": "h100-sxm"},
                {"target_loss": 2.0, "inference_tokens": 1e13, "gpu": "h100-sxm", "n_gpus": 1024},
                {
                    "target_loss": 2.0,
                    "inference_tokens": 1e13,
                    "gpu": "h100-sxm",
                    "prompt_tokens": 200,
                    "output_tokens": 800,
                    "max_time_per_output_token_seconds": 0.02,
                },
            ]
        }
    }

    target_loss: float = Field(gt=0, le=100)
    inference_tokens: float = Field(ge=0, le=1e18, description="Tokens served over the model's lifetime.")
    scaling_law: Literal["hoffmann2022", "besiroglu2024"] = "hoffmann2022"
    gpu: GpuId | None = gpu_field(tuple(f for f in PLANNED_RUN_INPUTS if f != "deadline_days") + SERVING_INPUTS, False)
    serving_gpu: GpuId | None = Field(None, description="The GPU that serves the model (needs `gpu`); default `gpu`.")
    prompt_tokens: int = Field(1000, ge=0, le=MAX_SEQ_LEN, description="Per served request, for the serving price.")
    output_tokens: int = Field(200, ge=1, le=MAX_SEQ_LEN, description="Per served request, for the serving price.")
    max_time_to_first_token_seconds: float | None = Field(
        None, gt=0, le=86_400, description="Latency bound of the served traffic (as /v1/plan/serving): caps the prefill."
    )
    max_time_per_output_token_seconds: float | None = Field(
        None, gt=0, le=3_600, description="Latency bound of the served traffic: caps the decode batch, so serving reads the "
        "weights for fewer tokens (memory-bound).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _no_deadline(self) -> LifetimeRequest:
        if self.deadline_days is not None:
            raise InvalidSpecError("deadline_days", "the lifetime optimum times each size on n_gpus; give n_gpus instead")
        return self


class LifetimeChoice(Schema):
    """One model size for the target loss: its run, and its training and serving dollars."""

    params: float
    tokens: float
    tokens_per_param: float
    training_flops: float
    training_usd: float
    serving_usd: float
    total_usd: float
    usd_per_million_served_tokens: float | None = Field(description="None: no replica inside a node serves it.")
    training_mfu: float | None
    serving: str = Field(description="The serving layout, or why none serves it.")
    architecture: ShapeUsed = Field(description="The family's shape at this size, trained and served.")
    serving_usd_per_flop_over_training: float | None = Field(
        description="Dollars per inference FLOP (2N per token) over dollars per training FLOP: above 1 serving is the dearer "
        "FLOP (memory-bound decode), which moves the dollar optimum below the FLOP optimum."
    )


class LifetimeResponse(Estimate):
    params: float
    tokens: float
    tokens_per_param: float
    training_flops: float
    inference_flops: float
    total_flops: float
    chinchilla_params: float
    chinchilla_tokens: float
    chinchilla_total_flops: float
    flops_saved_fraction: float = Field(description="1 − total / Chinchilla-optimal total for the same loss.")
    total_cost_usd: float | None
    usd_per_million_served_tokens: float | None = Field(description="What serving costs per million tokens (prompt and output).")
    chinchilla_total_cost_usd: float | None
    price: PriceQuote | None
    flop_optimal: LifetimeChoice | None = Field(
        None, description="With a gpu: the FLOP-optimal size (Sardana et al.), priced (the top-level params)."
    )
    dollar_optimal: LifetimeChoice | None = Field(
        None, description="With a gpu: the size that minimises training plus serving dollars for the same loss."
    )
    usd_saved: float | None = Field(None, description="flop_optimal.total_usd − dollar_optimal.total_usd.")
