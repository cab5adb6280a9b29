"""Request and response models of the serving plan (``POST /v1/plan/serving``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from service.core.dtypes import Dtype
from service.core.engines import Engine
from service.core.errors import InvalidSpecError
from service.core.limits import MAX_INT64, MAX_SEQ_LEN
from service.core.serving import INT4_GROUP_SIZE
from service.core.speculative import DraftMethod
from service.schemas.base import Schema
from service.schemas.calculators import Estimate
from service.schemas.cost import GpuId, PriceChoice, PriceQuote
from service.schemas.model import ModelSpec


class SpeculativeDecoding(Schema):
    """Speculative decoding: a drafter proposes ``tokens`` per step, the model verifies them in one
    pass (Leviathan et al. 2023)."""

    method: DraftMethod = Field(
        description="draft (a separate small model, give draft_model), eagle (one decoder layer on the model's "
        "features, Li et al. 2024) or mtp (DeepSeek-V3's multi-token-prediction block)."
    )
    tokens: int = Field(ge=1, le=16, description="Tokens drafted per step (k).", examples=[3])
    acceptance_rate: float = Field(
        ge=0, le=1, description="Probability each drafted token is accepted (DeepSeek-V3's MTP: 0.85-0.9).", examples=[0.8]
    )
    draft_model: ModelSpec | None = Field(
        None,
        description="With method draft: the drafter, of the model's vocabulary (vocab_size, at most 128 apart: one tokenizer padded "
        "otherwise, as llama.cpp allows) and no more parameters a token than the model has in all (else a 422: never faster).",
    )

    @model_validator(mode="after")
    def _draft(self) -> SpeculativeDecoding:
        if (self.method is DraftMethod.DRAFT_MODEL) != (self.draft_model is not None):
            raise InvalidSpecError("draft_model", "give it with method draft, and only then")
        return self


class ServingPlanRequest(PriceChoice):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": {"preset": "llama-3.1-70b"}, "gpu": ["h100-sxm", "a100-80gb-sxm"], "weights_dtype": "fp8",
                 "kv_dtype": "fp8", "prompt_tokens": 2000, "output_tokens": 500, "concurrent_users": 200},
                {"model": {"preset": "llama-3-8b"}, "gpu": "l40s", "prompt_tokens": 1000, "output_tokens": 200,
                 "tokens_per_second": 5000, "max_time_per_output_token_seconds": 0.05},
                {"model": {"preset": "llama-2-70b"}, "gpu": ["h100-sxm", "h200-sxm"], "weights_dtype": "fp8", "kv_dtype": "fp8",
                 "engine": "trtllm", "prompt_tokens": 294, "output_tokens": 294, "requests_per_second": 60,
                 "max_time_to_first_token_seconds": 2, "max_time_per_output_token_seconds": 0.2},
                {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "concurrent_users": 16,
                 "prefix_cache_hit_rate": 0.5, "speculative": {"method": "eagle", "tokens": 3, "acceptance_rate": 0.8}},
                {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
                 "output_tokens": 500, "requests_per_second": 10, "disaggregated": True, "prefill_gpu": "h200-sxm"},
                {"model": {"preset": "llama-2-70b"}, "gpu": ["h100-sxm", "h200-sxm"], "weights_dtype": "fp8", "kv_dtype": "fp8",
                 "engine": "trtllm", "prompt_tokens": 294, "output_tokens": 294, "scenario": "server", "n_gpus": 8,
                 "max_time_to_first_token_seconds": 2, "max_time_per_output_token_seconds": 0.2},
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
    engine: Engine = Field(
        Engine.VLLM,
        description="Serving engine whose memory defaults, scheduler (token budget, max sequences) and per-step overhead apply; "
        "each value and its source is in `assumptions`.",
        examples=["vllm", "sglang", "trtllm"],
    )
    concurrent_users: int | None = Field(
        None,
        ge=1,
        le=10**9,
        description="Closed loop: sequences in flight at once (a new request as soon as one ends).",
        examples=[200],
    )
    requests_per_second: float | None = Field(
        None, gt=0, le=1e9, description="Open loop: Poisson arrivals per second over the fleet.", examples=[20.0]
    )
    tokens_per_second: float | None = Field(None, gt=0, le=1e12, description="Output tokens per second over the fleet.")
    scenario: Literal["offline", "server"] | None = Field(
        None, description="MLPerf-style throughput on n_gpus: offline, every replica full (the most tokens/s); server, the most "
        "Poisson arrivals the replicas take within the latency bounds (p99 TTFT, mean TPOT).", examples=["server"],
    )  # fmt: skip
    n_gpus: int | None = Field(None, ge=1, le=1_000_000, description="With scenario: the GPUs of each option.", examples=[8])
    max_time_to_first_token_seconds: float | None = Field(None, gt=0, le=86_400)
    max_time_per_output_token_seconds: float | None = Field(None, gt=0, le=3_600)
    tp: int | None = Field(None, ge=1, le=1024, description="Tensor-parallel GPUs per replica; default the smallest that fits.")
    prefix_cache_hit_rate: float = Field(
        0.0, ge=0, le=1, description="Share of prompt tokens found in the prefix cache (vLLM automatic prefix caching, SGLang "
        "RadixAttention; DeepSeek's production: 0.563); only the rest is prefilled.", examples=[0.5],
    )  # fmt: skip
    prompt_length_cv: float = Field(
        0.0, ge=0, le=10, description="Prompts' coefficient of variation in length about prompt_tokens (their mean): the "
        "causal attention core of a prefill grows as a prompt's length squared, so the mean prompt's core costs 1 + cv^2 "
        "times one mean-length prompt's; 0 (default): prompts of one length, as benchmarks send them; 1: exponential "
        "lengths, for a workload known only by its totals.", examples=[1.0],
    )  # fmt: skip
    prefix_read_bytes_per_s: int | None = Field(
        None, gt=0, le=10**14, description="With prefix_cache_hit_rate: a node's read rate for cached prefixes kept off the "
        "GPUs (DeepSeek's 3FS KVCache: 40 GiB/s a node over one 400 Gbps NIC), read before the new tokens run; default "
        "none: cached prefixes stay in GPU memory (vLLM automatic prefix caching, SGLang RadixAttention).",
        examples=[42949672960],
    )  # fmt: skip
    moe_load_imbalance: float | None = Field(
        None, ge=1, le=64, description="Expert-parallel units of a mixture: the busiest GPU's routed tokens over the mean, "
        "which its routed FLOPs and all-to-all wait for; default 1.18 (SGLang's DeepSeek-V3 EP32 prefill at its default "
        "expert distribution against perfect balance, LMSYS 2025-05-05).", examples=[1.18],
    )  # fmt: skip
    micro_batch_overlap: bool = Field(
        False, description="Expert-parallel units run two micro-batches, one's all-to-all under the other's compute "
        "(DeepSeek-V3 §3.4, SGLang two-batch overlap); default off: the perfect overlap modelled gains about twice what "
        "SGLang measured.",
    )  # fmt: skip
    speculative: SpeculativeDecoding | None = Field(None, description="Speculative decoding; default none.")
    disaggregated: bool = Field(
        False, description="Prefill and decode on separate pools sized to each other (DistServe, Splitwise); each option "
        "then has `disaggregated` parts.",
    )  # fmt: skip
    prefill_gpu: GpuId | None = Field(
        None, description="With disaggregated: the prefill pool's GPU type; default each option's gpu."
    )
    decode_gpu: GpuId | None = Field(
        None, description="With disaggregated: the decode pool's GPU type; default each option's gpu."
    )
    gpu_memory_utilization: float | None = Field(
        None, ge=0.1, le=1, description="Share of each GPU's memory a replica may fill; default the engine's (vLLM 0.9).",
        examples=[0.9],
    )  # fmt: skip
    runtime_reserve_bytes: int | None = Field(
        None,
        ge=0,
        le=MAX_INT64,
        description="Per GPU, for the runtime: CUDA context, graphs, NCCL, activations; default the engine's.",
        examples=[2147483648],
    )

    @model_validator(mode="after")
    def _targets(self) -> ServingPlanRequest:
        given = [
            name
            for name in ("concurrent_users", "requests_per_second", "tokens_per_second", "scenario")
            if getattr(self, name) is not None
        ]
        if (self.scenario is None) != (self.n_gpus is None):
            raise ValueError("scenario and n_gpus go together: the throughput of a scenario on that many GPUs")
        if len(given) > 1:
            raise ValueError(
                f"give one load or target of concurrent_users, requests_per_second, tokens_per_second, scenario, "
                f"not {' and '.join(given)}"
            )
        if isinstance(self.gpu, list) and not 1 <= len(self.gpu) <= 20:
            raise InvalidSpecError("gpu", "give 1 to 20 GPU ids")
        if not self.disaggregated and (self.prefill_gpu or self.decode_gpu):
            field = "prefill_gpu" if self.prefill_gpu else "decode_gpu"
            raise InvalidSpecError(
                field, "prefill_gpu and decode_gpu name the pools of a disaggregated plan: give disaggregated: true"
            )
        return self


class ServingAlternative(Schema):
    """Another tensor-parallel degree (or expert-parallel unit) of the same GPU type at the same load."""

    tp: int
    ep: int | None = Field(description="Expert-parallel GPUs per replica (a mixture's unit); null for a tensor-parallel replica.")
    dp_attention: bool = Field(description="Attention data-parallel over the unit's GPUs (with ep).")
    replicas: int
    n_gpus: int
    batch_per_replica: int
    time_to_first_token_seconds: float
    p99_time_to_first_token_seconds: float
    time_per_output_token_seconds: float
    usd_per_million_output_tokens: float | None


class PoolPart(Schema):
    """One pool of a disaggregated option."""

    gpu: str
    tp: int
    ep: int | None = Field(description="Expert-parallel GPUs per replica; null for a tensor-parallel replica.")
    dp_attention: bool = Field(description="Attention data-parallel over the unit's GPUs (with ep).")
    replicas: int
    n_gpus: int
    utilization: float = Field(
        description="Prefill: each replica's busy share (M/D/1 load). Decode: batch over the largest batch."
    )
    seconds_per_request: float = Field(description="Prefill: one prompt. Decode: its output tokens after the first.")
    usd_per_hour: float | None


class DisaggregatedParts(Schema):
    prefill: PoolPart
    decode: PoolPart
    kv_transfer_seconds: float = Field(description="One prompt's KV cache from its prefill replica to a decode replica.")
    prefill_wait_seconds: float = Field(description="Mean wait for a prefill replica (M/D/1).")


class ServingOption(Schema):
    gpu: str
    fits: bool
    reason: str | None = Field(
        description="Why the GPU type cannot serve; where it can, what limits the batch: the memory each sequence holds "
        "(the attention layers' KV cache, growing with the context, and the recurrent layers' state, constant in it) "
        "against what the weights leave, and what keeps the batch below that."
    )
    tp: int | None = Field(description="GPUs per replica (tensor parallelism; divides the heads and KV heads).")
    ep: int | None = Field(
        description="For a mixture of experts served with expert parallelism: GPUs per replica (whole nodes), the routed "
        "experts sharded over them; tp is then 1. Null for a tensor-parallel replica.",
    )
    dp_attention: bool | None = Field(
        description="With ep: attention (and the dense and shared layers) replicated on every GPU of the unit, each GPU "
        "attending over its own sequences' KV cache (DeepSeek's and SGLang's DP attention). False otherwise."
    )
    replicas: int | None
    n_gpus: int | None = Field(description="GPUs per replica (tp, or ep) * replicas.")
    max_batch_per_replica: int | None = Field(description="Sequences the KV cache holds at prompt + output tokens.")
    batch_per_replica: int | None
    usable_memory_bytes: int | None = Field(description="Per replica: its GPUs * (memory * utilization - reserve).")
    weights_bytes: int | None
    kv_cache_bytes_per_token: int | None
    kv_cache_bytes_per_sequence: int | None = Field(
        description="Per sequence at prompt + output tokens: the attention layers' KV cache plus the recurrent layers' state."
    )
    state_cache_bytes_per_sequence: int | None = Field(
        None, description="Of kv_cache_bytes_per_sequence, the recurrent layers' fixed state (Mamba, RWKV, Gated DeltaNet, "
        "short convolutions), the same at any context; null for a model without recurrent layers.", examples=[50331648],
    )  # fmt: skip
    time_to_first_token_seconds: float | None = Field(
        description="Mean, at the load: the rest of the step in progress, the wait for a prefill slot (M/D/1), the steps the "
        "prompt's chunks ride in and its prefill. With one user, one prefill and a decode step."
    )
    p99_time_to_first_token_seconds: float | None = Field(
        None, description="99th percentile of the time to first token at the load (the M/D/1 wait's exponential tail).",
        examples=[0.45],
    )  # fmt: skip
    time_per_output_token_seconds: float | None = Field(
        description="(latency - time to first token) / (output_tokens - 1) at the load: the decode step with the engine's "
        "per-step overhead, stretched by the prompts' chunks that share the steps."
    )
    latency_seconds: float | None = Field(None, description="Mean, from arrival to the last token, at the load.", examples=[30.5])
    requests_per_second_per_replica: float | None = Field(
        None, description="Requests one replica completes per second at the load.", examples=[1.6]
    )
    decode_bound: str | None = Field(description="memory or compute: what bounds a decode step at this batch.")
    speculative_tokens_per_step: float | None = Field(
        None, description="With speculative decoding: tokens a verification step yields on average, (1 - a^(k+1)) / (1 - a)."
    )
    output_tokens_per_second_per_user: float | None
    output_tokens_per_second_per_replica: float | None
    output_tokens_per_second: float | None = Field(description="All replicas.")
    usd_per_hour: float | None = Field(description="All replicas.")
    usd_per_million_output_tokens: float | None
    usd_per_million_input_tokens: float | None
    usd_per_million_cached_input_tokens: float | None = Field(
        None,
        description="With prefix_cache_hit_rate: per prompt token found in the cache (the new tokens' attention over it); "
        "usd_per_million_input_tokens is then per token not found.",
    )
    price: PriceQuote | None
    alternatives: list[ServingAlternative] = Field(
        default_factory=list, description="The other tensor-parallel degrees that can serve, at the same load and bounds."
    )
    disaggregated: DisaggregatedParts | None = Field(
        None, description="With disaggregated: the prefill and decode pools; tp, replicas and batch above are the decode pool's, "
        "n_gpus both pools'.",
    )  # fmt: skip


class ServingPlanResponse(Estimate):
    options: list[ServingOption] = Field(description="One per GPU type, cheapest first; those that cannot serve the target last.")
    cheapest_gpu: str | None
    warnings: list[str]
