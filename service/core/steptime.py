"""The time of one training step under data, tensor, pipeline, context and expert parallelism.

Every term is a physical cost with its source, computed from the architecture, the layout and
the hardware — no fitted per-model factor:

- **compute**: each matrix multiply on its per-GPU shape at the GPU's achievable matmul
  efficiency, or at its memory roofline when the shape is too thin to be compute-bound
  (Williams et al. 2009, "Roofline"); the attention core (FlashAttention at a kernel efficiency,
  or Megatron's batched matmuls plus a fused softmax) and the memory-bound element-wise kernels
  (norms, residual adds, activation functions, rotary embeddings) at the achievable memory
  bandwidth. Backward costs twice the forward matmuls (Kaplan et al. 2020 §2.1). Small
  ``h/tp`` loses efficiency here by itself: the element-wise bytes grow as ``h``, the matmul
  FLOPs as ``h^2/tp``.
- **recompute**: full repeats the layer's forward; selective the attention core (Korthikanti et al. 2022 §5);
  selective_op (torchtitan's) every op but the saved matmuls and attention (:mod:`service.core.op_checkpoint`).
- **tensor parallelism**: two all-reduces of the ``b*s*h`` activations per layer in the forward
  and two in the backward (Shoeybi et al. 2019 §3), or the same bytes as reduce-scatter +
  all-gather with sequence parallelism (Korthikanti §4.2.2), on the intra-node link, exposed
  (Megatron-LM runs them on the critical path).
- **pipeline**: the bubble of the schedule (:mod:`service.core.pipeline`): ``(p-1)/(v*m)`` of the
  ideal time for 1F1B with ``v`` interleaved chunks and ``m`` micro-batches (Narayanan et al. 2021
  §2.2), less for zero-bubble and DualPipe schedules; the busiest stage is a middle one or the last
  with the output layer; and the point-to-point sends of ``b*s*h/t`` per micro-batch boundary
  (§4.1, scatter/gather), ``v`` times more when interleaved (hidden under compute by DualPipe).
- **data parallelism**: the gradient all-reduce (ZeRO-0), reduce-scatter + parameter all-gather
  (ZeRO-1/2; ZeRO-2 reduces every micro-batch), or ZeRO-3's parameter all-gathers in forward and
  backward for every micro-batch (Rajbhandari et al. 2020 §7: 1.5x the all-reduce volume per
  pass), over the inter-node network; overlapped with the backward pass of the micro-batch
  that produces the gradients and with the forward that needs the parameters, as PyTorch DDP
  buckets (Li et al. 2020 §3.2.3) and FSDP prefetching (Zhao et al. 2023 §3.3) do: only what
  exceeds that window is exposed.
- **context parallelism**: the ring exchange of K and V chunks, ``cp - 1`` steps, overlapped with
  the attention computation (Liu et al. 2023, Ring Attention §3).
- **expert parallelism**: two all-to-alls (dispatch, combine) per MoE layer in the forward and two
  in the backward (Lepikhin et al. 2020, GShard §2.2): a token sent once to each node holding one of
  its experts and fanned out over NVLink (DeepEP; node-limited routing caps the nodes), dispatched in
  FP8 under FP8 training (the ``alltoall`` dispatcher sends every routed copy on its own); exposed,
  unless overlapped with another micro-batch's compute (``ep_comm_overlap``) or hidden by DualPipe's
  paired chunks. The experts' grouped GEMMs (by shape, on the busiest rank's share of the routed
  tokens), the token permutations and the host floor: :mod:`service.core.steptime_moe`.
- **optimizer**: the memory-bound update of the local (ZeRO-sharded) parameters; with offload,
  the host update and the PCIe copies (Ren et al. 2021, ZeRO-Offload §4).

Ring collectives cost ``2(n-1)/n * S / B`` (all-reduce) or ``(n-1)/n * S / B`` (reduce-scatter,
all-gather) plus a latency per hop (Patarasuk & Yuan 2009; Thakur et al. 2005), with ``B`` the
link's achievable bus bandwidth.

The functions take NumPy arrays (or scalars) for the layout, so one call prices a whole search
space (:mod:`service.core.plan`) and the same code prices one configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.core import pipeline
from service.core.architecture import Architecture, Ffn, Position
from service.core.compute import RC_FULL, RC_SELECTIVE, RC_SELECTIVE_OP, attention_score_flops_per_token
from service.core.fp8 import zero3_gather_bytes_per_param
from service.core.hardware import (  # re-exported: the step time's callers import them from here
    INTER_NODE_LATENCY_SECONDS,
    INTRA_NODE_LATENCY_SECONDS,
    Hardware,
    expert_all_to_all_seconds,
    link_bandwidths,
    matmul_seconds,
    memory_rate,
    ring_all_reduce_seconds,
    ring_gather_seconds,
)
from service.core.hardware import all_to_all_seconds as all_to_all_seconds
from service.core.memory import fp8_copy_params, zero3_gathered
from service.core.op_checkpoint import recomputed_matmul_seconds
from service.core.params import attention_matmul_weights_per_layer, mlp_linear_shapes
from service.core.steptime_moe import ExpertCosts, MoeDispatcher, expert_costs, host_wait_seconds
from service.core.steptime_recurrent import mean_layer_matmuls, scan_seconds
from service.core.steptime_types import RECOMPUTE_CODES as RECOMPUTE_CODES  # re-exported, as the types below
from service.core.steptime_types import Layout, StepTime, Workload

# Communication hidden under compute is not free: NCCL runs one thread block per channel on the
# SMs the matmuls use, and its copies take HBM bandwidth (NCCL docs, NCCL_MIN/MAX_NCHANNELS: up
# to 16-32 channels; Rashidi et al. 2021 / Jangda et al. 2022 report 10-20 % slowdowns of
# overlapped GEMMs). An overlapped collective therefore costs this fraction of its own time.
OVERLAP_INTERFERENCE = 0.15
# Host side of ZeRO-Offload: the CPU Adam update streams the states through host memory, ~25 GB/s
# per GPU on a dual-socket 8-GPU server; gradients and parameters cross PCIe Gen4 x16 at ~25 GB/s
# achieved (Ren et al. 2021, ZeRO-Offload §4 and §6).
HOST_MEMORY_BANDWIDTH_PER_GPU = 25e9
PCIE_BANDWIDTH = 25e9

# Megatron-Core DistributedDataParallel's smallest gradient bucket, 40M parameters
# (megatron/core/distributed/distributed_data_parallel.py, bucket_size's default floor)
DDP_BUCKET_PARAMS = 40e6
# PyTorch eager, one kernel per op (bf16 activations), HBM bytes per element of the forward, read from
# the modelling code: an RMSNorm as x.float(), pow(2).mean(-1), rsqrt, x * r, .type_as(x), * weight (torchtitan's
# and transformers' Llama RMSNorm): 2+4, 4+4, 4, 4+4, 4+2, 2+2 = 36 (fused: read 2, write 2); rotary as
# view_as_complex(x.float()) * freqs, view_as_real, type_as: 2+4, 4+4+4, 4+2 = 24 (fused: 4); SwiGLU as
# silu(gate) * up: 2+2, 4+2 = 10 per d_ff element (fused: 6); GELU as one torch kernel: 4 (as fused)
EAGER_NORM_BYTES = 36
EAGER_ROTARY_BYTES = 24
EAGER_SWIGLU_BYTES = 10
EAGER_GELU_BYTES = 4
FP8_DISPATCH_BYTES = 1 + 4 / 128  # an FP8 token with one fp32 scale per 128 channels (DeepSeek-V3 §3.3.2; DeepEP)


def _overlapped(comm: Any, window: Any) -> Any:
    """What ``comm`` adds to the step when it runs beside ``window`` seconds of compute: the part
    beyond the window, plus the interference of the hidden part (:data:`OVERLAP_INTERFERENCE`)."""
    return np.maximum(0.0, comm - window) + OVERLAP_INTERFERENCE * np.minimum(comm, window)


def group_link(hw: Hardware, group_span: Any) -> tuple[Any, Any]:
    """Achievable bandwidth and hop latency for a group spanning ``group_span`` consecutive GPUs:
    NVLink-class inside a node, the scale-out network beyond it. Ranks are laid out as
    Megatron-LM orders them, tensor-parallel innermost, then context, expert/data, and pipeline
    outermost (Megatron-Core ``parallel_state``, order "tp-cp-ep-dp-pp"): a tp group spans ``tp``
    GPUs, a cp group ``tp*cp``, an ep group ``tp*cp*ep``, a dp group ``tp*cp*dp``, and
    neighbouring pipeline stages the whole job."""
    inside = group_span <= hw.gpus_per_node
    nvlink, network = link_bandwidths(hw)
    bandwidth = np.where(inside, nvlink, network)
    latency = np.where(inside, INTRA_NODE_LATENCY_SECONDS, INTER_NODE_LATENCY_SECONDS)
    return bandwidth, latency


@dataclass(frozen=True, slots=True)
class LayoutSizes:
    """One call's layouts as arrays: the parallel sizes (``t`` tensor, ``p`` pipeline, ``c`` context,
    ``ep`` expert, ``d`` data), the micro-batch ``b``, the chunks per stage ``v``, the recompute codes,
    sequence parallelism and ZeRO stages, and what follows from them for one GPU."""

    t: Any
    p: Any
    c: Any
    ep: Any
    b: Any
    v: Any
    d: Any
    rc: Any
    sp: Any
    zero: Any
    tokens: Any  # tokens of one micro-batch on one GPU
    kv_ranks: Any  # K/V heads are replicated beyond n_kv_heads ranks
    n_gpus: Any
    etp: Any  # the experts' tensor-parallel size: tp, or expert_tensor_parallel (1: parallel folding)
    imbalance: Any  # the busiest expert-parallel rank's tokens over the mean
    code: Any  # the pipeline schedule (service.core.pipeline.SCHEDULES)
    dual: Any  # the schedule hides the communication under paired chunks (DualPipe)


def layout_sizes(arch: Architecture, work: Workload, lay: Layout) -> LayoutSizes:
    """The layouts of ``lay`` as float arrays, and the per-GPU sizes the terms share."""
    s = work.seq_len
    t = np.asarray(lay.tp, dtype=np.float64)
    p = np.asarray(lay.pp, dtype=np.float64)
    c = np.asarray(lay.cp, dtype=np.float64)
    ep = np.asarray(lay.ep, dtype=np.float64)
    b = np.asarray(lay.micro_batch_size, dtype=np.float64)
    v = np.asarray(lay.virtual_stages, dtype=np.float64)
    d = np.asarray(lay.dp, dtype=np.float64)
    etp = t if work.expert_tensor_parallel is None else np.asarray(work.expert_tensor_parallel, dtype=np.float64)
    imbalance = (
        np.where(ep > 1, work.moe_load_imbalance, 1.0) if arch.is_moe else 1.0
    )  # one rank running every expert waits for no other
    code = (
        np.where(v > 1, pipeline.INTERLEAVED, pipeline.ONE_F_ONE_B)
        if lay.pipeline_schedule is None
        else np.asarray(lay.pipeline_schedule)
    )
    return LayoutSizes(
        t=t, p=p, c=c, ep=ep, b=b, v=v, d=d, rc=np.asarray(lay.recompute), sp=np.asarray(lay.sequence_parallel, dtype=bool),
        zero=np.asarray(lay.zero_stage), tokens=b * s / c, kv_ranks=np.minimum(t, arch.n_kv_heads), n_gpus=t * p * d * c,
        etp=etp, imbalance=imbalance, code=code, dual=pipeline.hides_communication(code),
    )  # fmt: skip


def _layer_matmuls(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes, experts: ExpertCosts) -> tuple[Any, Any]:
    """One layer's forward matmuls for one micro-batch on one GPU (attention's projections, and the
    MLP's: ``experts``, :func:`service.core.steptime_moe.expert_costs`), and the elements their FP8
    casts quantise."""
    e, fp8, h, a, q, kv = work.element_bytes, work.fp8, arch.d_model, arch.n_heads, arch.q_dim, arch.kv_dim
    t, tokens, kv_ranks = z.t, z.tokens, z.kv_ranks
    if arch.is_mla:
        # multi-head latent attention: its down- and up-projections (DeepSeek-V2 §2.1), as one h-deep
        # matmul of the same FLOPs; the output projection reads a*v_head_dim
        v_width = a * (arch.v_head_dim or 0)
        qkv_width = (attention_matmul_weights_per_layer(arch) - v_width * h) / (h * t)
        qkv = matmul_seconds(tokens, h, qkv_width, hw, e, fp8=fp8)
        out = matmul_seconds(tokens, v_width / t, h, hw, e, fp8=fp8)
        cast_widths = h + qkv_width + v_width / t + h  # each FP8 GEMM's input (forward) and output gradient (backward)
    else:
        q_proj, h_in = arch.q_proj_width, arch.attention_input_width  # Q (and Qwen3-Next's gate); 2h into Zamba's
        qkv, out = _attention_projections(arch, hw, work, z)
        cast_widths = h_in + q_proj / t + 2 * kv / kv_ranks + q / t + h
    attention_casts = tokens * cast_widths
    if arch.recurrent_layers:  # the mean of a model's attention and recurrent layers
        return mean_layer_matmuls(arch, hw, tokens=tokens, tp=t, element_bytes=e, fp8=fp8, attention=(qkv + out, attention_casts),
                                  mlp=(experts.forward, experts.cast_tokens))  # fmt: skip
    return qkv + out + experts.forward, attention_casts + experts.cast_tokens


def _attention_projections(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes) -> tuple[Any, Any]:
    """One layer's fused Q, K, V projection (Q column-split, K and V over at most ``n_kv_heads``
    ranks) and its output projection (row-split) on one GPU for one micro-batch (Shoeybi et al.
    2019 §3); not multi-head latent attention's."""
    e, fp8, t, tokens = work.element_bytes, work.fp8, z.t, z.tokens
    qkv = matmul_seconds(tokens, arch.attention_input_width, arch.q_proj_width / t + 2 * arch.kv_dim / z.kv_ranks, hw, e, fp8=fp8)
    out = matmul_seconds(tokens, arch.q_dim / t, arch.d_model, hw, e, fp8=fp8)
    return qkv, out


