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
- **a decode step** on one GPU with ``b`` sequences runs its kernels one after another, each at its
  own roofline (Williams et al. 2009): the replicated matmuls (attention projections, dense layers,
  shared experts, head: their weights read or ``b`` tokens' FLOPs at the matmul rate), the routed
  experts (those of its experts the unit's ``ep * b`` tokens pick, as a tensor-parallel replica's
  step reads them: :func:`service.core.params.unread_expert_share`, every expert at the batches
  expert parallelism is for; or the busiest GPU's routed FLOPs, the mean's times the **load
  imbalance**, below), and the **attention
  core** at its kernel's rate, not the matmul rate: for multi-head latent attention FlashMLA's
  (deepseek-ai/FlashMLA README, 2025-02: up to 3,000 GB/s memory-bound and 580 TFLOPS
  compute-bound on H800 SXM5, BF16; as fractions of H800's 3.35 TB/s and 989.5 TFLOPS), over the
  absorbed form's FLOPs ``2 * a * (2 * kv_lora_rank + qk_rope_head_dim)`` per key and layer
  (DeepSeek-V2 §2.1.2: ``W_UK`` absorbed into the query, ``W_UV`` into the output; FlashMLA's
  benchmark counts ``2 h_q s_k (d_k + d_v)``), the cache read at its bandwidth; other attention
  at the BF16 peak times its measured forward fraction (:mod:`service.core.efficiency`) or its
  cache read at the HBM rate. Beside it the **all-to-all** dispatch and combine of every MoE layer
  (:func:`service.core.hardware.expert_all_to_all_seconds`: NVLink inside a node, the scale-out
  network across nodes, each token sent once per node it reaches), the busiest GPU's share. The
  dispatch is FP8 when the weights are (DeepSeek-V3 §3.3.2: activations quantised to FP8 before
  the dispatch), the combine BF16;
- **a prefill** on one GPU is its prompt's compute as one GPU would run it, its routed experts those
  it holds over the unit's tokens (:mod:`service.core.expert_prefill`: the expert FLOPs the GPU
  does for others balance those others do for it, times the load imbalance), with the attention
  core at the BF16 peak times the kernel's measured forward fraction (day 6: FP8 for the matmuls
  and the dispatch, BF16 for the core MLA computations and the combine; FlashAttention-3's
  prefill kernels are BF16 too), and its tokens' all-to-all. With a prefix-cache hit the prompt
  costs the whole prompt's less the cached prefix's: the new tokens' attention over the prefix is
  counted (causal attention), and a prefix kept outside the GPUs is **read in** first;
