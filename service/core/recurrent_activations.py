"""What a recurrent layer's mixer keeps for the backward pass, as the fused training kernels keep it.

Mixers: Mamba, Mamba-2, RWKV (4, 6 and 7: :func:`service.core.rwkv.saved_bytes_per_token` for the latter
two), Gated DeltaNet and LFM2's gated short convolution.

A transformer layer's kept tensors follow Korthikanti et al. 2022 (:mod:`service.core.activations`);
a Mamba, Mamba-2 or RWKV mixer keeps what its training kernel saves with ``save_for_backward``,
counted here tensor by tensor from the reference code (each function names it). The rest of such a
layer (its norms, its MLP where it has one, dropout masks) is counted as a transformer layer's by
:func:`service.core.activations.layer_activation_bytes`.

Each count is split as the layer is split over ``t`` tensor-parallel ranks: the projection's input
(``h`` wide) is replicated unless sequence parallelism shards it; the inner channels and heads are
divided by ``t`` (Megatron-LM's ``MambaMixer`` splits ``nheads`` and ``ngroups`` over the
tensor-parallel group; the column-parallel ``in_proj`` and row-parallel ``out_proj`` as in the
attention block). Symbols as in :mod:`service.core.recurrent`: h ``d_model``, I the inner width,
N the state size, R Mamba's step-size rank, H Mamba-2's heads, G its groups, f ``d_ff``.

Not measured: these kernels run on CUDA only (``selective_scan_cuda``, the Triton SSD kernels, the
WKV kernel); on the CPU transformers runs its reference torch code instead, which keeps far more: the
``cpu`` device convention counts that code (:mod:`service.core.recurrent_activations_cpu`, measured).
RWKV-6/7 are the exception: fla's Triton kernels run on the CPU too, in Triton's interpreter
(``validation/measure_rwkv_layers.py``), so both conventions keep their count. Pure Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.core.architecture import Architecture, LayerType
from service.core.kernels import DeviceConvention
from service.core.recurrent import DELTA_CHUNK_TOKENS, deltanet_conv_width, deltanet_sizes, inner_width
from service.core.recurrent_activations_cpu import cpu_mixer_bytes
from service.core.rwkv import saved_bytes_per_token as rwkv_saved_bytes_per_token

SCAN_CHUNK_TOKENS = 2048
"""Tokens per chunk of ``selective_scan_cuda``'s forward, which keeps the running state (real and
imaginary parts, fp32) at the end of every chunk for the backward pass (``kChunkSize`` in
state-spaces/mamba ``csrc/selective_scan``; the ``x`` it returns has ``n_chunks x 2*dstate``
values per channel)."""
FP32_BYTES = 4
RECURRENT_TYPES = (LayerType.MAMBA, LayerType.MAMBA2, LayerType.RWKV, LayerType.GATED_DELTANET, LayerType.SHORT_CONV)
"""The mixers counted here."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MixerActivations:
    """Bytes one recurrent mixer keeps for one micro-batch: ``replicated`` is the ``h``-wide
    projection input (divided by ``t`` under sequence parallelism by the caller), ``sharded`` what
    the tensor-parallel ranks split (already divided by ``t``)."""

    replicated_bytes: int
    sharded_bytes: int