def _experts(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes) -> ExpertCosts:
    """The layer's MLP on this GPU: the routed experts (each of this rank's ``n_experts/ep`` on its
    share of the routed tokens, the busiest rank's share times the load imbalance; under parallel
    folding, ``expert_tensor_parallel`` 1, whole experts and each rank routing its own
    sequence-parallel share, else the experts split over the tensor ranks), the shared experts and
    the router (:mod:`service.core.steptime_moe`); a dense model's MLP is one expert."""
    routed = np.where(z.sp, z.tokens / z.t, z.tokens)  # with sequence parallelism each tensor rank routes its own share
    return expert_costs(arch, hw, tokens=z.tokens, routed=routed, tp=z.t, ep=z.ep, etp=z.etp, imbalance=z.imbalance,
                        element_bytes=work.element_bytes, fp8=work.fp8, dispatcher=work.moe_dispatcher)  # fmt: skip


def _attention_core(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes) -> tuple[Any, Any, Any]:
    """One layer's attention core for one micro-batch on one GPU: (forward, backward, softmax)."""
    e, s, t, c = work.element_bytes, work.seq_len, z.t, z.c
    heads = z.b * arch.n_heads / t  # attention heads on this GPU, over the micro-batch
    if work.flash_attention:
        # causal FlashAttention skips the masked half: 4*s*(s/2)*d_head FLOPs per head and query
        # block (QK^T and PV) forward, 2.5 times that backward (it recomputes QK^T; Dao 2023 §3.1),
        # at the implementation's measured rate for this GPU, sequence chunk and head dimension
        # (service.core.efficiency; a sliding-window layer over at most its window; MLA over its own
        # head widths)
        attention_flops = z.tokens * attention_score_flops_per_token(arch, s, causal=True) / arch.n_layers / t
        fwd_fraction, bwd_fraction = hw.kernels.attention_fractions(s / c, arch.d_head)
        attention = attention_flops / (hw.peak_flops_per_s * fwd_fraction)
        attention_backward = 2.5 * attention_flops / (hw.peak_flops_per_s * bwd_fraction)
        softmax = 0.0
    else:
        # Megatron-LM: QK^T and softmax(.)V as batched matmuls over the full s x s square, and a
        # fused scale-mask-softmax (+ dropout) that reads and writes every score (Shoeybi et al.
        # 2019; Korthikanti et al. 2022 §4.1)
        attention = heads * (matmul_seconds(s, arch.d_head, s, hw, e) + matmul_seconds(s, s, arch.d_head, hw, e))
        per_score = 2 * e + ((2 * e + 1) if work.dropout else 0)
        softmax = heads * s * s * per_score / memory_rate(hw)
        attention_backward = 2 * (attention + softmax)
    return attention, attention_backward, softmax


