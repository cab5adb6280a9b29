"""Serving a mixture of experts with expert parallelism and data-parallel attention, as DeepSeek
and SGLang deploy DeepSeek-V3 (DeepSeek-AI 2024, "DeepSeek-V3 Technical Report", §3.4;
deepseek-ai/open-infra-index, 2025-02, day 6 "DeepSeek-V3/R1 Inference System Overview": prefill
units of 4 nodes with routed experts EP32 and attention and shared experts DP32, decode units of 18
nodes with EP144 and DP144; LMSYS, "Deploying DeepSeek with PD Disaggregation and Large-scale
Expert Parallelism on 96 H100 GPUs", 2025-05-05: DP attention with DeepEP).

A **unit** of ``ep`` GPUs (whole nodes) serves as one replica:

- **attention data-parallel**: every GPU holds the attention (for DeepSeek-V3 multi-head latent
  attention, whose cache is ``kv_lora_rank + qk_rope_head_dim`` values per token and layer,
  DeepSeek-V2 §2.1), the dense first layers, the shared experts, the embeddings and the head, and
  runs attention for its own sequences over its own KV cache only (no tensor parallelism: the
  latent is not replicated over ranks, day 6's "MLA DP"; the V3 report's TP4 attention is not
  modelled);
- **routed experts sharded**: ``ceil(n_experts / ep)`` experts per GPU (DeepSeek adds redundant
  copies of hot experts, day 6; not counted beyond the ceiling);
- **a decode step** on one GPU with ``b`` sequences reads its replicated weights, its routed experts
  (all of them, as a tensor-parallel replica's step reads all its weights: at the batches expert
  parallelism is for, ``ep * b * k`` routed tokens reach every expert) and its sequences' KV
  cache, or computes ``b`` tokens'
  FLOPs, whichever is longer (Pope et al. 2022 §2-3, as :func:`service.core.serving.decode_step_seconds`);
  beside it the **all-to-all** dispatch and combine of every MoE layer
  (:func:`service.core.hardware.expert_all_to_all_seconds`: NVLink inside a node, the scale-out
  network across nodes, each token sent once per node it reaches). The dispatch is FP8 when the
  weights are (DeepSeek-V3 §3.3.2: activations quantised to FP8 before the dispatch), the combine
  BF16. The step is the GPU's own work **plus** the all-to-all. DeepSeek and SGLang overlap the
  two with two micro-batches (day 6: dual micro-batch in prefill, a five-stage pipeline in decode;
  SGLang's two-batch overlap), but each micro-batch then reads the weights again and runs its
  matmuls at half the batch; the sum is the stated, conservative choice;
- **a prefill** on one GPU is its prompt's compute as one GPU would run it (the expert FLOPs the GPU
  does for others balance those others do for it) plus its tokens' all-to-all.

Left out: load imbalance between experts and between data-parallel ranks, the redundant experts'
memory, the micro-batch overlap (above), TP within attention, and loading cached prefixes from
disk (DeepSeek's KV cache on 3FS).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from service.core.architecture import Architecture
from service.core.dtypes import Dtype
from service.core.hardware import INTER_NODE_LATENCY_SECONDS, INTRA_NODE_LATENCY_SECONDS, expert_all_to_all_seconds
from service.core.memory import kv_cache_bytes, state_cache_bytes_per_sequence
from service.core.params import mlp_params
from service.core.serving import (
    DEFAULT_LIMITS,
    GPU_MEMORY_UTILIZATION,
    RUNTIME_RESERVE_BYTES,
    EngineLimits,
    Replica,
    Weights,
    _decode_terms,
    prefill_seconds,
    replica_step_seconds,
    usable_memory_bytes,
)
from service.core.speculative import cached_prefix_tokens
from service.core.steptime import Hardware, memory_rate

COMBINE_BYTES = 2  # the combine returns BF16 (DeepSeek-V3 §3.3.2)


def expert_parallel_degrees(arch: Architecture, gpus_per_node: int) -> list[int]:
    """Unit sizes a mixture may be served on: one node and its doublings, while every GPU holds at
    least one routed expert; none for a dense model or fewer experts than a node's GPUs."""
    if not arch.is_moe or arch.n_experts < gpus_per_node:
        return []
    out, ep = [], gpus_per_node
    while ep <= arch.n_experts:
        out.append(ep)
        ep *= 2
    return out


def routed_weight_bytes(arch: Architecture, weights: Weights) -> int:
    """Bytes of all routed experts in the weights' format (their share of the quantised layers)."""
    params = arch.moe_layers * arch.n_experts * mlp_params(arch, arch.d_ff)
    if weights.quantized_params:
        per_param = (weights.total_bytes - weights.other_bytes) / weights.quantized_params
    else:  # 16- or 32-bit throughout
        per_param = 4.0 if weights.format is Dtype.FP32 else 2.0
    return math.ceil(params * per_param)


