"""Activation memory of transformer training, after Korthikanti et al. 2022.

"Reducing Activation Recomputation in Large Transformer Models" (Korthikanti, Casper, Lym,
McAfee, Andersch, Shoeybi, Catanzaro; MLSys 2023, arXiv:2205.05198), §4 and Table 2. The paper's
per-layer total ``s*b*h*(34 + 5*a*s/h)`` bytes assumes multi-head attention, a 4h GELU MLP,
16-bit activations and dropout after attention and the MLP. Here each stored tensor is counted
from the architecture instead, so GQA, SwiGLU, MoE, other MLP widths, no dropout and
FlashAttention get their own constant; for the paper's setting the terms reduce to its Table 2
exactly (tests/core/test_activations.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from service.core import pipeline
from service.core.architecture import Architecture, LayerType
from service.core.compute import Recompute
from service.core.errors import InvalidSpecError
from service.core.kernels import (
    AttentionKernel,
    CrossEntropy,
    Kernels,
    ResolvedKernels,
    bytes_per_score,
    dropout_mask_bytes,
    mlp_intermediates,
    norm_kept_bytes,
    resolve_kernels,
    sdpa_math_fallback,
)
from service.core.op_checkpoint import op_checkpoint_problem, saved_layer_bytes
from service.core.pipeline import SCHEDULE_CODES, PipelineSchedule, default_schedule
from service.core.recurrent_activations import RECURRENT_TYPES, mixer_activation_bytes

MASK_BYTES = 1  # CUDA's dropout keeps a bool mask (Korthikanti §4.1); the CPU's: service.core.kernels.dropout_mask_bytes
REBUILT_LAYER_FORMULA = (
    "recompute: the layer whose backward runs is rebuilt on top of the kept activations, one layer of one micro-batch "
    "(full: its activations without recompute; selective: its attention core; Korthikanti et al. 2022 §5), after the "
    "loss's peak on the stage with the output layer"
)
LSE_BYTES = 4  # FlashAttention keeps one fp32 log-sum-exp per query and head (Dao et al. 2022 §3.1)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActivationOptions:
    """How the activations are kept.

    ``element_bytes`` is 2 for 16-bit (mixed) training, 4 for fp32; ``tp`` the tensor-parallel
    size; ``sequence_parallel`` shards the non-tensor-parallel parts (norms, dropout) over ``tp``
    too (Korthikanti §4.2.2); ``flash_attention`` never materialises the ``a*s^2`` scores
    (Dao et al. 2022); ``dropout`` stores masks after attention scores, attention output, MLP
    output and embeddings (the last two only with ``kernels.residual_dropout``); ``kernels`` the
    implementation (:mod:`service.core.kernels`): transformers with SDPA unless stated,
    :data:`service.core.kernels.MEGATRON` for Korthikanti's fused-kernel count.
    ``linear_input_bytes``: bytes a linear layer keeps per element of its input for the weight
    gradient, where that differs from ``element_bytes`` (FP8 training: 1 + the recipe's scales,
    :func:`service.core.fp8.linear_input_bytes`); None keeps them at ``element_bytes``.
    """

    seq_len: int
    micro_batch_size: int
    tp: int = 1
    sequence_parallel: bool = False
    recompute: Recompute = Recompute.NONE
    flash_attention: bool = False
    dropout: bool = False
    element_bytes: int = 2
    linear_input_bytes: float | None = None
    kernels: Kernels = Kernels()
    layer_delta_bytes: int = 0  # added to every layer of a stage (a LoRA fine-tune's changes: service.core.finetune)


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerActivations:
    """Bytes one transformer layer stores for one micro-batch, by part (after sharding)."""

    replicated_bytes: int  # norms, matmul inputs outside the TP region, dropout masks
    sharded_bytes: int  # Q, K, V, attention output, MLP intermediates (divided by tp)
    scores_bytes: int  # softmax output (+ dropout mask and output), or FlashAttention's LSE
    total_bytes: int


def layer_activation_bytes(arch: Architecture, opts: ActivationOptions) -> LayerActivations:
    """Bytes of activations stored by one layer for one micro-batch (Korthikanti §4.1-4.2).

    Attention block: input of the QKV projection ``e*sbh``; Q ``e*sb*a*d_head``; K and V
    ``2*e*sb*k*d_head`` (GQA shrinks them); input of the output projection ``e*sb*a*d_head``;
    softmax output ``e*a*s^2*b`` (+ dropout mask ``a*s^2*b`` and output ``e*a*s^2*b``); output
    dropout mask ``sbh``; a norm on Q and K (``qk_norm``) keeps what a norm keeps per element of them. MLP: its input ``e*sbh``; GELU keeps the activation input and the
    down-projection input ``2*e*sbf``; SwiGLU keeps the gate and up outputs and the product fed
    to the down projection ``3*e*sbf`` (Megatron-LM's fused SwiGLU recomputes the SiLU); an MoE
    token passes ``experts_per_token`` experts; output dropout mask ``sbh``. Norms: each norm's
    input ``e*sbh``. With MHA, a 4h GELU MLP, ``e = 2`` and dropout this is
    ``sbh*(10 + 24/t + 5*a*s/(h*t))`` (Table 2) — with Megatron's kernels
    (:data:`service.core.kernels.MEGATRON`).

    Other implementations keep other tensors (:mod:`service.core.kernels`, measured in
    ``ACCURACY.md``): an fp32-upcasting norm keeps ``(4 + e)*sbh`` instead of ``e*sbh``; a
    parallel block's two norms read one residual tensor (kept once); unfused activations keep 4
    (SwiGLU) or 5 (GELU) ``d_ff``-wide tensors; eager attention keeps ``bytes_per_score`` per
    score (6 with transformers' fp32 softmax, 7 with dropout) and, in transformers, K and V
    repeated to the query width; SDPA and FlashAttention keep the fp32 log-sum-exp instead of the
    scores and need no score mask. On the CPU convention (``kernels.device``) every dropout mask
    keeps the dropped tensor's dtype, and SDPA with dropout runs the fp32 math path: Q, K and V in
    fp32 (K and V at the query width where transformers repeats them) and 12 bytes a score
    (:func:`service.core.kernels.sdpa_math_fallback`).

    FP8 training (``linear_input_bytes``) keeps each linear layer's input as the quantised tensor
    its weight-gradient GEMM reads, 1 byte an element plus the recipe's scales, not ``e``: the QKV
    projection's input (MLA: and the latent up-projections' inputs), the MLP's (experts') input and,
    of the MLP's intermediates, the down projection's input; the attention kernel still keeps its
    ``e``-byte output and the output projection keeps its own FP8 copy besides (``a*d_head``, MLA
    ``a*d_v``, at 1 byte plus scales; without a fused kernel, under selective recompute (which reruns
    the kernel in the backward, Korthikanti §5) or behind an output gate, the 16-bit tensor is kept
    by nothing else and only the FP8 copy stays). Transformer Engine's ``_Linear`` and ``_LayerNormLinear``
    save the quantised input (``saved_inputmat = inputmat``), torchao's Float8 linear
    ``ctx.save_for_backward(input_fp8, weight_fp8_t)``, and DeepSeek-V3 (arXiv 2412.19437 §3.3.3)
    "cache[s] the activations in FP8 format for the backward pass of the Linear operator". A Llama
    layer keeps ``2h + f - q_dim`` bytes a token less before tensor parallelism divides them
    (:mod:`service.core.fp8`). Full
    recompute's layer input, norms, Q/K/V, scores and ``selective_op``'s saved matmul outputs
    (BF16 GEMM outputs) are unchanged.

    Selective recompute drops the scores (``5as/h`` term); full recompute keeps only the layer
    input ``2*sbh`` (divided by t with sequence parallelism); ``selective_op`` keeps the block input,
    every second matmul's output and SDPA's output and log-sum-exp
    (:func:`service.core.op_checkpoint.saved_layer_bytes`; ``scores_bytes`` holds SDPA's).

    A model with recurrent layers (Mamba, Mamba-2, RWKV) answers its mean layer: each recurrent
    layer's mixer as its training kernel keeps it (:mod:`service.core.recurrent_activations`; on the
    CPU convention as transformers' reference torch code keeps it), its
    norms and MLP as here, summed part by part (:func:`_mean_layer`).
    """
    s, b, h, e = opts.seq_len, opts.micro_batch_size, arch.d_model, opts.element_bytes
    t = opts.tp
    sbh = s * b * h
    if opts.recompute is Recompute.FULL:
        kept = e * sbh
        if opts.sequence_parallel:
            kept = math.ceil(kept / t)
        return LayerActivations(replicated_bytes=kept, sharded_bytes=0, scores_bytes=0, total_bytes=kept)
    if opts.recompute is Recompute.SELECTIVE_OP:
        if reason := op_checkpoint_problem(arch, flash_attention=opts.flash_attention):
            raise InvalidSpecError("recompute", reason)
        replicated, sharded, attention = saved_layer_bytes(arch, tokens=s * b, tp=t, sequence_parallel=opts.sequence_parallel,
                                                           element_bytes=e)  # fmt: skip
        return LayerActivations(replicated_bytes=replicated, sharded_bytes=sharded, scores_bytes=attention,
                                total_bytes=replicated + sharded + attention)  # fmt: skip
    if arch.recurrent_layers:
        return _mean_layer(arch, opts)
    return _attention_layer(arch, opts)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Parts:
    """One attention layer's kept bytes by what keeps them, before tensor parallelism divides them."""

    norms: int  # the norms' inputs (and fp32 copies)
    attention_replicated: int  # the QKV projection's input (and MLA's latents)
    mlp_replicated: int  # the MLP's (experts') inputs
    mask: int  # one residual branch's dropout mask
    attention_sharded: int  # Q, the output projection's input (math path's fp32 Q, Q's norm): divided by t
    mlp_sharded: int  # the MLP's intermediates: divided by t
    kv: int  # K and V, already divided over their ranks
    scores: int  # scores or log-sum-exp: divided by t


def _attention_parts(arch: Architecture, opts: ActivationOptions) -> _Parts:
    """The terms of :func:`layer_activation_bytes` for one attention layer with its MLP."""
    s, b, h, e = opts.seq_len, opts.micro_batch_size, arch.d_model, opts.element_bytes
    t = opts.tp
    sbh = s * b * h
    k = resolve_kernels(opts.kernels, arch, flash_attention=opts.flash_attention)
    shared_input = arch.parallel_attention and arch.norms_per_layer == 1
    if k.fp32_norms:  # each norm keeps its own fp32 copy and 16-bit normalised tensor
        norm_inputs = arch.norms_per_layer * norm_kept_bytes(k, e) * sbh
    else:  # a parallel block's norms read the same residual tensor: one copy is kept
        norm_inputs = (1 if arch.parallel_attention else arch.norms_per_layer) * e * sbh
    math_path = sdpa_math_fallback(k, dropout=opts.dropout)  # the CPU's SDPA with dropout: Q, K, V upcast to fp32
    upcast = 4 - e if math_path else 0
    fused = k.attention is not AttentionKernel.EAGER and not math_path  # a fused kernel: its output and LSE, no scores
    li = e if opts.linear_input_bytes is None else opts.linear_input_bytes  # a linear layer's kept input (FP8: 1 + scales)
    # QKV projection input (2h into Zamba's shared block)
    attention_replicated = math.ceil(li * s * b * arch.attention_input_width)
    if arch.is_mla:  # DeepSeek-V2 §2.1: heads of d_qk for Q and K, d_v for V and the output projection's input
        d_qk = (arch.qk_nope_head_dim or 0) + (arch.qk_rope_head_dim or 0)
        q_and_out, q_width = arch.n_heads * (d_qk + (arch.v_head_dim or 0)), arch.n_heads * d_qk
        kv_width = q_and_out  # K at d_qk, V at d_v per head, after the up-projection
        # the latents every rank computes (down-projections are not split): each one's norm input
        # and the up-projection's input; the kv_a output also carries the shared rotary key
        latents = (arch.q_lora_rank or 0) + (arch.kv_lora_rank or 0)
        attention_replicated += norm_kept_bytes(k, e) * s * b * latents + math.ceil(li * s * b * latents)
        attention_replicated += e * s * b * (arch.qk_rope_head_dim or 0)
        out_width = arch.n_heads * (arch.v_head_dim or 0)
    else:
        q_and_out, q_width, kv_width, out_width = 2 * arch.q_dim, arch.q_dim, None, arch.q_dim
    attention_sharded = e * s * b * q_and_out + upcast * s * b * q_width  # Q, the output-projection input; fp32 Q
    if opts.linear_input_bytes is not None:
        # the FP8 output projection keeps its own FP8 copy of its input; the 16-bit tensor stays only where a
        # fused attention kernel keeps it as its own output (eager attention and the math path keep none, nor
        # does a kernel that selective recompute reruns in the backward; a gated output's product is not the
        # kernel's output, whose factors are counted with the gate below)
        attention_sharded += math.ceil(opts.linear_input_bytes * s * b * out_width)
        if not fused or opts.recompute is Recompute.SELECTIVE or arch.attention_output_gate:
            attention_sharded -= e * s * b * out_width
    if arch.attention_output_gate:  # the gated product's two factors: sigmoid(gate) and the attention output
        attention_sharded += e * s * b * 2 * arch.q_dim
    kv_bytes = e + upcast
    if kv_width is not None:  # MLA: every head has its own K and V after the up-projection
        kv = math.ceil(kv_bytes * s * b * kv_width / t)
    elif (k.keeps_scores or math_path) and k.repeat_kv:  # transformers' eager attention repeats K and V to every query head
        kv = math.ceil(kv_bytes * s * b * 2 * arch.q_dim / t)
    else:  # K and V split over at most n_kv_heads ranks: GQA heads are replicated beyond that
        kv = math.ceil(kv_bytes * s * b * 2 * arch.kv_dim / min(t, arch.n_kv_heads))
    if arch.qk_norm or arch.qk_norm_full_width:
        # a norm on Q and on K (per head: Qwen3, Gemma 3; over the whole projection: OLMo 2) keeps its
        # input and normalised copy as any norm does (measured: ACCURACY.md), Q split over t ranks,
        # K over at most n_kv_heads
        per_element = norm_kept_bytes(k, e)
        attention_sharded += per_element * s * b * arch.q_dim
        kv += math.ceil(per_element * s * b * arch.kv_dim / min(t, arch.n_kv_heads))
    if opts.recompute is Recompute.SELECTIVE:
        scores = 0
    elif fused:
        scores = LSE_BYTES * s * b * arch.n_heads
    else:  # softmax output (+ mask + dropout output), or the fp32 probabilities and their cast
        scores = bytes_per_score(k, e, dropout=opts.dropout) * arch.n_heads * s * s * b
    return _Parts(
        norms=norm_inputs,
        attention_replicated=attention_replicated,
        # MLP (expert) input; shared with QKV under one parallel norm (Falcon, GPT-J)
        mlp_replicated=0 if shared_input else math.ceil(li * sbh * mlp_inputs_per_token(arch)),
        mask=dropout_mask_bytes(k, e) * sbh if opts.dropout and k.residual_dropout else 0,
        attention_sharded=attention_sharded,
        mlp_sharded=_mlp_intermediate_bytes(k, arch, tokens=s * b, element_bytes=e, linear_input_bytes=li),
        kv=kv,
        scores=scores,
    )


def _mlp_intermediate_bytes(k: ResolvedKernels, arch: Architecture, *, tokens: int, element_bytes: int,
                            linear_input_bytes: float) -> int:  # fmt: skip
    """The MLP's ``d_ff``-wide kept tensors (:func:`service.core.kernels.mlp_intermediates`): the down
    projection's input at ``linear_input_bytes``, the others at ``element_bytes``."""
    width = tokens * mlp_width_per_token(arch)
    others = mlp_intermediates(k, arch.ffn) - 1
    return others * element_bytes * width + math.ceil(linear_input_bytes * width)


def _attention_layer(arch: Architecture, opts: ActivationOptions) -> LayerActivations:
    """One attention layer with its MLP (:func:`layer_activation_bytes`, without full recompute)."""
    t, p = opts.tp, _attention_parts(arch, opts)
    replicated = p.norms + p.attention_replicated + p.mlp_replicated + 2 * p.mask  # attention- and MLP-output dropout
    if opts.sequence_parallel:
        replicated = math.ceil(replicated / t)
    sharded = math.ceil((p.attention_sharded + p.mlp_sharded) / t) + p.kv
    scores = math.ceil(p.scores / t)
    return LayerActivations(
        replicated_bytes=replicated,
        sharded_bytes=sharded,
        scores_bytes=scores,
        total_bytes=replicated + sharded + scores,
    )


def _mean_layer(arch: Architecture, opts: ActivationOptions) -> LayerActivations:
    """The mean layer of a model with recurrent layers, its parts summed over the layers that have
    them and divided by ``n_layers`` (a pipeline stage's layers are counted at the mean: exact for
    the whole model, a stage's mix may differ).

    Every layer keeps its norms; each mixer a residual branch's dropout mask; the attention layers
    their attention's part of a transformer layer; each recurrent layer its mixer as its training
    kernel keeps it (:func:`service.core.recurrent_activations.mixer_activation_bytes`; a parallel
    attention + Mamba-2 layer, Falcon-H1's, reads one normalised input, kept once); the layers with
    an MLP (``mlp_layers``: Jamba's every layer, Nemotron-H's MLP blocks, a shared block's every use)
    its input, intermediates and dropout mask; each use of a shared attention block what
    :func:`_shared_use_bytes` adds. Selective recompute changes nothing in a recurrent mixer (no attention scores);
    the scans recompute their states already."""
    s, b, e, t = opts.seq_len, opts.micro_batch_size, opts.element_bytes, opts.tp
    p = _attention_parts(arch, opts)
    mixers = arch.n_layers - arch.layers_of(LayerType.MLP)  # layers with a mixer, each a residual branch
    replicated = arch.n_layers * p.norms + mixers * p.mask + arch.mlp_layers * (p.mlp_replicated + p.mask)
    replicated += arch.attention_layers * p.attention_replicated
    sharded = arch.attention_layers * (math.ceil(p.attention_sharded / t) + p.kv) + arch.mlp_layers * math.ceil(p.mlp_sharded / t)
    for kind in RECURRENT_TYPES:
        if n := arch.layers_of(kind):
            mixer = mixer_activation_bytes(arch, kind, seq_len=s, micro_batch_size=b, element_bytes=e, tp=t,
                                           device=opts.kernels.device)  # fmt: skip
            replicated += n * mixer.replicated_bytes
            sharded += n * mixer.sharded_bytes
    if opts.linear_input_bytes is None:  # one input read by both mixers; under FP8 the QKV projection keeps its own FP8 copy
        replicated -= arch.layers_of(LayerType.ATTENTION_MAMBA2) * e * s * b * arch.d_model
    replicated += arch.shared_attention_layers * _shared_use_bytes(arch, opts)
    if opts.sequence_parallel:
        replicated = math.ceil(replicated / t)
    replicated, sharded = math.ceil(replicated / arch.n_layers), math.ceil(sharded / arch.n_layers)
    scores = math.ceil(arch.attention_layers * math.ceil(p.scores / t) / arch.n_layers)
    return LayerActivations(replicated_bytes=replicated, sharded_bytes=sharded, scores_bytes=scores,
                            total_bytes=replicated + sharded + scores)  # fmt: skip


def _shared_use_bytes(arch: Architecture, opts: ActivationOptions) -> int:
    """What one use of a shared attention block keeps beside its attention and MLP parts (Zamba,
    ``ZambaAttentionDecoderLayer`` and ``ZambaHybridLayer``; Zamba2's adapters): its two norms' inputs,
    ``2h`` (the residual stream concatenated with the embeddings) and ``h`` (before the MLP), kept as a
    norm keeps them; the per-layer ``h x h`` projection's input; each adapter's rank-``r`` intermediate,
    which its up-projection keeps (the MLP's, and q's, k's and v's with ``shared_attention_adapters``).
    Replicated over tensor-parallel ranks (split with sequence parallelism)."""
    s, b, h, e = opts.seq_len, opts.micro_batch_size, arch.d_model, opts.element_bytes
    k = resolve_kernels(opts.kernels, arch, flash_attention=opts.flash_attention)
    adapters = (1 + (3 if arch.shared_attention_adapters else 0)) * (arch.shared_adapter_rank or 0)
    return s * b * (norm_kept_bytes(k, e) * (arch.attention_input_width + h) + e * (h + adapters))


@dataclass(frozen=True, kw_only=True, slots=True)
class StageActivations:
    """Activation bytes of the pipeline's first and last stage, and the larger of the two."""

    per_layer_bytes: int
    layers_per_stage: int
    in_flight_microbatches: float
    first_stage_bytes: int
    last_stage_bytes: int
    peak_bytes: int
    recompute_working_bytes: int = 0  # the layer a recompute rebuilds in its backward (recompute_working_bytes)


def recompute_working_bytes(arch: Architecture, opts: ActivationOptions) -> int:
    """Bytes of the layer that recomputation rebuilds in its backward, for one micro-batch: what a
    stage holds at once on top of its kept activations while one layer's backward runs.

    Recomputation reruns a layer's forward in its backward and the rebuilt tensors stay until that
    layer's backward has used them (Korthikanti et al. 2022 §5: full recompute "stores only the input
    to each transformer layer" and recomputes the rest "during the backward pass"; ``torch.utils.
    checkpoint`` reruns the checkpointed block from its saved inputs when the backward reaches it,
    Megatron-LM's ``CheckpointFunction.backward`` likewise). One layer is rebuilt at a time on a GPU,
    whatever the micro-batches in flight, so the peak adds one layer of one micro-batch:

    - ``full``: the layer's activations without recompute (:func:`layer_activation_bytes`); the layer
      input it is rebuilt from is kept already, and is the same tensor as its first norm's saved input
      where the norm keeps its 16-bit input (not where an fp32-upcasting norm keeps an fp32 copy),
      so it is counted once;
    - ``selective``: the attention core Korthikanti §5 recomputes, what the layer keeps without
      recompute beyond what it keeps with it (the scores and their mask, or a fused kernel's output and
      log-sum-exp);
    - ``selective_op``: the ops torchtitan's policy recomputes (:mod:`service.core.op_checkpoint`):
      the layer's activations without recompute less the saved column-parallel matmul outputs and
      SDPA's output and log-sum-exp (and the block input where the norm keeps it); the saved
      row-parallel outputs are not among what the backward reads;
    - ``none``: 0.

    A model with recurrent layers rebuilds its mean layer (:func:`_mean_layer`); a fine-tune's
    layers are counted as the base's."""
    if opts.recompute is Recompute.NONE:
        return 0
    rebuilt = layer_activation_bytes(arch, replace(opts, recompute=Recompute.NONE)).total_bytes
    kept = layer_activation_bytes(arch, opts)
    if opts.recompute is Recompute.SELECTIVE:
        return max(0, rebuilt - kept.total_bytes)
    k = resolve_kernels(opts.kernels, arch, flash_attention=opts.flash_attention)
    layer_input = 0 if k.fp32_norms else layer_activation_bytes(arch, replace(opts, recompute=Recompute.FULL)).total_bytes
    shared = layer_input if opts.recompute is Recompute.FULL else layer_input + kept.sharded_bytes + kept.scores_bytes
    return max(0, rebuilt - shared)


def activation_formulas(k: ResolvedKernels, *, recurrent: int = 0, deltanet: bool = False, tp: int = 1,
                        recompute: Recompute = Recompute.NONE) -> list[str]:  # fmt: skip
    """The activation terms' formulas and the kept tensors of the kernels ``k``."""
    mixers = [
        f"the {recurrent} recurrent layers keep what their fused training kernels save for backward, averaged with the "
        "attention layers: Mamba-2 zxbcdt, out_x and the gated norm's fp32 rstd (mamba_split_conv1d_scan_combined), "
        "Mamba xz, x_dbl, B, C, out and fp32 chunk states (mamba_inner_fn, checkpoint_lvl 1), RWKV-4 the WKV kernel's "
        "k, v, output and the mixing tensors; context parallelism refused (service.core.recurrent_activations)"
        + (
            "; Gated DeltaNet the normalised q, k, v, g, beta and the WY block A (fla's chunk_gated_delta_rule), "
            "the convolution's input and the gated norm's tensors"
            if deltanet
            else ""
        )
    ]
    return (mixers if recurrent else []) + [
        "activations per layer s*b*h*(10 + 24/t + 5*a*s/(h*t)) generalised to the architecture; "
        "first pipeline stage holds pp micro-batches (Korthikanti et al. 2022 §4, Table 2)",
        f"kept tensors of {k.framework.value} kernels: attention {k.attention.value}, fp32 softmax {k.fp32_softmax}, "
        f"fp32 norms {k.fp32_norms}{' with the weight in fp32' if k.fp32_norm_weight else ''}, fused activation "
        f"{k.fused_activation}, K/V repeated in eager {k.repeat_kv}, residual dropout {k.residual_dropout} "
        "(measured against PyTorch: ACCURACY.md)",
        *([REBUILT_LAYER_FORMULA] if recompute is not Recompute.NONE else []),
        f"last stage: one micro-batch's output layer, the final norm's and the logit projection's inputs and the logits "
        f"{k.logit_bytes(tp)}*s*b*V/t at the loss's peak ({k.cross_entropy.value} cross entropy: "
        + (
            "Megatron's vocab-parallel kernel in place on the fp32 softmax, Korthikanti et al. 2022 §4.3)"
            if k.cross_entropy is CrossEntropy.FUSED
            else "F.cross_entropy on fp32-upcast logits: saved log-softmax, nll_loss's gradient and the input gradient in fp32)"
            if tp == 1
            else "PyTorch's loss_parallel on the vocabulary shards: the saved fp32 log-softmax and three fp32 temporaries "
            "of its fused backward)"
        ),
    ]


def layers_per_stage(n_layers: Any, pp: Any, virtual_stages: Any = 1) -> Any:
    """Layers on the busiest pipeline stage: ``v`` chunks of ``ceil(L/(pp*v))`` layers — stages
    may be uneven (Llama 3 ran 126 layers on 16 stages, Dubey et al. 2024 §3.3.2); ``ceil(L/pp)``
    without interleaving. Integer arithmetic, so NumPy arrays work too. Where the first and last
    stages hold fewer: :func:`service.core.pipeline.stage_layers`."""
    return -(-n_layers // (pp * virtual_stages)) * virtual_stages


def in_flight_microbatches(
    pp: int, virtual_stages: int = 1, microbatches: int | None = None, schedule: PipelineSchedule | None = None
) -> float:
    """Micro-batches' worth of stage activations the first pipeline stage holds: under 1F1B
    ``pp`` (Narayanan et al. 2021 §2.2.1), never more than the step has, times
    ``1 + (pp - 1)/(pp * v)`` with ``v`` interleaved chunks (Korthikanti et al. 2022 §4.2.3); other
    schedules: :func:`service.core.pipeline.in_flight`."""
    schedule = schedule or default_schedule(virtual_stages)
    m = math.inf if microbatches is None else microbatches  # unknown: enough that none of the caps binds
    return float(pipeline.in_flight(SCHEDULE_CODES[schedule], pp, virtual_stages, m, rank=0))


def stage_activation_bytes(
    arch: Architecture,
    opts: ActivationOptions,
    *,
    pp: int,
    virtual_stages: int = 1,
    microbatches: int | None = None,
    schedule: PipelineSchedule | None = None,
) -> StageActivations:
    """Activations held by the busiest pipeline stage (Korthikanti §4.2.3 and §4.3).

    Under 1F1B stage ``r`` holds ``pp - r`` micro-batches in flight (fewer when the step has
    fewer; more with interleaving, other schedules: :mod:`service.core.pipeline`), each with that
    stage's layers (:func:`service.core.pipeline.stage_layers`: the first and last stages hold
    one layer fewer where the stages have room), so the first stage stores about ``L`` layers' worth
    regardless of ``pp``, and also keeps the embedding dropout mask ``sbh`` per in-flight
    micro-batch; the second stage holds one micro-batch fewer of a full stage. The last stage
    holds one micro-batch (interleaved, its ``(v - 1)p + 1`` warm-up chunks: ``p - (p - 1)/v`` of
    a stage) and the output layer: final-norm and projection inputs ``2*e*sbh`` and
    the logits at the loss's peak, ``4*s*b*V/t`` with Megatron's fused cross entropy (Korthikanti's
    ``4*sbh/t*(1 + V/h)``), ``12*s*b*V/t`` with PyTorch's eager one
    (:data:`service.core.kernels.EAGER_CROSS_ENTROPY_LOGIT_BYTES`), ``16*s*b*V/t`` with its loss
    parallel on ``t > 1`` vocabulary shards (:data:`service.core.kernels.LOSS_PARALLEL_LOGIT_BYTES`). With ``pp = 1`` all are the
    same stage. DualPipe's GPUs hold both ends of the pipeline (the first and the last stage's
    layers, the embedding and the output layer). Under recompute the layer whose backward runs is
    rebuilt on top (:func:`recompute_working_bytes`, one layer of one micro-batch; where it falls
    in the peak: :func:`stage_peak_bytes`).
    """
    layer = layer_activation_bytes(arch, opts).total_bytes + opts.layer_delta_bytes
    rebuilt = recompute_working_bytes(arch, opts)
    schedule = schedule or default_schedule(virtual_stages)
    k = resolve_kernels(opts.kernels, arch, flash_attention=opts.flash_attention)
    embedding_mask, output = stage_end_bytes(arch, k, element_bytes=opts.element_bytes, seq_len=opts.seq_len,
                                             micro_batch_size=opts.micro_batch_size, tp=opts.tp,
                                             sequence_parallel=opts.sequence_parallel, dropout=opts.dropout)  # fmt: skip
    m = math.inf if microbatches is None else microbatches  # unknown: enough that none of the caps binds
    first, last = stage_peak_bytes(arch.n_layers, layer, embedding_mask, output, pp=pp, virtual_stages=virtual_stages,
                                   microbatches=m, schedule=SCHEDULE_CODES[schedule], rebuilt=rebuilt)  # fmt: skip
    return StageActivations(
        per_layer_bytes=layer,
        layers_per_stage=pipeline.stage_layers(arch.n_layers, pp, virtual_stages)[1],
        in_flight_microbatches=in_flight_microbatches(pp, virtual_stages, microbatches, schedule),
        first_stage_bytes=int(first),
        last_stage_bytes=int(last),
        peak_bytes=int(max(first, last)),
        recompute_working_bytes=rebuilt,
    )


def stage_end_bytes(
    arch: Architecture, k: ResolvedKernels, *, element_bytes: int, seq_len: Any, micro_batch_size: Any, tp: Any,
    sequence_parallel: Any, dropout: bool,
) -> tuple[Any, Any]:  # fmt: skip
    """(the embedding's dropout mask, the output layer's kept bytes) of one micro-batch: the mask
    ``sbh`` (with residual dropout), the final norm's and the logit projection's inputs and the
    logits at the loss's peak, ``k.logit_bytes(t)*s*b*V/t`` (fused: 4, Korthikanti §4.3; eager: 12, and
    16 on vocabulary shards, PyTorch's loss parallel: :func:`service.core.kernels.cross_entropy_logit_bytes`),
    the first two divided over ``tp`` with sequence parallelism. Scalars or NumPy arrays alike (the
    planner prices its whole grid with it)."""
    e = element_bytes
    sbh = seq_len * micro_batch_size * arch.d_model
    embedding_mask = dropout_mask_bytes(k, e) * sbh if dropout and k.residual_dropout else 0 * sbh
    output_inputs = (norm_kept_bytes(k, e) + e) * sbh  # final-norm input and the logit projection's input
    embedding_mask = pick(sequence_parallel, ceil_divide(embedding_mask, tp), embedding_mask)
    output_inputs = pick(sequence_parallel, ceil_divide(output_inputs, tp), output_inputs)
    return embedding_mask, output_inputs + round_up(k.logit_bytes(tp) * seq_len * micro_batch_size * arch.vocab_size / tp)


def stage_peak_bytes(
    n_layers: int, layer: Any, embedding_mask: Any, output: Any, *, pp: Any, virtual_stages: Any, microbatches: Any,
    schedule: Any, rebuilt: Any = 0,
) -> tuple[Any, Any]:  # fmt: skip
    """(first, last) pipeline stage's activation bytes from one layer's, as
    :func:`stage_activation_bytes` describes them: scalars (exact integers) or NumPy arrays alike,
    so the planner's grid and one layout are priced by the same lines. ``schedule`` is a schedule
    code.

    ``rebuilt``, the layer recomputation rebuilds (:func:`recompute_working_bytes`), comes on top of
    every micro-batch a stage holds when its backward starts (the first and the second stage). On the
    stage with the output layer it comes after the loss's peak: the last layer's backward starts once
    the loss's and the output layer's backward have freed their tensors, so that stage holds the larger
    of the two. DualPipe's GPUs overlap one micro-batch's forward chunk with another's backward chunk
    (DeepSeek-V3 §3.2.1), so the loss of one and the rebuilt layer of the other add."""
    first_layers, per_stage, last_layers = pipeline.stage_layers(n_layers, pp, virtual_stages)
    in_flight = pipeline.in_flight(schedule, pp, virtual_stages, microbatches, rank=0)
    first = round_up(in_flight * (first_layers * layer + embedding_mask)) + rebuilt
    # the second stage: a full stage, one micro-batch fewer in flight
    second = round_up(pipeline.in_flight(schedule, pp, virtual_stages, microbatches, rank=1) * per_stage * layer) + rebuilt
    first = pick(np.asarray(pp) > 2, larger(first, second), first)
    loss_or_rebuilt = larger(output, rebuilt)
    # the last stage: one micro-batch under 1F1B; interleaved, its (v - 1)p + 1 chunk warm-up (pipeline.in_flight)
    last_in_flight = pipeline.in_flight(schedule, pp, virtual_stages, microbatches, rank=np.asarray(pp) - 1)
    last = round_up(last_in_flight * last_layers * layer) + loss_or_rebuilt
    both_ends = round_up(in_flight * (per_stage * layer + embedding_mask)) + output + rebuilt  # DualPipe: both ends
    single = per_stage * layer + embedding_mask + loss_or_rebuilt
    ends, one = pipeline.hides_communication(schedule), np.asarray(pp) == 1
    return pick(one, single, pick(ends, both_ends, first)), pick(one, single, pick(ends, both_ends, last))


def round_up(x: Any) -> Any:
    """``ceil`` of a scalar (an exact integer) or of an array."""
    return np.ceil(x) if np.ndim(x) else math.ceil(x)


def ceil_divide(a: Any, b: Any) -> Any:
    """``ceil(a / b)``: exact integer division of scalars, ``np.ceil(a / b)`` over arrays of whole
    numbers (the same value below 2**53: a true quotient that is not whole lies at least ``1/b`` from
    a whole number, more than one division's rounding; and far faster than NumPy's float floor
    division)."""
    return np.ceil(a / b) if np.ndim(a) or np.ndim(b) else -(-a // b)


def larger(a: Any, b: Any) -> Any:
    """The larger of two scalars (exact integers kept) or, elementwise, of arrays."""
    return np.maximum(a, b) if np.ndim(a) or np.ndim(b) else max(a, b)


def pick(condition: Any, a: Any, b: Any) -> Any:
    """``a`` where ``condition`` holds, else ``b``: a Python choice between scalars (keeping exact
    integers), ``np.where`` over arrays."""
    if np.ndim(condition) or np.ndim(a) or np.ndim(b):
        return np.where(condition, a, b)
    return a if condition else b


def mlp_inputs_per_token(arch: Architecture) -> int:
    """Copies of a token's MLP input that are kept: one per routed expert the token passes (each
    expert's matmul keeps its own gathered input; 1 for a dense MLP) and one for the shared experts,
    which are one MLP (:attr:`Architecture.shared_expert_width`)."""
    return arch.experts_per_token + (1 if arch.shared_expert_width else 0)


def mlp_width_per_token(arch: Architecture) -> int:
    """The MLP width one token passes through in a layer: ``d_ff``; for a mixture its
    ``experts_per_token`` routed experts plus the shared ones (DeepSeekMoE §3), or a first dense
    layer's ``d_ff_dense`` where that is wider (every layer is counted at the wider of the two)."""
    if not arch.is_moe:
        return arch.d_ff
    moe = arch.experts_per_token * arch.d_ff + arch.shared_expert_width
    return max(moe, arch.d_ff_dense or arch.d_ff) if arch.first_k_dense else moe