def _elementwise_seconds(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes) -> Any:
    """One layer's memory-bound element-wise kernels for one micro-batch on one GPU, forward: norms,
    residual adds (and dropout), the activation function, rotary embeddings."""
    e, h, f, t, tokens = work.element_bytes, arch.d_model, arch.d_ff, z.t, z.tokens
    mask = 1 if work.dropout else 0
    # HBM bytes per element: one fused kernel per op (Megatron/Transformer Engine, torch.compile), or
    # PyTorch eager's separate kernels (EAGER_*: each intermediate written and read back)
    norm_bytes = EAGER_NORM_BYTES if not work.fused_kernels else 2 * e
    replicated = tokens * h * (arch.norms_per_layer * norm_bytes + 2 * (3 * e + mask))  # norms; residual adds (+ dropout)
    replicated = np.where(z.sp, replicated / t, replicated)
    act_bytes = (
        (EAGER_SWIGLU_BYTES if arch.ffn is Ffn.SWIGLU else EAGER_GELU_BYTES)
        if not work.fused_kernels
        else (3 if arch.ffn is Ffn.SWIGLU else 2) * e
    )
    activation = act_bytes * tokens * arch.experts_per_token * f / t  # GELU in/out; SiLU(gate)*up
    rotary_bytes = EAGER_ROTARY_BYTES if not work.fused_kernels else 2 * e
    rotary = rotary_bytes * tokens * (arch.q_dim + arch.kv_dim) / t if arch.position is Position.ROTARY else 0.0
    if arch.recurrent_layers:  # only the layers with an MLP, with attention
        activation, rotary = activation * arch.mlp_layers / arch.n_layers, rotary * arch.attention_layers / arch.n_layers
    return (replicated + activation + rotary) / memory_rate(hw)