def per_gpu_weight_bytes(arch: Architecture, weights: Weights, ep: int) -> tuple[int, int]:
    """One GPU's replicated weights (all but the routed experts) and its routed experts' bytes."""
    routed = routed_weight_bytes(arch, weights)
    return weights.total_bytes - routed, math.ceil(routed * math.ceil(arch.n_experts / ep) / arch.n_experts)


def dispatch_bytes(weights: Weights) -> int:
    """Bytes per element of the dispatch: FP8 with FP8 weights (DeepSeek-V3 §3.3.2), else 16-bit."""
    return 1 if weights.format is Dtype.FP8 else 2


def all_to_all_seconds(
    arch: Architecture, hw: Hardware, *, ep: int, tokens: np.ndarray | float, element_bytes: int
) -> np.ndarray:
    """Every MoE layer's dispatch (``element_bytes``) and combine (BF16) of one GPU's ``tokens``
    (:func:`~service.core.hardware.expert_all_to_all_seconds`), with one latency each rather than one
    per peer: DeepEP issues its RDMA and NVLink writes to every peer at once (deepseek-ai/DeepEP
    README: 128 tokens dispatched over EP256 in 194 us, bandwidth-bound)."""

    def one(element: int) -> np.ndarray:  # the pairwise latencies replaced by one: every peer is sent to at once
        seconds = expert_all_to_all_seconds(np.multiply(tokens, element), arch.experts_per_token, arch.d_model, 1, ep, hw)
        hop = INTRA_NODE_LATENCY_SECONDS if ep <= hw.gpus_per_node else INTER_NODE_LATENCY_SECONDS
        return seconds - (ep - 2) * hop if ep > 1 else seconds

    return arch.moe_layers * (one(element_bytes) + one(COMBINE_BYTES))


