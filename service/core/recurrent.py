"""The layers that keep a fixed-size state instead of a KV cache: Mamba, Mamba-2, RWKV, Gated DeltaNet and
LFM2's gated short convolution.

Parameter counts follow the modules of the reference implementations in ``transformers``
(``MambaMixer``, ``Mamba2Mixer``, ``JambaMambaMixer``) term by term, RWKV's (4, 6 and 7) those of
:mod:`service.core.rwkv`; FLOPs and state sizes follow the papers and their kernels, each cited where it is
counted. Symbols: h ``d_model``, I = ``ssm_expand * h`` the inner width, N ``ssm_state_size``,
K ``ssm_conv_kernel``, R ``ssm_dt_rank``, H ``ssm_n_heads`` of P ``ssm_head_dim``, G ``ssm_n_groups``,
f ``d_ff``; Gated DeltaNet (:func:`deltanet_sizes`): ``H_k`` key heads of ``d_k``, ``H_v`` value heads of
``d_v``, ``K_l`` convolution taps; a short convolution's ``K_s`` taps (``short_conv_kernel``). Zamba's
shared attention layers are Mamba or Mamba-2 layers here; what their uses add beyond the shared block
(a projection, Zamba2's adapters) is :mod:`service.core.shared_blocks`'. Pure Python.
"""

from __future__ import annotations

from service.core import rwkv as rwkv_layers
from service.core.architecture import Architecture, LayerType
from service.core.shared_blocks import shared_use_linear_shapes, shared_use_params

SSD_CHUNK_TOKENS = 256
"""Chunk length Q of Mamba-2's chunked SSD algorithm (``Mamba2Config.chunk_size`` and the
``mamba_ssm`` kernels' default)."""

DELTA_CHUNK_TOKENS = 64
"""Chunk length C of the chunked gated delta rule (``chunk_size=64`` throughout ``fla``'s
``fla/ops/gated_delta_rule/chunk.py``: ``chunk_local_cumsum``, ``chunk_scaled_dot_kkt_fwd``, ``solve_tril``)."""

MAMBA_SCAN_FLOPS_PER_ELEMENT = 9
"""Forward FLOPs of Mamba's selective scan per inner channel, state element and token: discretising
``exp(Δ A)`` and ``Δ B x``, the update ``h = Ā h + B̄ x`` and the readout ``C h`` (Gu & Dao 2023, §3.3.2,
Algorithm 2; the count ``9 * B * L * D * N`` of ``flops_selective_scan_fn`` in the VMamba code, Liu et
al. 2024, after the Mamba authors' answer in state-spaces/mamba issue 110), plus ``D x`` and the ``z``
gate per channel."""


def mamba_mixer_params(arch: Architecture) -> int:
    """Parameters of one Mamba mixer (``MambaMixer``; Gu & Dao 2023 §3.4, Figure 3):
    ``in_proj`` ``h x 2I``, the depthwise ``conv1d`` ``I*K`` (+ ``I`` bias), ``x_proj`` ``I x (R + 2N)``,
    ``dt_proj`` ``R x I`` + ``I`` bias, ``A_log`` ``I*N``, ``D`` ``I``, ``out_proj`` ``I x h``;
    ``ssm_proj_bias`` adds ``2I + h`` (``use_bias``), ``ssm_inner_norms`` Jamba's RMSNorms on the step
    size and on B and C, ``R + 2N`` (``JambaMambaMixer.dt_layernorm``, ``b_layernorm``, ``c_layernorm``;
    Falcon-Mamba's are weightless)."""
    h, inner, n, k, r = _mamba_sizes(arch)
    params = h * 2 * inner  # in_proj (x and the gate z)
    params += inner * k + (inner if arch.ssm_conv_bias else 0)  # conv1d, depthwise
    params += inner * (r + 2 * n)  # x_proj: dt, B, C
    params += r * inner + inner  # dt_proj with its bias
    params += inner * n + inner  # A_log, D
    params += inner * h  # out_proj
    params += 2 * inner + h if arch.ssm_proj_bias else 0
    params += r + 2 * n if arch.ssm_inner_norms else 0
    return params