def mixer_activation_bytes(
    arch: Architecture, kind: LayerType, *, seq_len: int, micro_batch_size: int, element_bytes: int, tp: int = 1,
    device: DeviceConvention = DeviceConvention.CUDA,
) -> MixerActivations:  # fmt: skip
    """The kept bytes of one ``kind`` mixer (one of :data:`RECURRENT_TYPES`) for ``micro_batch_size``
    sequences of ``seq_len`` tokens in ``element_bytes``-byte activations, on one of ``tp`` ranks. On
    the ``cpu`` convention Mamba, Mamba-2 and RWKV-4 follow transformers' reference torch code
    (:mod:`service.core.recurrent_activations_cpu`); Gated DeltaNet, RWKV-6/7 (fla's kernels, which run on
    the CPU in Triton's interpreter) and the short convolution (the same code on either device) keep the
    counts below."""
    tokens, e = seq_len * micro_batch_size, element_bytes
    h = arch.d_model
    if device is DeviceConvention.CPU and _has_cpu_count(arch, kind):
        kept = cpu_mixer_bytes(arch, kind, seq_len=seq_len, micro_batch_size=micro_batch_size, element_bytes=e)
        return MixerActivations(replicated_bytes=e * tokens * h, sharded_bytes=math.ceil(kept / tp))
    if kind is LayerType.MAMBA2:
        per_token, per_sequence = _mamba2(arch, e)
    elif kind is LayerType.MAMBA:
        per_token, per_sequence = _mamba(arch, e, seq_len)
    elif kind is LayerType.RWKV:
        per_token = _rwkv4(arch, e) if (arch.rwkv_version or 4) == 4 else rwkv_saved_bytes_per_token(arch, e)
        per_sequence = 0
    elif kind is LayerType.GATED_DELTANET:
        per_token, per_sequence = _gated_deltanet(arch, e), 0
    elif kind is LayerType.SHORT_CONV:
        per_token, per_sequence = _short_conv(arch, e), 0
    else:
        raise ValueError(f"{kind} is not a recurrent mixer")
    sharded = math.ceil((per_token * tokens + per_sequence * micro_batch_size) / tp)
    return MixerActivations(replicated_bytes=e * tokens * h, sharded_bytes=sharded)


def _has_cpu_count(arch: Architecture, kind: LayerType) -> bool:
    """Whether the CPU convention has its own count for ``kind``: Mamba, Mamba-2 and RWKV-4 (RWKV-6/7 run
    fla's kernels on either device)."""
    return kind in (LayerType.MAMBA, LayerType.MAMBA2) or (kind is LayerType.RWKV and (arch.rwkv_version or 4) == 4)


def _mamba2(arch: Architecture, e: int) -> tuple[int, int]:
    """Mamba-2's memory-efficient path, ``mamba_split_conv1d_scan_combined`` (state-spaces/mamba
    ``mamba_ssm/ops/triton/ssd_combined.py``, ``MambaSplitConv1dScanCombinedFn``; the default of
    ``Mamba2`` in training and of transformers' ``Mamba2Mixer`` with the kernels installed; Dao & Gu
    2024 §8). Beside the ``in_proj`` input it saves the projection's output ``zxbcdt``,
    ``2I + 2GN + H`` wide, the scan's output before the gated norm ``out_x`` (``I``) and the norm's
    fp32 reciprocal RMS per group (none without the gated norm, ``ssm_gated_norm`` false); the
    convolution, the chunk states, the gate and the ``out_proj`` input are recomputed in the backward
    pass."""
    inner = inner_width(arch)
    groups, n, heads = arch.ssm_n_groups or 0, arch.ssm_state_size or 0, arch.ssm_n_heads or 0
    rstd = FP32_BYTES * groups if arch.ssm_gated_norm else 0
    return e * (2 * inner + 2 * groups * n + heads) + e * inner + rstd, 0


