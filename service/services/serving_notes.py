"""What a serving plan states beside its numbers: the engine's defaults, the request's prompt mix
and features, and how expert-parallel units are priced (the ``assumptions`` of
``POST /v1/plan/serving``), and the request's workload options as the planner passes them on."""

from __future__ import annotations

from typing import Any

from service.core import expert_serving as ep_core
from service.core.architecture import Architecture
from service.core.engines import LARGE_GPU_BYTES, Engine, engine_profile
from service.core.speculative import Speculation
from service.schemas import serving as s

PromptMix = tuple[float, float, float | None]  # prefix-cache hit rate, prompt-length cv, prefix read rate (bytes/s a node)


def mix_arguments(prompts: PromptMix) -> dict[str, Any]:
    """The prompt mix as :func:`service.core.serving_load.engine_setup` takes it."""
    hit_rate, cv, read = prompts
    return {"prefix_cache_hit_rate": hit_rate, "prompt_length_cv": cv, "prefix_read_bytes_per_s": read}


def engine_assumptions(req: s.ServingPlanRequest, arch: Architecture) -> dict[str, Any]:
    """What the engine contributes, each value with its source (:mod:`service.core.engines`)."""
    p = engine_profile(req.engine, tp=1, gpu_memory_bytes=LARGE_GPU_BYTES)
    memory = (f"KV cache = {p.memory_fraction} of the memory the weights and activation buffers leave (free_gpu_memory_fraction)"
              if p.fraction_of_free else f"weights + KV cache + reserve within {p.memory_fraction} of each GPU's memory"
              + (" (0.87/0.85/0.81 at TP 2/4/8)" if req.engine is Engine.SGLANG else ""))  # fmt: skip
    return {
        "engine": req.engine.value,
        "gpu_memory_utilization": req.gpu_memory_utilization if req.gpu_memory_utilization is not None else f"engine default: {memory}",
        "runtime_reserve_bytes": req.runtime_reserve_bytes if req.runtime_reserve_bytes is not None
        else "engine default per GPU (vLLM 2 GiB; TensorRT-LLM CUDA context 1 GiB + graphs 0.5 GiB + activation buffers of the "
        "token budget; SGLang none inside its fraction)",
        "engine_block_size_tokens": p.block_size_tokens,
        "engine_scheduler": f"continuous batching with chunked prefill: up to {p.token_budget} tokens a step (prompt chunks beside "
        f"the decodes; vLLM 2048 on GPUs under 70 GiB or A100), at most {p.max_num_seqs or 'what the KV cache holds'} sequences",
        "engine_step_overhead_seconds": p.layer_overhead_seconds * arch.n_layers + p.host_overhead_seconds,
        "engine_step_overhead": f"{p.layer_overhead_seconds * 1e6:.0f} us per layer (launch and synchronisation gaps; fitted on "
        "the NIM Llama-3.3-70B FP8 TP2 H100 row at concurrency 1) + "
        f"{p.host_overhead_seconds * 1e3:g} ms per step on the host "
        + ("(assumed: V1 schedules between steps without --async-scheduling)" if req.engine is Engine.VLLM
           else "(overlapped)"),
        "engine_sources": "; ".join(p.sources),
        "queueing": "TTFT: rest of the step in progress + M/D/1 wait for a slot in the token budget (Poisson arrivals; a closed "
        "loop priced at its own throughput) + the chunk steps + the prompt's compute; p99 from the wait's exponential tail "
        "(Cramer-Lundberg); users beyond what a replica holds wait for a slot (Little's law)",
        "time_per_output_token": "(latency - TTFT) / (output_tokens - 1): decode step with the per-step overhead / (1 - the "
        "other requests' prompt share of the replica's time)",
        "latency_bounds": "max_time_to_first_token_seconds bounds the p99 under requests_per_second and the one-request time "
        "otherwise; max_time_per_output_token_seconds the mean",
    }  # fmt: skip


def prompt_mix(req: s.ServingPlanRequest) -> PromptMix:
    """The prompts' cache-hit rate, spread in length and where cached prefixes are read from."""
    return req.prefix_cache_hit_rate, req.prompt_length_cv, req.prefix_read_bytes_per_s


def expert_options(req: s.ServingPlanRequest) -> tuple[float, bool]:
    """Expert-parallel units' load imbalance (the request's, else the stated default) and overlap."""
    imbalance = req.moe_load_imbalance or ep_core.DEFAULT_EXPERT_LOAD_IMBALANCE
    return imbalance, req.micro_batch_overlap


