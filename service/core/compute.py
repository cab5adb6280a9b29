"""Training and inference FLOPs.

Model FLOPs are what the model needs (what MFU counts); hardware FLOPs add what activation
recomputation executes again (what HFU counts) — Chowdhery et al. 2022 (PaLM), Appendix B.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from service.core.architecture import Architecture, LayerType, ModelShape
from service.core.errors import InvalidSpecError, MissingArchitectureError
from service.core.limits import check_flops
from service.core.op_checkpoint import recomputed_matmul_weights
from service.core.params import active_matmul_weights, count_params
from service.core.recurrent import recurrence_flops_per_token
from service.core.rwkv import wkv_formula

REQUIRED_ARCHITECTURE_FIELDS = ("n_layers", "d_model", "n_heads", "d_ff", "vocab_size")


class Recompute(StrEnum):
    """Activation recomputation (Korthikanti et al. 2022, §5): ``selective`` recomputes only the
    attention core (QK^T, softmax, dropout, AV); ``full`` recomputes the whole forward pass;
    ``selective_op`` is PyTorch's op-level selective checkpointing as torchtitan applies it
    (``mode = "selective"``, ``selective_ac_option = "op"``): it keeps every second matmul's output
    and SDPA's, and recomputes every other op of the block (:mod:`service.core.op_checkpoint`)."""

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"
    SELECTIVE_OP = "selective_op"


# Each mode's code in the planner's layout arrays (service.core.steptime, service.core.plan_space)
RECOMPUTE_CODES = {Recompute.NONE: 0, Recompute.SELECTIVE: 1, Recompute.FULL: 2, Recompute.SELECTIVE_OP: 3}
RC_SELECTIVE, RC_FULL, RC_SELECTIVE_OP = (
    RECOMPUTE_CODES[m] for m in (Recompute.SELECTIVE, Recompute.FULL, Recompute.SELECTIVE_OP)
)
SEARCHED_RECOMPUTE_CODES = (0, 1, 2)  # what a search tries: selective_op only where a request fixes it


class AttentionFormula(StrEnum):
    """Which published formula adds the attention (sequence-length) FLOPs.

    ``kaplan``: ``6*N + 6*L*s*d_attn`` per token, N without embeddings (Kaplan et al. 2020,
    Table 1, training = 3 x forward).
    ``palm``: ``6*N + 12*L*a*d_head*s`` per token (Chowdhery et al. 2022, Appendix B). PaLM ties
    its input and output embeddings, so its N counts the ``V*h`` table once, as the logit
    projection; here N is the active matmul weights (the layers' projections and the ``V*h``
    logit projection), which is PaLM's N for a tied model and leaves out the free embedding
    lookup of an untied one (Llama-3-8B's 128K vocabulary would add 7 %).
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
    Multi-head latent attention scores over ``qk_nope_head_dim + qk_rope_head_dim`` and mixes
    ``v_head_dim`` values per head (DeepSeek-V2 §2.1). Sliding-window layers attend to at most
    ``sliding_window`` keys (Beltagy et al. 2020 §3.1); with ``causal``, a sequence of ``s`` tokens then
    averages ``w - w^2/(2s)`` keys per query instead of ``s/2``. Only the attention layers count
    (``layer_types``); the recurrent layers' scans are :func:`mixing_flops_per_token`'s.
    """
    per_key = 2.0 * attention_width_per_key(arch)  # QK^T + AV, multiply-add = 2 FLOPs
    local, w = arch.local_layers, float(arch.sliding_window or 0)
    if causal:
        global_keys = context / 2
        local_keys = context / 2 if context <= w else w - w * w / (2 * context)
    else:
        global_keys = context
        local_keys = min(context, w)
    return per_key * (arch.global_layers * global_keys + local * local_keys)