@dataclass(frozen=True, slots=True)
class LayerTimes:
    """Seconds of one layer's compute for one micro-batch on one GPU."""

    matmuls: Any  # the forward matmuls
    attention: Any  # the attention core, forward
    attention_backward: Any
    forward: Any
    backward: Any
    recompute: Any


def layer_times(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes) -> LayerTimes:
    """One layer's forward, backward and recomputed forward for one micro-batch on one GPU."""
    experts = _experts(arch, hw, work, z)
    matmuls, cast_tokens = _layer_matmuls(arch, hw, work, z, experts)
    # the MLP's own backward (grouped GEMMs reduce over other widths) and its memory-bound routing,
    # over the layers that have an MLP
    mlp_share = arch.mlp_layers / arch.n_layers if arch.recurrent_layers else 1.0
    mlp_backward = mlp_share * (experts.backward - 2 * experts.forward)
    routing = mlp_share * experts.memory
    # FP8: each GEMM input quantised in the forward, each output gradient in the backward (service.core.fp8)
    fp8_casts = work.fp8_cast_bytes_per_element * cast_tokens / memory_rate(hw) if work.fp8 else 0.0
    attention, attention_backward, softmax = _attention_core(arch, hw, work, z)
    if arch.recurrent_layers:  # the scans, as the attention core a mixer runs
        scan, scan_backward = scan_seconds(arch, hw, tokens=z.tokens, tp=z.t, element_bytes=work.element_bytes)
        attention, attention_backward = attention + scan, attention_backward + scan_backward
    elementwise = _elementwise_seconds(arch, hw, work, z) + softmax
    forward = matmuls + attention + elementwise + routing + fp8_casts / 2  # the inputs' casts
    # dgrad + wgrad per matmul; element-wise backward reads and writes twice; the attention core's own;
    # the permutations' gradients; the output gradients' casts
    backward = 2 * (matmuls + elementwise - softmax) + mlp_backward + attention_backward + routing + fp8_casts / 2
    rc = z.rc  # selective_op: every op but the saved matmuls and the attention core (service.core.op_checkpoint)
    op = forward - attention - matmuls + recomputed_matmul_seconds(arch, hw, tokens=z.tokens, tp=z.t, element_bytes=work.element_bytes,
                                                                   fp8=work.fp8) if np.any(rc == RC_SELECTIVE_OP) else 0.0  # fmt: skip
    recompute_layer = np.select(
        [rc == RC_FULL, rc == RC_SELECTIVE, rc == RC_SELECTIVE_OP], [forward, attention + softmax, op], 0.0
    )
    return LayerTimes(matmuls=matmuls, attention=attention, attention_backward=attention_backward, forward=forward,
                       backward=backward, recompute=recompute_layer)  # fmt: skip


