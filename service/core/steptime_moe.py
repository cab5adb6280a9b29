"""What a mixture-of-experts layer costs in a training step beyond a dense layer's terms
(:mod:`service.core.steptime` adds these to its layer times):

- **grouped GEMMs**: each local expert multiplies its rows (its share of the routed tokens, padded
  to the kernel's row block: DeepGEMM's contiguous layout aligns every expert's segment to its
  block M, ``get_m_alignment_for_contiguous_layout``) by its own weights. A GEMM tile pays a fixed
  cost (filling its pipeline, its epilogue) worth ``K0`` of its reduction loop, so a GEMM reducing
  over ``K`` runs at ``K / (K + K0)`` of its long-``K`` rate: on Hopper ``K0`` is about 190 for
  BF16 (XLA's measured H100 matmul table, M = N = 4096: 464-808 TFLOP/s from K = 256 to 4096)
  and about 720 for FP8 (DeepGEMM's H800 table, M = 4096: 590-1,358 TFLOP/s from K = 512 to
  16,384; grouped 1,099 at K = 2,048 against 1,297 at 7,168) — values and sources in
  ``service/catalog/kernel_efficiency.json``. The sustained matmul efficiency was fitted on dense
  GEMMs reducing over thousands of elements, so an expert GEMM runs at
  ``f(K) / f(`` :data:`REFERENCE_K` ``)`` of it (never faster): narrow experts (Qwen3-30B-A3B's
  768) lose most in the down projection's forward, whose ``K`` is the expert width; the backward
  reduces over the output width (data gradient) and over the expert's rows (weight gradient).
- **permutation**: the routed copies of each token are gathered into expert order before the
  expert GEMMs and scattered back after them, each pass reading and writing every routed row
  (Megatron-Core ``moe_utils.permute`` / ``unpermute``, fused): two passes with DeepEP or HybridEP
  (the flex dispatcher: the rank permutes the rows its dispatch kernel delivers, and back),
  four with the ``alltoall`` dispatcher, which also sorts the received chunks by local expert and
  back (``sort_chunks_by_idxs``) when a rank holds several experts; the backward moves as much.
  The router's scores, kept in FP32 (``--moe-router-dtype fp32``): written, read and written by
  the softmax, read by the top-k, :data:`ROUTER_BYTES_PER_SCORE` per token and expert.
- **host floor**: a layer whose kernels are small does not run faster than the host launches
  them; a dropless layer also waits once per forward on its token counts (the dispatcher copies
  them to the host to size its buffers), so the host cannot run ahead. One MoE layer's forward and
  backward take at least the GPU's catalog ``moe_layer_host_seconds`` per micro-batch (fitted, with
  its rows, in ``kernel_efficiency.json``); a recomputed forward adds a third (the backward issues
  the data- and weight-gradient kernels of each forward one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from service.core.architecture import Architecture, Ffn
from service.core.compute import RC_FULL
from service.core.hardware import Hardware, matmul_seconds, memory_rate


class MoeDispatcher(StrEnum):
    """How the expert all-to-alls move tokens: ``deepep`` (DeepEP / HybridEP, Megatron-Core's flex
    dispatcher: once per node holding a token's experts) or ``alltoall`` (NCCL all-to-all of every
    routed copy; :func:`service.core.hardware.expert_all_to_all_seconds`)."""

    DEEPEP = "deepep"
    ALLTOALL = "alltoall"


REFERENCE_K = 8192.0  # reduction depth of the dense GEMMs the sustained efficiency was fitted on (d_model 4,096-18,432)
EXPERT_ROW_ALIGNMENT = 128  # rows of a grouped GEMM's tile (DeepGEMM's contiguous-layout block M)
ROUTER_BYTES_PER_SCORE = 16  # FP32 logits written, softmax read + write, top-k read


@dataclass(frozen=True, slots=True)
class ExpertCosts:
    """One layer's MLP work for one micro-batch on one GPU: the routed and shared experts' and the
    router's matmuls, forward and backward (seconds), the elements their FP8 casts quantise, and
    the memory-bound seconds of permutation and routing scores (forward; the backward as much)."""

    forward: Any
    backward: Any
    cast_tokens: Any
    memory: Any


def grouped_gemm_factor(k: Any, fixed_k: float) -> Any:
    """The share of the fitted matmul rate a grouped GEMM reducing over ``k`` reaches:
    ``f(k) / f(REFERENCE_K)`` with ``f(k) = k / (k + K0)``, at most 1 (module docstring)."""
    if fixed_k <= 0:
        return 1.0
    return np.minimum(1.0, k / (k + fixed_k) * (REFERENCE_K + fixed_k) / REFERENCE_K)


def _up_width(arch: Architecture, d_ff: Any) -> Any:
    """Output width of an MLP's first GEMM: gate and up fused (SwiGLU), or up alone."""
    return (2 if arch.ffn is Ffn.SWIGLU else 1) * d_ff


