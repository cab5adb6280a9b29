"""Serving plans and serving cost: catalog GPUs → core serving model → one replica layout per GPU
type, priced; and the cost of one given replica (``POST /v1/cost/inference``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from service.core import serving as core
from service.core.architecture import Architecture
from service.core.compute import require_architecture
from service.core.dtypes import Dtype
from service.core.memory import Precision
from service.core.steptime import Hardware
from service.schemas import cost as cs
from service.schemas import serving as s
from service.schemas.cost import PriceQuote
from service.services.catalog_reader import CatalogReader, GpuView
from service.services.models import catalog_gpu, model_assumptions, resolve_model
from service.services.plan import cluster_for
from service.services.pricing import listed_price, resolve_price

FORMULAS = [
    "weights: linear layers in the weight format + scales (fp8 per tensor; int8 per output channel; int4 fp16 scale + "
    "4-bit zero per group: GPTQ, Frantar et al. 2023; AWQ, Lin et al. 2024) + 16-bit embeddings, head and norms",
    "usable memory = tp * (GPU memory * utilization - runtime reserve); max batch = (usable - weights) / KV per sequence "
    "(vLLM, Kwon et al. 2023 §4)",
    "KV per token = 2 * L * n_kv_heads * d_head * bytes(kv_dtype) (Pope et al. 2022 §3.1); multi-head latent attention "
    "caches kv_lora_rank + qk_rope_head_dim per layer, on every tensor rank (DeepSeek-V2 §2.1); a sliding-window layer holds "
    "at most its window (Mistral 7B §2)",
    "prefill = the prompt's matmuls on per-GPU shapes + causal attention + 2 all-reduces per layer (compute-bound)",
    "decode step = max((weights/tp + batch * KV read) / HBM bandwidth, FLOPs / matmul rate) + 2 all-reduces per layer "
    "(Pope et al. 2022 §2-3); the KV read is what the cache holds at the mean context (windows capped)",
    "time per output token = decode step + batch * prefill / output_tokens (continuous batching: Orca, Yu et al. 2022; "
    "Sarathi-Serve, Agrawal et al. 2024)",
    "$/M output = replica $/s * decode step / batch * 1e6; $/M input = replica $/s * prefill / prompt * 1e6",
]

PEAK_FOR_WEIGHTS = {Dtype.FP8: "fp8", Dtype.FP16: "fp16"}  # else bf16 (weight-only quantisation)


def serving_hardware(gpu: GpuView, fmt: Dtype) -> tuple[Hardware, str]:
    """The GPU as the serving model sees it: the catalog's cluster, at the peak the weight format
    computes at (fp8 tensor cores for fp8 weights; int8/int4 weights are dequantised into 16-bit
    matmuls by GPTQ/AWQ kernels)."""
    cluster = cluster_for(gpu, Precision.MIXED_BF16)
    key = PEAK_FOR_WEIGHTS.get(fmt, "bf16")
    peak = gpu.peak_tflops.get(key) or gpu.peak_tflops.get("bf16")
    if key != "bf16" and not gpu.peak_tflops.get(key):
        key = "bf16"
    return dataclasses.replace(cluster.hardware, peak_flops_per_s=float(peak) * 1e12), key


def weight_only_note(gpu: GpuView, fmt: Dtype, peak_key: str) -> str | None:
    """What a weight format the GPU cannot compute in becomes: FP8 weights on a GPU without FP8
    tensor cores (A100, V100, ...) are served weight-only, dequantised to 16 bits inside the matmul
    (vLLM's Marlin FP8 kernels), so they save memory and bandwidth but compute at the bf16 peak."""
    if fmt is Dtype.FP8 and peak_key != "fp8":
        return (f"{gpu.id} has no FP8 tensor cores: FP8 weights are served weight-only (dequantised to bf16 in the matmul, "
                "as vLLM's Marlin FP8 kernels do): half the weight memory and traffic of bf16, compute at the bf16 peak")  # fmt: skip
    return None


def _price(catalog: CatalogReader, gpu_id: str, req: s.ServingPlanRequest, many: bool) -> PriceQuote | None:
    return listed_price(catalog, gpu_id, req, many=many)


def _unfit(gpu: str, reason: str) -> s.ServingOption:
    empty = dict.fromkeys(s.ServingOption.model_fields, None)
    return s.ServingOption(**(empty | {"gpu": gpu, "fits": False, "reason": reason}))


def plan_serving(req: s.ServingPlanRequest, catalog: CatalogReader) -> s.ServingPlanResponse:
    model = resolve_model(req.model, catalog)
    arch = require_architecture(model, "a serving plan (the KV cache)")
    weights = core.weight_bytes(arch, req.weights_dtype, group_size=req.group_size)
    sequence = req.prompt_tokens + req.output_tokens
    warnings: list[str] = []
    if sequence > arch.max_seq_len:
        warnings.append(f"prompt_tokens + output_tokens = {sequence} exceeds the model's context of {arch.max_seq_len} tokens")
    if req.tp is not None:
        core.check_tensor_parallel(arch, req.tp, field="tp")
    gpu_ids = req.gpu if isinstance(req.gpu, list) else [req.gpu]
    many = len(gpu_ids) > 1
    options: list[s.ServingOption] = []
    assumptions: dict[str, Any] = model_assumptions(model, req.model, sequence, field="output_tokens") | {
        "weights_dtype": req.weights_dtype.value, "kv_dtype": req.kv_dtype.value, "gpu_memory_utilization": req.gpu_memory_utilization,
        "runtime_reserve_bytes": req.runtime_reserve_bytes, "group_size": req.group_size if req.weights_dtype is Dtype.INT4 else None,
        "mean_context_tokens": req.prompt_tokens + req.output_tokens / 2,
        "tp_rule": ("the degree (dividing heads and KV heads, inside a node), among those that fit and meet the latency bounds, "
                    "whose replicas serve concurrent_users at the least cost per output token (GPUs per token/s at the batch "
                    "the load gives each replica)" if req.concurrent_users else
                    "the degree (dividing heads and KV heads, inside a node) with the most output tokens/s per GPU among those "
                    "that fit and meet the latency bounds"),
        "target": ("concurrent_users" if req.concurrent_users else "tokens_per_second" if req.tokens_per_second
                   else "one replica at its largest batch"),
    }  # fmt: skip
    for gpu_id in gpu_ids:
        view = catalog_gpu(catalog, gpu_id)
        hw, peak_key = serving_hardware(view, req.weights_dtype)
        assumptions[f"{view.id}.peak_dtype"] = peak_key
        if note := weight_only_note(view, req.weights_dtype, peak_key):
            assumptions[f"{view.id}.weights"] = note
        options.append(_option(arch, hw, view, weights, req, _price(catalog, view.id, req, many)))
    options.sort(key=lambda o: (not o.fits, o.usd_per_million_output_tokens is None, o.usd_per_million_output_tokens or 0.0))
    priced = [o for o in options if o.fits and o.usd_per_million_output_tokens is not None]
    return s.ServingPlanResponse(
        options=options,
        cheapest_gpu=priced[0].gpu if priced else None,
        warnings=warnings,
        formulas=FORMULAS,
        assumptions=assumptions,
    )


def _option(
    arch: Architecture, hw: Hardware, view: GpuView, weights: core.Weights, req: s.ServingPlanRequest, price: PriceQuote | None
) -> s.ServingOption:
    common = dict(weights=weights, kv_dtype=req.kv_dtype, prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens,
                  utilization=req.gpu_memory_utilization, reserve_bytes=req.runtime_reserve_bytes)  # fmt: skip
    candidates = core.replica_candidates(
        arch,
        hw,
        tp=req.tp,
        max_time_to_first_token_seconds=req.max_time_to_first_token_seconds,
        max_time_per_output_token_seconds=req.max_time_per_output_token_seconds,
        **common,
    )
    if isinstance(candidates, str):
        return _unfit(view.id, candidates)
    if req.concurrent_users is not None:  # the cheapest fleet at the user's load, not at saturation
        chosen, replicas = core.cheapest_at_load(
            candidates, req.concurrent_users, lambda full, batch: core.replica(arch, hw, tp=full.tp, batch=batch, **common)
        )
        return _served(view, chosen, replicas, req, price)
    chosen = core.most_per_gpu(candidates)  # at saturation: core.choose_replica's rule
    if req.tokens_per_second is not None:
        replicas = math.ceil(req.tokens_per_second / chosen.output_tokens_per_second)
    else:
        replicas = 1
    return _served(view, chosen, replicas, req, price)


def _served(
    view: GpuView, chosen: core.Replica, replicas: int, req: s.ServingPlanRequest, price: PriceQuote | None
) -> s.ServingOption:
    """The option of ``replicas`` replicas like ``chosen``, priced."""
    cost = None if price is None else core.serving_cost(chosen, usd_per_gpu_hour=price.usd_per_gpu_hour, prompt_tokens=req.prompt_tokens,
                                                         output_tokens=req.output_tokens)  # fmt: skip
    return s.ServingOption(
        gpu=view.id, fits=True, reason=None, tp=chosen.tp, replicas=replicas, n_gpus=chosen.tp * replicas,
        max_batch_per_replica=chosen.max_batch, batch_per_replica=chosen.batch, usable_memory_bytes=chosen.usable_memory_bytes,
        weights_bytes=chosen.weights_bytes, kv_cache_bytes_per_token=chosen.kv_cache_bytes_per_token,
        kv_cache_bytes_per_sequence=chosen.kv_cache_bytes_per_sequence, time_to_first_token_seconds=chosen.time_to_first_token_seconds,
        time_per_output_token_seconds=chosen.time_per_output_token_seconds, decode_bound=chosen.decode_bound,
        output_tokens_per_second_per_user=chosen.output_tokens_per_second_per_user,
        output_tokens_per_second_per_replica=chosen.output_tokens_per_second, output_tokens_per_second=chosen.output_tokens_per_second * replicas,
        usd_per_hour=cost.usd_per_hour * replicas if cost else None,
        usd_per_million_output_tokens=cost.usd_per_million_output_tokens if cost else None,
        usd_per_million_input_tokens=cost.usd_per_million_input_tokens if cost else None, price=price,
    )  # fmt: skip


def inference_cost(req: cs.InferenceCostRequest, catalog: CatalogReader) -> cs.InferenceCostResponse:
    """A replica of ``n_gpus`` (tensor-parallel) GPUs at ``batch_size``, priced by the serving
    model that ``POST /v1/plan/serving`` uses (:mod:`service.core.serving`)."""
    model = resolve_model(req.model, catalog)
    arch = require_architecture(model, "serving cost (the KV cache)")
    model_notes = model_assumptions(model, req.model, req.prompt_tokens + req.output_tokens, field="output_tokens")
    core.check_tensor_parallel(arch, req.n_gpus)
    gpu = catalog_gpu(catalog, req.gpu)
    price = resolve_price(catalog, gpu.id, req)
    fmt = req.dtype
    hw, peak_dtype = serving_hardware(gpu, fmt)
    kv_dtype = req.kv_dtype or Dtype.BF16
    weights = core.weight_bytes(arch, fmt)
    r = core.replica(arch, hw, tp=req.n_gpus, weights=weights, kv_dtype=kv_dtype, prompt_tokens=req.prompt_tokens,
                        output_tokens=req.output_tokens, batch=req.batch_size)  # fmt: skip
    money = core.serving_cost(
        r, usd_per_gpu_hour=price.usd_per_gpu_hour, prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens
    )
    needed = r.weights_bytes + req.batch_size * r.kv_cache_bytes_per_sequence
    assumptions: dict[str, Any] = model_notes | {
        "kv_dtype": kv_dtype.value, "kv_dtype_source": "request" if req.kv_dtype else "default bf16 (not the weights' format)",
        "mean_context_tokens": req.prompt_tokens + req.output_tokens / 2, "peak_dtype": peak_dtype,
        "gpu_memory_utilization": core.GPU_MEMORY_UTILIZATION, "runtime_reserve_bytes": core.RUNTIME_RESERVE_BYTES,
        "price_as_of": price.as_of.isoformat() if price.as_of else None,
        "replica": f"{req.n_gpus} x {gpu.id}, weights sharded with tensor parallelism",
        "model": "the serving model of POST /v1/plan/serving",
    }  # fmt: skip
    if note := weight_only_note(gpu, fmt, peak_dtype):
        assumptions["weights"] = note
    if {"bandwidth_utilisation", "compute_utilisation"} & req.model_fields_set:  # read without the deprecation warning
        assumptions["utilisation_fields"] = "ignored: the serving model's sourced efficiencies apply (deprecated fields)"
    return cs.InferenceCostResponse(
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
        formulas=list(FORMULAS),
        assumptions=assumptions,
    )
