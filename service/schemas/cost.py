"""Request and response models of the cost and budget endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, model_validator

from service.core.compute import Recompute
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.limits import MAX_SEQ_LEN, MAX_TOKENS
from service.core.memory import Precision
from service.schemas.base import PeakDtype, Pricing, Schema
from service.schemas.calculators import FINETUNE_DESCRIPTION, Estimate
from service.schemas.energy import Co2eTonnes, EnergyChoice, EnergyKwh
from service.schemas.finetune import Finetune, FinetuneComputeDetail, lora_shorthand
from service.schemas.layout import FixedDimensions, PlanItem, StepTimeOptions
from service.schemas.model import ModelSpec
from service.schemas.spot import SpotDetail, SpotOptions

GpuId = Annotated[str, Field(min_length=1, max_length=64, description="Catalog GPU id, e.g. `h100-sxm`.")]
NGpus = Annotated[int, Field(ge=1, le=1_000_000)]
Mfu = Annotated[float, Field(ge=0.001, le=1, description="Model FLOPs utilisation in (0, 1] (at least 0.001).")]


class PriceChoice(Schema):
    """How to price GPU-hours: an explicit price, a provider's current price, or (neither) the
    cheapest current price for the GPU in the catalog."""

    usd_per_gpu_hour: float | None = Field(None, ge=1e-6, le=1e6)
    provider: str | None = Field(None, min_length=1, max_length=64)
    pricing: Pricing = Pricing.ON_DEMAND

    @model_validator(mode="after")
    def _one_source(self) -> PriceChoice:
        if self.usd_per_gpu_hour is not None and self.provider is not None:
            raise ValueError("give usd_per_gpu_hour or provider, not both")
        return self


class Throughput(Schema):
    """How fast one GPU runs: MFU × the GPU's dense peak for ``dtype``, or an explicit figure."""

    mfu: Mfu | None = Field(None, description="Default: the GPU's catalog default_mfu, else 0.40.")
    achieved_tflops_per_gpu: float | None = Field(None, ge=1e-6, le=1e6, description="Instead of mfu.")
    dtype: PeakDtype = Field(PeakDtype.BF16, description="Which peak the MFU applies to.")
    scaling_efficiency: float | None = Field(
        None,
        ge=0.01,
        le=1,
        description="Multiplies the MFU's throughput; default 1 (a measured MFU already holds the losses of scale).",
    )

    @model_validator(mode="after")
    def _one_rate(self) -> Throughput:
        if self.mfu is not None and self.achieved_tflops_per_gpu is not None:
            raise ValueError("give mfu or achieved_tflops_per_gpu, not both")
        return self


class PriceQuote(Schema):
    """The price an estimate used, and where it came from."""

    usd_per_gpu_hour: float
    provider: str | None
    pricing: Pricing | None
    as_of: dt.date | None
    source: str
    chosen: str = Field(description="explicit, provider, or cheapest")