def tp_comm_layer_seconds(
    arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes, lt: LayerTimes, weight_gradients: bool = True
) -> Any:
    """One layer's exposed tensor-parallel all-reduces for one micro-batch; a frozen base (no
    ``weight_gradients``) leaves the backward collectives of the row-parallel layers only their
    input-gradient GEMMs to hide under, and those of QKV and the up projection none (below)."""
    t, rc = z.t, z.rc
    # tensor parallelism: 2 all-reduces forward, 2 backward, 2 more when the forward is repeated
    intra_bw, intra_lat = group_link(hw, t)
    tp_one = ring_all_reduce_seconds(work.element_bytes * z.tokens * arch.d_model, t, intra_bw, intra_lat)
    tp_layer = tp_one * (
        4 + np.select([rc == RC_FULL, rc == RC_SELECTIVE_OP], [2, np.where(z.sp, 1, 2)], 0)
    )  # selective_op: all-gathers
    if not work.tp_comm_overlap:
        return tp_layer
    # Megatron-Core's --tp-comm-overlap (Transformer Engine userbuffers) and PyTorch's async TP:
    # each all-gather or reduce-scatter splits into chunks pipelined with the GEMM that consumes or
    # produces it (Wang et al. 2023, "Overlap Communication with Dependent Computation via
    # Decomposition" §3): the all-gather before the QKV and the up projections with them, the
    # reduce-scatter after the output and the down projections with them, forward and recomputed;
    # backward each with its linear's input- and weight-gradient GEMMs. A collective longer than its
    # GEMM is exposed by the difference (thin projections at a wide tensor-parallel group).
    passes = 2 if weight_gradients else 1  # backward GEMMs per forward GEMM: input and weight gradients
    windows = _tp_windows(arch, hw, work, z)
    if windows is None:  # mixtures, latent attention, recurrent layers: the layer's matmuls as one window
        return _overlapped(tp_layer, lt.matmuls * (1 + passes + np.where(rc == RC_FULL, 1, 0)))
    qkv, out, up, down = windows
    half = tp_one / 2  # with sequence parallelism: an all-gather before QKV and up, a reduce-scatter after out and down
    forward = np.where(
        z.sp, sum(_overlapped(half, w) for w in windows), _overlapped(tp_one, out) + _overlapped(tp_one, down)
    )  # else: all-reduces after out and down
    backward = np.where(z.sp, sum(_overlapped(half, passes * w) for w in windows),
                        _overlapped(tp_one, passes * qkv) + _overlapped(tp_one, passes * up))  # fmt: skip
    if not weight_gradients:
        # a frozen base: Megatron-Core overlaps the input-gradient collective of QKV and of the up projection
        # with that layer's weight-gradient GEMM (tp_comm_bulk_dgrad; without sequence parallelism the async
        # all-reduce beside it), which a frozen weight does not run: exposed, unless tp_comm_overlap_rs_dgrad
        # pipelines the reduce-scatter with the input-gradient GEMM itself (ModelParallelConfig, default off)
        pipelined = z.sp & work.tp_comm_overlap_rs_dgrad
        column = np.where(z.sp, half, tp_one)
        backward = np.where(
            pipelined, backward, np.where(z.sp, _overlapped(half, out) + _overlapped(half, down), 0.0) + 2 * column
        )
    extra = tp_one * np.where(
        rc == RC_SELECTIVE_OP, np.where(z.sp, 1, 2), 0
    )  # selective_op's all-gathers for its recomputed matmuls
    return forward + backward + np.where(rc == RC_FULL, forward, 0.0) + _overlapped(extra, lt.matmuls)


def _tp_windows(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes) -> tuple[Any, Any, Any, Any] | None:
    """The forward GEMMs a dense attention layer's four tensor-parallel collectives pair with, on
    one GPU for one micro-batch: the fused QKV projection, the output projection, the MLP's up (and
    gate) and its down projection (Shoeybi et al. 2019 §3 splits); None for the layers whose matmuls
    are not these four (mixtures of experts, multi-head latent attention, recurrent layers)."""
    if arch.is_moe or arch.is_mla or arch.recurrent_layers:
        return None
    e, fp8, h, t, tokens = work.element_bytes, work.fp8, arch.d_model, z.t, z.tokens
    qkv, out = _attention_projections(arch, hw, work, z)
    (up_count, _, width), _ = mlp_linear_shapes(arch, arch.d_ff)
    up = matmul_seconds(tokens, h, up_count * width / t, hw, e, fp8=fp8)
    down = matmul_seconds(tokens, width / t, h, hw, e, fp8=fp8)
    return qkv, out, up, down


