"""Training and inference FLOPs.

Model FLOPs are what the model needs (what MFU counts); hardware FLOPs add what activation
recomputation executes again (what HFU counts) — Chowdhery et al. 2022 (PaLM), Appendix B.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.core.architecture import Architecture, ModelShape
from service.core.errors import InvalidSpecError, MissingArchitectureError
from service.core.limits import check_flops
from service.core.params import active_matmul_weights, count_params

REQUIRED_ARCHITECTURE_FIELDS = ("n_layers", "d_model", "n_heads", "d_ff", "vocab_size")


class Recompute(StrEnum):
    """Activation recomputation (Korthikanti et al. 2022, §5): ``selective`` recomputes only the
    attention core (QK^T, softmax, dropout, AV); ``full`` recomputes the whole forward pass."""

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"


class AttentionFormula(StrEnum):
    """Which published formula adds the attention (sequence-length) FLOPs.

    ``kaplan``: ``6*N + 6*L*s*d_attn`` per token, N without embeddings (Kaplan et al. 2020,
    Table 1, training = 3 x forward).
    ``palm``: ``6*N + 12*L*a*d_head*s`` per token (Chowdhery et al. 2022, Appendix B), N the
    active parameters.
    ``megatron``: every matmul counted: ``6*(L*(attention+MLP weights)) + 12*L*a*d_head*s + 6*V*h``
    per token — Narayanan et al. 2021 §5.1 (``72*L*h^2*(1 + s/(6h)) + 6*V*h`` for MHA with a 4h
    GELU MLP), generalised to GQA, SwiGLU and MoE.
    """

    KAPLAN = "kaplan"
    PALM = "palm"
    MEGATRON = "megatron"


def require_architecture(model: ModelShape, needed_for: str) -> Architecture:
    """Return ``model`` as an :class:`Architecture`, or raise naming the missing fields."""
    if isinstance(model, Architecture):
        return model
    raise MissingArchitectureError(needed_for, REQUIRED_ARCHITECTURE_FIELDS)


def active_params(model: ModelShape) -> float:
    """Parameters used per token: all of a dense model, ``experts_per_token`` experts of an MoE."""
    if isinstance(model, Architecture):
        return float(count_params(model).active)
    return model.active


def attention_score_flops_per_token(arch: Architecture, context: float, *, causal: bool) -> float:
    """Forward FLOPs of the attention core for one query token over ``context`` keys.

    ``QK^T`` costs ``2*a*d_head*context`` and ``softmax(.)V`` another ``2*a*d_head*context`` per
    layer (PaLM Appendix B counts both). Causal masking lets a kernel skip half of a training
    sequence's scores on average, halving the term; without ``causal`` the full square is counted,
    as PaLM and Megatron's formulas do.
    """
    flops = 4.0 * arch.n_layers * arch.q_dim * context
    return flops / 2 if causal else flops


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingCompute:
    """FLOPs of a training run.

    ``model_flops`` counts forward + backward once (MFU's numerator); ``hardware_flops`` adds what
    recomputation executes again (HFU's numerator). Per-token values are per training token.
    """

    tokens: float
    model_flops_per_token: float
    hardware_flops_per_token: float
    forward_flops_per_token: float
    backward_flops_per_token: float
    recompute_flops_per_token: float
    model_flops: float
    hardware_flops: float
    formula: str
    params_used: float
    attention_flops_per_token: float = 0.0  # the attention core's share of forward_flops_per_token


def training_flops(
    model: ModelShape,
    tokens: float,
    *,
    recompute: Recompute = Recompute.NONE,
    include_attention: bool = False,
    attention_formula: AttentionFormula = AttentionFormula.PALM,
    seq_len: int | None = None,
    causal: bool = False,
) -> TrainingCompute:
    """Training FLOPs for ``tokens`` tokens.

    Default: ``C = 6*P*D`` — forward ``2PD``, backward ``4PD`` (Kaplan et al. 2020 §2.1;
    Anthony, Biderman & Schoelkopf 2023, "Transformers Math 101"), P the active parameters.
    With ``include_attention`` the sequence-length term of ``attention_formula`` is added.
    Recompute adds hardware FLOPs only: ``full`` one more forward pass (``8PD``, Korthikanti et al.
    2022 §5; PaLM Appendix B), ``selective`` the forward attention core it re-runs, ``4*L*a*d_head*s`` per
    token (Korthikanti §5 quote 2.7 % for GPT-3, the size of the whole fwd+bwd attention term;
    the forward part alone is under 1 %).
    """
    p = active_params(model)
    attention_fwd = 0.0  # forward attention-core FLOPs per token
    attention_in_forward = 0.0  # the part of ``forward`` that is the attention core
    if include_attention or recompute is Recompute.SELECTIVE:
        reason = "include_attention" if include_attention else "recompute='selective'"
        arch = require_architecture(model, reason)
        s = seq_len or arch.max_seq_len
        attention_fwd = attention_score_flops_per_token(arch, s, causal=causal)
    if not include_attention:
        forward = 2 * p
        formula = "C = 6*P*D (Kaplan et al. 2020 §2.1; Transformers Math 101)"
    elif attention_formula is AttentionFormula.KAPLAN:
        # Kaplan Table 1: forward 2N + 2*L*n_ctx*d_attn (N non-embedding, active experts only);
        # training = 3 x forward
        b = count_params(arch)
        kaplan_attention = 2.0 * arch.n_layers * s * arch.q_dim / (2 if causal else 1)
        forward = 2 * (b.active - b.embedding - b.lm_head) + kaplan_attention
        attention_in_forward = kaplan_attention
        formula = "C = (6*N + 6*L*s*d_attn)*D, N non-embedding active (Kaplan et al. 2020, Table 1)"
    elif attention_formula is AttentionFormula.MEGATRON:
        forward = 2 * active_matmul_weights(arch) + attention_fwd
        attention_in_forward = attention_fwd
        formula = (
            "C = (6*W + 12*L*a*d_head*s)*D, W the active matmul weights incl. the V*h logit layer "
            "(Narayanan et al. 2021 §5.1, generalised to GQA/SwiGLU/MoE)"
        )
    else:
        forward = 2 * p + attention_fwd
        attention_in_forward = attention_fwd
        formula = "C = (6*P + 12*L*a*d_head*s)*D (Chowdhery et al. 2022, PaLM Appendix B)"
    if include_attention and causal:
        formula += "; causal masking halves the attention term"
    backward = 2 * forward
    if recompute is Recompute.FULL:
        # the layers' forward pass runs again; the logit layer is not checkpointed (Megatron)
        megatron = include_attention and attention_formula is AttentionFormula.MEGATRON
        extra = forward - (2.0 * arch.vocab_size * arch.d_model if megatron else 0.0)
        formula += "; full recompute adds one forward pass to hardware FLOPs (8*P*D)"
    elif recompute is Recompute.SELECTIVE:
        extra = attention_fwd
        formula += "; selective recompute adds the forward attention core (Korthikanti et al. 2022 §5)"
    else:
        extra = 0.0
    model_per_token = forward + backward
    hardware_per_token = model_per_token + extra
    return TrainingCompute(
        tokens=tokens,
        model_flops_per_token=model_per_token,
        hardware_flops_per_token=hardware_per_token,
        forward_flops_per_token=forward,
        backward_flops_per_token=backward,
        recompute_flops_per_token=extra,
        model_flops=check_flops("total_flops", model_per_token * tokens),
        hardware_flops=check_flops("hardware_flops", hardware_per_token * tokens),
        formula=formula,
        params_used=p,
        attention_flops_per_token=attention_in_forward,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceCompute:
    """FLOPs of serving ``batch_size`` sequences: a prompt (prefill) then generated tokens (decode).

    ``flops_per_token`` is the average decode cost of one generated token (the prefill average
    when nothing is generated); ``flops_per_token_weights`` is the ``2P`` part alone.
    """

    prefill_flops: float
    decode_flops: float
    total_flops: float
    flops_per_token: float
    flops_per_token_weights: float
    formula: str


def _attention_over_positions(arch: Architecture | None, first: int, last: int) -> float:
    """Attention-core FLOPs of the tokens at positions ``first..last`` (1-based), each attending
    to every position up to its own: ``4*L*a*d_head * sum(t)`` (closed form, no loop)."""
    if arch is None or last < first:
        return 0.0
    positions = (first + last) * (last - first + 1) / 2
    return attention_score_flops_per_token(arch, positions, causal=False)


def inference_flops(
    model: ModelShape,
    *,
    prompt_tokens: int,
    output_tokens: int,
    batch_size: int = 1,
    include_attention: bool = True,
) -> InferenceCompute:
    """Forward FLOPs of prefill and decode.

    Per token ``2*P`` for the weights (Kaplan et al. 2020 §2.1: forward = 2N per token) plus,
    with ``include_attention``, ``4*L*a*d_head*t`` for attending over the ``t`` tokens before it
    and itself (QK^T and AV, PaLM Appendix B); a prompt of n tokens therefore costs
    ``2*P*n + 4*L*a*d_head*n(n+1)/2``. Decode reads the KV cache, so the prompt is not
    recomputed.
    """
    if prompt_tokens < 0 or output_tokens < 0 or prompt_tokens + output_tokens < 1:
        raise InvalidSpecError("output_tokens", "prompt_tokens + output_tokens must be at least 1")
    p = active_params(model)
    arch = require_architecture(model, "include_attention") if include_attention else None
    prefill = 2 * p * prompt_tokens + _attention_over_positions(arch, 1, prompt_tokens)
    decode = 2 * p * output_tokens + _attention_over_positions(
        arch, prompt_tokens + 1, prompt_tokens + output_tokens
    )
    prefill, decode = prefill * batch_size, decode * batch_size
    if output_tokens:
        per_token = decode / (batch_size * output_tokens)
    else:
        per_token = prefill / (batch_size * prompt_tokens)
    formula = "FLOPs/token = 2*P (Kaplan et al. 2020 §2.1)"
    if include_attention:
        formula += " + 4*L*a*d_head*t over t cached tokens (PaLM Appendix B)"
    return InferenceCompute(
        prefill_flops=check_flops("prefill_flops", prefill),
        decode_flops=check_flops("decode_flops", decode),
        total_flops=check_flops("total_flops", prefill + decode),
        flops_per_token=per_token,
        flops_per_token_weights=2 * p,
        formula=formula,
    )
