"""Serving: weights by format, the KV cache a replica can hold, prefill and decode times, and the
replica that serves a target of users, tokens per second or latency at the least cost.

One model prices every serving answer (the serving plan, ``/v1/cost/inference``, the GPUs
``/v1/memory/inference`` says a model needs):

- **Weights** (:func:`weight_bytes`): the linear layers in the weight format — fp32 4 bytes, bf16/fp16 2 bytes,
  fp8 1 byte with a per-tensor scale (Micikevicius et al. 2022, "FP8 Formats for Deep Learning"
  §4), int8 1 byte with an fp16 scale per output channel (Dettmers et al. 2022, LLM.int8() §3;
  Xiao et al. 2023, SmoothQuant), int4 half a byte with an fp16 scale and a 4-bit zero point per
  group of 128 (Frantar et al. 2023, GPTQ §5; Lin et al. 2024, AWQ §3.3); embeddings, the LM
  head and norms stay 16-bit, as GPTQ/AWQ checkpoints keep them.
- **Memory** (vLLM-style, Kwon et al. 2023 §4): a replica of ``tp`` GPUs may fill
  ``gpu_memory_utilization`` (vLLM's default 0.9) of each GPU, less a runtime reserve per GPU
  (activations of the largest forward, CUDA graphs, NCCL buffers); the weights are sharded over
  ``tp``; what is left holds the KV cache, and its size caps the batch.
- **Prefill** (compute-bound): every matmul of the prompt on its per-GPU shape
  (:func:`service.core.steptime.matmul_seconds`; a mixture's routed experts one touched expert at a
  time, :mod:`service.core.expert_prefill`), causal FlashAttention over the prompt, and two
  tensor-parallel all-reduces per layer; a drafter's own prefill of the prompt after it.
- **Decode** (memory-bound roofline, Pope et al. 2022 §2-3): a step reads the weights once (of a
  mixture's routed experts, those its tokens pick) and every sequence's KV cache at its context; it is compute-bound beyond the ridge point; plus two
  all-reduces per layer, latency-bound at small batches.
- **Continuous batching**: the prompts of new requests run on the same GPUs between decode steps
  (Yu et al. 2022, Orca; Agrawal et al. 2024, Sarathi-Serve), so in the steady state each output
  token of a user waits for ``batch x prefill / output_tokens`` of prefill work besides the
  decode step: the time per output token is ``decode(batch) + batch * prefill / output``.
- **Dollars**: the replica's hourly price split by where its time goes — prefill time to the
  input tokens, decode time to the output tokens.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from service.core import speculative as drafts
from service.core.architecture import Architecture
from service.core.compute import attention_score_flops_per_token, prompt_attention_flops
from service.core.dtypes import Dtype
from service.core.engines import LAYER_OVERHEAD_SECONDS, VLLM_HOST_OVERHEAD_SECONDS
from service.core.errors import InvalidSpecError
from service.core.expert_prefill import fp8_matmuls, mlp_shapes_per_gpu, routed_expert_seconds
from service.core.memory import (
    cached_tokens,
    kv_cache_bytes,
    kv_cache_tensor_shards,
    memory_fits,
    recurrent_state_dtype,
    state_cache_bytes_per_sequence,
)
from service.core.parallelism import tensor_parallel_problem
from service.core.params import (
    active_matmul_weights,
    block_linear_shapes,
    count_params,
    unread_expert_share,
    weight_reads_per_token,
)
from service.core.recurrent import recurrent_linear_shapes
from service.core.speculative import Speculation, cached_prefix_tokens, draft_kv_bytes_per_token
from service.core.steptime import (
    Hardware,
    link_bandwidths,
    matmul_seconds,
    memory_rate,
    ring_all_reduce_seconds,
)

GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default gpu_memory_utilization (vLLM engine arguments)
RUNTIME_RESERVE_BYTES = 2 * 2**30  # per GPU: CUDA context (~0.5 GiB), CUDA graphs, NCCL, peak activations
INT4_GROUP_SIZE = 128  # GPTQ (Frantar et al. 2023 §5) and AWQ (Lin et al. 2024 §3.3) default
INTRA_NODE_LATENCY_SECONDS = 5e-6  # per all-reduce hop, as service.core.steptime prices them
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Weights:
    """Bytes of a model's weights in a format: the quantised linear layers, their scales (and
    zero points), and the 16-bit rest."""

    total_bytes: int
    quantized_params: int
    scale_bytes: int
    other_bytes: int
    format: Dtype


def weight_bytes(arch: Architecture, fmt: Dtype, *, group_size: int = INT4_GROUP_SIZE) -> Weights:
    """Serving bytes of ``arch``'s weights in ``fmt`` (module docstring for each format's source)."""
    if group_size < 1:
        raise InvalidSpecError("group_size", "must be at least 1")
    shapes = block_linear_shapes(arch)  # the router stays 16-bit
    quantized = sum(n * i * o for n, i, o in shapes)
    rest = count_params(arch).total - quantized  # embeddings, LM head, norms, biases, router
    if rest < 0:
        raise AssertionError(f"the quantised layers ({quantized}) exceed the model's parameters")
    if fmt in (Dtype.FP32, Dtype.BF16, Dtype.FP16):
        size = (4 if fmt is Dtype.FP32 else 2) * count_params(arch).total
        return Weights(total_bytes=size, quantized_params=0, scale_bytes=0, other_bytes=size, format=fmt)
    if fmt is Dtype.FP8:
        body, scales = quantized, 4 * sum(n for n, _, _ in shapes)  # one fp32 scale per tensor
    elif fmt is Dtype.INT8:
        body, scales = quantized, 2 * sum(n * o for n, _, o in shapes)  # fp16 scale per output channel
    else:  # int4: half a byte, and per group of `group_size` inputs an fp16 scale and a 4-bit zero
        body = math.ceil(quantized / 2)
        scales = math.ceil(sum(n * math.ceil(i / group_size) * o for n, i, o in shapes) * 2.5)
    return Weights(total_bytes=body + scales + 2 * rest, quantized_params=quantized, scale_bytes=scales,
                   other_bytes=2 * rest, format=fmt)  # fmt: skip


def valid_tensor_parallel(arch: Architecture, gpus_per_node: int) -> list[int]:
    """Tensor-parallel degrees a replica can use: inside a node, dividing the query heads, and
    dividing the KV heads or divided by them (KV heads are then replicated)."""
    return [t for t in range(1, gpus_per_node + 1) if tensor_parallel_problem(arch, t) is None]


def check_tensor_parallel(arch: Architecture, tp: int, field: str = "n_gpus") -> None:
    if problem := tensor_parallel_problem(arch, tp):
        raise InvalidSpecError(field, f"tensor parallelism over {tp} GPUs: {problem}")


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineLimits:
    """What a serving engine changes in a replica beside its memory fraction and reserve
    (:mod:`service.core.engines` for each engine's values and their sources): the KV cache as a
    fraction of the memory the weights and the reserve leave (TensorRT-LLM's
    ``free_gpu_memory_fraction``; None: the fraction is of the total, as vLLM and SGLang take it),
    the most sequences a step decodes (``max_num_seqs``; None: what the KV cache holds), and the
    per-step overhead every decode step pays, ``n_layers * layer_overhead_seconds +
    host_overhead_seconds``. The default, :data:`DEFAULT_LIMITS`, is vLLM's overhead; ``ROOFLINE``
    the bare kernels."""

    kv_fraction_of_free: float | None = None
    max_num_seqs: int | None = None
    layer_overhead_seconds: float = LAYER_OVERHEAD_SECONDS
    host_overhead_seconds: float = VLLM_HOST_OVERHEAD_SECONDS
    speculation: Speculation | None = None  # speculative decoding (service.core.speculative)
    prefix_cache_hit_rate: float = 0.0  # of the prompt's tokens, found in the prefix cache
    prompt_length_cv: float = 0.0  # the prompts' coefficient of variation in length (0: one length)
    prefix_read_bytes_per_s: float | None = None  # a node's read rate for cached prefixes kept off the GPUs (None: in HBM)

    def step_overhead_seconds(self, arch: Architecture) -> float:
        return arch.n_layers * self.layer_overhead_seconds + self.host_overhead_seconds


DEFAULT_LIMITS = EngineLimits()
ROOFLINE = EngineLimits(layer_overhead_seconds=0.0, host_overhead_seconds=0.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Replica:
    """One replica of ``tp`` GPUs at a batch: its memory, and its prefill and decode times."""

    tp: int
    usable_memory_bytes: int  # the replica's, all its GPUs
    weights_bytes: int
    kv_cache_bytes_per_token: int
    kv_cache_bytes_per_sequence: int
    max_batch: int  # sequences the KV cache holds at prompt + output tokens
    batch: int
    prefill_seconds: float  # one prompt
    decode_step_seconds: float  # one token for every sequence of the batch
    decode_bound: str  # "memory" or "compute"
    time_to_first_token_seconds: float
    time_per_output_token_seconds: float  # decode step + the batch's share of prefill
    output_tokens_per_second_per_user: float
    output_tokens_per_second: float  # the replica's
    cached_prompt_tokens: int = 0  # found in the prefix cache
    fresh_prefill_seconds: float | None = None  # with a cache hit: the new tokens' prefill on their own
    state_bytes_per_sequence: int = 0  # recurrent layers' state, read and written every decode step
    # expert parallelism (service.core.expert_serving): a unit of `ep` GPUs with attention data-parallel
    ep: int | None = None
    dp_attention: bool = False
    prompt_seconds: float | None = None  # one prompt on its GPU when the unit's GPUs prefill side by side
    replicated_weights_bytes: int = 0  # per GPU of a unit: every weight but the routed experts
    dispatch_bytes: int = 2  # per element of a unit's expert dispatch
    expert_load_imbalance: float = 1.0  # a unit's busiest GPU's routed tokens over the mean
    micro_batch_overlap: bool = False  # a unit runs two micro-batches, one's all-to-all under the other's compute

    @property
    def n_gpus(self) -> int:
        """GPUs of the replica: ``tp``, or a unit's ``ep``."""
        return self.ep or self.tp


def usable_memory_bytes(memory_bytes: int, tp: int, *, utilization: float, reserve_bytes: int) -> int:
    """What a replica of ``tp`` GPUs of ``memory_bytes`` each may fill: ``tp * (memory *
    utilization - reserve)``, vLLM's budget (``gpu_memory_utilization`` of each GPU, in whole
    bytes) less :data:`RUNTIME_RESERVE_BYTES`. A rule of its own, not the training one
    (:func:`service.core.memory.memory_fits`): an engine claims this share up front and fills what
    the weights leave with KV-cache blocks, so serving sizes its batch by that cache."""
    return max(0, tp * (math.floor(memory_bytes * utilization) - reserve_bytes))


def _attention_shapes_per_gpu(arch: Architecture, tp: int) -> list[tuple[int, float, float]]:
    """``(count, in, out)`` of one layer's attention matmuls on one of ``tp`` ranks (Shoeybi et al.
    2019 §3): Q column-split, K and V over at most ``n_kv_heads`` ranks, the output projection
    row-split; for multi-head latent attention the down-projections to the latents (``q_a``,
    ``kv_a``) are not split, the up-projections are column-split
    (:func:`service.core.params.attention_linear_shapes` for the full shapes)."""
    h = arch.d_model
    if not arch.is_mla:  # Q, K and V read 2h in Zamba's shared block (Architecture.attention_input_width)
        h_in = arch.attention_input_width
        return [(1, h_in, arch.q_proj_width / tp), (2, h_in, arch.kv_dim / min(tp, arch.n_kv_heads)), (1, arch.q_dim / tp, h)]
    a, d_c = arch.n_heads, arch.kv_lora_rank or 0
    nope, rope, d_v = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0, arch.v_head_dim or 0
    if arch.q_lora_rank:
        query = [(1, h, arch.q_lora_rank), (1, arch.q_lora_rank, a * (nope + rope) / tp)]
    else:
        query = [(1, h, a * (nope + rope) / tp)]
    return query + [(1, h, d_c + rope), (1, d_c, a * (nope + d_v) / tp), (1, a * d_v / tp, h)]


@functools.lru_cache(maxsize=4096)  # pure; a replica at every batch asks it again
def prefill_seconds(
    arch: Architecture, hw: Hardware, *, tp: int, prompt_tokens: int, element_bytes: int = 2,
    attention_peak_flops_per_s: float | None = None, length_cv: float = 0.0, ep: int = 1, fp8: bool = False,
) -> float:  # fmt: skip
    """One prompt through the replica: every matmul on its per-GPU shape (tensor parallelism splits
    each projection's output, or its input for the output and down projections; an MLA latent's
    down-projections are not split), the causal attention core over the prompt at the
    FlashAttention rate (:func:`service.core.compute.attention_score_flops_per_token`: windows and
    MLA widths included), the output layer for the last token, and two all-reduces of ``n*h``
    activations per layer (Shoeybi et al. 2019 §3). Routed experts run one at a time, each touched
    expert on its own rows and weights at the grouped-GEMM rate (FP8's tile cost with ``fp8``), a
    GPU of an ``ep``-GPU unit its own experts over the unit's tokens
    (:func:`service.core.expert_prefill.routed_expert_seconds`); dense first layers and shared
    experts see every token. Recurrent layers (``layer_types``) run
    their projections (:func:`~service.core.recurrent.recurrent_linear_shapes`, column-split) instead
    of attention's; their scans are left out (small beside the projections at Mamba's sizes). The
    attention core runs at ``attention_peak_flops_per_s`` times the kernel's measured fraction
    (None: the matmuls' peak; :func:`attention_peak_flops_per_s` by the KV cache's format).
    ``length_cv``: prompts of this mean length spread with that coefficient of variation; the
    matmuls are linear in a prompt's tokens, the causal core grows as its length squared (a global
    layer's; a sliding-window layer's linearly past its window), so the mean prompt's core is
    :func:`service.core.compute.prompt_attention_flops`: ``1 + length_cv**2`` times one mean-length
    prompt's for global attention (``E[L^2] = (1 + cv^2) E[L]^2``)."""
    if prompt_tokens == 0:
        return 0.0
    n, h, L = prompt_tokens, arch.d_model, arch.n_layers

    def seconds(per_gpu: list[tuple[int, float, float]], tokens: float) -> float:
        return sum(count * matmul_seconds(tokens, k_in, n_out, hw, element_bytes) for count, k_in, n_out in per_gpu)

    attention = arch.attention_layers * seconds(_attention_shapes_per_gpu(arch, tp), n)
    attention += seconds([(c, k_in, n_out / tp) for c, k_in, n_out in recurrent_linear_shapes(arch)], n)  # Mamba/RWKV
    mlp = 0.0
    if arch.dense_mlp_layers:
        width = (arch.d_ff_dense or arch.d_ff) if arch.is_moe else arch.d_ff
        mlp += arch.dense_mlp_layers * seconds(mlp_shapes_per_gpu(arch, width, tp), n)
    if arch.moe_layers:
        mlp += arch.moe_layers * routed_expert_seconds(arch, hw, tokens=n, tp=tp, ep=ep, fp8=fp8, element_bytes=element_bytes)
        if arch.shared_expert_width:  # one MLP of the shared experts' total width
            mlp += arch.moe_layers * seconds(mlp_shapes_per_gpu(arch, arch.shared_expert_width, tp), n)
    forward_fraction, _ = hw.kernels.attention_fractions(n, arch.d_head)  # the kernel's measured rate at this prompt
    peak = attention_peak_flops_per_s or hw.peak_flops_per_s
    core = prompt_attention_flops(arch, n, length_cv) / tp / (peak * forward_fraction)
    comm = 2 * ring_all_reduce_seconds(element_bytes * n * h, tp, link_bandwidths(hw)[0], INTRA_NODE_LATENCY_SECONDS)
    logits = matmul_seconds(1, h, arch.vocab_size / tp, hw, element_bytes)
    return float(attention + mlp + core + L * comm + logits)


def decode_step_seconds(
    arch: Architecture, hw: Hardware, *, tp: int, batch: np.ndarray | int | float, context_tokens: float, weights_bytes: int,
    kv_bytes_per_token: int, tokens_per_sequence: int = 1, state_bytes_per_sequence: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One decode step for ``batch`` sequences at a mean context: the weights read once (a shared
    attention block once a use: :func:`service.core.params.weight_reads_per_token`; of a mixture's
    routed experts those the step's tokens pick: :func:`service.core.params.unread_expert_share`) and every
    sequence's KV cache (and a recurrent layer's state, read and written back: Gu & Dao 2023 §3.3.2,
    the recurrent mode's step) at the achievable HBM bandwidth, or the step's FLOPs at the matmul rate,
    whichever is longer (Pope et al. 2022 §2-3); plus two all-reduces of ``batch*h`` per layer.
    A sequence's cache read is ``kv_bytes_per_token`` (all layers) times the tokens each layer holds
    (:func:`service.core.memory.cached_tokens`: a sliding-window layer at most its window) over the
    layers, replicated over tensor ranks beyond ``kv_cache_tensor_shards`` (KV heads; an MLA latent
    on every rank). FLOPs per sequence: ``2*W`` (W the active matmul weights: the embedding lookup
    is free) plus the attention core over the context
    (:func:`service.core.compute.attention_score_flops_per_token`). ``tokens_per_sequence`` > 1 is
    a speculative verification pass: the reads once (a mixture's experts as every position picks
    them), the FLOPs and the all-reduced activations for every position. Returns the seconds and whether memory bounds them."""
    scalar = np.ndim(batch) == 0  # one batch size: plain floats (NumPy's overhead outweighs one element)
    b = float(batch) if scalar else np.asarray(batch, dtype=np.float64)
    positions = b * tokens_per_sequence
    replication = tp / min(tp, kv_cache_tensor_shards(arch))
    cache_share, matmul_weights, attention_flops = decode_terms(arch, context_tokens)
    read_per_sequence = kv_bytes_per_token * cache_share
    # a shared attention block (Zamba) is read once a use; a mixture's routed experts only where a token picks them
    weight_reads = weights_bytes * (weight_reads_per_token(arch) - unread_expert_share(arch, positions))
    per_gpu_bytes = weight_reads / tp + b * (read_per_sequence * replication + 2 * state_bytes_per_sequence) / tp
    memory_time = per_gpu_bytes / memory_rate(hw)
    flops = positions * (2.0 * matmul_weights + attention_flops) / tp
    compute_time = flops / (hw.peak_flops_per_s * hw.kernels.matmul)
    comm = 2 * arch.n_layers * _all_reduce_seconds(2 * positions * arch.d_model, tp, link_bandwidths(hw)[0])
    if scalar:
        return np.float64(max(memory_time, compute_time) + comm), np.bool_(memory_time >= compute_time)
    return np.maximum(memory_time, compute_time) + comm, memory_time >= compute_time


def _all_reduce_seconds(size_bytes: np.ndarray | float, tp: int, bandwidth: float) -> np.ndarray | float:
    """:func:`~service.core.hardware.ring_all_reduce_seconds` inside a node; for one size in plain
    floats (the same operations in the same order: NumPy's overhead outweighs one element)."""
    if not isinstance(size_bytes, float):
        return ring_all_reduce_seconds(size_bytes, tp, bandwidth, INTRA_NODE_LATENCY_SECONDS)
    if tp <= 1:
        return 0.0
    n = float(tp)
    hops = 2 * math.log2(n)
    return 2 * (n - 1) / n * size_bytes / bandwidth + hops * INTRA_NODE_LATENCY_SECONDS


@functools.lru_cache(maxsize=1024)  # pure: a serving plan asks it for every batch it tries
def decode_terms(arch: Architecture, context_tokens: float) -> tuple[float, int, float]:
    """What a decode step reads and computes per sequence that depends only on the model and the
    context: the share of a token's KV bytes the cache holds at that context
    (``kv_bytes_per_token`` spans the layers that cache: every layer of a transformer), the active
    matmul weights, and the attention core's FLOPs over the context."""
    share = cached_tokens(arch, context_tokens) / max(1, cached_tokens(arch, 1))
    return share, active_matmul_weights(arch), attention_score_flops_per_token(arch, context_tokens, causal=False)


def token_step_seconds(
    arch: Architecture, hw: Hardware, *, tp: int, batch: np.ndarray | int | float, context_tokens: float, weights_bytes: int,
    kv_bytes_per_token: int, limits: EngineLimits, state_bytes_per_sequence: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The decode time per output token of every sequence in the batch, the engine's per-step
    overhead included: one :func:`decode_step_seconds`, or with speculative decoding the target's
    pass over ``k + 1`` tokens per sequence plus ``k`` draft steps (each with its own overhead),
    over the tokens a step yields (:mod:`service.core.speculative`; EAGLE's and MTP's input projection
    a kernel of its own in each draft step). Also whether memory bounds the target's step."""
    if np.ndim(batch) == 0:  # one batch size: kept, as a plan asks it again for the queueing model
        return _token_step_at(arch, hw, tp, float(batch), context_tokens, weights_bytes, kv_bytes_per_token, limits,
                              state_bytes_per_sequence)  # fmt: skip
    return _token_step(arch, hw, tp, batch, context_tokens, weights_bytes, kv_bytes_per_token, limits, state_bytes_per_sequence)


@functools.lru_cache(maxsize=8192)  # pure; the queueing model asks the replica's batch again
def _token_step_at(
    arch: Architecture, hw: Hardware, tp: int, batch: float, context_tokens: float, weights_bytes: int, kv_bytes_per_token: int,
    limits: EngineLimits, state_bytes_per_sequence: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    return _token_step(arch, hw, tp, batch, context_tokens, weights_bytes, kv_bytes_per_token, limits, state_bytes_per_sequence)


def _token_step(
    arch: Architecture, hw: Hardware, tp: int, batch: np.ndarray | float, context_tokens: float, weights_bytes: int,
    kv_bytes_per_token: int, limits: EngineLimits, state_bytes_per_sequence: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    spec = limits.speculation
    if spec is None:
        step, bound = decode_step_seconds(arch, hw, tp=tp, batch=batch, context_tokens=context_tokens, weights_bytes=weights_bytes,
                                          kv_bytes_per_token=kv_bytes_per_token,
                                          state_bytes_per_sequence=state_bytes_per_sequence)  # fmt: skip
        return step + limits.step_overhead_seconds(arch), bound
    verify, bound = decode_step_seconds(arch, hw, tp=tp, batch=batch, context_tokens=context_tokens, weights_bytes=weights_bytes,
                                        kv_bytes_per_token=kv_bytes_per_token, tokens_per_sequence=spec.tokens + 1,
                                        state_bytes_per_sequence=state_bytes_per_sequence)  # fmt: skip
    share = count_params(spec.draft).total / count_params(arch).total
    draft, _ = decode_step_seconds(spec.draft, hw, tp=tp, batch=batch, context_tokens=context_tokens,
                                   weights_bytes=round(weights_bytes * share),
                                   kv_bytes_per_token=draft_kv_bytes_per_token(spec.draft, arch, kv_bytes_per_token))  # fmt: skip
    draft = draft + drafts.projection_seconds(spec, hw, batch, weights_bytes / count_params(arch).total)  # EAGLE's, MTP's 2h -> h
    step = verify + limits.step_overhead_seconds(arch) + spec.tokens * (draft + limits.step_overhead_seconds(spec.draft))
    return step / spec.tokens_per_step, bound


def replica_step_seconds(
    arch: Architecture, hw: Hardware, r: Replica, *, batch: np.ndarray | int | float, context_tokens: float, limits: EngineLimits
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`token_step_seconds` of replica ``r`` (its degree, weights, KV bytes per token and
    recurrent state) at ``batch``."""
    return token_step_seconds(arch, hw, tp=r.tp, batch=batch, context_tokens=context_tokens, weights_bytes=r.weights_bytes,
                              kv_bytes_per_token=r.kv_cache_bytes_per_token, limits=limits,
                              state_bytes_per_sequence=r.state_bytes_per_sequence)  # fmt: skip


def attention_peak_flops_per_s(hw: Hardware, kv_dtype: Dtype) -> float:
    """The peak a prefill's attention core computes at: with an FP8 KV cache the FP8 peak (vLLM's
    FlashAttention-3 backend quantises the queries and attends in FP8 over an FP8 cache, vLLM docs,
    "Quantized KV Cache"; TensorRT-LLM's FP8 context FMHA), else the 16-bit peak, whatever the
    weights' format (FlashAttention-2/3 attend in BF16 or FP16); a GPU without FP8 tensor cores
    attends at its 16-bit peak either way."""
    if kv_dtype is Dtype.FP8:
        return hw.fp8_peak_flops_per_s or hw.peak_flops_per_s
    return hw.bf16_peak_flops_per_s or hw.peak_flops_per_s


def prompt_prefill_seconds(
    arch: Architecture, hw: Hardware, *, tp: int, prompt_tokens: int, limits: EngineLimits,
    attention_peak: float | None = None, kv_bytes_per_token: int = 0, fp8: bool = False, cached: int | None = None,
) -> float:  # fmt: skip
    """A prompt's prefill less its cached prefix's (:mod:`service.core.speculative`: causal
    attention makes the rest's cost the difference), the attention core at ``attention_peak`` over
    prompts spread by ``limits.prompt_length_cv`` (each hitting the cache at the mean rate); a
    prefix kept off the GPUs (``limits.prefix_read_bytes_per_s``) is read in first
    (:func:`prefix_read_seconds`, the node's ``gpus_per_node / tp`` replicas reading at once).
    With a drafter (``limits.speculation``) the drafter prefills the prompt too, after the target
    and on the same GPUs, before the first token: vLLM's spec-decode worker runs the scorer then the
    proposer on a prefill "so that the KV cache is consistent between the two" (V0
    ``spec_decode/spec_decode_worker.py``, ``_run_no_spec``), and V1's model runner feeds the
    drafter every scheduled token of the step with the target's hidden states
    (``v1/worker/gpu_model_runner.py``, ``propose_draft_token_ids``); EAGLE's and MTP's one layer
    prefill as a one-layer model after their input projection
    (:func:`service.core.speculative.projection_seconds`). ``cached`` (None:
    ``limits.prefix_cache_hit_rate``'s) the prefix tokens left out; ``fp8``: the routed experts' GEMMs at FP8's grouped-GEMM tile cost."""
    if cached is None:
        cached = cached_prefix_tokens(prompt_tokens, limits.prefix_cache_hit_rate)
    given = {"tp": tp, "attention_peak_flops_per_s": attention_peak, "length_cv": limits.prompt_length_cv, "fp8": fp8}
    spec = limits.speculation
    models = [arch] if spec is None else [arch, spec.draft]

    def prompt(tokens: int) -> float:  # the drafter's input projection beside its layers
        return sum(prefill_seconds(m, hw, prompt_tokens=tokens, **given) for m in models) + float(
            drafts.projection_seconds(spec, hw, tokens) if tokens else 0.0
        )

    if not cached:
        return prompt(prompt_tokens)
    read = prefix_read_seconds(cached, kv_bytes_per_token, limits.prefix_read_bytes_per_s, max(1, hw.gpus_per_node // tp))
    return prompt(prompt_tokens) - prompt(cached) + read


def prefix_read_seconds(
    cached_tokens: int, kv_bytes_per_token: int, read_bytes_per_s: float | None, readers_per_node: int
) -> float:  # fmt: skip
    """Reading one prompt's cached prefix into its GPUs from storage outside them: ``cached_tokens``
    of ``kv_bytes_per_token`` (every layer's) at its share of the node's read rate
    ``read_bytes_per_s``, the node's ``readers_per_node`` replicas (or expert-parallel GPUs) reading
    at once, none overlapped with compute (no prefetch modelled). DeepSeek keeps its prefix cache on
    3FS, read over one 400 Gbps NIC a node at up to 40 GiB/s (deepseek-ai/3FS README, "KVCache";
    open-infra-index day 6); 0 when the prefix stays in GPU memory (None), as vLLM's automatic
    prefix caching and SGLang's RadixAttention keep it."""
    if not cached_tokens or read_bytes_per_s is None:
        return 0.0
    return cached_tokens * kv_bytes_per_token * readers_per_node / read_bytes_per_s


@functools.lru_cache(maxsize=4096)  # pure: the same model, GPU and request shape at another load
def replica(
    arch: Architecture, hw: Hardware, *, tp: int, weights: Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    batch: int | None = None, max_time_per_output_token_seconds: float | None = None, utilization: float = GPU_MEMORY_UTILIZATION,
    reserve_bytes: int = RUNTIME_RESERVE_BYTES, limits: EngineLimits = DEFAULT_LIMITS,
) -> Replica:  # fmt: skip
    """A replica of ``tp`` GPUs at ``batch`` sequences (default: the largest the KV cache holds,
    at most ``limits.max_num_seqs``, lowered to meet ``max_time_per_output_token_seconds``);
    ``max_batch`` 0 means the weights leave no room for one sequence. With
    ``limits.kv_fraction_of_free`` the KV cache is that fraction of ``tp * (memory - reserve) -
    weights`` and ``utilization`` does not apply; every decode step pays
    ``limits.step_overhead_seconds(arch)`` (by default vLLM's)."""
    usable, per_token, state, per_sequence, max_batch, prefill, fresh = _replica_shape(
        arch, hw, tp, weights, kv_dtype, prompt_tokens, output_tokens, utilization, reserve_bytes, limits
    )
    cached = cached_prefix_tokens(prompt_tokens, limits.prefix_cache_hit_rate)
    context = prompt_tokens + output_tokens / 2
    if batch is None:
        batch = max(1, min(max_batch, limits.max_num_seqs or max_batch))
        if max_time_per_output_token_seconds is not None and max_batch > 0:
            sizes = np.arange(1, batch + 1)
            steps, _ = token_step_seconds(arch, hw, tp=tp, batch=sizes, context_tokens=context, weights_bytes=weights.total_bytes,
                                          kv_bytes_per_token=per_token, limits=limits, state_bytes_per_sequence=state)  # fmt: skip
            tpot = steps + sizes * prefill / output_tokens
            ok = np.flatnonzero(tpot <= max_time_per_output_token_seconds)
            batch = int(sizes[ok[-1]]) if len(ok) else 1
    step, memory_bound = token_step_seconds(arch, hw, tp=tp, batch=batch, context_tokens=context, weights_bytes=weights.total_bytes,
                                            kv_bytes_per_token=per_token, limits=limits, state_bytes_per_sequence=state)  # fmt: skip
    step_s = float(step)
    tpot = step_s + batch * prefill / output_tokens
    return Replica(
        tp=tp, usable_memory_bytes=usable, weights_bytes=weights.total_bytes, kv_cache_bytes_per_token=per_token,
        kv_cache_bytes_per_sequence=per_sequence, max_batch=int(max_batch), batch=int(batch), prefill_seconds=prefill,
        decode_step_seconds=step_s, decode_bound="memory" if bool(memory_bound) else "compute",
        time_to_first_token_seconds=prefill + step_s, time_per_output_token_seconds=tpot,
        output_tokens_per_second_per_user=1 / tpot, output_tokens_per_second=batch / tpot, cached_prompt_tokens=cached,
        state_bytes_per_sequence=state, fresh_prefill_seconds=fresh,
    )  # fmt: skip


@functools.lru_cache(maxsize=1024)  # pure: a replica at every batch of the same shape asks it again
def _replica_shape(
    arch: Architecture, hw: Hardware, tp: int, weights: Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    utilization: float, reserve_bytes: int, limits: EngineLimits,
) -> tuple[int, int, int, int, int, float, float | None]:  # fmt: skip
    """What :func:`replica` is at any batch: usable memory, KV-cache bytes per token and per
    sequence (a drafter's cache beside the target's), recurrent state per sequence, the most
    sequences the cache holds beside the weights (a drafter's too:
    :func:`service.core.speculative.draft_memory_share`), the prompt's prefill, and with a cache hit
    the new tokens' prefill on their own."""
    check_tensor_parallel(arch, tp)
    spec, seq_len = limits.speculation, prompt_tokens + output_tokens  # a drafter's weights and KV cache sit beside
    held = weights.total_bytes + (round(weights.total_bytes * drafts.draft_memory_share(spec, arch, tp)) if spec else 0)
    if limits.kv_fraction_of_free is not None:
        usable = usable_memory_bytes(hw.memory_bytes, tp, utilization=1.0, reserve_bytes=reserve_bytes)
        free = math.floor(limits.kv_fraction_of_free * (usable - held))
    else:
        usable = usable_memory_bytes(hw.memory_bytes, tp, utilization=utilization, reserve_bytes=reserve_bytes)
        free = usable - held
    per_token = kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=kv_dtype)
    state_dtype = recurrent_state_dtype(weights.format)  # recurrent layers' state in the model's dtype, as the memory counts it
    state = state_cache_bytes_per_sequence(arch, state_dtype)
    per_sequence = replica_kv_cache_bytes(arch, tp=tp, seq_len=seq_len, kv_dtype=kv_dtype, state_dtype=state_dtype)
    per_sequence += replica_kv_cache_bytes(spec.draft, tp=tp, seq_len=seq_len, kv_dtype=kv_dtype) if spec else 0
    max_batch = max(0, free // per_sequence) if per_sequence else 0
    attention_peak = attention_peak_flops_per_s(hw, kv_dtype)
    read_per_token = per_token + (draft_kv_bytes_per_token(spec.draft, arch, per_token) if spec else 0)  # a prefix's both caches
    given = {"tp": tp, "limits": limits, "attention_peak": attention_peak, "fp8": fp8_matmuls(hw, weights.format)}
    prefill = prompt_prefill_seconds(arch, hw, prompt_tokens=prompt_tokens, kv_bytes_per_token=read_per_token, **given)
    cached = cached_prefix_tokens(prompt_tokens, limits.prefix_cache_hit_rate)
    fresh = prompt_prefill_seconds(arch, hw, prompt_tokens=prompt_tokens - cached, cached=0, **given) if cached else None
    return usable, per_token, state, per_sequence, int(max_batch), prefill, fresh


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingCost:
    usd_per_hour: float  # the replica's
    usd_per_million_output_tokens: float
    usd_per_million_input_tokens: float | None  # with a prefix cache: per token not found in it
    usd_per_million_cached_input_tokens: float | None = None


def serving_cost(r: Replica, *, usd_per_gpu_hour: float, prompt_tokens: int, output_tokens: int) -> ServingCost:
    """The replica's hourly price split by where its time goes: per output token the decode
    step's share (``decode / batch``), per input token the prefill's (``prefill / prompt``) —
    together the whole replica-time of a request. With a prefix cache, a new prompt token pays its
    share of the new tokens' own prefill, a cached one its share of what the new tokens' attention
    over the prefix adds (:mod:`service.core.speculative`)."""
    hourly = usd_per_gpu_hour * r.n_gpus
    per_second = hourly / SECONDS_PER_HOUR
    output = per_second * r.decode_step_seconds / r.batch * 1e6
    if r.cached_prompt_tokens and r.fresh_prefill_seconds is not None:
        # a new token pays its own prefill; a cached one the new tokens' attention over it
        fresh = prompt_tokens - r.cached_prompt_tokens
        inputs = per_second * r.fresh_prefill_seconds / fresh * 1e6
        cached = per_second * max(0.0, r.prefill_seconds - r.fresh_prefill_seconds) / r.cached_prompt_tokens * 1e6
        return ServingCost(usd_per_hour=hourly, usd_per_million_output_tokens=output, usd_per_million_input_tokens=inputs,
                           usd_per_million_cached_input_tokens=cached)  # fmt: skip
    inputs = per_second * r.prefill_seconds / prompt_tokens * 1e6 if prompt_tokens else None
    return ServingCost(usd_per_hour=hourly, usd_per_million_output_tokens=output, usd_per_million_input_tokens=inputs)


def fleet_serving_cost(
    r: Replica, *, replicas: int, usd_per_gpu_hour: float, requests_per_second: float, prompt_tokens: int, output_tokens: int
) -> ServingCost:  # fmt: skip
    """What a fleet of ``replicas`` like ``r`` costs per token at an open-loop load of
    ``requests_per_second``, idle time included: every GPU-hour is paid whether a replica is busy or
    not. Input tokens keep :func:`serving_cost`'s prices (each prompt's own prefill time), output
    tokens carry the rest of the fleet's spend, so tokens served times their prices add up to the
    fleet's hourly price."""
    per_token = serving_cost(r, usd_per_gpu_hour=usd_per_gpu_hour, prompt_tokens=prompt_tokens, output_tokens=output_tokens)
    hourly = usd_per_gpu_hour * r.n_gpus * replicas
    inputs = 0.0
    if per_token.usd_per_million_input_tokens is not None:
        fresh = prompt_tokens - r.cached_prompt_tokens
        inputs = fresh * per_token.usd_per_million_input_tokens + r.cached_prompt_tokens * (
            per_token.usd_per_million_cached_input_tokens or 0.0
        )
    per_request = (
        hourly / SECONDS_PER_HOUR / requests_per_second * 1e6
    )  # a request's dollars, x 1e6 as the prices are per million
    output = max(0.0, per_request - inputs) / output_tokens
    return ServingCost(usd_per_hour=per_token.usd_per_hour, usd_per_million_output_tokens=output,  # the replica's hour
                       usd_per_million_input_tokens=per_token.usd_per_million_input_tokens,
                       usd_per_million_cached_input_tokens=per_token.usd_per_million_cached_input_tokens)  # fmt: skip


def replica_kv_cache_bytes(arch: Architecture, *, tp: int, seq_len: int, kv_dtype: Dtype, state_dtype: Dtype = Dtype.BF16) -> int:
    """One sequence's KV cache over all ``tp`` GPUs of a replica: :func:`kv_cache_bytes` (a
    sliding-window layer keeps at most its window, Mistral 7B §2), times ``tp / min(tp, shards)``
    where K/V heads are replicated over the tensor ranks beyond ``n_kv_heads`` (an MLA latent over
    every rank: DeepSeek-V2 §2.1.2, :func:`kv_cache_tensor_shards`); plus the recurrent layers'
    fixed state per sequence (:func:`~service.core.memory.state_cache_bytes_per_sequence`, split
    over the ranks with the channels and heads, constant in ``seq_len``) in ``state_dtype``, the
    model's (:func:`~service.core.memory.recurrent_state_dtype`), not the KV cache's."""
    shards = min(tp, kv_cache_tensor_shards(arch))
    kv = math.ceil(kv_cache_bytes(arch, seq_len=seq_len, batch_size=1, kv_dtype=kv_dtype) * tp / shards)
    return kv + state_cache_bytes_per_sequence(arch, state_dtype)


def smallest_fitting_tp(
    arch: Architecture, *, memory_bytes: int, gpus_per_node: int, weights_bytes: int, kv_dtype: Dtype, seq_len: int,
    batch_size: int = 1, utilization: float = GPU_MEMORY_UTILIZATION, reserve_bytes: int = RUNTIME_RESERVE_BYTES,
    state_dtype: Dtype = Dtype.BF16,
) -> int | None:  # fmt: skip
    """The smallest valid tensor-parallel degree whose usable memory holds the weights and the KV
    cache of ``batch_size`` sequences of ``seq_len`` tokens (sliding-window layers capped at their
    window, as :func:`replica` counts them); None when no degree inside a node does."""
    for tp in valid_tensor_parallel(arch, gpus_per_node):
        need = (
            weights_bytes
            + replica_kv_cache_bytes(arch, tp=tp, seq_len=seq_len, kv_dtype=kv_dtype, state_dtype=state_dtype) * batch_size
        )
        if memory_fits(need, usable_memory_bytes(memory_bytes, tp, utilization=utilization, reserve_bytes=reserve_bytes)):
            return tp
    return None
