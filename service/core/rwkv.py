"""RWKV layers, RWKV-4, RWKV-6 (Finch) and RWKV-7 (Goose): parameters, matmuls, WKV FLOPs, state and kept tensors.

An RWKV layer is a time-mixing block (its recurrent WKV) and a channel-mixing block (its MLP), each
after a LayerNorm, on token-shifted inputs. Counts follow the reference modules term by term: RWKV-4
``transformers``' ``RwkvSelfAttention``/``RwkvFeedForward`` (Peng et al. 2023, "RWKV", §3); RWKV-6
and RWKV-7 flash-linear-attention's ``RWKV6Attention``/``RWKV6FeedForward`` and
``RWKV7Attention``/``RWKV7FeedForward`` (``fla/layers/rwkv6.py``, ``fla/layers/rwkv7.py``,
``fla/models/rwkv*/modeling_rwkv*.py``, fla 0.6.0), which hold the same tensors as BlinkDL's RWKV-LM
(``RWKV_Tmix_x060``, ``RWKV_Tmix_x070``) under other names (Peng et al. 2024, "Eagle and Finch: RWKV with
Matrix-Valued States and Dynamic Recurrence", Finch's time and channel mixing; Peng et al. 2025, "RWKV-7 Goose
with Expressive Dynamic State Evolution", its time and channel mixing). Symbols: h ``d_model``, f ``d_ff`` (channel mixing), N ``rwkv_head_size``,
H = h / N heads; LoRA ranks r_m (v6 token shift), r_w (decay), r_a, r_v, r_g (v7). Pure Python.
"""

from __future__ import annotations

import math

from service.core.architecture import Architecture, LayerType

RWKV4_STATE_VECTORS = 5
"""Vectors of width h an RWKV-4 layer keeps per sequence: the time-mix and channel-mix shifted
inputs and WKV's numerator, denominator and running maximum (``RwkvModel``'s ``state``, five
tensors of ``batch x h x layers``)."""

RWKV4_WKV_FLOPS_PER_CHANNEL = 23
"""Forward FLOPs of one channel's WKV step, counted in RWKV-LM's ``wkv_cuda.cu`` forward kernel
(Peng et al. 2023, §3.1 eq. 14 and Appendix D): two maxima, four exponentials with their
subtractions, the numerator, denominator and division of the output, and the decayed numerator
and denominator, each operation one FLOP."""

WKV_CHUNK_TOKENS = 64
"""Chunk length C of fla's chunked WKV kernels in training and prefill: ``ChunkRWKV6Function``'s default
``chunk_size=64`` (``fla/ops/rwkv6/chunk.py``) and ``RWKV7Attention``'s ``chunk_rwkv7(..., chunk_size=64)``."""

RWKV6_STEP_FLOPS_PER_ELEMENT = 7
"""FLOPs of one WKV state element per decoded token in RWKV-6 (Peng et al. 2024, Finch's wkv_t and
s_t; RWKV-LM ``RWKV-v6/cuda/wkv6_cuda.cu`` forward: ``kv = k*v``, ``y += r*(u*kv + s)``, ``s = s*w + kv``)."""

RWKV7_STEP_FLOPS_PER_ELEMENT = 9
"""FLOPs of one WKV state element per decoded token in RWKV-7 (Peng et al. 2025, the generalised delta
rule ``S = S (diag(w) + a^T b) + v^T k``, ``y = S r``; RWKV-LM ``RWKV-v7/cuda/wkv7.cu`` forward:
``sa += a*s`` 2, ``s = s*w + k*v + sa*b`` 5, ``y += s*r`` 2)."""


def head_size(arch: Architecture) -> int:
    """N, the RWKV-6/7 head width (0 for RWKV-4, whose WKV is per channel)."""
    return arch.rwkv_head_size or 0


def heads(arch: Architecture) -> int:
    """H = h / N (0 for RWKV-4)."""
    return arch.d_model // arch.rwkv_head_size if arch.rwkv_head_size else 0


