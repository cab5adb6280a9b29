"""Serving plans and serving cost: catalog GPUs → core serving model → one replica layout per GPU
type, priced; and the cost of one given replica (``POST /v1/cost/inference``)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

from service.core import expert_serving as ep_core
from service.core import serving as core
from service.core import serving_choice as choice
from service.core import serving_load as load
from service.core.architecture import Architecture
from service.core.compute import require_architecture
from service.core.dtypes import Dtype
from service.core.engines import Engine
from service.core.memory import Precision
from service.core.serving_reason import batch_limit_reason
from service.core.speculative import Speculation, expected_tokens, oversized_draft, speculation
from service.core.steptime import Hardware
from service.errors import Unprocessable
from service.schemas import cost as cs
from service.schemas import serving as s
from service.schemas.cost import PriceQuote
from service.services import serving_notes as notes
from service.services import serving_pools as pools
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
    "prefill = the prompt's matmuls on per-GPU shapes + causal attention (at the FP8 peak over an FP8 KV cache, as "
    "FlashAttention-3 and TensorRT-LLM attend; else the 16-bit peak) + 2 all-reduces per layer (compute-bound); a mixture's "
    "routed experts one GEMM per touched expert, E * (1 - (1 - k/E)^prompt_tokens) a layer with prompt_tokens * k / touched "
    "rows each, on its own roofline (its weights read) at the grouped-GEMM rate for its reduction depth",
    "decode step = max((weights/tp + batch * KV read) / HBM bandwidth, FLOPs / matmul rate) + 2 all-reduces per layer "
    "(Pope et al. 2022 §2-3); the KV read is what the cache holds at the mean context (windows capped); of a mixture's "
    "routed experts the step reads those its tokens pick, E * (1 - (1 - k/E)^tokens) a layer",
    "time per output token = decode step + batch * prefill / output_tokens (continuous batching: Orca, Yu et al. 2022; "
    "Sarathi-Serve, Agrawal et al. 2024)",
    "$/M output = replica $/s * decode step / batch * 1e6; $/M input = replica $/s * prefill / prompt * 1e6; under "
    "requests_per_second the fleet's $/s, idle time included, less the input tokens' share, over the output tokens served",
]

PEAK_FOR_WEIGHTS = {Dtype.FP8: "fp8", Dtype.FP16: "fp16"}  # else bf16 (weight-only quantisation)


_HARDWARE: dict[tuple[str, Dtype], tuple[GpuView, tuple[Hardware, str]]] = {}  # per catalog view (a snapshot's)


def serving_hardware(gpu: GpuView, fmt: Dtype) -> tuple[Hardware, str]:
    """The GPU as the serving model sees it: the catalog's cluster, at the peak the weight format
    computes at (fp8 tensor cores for fp8 weights; int8/int4 weights are dequantised into 16-bit
    matmuls by GPTQ/AWQ kernels). Kept while the snapshot hands out the same view."""
    kept = _HARDWARE.get((gpu.id, fmt))
    if kept is not None and kept[0] is gpu:
        return kept[1]
    found = _serving_hardware(gpu, fmt)
    _HARDWARE[(gpu.id, fmt)] = (gpu, found)
    return found


def _serving_hardware(gpu: GpuView, fmt: Dtype) -> tuple[Hardware, str]:
    # a GPU without bf16 tensor cores (Volta, Turing) runs its 16-bit matmuls in fp16
    sixteen = "fp16" if not gpu.peak_tflops.get("bf16") and gpu.peak_tflops.get("fp16") else "bf16"
    cluster = cluster_for(gpu, Precision.MIXED_FP16 if sixteen == "fp16" else Precision.MIXED_BF16)
    key = PEAK_FOR_WEIGHTS.get(fmt, sixteen)
    peak = gpu.peak_tflops.get(key) or gpu.peak_tflops.get(sixteen)
    if key != sixteen and not gpu.peak_tflops.get(key):
        key = sixteen
    bf16 = gpu.peak_tflops.get("bf16")
    return dataclasses.replace(cluster.hardware, peak_flops_per_s=float(peak) * 1e12,
                               bf16_peak_flops_per_s=float(bf16) * 1e12 if bf16 else None), key  # fmt: skip


def unservable_weights(gpu: GpuView, fmt: Dtype) -> str | None:
    """Why ``gpu`` has no kernel for ``fmt`` weights, or None: FP8 weights on a GPU older than
    Ampere (no bf16 tensor cores either: V100, T4). Weight-only FP8 is vLLM's FP8 Marlin kernel,
    which needs compute capability 8.0 or newer (vLLM docs, "Supported Hardware" of the
    quantization kernels: Marlin on Ampere and later only)."""
    if fmt is Dtype.FP8 and not gpu.peak_tflops.get("fp8") and not gpu.peak_tflops.get("bf16"):
        return (f"{gpu.id} predates Ampere: no FP8 tensor cores, and vLLM's weight-only FP8 (Marlin) kernels need compute "
                "capability 8.0+; serve 16-bit, int8 or int4 (GPTQ/AWQ) weights on it")  # fmt: skip
    return None


def weight_only_note(gpu: GpuView, fmt: Dtype, peak_key: str) -> str | None:
    """What a weight format the GPU cannot compute in becomes: FP8 weights on a GPU without FP8
    tensor cores (A100, A10G, ...) are served weight-only, dequantised to 16 bits inside the matmul
    (vLLM's Marlin FP8 kernels), so they save memory and bandwidth but compute at the 16-bit peak.
    On a GPU without bf16 tensor cores (V100, T4) the 16-bit matmuls are fp16 ones, at the fp16 peak."""
    if fmt is Dtype.FP8 and peak_key != "fp8":
        return (f"{gpu.id} has no FP8 tensor cores: FP8 weights are served weight-only (dequantised to {peak_key} in the matmul, "
                f"as vLLM's Marlin FP8 kernels do): half the weight memory and traffic of bf16, compute at the {peak_key} peak")  # fmt: skip
    if peak_key == "fp16" and fmt is not Dtype.FP16:
        how = ("the checkpoint cast to fp16" if fmt is Dtype.BF16 else f"{fmt.value} weights dequantised to fp16 in the matmul, "
               "as GPTQ/AWQ kernels do")  # fmt: skip
        return f"{gpu.id} has no bf16 tensor cores: its 16-bit matmuls run in fp16, at the fp16 peak ({how})"
    return None


def _price(catalog: CatalogReader, gpu_id: str, req: s.ServingPlanRequest, many: bool) -> PriceQuote | None:
    return listed_price(catalog, gpu_id, req, many=many)


def _unfit(gpu: str, reason: str) -> s.ServingOption:
    empty = dict.fromkeys(s.ServingOption.model_fields, None)
    return s.ServingOption(**(empty | {"gpu": gpu, "fits": False, "reason": reason, "alternatives": []}))


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
    spec = _speculation(arch, req, catalog)
    gpu_ids = req.gpu if isinstance(req.gpu, list) else [req.gpu]
    many = len(gpu_ids) > 1
    options: list[s.ServingOption] = []
    assumptions: dict[str, Any] = model_assumptions(model, req.model, sequence, field="output_tokens") | {
        "weights_dtype": req.weights_dtype.value, "kv_dtype": req.kv_dtype.value, "group_size": req.group_size if req.weights_dtype is Dtype.INT4 else None,
        "mean_context_tokens": req.prompt_tokens + req.output_tokens / 2,
        "tp_rule": ("the degree (dividing heads and KV heads, inside a node), among those that fit and meet the latency bounds, "
                    "whose replicas serve the load (concurrent_users or requests_per_second) at the least cost per output "
                    "token (GPUs per token/s at the batch the load gives each replica)"
                    if req.concurrent_users or req.requests_per_second else
                    "the degree (dividing heads and KV heads, inside a node) with the most output tokens/s per GPU among those "
                    "that fit and meet the latency bounds"),
        "target": ("concurrent_users" if req.concurrent_users else "requests_per_second" if req.requests_per_second
                   else "tokens_per_second" if req.tokens_per_second else f"scenario {req.scenario} on {req.n_gpus} GPUs"
                   if req.scenario else "one replica at its largest batch"),
    } | notes.engine_assumptions(req, arch) | notes.feature_assumptions(req, spec) | notes.expert_parallel_note(arch, req, spec)  # fmt: skip
    for field in ("prefill_gpu", "decode_gpu"):  # a pool's unknown GPU is a 422 on its own field
        if (named := getattr(req, field)) is not None:
            catalog_gpu(catalog, named, field=field)
    pool_of = {}  # a GPU type as a pool of a disaggregated plan

    def pool(gpu_id: str) -> pools.Pool:
        if gpu_id not in pool_of:
            view = catalog_gpu(catalog, gpu_id)
            hw, _ = serving_hardware(view, req.weights_dtype)
            found, _ = _candidates(arch, hw, weights, req, spec, bounded=False)
            pool_of[gpu_id] = pools.Pool(view.id, hw, _price(catalog, view.id, req, True), found)
        return pool_of[gpu_id]

    for gpu_id in gpu_ids:
        view = catalog_gpu(catalog, gpu_id)
        hw, peak_key = serving_hardware(view, req.weights_dtype)
        assumptions[f"{view.id}.peak_dtype"] = peak_key
        if why := unservable_weights(view, req.weights_dtype):
            options.append(_unfit(view.id, why))
            continue
        if note := weight_only_note(view, req.weights_dtype, peak_key):
            assumptions[f"{view.id}.weights"] = note
        if req.disaggregated:
            decode = req.decode_gpu or view.id
            pooled = [catalog_gpu(catalog, g) for g in (req.prefill_gpu or decode, decode)]
            if why := next((w for g in pooled if (w := unservable_weights(g, req.weights_dtype))), None):
                options.append(_unfit(decode, why))  # a pool on a GPU with no kernel for the weights
                continue
            got = pools.disaggregated_option(arch, pool(req.prefill_gpu or decode), pool(decode), req)
            options.append(_unfit(decode, got) if isinstance(got, str) else got)
            assumptions["disaggregated"] = pools.transfer_note()
            continue
        options.append(_option(arch, hw, view, weights, req, _price(catalog, view.id, req, many), spec))
    options.sort(key=lambda o: (not o.fits, o.usd_per_million_output_tokens is None, o.usd_per_million_output_tokens or 0.0))
    priced = [o for o in options if o.fits and o.usd_per_million_output_tokens is not None]
    return s.ServingPlanResponse(
        options=options,
        cheapest_gpu=priced[0].gpu if priced else None,
        warnings=warnings,
        formulas=FORMULAS,
        assumptions=assumptions,
    )


def _candidates(
    arch: Architecture, hw: Hardware, weights: core.Weights, req: s.ServingPlanRequest, spec: Speculation | None,
    bounded: bool = True,
) -> tuple[tuple[tuple[core.Replica, load.EngineSetup], ...], str]:  # fmt: skip
    """The replicas that can serve, one per tensor-parallel degree, each with its engine's
    defaults at that degree (SGLang's fraction and TensorRT-LLM's activation buffers depend on it),
    and why the others cannot; the latency bounds applied unless not ``bounded`` (the pools of a
    disaggregated plan meet them their own way). The same for every load: kept
    (:func:`_replicas_by_degree`)."""
    return _replicas_by_degree(
        arch, hw, weights, req.kv_dtype, req.prompt_tokens, req.output_tokens, req.tp,
        req.max_time_to_first_token_seconds if bounded else None, req.max_time_per_output_token_seconds if bounded else None,
        req.engine, req.gpu_memory_utilization, req.runtime_reserve_bytes, spec, notes.prompt_mix(req), notes.expert_options(req),
    )  # fmt: skip


# Embedding rows two sizes of one tokenizer may differ by (padding to 128 or 256 rows): llama.cpp's
# SPEC_VOCAB_MAX_SIZE_DIFFERENCE (common/speculative.cpp), which lets Qwen2.5-0.5B draft for Qwen2.5-72B
DRAFT_VOCAB_PADDING = 128


def _speculation(arch: Architecture, req: s.ServingPlanRequest, catalog: CatalogReader) -> Speculation | None:
    """The request's speculative decoding, with its drafter's architecture; 422 naming
    ``speculative.draft_model`` when the draft model's vocabulary is not the target's: the drafter
    proposes token ids the target verifies (Leviathan et al. 2023 §2.3, both distributions over one
    vocabulary). Embedding sizes up to :data:`DRAFT_VOCAB_PADDING` apart are one tokenizer padded
    otherwise (Qwen2.5: 151,936 to 3B, 152,064 from 7B, over 151,665 tokens), as llama.cpp allows
    (``common/speculative.cpp``, ``SPEC_VOCAB_MAX_SIZE_DIFFERENCE``); a larger gap is another
    tokenizer. Also a 422 when the drafter is larger than the target, which is then never faster
    (:func:`service.core.speculative.oversized_draft`)."""
    spec = req.speculative
    if spec is None:
        return None
    draft = None
    if spec.draft_model is not None:
        model = resolve_model(spec.draft_model, catalog, field="speculative.draft_model")
        draft = require_architecture(model, "a draft model's decode steps")
        if abs(draft.vocab_size - arch.vocab_size) > DRAFT_VOCAB_PADDING:
            raise Unprocessable.for_field("speculative.draft_model", f"its vocabulary ({draft.vocab_size} tokens) is not the "
                                          f"target's ({arch.vocab_size}, more than {DRAFT_VOCAB_PADDING} apart): a drafter "
                                          "proposes the target's token ids")  # fmt: skip
        if problem := oversized_draft(draft, arch):
            raise Unprocessable.for_field("speculative.draft_model", problem)
    return speculation(spec.method, target=arch, tokens=spec.tokens, acceptance_rate=spec.acceptance_rate, draft_model=draft)


@functools.lru_cache(maxsize=1024)  # pure: a serving plan asks it once per GPU type, whatever the load
def _replicas_by_degree(
    arch: Architecture, hw: Hardware, weights: core.Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    tp: int | None, max_ttft: float | None, max_tpot: float | None, engine: Engine, utilization: float | None,
    reserve_bytes: int | None, spec: Speculation | None, prompts: notes.PromptMix, expert: tuple[float, bool] = (1.0, False),
) -> tuple[tuple[tuple[core.Replica, load.EngineSetup], ...], str]:  # fmt: skip
    found: list[tuple[core.Replica, load.EngineSetup]] = []
    why = "no tensor-parallel degree inside a node divides the heads"
    for degree in [tp] if tp is not None else core.valid_tensor_parallel(arch, hw.gpus_per_node):
        setup = load.engine_setup(engine, arch, tp=degree, gpu_memory_bytes=hw.memory_bytes, utilization=utilization,
                                  reserve_bytes=reserve_bytes, speculation=spec, **notes.mix_arguments(prompts))  # fmt: skip
        got = choice.replica_candidates(
            arch, hw, weights=weights, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens, output_tokens=output_tokens, tp=degree,
            max_time_to_first_token_seconds=max_ttft, max_time_per_output_token_seconds=max_tpot, utilization=setup.utilization,
            reserve_bytes=setup.reserve_bytes, limits=setup.limits,
        )  # fmt: skip
        if isinstance(got, str):
            why = got
        else:
            found += [(r, setup) for r in got]
    if tp is None and spec is None:
        units = _expert_parallel_units(arch, hw, weights, kv_dtype, prompt_tokens, output_tokens, max_ttft, max_tpot, engine,
                                       utilization, reserve_bytes, prompts, expert)  # fmt: skip
        found += units
    elif tp is None and not found and ep_core.expert_parallel_degrees(arch, hw.gpus_per_node):  # say what was not tried
        why += "; expert-parallel units are not considered with speculative decoding (assumptions: expert_parallel)"
    return tuple(found), why


def _expert_parallel_units(
    arch: Architecture, hw: Hardware, weights: core.Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    max_ttft: float | None, max_tpot: float | None, engine: Engine, utilization: float | None, reserve_bytes: int | None,
    prompts: notes.PromptMix, expert: tuple[float, bool],
) -> list[tuple[core.Replica, load.EngineSetup]]:  # fmt: skip
    """A mixture's expert-parallel units (:mod:`service.core.expert_serving`) that hold a
    sequence on every GPU and meet the latency bounds, each with its engine's defaults at one GPU of
    attention, at ``expert``'s load imbalance and micro-batch overlap."""
    found = []
    for ep in ep_core.expert_parallel_degrees(arch, hw.gpus_per_node):
        setup = load.engine_setup(engine, arch, tp=1, gpu_memory_bytes=hw.memory_bytes, utilization=utilization,
                                  reserve_bytes=reserve_bytes, **notes.mix_arguments(prompts))  # fmt: skip
        r = ep_core.ep_replica(arch, hw, ep=ep, weights=weights, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens,
                               output_tokens=output_tokens, max_time_per_output_token_seconds=max_tpot,
                               utilization=setup.utilization, reserve_bytes=setup.reserve_bytes, limits=setup.limits,
                               imbalance=expert[0], overlap=expert[1])  # fmt: skip
        if r.max_batch < ep or (max_ttft is not None and r.time_to_first_token_seconds > max_ttft):
            continue
        if max_tpot is not None and r.time_per_output_token_seconds > max_tpot:
            continue
        found.append((r, setup))
    return found


def _option(
    arch: Architecture,
    hw: Hardware,
    view: GpuView,
    weights: core.Weights,
    req: s.ServingPlanRequest,
    price: PriceQuote | None,
    spec: Speculation | None = None,
) -> s.ServingOption:
    found, why = _candidates(arch, hw, weights, req, spec)
    if not found:
        return _unfit(view.id, why)
    setups = {_layout(r): setup for r, setup in found}
    candidates = [r for r, _ in found]

    reruns: dict[tuple[tuple[int, int | None], int], core.Replica] = {}  # the chosen layout and each alternative ask again

    def rerun(full: core.Replica, batch: int) -> core.Replica:
        key = (_layout(full), batch)
        if key not in reruns:
            reruns[key] = _rerun(full, batch)
        return reruns[key]

    def _rerun(full: core.Replica, batch: int) -> core.Replica:
        setup = setups[_layout(full)]
        if full.ep is not None:
            return ep_core.ep_replica(arch, hw, ep=full.ep, batch=batch, weights=weights, kv_dtype=req.kv_dtype,
                                      prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens, utilization=setup.utilization,
                                      reserve_bytes=setup.reserve_bytes, limits=setup.limits, imbalance=full.expert_load_imbalance,
                                      overlap=full.micro_batch_overlap)  # fmt: skip
        return core.replica(arch, hw, tp=full.tp, batch=batch, weights=weights, kv_dtype=req.kv_dtype, prompt_tokens=req.prompt_tokens,
                            output_tokens=req.output_tokens, utilization=setup.utilization, reserve_bytes=setup.reserve_bytes,
                            limits=setup.limits)  # fmt: skip

    def work(full: core.Replica) -> load.Workload:
        return load.workload(arch, hw, full, setup=setups[_layout(full)], prompt_tokens=req.prompt_tokens,
                             output_tokens=req.output_tokens)  # fmt: skip

    if req.requests_per_second is not None:
        return _open_loop(view, candidates, req, price, rerun, work)
    if req.scenario is not None:
        return _scenario(view, candidates, req, price, rerun, work)

    def fleet(full: core.Replica) -> tuple[core.Replica, int]:
        """``full``'s degree at the request's load: the replica at its batch, and how many."""
        if req.concurrent_users is not None:
            replicas, batch = choice.at_load(full, req.concurrent_users)
            return rerun(full, batch), replicas
        if req.tokens_per_second is not None:  # the replicas whose requests served at a full batch give the tokens
            per_replica = load.closed_loop(work(full), full.batch).output_tokens_per_second
            return full, math.ceil(req.tokens_per_second / per_replica * (1 - 1e-12))
        return full, 1

    if req.concurrent_users is not None:  # the cheapest fleet at the user's load, not at saturation
        chosen, replicas = choice.cheapest_at_load(candidates, req.concurrent_users, rerun)
    else:
        chosen = choice.most_per_gpu(candidates)  # at saturation: choice.choose_replica's rule
        chosen, replicas = fleet(chosen)
    option = _served(view, chosen, replicas, req, price, load.closed_loop(work(_full(candidates, chosen)), chosen.batch))
    others = []
    for full in candidates:
        if _layout(full) != _layout(chosen):
            loaded, count = fleet(full)
            others.append(_alternative(loaded, count, req, price, load.closed_loop(work(full), loaded.batch)))
    return option.model_copy(update={"alternatives": others})


def _full(candidates: list[core.Replica], chosen: core.Replica) -> core.Replica:
    return next(r for r in candidates if _layout(r) == _layout(chosen))


def _layout(r: core.Replica) -> tuple[int, int | None]:
    """A replica's layout: its tensor-parallel degree and its expert-parallel unit (None: none)."""
    return r.tp, r.ep


def _cost(r: core.Replica, replicas: int, req: s.ServingPlanRequest, price: PriceQuote | None) -> core.ServingCost | None:
    """Dollars per token: the replica's busy time at its batch (:func:`service.core.serving.serving_cost`),
    or under ``requests_per_second`` the fleet's hours over the tokens it serves, idle time included
    (:func:`service.core.serving.fleet_serving_cost`)."""
    if price is None:
        return None
    given = {"usd_per_gpu_hour": price.usd_per_gpu_hour, "prompt_tokens": req.prompt_tokens, "output_tokens": req.output_tokens}
    if req.requests_per_second is None:
        return core.serving_cost(r, **given)
    return core.fleet_serving_cost(r, replicas=replicas, requests_per_second=req.requests_per_second, **given)


def _alternative(
    loaded: core.Replica, replicas: int, req: s.ServingPlanRequest, price: PriceQuote | None, point: load.LoadPoint
) -> s.ServingAlternative:
    """Another tensor-parallel degree at the same load: its fleet, latencies and price."""
    cost = _cost(loaded, replicas, req, price)
    return s.ServingAlternative(
        tp=loaded.tp, ep=loaded.ep, dp_attention=loaded.dp_attention, replicas=replicas, n_gpus=loaded.n_gpus * replicas,
        batch_per_replica=loaded.batch,
        time_to_first_token_seconds=point.time_to_first_token_seconds,
        p99_time_to_first_token_seconds=point.p99_time_to_first_token_seconds,
        time_per_output_token_seconds=point.time_per_output_token_seconds,
        usd_per_million_output_tokens=cost.usd_per_million_output_tokens if cost else None,
    )  # fmt: skip


def _open_loop(
    view: GpuView, candidates: list[core.Replica], req: s.ServingPlanRequest, price: PriceQuote | None,
    rerun: Callable[[core.Replica, int], core.Replica], work: Callable[[core.Replica], load.Workload],
) -> s.ServingOption:  # fmt: skip
    """Poisson arrivals at ``requests_per_second``: per degree, the most a replica serves stably
    within the bounds (p99 TTFT, mean TPOT), the replicas that takes, and the degree with the
    fewest GPU-seconds per output token."""
    assert req.requests_per_second is not None
    best: tuple[float, int, core.Replica, int, load.LoadPoint] | None = None
    why = "no replica serves any load within the bounds"
    served: list[tuple[core.Replica, int, load.LoadPoint]] = []
    for full in candidates:
        w = work(full)
        top = load.max_rate(w, max_p99_time_to_first_token_seconds=req.max_time_to_first_token_seconds,
                            max_time_per_output_token_seconds=req.max_time_per_output_token_seconds)  # fmt: skip
        if top is None:
            why = f"at {_name(full)} even a trickle of requests misses the latency bounds"
            continue
        replicas = math.ceil(req.requests_per_second / top.requests_per_second * (1 - 1e-9))
        point = load.open_loop(w, req.requests_per_second / replicas)
        if not point.stable:
            point = top
        served.append((full, replicas, point))
        gpu_seconds_per_token = full.n_gpus * replicas / (req.requests_per_second * req.output_tokens)
        if best is None or (gpu_seconds_per_token, full.n_gpus) < (best[0], best[1]):
            best = (gpu_seconds_per_token, full.n_gpus, full, replicas, point)
    if best is None:
        return _unfit(view.id, why)
    _, _, full, replicas, point = best
    others = [_alternative(_at_point(rerun, f, p), n, req, price, p) for f, n, p in served if _layout(f) != _layout(full)]
    chosen = _at_point(rerun, full, point)
    return _served(view, chosen, replicas, req, price, point).model_copy(update={"alternatives": others})


def _at_point(rerun: Callable[[core.Replica, int], core.Replica], full: core.Replica, point: load.LoadPoint) -> core.Replica:
    """``full``'s degree rerun at the batch a load point gives it (at least one, at most its largest)."""
    return rerun(full, max(1, min(full.batch, math.ceil(point.batch))))


def _scenario(
    view: GpuView, candidates: list[core.Replica], req: s.ServingPlanRequest, price: PriceQuote | None,
    rerun: Callable[[core.Replica, int], core.Replica], work: Callable[[core.Replica], load.Workload],
) -> s.ServingOption:  # fmt: skip
    """MLPerf Inference's scenarios on ``n_gpus``: ``offline``, every replica at its largest batch;
    ``server``, the most Poisson arrivals a replica takes within the bounds
    (:func:`service.core.serving_load.max_rate`); the degree whose replicas give the most output
    tokens per second (the smaller on a tie)."""
    assert req.n_gpus is not None
    best: tuple[float, int, core.Replica, int, load.LoadPoint] | None = None
    why = f"no tensor-parallel degree that holds the model fits in {req.n_gpus} GPUs"
    for full in candidates:
        replicas = req.n_gpus // full.n_gpus
        if not replicas:
            continue
        w = work(full)
        if req.scenario == "offline":
            point: load.LoadPoint | None = load.closed_loop(w, w.max_batch)
        else:
            point = load.max_rate(w, max_p99_time_to_first_token_seconds=req.max_time_to_first_token_seconds,
                                  max_time_per_output_token_seconds=req.max_time_per_output_token_seconds)  # fmt: skip
            if point is None:
                why = f"at {_name(full)} even a trickle of requests misses the latency bounds"
                continue
        total = point.output_tokens_per_second * replicas
        if best is None or (-total, full.n_gpus) < (-best[0], best[1]):
            best = (total, full.n_gpus, full, replicas, point)
    if best is None:
        return _unfit(view.id, why)
    _, _, full, replicas, point = best
    chosen = _at_point(rerun, full, point)
    return _served(view, chosen, replicas, req, price, point).model_copy(
        update={"output_tokens_per_second": point.output_tokens_per_second * replicas}
    )


def _name(r: core.Replica) -> str:
    return f"tp={r.tp}" if r.ep is None else f"ep={r.ep}"


def _served(
    view: GpuView, chosen: core.Replica, replicas: int, req: s.ServingPlanRequest, price: PriceQuote | None, point: load.LoadPoint
) -> s.ServingOption:
    """The option of ``replicas`` replicas like ``chosen``, priced; latencies and throughput at the
    load (``point``: the requests a replica completes a second times their output tokens, Little's
    law over the users in flight, who are not all decoding while they wait for a first token),
    dollars from the replica's GPU time at its batch, or under an open-loop load the fleet's: the
    requests served and every GPU-hour paid (:func:`_cost`)."""
    cost = _cost(chosen, replicas, req, price)
    tpot = point.time_per_output_token_seconds
    served = (
        point.output_tokens_per_second * replicas
        if req.requests_per_second is None
        else req.requests_per_second * req.output_tokens
    )
    return s.ServingOption(
        gpu=view.id, fits=True, reason=batch_limit_reason(chosen, prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens),
        tp=chosen.tp, ep=chosen.ep, dp_attention=chosen.dp_attention, replicas=replicas,
        n_gpus=chosen.n_gpus * replicas,
        max_batch_per_replica=chosen.max_batch, batch_per_replica=chosen.batch, usable_memory_bytes=chosen.usable_memory_bytes,
        weights_bytes=chosen.weights_bytes, kv_cache_bytes_per_token=chosen.kv_cache_bytes_per_token,
        kv_cache_bytes_per_sequence=chosen.kv_cache_bytes_per_sequence,
        state_cache_bytes_per_sequence=chosen.state_bytes_per_sequence or None, time_to_first_token_seconds=point.time_to_first_token_seconds,
        p99_time_to_first_token_seconds=point.p99_time_to_first_token_seconds, latency_seconds=point.latency_seconds,
        requests_per_second_per_replica=point.requests_per_second,
        time_per_output_token_seconds=tpot, decode_bound=chosen.decode_bound,
        speculative_tokens_per_step=None if req.speculative is None
        else expected_tokens(req.speculative.acceptance_rate, req.speculative.tokens), output_tokens_per_second_per_user=1 / tpot,
        output_tokens_per_second_per_replica=served / replicas, output_tokens_per_second=served,
        usd_per_hour=cost.usd_per_hour * replicas if cost else None,
        usd_per_million_output_tokens=cost.usd_per_million_output_tokens if cost else None,
        usd_per_million_input_tokens=cost.usd_per_million_input_tokens if cost else None, price=price,
        usd_per_million_cached_input_tokens=cost.usd_per_million_cached_input_tokens if cost else None,
    )  # fmt: skip


def _expert_parallel_unit(
    arch: Architecture, hw: Hardware, req: cs.InferenceCostRequest, weights: core.Weights, kv_dtype: Dtype
) -> core.Replica:
    """The request's expert-parallel unit at its batch (:func:`service.core.expert_serving.ep_replica`);
    422 naming ``ep`` for a dense model, fewer routed experts than GPUs, or an ``n_gpus`` that differs."""
    assert req.ep is not None
    if not arch.is_moe:
        raise Unprocessable.for_field("ep", "expert parallelism needs a mixture of experts; this model is dense")
    if req.ep > arch.n_experts:
        raise Unprocessable.for_field("ep", f"{req.ep} GPUs for {arch.n_experts} routed experts: at most one GPU per expert")
    if req.n_gpus not in (1, req.ep):
        raise Unprocessable.for_field("ep", f"a unit of {req.ep} GPUs, but n_gpus is {req.n_gpus}: give n_gpus 1 or {req.ep}")
    return ep_core.ep_replica(arch, hw, ep=req.ep, weights=weights, kv_dtype=kv_dtype, prompt_tokens=req.prompt_tokens,
                              output_tokens=req.output_tokens, batch=req.batch_size)  # fmt: skip


def inference_cost(req: cs.InferenceCostRequest, catalog: CatalogReader) -> cs.InferenceCostResponse:
    """A replica of ``n_gpus`` (tensor-parallel) GPUs, or a mixture's expert-parallel unit of ``ep``
    GPUs, at ``batch_size``, priced by the serving model that ``POST /v1/plan/serving`` uses
    (:mod:`service.core.serving`, :mod:`service.core.expert_serving`)."""
    model = resolve_model(req.model, catalog)
    arch = require_architecture(model, "serving cost (the KV cache)")
    model_notes = model_assumptions(model, req.model, req.prompt_tokens + req.output_tokens, field="output_tokens")
    if req.ep is None:
        core.check_tensor_parallel(arch, req.n_gpus)
    gpu = catalog_gpu(catalog, req.gpu)
    price = resolve_price(catalog, gpu.id, req)
    fmt = req.dtype
    if why := unservable_weights(gpu, fmt):
        raise Unprocessable.for_field("dtype", why)
    hw, peak_dtype = serving_hardware(gpu, fmt)
    kv_dtype = req.kv_dtype or Dtype.BF16
    weights = core.weight_bytes(arch, fmt)
    if req.ep is None:
        r = core.replica(arch, hw, tp=req.n_gpus, weights=weights, kv_dtype=kv_dtype, prompt_tokens=req.prompt_tokens,
                         output_tokens=req.output_tokens, batch=req.batch_size)  # fmt: skip
        layout = f"{req.n_gpus} x {gpu.id}, weights sharded with tensor parallelism"
    else:
        r = _expert_parallel_unit(arch, hw, req, weights, kv_dtype)
        layout = (f"an expert-parallel unit of {req.ep} x {gpu.id}: routed experts sharded ceil(n_experts / ep) a GPU, "
                  "attention, dense layers and shared experts on every GPU over its own sequences (dp_attention), the batch "
                  f"spread over the unit; moe_load_imbalance {r.expert_load_imbalance:.2f} (SGLang's measured EP32 imbalance, "
                  "LMSYS 2025-05-05), all-to-all not overlapped (service.core.expert_serving)")  # fmt: skip
    money = core.serving_cost(
        r, usd_per_gpu_hour=price.usd_per_gpu_hour, prompt_tokens=req.prompt_tokens, output_tokens=req.output_tokens
    )
    needed = r.weights_bytes + req.batch_size * r.kv_cache_bytes_per_sequence
    assumptions: dict[str, Any] = model_notes | {
        "kv_dtype": kv_dtype.value, "kv_dtype_source": "request" if req.kv_dtype else "default bf16 (not the weights' format)",
        "mean_context_tokens": req.prompt_tokens + req.output_tokens / 2, "peak_dtype": peak_dtype,
        "gpu_memory_utilization": core.GPU_MEMORY_UTILIZATION, "runtime_reserve_bytes": core.RUNTIME_RESERVE_BYTES,
        "price_as_of": price.as_of.isoformat() if price.as_of else None,
        "replica": layout,
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