def feature_assumptions(req: s.ServingPlanRequest, spec: Speculation | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req.prefix_cache_hit_rate:
        where = ("cached tokens stay in the KV cache (no copy)" if req.prefix_read_bytes_per_s is None else
                 f"cached prefixes are read in from off the GPUs at {req.prefix_read_bytes_per_s / 1e9:.3g} GB/s a node "
                 "(prefix_read_bytes_per_s), shared by the node's replicas reading at once, before the new tokens run: "
                 "no prefetch is modelled, so the replica waits on the read as on its prefill")  # fmt: skip
        out["prefix_cache"] = (f"{req.prefix_cache_hit_rate:.1%} of prompt tokens hit the cache: the prefill is the whole prompt's less "
                               f"the cached prefix's (causal attention); {where}, so the input price is per prompt token with the "
                               "hits at the cost of the new tokens' attention over them")  # fmt: skip
    elif req.prefix_read_bytes_per_s is not None:
        out["prefix_cache"] = "prefix_read_bytes_per_s has no effect: prefix_cache_hit_rate is 0"
    out["prompt_lengths"] = (
        "prompts of one length (prompt_length_cv 0)" if not req.prompt_length_cv else
        f"prompts of mean length prompt_tokens spread with coefficient of variation {req.prompt_length_cv:g}: a prefill's "
        f"causal attention core is {1 + req.prompt_length_cv**2:.3g} x the mean-length prompt's (E[L^2] = (1 + cv^2) E[L]^2; "
        "a sliding-window layer's less, averaged over gamma-distributed lengths); prompts queue for prefill as M/G/1 "
        "(gamma service of that cv: Pollaczek-Khinchine's mean, the Cramer-Lundberg tail); matmuls, decode and the KV "
        "cache at the mean")  # fmt: skip
    if spec is not None:
        projection = (" after its 2h -> h input projection, whole on every tensor rank (EAGLE, Li et al. 2024 §3; "
                      "DeepSeek-V3 §2.2 eq. 21)") if spec.input_projection else ""  # fmt: skip
        out["speculative"] = (f"{spec.method.value}: {spec.tokens} drafted, each accepted with probability {spec.acceptance_rate}, "
                              f"{spec.tokens_per_step:.3f} tokens a step (Leviathan et al. 2023 eq. 1); a step is the model's pass over "
                              f"{spec.tokens + 1} positions per sequence plus {spec.tokens} draft steps of a {spec.draft.n_layers}-layer "
                              f"drafter{projection}, each with the engine's per-step overhead; the drafter's weights (a draft model's "
                              "all, EAGLE's or MTP's block without the embedding and head it shares, its projection on every GPU) and its KV cache take "
                              "memory beside the target's; the drafter prefills each prompt after the target, on the same GPUs, "
                              "before the first token (vLLM's spec-decode worker), so TTFT and the input price include it")  # fmt: skip
    return out


def expert_parallel_note(arch: Architecture, req: s.ServingPlanRequest, spec: Speculation | None) -> dict[str, Any]:
    """How a mixture's expert-parallel units are priced, where the plan considers them."""
    if not arch.is_moe:
        return {}
    if req.tp is not None or spec is not None:
        return {"expert_parallel": "not considered: " + ("tp is fixed" if req.tp is not None else "with speculative decoding")}
    imbalance, overlap = expert_options(req)
    source = " (request)" if req.moe_load_imbalance else ": default, SGLang's measured EP32 imbalance, LMSYS 2025-05-05"
    comm = ("two micro-batches, one's all-to-all under the other's compute (micro_batch_overlap)" if overlap else
            "not overlapped (micro_batch_overlap false: a perfect overlap gains about twice SGLang's measured 25-35 %)")  # fmt: skip
    return {"expert_parallel": (
        "units of ep GPUs (a node and its doublings, at most one GPU per routed expert) beside the tensor-parallel degrees: "
        "attention, dense layers and shared experts replicated on every GPU (dp_attention), each GPU attending over its own "
        "sequences' KV cache; routed experts sharded ceil(n_experts / ep) a GPU; a decode step = its kernels one after "
        "another, each at its roofline: the replicated matmuls, the routed experts (weights read, or the busiest GPU's "
        f"FLOPs at moe_load_imbalance = {imbalance:.2f} x the mean{source}), the attention core at its BF16 kernel's rate "
        "(multi-head latent attention at FlashMLA's shares of H800's peaks: 580 TFLOPS, 3,000 GB/s), + every MoE layer's "
        "all-to-all dispatch (FP8 with FP8 weights) and combine (BF16) over NVLink and the scale-out network at the busiest "
        f"GPU's share, {comm} (DeepSeek-V3 §3.4; open-infra-index day 6; SGLang large-EP, 2025-05-05); a prefill likewise, "
        "attention at the BF16 peak; redundant experts' memory left out")}  # fmt: skip