def _routed_experts(arch: Architecture, hw: Hardware, rows: Any, local: Any, etp: Any, e: int, fp8: bool) -> tuple[Any, Any]:
    """(forward, backward) seconds of this GPU's ``local`` experts, ``rows`` tokens each."""
    h, f = arch.d_model, arch.d_ff / etp
    up_width = _up_width(arch, f)
    if not arch.is_moe:  # a dense MLP: one GEMM pair at the fitted rate, backward twice the forward
        forward = matmul_seconds(rows, h, up_width, hw, e, fp8=fp8) + matmul_seconds(rows, f, h, hw, e, fp8=fp8)
        return forward, 2 * forward
    eff = hw.kernels
    fixed_k = eff.grouped_gemm_fixed_k_fp8 if fp8 else eff.grouped_gemm_fixed_k
    m = np.ceil(rows / EXPERT_ROW_ALIGNMENT) * EXPERT_ROW_ALIGNMENT

    def gemm(mm: Any, kk: Any, nn: Any) -> Any:  # this GPU's experts, one (m x k) @ (k x n) each
        return local * matmul_seconds(mm, kk, nn, hw, e, fp8=fp8, rate_factor=grouped_gemm_factor(kk, fixed_k))

    forward = gemm(m, h, up_width) + gemm(m, f, h)
    # data gradients reduce over the output width, weight gradients over the expert's rows
    backward = gemm(m, up_width, h) + gemm(h, m, up_width) + gemm(m, h, f) + gemm(f, m, h)
    return forward, backward


def expert_costs(
    arch: Architecture,
    hw: Hardware,
    *,
    tokens: Any,
    routed: Any,
    tp: Any,
    ep: Any,
    etp: Any,
    imbalance: Any,
    element_bytes: int,
    fp8: bool,
    dispatcher: MoeDispatcher,
) -> ExpertCosts:
    """:class:`ExpertCosts` of one layer: ``tokens`` of the micro-batch on this GPU, ``routed`` of
    them routed here (a sequence-parallel share), the experts split ``etp`` ways (1: whole experts,
    MoE parallel folding) over ``ep`` ranks, the busiest rank's load ``imbalance`` x the mean."""
    e, h, k = element_bytes, arch.d_model, arch.experts_per_token
    local = arch.n_experts / ep
    copies = tokens * k * imbalance * etp / tp  # the routed rows this GPU's experts multiply
    forward, backward = _routed_experts(arch, hw, copies / local, local, etp, e, fp8)
    cast_tokens = tokens * k * etp / tp * (h + _up_width(arch, arch.d_ff / etp) + arch.d_ff / etp + h)
    memory = 0.0
    if arch.is_moe:
        router = matmul_seconds(tokens, h, arch.n_experts, hw, e)  # the router stays in BF16
        forward, backward = forward + router, backward + 2 * router
        passes = 2 + np.where((ep > 1) & (local > 1), 2, 0) * (dispatcher == MoeDispatcher.ALLTOALL)
        permuted = passes * 2 * copies * h * e
        memory = (permuted + routed * arch.n_experts * ROUTER_BYTES_PER_SCORE) / memory_rate(hw)
    if arch.shared_expert_width:  # always-active shared experts (DeepSeekMoE §3.2), one wide MLP
        shared_f = arch.shared_expert_width
        shared_up = _up_width(arch, shared_f / tp)
        shared = matmul_seconds(tokens, h, shared_up, hw, e, fp8=fp8) + matmul_seconds(tokens, shared_f / tp, h, hw, e, fp8=fp8)
        forward, backward = forward + shared, backward + 2 * shared
        cast_tokens = cast_tokens + tokens * (h + shared_up + shared_f / tp + h)
    return ExpertCosts(forward=forward, backward=backward, cast_tokens=cast_tokens, memory=memory)


def host_wait_seconds(arch: Architecture, hw: Hardware, recompute: Any, layer_seconds: Any) -> Any:
    """Seconds the mean layer of one micro-batch waits on the host beyond its ``layer_seconds`` on
    the GPU: what the catalog's host seconds of a MoE layer (a third more when the forward is
    recomputed) exceed the GPU's, over the share of layers with routed experts (module docstring)."""
    host = hw.kernels.moe_layer_host_seconds
    if not arch.is_moe or host <= 0:
        return 0.0
    floor = host * np.where(recompute == RC_FULL, 4 / 3, 1.0)
    return arch.moe_layers / arch.n_layers * np.maximum(0.0, floor - layer_seconds)