def mamba2_conv_width(arch: Architecture) -> int:
    """Channels of Mamba-2's convolution: x, B and C, ``I + 2*G*N`` (``Mamba2Mixer.conv_dim``)."""
    return inner_width(arch) + 2 * (arch.ssm_n_groups or 0) * (arch.ssm_state_size or 0)


def mamba2_mixer_params(arch: Architecture) -> int:
    """Parameters of one Mamba-2 mixer (``Mamba2Mixer``; Dao & Gu 2024 §7.1, Figure 6, the parallel
    projections of x, z, B, C and the step size): ``in_proj`` ``h x (2I + 2GN + H)``, the depthwise
    ``conv1d`` over ``I + 2GN`` channels of K taps (+ bias), ``dt_bias``, ``A_log`` and ``D`` (``H``
    each), the gated RMSNorm ``I`` (none without ``ssm_gated_norm``: ``FalconH1Mixer`` without
    ``mamba_rms_norm``) and ``out_proj`` ``I x h``; ``ssm_proj_bias`` adds the in and out projections'
    biases. The same module is ``BambaMixer``, ``NemotronHMamba2Mixer``, ``GraniteMoeHybridMambaLayer``
    and ``FalconH1Mixer``."""
    h, inner, heads, k = arch.d_model, inner_width(arch), arch.ssm_n_heads or 0, arch.ssm_conv_kernel or 0
    conv = mamba2_conv_width(arch)
    projection = inner + conv + heads  # z, then x/B/C, then dt
    params = h * projection + conv * k + (conv if arch.ssm_conv_bias else 0)
    params += 3 * heads + (inner if arch.ssm_gated_norm else 0) + inner * h  # dt_bias, A_log, D; gated norm; out_proj
    params += projection + h if arch.ssm_proj_bias else 0
    return params


def deltanet_sizes(arch: Architecture) -> tuple[int, int, int, int, int]:
    """Gated DeltaNet's ``(H_k, H_v, d_k, d_v, K_l)``: key heads, value heads, their widths and the
    convolution's taps (0 where unset)."""
    return (arch.linear_n_key_heads or 0, arch.linear_n_value_heads or 0, arch.linear_key_head_dim or 0,
            arch.linear_value_head_dim or 0, arch.linear_conv_kernel or 0)  # fmt: skip


def deltanet_conv_width(arch: Architecture) -> int:
    """Channels of Gated DeltaNet's convolution, q, k and v: ``2*H_k*d_k + H_v*d_v``
    (``Qwen3NextGatedDeltaNet.conv_dim``)."""
    hk, hv, dk, dv, _ = deltanet_sizes(arch)
    return 2 * hk * dk + hv * dv