def cp_comm_layer_seconds(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes, lt: LayerTimes) -> Any:
    """One layer's exposed context-parallel ring exchange for one micro-batch."""
    t, c, attention = z.t, z.c, lt.attention
    # context parallelism: cp-1 ring steps of this rank's K and V chunk, under the attention
    cp_bw, cp_lat = group_link(hw, t * c)
    kv_chunk = 2 * work.element_bytes * z.tokens * arch.kv_dim / z.kv_ranks
    cp_pass = (c - 1) * (kv_chunk / cp_bw + cp_lat)
    cp_layer = _overlapped(cp_pass, attention) + _overlapped(2 * cp_pass, 2 * attention)
    return cp_layer + np.where(z.rc == RC_FULL, _overlapped(cp_pass, attention), 0.0)


def ep_comm_layer_seconds(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes, lt: LayerTimes) -> Any:
    """One layer's exposed expert-parallel all-to-alls for one micro-batch (0 for a dense model)."""
    e, t = work.element_bytes, z.t
    # expert parallelism: dispatch and combine of the routed tokens (expert_all_to_all_seconds)
    if arch.is_moe:
        dispatched = np.where(z.sp, z.tokens / t, z.tokens)  # with sequence parallelism each tensor rank routes its own share
        inner = t * z.c if work.expert_tensor_parallel is None else z.etp  # folded: the expert group's ranks are contiguous
        once = work.moe_dispatcher != MoeDispatcher.ALLTOALL  # DeepEP / HybridEP: a token once per node
        per_byte = expert_all_to_all_seconds(dispatched, arch.experts_per_token, arch.d_model, inner, z.ep, hw,
                                             work.moe_max_nodes_per_token, once_per_node=once)  # fmt: skip
        dispatch_bytes = (
            FP8_DISPATCH_BYTES if work.fp8 else e
        )  # FP8 training dispatches in FP8, combines in BF16 (DeepSeek-V3 §3.3)
        forward_bytes = dispatch_bytes + e
        ep_layer = z.imbalance * per_byte * (forward_bytes + 2 * e + np.where(z.rc == RC_FULL, forward_bytes, 0))
        if work.ep_comm_overlap:
            # Megatron-Core's batch-level overlap (--overlap-moe-expert-parallel-comm, v0.14): one
            # micro-batch's all-to-alls run under another's forward and backward compute
            ep_layer = _overlapped(ep_layer, lt.matmuls * 3 + lt.attention + lt.attention_backward)
    else:
        ep_layer = 0.0
    if arch.is_moe and not work.ep_comm_overlap:  # DualPipe pairs a chunk's forward with another's backward: the all-to-alls hide
        ep_layer = np.where(z.dual, _overlapped(ep_layer, lt.forward + lt.backward), ep_layer)
    return ep_layer


def busiest_stage(arch: Architecture, hw: Hardware, work: Workload, z: LayoutSizes, per_layer: Any) -> tuple[Any, Any]:
    """The busiest stage's layers and output-layer seconds (0 unless it is the last stage), for
    one micro-batch whose layers take ``per_layer`` seconds each."""
    e, h, vocab, t, p, tokens = work.element_bytes, arch.d_model, arch.vocab_size, z.t, z.p, z.tokens
    # --- the busiest stage: a middle stage of v chunks of ceil(L/(p*v)) layers, or the last with the
    # output layer (the first and last hold a layer fewer where the stages have room) ---
    first_layers, middle_layers, last_layers = pipeline.stage_layers(arch.n_layers, p, z.v)
    middle_layers = np.where(p > 2, middle_layers, 0)
    logits = 3 * matmul_seconds(tokens, h, vocab / t, hw, e) + 3 * 4 * tokens * vocab / t / memory_rate(hw)  # fp32 logits
    on_last = last_layers * per_layer + logits >= np.maximum(middle_layers, first_layers) * per_layer
    layers = np.where(on_last, last_layers, np.maximum(middle_layers, first_layers))
    logits = np.where(on_last, logits, 0.0)
    return layers, logits


def _pipeline_seconds(
    hw: Hardware,
    work: Workload,
    z: LayoutSizes,
    lt: LayerTimes,
    layers: Any,
    logits: Any,
    micro: Any,
    d_model: int,
    weight_grad: Any = None,
) -> tuple[Any, Any, Any]:
    """(micro-batches per step, bubble, exposed point-to-point sends) of the pipeline, with
    ``micro`` the busiest stage's seconds per micro-batch and ``weight_grad`` a layer's
    weight-gradient seconds (None: one more pass of its forward matmuls)."""
    p, v = z.p, z.v
    m = work.global_batch_size / (z.d * z.b)  # micro-batches per step on each pipeline
    # backward of the stage (B) and its weight-gradient half (W: one more pass of the forward matmuls)
    stage_backward = layers * (lt.backward + lt.recompute) + logits * 2 / 3
    stage_weight_grad = layers * (lt.matmuls if weight_grad is None else weight_grad) + logits / 3
    bubble = pipeline.bubble_seconds(z.code, p, v, micro, stage_backward, stage_weight_grad, m)

    # pipeline point-to-point: activations forward, gradients backward, per chunk boundary
    pp_bw, pp_lat = group_link(hw, z.n_gpus)
    send = work.element_bytes * z.tokens * d_model / z.t / pp_bw + pp_lat
    pp_comm = np.where(p > 1, m * 2 * v * send, 0.0)
    pp_comm = np.where(z.dual, _overlapped(pp_comm, m * micro), pp_comm)
    return m, bubble, pp_comm