class TrainingCostRequest(StepTimeOptions, Throughput, PriceChoice, EnergyChoice):
    """A training run's FLOPs, time and dollars. The planner times it where the model has its architecture and the
    request states no `mfu` or `achieved_tflops_per_gpu`; otherwise each of the planner's inputs (the step-time options
    from `precision` to `efficiency`, `fixed`, `global_batch_tokens`, `effective_time_fraction`, and `seq_len` without
    `include_attention` or an adapter fine-tune) is a 422 naming it, and where it runs, so are `scaling_efficiency` and
    `dtype` beside `precision` (a stated MFU's)."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": {"preset": "llama-2-7b"}, "tokens": 2e12, "gpu": "a100-80gb-sxm", "n_gpus": 1024, "mfu": 0.4},
                {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 64, "provider": "lambda"},
                {
                    "model": {"preset": "llama-3-8b"},
                    "tokens": 1e12,
                    "gpu": "h100-sxm",
                    "n_gpus": 256,
                    "usd_per_gpu_hour": 2.0,
                    "spot": {"interruptions_per_node_hour": 0.001},
                },
            ]
        }
    }

    model: ModelSpec
    tokens: float = Field(gt=0, le=MAX_TOKENS)
    gpu: GpuId
    n_gpus: NGpus = 8
    precision: Precision = Field(
        Precision.MIXED_BF16,
        description="The planner's: mixed_bf16, mixed_fp16, bf16, fp32, or fp8 (the blocks' matmuls in FP8 with BF16 master "
        "weights and gradients as Transformer Engine runs them; needs FP8 tensor cores). Left out or at the default "
        "mixed_bf16, the planner trains at `dtype`'s: bf16 mixed_bf16, fp16 mixed_fp16, fp32 fp32 (another dtype times "
        "the run at the MFU).",
    )
    recompute: Recompute = Field(
        Recompute.NONE,
        description="Adds hardware FLOPs (reported, with the HFU they imply); time follows model FLOPs at the MFU.",
    )
    include_attention: bool = False
    seq_len: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN,
        description="Tokens per sequence, for the planner, the attention FLOPs (include_attention) and an adapter fine-tune's "
        "memory check; default: the model's context, at most 8,192. At a stated MFU without either, a 422.",
    )  # fmt: skip
    global_batch_tokens: int | None = Field(
        None, ge=1, le=10**12,
        description="Tokens per optimizer step, for the planner (a 422 at a stated MFU); default max(4M, 1,024 per GPU).",
    )  # fmt: skip
    finetune: Finetune | None = Field(
        None,
        description=FINETUNE_DESCRIPTION + " LoRA/QLoRA is timed by the planner's fine-tune plan (a frozen base, the "
        "adapters' own work), or at the MFU when one is given.",
    )
    fixed: FixedDimensions | None = Field(
        None, description="Layout dimensions the planner holds fixed (as POST /v1/plan's `fixed`; a 422 at a stated MFU)."
    )
    effective_time_fraction: float = Field(
        0.9,
        ge=0.1,
        le=1,
        description="With the planner: wall-clock share spent training (failures, restarts); Llama 3 §3.3.4 "
        "reports > 90 %. 1 compares with a throughput-only figure (DeepSeek-V3's GPU-hours per trillion tokens). A 422 at a "
        "stated MFU, which is measured over the wall clock and holds the downtime already.",
    )

    spot: SpotOptions | None = Field(
        None, description="Interruptible capacity: the expected hours and dollars with checkpoints and restarts (give "
        "pricing: spot, or usd_per_gpu_hour).",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _lora_shorthand(cls, data: object) -> object:
        return lora_shorthand(data)

    @model_validator(mode="after")
    def _spot_price(self) -> TrainingCostRequest:
        if self.spot is not None and self.usd_per_gpu_hour is None and self.pricing is not Pricing.SPOT:
            raise InvalidSpecError("spot", "price it at spot (pricing: spot) or give usd_per_gpu_hour")
        return self


class TrainingCostResponse(Estimate):
    total_flops: float = Field(description="Model FLOPs of the run.")
    hardware_flops: float = Field(description="Including recomputation: what the GPUs execute.")
    gpu_hours: float
    energy_kwh: EnergyKwh = None
    co2e_tonnes: Co2eTonnes = None
    wall_clock_hours: float
    wall_clock_days: float
    cost_usd: float
    price: PriceQuote
    gpu: str
    n_gpus: int
    mfu: float | None = Field(description="The request's or catalog's MFU, or the planner's predicted MFU.")
    achieved_tflops_per_gpu: float = Field(description="Model FLOPs of the run over its GPU-seconds, 10^12.")
    scaling_efficiency: float = Field(description="1 unless the request gives one: an MFU already holds the losses of scale.")
    fits: bool | None = Field(
        description="Whether any layout fits (null when the planner was not used, except for LoRA/QLoRA: then its "
        "least-memory data-parallel layout)."
    )
    reason: str | None = Field(description="Why no layout fits, when `fits` is false.")
    plan: PlanItem | None = Field(description="The best plan the time comes from, when the planner priced the run.")
    finetune: FinetuneComputeDetail | None = Field(
        None, description="LoRA/QLoRA: the adapters' share of the FLOPs (null for full training)."
    )
    spot: SpotDetail | None = Field(None, description="With spot: the interruptions and checkpoints the hours include.")


class CompareRequest(Throughput, EnergyChoice):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [{"model": {"preset": "llama-3-8b"}, "tokens": 15e12, "n_gpus": 512, "sort_by": "cost"}]
        }
    }

    model: ModelSpec
    tokens: float = Field(gt=0, le=MAX_TOKENS)
    n_gpus: NGpus = 8
    pricing: Pricing = Pricing.ON_DEMAND
    gpus: list[GpuId] | None = Field(None, max_length=100, description="Only these GPUs.")
    providers: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=100)
    sort_by: Literal["cost", "time"] = "cost"
    seq_len: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN,
        description="Tokens per sequence, for the planner and the memory check; default: the model's context, at most 8,192.",
    )  # fmt: skip
    global_batch_tokens: int | None = Field(
        None, ge=1, le=10**12,
        description="Tokens per optimizer step, for the planner (a 422 at a stated MFU or without the architecture); "
        "default max(4M, 1,024 per GPU).",
    )  # fmt: skip


class CompareRow(Schema):
    gpu: str
    provider: str
    pricing: Pricing
    usd_per_gpu_hour: float
    as_of: dt.date
    source: str = Field(description="Where the catalog's price comes from (its `source`).")
    gpu_hours: float | None
    energy_kwh: EnergyKwh = None
    co2e_tonnes: Co2eTonnes = None
    wall_clock_hours: float | None
    cost_usd: float | None
    mfu: float | None
    fits: bool
    min_memory_bytes_per_gpu: int | None = Field(
        description="GPU memory each GPU needs, CUDA context included: the best plan's tensors plus the context, else the least "
        "over the layouts tried."
    )
    plan: str | None = Field(description="The plan the time comes from, when the planner priced the row.")
    note: str


class CompareResponse(Estimate):
    rows: list[CompareRow]
    total_flops: float


class InferenceCostRequest(PriceChoice):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "model": {"preset": "llama-2-70b"},
                    "gpu": "h100-sxm",
                    "n_gpus": 2,
                    "batch_size": 32,
                    "prompt_tokens": 1000,
                    "output_tokens": 250,
                }
            ]
        }
    }

    model: ModelSpec
    gpu: GpuId
    n_gpus: NGpus = 1
    ep: int | None = Field(
        None, ge=2, le=4096, description="A mixture's expert-parallel unit of this many GPUs instead of a tensor-parallel "
        "replica: routed experts sharded, attention data-parallel (DeepSeek-V3 §3.4); batch_size is then the unit's and "
        "n_gpus must be 1 or ep. Default none: n_gpus GPUs of tensor parallelism.", examples=[32],
    )  # fmt: skip
    batch_size: int = Field(1, ge=1, le=100_000)
    prompt_tokens: int = Field(512, ge=0, le=MAX_SEQ_LEN)
    output_tokens: int = Field(256, ge=1, le=MAX_SEQ_LEN)
    dtype: Dtype = Field(Dtype.BF16, description="Weight format (int4: GPTQ/AWQ-style, scales counted).")
    kv_dtype: Dtype | None = Field(None, description="KV-cache format; default bf16 (never the weights' format silently).")
    bandwidth_utilisation: float | None = Field(
        None, ge=0.01, le=1, deprecated=True, description="Ignored: the serving model's sourced efficiencies apply."
    )
    compute_utilisation: float | None = Field(
        None, ge=0.001, le=1, deprecated=True, description="Ignored: the serving model's sourced efficiencies apply."
    )


class InferenceCostResponse(Estimate):
    usd_per_million_output_tokens: float
    usd_per_million_input_tokens: float | None
    output_tokens_per_second: float
    decode_step_seconds: float
    decode_bound: str
    prefill_seconds: float
    time_per_output_token_seconds: float = Field(
        description="Decode step plus the batch's share of prefill (continuous batching)."
    )
    fits: bool
    memory_needed_bytes: int
    memory_available_bytes: int
    price: PriceQuote