def prompt_attention_flops(arch: Architecture, mean_tokens: float, length_cv: float = 0.0) -> float:
    """Forward FLOPs of a prompt's causal attention core, averaged over prompts of mean length ``n``
    and coefficient of variation ``length_cv``: ``E[L * keys(L)]`` over the lengths ``L``. A global
    layer's core grows as ``L^2 / 2``, so its mean is exactly ``(1 + cv^2) n^2 / 2`` (``E[L^2] = (1 +
    cv^2) E[L]^2``); a sliding-window layer's as ``L^2 / 2`` up to its window ``w`` and ``w L - w^2 / 2``
    beyond (:func:`attention_score_flops_per_token`), averaged over a gamma distribution of shape
    ``1 / cv^2`` (cv 1: exponential lengths, the maximum-entropy distribution of a positive length with a
    given mean, Jaynes 1957) by quadrature. ``length_cv`` 0: one prompt of ``n`` tokens."""
    n = float(mean_tokens)
    if not length_cv or n <= 0:
        return attention_score_flops_per_token(arch, n, causal=True) * n
    return _spread_attention_flops(arch, n, float(length_cv))


@functools.lru_cache(maxsize=1024)  # pure; a serving plan asks it for each replica
def _spread_attention_flops(arch: Architecture, n: float, cv: float) -> float:
    per_key = 2.0 * attention_width_per_key(arch)
    total = per_key * arch.global_layers * (1.0 + cv * cv) * n * n / 2.0
    if arch.local_layers and arch.sliding_window:
        w, shape = float(arch.sliding_window), 1.0 / (cv * cv)
        lengths = n * np.geomspace(1e-6, 60.0, 6000)
        log_pdf = (shape - 1.0) * np.log(lengths) - lengths * shape / n - math.lgamma(shape) - shape * math.log(n / shape)
        per_length = np.where(lengths <= w, lengths * lengths / 2.0, w * lengths - w * w / 2.0)
        total += per_key * arch.local_layers * float(np.trapezoid(per_length * np.exp(log_pdf), lengths))
    return total


def mixing_flops_per_token(arch: Architecture, context: float, *, causal: bool) -> float:
    """Forward FLOPs of the sequence-mixing cores for one token: the attention layers' scores
    (:func:`attention_score_flops_per_token`) plus the recurrent layers' scans, constant in the
    context (:func:`service.core.recurrent.recurrence_flops_per_token`: Mamba's selective scan,
    Mamba-2's chunked SSD, RWKV's WKV)."""
    return attention_score_flops_per_token(arch, context, causal=causal) + recurrence_flops_per_token(arch)


def attention_width_per_key(arch: Architecture) -> int:
    """Per layer and key, the widths QK^T and AV multiply over: ``a*d_head`` each, or for multi-head
    latent attention ``a*(qk_nope_head_dim + qk_rope_head_dim)`` and ``a*v_head_dim``."""
    if arch.is_mla:
        return arch.n_heads * ((arch.qk_nope_head_dim or 0) + (arch.qk_rope_head_dim or 0) + (arch.v_head_dim or 0))
    return 2 * arch.q_dim


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