def dp_groups(arch: Architecture, lay: Layout, z: LayoutSizes) -> tuple[Any, Any, Any, Any]:
    """(dense parameters, routed-expert parameters, the dense data-parallel group, the experts'
    data-parallel group) of one GPU's shard."""
    # data parallelism over the dp*cp ranks holding the same weights
    expert = np.asarray(lay.expert_params_per_gpu, dtype=np.float64)
    dense = np.asarray(lay.params_per_gpu, dtype=np.float64) - expert
    group = z.d * z.c
    expert_group = group * (z.t / z.etp if arch.is_moe else 1) / z.ep  # folded: the experts' data-parallel ranks span tp too
    return dense, expert, group, expert_group


def dp_comm_step_seconds(
    arch: Architecture,
    hw: Hardware,
    work: Workload,
    lay: Layout,
    z: LayoutSizes,
    lt: LayerTimes,
    layers: Any,
    m: Any,
    frozen_gather: Any = None,
) -> Any:
    """The step's exposed data-parallel communication: gradient reductions and ZeRO's parameter
    gathers beside the backward and forward passes, and the edges nothing hides. ``frozen_gather``:
    the seconds of ZeRO-3's gather of weights that get no gradient (a fine-tune's frozen base)."""
    zero = z.zero
    dense, expert, group, expert_group = dp_groups(arch, lay, z)
    dp_bw, dp_lat = group_link(hw, group * z.t)
    forward_mb = layers * lt.forward
    backward_mb = layers * (lt.backward + lt.recompute) if work.overlap_grad_reduce else 0.0

    def over_groups(collective: Any, element_bytes: int) -> Any:
        # dense parameters over the dp*cp ranks, routed experts over the dp*cp/ep that share them (none: no collective)
        return sum(np.where(params > 0, collective(element_bytes * params, ranks, dp_bw, dp_lat), 0.0)
                   for params, ranks in ((dense, group), (expert, expert_group)))  # fmt: skip

    all_reduce = over_groups(ring_all_reduce_seconds, work.gradient_bytes)
    reduce_scatter = over_groups(ring_gather_seconds, work.gradient_bytes)
    # ZeRO-3 under a pipeline reduce-scatters its whole gradients once a step (in FSDP2's reduce dtype,
    # service.core.memory.ZeroSharding)
    gathered = zero3_gathered(zero, z.p)
    reduce_scatter = np.where(gathered, over_groups(ring_gather_seconds, work.gathered_gradient_bytes),
                              reduce_scatter)  # fmt: skip
    # ZeRO-1/2 gather the updated weights; ZeRO-3 each layer's for its matmuls (once a step under a pipeline),
    # under FP8 the matmul weights as FSDP2's all-gather sends them (service.core.fp8.zero3_gather_bytes_per_param)
    fsdp = zero3_gather_bytes_per_param(work.weight_bytes, fp8_copy_params(arch, 1.0), work.zero3_fp8_recipe)
    gather = np.where(zero >= 3, over_groups(ring_gather_seconds, fsdp), over_groups(ring_gather_seconds, work.weight_bytes))
    if frozen_gather is not None:
        gather = np.where(zero >= 3, gather + frozen_gather, gather)

    # ZeRO-3 under a pipeline keeps the stage gathered through the step (service.core.memory.ZeroSharding):
    # one gather and one reduce-scatter a step, as ZeRO-1
    zero = np.where(gathered, 1, zero)
    dp_comm = np.select(
        [zero == 0, zero == 1, zero == 2],
        [
            _overlapped(all_reduce, backward_mb),
            _overlapped(reduce_scatter, backward_mb) + _overlapped(gather, forward_mb),
            m * _overlapped(reduce_scatter, backward_mb) + _overlapped(gather, forward_mb),
        ],
        m * (_overlapped(gather, forward_mb) + _overlapped(gather + reduce_scatter, backward_mb)),
    )
    # the edges nothing hides: the first bucket's gather before the forward and the last bucket's
    # reduction after the backward (DDP buckets of at least 40M parameters, Megatron-Core's floor, the
    # embedding in one piece; FSDP's unit of one layer or the embedding)
    embedding = arch.vocab_size * arch.d_model / z.t
    bucket = np.where(zero >= 3, np.maximum(dense / np.maximum(layers, 1), embedding), np.maximum(DDP_BUCKET_PARAMS, embedding))
    bucket = np.minimum(bucket, dense)
    # (reduced after the backward, every reduction is exposed already: only the first gather is left)
    first_gather = ring_gather_seconds(work.weight_bytes * bucket, group, dp_bw, dp_lat)
    if not work.overlap_grad_reduce:
        return dp_comm + np.where(zero == 0, 0.0, first_gather)
    last_bytes = np.where(gathered, work.gathered_gradient_bytes, work.gradient_bytes) * bucket  # in its stage's dtype
    last_reduction = np.where(zero == 0, ring_all_reduce_seconds(work.gradient_bytes * bucket, group, dp_bw, dp_lat),
                              ring_gather_seconds(last_bytes, group, dp_bw, dp_lat) + first_gather)  # fmt: skip
    return dp_comm + last_reduction