def deltanet_linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count, in, out)`` of one Gated DeltaNet layer's linear layers (``Qwen3NextGatedDeltaNet``):
    ``in_proj_qkvz`` ``h x (2*H_k*d_k + 2*H_v*d_v)`` (q, k, v and the output gate z), ``in_proj_ba``
    ``h x 2*H_v`` (per value head the delta rule's step size beta and the decay's input a) and
    ``out_proj`` ``H_v*d_v x h``."""
    h, value = arch.d_model, (arch.linear_n_value_heads or 0) * (arch.linear_value_head_dim or 0)
    return [(1, h, deltanet_conv_width(arch) + value), (1, h, 2 * (arch.linear_n_value_heads or 0)), (1, value, h)]


def deltanet_mixer_params(arch: Architecture) -> int:
    """Parameters of one Gated DeltaNet mixer (``Qwen3NextGatedDeltaNet``; Yang et al. 2024, "Gated Delta
    Networks", §3.3 and Figure 1, the Mamba-2-like block with a delta-rule state): the projections of
    :func:`deltanet_linear_shapes`, the bias-free depthwise ``conv1d`` over q, k, v
    (``conv_width * K_l``), ``dt_bias`` and ``A_log`` (``H_v`` each) and the gated RMSNorm over one
    head's ``d_v`` channels, its weight shared by the heads (``Qwen3NextRMSNormGated(head_v_dim)``)."""
    _, hv, _, dv, k = deltanet_sizes(arch)
    linear = sum(n * i * o for n, i, o in deltanet_linear_shapes(arch))
    return linear + deltanet_conv_width(arch) * k + 2 * hv + dv


def short_conv_linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count, in, out)`` of one short convolution's linear layers (``Lfm2ShortConv``): ``in_proj``
    ``h x 3h`` (the gates B and C and the input x) and ``out_proj`` ``h x h``."""
    h = arch.d_model
    return [(1, h, 3 * h), (1, h, h)]


def short_conv_params(arch: Architecture) -> int:
    """Parameters of one gated short convolution (``Lfm2ShortConv``; Liquid AI 2025, the LFM2 model
    cards' "double-gated short-range convolution"): ``in_proj`` ``h x 3h``, the depthwise ``conv``
    ``h*K_s`` and ``out_proj`` ``h x h``; ``short_conv_bias`` (``conv_bias``) adds the biases of all three,
    ``3h + h + h``."""
    h, k = arch.d_model, arch.short_conv_kernel or 0
    return 4 * h * h + h * k + (5 * h if arch.short_conv_bias else 0)


def mixer_params(arch: Architecture) -> int:
    """Parameters of every recurrent layer's mixer (0 for a transformer), and what each use of a shared
    attention block adds beside the block (:func:`service.core.shared_blocks.shared_use_params`)."""
    return (
        arch.layers_of(LayerType.MAMBA) * mamba_mixer_params(arch)
        + arch.layers_of(LayerType.MAMBA2) * mamba2_mixer_params(arch)
        + rwkv_layers.mixer_params(arch)
        + arch.layers_of(LayerType.GATED_DELTANET) * deltanet_mixer_params(arch)
        + arch.layers_of(LayerType.SHORT_CONV) * short_conv_params(arch)
        + shared_use_params(arch)
    )


def channel_mix_params(arch: Architecture) -> int:
    """Parameters of every RWKV layer's channel mixing (counted with the MLPs)."""
    return rwkv_layers.channel_mix_params(arch)


def recurrent_matmul_weights(arch: Architecture) -> int:
    """Weights a token multiplies through in the recurrent layers, all of them: the mixers'
    projections and convolution taps (:func:`mamba_mixer_params` and :func:`mamba2_mixer_params`
    without biases, norms, ``A_log``, ``D`` and ``dt_bias``), RWKV's time-mix and channel-mix matrices
    and LoRAs (:func:`service.core.rwkv.matmul_weights`), Gated DeltaNet's projections and convolution taps,
    a short convolution's projections and taps, the shared attention layers' per-use projections and adapters."""
    h, inner, n, k, r = _mamba_sizes(arch)
    mamba = h * 2 * inner + inner * k + inner * (r + 2 * n) + r * inner + inner * h
    conv = mamba2_conv_width(arch)
    mamba2 = h * (inner + conv + (arch.ssm_n_heads or 0)) + conv * k + inner * h
    return (
        arch.layers_of(LayerType.MAMBA) * mamba
        + arch.layers_of(LayerType.MAMBA2) * mamba2
        + rwkv_layers.matmul_weights(arch)
        + arch.layers_of(LayerType.GATED_DELTANET) * _deltanet_matmul_weights(arch)
        + arch.layers_of(LayerType.SHORT_CONV) * (4 * h * h + h * (arch.short_conv_kernel or 0))
        + shared_use_params(arch)
    )


def _deltanet_matmul_weights(arch: Architecture) -> int:
    """One Gated DeltaNet layer's projections and convolution taps."""
    return sum(n * i * o for n, i, o in deltanet_linear_shapes(arch)) + deltanet_conv_width(arch) * (arch.linear_conv_kernel or 0)


def recurrent_linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count, in_features, out_features)`` of the recurrent layers' linear layers, all layers (what
    a weight quantiser converts; convolutions, ``A_log``, ``D`` and norms stay): Mamba's ``in_proj``,
    ``x_proj``, ``dt_proj`` and ``out_proj``; Mamba-2's ``in_proj`` and ``out_proj``; RWKV's time-mix and
    channel-mix matrices and LoRAs (:func:`service.core.rwkv.linear_shapes`); Gated DeltaNet's
    :func:`deltanet_linear_shapes`; a short convolution's :func:`short_conv_linear_shapes`; the shared
    attention layers' per-use projections and adapters
    (:func:`service.core.shared_blocks.shared_use_linear_shapes`)."""
    h, inner, n, r = arch.d_model, inner_width(arch), arch.ssm_state_size or 0, arch.ssm_dt_rank or 0
    shapes: list[tuple[int, int, int]] = []
    if mamba := arch.layers_of(LayerType.MAMBA):
        shapes += [(mamba, h, 2 * inner), (mamba, inner, r + 2 * n), (mamba, r, inner), (mamba, inner, h)]
    if mamba2 := arch.layers_of(LayerType.MAMBA2):
        shapes += [(mamba2, h, inner + mamba2_conv_width(arch) + (arch.ssm_n_heads or 0)), (mamba2, inner, h)]
    shapes += rwkv_layers.linear_shapes(arch)
    if deltanet := arch.layers_of(LayerType.GATED_DELTANET):
        shapes += [(deltanet * n, i, o) for n, i, o in deltanet_linear_shapes(arch)]
    if short_conv := arch.layers_of(LayerType.SHORT_CONV):
        shapes += [(short_conv * n, i, o) for n, i, o in short_conv_linear_shapes(arch)]
    return shapes + shared_use_linear_shapes(arch)


def recurrence_flops_per_token(arch: Architecture, *, decode: bool = False) -> float:
    """Forward FLOPs of the recurrences themselves for one token, all layers, beyond the projections'
    matmuls (:func:`recurrent_matmul_weights`).

    Mamba: the selective scan, ``9*I*N`` plus ``2I`` for ``D x`` and the gate (Gu & Dao 2023 §3.3.2;
    :data:`MAMBA_SCAN_FLOPS_PER_ELEMENT`), the same per step when decoding.
    Mamba-2, training and prefill: the chunked SSD algorithm over chunks of Q = 256 tokens (Dao & Gu
    2024 §6, Figure 5): per token the diagonal block's ``C B^T`` ``2*G*Q*N`` and its product with x
    ``2*H*Q*P``, the chunk state ``B^T x`` ``2*H*N*P`` and the output from the carried state
    ``C h`` ``2*H*N*P`` (the block matmuls run whole, as the kernels do). Decoding one token: the state
    update ``exp(dt A) h + dt B x`` ``3*H*P*N`` and the readout ``C h`` ``2*H*P*N`` (§3, the recurrent
    mode; ``mamba_ssm``'s ``selective_state_update``).
    RWKV: the WKV recurrence, RWKV-4's 23 FLOPs per channel, RWKV-6/7's chunked kernels and decoding step
    (:func:`service.core.rwkv.wkv_flops_per_token`).
    Gated DeltaNet: :func:`deltanet_flops_per_token`. A short convolution: its two gates ``B*x`` and
    ``C*y``, ``2h`` (``Lfm2ShortConv.slow_forward``; the taps are matmul weights), the same per step."""
    inner, n = inner_width(arch), arch.ssm_state_size or 0
    mamba = (MAMBA_SCAN_FLOPS_PER_ELEMENT * n + 2) * inner
    heads, p, g = arch.ssm_n_heads or 0, arch.ssm_head_dim or 0, arch.ssm_n_groups or 0
    if decode:
        mamba2 = 5 * heads * p * n
    else:
        q = SSD_CHUNK_TOKENS
        mamba2 = 2 * g * q * n + 2 * heads * q * p + 4 * heads * n * p
    return float(
        arch.layers_of(LayerType.MAMBA) * mamba
        + arch.layers_of(LayerType.MAMBA2) * mamba2
        + rwkv_layers.wkv_flops_per_token(arch, decode=decode)
        + arch.layers_of(LayerType.GATED_DELTANET) * deltanet_flops_per_token(arch, decode=decode)
        + arch.layers_of(LayerType.SHORT_CONV) * 2 * arch.d_model
    )


def deltanet_flops_per_token(arch: Architecture, *, decode: bool = False) -> float:
    """Forward FLOPs of one Gated DeltaNet layer's delta rule for one token, beyond its projections.

    The query and key heads are repeated to the ``H_v`` value heads, each a ``d_k x d_v`` state.
    Training and prefill, the chunked algorithm over chunks of C = 64 tokens (Yang et al. 2024, "Gated
    Delta Networks", §3.3, the chunkwise form with the WY representation of Yang et al. 2024,
    "Parallelizing Linear Transformers with the Delta Rule over Sequence Length", §3.2; ``fla``'s
    ``chunk_gated_delta_rule_fwd``), per token and head: ``beta K K^T`` ``2*C*d_k``
    (``chunk_scaled_dot_kkt_fwd``), the triangular inverse ``(2/3)*C^2`` (``solve_tril``, forward
    substitution on a C x C block per chunk), ``W = T K`` ``2*C*d_k`` and ``U = T V`` ``2*C*d_v``
    (``recompute_w_u_fwd``), the chunk's new values ``U - W S`` and state update ``S + K^T V_new``
    ``4*d_k*d_v`` (``chunk_gated_delta_rule_fwd_h``), and the output ``Q S`` ``2*d_k*d_v`` with the
    intra-chunk ``Q K^T`` ``2*C*d_k`` and its product with ``V_new`` ``2*C*d_v`` (``chunk_fwd_o``).
    Decoding one token (``fused_recurrent_gated_delta_rule``): the decay ``d_k*d_v``, the readout
    ``S^T k`` ``2*d_k*d_v``, the rank-one update ``2*d_k*d_v`` and the output ``S^T q`` ``2*d_k*d_v``."""
    _, hv, dk, dv, _ = deltanet_sizes(arch)
    if decode:
        return float(hv * 7 * dk * dv)
    c = DELTA_CHUNK_TOKENS
    return hv * (6 * c * dk + 4 * c * dv + 2 * c * c / 3 + 6 * dk * dv)


def state_elements_per_sequence(arch: Architecture) -> int:
    """Values one sequence keeps in its recurrent layers' state, whatever its length.

    Mamba: the convolution's last K inputs ``I*K`` and the scan state ``I*N`` (Gu & Dao 2023 §3.4,
    "Efficient Implementation": the recurrent mode; ``mamba_ssm``'s ``allocate_inference_cache`` and
    transformers' cache keep ``d_conv`` columns). Mamba-2: ``(I + 2GN)*K`` and ``H*P*N`` (Dao & Gu 2024
    §7). RWKV: :func:`service.core.rwkv.state_elements` (RWKV-4 five vectors of h; RWKV-6/7 an ``N x N``
    matrix per head and two token-shift vectors; Peng et al. 2023 §3.4, 2024, 2025). Gated
    DeltaNet: the convolution's last ``K_l`` inputs over q, k, v and a ``d_k x d_v`` matrix per value head
    (Yang et al. 2024 §3; transformers' ``conv_states`` of ``conv_dim x K_l`` and ``recurrent_states`` of
    ``H_v x d_k x d_v``). A short convolution: its last ``K_s`` inputs, ``h*K_s`` (transformers'
    ``conv_states`` of ``hidden_size x conv_L_cache``; the decode step ``causal_conv1d_update`` shifts it)."""
    inner, n, k = inner_width(arch), arch.ssm_state_size or 0, arch.ssm_conv_kernel or 0
    mamba = inner * k + inner * n
    mamba2 = mamba2_conv_width(arch) * k + (arch.ssm_n_heads or 0) * (arch.ssm_head_dim or 0) * n
    _, hv, dk, dv, conv_taps = deltanet_sizes(arch)
    deltanet = deltanet_conv_width(arch) * conv_taps + hv * dk * dv
    return (
        arch.layers_of(LayerType.MAMBA) * mamba
        + arch.layers_of(LayerType.MAMBA2) * mamba2
        + rwkv_layers.state_elements(arch)
        + arch.layers_of(LayerType.GATED_DELTANET) * deltanet
        + arch.layers_of(LayerType.SHORT_CONV) * arch.d_model * (arch.short_conv_kernel or 0)
    )


def inner_width(arch: Architecture) -> int:
    """The state-space layers' inner width: ``ssm_inner_size`` where given, else ``I = ssm_expand * h``
    (0 without them)."""
    return arch.ssm_inner_size or (arch.ssm_expand or 0) * arch.d_model


def _mamba_sizes(arch: Architecture) -> tuple[int, int, int, int, int]:
    """Mamba's ``(h, I, N, K, R)``: the model width, the inner width, the state size, the convolution's
    taps and the step size's rank (0 where unset)."""
    return arch.d_model, inner_width(arch), arch.ssm_state_size or 0, arch.ssm_conv_kernel or 0, arch.ssm_dt_rank or 0