def _mamba(arch: Architecture, e: int, seq_len: int) -> tuple[int, int]:
    """Mamba's fused path, ``mamba_inner_fn`` with ``checkpoint_lvl=1`` (state-spaces/mamba
    ``mamba_ssm/ops/selective_scan_interface.py``, ``MambaInnerFn``; Gu & Dao 2023 §3.3.2, "we do not
    save the intermediate states ... but recompute them in the backward pass"): the ``in_proj`` output
    ``xz`` (``2I``), ``x_dbl`` (``R + 2N``) and contiguous copies of B and C (``2N``), the scan's output
    ``out`` (``I``) and its chunk states (fp32, ``2N`` per channel every :data:`SCAN_CHUNK_TOKENS`
    tokens); the convolution's output and the step size are recomputed.

    With norms inside the mixer (``ssm_inner_norms``: Jamba's RMSNorms on the step size, B and C)
    transformers' ``JambaMambaMixer`` cannot use the fused function and calls the kernels one by one:
    ``causal_conv1d_fn`` keeps its input (the ``xz`` storage, ``2I``), ``x_proj`` its input (the
    convolution's output, ``I``), ``selective_scan_fn`` the step size ``delta`` (``I``), its output
    ``out`` (``I``) beside the gate (in ``xz``), and ``out_proj`` its input (``I``); the three norms keep
    their ``R + 2N`` inputs as a norm does (an fp32 copy and the normalised tensor), ``dt_proj`` its
    input ``R`` and the scan contiguous copies of B and C (``2N``)."""
    inner, n, r = inner_width(arch), arch.ssm_state_size or 0, arch.ssm_dt_rank or 0
    chunk_states = FP32_BYTES * inner * 2 * n * -(-seq_len // SCAN_CHUNK_TOKENS)
    if arch.ssm_inner_norms:
        small = (e + FP32_BYTES + e) * (r + 2 * n) + e * r + e * 2 * n
        return e * 6 * inner + small, chunk_states
    return e * 3 * inner + e * (r + 2 * n) + e * 2 * n, chunk_states


def _rwkv4(arch: Architecture, e: int) -> int:
    """RWKV-4's time mixing and channel mixing as transformers' ``RwkvSelfAttention`` and
    ``RwkvFeedForward`` run them with the WKV CUDA kernel (``RwkvLinearAttention``, which saves the
    key, value and output; Peng et al. 2023 §3.1, §3.2): beyond the ``h``-wide input counted as
    replicated, the token-shifted copy, the three mixed inputs of key, value and receptance, the
    sigmoid of the receptance, WKV's key, value and output and the output projection's input (9
    ``h``-wide tensors); channel mixing keeps its own input, its shifted copy, two mixed inputs, the
    receptance's sigmoid and the value projection's output (6 of ``h``), and the squared ReLU's input
    and output (``2f``)."""
    h, f = arch.d_model, arch.d_ff
    return e * (9 * h + 6 * h + 2 * f)


def _gated_deltanet(arch: Architecture, e: int) -> int:
    """Gated DeltaNet as ``Qwen3NextGatedDeltaNet`` runs it with the ``fla`` and ``causal-conv1d`` kernels
    installed (Yang et al. 2024, "Gated Delta Networks", §3.3). ``chunk_gated_delta_rule``'s autograd
    function (``ChunkGatedDeltaRuleFunction.forward`` in fla-org/flash-linear-attention
    ``fla/ops/gated_delta_rule/chunk.py``) saves the L2-normalised q and k with their fp32 reciprocal
    norms (``l2norm_fwd``; q and k repeated to the ``H_v`` value heads, ``d_k`` wide each), v
    (``H_v*d_v``), the chunk-local cumulative decay g (fp32, one per head), beta (one per head) and the
    inverted ``C x C`` WY block ``A`` (C = 64 per token and head, in the activations' dtype: ``solve_tril``
    with ``output_dtype=k.dtype``); the chunk states ``h`` and the new values are recomputed in the
    backward pass (``chunk_gated_delta_rule_bwd`` reruns ``recompute_w_u_fwd`` and
    ``chunk_gated_delta_rule_fwd_h``). Around it: ``causal_conv1d_fn`` keeps its input, the q, k, v
    projection (``conv_width``); the decay ``-exp(A_log) * softplus(a + dt_bias)`` keeps the softplus's
    fp32 input and output; ``FusedRMSNormGated`` keeps the kernel's output, the gate z (``H_v*d_v`` each)
    and an fp32 reciprocal RMS per head; ``out_proj`` its input (``H_v*d_v``)."""
    _, hv, dk, dv, _ = deltanet_sizes(arch)
    value = hv * dv
    kernel = e * (2 * hv * dk + value + hv + DELTA_CHUNK_TOKENS * hv) + FP32_BYTES * 3 * hv  # q, k, v, beta, A; rstd, g
    around = e * (deltanet_conv_width(arch) + 3 * value) + FP32_BYTES * 3 * hv  # conv input, o, z, norm out; fp32
    return kernel + around


def _short_conv(arch: Architecture, e: int) -> int:
    """LFM2's gated short convolution as ``Lfm2ShortConv`` runs under autograd (``causal_conv1d_fn``, or
    ``F.conv1d`` without the kernel, saves its input as any convolution does): beyond the ``in_proj``
    input, the product ``B*x`` keeps both factors, views of ``in_proj``'s ``3h``-wide output, which the
    later ``C*y`` reads too (the whole output is kept); the convolution its input ``B*x``; ``C*y`` the
    convolution's output; ``out_proj`` its input: ``3h + h + h + h``."""
    return e * 6 * arch.d_model