def optimizer_step_seconds(arch: Architecture, hw: Hardware, work: Workload, lay: Layout, z: LayoutSizes) -> Any:
    """The optimizer step on one GPU's (ZeRO-sharded) parameters, on the GPU or, offloaded, on the host."""
    dense, expert, group, expert_group = dp_groups(arch, lay, z)
    # optimizer: read gradients and states, write states and 16-bit weights, on the local shard
    local = np.where(z.zero >= 1, dense / group + expert / expert_group, dense + expert)
    update_bytes = local * (2 * work.optimizer_bytes_per_param + work.gradient_bytes + work.weight_bytes)
    offload = np.asarray(lay.offload_optimizer, dtype=bool)
    return np.where(
        offload,
        update_bytes / HOST_MEMORY_BANDWIDTH_PER_GPU + local * (work.gradient_bytes + work.weight_bytes) / PCIE_BANDWIDTH,
        update_bytes / memory_rate(hw),
    )


def step_time(arch: Architecture, hw: Hardware, work: Workload, lay: Layout) -> StepTime:
    """Seconds of one optimizer step for each layout in ``lay`` (see the module docstring for
    every term and its source). Layout arrays must already be valid (dividing, fitting);
    :mod:`service.core.plan` checks that."""
    z = layout_sizes(arch, work, lay)
    return step_from_layers(arch, hw, work, lay, z, layer_times(arch, hw, work, z))


def step_lower_bound(arch: Architecture, hw: Hardware, work: Workload, lay: Layout) -> Any:
    """A floor under :func:`step_time` per layout: the micro-batches times the busiest stage's
    forward, backward and recomputed forward (every other part of a step is non-negative, and the
    busiest stage's time grows with the per-layer time)."""
    z = layout_sizes(arch, work, lay)
    lt = layer_times(arch, hw, work, z)
    layers, logits = busiest_stage(arch, hw, work, z, lt.forward + lt.backward + lt.recompute)
    return work.global_batch_size / (z.d * z.b) * (layers * (lt.forward + lt.backward + lt.recompute) + logits)


def step_from_layers(arch: Architecture, hw: Hardware, work: Workload, lay: Layout, z: LayoutSizes, lt: LayerTimes,
                      weight_grad: Any = None, frozen_gather: Any = None, paging_seconds: Any = None,
                      host_floor: Any = None, host_floor_share: float = 1.0) -> StepTime:  # fmt: skip
    """:func:`step_time` from one layer's times ``lt`` (a fine-tune's: :mod:`service.core.steptime_finetune`,
    with its weight-gradient seconds, its frozen base's ZeRO-3 gather, its optimizer's paging and the
    host seconds below which an eagerly run adapted layer does not go, ``host_floor``, over the
    ``host_floor_share`` of the layers that are adapted)."""
    tp_layer = tp_comm_layer_seconds(arch, hw, work, z, lt, weight_gradients=weight_grad is None)
    cp_layer = cp_comm_layer_seconds(arch, hw, work, z, lt)
    ep_layer = ep_comm_layer_seconds(arch, hw, work, z, lt)
    per_layer = lt.forward + lt.backward + lt.recompute + tp_layer + cp_layer + ep_layer
    host_layer = host_wait_seconds(arch, hw, z.rc, per_layer)  # a MoE layer no faster than the host issues it
    if host_floor is not None:  # nor an adapted layer run eagerly (the mean layer: over the adapted share)
        host_layer = np.maximum(host_layer, host_floor_share * np.maximum(0.0, host_floor - per_layer))
    per_layer = per_layer + host_layer
    layers, logits = busiest_stage(arch, hw, work, z, per_layer)
    micro = layers * per_layer + logits
    m, bubble, pp_comm = _pipeline_seconds(hw, work, z, lt, layers, logits, micro, arch.d_model, weight_grad)
    dp_comm = dp_comm_step_seconds(arch, hw, work, lay, z, lt, layers, m, frozen_gather)
    optimizer = optimizer_step_seconds(arch, hw, work, lay, z)
    if paging_seconds is not None:  # a paged optimizer's states to the GPU and back, with the update
        optimizer = optimizer + paging_seconds

    compute = m * (layers * (lt.forward + lt.backward) + logits)
    step = m * micro + bubble + pp_comm + dp_comm + optimizer
    return StepTime(compute_seconds=compute, recompute_seconds=m * (layers * lt.recompute), tp_comm_seconds=m * (layers * tp_layer),
                    cp_comm_seconds=m * (layers * cp_layer), ep_comm_seconds=m * (layers * ep_layer), pp_comm_seconds=pp_comm,
                    bubble_seconds=bubble, dp_comm_seconds=dp_comm, optimizer_seconds=optimizer,
                    host_seconds=m * (layers * host_layer), step_seconds=step, microbatches=m)  # fmt: skip