def rwkv7_default_ranks(d_model: int) -> dict[str, int]:
    """RWKV-7's LoRA ranks suggested for a width C (RWKV-LM ``RWKV-v7/train_temp/src/model.py``,
    ``RWKV_Tmix_x070``): decay and a ``max(32, round(1.8*sqrt(C)/32)*32)``, value ``1.3*sqrt(C)``, gate
    ``0.6*C^0.8``, each rounded so. They give the released World models' ranks at C 768, 2048 and 2560;
    the 0.4B (C 1024) was trained with a gate of 128, not 160."""

    def rank(x: float) -> int:
        return max(32, int(round(x / 32) * 32))

    root = math.sqrt(d_model)
    return {"rwkv_decay_lora_rank": rank(1.8 * root), "rwkv_a_lora_rank": rank(1.8 * root),
            "rwkv_value_lora_rank": rank(1.3 * root), "rwkv_gate_lora_rank": rank(0.6 * d_model**0.8)}  # fmt: skip


def rwkv6_default_ranks(d_model: int) -> dict[str, int]:
    """RWKV-6's LoRA ranks (RWKV-LM ``RWKV-v5/src/model.py``, ``RWKV_Tmix_x060``): ``D_MIX_LORA = 32`` and
    ``D_DECAY_LORA = 64``, each doubled at C 4096 (the 7B)."""
    scale = 2 if d_model == 4096 else 1
    return {"rwkv_mix_lora_rank": 32 * scale, "rwkv_decay_lora_rank": 64 * scale}


def _ranks(arch: Architecture) -> tuple[int, int, int, int, int]:
    """``(r_m, r_w, r_a, r_v, r_g)``, 0 where unset."""
    return (arch.rwkv_mix_lora_rank or 0, arch.rwkv_decay_lora_rank or 0, arch.rwkv_a_lora_rank or 0,
            arch.rwkv_value_lora_rank or 0, arch.rwkv_gate_lora_rank or 0)  # fmt: skip


def linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count, in_features, out_features)`` of every RWKV layer's linear layers, all layers.

    RWKV-4: receptance, key, value and output of time mixing and channel mixing's receptance (``5 h x h``),
    key ``h x f`` and value ``f x h``. RWKV-6 (``RWKV6Attention``): r, k, v, g and o (``5 h x h``), the
    token-shift LoRA ``x_proj`` (``h x 5r_m`` then ``5r_m x h``: one rank-r_m product per mixed input), the
    decay LoRA ``w_proj`` (``h x r_w``, ``r_w x h``); channel mixing key, value and receptance as RWKV-4.
    RWKV-7 (``RWKV7Attention``): r, k, v and o (``4 h x h``), the LoRAs of the decay, the in-context
    learning rate a, the output gate (``h x r``, ``r x h`` each) and the value residual on every layer
    but the first (``v_lora`` is not built for ``layer_idx`` 0); channel mixing key ``h x f`` and value
    ``f x h``, no receptance."""
    n, h, f = arch.layers_of(LayerType.RWKV), arch.d_model, arch.d_ff
    if not n:
        return []
    version = arch.rwkv_version or 4
    if version == 4:
        return [(5 * n, h, h), (n, h, f), (n, f, h)]
    r_m, r_w, r_a, r_v, r_g = _ranks(arch)
    shapes = [(n, h, f), (n, f, h), (n, h, r_w), (n, r_w, h)]
    if version == 6:
        return [(6 * n, h, h), (n, h, 5 * r_m), (n, 5 * r_m, h)] + shapes
    return [(4 * n, h, h), (n, h, r_a), (n, r_a, h), (n, h, r_g), (n, r_g, h), (n - 1, h, r_v), (n - 1, r_v, h)] + shapes


def matmul_weights(arch: Architecture) -> int:
    """Weights a token multiplies through in all RWKV layers: the weights of :func:`linear_shapes`."""
    return sum(c * i * o for c, i, o in linear_shapes(arch))


def vector_params(arch: Architecture) -> int:
    """The RWKV layers' parameters outside the linear layers, all layers (norms aside).

    RWKV-4: ``time_decay``, ``time_first`` and three token-shift mixes in time mixing, two in channel
    mixing (``7h``). RWKV-6: ``x_proj``'s shift ``mu`` and the five ``x_bias`` mixes, the decay LoRA's bias
    (``time_decay``), the bonus u (``time_faaaa``), the GroupNorm's weight and bias, channel mixing's two
    ``mu`` (``12h``). RWKV-7: six token-shift mixes ``x_r``...``x_g``, ``k_k``, ``k_a``, ``r_k``, the biases of
    the decay, a and value LoRAs (the gate's has none; no value LoRA on the first layer), the GroupNorm's
    weight and bias, channel mixing's ``x_k`` (``15h`` a layer, ``14h`` the first)."""
    n, h = arch.layers_of(LayerType.RWKV), arch.d_model
    version = arch.rwkv_version or 4
    if not n:
        return 0
    if version == 4:
        return 7 * h * n
    if version == 6:
        return 12 * h * n
    return 15 * h * n - h


def mixer_params(arch: Architecture) -> int:
    """Parameters of every RWKV layer's time mixing (the token mixer): its linear layers and vectors
    (:func:`linear_shapes`, :func:`vector_params`) without channel mixing's."""
    return matmul_weights(arch) + vector_params(arch) - channel_mix_params(arch)


def channel_mix_params(arch: Architecture) -> int:
    """Parameters of every RWKV layer's channel mixing (the layer's MLP): key ``h x f``, value ``f x h``,
    RWKV-4's and RWKV-6's receptance ``h x h`` and token-shift mixes (two), RWKV-7's one ``x_k``."""
    n, h, f = arch.layers_of(LayerType.RWKV), arch.d_model, arch.d_ff
    if (arch.rwkv_version or 4) == 7:
        return n * (2 * h * f + h)
    return n * (2 * h * f + h * h + 2 * h)


def wkv_flops_per_token(arch: Architecture, *, decode: bool = False) -> float:
    """Forward FLOPs of the WKV recurrences of all RWKV layers for one token, beyond the linear layers.

    RWKV-4: 23 per channel (:data:`RWKV4_WKV_FLOPS_PER_CHANNEL`), training and decoding alike.
    Decoding RWKV-6/7: the recurrent step over each head's ``N x N`` state, 7 (RWKV-6) or 9 (RWKV-7)
    FLOPs per state element (:data:`RWKV6_STEP_FLOPS_PER_ELEMENT`, :data:`RWKV7_STEP_FLOPS_PER_ELEMENT`).
    Training and prefill, fla's chunked kernels over C = 64 tokens, per token and head (the block
    products run whole, as the kernels do):
    RWKV-6 (``chunk_rwkv6``: the chunkwise form of linear attention with data-dependent decay, Yang et al.
    2024, "Gated Linear Attention Transformers with Hardware-Efficient Training", §4.2): the intra-chunk
    scores ``2*C*N`` and their product with v ``2*C*N`` (``chunk_rwkv6_fwd_intra``, ``chunk_gla_fwd_o_gk``),
    the output from the carried state ``2*N^2`` and the state update ``2*N^2`` (``chunk_fwd_h``).
    RWKV-7 (``chunk_dplr_delta_rule``, the diagonal-plus-low-rank delta rule with the WY representation):
    four intra-chunk blocks ``A_qk, A_qb, A_ak, A_ab`` ``8*C*N`` (``chunk_dplr_fwd_intra``); the inverse
    ``(I - A_ab)^-1`` ``(2/3)*C^2``, its product with ``A_ak`` ``2*C^2`` and w, u ``4*C*N``
    (``prepare_wy_repr_fwd``); the new values ``w S`` and the state update ``kg^T v + bg^T v_new``
    ``6*N^2`` (``chunk_dplr_fwd_h``); the output ``qg S`` ``2*N^2`` and ``A_qk v + A_qb v_new`` ``4*C*N``
    (``chunk_dplr_fwd_o``)."""
    n, h = arch.layers_of(LayerType.RWKV), arch.d_model
    version = arch.rwkv_version or 4
    if version == 4:
        return float(n * RWKV4_WKV_FLOPS_PER_CHANNEL * h)
    big_n, c = head_size(arch), WKV_CHUNK_TOKENS
    if decode:
        step = RWKV6_STEP_FLOPS_PER_ELEMENT if version == 6 else RWKV7_STEP_FLOPS_PER_ELEMENT
        return float(n * heads(arch) * step * big_n * big_n)
    if version == 6:
        per_head = 4 * c * big_n + 4 * big_n * big_n
    else:
        per_head = 16 * c * big_n + 8 * big_n * big_n + 8 * c * c / 3
    return float(n * heads(arch) * per_head)


def state_elements(arch: Architecture) -> int:
    """Values one sequence keeps in all RWKV layers, whatever its length: RWKV-4 five vectors of h
    (:data:`RWKV4_STATE_VECTORS`; Peng et al. 2023 §3.4); RWKV-6/7 each head's ``N x N`` WKV state and the
    time-mix and channel-mix token-shift vectors (``H*N^2 + 2h``: fla's ``Cache`` layers hold
    ``recurrent_state`` ``B x H x N x N``, ``conv_state`` and ``ffn_state`` ``B x h``; the rwkv package's
    RWKV-7 state, three tensors a layer)."""
    n, h = arch.layers_of(LayerType.RWKV), arch.d_model
    if (arch.rwkv_version or 4) == 4:
        return n * RWKV4_STATE_VECTORS * h
    return n * (heads(arch) * head_size(arch) ** 2 + 2 * h)


def fp32_state_elements(arch: Architecture) -> int:
    """Of :func:`state_elements`, the values held in fp32 whatever the model's dtype: RWKV-6/7's WKV
    matrices (fla's chunked kernels return the final state as ``float32``, ``chunk_dplr_fwd_h`` and
    ``chunk_fwd_h``; the rwkv package allocates it ``dtype=torch.float``)."""
    if (arch.rwkv_version or 4) == 4:
        return 0
    return arch.layers_of(LayerType.RWKV) * heads(arch) * head_size(arch) ** 2


def scan_elements_per_token(arch: Architecture) -> float:
    """Elements one RWKV layer's WKV kernel moves through HBM per token, forward: RWKV-4's reads k and v
    and writes its output (``3h``); RWKV-6's ``chunk_rwkv6`` reads r, k, v and the decay twice (the state
    pass and the output pass) and writes the fp32 chunk-local decays, the fp32 scores ``C`` per head and
    the output, with one ``N x N`` chunk state per head written and read per C tokens (``11h + 2*H*C +
    2*h*N/C``); RWKV-7's ``chunk_rwkv7`` reads r, w, k, v, a, b and writes and reads the decayed copies,
    the four score blocks and w, u, the new values and the output (``20h + 6*H*C + 2*h*N/C``)."""
    h, big_n, c = arch.d_model, head_size(arch), WKV_CHUNK_TOKENS
    version = arch.rwkv_version or 4
    if version == 4:
        return 3.0 * h
    if version == 6:
        return 11 * h + 2 * heads(arch) * c + 2 * h * big_n / c
    return 20 * h + 6 * heads(arch) * c + 2 * h * big_n / c


def wkv_formula(arch: Architecture) -> str:
    """The WKV FLOPs' formula and source for an RWKV-6/7 model ('' otherwise), for answers' ``formula``."""
    if (arch.rwkv_version or 4) == 4 or not arch.layers_of(LayerType.RWKV):
        return ""
    if arch.rwkv_version == 6:
        return ("; RWKV-6 WKV: chunked over C=64 tokens 4*H*(C*N + N^2) per token (fla chunk_rwkv6; Yang et al. 2024 "
                "§4.2), decoding 7*H*N^2 (Peng et al. 2024; wkv6_cuda.cu)")  # fmt: skip
    return ("; RWKV-7 WKV: chunked over C=64 tokens H*(16*C*N + 8*N^2 + 8*C^2/3) per token (fla chunk_rwkv7, the "
            "diagonal-plus-low-rank delta rule), decoding 9*H*N^2 (Peng et al. 2025; wkv7.cu)")  # fmt: skip


def saved_bytes_per_token(arch: Architecture, element_bytes: int) -> int:
    """Bytes one RWKV-6/7 layer's time and channel mixing keep for backward per token, in training with
    fla's chunked kernels (sequences over 64 tokens), beyond the mixer's ``h``-wide input and the two
    LayerNorms' inputs (counted with every layer: :func:`service.core.activations.layer_activation_bytes`).

    RWKV-7 (``RWKV7Attention.forward``, ``RWKV7FeedForward.forward``; fla 0.6.0): ``fused_addcmul_rwkv7`` keeps
    the token-shift difference, the six mixed inputs are kept by their projections and LoRAs; kept outputs:
    r, k, v, the decay's sigmoid and w, a, g, the value residual's sigmoid and mixed v, the L2-normalised
    kk, ``fused_k_rwkv7``'s k, ``-kk`` and ``kk*a``; ``chunk_rwkv7`` keeps r, w, k, v, a, b
    (``ChunkDPLRDeltaRuleFunction.forward`` in ``fla/ops/generalized_delta_rule/dplr/chunk.py`` saves its
    inputs and recomputes the chunk states); then the WKV output, the GroupNorm's output, the corrected
    output (the o projection's input), channel mixing's token-shift difference and key input: ``25h``; the
    LoRAs' hidden ranks ``r_w + r_a + r_v + r_g``; channel mixing's squared-ReLU input and output ``2f``; in
    fp32 the L2 norm's and the GroupNorm's statistics ``3H``. The first layer has no value residual
    (``2h + r_v`` less), counted like the others.

    RWKV-6 (``RWKV6Attention.forward``, ``RWKV6FeedForward.forward``): the token-shift difference, the
    LoRA's lerped input and the five-way mixes (``5h``, one tensor), the five lerped inputs of r, w, k, v, g,
    the decay's exponential and ``-exp``, r, k, v, g, the WKV output, the GroupNorm's output, the gate's
    swish and the o projection's input, channel mixing's difference, key and receptance inputs, the
    receptance's sigmoid and the value output: ``26h`` (the mixer's input itself is not kept here: the
    lerps add to it); the LoRAs' hidden ``5 r_m + r_w``; ``2f``; in fp32 the GroupNorm's statistics ``2H``
    and ``chunk_rwkv6``'s intra-chunk scores ``A``, ``C`` per head (``ChunkRWKV6Function.forward`` saves
    q, k, v, g, u and A, ``fla/ops/rwkv6/chunk.py``).

    Measured on the CPU with fla's kernels (``validation/measure_rwkv_layers.py``; ACCURACY.md)."""
    h, f, e = arch.d_model, arch.d_ff, element_bytes
    _, r_w, r_a, r_v, r_g = _ranks(arch)
    if arch.rwkv_version == 7:
        return e * (25 * h + r_w + r_a + r_v + r_g + 2 * f) + 4 * 3 * heads(arch)
    r_m = arch.rwkv_mix_lora_rank or 0
    return e * (26 * h + 5 * r_m + r_w + 2 * f) + 4 * (2 + WKV_CHUNK_TOKENS) * heads(arch)
