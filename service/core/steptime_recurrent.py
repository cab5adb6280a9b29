"""The step time of a model with recurrent layers (Mamba, Mamba-2, RWKV, Gated DeltaNet, short convolutions):
its mean layer.

:mod:`service.core.steptime` costs one layer and multiplies it by a stage's layers. A model whose
layers differ (a hybrid's attention and Mamba layers, a pure state-space model's mixers without an
MLP) is costed at its mean layer: the attention projections and the MLPs weighted by the share of
layers that have them, the recurrent layers' own projections
(:func:`service.core.recurrent.recurrent_linear_shapes`) at their share, and their scan kernels.

The scans are memory-bound: the selective scan reads its inputs from HBM, runs the recurrence in
SRAM and writes its output (Gu & Dao 2023 §3.3.2, "hardware-aware algorithm": IO of O(BLD) rather
than the O(BLDN) of a materialised state); Mamba-2's chunked SSD runs its block products as
matmuls (Dao & Gu 2024 §6), and its FLOPs (:func:`service.core.recurrent.recurrence_flops_per_token`)
are costed at the matmul rate when they, not the bytes, bound it. The backward pass reads and
writes twice what the forward did, as the other element-wise kernels here. Pure Python and NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.core.architecture import Architecture, LayerType
from service.core.hardware import Hardware, matmul_seconds, memory_rate
from service.core.recurrent import (
    DELTA_CHUNK_TOKENS,
    deltanet_conv_width,
    deltanet_sizes,
    inner_width,
    recurrence_flops_per_token,
    recurrent_linear_shapes,
)
from service.core.rwkv import scan_elements_per_token as rwkv_scan_elements


def mean_layer_matmuls(
    arch: Architecture,
    hw: Hardware,
    *,
    tokens: Any,
    tp: Any,
    element_bytes: int,
    fp8: bool,
    attention: tuple[Any, Any],
    mlp: tuple[Any, Any],
) -> tuple[Any, Any]:
    """(forward matmul seconds, FP8-cast elements) of the mean layer: ``attention`` and ``mlp`` are
    one attention layer's and one MLP's (seconds, cast elements), weighted by the layers that have
    them; each recurrent linear layer splits over the tensor-parallel ranks along its wider side
    (``in_proj`` column-parallel, ``out_proj`` row-parallel, as attention's projections)."""
    n = arch.n_layers
    attention_share, mlp_share = arch.attention_layers / n, arch.mlp_layers / n
    seconds = attention[0] * attention_share + mlp[0] * mlp_share
    casts = attention[1] * attention_share + mlp[1] * mlp_share
    for count, d_in, d_out in recurrent_linear_shapes(arch):
        k, width = (d_in, d_out / tp) if d_out >= d_in else (d_in / tp, d_out)
        seconds = seconds + count / n * matmul_seconds(tokens, k, width, hw, element_bytes, fp8=fp8)
        casts = casts + count / n * tokens * (k + width)
    return seconds, casts


def scan_bytes_per_token(arch: Architecture, element_bytes: int) -> float:
    """HBM bytes the mean layer's scan kernels move per token, forward, all ranks together.

    Mamba-2 (``mamba_split_conv1d_scan_combined``): the causal convolution reads and writes its
    ``I + 2GN`` channels; the chunked scan reads x, B, C, the step size and the gate and writes its
    output; the gated RMSNorm reads the output and the gate and writes the normalised tensor:
    ``2(I + 2GN) + (I + 2GN + H + I) + I + 3I`` elements. Mamba (``mamba_inner_fn``): the
    convolution ``2I``, the scan's inputs x, step size, gate, B, C and its outputs with and without
    the gate, ``5I + 2N``. RWKV's WKV kernels: RWKV-4's reads k and v and writes its output, ``3h``;
    RWKV-6's and RWKV-7's chunked kernels :func:`service.core.rwkv.scan_elements_per_token`.

    Gated DeltaNet (``fla``'s ``chunk_gated_delta_rule_fwd`` after ``causal_conv1d_fn``; Yang et al. 2024
    §3.3), with q and k repeated to the ``H_v`` value heads, per token: the convolution reads and writes
    its ``2*H_k*d_k + H_v*d_v`` channels; the L2 norms read and write q and k (``4*H_v*d_k``);
    ``chunk_scaled_dot_kkt_fwd`` reads k and writes the C = 64 wide block A, ``solve_tril`` reads and
    writes A (``H_v*(d_k + 3C)``); ``recompute_w_u_fwd`` reads k, v and A and writes w and u
    (``2*H_v*d_k + 2*H_v*d_v + C*H_v``); ``chunk_gated_delta_rule_fwd_h`` reads k, w and u and writes the
    new values and one ``d_k x d_v`` state per head and chunk (``2*H_v*d_k + 2*H_v*d_v + H_v*d_k*d_v/C``);
    ``chunk_fwd_o`` reads q, k, the new values and the chunk states and writes the output (``2*H_v*d_k +
    2*H_v*d_v + H_v*d_k*d_v/C``); the gated RMSNorm reads the output and the gate and writes its result
    (``3*H_v*d_v``).

    A short convolution (``Lfm2ShortConv``): the gate ``B*x`` reads two ``h``-wide tensors and writes one, the
    convolution reads and writes ``h``, the gate ``C*y`` reads two and writes one: ``8h``."""
    inner, h = inner_width(arch), arch.d_model
    bc, heads = 2 * (arch.ssm_n_groups or 0) * (arch.ssm_state_size or 0), arch.ssm_n_heads or 0
    mamba2 = 2 * (inner + bc) + (inner + bc + heads + inner) + inner + 3 * inner
    mamba = 2 * inner + 5 * inner + 2 * (arch.ssm_state_size or 0)
    _, hv, dk, dv, _ = deltanet_sizes(arch)
    c = DELTA_CHUNK_TOKENS
    deltanet = 2 * deltanet_conv_width(arch) + hv * (11 * dk + 9 * dv + 4 * c + 2 * dk * dv / c)
    elements = (
        arch.layers_of(LayerType.MAMBA2) * mamba2
        + arch.layers_of(LayerType.MAMBA) * mamba
        + arch.layers_of(LayerType.RWKV) * rwkv_scan_elements(arch)
        + arch.layers_of(LayerType.GATED_DELTANET) * deltanet
        + arch.layers_of(LayerType.SHORT_CONV) * 8 * h
    )
    return element_bytes * elements / arch.n_layers


def scan_seconds(arch: Architecture, hw: Hardware, *, tokens: Any, tp: Any, element_bytes: int) -> tuple[Any, Any]:
    """(forward, backward) seconds of the mean layer's scan kernels for ``tokens`` tokens on one of
    ``tp`` ranks (the channels and heads split): the larger of the bytes at the HBM rate and the
    recurrence FLOPs at the matmul rate; the backward twice the forward."""
    moved = tokens * scan_bytes_per_token(arch, element_bytes) / tp / memory_rate(hw)
    flops = tokens * recurrence_flops_per_token(arch) / arch.n_layers / tp
    forward = np.maximum(moved, flops / (hw.peak_flops_per_s * hw.kernels.matmul))
    return forward, 2 * forward