def _recurrent_formula(arch: Architecture) -> str:
    """The sources of a recurrent model's scan FLOPs, as :func:`training_flops` adds them."""
    formula = (
        f"; + the scans of the {arch.recurrent_layers} recurrent layers: Mamba 9*I*N (Gu & Dao 2023 §3.3.2), "
        "Mamba-2 chunked SSD (Dao & Gu 2024 §6), RWKV-4 WKV (Peng et al. 2023 §3.1)"
    )
    if arch.layers_of(LayerType.GATED_DELTANET):
        formula += ", Gated DeltaNet's chunked delta rule (Yang et al. 2024 §3.3)"
    if arch.layers_of(LayerType.SHORT_CONV):
        formula += ", a short convolution's two gates (LFM2's Lfm2ShortConv)"
    if arch.shared_attention_layers:
        formula += f"; a shared attention block's weights counted at each of its {arch.shared_attention_layers} uses (Zamba)"
    return formula + wkv_formula(arch)


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
    Anthony, Biderman & Schoelkopf 2023, "Transformers Math 101"), P all active parameters,
    the embedding table included (the rule of thumb as published).
    With ``include_attention`` only matrix multiplies are counted — what a FLOP counter such as
    ``torch.utils.flop_counter`` sees — and the sequence-length term of ``attention_formula`` is
    added (``palm`` and ``megatron``: the active matmul weights, embedding lookup free).
    Recompute adds hardware FLOPs only: ``full`` one more forward pass (``8PD``, Korthikanti et al.
    2022 §5; PaLM Appendix B), ``selective`` the forward attention core it re-runs, ``4*L*a*d_head*s`` per
    token (Korthikanti §5 quote 2.7 % for GPT-3, the size of the whole fwd+bwd attention term;
    the forward part alone is under 1 %), ``selective_op`` the matmuls torchtitan's op policy does
    not save, ``2*W_r`` per token and layer (:func:`service.core.op_checkpoint.recomputed_matmul_weights`).
    """
    p = active_params(model)
    attention_fwd = 0.0  # forward attention-core FLOPs per token
    attention_in_forward = 0.0  # the part of ``forward`` that is the attention core
    if include_attention or recompute is Recompute.SELECTIVE:
        reason = "include_attention" if include_attention else "recompute='selective'"
        arch = require_architecture(model, reason)
        s = seq_len or arch.max_seq_len
        attention_fwd = mixing_flops_per_token(arch, s, causal=causal)
    if not include_attention:
        forward = 2 * p
        formula = "C = 6*P*D, P all active parameters incl. the embedding table (Kaplan et al. 2020 §2.1; Transformers Math 101)"
    elif attention_formula is AttentionFormula.KAPLAN:
        # Kaplan Table 1: forward 2N + 2*L*n_ctx*d_attn (N non-embedding, active experts only);
        # training = 3 x forward
        b = count_params(arch)
        kaplan_attention = 2.0 * arch.attention_layers * s * arch.q_dim / (2 if causal else 1)
        kaplan_attention += recurrence_flops_per_token(arch)
        p = float(b.active - b.embedding - b.lm_head)
        forward = 2 * p + kaplan_attention
        attention_in_forward = kaplan_attention
        formula = "C = (6*N + 6*L*s*d_attn)*D, N non-embedding active (Kaplan et al. 2020, Table 1)"
    elif attention_formula is AttentionFormula.MEGATRON:
        p = float(active_matmul_weights(arch))
        forward = 2 * p + attention_fwd
        attention_in_forward = attention_fwd
        formula = (
            "C = (6*W + 12*L*a*d_head*s)*D, W the active matmul weights incl. the V*h logit layer "
            "(Narayanan et al. 2021 §5.1, generalised to GQA/SwiGLU/MoE)"
        )
    else:
        p = float(active_matmul_weights(arch))
        forward = 2 * p + attention_fwd
        attention_in_forward = attention_fwd
        formula = (
            "C = (6*N + 12*L*a*d_head*s)*D, N the active matmul weights incl. the V*h logit projection, "
            "the embedding lookup free (Chowdhery et al. 2022, PaLM Appendix B)"
        )
    if include_attention and causal:
        formula += "; causal masking halves the attention term"
    if include_attention and arch.recurrent_layers:
        formula += _recurrent_formula(arch)
    backward = 2 * forward
    if recompute is Recompute.FULL:
        # the layers' forward pass runs again; the logit layer is not checkpointed (Megatron)
        megatron = include_attention and attention_formula is AttentionFormula.MEGATRON
        extra = forward - (2.0 * arch.vocab_size * arch.d_model if megatron else 0.0)
        formula += "; full recompute adds one forward pass to hardware FLOPs (8*P*D)"
    elif recompute is Recompute.SELECTIVE:
        extra = attention_fwd
        formula += "; selective recompute adds the forward attention core (Korthikanti et al. 2022 §5)"
    elif recompute is Recompute.SELECTIVE_OP:
        arch = require_architecture(model, "recompute='selective_op'")
        extra = 2.0 * arch.n_layers * recomputed_matmul_weights(arch)
        formula += "; selective_op recompute adds every second matmul of each block (torchtitan's op policy)"
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

    ``flops_per_token`` is the average cost of one decode step (the prefill average when no
    decode step runs); ``flops_per_token_weights`` is its weights part alone (``2*W``).
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
    per_key = 2.0 * attention_width_per_key(arch)
    local = arch.local_layers
    if not local:
        return per_key * arch.attention_layers * positions
    w = arch.sliding_window or 0
    # a sliding-window layer: position t attends to min(t, w) keys
    below = max(0, min(last, w) - first + 1)  # positions first..min(last, w) attend to t keys
    below_sum = (first + first + below - 1) * below / 2 if below else 0.0
    windowed = below_sum + w * (last - first + 1 - below)
    return per_key * (arch.global_layers * positions + local * windowed)


def inference_flops(
    model: ModelShape,
    *,
    prompt_tokens: int,
    output_tokens: int,
    batch_size: int = 1,
    include_attention: bool = True,
) -> InferenceCompute:
    """Forward FLOPs of generating ``output_tokens`` tokens after a prompt, matrix multiplies only.

    The prefill runs the layers over the ``n`` prompt tokens and the logit projection once (only
    the last position's logits are needed: they give the first new token); each later token is a
    decode step that feeds the previous token through the layers and the logit projection, reading
    the KV cache — ``n + m - 1`` token passes and ``m`` logit projections for ``m`` new tokens, as
    transformers' ``generate`` and serving engines run it. Per token pass ``2*W_layers`` (the
    layers' projection weights, active experts only; Kaplan et al. 2020 §2.1: forward = 2N) plus,
    with ``include_attention``, ``4*L*a*d_head*t`` over the ``t`` cached positions including its
    own (QK^T and AV, PaLM Appendix B); per logit projection ``2*V*h``. The embedding lookup costs
    no FLOPs. Without a prompt every new token is fed in: ``m`` passes. A bare parameter count is
    taken as ``2*P`` per pass (the shape, hence the lookup, unknown).
    """
    if prompt_tokens < 0 or output_tokens < 0 or prompt_tokens + output_tokens < 1:
        raise InvalidSpecError("output_tokens", "prompt_tokens + output_tokens must be at least 1")
    arch = require_architecture(model, "include_attention") if include_attention else None
    if isinstance(model, Architecture):
        logits = float(model.vocab_size * model.d_model)
        layers = float(active_matmul_weights(model)) - logits
        weights_formula = "2*W_layers per token pass + 2*V*h per generated token (matmuls only, lookup free)"
    else:
        logits, layers = 0.0, active_params(model)
        weights_formula = "2*P per token pass (P all parameters: the shape is unknown)"
    # the prefill's last position yields the first new token; later tokens need a decode pass each
    decode_steps = output_tokens - 1 if prompt_tokens and output_tokens else output_tokens
    prefill_logits = 1 if prompt_tokens else 0
    prefill = 2 * layers * prompt_tokens + 2 * logits * prefill_logits + _attention_over_positions(arch, 1, prompt_tokens)
    decode = (2 * layers + 2 * logits) * decode_steps + _attention_over_positions(
        arch, prompt_tokens + 1, prompt_tokens + decode_steps
    )
    if arch is not None and arch.recurrent_layers:  # the scans: chunked over the prompt, one step per new token
        prefill += recurrence_flops_per_token(arch) * prompt_tokens
        decode += recurrence_flops_per_token(arch, decode=True) * decode_steps
    prefill, decode = prefill * batch_size, decode * batch_size
    if decode_steps:
        per_token = decode / (batch_size * decode_steps)
    else:
        per_token = prefill / (batch_size * prompt_tokens)
    formula = f"FLOPs = {weights_formula} (Kaplan et al. 2020 §2.1)"
    if include_attention:
        formula += " + 4*L*a*d_head*t over t cached tokens (PaLM Appendix B)"
    if arch is not None and arch.recurrent_layers:
        formula += (
            f" + the scans of {arch.recurrent_layers} recurrent layers per token: chunked over the prompt, one "
            "state update per new token (Gu & Dao 2023 §3.3.2; Dao & Gu 2024 §6; Peng et al. 2023 §3.1)"
        )
        if arch.layers_of(LayerType.GATED_DELTANET):
            formula += " (Gated DeltaNet: Yang et al. 2024 §3.3)"
        formula += wkv_formula(arch)
    return InferenceCompute(
        prefill_flops=check_flops("prefill_flops", prefill),
        decode_flops=check_flops("decode_flops", decode),
        total_flops=check_flops("total_flops", prefill + decode),
        flops_per_token=per_token,
        flops_per_token_weights=2 * (layers + logits),
        formula=formula,
    )