- **prompt lengths** (``prompt_length_cv``, an input): the matmuls and the all-to-all are linear in
  a prompt's tokens, the attention core grows as its length squared, so over prompts of mean
  length ``n`` and coefficient of variation ``cv`` the mean prompt's core costs ``1 + cv**2`` times
  the core of one prompt of ``n`` tokens (``E[L^2] = (1 + cv^2) E[L]^2``; a sliding-window layer's
  less: :func:`service.core.compute.prompt_attention_flops`), each prompt hitting the
  cache at the mean rate; cv 0 is prompts of one length (the benchmarks' fixed-length prompts), 1
  exponential lengths (the maximum-entropy distribution of a positive length with a given mean,
  Jaynes 1957, for a workload published only as totals). Decode is linear in the context, so its
  mean is exact;
- **prefix read** (``prefix_read_bytes_per_s``, an input per node; None: the prefix stays in GPU
  memory, as vLLM's automatic prefix caching and SGLang's RadixAttention keep it): DeepSeek keeps
  its KV cache on disk on 3FS (day 6: 56.3 % of input tokens hit the on-disk KV cache); its
  KVCache clients read over one 400 Gbps NIC a node at up to 40 GiB/s (deepseek-ai/3FS README,
  "KVCache": :data:`THREEFS_KVCACHE_READ_BYTES_PER_S`). Every GPU of a node reads its prompts'
  prefixes at once, each at its share of the node's rate, the cache's bytes per token (the
  latent's, for multi-head latent attention), before the new tokens run: the read is not overlapped
  with another prompt's compute (no prefetch is modelled, as the all-to-all is not overlapped by
  default);
- **load imbalance** ``expert_load_imbalance`` (the busiest GPU's routed tokens over the mean, an
  input): the step waits for the busiest GPU (all-to-all is a barrier), so its routed-expert
  FLOPs and its dispatch and combine take that factor. Default :data:`DEFAULT_EXPERT_LOAD_IMBALANCE`
  = 1.18: SGLang's DeepSeek-V3 prefill on EP32 H100 at its default expert distribution against a
  simulated perfectly balanced one (LMSYS 2025-05-05, "Profile Results": 50,302 and 59,337 tokens/s
  per node), the slowdown taken as the busiest GPU's excess load. DeepSeek's redundant experts and
  EPLB (V3 report §3.4; deepseek-ai/EPLB) are what keep it that low: without them SGLang measured
  1.49x (prefill) and 2.54x (decode) slower (same post, "Ablation Study: EPLB");
- **overlap** (an option, off by default): DeepSeek and SGLang split the batch into two
  micro-batches and run one's all-to-all under the other's compute (V3 report §3.4: two
  micro-batches in prefilling; day 6: dual micro-batch in prefill, a five-stage pipeline in decode;
  deepseek-ai/profile-data; SGLang's two-batch overlap). With it a decode step is two halves of
  ``max(own work at b/2, all-to-all at b/2)``, each half reading the weights again (decode's
  all-to-all frees every SM once its writes are issued, profile-data README), and a prefill
  ``max(compute, all-to-all)`` with the compute on the SMs the all-to-all leaves it (20 of an
  H800's 132 run it, V3 report §3.2.2). Off, the two add up. The default is off because this
  overlap is perfect and overstates what is measured: SGLang's two-batch overlap gains 27-35 % in
  prefill and 25.5 % in decode at 256 sequences a GPU (LMSYS 2025-05-05, "Ablation Study: Two-batch
  Overlap"), where on DeepSeek-V3's EP32 prefill and EP128 decode units of H800 (4K prompts, 128
  sequences a GPU) it gains 62 % and 51 %.

Left out: the wait for the slowest data-parallel rank in prefill (day 6's prefill load balancer
evens out both the core attention and the input tokens of every GPU; its algorithm is not
published) and in decode (sequences and context lengths per GPU), the redundant experts' memory,
and TP within attention.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from service.core.architecture import Architecture
from service.core.compute import attention_score_flops_per_token, prompt_attention_flops
from service.core.dtypes import Dtype
from service.core.expert_prefill import fp8_matmuls, routed_expert_seconds
from service.core.hardware import (
    INTER_NODE_LATENCY_SECONDS,
    INTRA_NODE_LATENCY_SECONDS,
    expert_all_to_all_seconds,
)
from service.core.memory import kv_cache_bytes, recurrent_state_dtype, state_cache_bytes_per_sequence
from service.core.params import expert_missed, mlp_params
from service.core.serving import (
    DEFAULT_LIMITS,
    GPU_MEMORY_UTILIZATION,
    RUNTIME_RESERVE_BYTES,
    EngineLimits,
    Replica,
    Weights,
    decode_terms,
    prefill_seconds,
    prefix_read_seconds,
    replica_step_seconds,
    usable_memory_bytes,
)
from service.core.speculative import cached_prefix_tokens
from service.core.steptime import Hardware, memory_rate

COMBINE_BYTES = 2  # the combine returns BF16 (DeepSeek-V3 §3.3.2)
# FlashMLA on H800 SXM5 (deepseek-ai/FlashMLA README, 2025-02, BF16): up to 580 TFLOPS compute-bound of the
# 989.5 dense BF16 peak, up to 3,000 GB/s memory-bound of 3.35 TB/s; the 2025-04 kernel reaches 660 TFLOPS
FLASH_MLA_COMPUTE_FRACTION = 580 / 989.5
FLASH_MLA_BANDWIDTH_FRACTION = 3000e9 / 3.35e12
# the busiest GPU's routed tokens over the mean: SGLang's DeepSeek-V3 EP32 prefill on H100, default expert
# distribution against simulated perfect balance (LMSYS 2025-05-05, "Profile Results": 50,302 and 59,337 tok/s per node)
DEFAULT_EXPERT_LOAD_IMBALANCE = 59_337 / 50_302
# overlapped prefill all-to-all runs on 20 of an H800's 132 SMs (DeepSeek-V3 §3.2.2), which the compute then lacks;
# decode's all-to-all frees every SM once its RDMA writes are issued (deepseek-ai/profile-data README, "Decoding")
PREFILL_COMMUNICATION_SM_SHARE = 20 / 132
# DeepSeek's 3FS KVCache clients: one 400 Gbps NIC a node, read throughput peaking at 40 GiB/s (deepseek-ai/3FS README,
# "KVCache"), the node's rate for reading cached prefixes kept on disk
THREEFS_KVCACHE_READ_BYTES_PER_S = 40 * 2**30


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


def _routed_active_weights(arch: Architecture) -> int:
    """Routed-expert matmul weights one token runs through: ``k`` experts in every MoE layer."""
    return arch.moe_layers * arch.experts_per_token * mlp_params(arch, arch.d_ff)


def decode_attention_seconds(
    arch: Architecture, hw: Hardware, *, batch_per_gpu: np.ndarray, context_tokens: float, kv_bytes_per_token: int,
    state_bytes_per_sequence: int = 0,
) -> np.ndarray:  # fmt: skip
    """The attention core of one decode step on one GPU (module docstring): multi-head latent
    attention at FlashMLA's rates over the absorbed form's FLOPs, other attention at the BF16 peak
    times its measured forward fraction; the cache (and a recurrent layer's state, read and written
    back) at the kernel's bandwidth; whichever is longer."""
    cache_share, _, attention_flops = decode_terms(arch, context_tokens)
    read = batch_per_gpu * (kv_bytes_per_token * cache_share + 2 * state_bytes_per_sequence)
    bf16_peak = hw.bf16_peak_flops_per_s or hw.peak_flops_per_s
    if arch.is_mla:
        d_c, rope = arch.kv_lora_rank or 0, arch.qk_rope_head_dim or 0
        flops = 2.0 * arch.n_heads * (2 * d_c + rope) * arch.attention_layers * context_tokens
        rate, bandwidth = bf16_peak * FLASH_MLA_COMPUTE_FRACTION, hw.memory_bandwidth_bytes_per_s * FLASH_MLA_BANDWIDTH_FRACTION
    else:
        flops = attention_flops
        rate, bandwidth = bf16_peak * hw.kernels.attention_fractions(context_tokens, arch.d_head)[0], memory_rate(hw)
    return np.maximum(read / bandwidth, batch_per_gpu * flops / rate)


def ep_decode_step_seconds(
    arch: Architecture, hw: Hardware, *, ep: int, batch_per_gpu: np.ndarray | float, context_tokens: float,
    replicated_bytes: int, routed_bytes_per_gpu: int, kv_bytes_per_token: int, element_bytes: int,
    state_bytes_per_sequence: int = 0, imbalance: float = 1.0, overlap: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One decode step of a GPU of the unit with ``batch_per_gpu`` sequences (module docstring):
    the replicated matmuls, the routed experts (their FLOPs and the all-to-all times
    ``imbalance``) and the attention core, each at its own roofline, plus the all-to-all; with
    ``overlap`` two micro-batches of half the sequences, each ``max(own work, all-to-all)``.
    Returns the seconds and whether memory bounds the GPU's matmuls."""
    b = np.asarray(batch_per_gpu, dtype=np.float64)
    _, matmul_weights, _ = decode_terms(arch, context_tokens)
    routed_weights = _routed_active_weights(arch)
    rate, hbm = hw.peak_flops_per_s * hw.kernels.matmul, memory_rate(hw)

    def picked(tokens: np.ndarray) -> np.ndarray:  # the GPU's experts the unit's tokens pick (unread_expert_share)
        return routed_bytes_per_gpu * (1 - expert_missed(arch, ep * tokens))

    def own(tokens: np.ndarray) -> np.ndarray:
        replicated = np.maximum(replicated_bytes / hbm, tokens * 2.0 * (matmul_weights - routed_weights) / rate)
        routed = np.maximum(picked(tokens) / hbm, imbalance * tokens * 2.0 * routed_weights / rate)
        core = decode_attention_seconds(arch, hw, batch_per_gpu=tokens, context_tokens=context_tokens,
                                        kv_bytes_per_token=kv_bytes_per_token, state_bytes_per_sequence=state_bytes_per_sequence)  # fmt: skip
        return replicated + routed + core

    def comm(tokens: np.ndarray) -> np.ndarray:
        return imbalance * all_to_all_seconds(arch, hw, ep=ep, tokens=tokens, element_bytes=element_bytes)

    step = 2 * np.maximum(own(b / 2), comm(b / 2)) if overlap else own(b) + comm(b)
    memory_bound = (replicated_bytes + picked(b)) / hbm >= b * 2.0 * matmul_weights / rate
    return step, memory_bound


def ep_prompt_seconds(
    arch: Architecture, hw: Hardware, *, ep: int, prompt_tokens: int, element_bytes: int, imbalance: float = 1.0,
    overlap: bool = False, length_cv: float = 0.0, fp8: bool = False,
) -> float:  # fmt: skip
    """One prompt on one GPU of the unit (module docstring): its compute
    (:func:`service.core.serving.prefill_seconds` at one GPU, the routed experts those the GPU
    holds over the unit's tokens: :func:`service.core.expert_prefill.routed_expert_seconds`, at
    FP8's grouped-GEMM tile cost with ``fp8``) with the attention core at the BF16
    peak, averaged over prompts of this mean length and coefficient of variation
    (:func:`service.core.compute.prompt_attention_flops`: ``1 + length_cv**2`` times for global
    attention), and the routed experts' matmuls times ``imbalance``, and its tokens' all-to-all
    (times ``imbalance``): their sum, or with ``overlap`` the longer."""
    if prompt_tokens == 0:
        return 0.0
    n = prompt_tokens
    bf16_peak = hw.bf16_peak_flops_per_s or hw.peak_flops_per_s
    compute = prefill_seconds(arch, hw, tp=1, prompt_tokens=n, attention_peak_flops_per_s=bf16_peak, ep=ep, fp8=fp8)
    if length_cv:  # the core's share beyond the mean prompt's
        forward_fraction, _ = hw.kernels.attention_fractions(n, arch.d_head)
        beyond = prompt_attention_flops(arch, n, length_cv) - attention_score_flops_per_token(arch, n, causal=True) * n
        compute += beyond / (bf16_peak * forward_fraction)
    if arch.moe_layers:
        compute += (imbalance - 1) * arch.moe_layers * routed_expert_seconds(arch, hw, tokens=n, ep=ep, fp8=fp8)
    comm = imbalance * float(all_to_all_seconds(arch, hw, ep=ep, tokens=n, element_bytes=element_bytes))
    return max(compute / (1 - PREFILL_COMMUNICATION_SM_SHARE), comm) if overlap else compute + comm


def ep_step_seconds(
    arch: Architecture, hw: Hardware, r: Replica, *, batch: np.ndarray | float, context_tokens: float, limits: EngineLimits
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The decode step of replica ``r`` at ``batch`` sequences over the replica: a unit's
    (:func:`ep_decode_step_seconds` at ``batch / ep`` a GPU, at the unit's imbalance and overlap)
    with the engine's per-step overhead, or a tensor-parallel replica's
    (:func:`service.core.serving.replica_step_seconds`)."""
    if r.ep is None:
        return replica_step_seconds(arch, hw, r, batch=batch, context_tokens=context_tokens, limits=limits)
    routed = (r.weights_bytes - r.ep * r.replicated_weights_bytes) // r.ep
    step, bound = ep_decode_step_seconds(
        arch, hw, ep=r.ep, batch_per_gpu=np.asarray(batch, dtype=np.float64) / r.ep, context_tokens=context_tokens,
        replicated_bytes=r.replicated_weights_bytes, routed_bytes_per_gpu=routed, kv_bytes_per_token=r.kv_cache_bytes_per_token,
        element_bytes=r.dispatch_bytes, state_bytes_per_sequence=r.state_bytes_per_sequence,
        imbalance=r.expert_load_imbalance, overlap=r.micro_batch_overlap,
    )  # fmt: skip
    return step + limits.step_overhead_seconds(arch), bound


def ep_replica(
    arch: Architecture, hw: Hardware, *, ep: int, weights: Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    batch: int | None = None, max_time_per_output_token_seconds: float | None = None, utilization: float = GPU_MEMORY_UTILIZATION,
    reserve_bytes: int = RUNTIME_RESERVE_BYTES, limits: EngineLimits = DEFAULT_LIMITS,
    imbalance: float = DEFAULT_EXPERT_LOAD_IMBALANCE, overlap: bool = False,
) -> Replica:  # fmt: skip
    """A unit of ``ep`` GPUs at ``batch`` sequences over the unit (default: the most its GPUs' KV
    caches hold, at most ``limits.max_num_seqs`` a GPU, lowered to meet the TPOT bound), as a
    :class:`~service.core.serving.Replica` of ``ep`` GPUs with attention data-parallel.
    ``prefill_seconds`` is the unit's time per prompt (one GPU's prompt over ``ep`` GPUs running
    theirs at once), ``prompt_seconds`` one prompt on its GPU; ``imbalance`` the busiest GPU's routed
    tokens over the mean, ``overlap`` two micro-batches; ``limits.prompt_length_cv`` the prompts'
    spread in length, ``limits.prefix_read_bytes_per_s`` a node's read rate for cached prefixes kept
    outside the GPUs (None: in GPU memory; module docstring)."""
    replicated, routed = per_gpu_weight_bytes(arch, weights, ep)
    if limits.kv_fraction_of_free is not None:
        usable = usable_memory_bytes(hw.memory_bytes, 1, utilization=1.0, reserve_bytes=reserve_bytes)
        free = math.floor(limits.kv_fraction_of_free * (usable - replicated - routed))
    else:
        usable = usable_memory_bytes(hw.memory_bytes, 1, utilization=utilization, reserve_bytes=reserve_bytes)
        free = usable - replicated - routed
    per_token = kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=kv_dtype)
    per_sequence = kv_cache_bytes(arch, seq_len=prompt_tokens + output_tokens, batch_size=1, kv_dtype=kv_dtype)
    state = state_cache_bytes_per_sequence(arch, recurrent_state_dtype(weights.format))  # the model's dtype, not the KV cache's
    per_sequence += state
    per_gpu = max(0, free // per_sequence) if per_sequence else 0
    per_gpu = min(per_gpu, limits.max_num_seqs or per_gpu)
    element = dispatch_bytes(weights)
    cached = cached_prefix_tokens(prompt_tokens, limits.prefix_cache_hit_rate)
    given = {"ep": ep, "element_bytes": element, "imbalance": imbalance, "overlap": overlap, "length_cv": limits.prompt_length_cv,
             "fp8": fp8_matmuls(hw, weights.format)}  # fmt: skip
    prompt = ep_prompt_seconds(arch, hw, prompt_tokens=prompt_tokens, **given)
    fresh = ep_prompt_seconds(arch, hw, prompt_tokens=prompt_tokens - cached, **given) if cached else None
    if cached:
        prompt -= ep_prompt_seconds(arch, hw, prompt_tokens=cached, **given)
        prompt += prefix_read_seconds(cached, per_token, limits.prefix_read_bytes_per_s, hw.gpus_per_node)
    shell = Replica(
        tp=1, ep=ep, dp_attention=True, usable_memory_bytes=ep * usable, weights_bytes=ep * (replicated + routed),
        kv_cache_bytes_per_token=per_token, kv_cache_bytes_per_sequence=per_sequence, max_batch=int(ep * per_gpu), batch=1,
        prefill_seconds=prompt / ep, decode_step_seconds=0.0, decode_bound="memory", time_to_first_token_seconds=prompt,
        time_per_output_token_seconds=0.0, output_tokens_per_second_per_user=0.0, output_tokens_per_second=0.0,
        cached_prompt_tokens=cached, fresh_prefill_seconds=None if fresh is None else fresh / ep, prompt_seconds=prompt,
        replicated_weights_bytes=replicated, dispatch_bytes=element, state_bytes_per_sequence=state,
        expert_load_imbalance=imbalance, micro_batch_overlap=overlap,
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