def ep_decode_step_seconds(
    arch: Architecture, hw: Hardware, *, ep: int, batch_per_gpu: np.ndarray | float, context_tokens: float,
    replicated_bytes: int, routed_bytes_per_gpu: int, kv_bytes_per_token: int, element_bytes: int,
    state_bytes_per_sequence: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One decode step of a GPU of the unit with ``batch_per_gpu`` sequences (module docstring):
    ``max(memory, compute) + all-to-all``; a recurrent layer's state is read and written back
    (as :func:`service.core.serving.decode_step_seconds` counts it). Returns the seconds and whether memory bounds the
    GPU's own work."""
    b = np.asarray(batch_per_gpu, dtype=np.float64)
    cache_share, matmul_weights, attention_flops = _decode_terms(arch, context_tokens)
    read = replicated_bytes + routed_bytes_per_gpu + b * (kv_bytes_per_token * cache_share + 2 * state_bytes_per_sequence)
    memory_time = read / memory_rate(hw)
    compute_time = b * (2.0 * matmul_weights + attention_flops) / (hw.peak_flops_per_s * hw.kernels.matmul)
    local = np.maximum(memory_time, compute_time)
    comm = all_to_all_seconds(arch, hw, ep=ep, tokens=b, element_bytes=element_bytes)
    return local + comm, memory_time >= compute_time


def ep_prompt_seconds(arch: Architecture, hw: Hardware, *, ep: int, prompt_tokens: int, element_bytes: int) -> float:
    """One prompt on one GPU of the unit: its compute (:func:`service.core.serving.prefill_seconds`
    at one GPU) or its tokens' all-to-all, whichever is longer (module docstring)."""
    if prompt_tokens == 0:
        return 0.0
    compute = prefill_seconds(arch, hw, tp=1, prompt_tokens=prompt_tokens)
    return compute + float(all_to_all_seconds(arch, hw, ep=ep, tokens=prompt_tokens, element_bytes=element_bytes))


def ep_step_seconds(
    arch: Architecture, hw: Hardware, r: Replica, *, batch: np.ndarray | float, context_tokens: float, limits: EngineLimits
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The decode step of replica ``r`` at ``batch`` sequences over the replica: a unit's
    (:func:`ep_decode_step_seconds` at ``batch / ep`` a GPU) with the engine's per-step overhead, or a
    tensor-parallel replica's (:func:`service.core.serving.replica_step_seconds`)."""
    if r.ep is None:
        return replica_step_seconds(arch, hw, r, batch=batch, context_tokens=context_tokens, limits=limits)
    routed = (r.weights_bytes - r.ep * r.replicated_weights_bytes) // r.ep
    step, bound = ep_decode_step_seconds(
        arch, hw, ep=r.ep, batch_per_gpu=np.asarray(batch, dtype=np.float64) / r.ep, context_tokens=context_tokens,
        replicated_bytes=r.replicated_weights_bytes, routed_bytes_per_gpu=routed, kv_bytes_per_token=r.kv_cache_bytes_per_token,
        element_bytes=r.dispatch_bytes, state_bytes_per_sequence=r.state_bytes_per_sequence,
    )  # fmt: skip
    return step + limits.step_overhead_seconds(arch), bound


def ep_replica(
    arch: Architecture, hw: Hardware, *, ep: int, weights: Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    batch: int | None = None, max_time_per_output_token_seconds: float | None = None, utilization: float = GPU_MEMORY_UTILIZATION,
    reserve_bytes: int = RUNTIME_RESERVE_BYTES, limits: EngineLimits = DEFAULT_LIMITS,
) -> Replica:  # fmt: skip
    """A unit of ``ep`` GPUs at ``batch`` sequences over the unit (default: the most its GPUs' KV
    caches hold, at most ``limits.max_num_seqs`` a GPU, lowered to meet the TPOT bound), as a
    :class:`~service.core.serving.Replica` of ``ep`` GPUs with attention data-parallel.
    ``prefill_seconds`` is the unit's time per prompt (one GPU's prompt over ``ep`` GPUs running
    theirs at once), ``prompt_seconds`` one prompt on its GPU."""
    replicated, routed = per_gpu_weight_bytes(arch, weights, ep)
    if limits.kv_fraction_of_free is not None:
        usable = usable_memory_bytes(hw.memory_bytes, 1, utilization=1.0, reserve_bytes=reserve_bytes)
        free = math.floor(limits.kv_fraction_of_free * (usable - replicated - routed))
    else:
        usable = usable_memory_bytes(hw.memory_bytes, 1, utilization=utilization, reserve_bytes=reserve_bytes)
        free = usable - replicated - routed
    per_token = kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=kv_dtype)
    per_sequence = kv_cache_bytes(arch, seq_len=prompt_tokens + output_tokens, batch_size=1, kv_dtype=kv_dtype)
    state = state_cache_bytes_per_sequence(arch, kv_dtype)
    per_sequence += state
    per_gpu = max(0, free // per_sequence) if per_sequence else 0
    per_gpu = min(per_gpu, limits.max_num_seqs or per_gpu)
    element = dispatch_bytes(weights)
    cached = cached_prefix_tokens(prompt_tokens, limits.prefix_cache_hit_rate)
    prompt = ep_prompt_seconds(arch, hw, ep=ep, prompt_tokens=prompt_tokens, element_bytes=element)
    fresh = ep_prompt_seconds(arch, hw, ep=ep, prompt_tokens=prompt_tokens - cached, element_bytes=element) if cached else None
    if cached:
        prompt -= ep_prompt_seconds(arch, hw, ep=ep, prompt_tokens=cached, element_bytes=element)
    shell = Replica(
        tp=1, ep=ep, dp_attention=True, usable_memory_bytes=ep * usable, weights_bytes=ep * (replicated + routed),
        kv_cache_bytes_per_token=per_token, kv_cache_bytes_per_sequence=per_sequence, max_batch=int(ep * per_gpu), batch=1,
        prefill_seconds=prompt / ep, decode_step_seconds=0.0, decode_bound="memory", time_to_first_token_seconds=prompt,
        time_per_output_token_seconds=0.0, output_tokens_per_second_per_user=0.0, output_tokens_per_second=0.0,
        cached_prompt_tokens=cached, fresh_prefill_seconds=None if fresh is None else fresh / ep, prompt_seconds=prompt,
        replicated_weights_bytes=replicated, dispatch_bytes=element, state_bytes_per_sequence=state,
    )  # fmt: skip
    context = prompt_tokens + output_tokens / 2
    if batch is None:
        batch = max(1, shell.max_batch)
        if max_time_per_output_token_seconds is not None and shell.max_batch > 0:
            sizes = np.arange(1, per_gpu + 1) * ep
            steps, _ = ep_step_seconds(arch, hw, shell, batch=sizes, context_tokens=context, limits=limits)
            ok = np.flatnonzero(steps + sizes * shell.prefill_seconds / output_tokens <= max_time_per_output_token_seconds)
            batch = int(sizes[ok[-1]]) if len(ok) else ep
    step, memory_bound = ep_step_seconds(arch, hw, shell, batch=batch, context_tokens=context, limits=limits)
    step_s = float(step)
    tpot = step_s + batch * shell.prefill_seconds / output_tokens
    return dataclasses.replace(shell, batch=int(batch), decode_step_seconds=step_s, decode_bound="memory" if bool(memory_bound) else "compute",
                    time_to_first_token_seconds=prompt + step_s, time_per_output_token_seconds=tpot,
                    output_tokens_per_second_per_user=1 / tpot, output_tokens_per_second=batch / tpot)  # fmt: skip
