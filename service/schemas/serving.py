"""Request and response models of the serving plan (``POST /v1/plan/serving``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from service.core.dtypes import Dtype
from service.core.limits import MAX_INT64, MAX_SEQ_LEN
from service.core.serving import GPU_MEMORY_UTILIZATION, INT4_GROUP_SIZE, RUNTIME_RESERVE_BYTES
from service.schemas.base import Schema
from service.schemas.calculators import Estimate
from service.schemas.cost import GpuId, PriceChoice, PriceQuote
from service.schemas.model import ModelSpec


class ServingPlanRequest(PriceChoice):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": {"preset": "llama-3.1-70b"}, "gpu": ["h100-sxm", "a100-80gb-sxm"], "weights_dtype": "fp8",
                 "kv_dtype": "fp8", "prompt_tokens": 2000, "output_tokens": 500, "concurrent_users": 200},
                {"model": {"preset": "llama-3-8b"}, "gpu": "l40s", "prompt_tokens": 1000, "output_tokens": 200,
                 "tokens_per_second": 5000, "max_time_per_output_token_seconds": 0.05},
            ]
        }
    }  # fmt: skip

    model: ModelSpec
    gpu: GpuId | list[GpuId] = Field(description="A catalog GPU id, or a list of ids to compare.")
    weights_dtype: Dtype = Field(Dtype.BF16, description="int4: GPTQ/AWQ-style, with an fp16 scale and zero per group.")
    group_size: int = Field(INT4_GROUP_SIZE, ge=1, le=1_000_000, description="int4 quantisation group (inputs per scale).")
    kv_dtype: Dtype = Field(Dtype.BF16, description="KV-cache format; bf16 unless given (never the weights' format silently).")
    prompt_tokens: int = Field(1000, ge=0, le=MAX_SEQ_LEN)
    output_tokens: int = Field(200, ge=1, le=MAX_SEQ_LEN)
    concurrent_users: int | None = Field(None, ge=1, le=10**9, description="Sequences in flight at once.")
    tokens_per_second: float | None = Field(None, gt=0, le=1e12, description="Output tokens per second over the fleet.")
    max_time_to_first_token_seconds: float | None = Field(None, gt=0, le=86_400)
    max_time_per_output_token_seconds: float | None = Field(None, gt=0, le=3_600)
    tp: int | None = Field(None, ge=1, le=1024, description="Tensor-parallel GPUs per replica; default the smallest that fits.")
    gpu_memory_utilization: float = Field(
        GPU_MEMORY_UTILIZATION, ge=0.1, le=1, description="Share of each GPU's memory a replica may fill (vLLM's default)."
    )
    runtime_reserve_bytes: int = Field(
        RUNTIME_RESERVE_BYTES,
        ge=0,
        le=MAX_INT64,
        description="Per GPU, for the runtime: CUDA context, graphs, NCCL, activations.",
    )

    @model_validator(mode="after")
    def _targets(self) -> ServingPlanRequest:
        if self.concurrent_users is not None and self.tokens_per_second is not None:
            raise ValueError("give concurrent_users or tokens_per_second, not both")
        if isinstance(self.gpu, list) and not 1 <= len(self.gpu) <= 20:
            raise ValueError("gpu: give 1 to 20 GPU ids")
        return self


class ServingOption(Schema):
    gpu: str
    fits: bool
    reason: str | None
    tp: int | None = Field(description="GPUs per replica (tensor parallelism; divides the heads and KV heads).")
    replicas: int | None
    n_gpus: int | None = Field(description="tp * replicas.")
    max_batch_per_replica: int | None = Field(description="Sequences the KV cache holds at prompt + output tokens.")
    batch_per_replica: int | None
    usable_memory_bytes: int | None = Field(description="Per replica: tp * (memory * utilization - reserve).")
    weights_bytes: int | None
    kv_cache_bytes_per_token: int | None
    kv_cache_bytes_per_sequence: int | None
    time_to_first_token_seconds: float | None = Field(description="Prefill of one prompt and a decode step, at low load.")
    time_per_output_token_seconds: float | None = Field(description="Decode step plus the batch's share of prefill.")
    decode_bound: str | None = Field(description="memory or compute: what bounds a decode step at this batch.")
    output_tokens_per_second_per_user: float | None
    output_tokens_per_second_per_replica: float | None
    output_tokens_per_second: float | None = Field(description="All replicas.")
    usd_per_hour: float | None = Field(description="All replicas.")
    usd_per_million_output_tokens: float | None
    usd_per_million_input_tokens: float | None
    price: PriceQuote | None


class ServingPlanResponse(Estimate):
    options: list[ServingOption] = Field(description="One per GPU type, cheapest first; those that cannot serve the target last.")
    cheapest_gpu: str | None
    warnings: list[str]
