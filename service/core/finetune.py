"""Fine-tuning: LoRA and QLoRA memory and FLOPs.

**LoRA** (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", §4.1): a frozen
projection ``W`` (``in x out``) gains a trainable update ``B·A`` with ``A`` ``r x in`` and ``B``
``out x r``, so each adapted matrix adds ``r * (in + out)`` parameters (§5.1:
``|Θ| = 2 * L_LoRA * d_model * r`` when ``in = out = d_model``). The base weights keep their
format and get no gradients and no optimizer states (§4.2: "we do not need to store the optimizer
states for the frozen parameters"). What LoRA does *not* save: the activations. The gradient must
still flow back through every frozen layer to reach the adapters below it, so the forward pass
keeps what full training keeps (Korthikanti et al. 2022, :mod:`service.core.activations`) except
the inputs that only a frozen weight's gradient would read, plus each adapter's own ``x·A``
(``r`` values a token) and, with LoRA dropout, the dropped copy of its input. Dettmers et al. 2023 (QLoRA §2): "most of the memory footprint for LLM finetuning comes
from activation gradients and not from the learned LoRA parameters".

**FLOPs**: the forward pass is unchanged (``2PD``) plus the adapters' ``2·P_a·D``; the backward
pass computes activation gradients through the frozen weights (``2PD``) but no weight gradients
for them, plus the adapters' input and weight gradients (``4·P_a·D``): ``≈ 4PD + 6·P_a·D`` instead
of ``6PD`` (Hu et al. 2021 §4.2 measure a 25 % speed-up on GPT-3 175B, footnote 5: 32.5 → 43.1
tokens/s per V100). The attention core has no weights: its backward is unchanged.

**QLoRA** (Dettmers et al. 2023, §3): the base's linear layers in 4-bit NormalFloat, blocks of 64
values with one quantisation constant each; double quantisation stores those constants in 8 bits
with one fp32 constant per 256 of them: ``8/64 + 32/(64*256) = 0.127`` bits a parameter instead of
``32/64 = 0.5``. Adapters in bf16 (Eq. 5), the optimizer's states paged to host memory when the
GPU runs short (NVIDIA unified memory). Each 4-bit weight is dequantised to bf16 when used
(Eq. 6), one matrix at a time. bitsandbytes (the reference implementation) quantises every
``nn.Linear`` of the blocks and keeps the embedding, the LM head, norms and biases unquantised;
Hugging Face PEFT's ``prepare_model_for_kbit_training`` casts those to fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from service.core.activations import StageActivations, mlp_inputs_per_token, mlp_width_per_token
from service.core.adapters import MLA_ALIASES as MLA_ALIASES
from service.core.adapters import MatrixShape as MatrixShape
from service.core.adapters import Projection, active_adapter_params, adapter_params, projection_shapes, resolve_targets
from service.core.architecture import Architecture, ModelShape
from service.core.base_weights import DOUBLE_QUANT_BLOCK as DOUBLE_QUANT_BLOCK
from service.core.base_weights import FLOAT_BYTES, FOUR_BIT, BaseFormat, BaseWeights, base_weight_bytes
from service.core.base_weights import QUANT_BLOCK as QUANT_BLOCK
from service.core.base_weights import quantized_matrix_bytes as quantized_matrix_bytes
from service.core.compute import AttentionFormula, Recompute, TrainingCompute, require_architecture, training_flops
from service.core.errors import InvalidSpecError
from service.core.kernels import AttentionKernel, Kernels, resolve_kernels
from service.core.limits import check_bytes, check_flops
from service.core.memory import (
    CUDA_CONTEXT_BYTES,
    PRECISION_BYTES,
    Optimizer,
    Parallelism,
    Precision,
    TrainingMemory,
    device_total_bytes,
    optimizer_state_bytes,
    training_memory,
    zero_sharded_bytes,
)
from service.core.params import count_params

MASK_BYTES = 1  # PyTorch keeps a dropout mask as one byte an element


class FinetuneMethod(StrEnum):
    """``full``: every weight trained (today's training memory). ``lora``: frozen base in its
    format, rank-r adapters trained (Hu et al. 2021). ``qlora``: ``lora`` on a 4-bit NormalFloat base
    with double quantisation, bf16 adapters and a paged optimizer (Dettmers et al. 2023)."""

    FULL = "full"
    LORA = "lora"
    QLORA = "qlora"


@dataclass(frozen=True, kw_only=True, slots=True)
class FinetuneSpec:
    """How a model is fine-tuned.

    ``targets`` None adapts every linear projection of the blocks (QLoRA §4: "LoRA on all linear
    transformer block layers are required to match full finetuning performance").
    ``base_format`` None: the precision's 16/32-bit weight format for ``lora``, ``nf4`` for
    ``qlora``. ``kept_dtype`` (the unquantised embedding, LM head, norms and biases of a quantised
    base) None: fp32, as PEFT's ``prepare_model_for_kbit_training`` leaves them.
    ``paged_optimizer`` None: on for ``qlora``. ``dropout`` is LoRA's dropout on the adapters'
    inputs. ``alpha`` scales the update (``alpha / r``) and changes no byte or FLOP.
    """

    method: FinetuneMethod = FinetuneMethod.LORA
    rank: int = 16
    alpha: float | None = None
    targets: tuple[Projection, ...] | None = None
    dropout: float = 0.0
    base_format: BaseFormat | None = None
    double_quant: bool = True
    kept_dtype: BaseFormat | None = None
    paged_optimizer: bool | None = None


def adapter_activation_bytes(
    arch: Architecture, spec: FinetuneSpec, targets: tuple[Projection, ...], *, tokens: int, element_bytes: int
) -> int:
    """What the adapters add to the stored activations of all layers for ``tokens = s * b`` tokens:
    each adapter's ``x·A`` (``r`` values a token, needed for B's gradient) and, with LoRA dropout,
    the dropped copy of its input (for A's gradient) and its one-byte mask. A routed expert's
    adapters see the ``experts_per_token`` share of the tokens, a shared expert's all of them; each
    layer type (dense first layers, expert layers) counts its own matrices."""
    shapes = projection_shapes(arch)
    total = 0
    for t in targets:
        for m in shapes[t]:
            per_token = element_bytes * spec.rank
            if spec.dropout > 0:
                per_token += (element_bytes + MASK_BYTES) * m.rows_in
            total += m.active_copies(arch.n_layers) * tokens * per_token
    return total


def adapter_activation_bytes_per_layer(
    arch: Architecture, spec: FinetuneSpec, targets: tuple[Projection, ...], *, tokens: int, element_bytes: int
) -> int:
    """:func:`adapter_activation_bytes` of one layer: exact when every layer has the same
    projections, the mean over the layers (rounded up) when a mixture's first layers are dense."""
    total = adapter_activation_bytes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes)
    return -(-total // arch.n_layers)


def frozen_input_bytes_per_layer(
    arch: Architecture,
    spec: FinetuneSpec,
    targets: tuple[Projection, ...],
    *,
    tokens: int,
    element_bytes: int,
    fused_attention: bool,
) -> int:
    """Bytes of one layer's full-training activations that a frozen projection no longer needs.

    Full training keeps each matmul's input for its weight gradient (Korthikanti et al. 2022 §4.1:
    the QKV input, the output projection's input, the MLP input and the down projection's input).
    A frozen weight needs no weight gradient, and autograd saves a matmul input only for the
    gradient that uses it (PyTorch saves ``self`` of ``mm`` only when ``mat2`` requires grad), so
    these inputs are dropped unless an adapter reads them (without LoRA dropout an adapter's
    ``x·A`` saves the same ``x``; with dropout it saves its own dropped copy instead, counted by
    :func:`adapter_activation_bytes_per_layer`) or another operation keeps them: FlashAttention
    keeps its output, the output projection's input (Dao et al. 2022 §3.1), as does PyTorch's fused
    SDPA (``fused_attention``: any kernel but eager). Everything the backward
    pass needs to reach the layers below stays: norm inputs, Q, K, V, scores, the MLP's
    nonlinearity inputs.

    The terms mirror the full-training count they are taken from
    (:func:`service.core.activations.layer_activation_bytes`), which counts every layer alike: the
    attention input (read by ``q``/``k``/``v`` or, under MLA, ``q_a``/``kv_a``/``q``), the MLP input
    once per routed expert a token passes and once for the shared experts (one MLP), the output projection's input and
    the down projections' inputs at :func:`service.core.activations.mlp_width_per_token`. MLA's
    latents (the inputs of ``q_b_proj`` and ``kv_b_proj``) are not in that count, so none is dropped
    for them: an approximation that errs towards more memory.
    """
    t, e = tokens, element_bytes
    experts = mlp_inputs_per_token(arch)
    keeps = set() if spec.dropout > 0 else set(targets)
    qkv_read = bool(keeps & {Projection.Q, Projection.K, Projection.V, Projection.Q_A, Projection.KV_A})
    mlp_read = bool(keeps & {Projection.GATE, Projection.UP})
    dropped = 0
    if arch.parallel_attention and arch.norms_per_layer == 1:  # one input feeds attention and the MLP
        dropped += 0 if (qkv_read or mlp_read) else e * t * arch.d_model
    else:
        dropped += 0 if qkv_read else e * t * arch.d_model
        dropped += 0 if mlp_read else e * t * arch.d_model * experts
    if not fused_attention and Projection.O not in keeps:  # the output projection's input: a*d_v (MLA) or a*d_head
        dropped += e * t * (arch.n_heads * (arch.v_head_dim or 0) if arch.is_mla else arch.q_dim)
    if Projection.DOWN not in keeps:
        dropped += e * t * mlp_width_per_token(arch)
    return dropped


@dataclass(frozen=True, kw_only=True, slots=True)
class FinetuneMemory:
    """Per-GPU fine-tuning memory (``memory``, the same parts as full training) and its detail."""

    memory: TrainingMemory
    spec: FinetuneSpec
    base_format: BaseFormat
    kept_dtype: BaseFormat | None
    targets: tuple[Projection, ...]
    trainable_params: int
    total_params: int
    adapter_params_by_target: dict[Projection, int]
    base: BaseWeights
    base_weights_bytes: int  # per GPU, after ZeRO-3
    adapter_weights_bytes: int
    adapter_gradients_bytes: int
    adapter_optimizer_bytes: int
    adapter_activations_bytes: int
    frozen_inputs_not_kept_bytes: int  # full training's matmul inputs that frozen weights do not need
    adapter_checkpoint_bytes: int  # the trained adapters saved in their format
    paged_optimizer: bool
    pageable_bytes: int
    total_if_paged_bytes: int


def _check_layout(par: Parallelism) -> None:
    for name in ("tp", "pp", "cp", "ep"):
        if getattr(par, name) > 1:
            raise InvalidSpecError(
                f"parallelism.{name}",
                "LoRA/QLoRA memory is modelled for data parallelism (with ZeRO 0-3 and optimizer offload); "
                f"{name} > 1 is not modelled for fine-tuning yet",
            )


def resolve_base_format(spec: FinetuneSpec, precision: Precision) -> BaseFormat:
    """The base's format: the request's, else nf4 for ``qlora`` and the precision's weight format
    (bf16, fp16 or fp32) for ``lora``."""
    if spec.base_format is not None:
        if spec.method is FinetuneMethod.QLORA and spec.base_format not in FOUR_BIT:
            raise InvalidSpecError(
                "finetune.base_format", "qlora quantises the base to nf4 or fp4; use method 'lora' for another base format"
            )
        return spec.base_format
    if spec.method is FinetuneMethod.QLORA:
        return BaseFormat.NF4
    return {Precision.MIXED_FP16: BaseFormat.FP16, Precision.FP32: BaseFormat.FP32}.get(precision, BaseFormat.BF16)


def finetune_memory(
    model: ModelShape,
    spec: FinetuneSpec,
    *,
    precision: Precision = Precision.MIXED_BF16,
    optimizer: Optimizer = Optimizer.ADAMW,
    parallelism: Parallelism = Parallelism(),
    micro_batch_size: int = 1,
    seq_len: int | None = None,
    recompute: Recompute = Recompute.NONE,
    flash_attention: bool = False,
    dropout: bool = False,
    include_activations: bool = True,
    microbatches: int | None = None,
    kernels: Kernels = Kernels(),
) -> FinetuneMemory:
    """Per-GPU memory of LoRA or QLoRA fine-tuning under data parallelism.

    - weights: the frozen base (:func:`base_weight_bytes`) plus the adapters; a quantised base adds
      its dequantisation buffer.
    - gradients: the adapters' only. LoRA adapters follow ``precision`` as full training does
      (mixed: 16-bit weights and gradients, fp32 master copy and states; the same 16 bytes a
      parameter as PEFT's fp32 adapters under autocast); QLoRA adapters are bf16 (fp32 under
      ``precision=fp32``) with 32-bit optimizer states and no master copy (QLoRA Eq. 5; the
      reference uses bitsandbytes' ``paged_adamw_32bit``).
    - optimizer: the adapters' states (:func:`service.core.memory.optimizer_state_bytes`).
      Paged (QLoRA §3), they may move to host memory when the GPU runs short: they are counted on
      the GPU in ``total_bytes`` and reported as ``pageable_bytes``, with ``total_if_paged_bytes``
      the GPU memory if they all moved (a slower optimizer step, not a smaller model).
    - activations: those of full training (:func:`service.core.memory.training_memory`), less the
      matmul inputs only a frozen weight's gradient would have read
      (:func:`frozen_input_bytes_per_layer`), plus the adapters' own
      (:func:`adapter_activation_bytes_per_layer`); full recompute keeps each layer's input either way.
    - ZeRO over ``dp``: stage 1 shards the adapters' optimizer states, 2 their gradients too, 3
      every weight, the frozen base included (FSDP with LoRA); ``offload_optimizer`` moves the
      states to the host.
    """
    if spec.method is FinetuneMethod.FULL:
        raise InvalidSpecError("finetune.method", "'full' is ordinary training: use the training memory")
    arch = require_architecture(model, "LoRA adapters (their shapes)")
    _check_layout(parallelism)
    base_mem = training_memory(
        arch, precision=precision, optimizer=optimizer, parallelism=parallelism, micro_batch_size=micro_batch_size,
        seq_len=seq_len, recompute=recompute, flash_attention=flash_attention, dropout=dropout,
        include_activations=include_activations, microbatches=microbatches, kernels=kernels,
    )  # fmt: skip
    pb = PRECISION_BYTES[precision]
    fmt, kept_dtype = _base_formats(spec, precision)
    base = base_weight_bytes(arch, fmt, double_quant=spec.double_quant, kept_dtype=kept_dtype or BaseFormat.FP32,
                             compute_bytes=pb.activation)  # fmt: skip
    targets = resolve_targets(arch, spec.targets)
    by_target = adapter_params(arch, spec.rank, targets)
    p_a = sum(by_target.values())
    adapters = _adapter_bytes(spec, precision, optimizer, p_a)
    base_gpu, adapters_gpu, gradients, optimizer_gpu, cpu_offload = _zero_sharded(parallelism, base, adapters)
    weights = base_gpu + adapters_gpu + base.dequantization_buffer_bytes
    adapter_acts = frozen_inputs = 0
    if include_activations and recompute is not Recompute.FULL:  # full recompute keeps only each layer's input
        tokens = (seq_len or arch.max_seq_len) * micro_batch_size
        fused = resolve_kernels(kernels, arch, flash_attention=flash_attention).attention is not AttentionKernel.EAGER
        adapter_acts, frozen_inputs = _activation_changes(arch, spec, targets, tokens=tokens, element_bytes=pb.activation,
                                                          fused_attention=fused)  # fmt: skip
    activations = base_mem.activations_bytes - frozen_inputs + adapter_acts
    stage = _shifted_stage(base_mem.activations, adapter_acts - frozen_inputs, arch.n_layers)
    total = weights + gradients + optimizer_gpu + activations
    paged = spec.paged_optimizer if spec.paged_optimizer is not None else spec.method is FinetuneMethod.QLORA
    pageable = optimizer_gpu if paged else 0
    for name, value in (("weights_bytes", weights), ("total_bytes", total)):
        check_bytes(name, value)
    total_params = count_params(arch).total
    mem = TrainingMemory(
        params_per_gpu=total_params + p_a, weights_bytes=weights, gradients_bytes=gradients, optimizer_bytes=optimizer_gpu,
        activations_bytes=activations, total_bytes=total, cpu_offload_bytes=cpu_offload, activations=stage,
        bytes_per_param={
            "weights": base.weights_bytes / total_params,
            "gradients": adapters.gradients / p_a,
            "optimizer": adapters.states / p_a,
        },
        formulas=_formulas(spec, targets, fmt, kept_dtype, paged=paged),
        notes=_notes(spec, arch, optimizer, base_mem.notes, adapters.format),
    )  # fmt: skip
    return FinetuneMemory(
        memory=mem, spec=spec, base_format=fmt, kept_dtype=kept_dtype, targets=targets, trainable_params=p_a,
        total_params=total_params, adapter_params_by_target=by_target, base=base, base_weights_bytes=base_gpu,
        adapter_weights_bytes=adapters_gpu, adapter_gradients_bytes=gradients, adapter_optimizer_bytes=optimizer_gpu,
        adapter_activations_bytes=adapter_acts, frozen_inputs_not_kept_bytes=frozen_inputs,
        adapter_checkpoint_bytes=adapters.bytes_per_param * p_a, paged_optimizer=paged, pageable_bytes=pageable,
        total_if_paged_bytes=total - pageable,
    )  # fmt: skip


def _base_formats(spec: FinetuneSpec, precision: Precision) -> tuple[BaseFormat, BaseFormat | None]:
    """The base's format (:func:`resolve_base_format`) and, for a quantised base, the format of its
    unquantised parts (None for a 16/32-bit base)."""
    fmt = resolve_base_format(spec, precision)
    quantised = fmt not in FLOAT_BYTES
    if spec.kept_dtype is not None and not quantised:
        raise InvalidSpecError("finetune.kept_dtype", f"only applies to a quantised base (int8, nf4, fp4), not {fmt.value}")
    kept_dtype = (spec.kept_dtype or BaseFormat.FP32) if quantised else None
    if kept_dtype is not None and kept_dtype not in FLOAT_BYTES:
        raise InvalidSpecError("finetune.kept_dtype", "the unquantised parts are kept in fp32, bf16 or fp16")
    return fmt, kept_dtype


@dataclass(frozen=True, kw_only=True, slots=True)
class _AdapterBytes:
    """The adapters' bytes on all GPUs together, before ZeRO, and their format."""

    bytes_per_param: int  # of the weights, as a checkpoint saves them
    weights: int
    gradients: int
    states: int  # optimizer states (and master copy)
    format: str


def _adapter_bytes(spec: FinetuneSpec, precision: Precision, optimizer: Optimizer, p_a: int) -> _AdapterBytes:
    """The ``p_a`` adapter parameters' weights, gradients and optimizer states: QLoRA's in bf16 (fp32
    under ``precision=fp32``) with 32-bit states and no master copy (QLoRA Eq. 5); LoRA's as
    ``precision`` says."""
    pb = PRECISION_BYTES[precision]
    if spec.method is FinetuneMethod.QLORA:
        adapter_bytes = 4 if precision is Precision.FP32 else 2
        adapter_weights, adapter_grads = adapter_bytes * p_a, adapter_bytes * p_a
        state_precision = Precision.BF16 if precision is Precision.BF16 else Precision.FP32
        adapter_states = optimizer_state_bytes(p_a, optimizer, state_precision)
        adapter_format = "bf16" if adapter_bytes == 2 else "fp32"
    else:
        adapter_bytes = pb.weight
        adapter_weights, adapter_grads = pb.weight * p_a, pb.gradient * p_a
        adapter_states = optimizer_state_bytes(p_a, optimizer, precision)
        adapter_format = {2: "16-bit", 4: "fp32"}[pb.weight]
    return _AdapterBytes(bytes_per_param=adapter_bytes, weights=adapter_weights, gradients=adapter_grads,
                         states=adapter_states, format=adapter_format)  # fmt: skip


def _zero_sharded(par: Parallelism, base: BaseWeights, adapters: _AdapterBytes) -> tuple[int, int, int, int, int]:
    """One GPU's share under ZeRO over the data-parallel ranks: (base weights, adapter weights,
    adapter gradients, optimizer states on the GPU, optimizer states offloaded to the host).
    Stage 1 shards the adapters' optimizer states, 2 their gradients too, 3 every weight."""
    shards, z = par.zero_shards, par.zero_stage
    optimizer_gpu = zero_sharded_bytes(adapters.states, 0, sharded=z >= 1, shards=shards, ep=1)
    gradients = zero_sharded_bytes(adapters.gradients, 0, sharded=z >= 2, shards=shards, ep=1)
    base_gpu = zero_sharded_bytes(base.weights_bytes, 0, sharded=z >= 3, shards=shards, ep=1)
    adapters_gpu = zero_sharded_bytes(adapters.weights, 0, sharded=z >= 3, shards=shards, ep=1)
    cpu_offload = 0
    if par.offload_optimizer:
        cpu_offload, optimizer_gpu = optimizer_gpu, 0
    return base_gpu, adapters_gpu, gradients, optimizer_gpu, cpu_offload


def _activation_changes(
    arch: Architecture,
    spec: FinetuneSpec,
    targets: tuple[Projection, ...],
    *,
    tokens: int,
    element_bytes: int,
    fused_attention: bool,
) -> tuple[int, int]:
    """What LoRA changes in full training's activations of all layers for ``tokens = s * b``
    tokens: (the adapters' own, :func:`adapter_activation_bytes`; the frozen matmuls' inputs no
    longer kept, :func:`frozen_input_bytes_per_layer` of every layer)."""
    adapter_acts = adapter_activation_bytes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes)
    frozen_inputs = arch.n_layers * frozen_input_bytes_per_layer(
        arch,
        spec,
        targets,
        tokens=tokens,
        element_bytes=element_bytes,
        fused_attention=fused_attention,
    )
    return adapter_acts, frozen_inputs


def _shifted_stage(stage: StageActivations | None, delta: int, n_layers: int) -> StageActivations | None:
    """Full training's stage activations changed by ``delta`` bytes over all layers."""
    if stage is not None:  # one pipeline stage (pp = 1): every layer changes by the same bytes
        stage = replace(stage, per_layer_bytes=stage.per_layer_bytes + delta // n_layers,
                        first_stage_bytes=stage.first_stage_bytes + delta, last_stage_bytes=stage.last_stage_bytes + delta,
                        peak_bytes=stage.peak_bytes + delta)  # fmt: skip
    return stage


def _formulas(
    spec: FinetuneSpec, targets: tuple[Projection, ...], fmt: BaseFormat, kept_dtype: BaseFormat | None, *, paged: bool
) -> tuple[str, ...]:
    """The formulas of a LoRA/QLoRA memory answer: adapters, activations, the base's format, paging."""
    formulas = [
        f"LoRA: frozen base, adapters B*A on {', '.join(targets)}: r*(in+out) parameters per adapted matrix, "
        "their own gradients and optimizer states (Hu et al. 2021 §4.1, §5.1)",
        "activations as in full training, since gradients flow back through the frozen layers (Korthikanti et al. 2022 §4), "
        "less the matmul inputs only frozen weights' gradients would read, plus each adapter's x*A and, with LoRA dropout, "
        "its dropped input (QLoRA §2: activation gradients, not adapters, dominate)",
    ]
    if fmt in FOUR_BIT:
        formulas.append(
            f"{fmt.value} base: 4 bits a weight + "
            + (
                "double-quantised constants 8/64 + 32/(64*256) = 0.127 bits"
                if spec.double_quant
                else "an fp32 constant per 64 (0.5 bits)"
            )
            + f" (Dettmers et al. 2023, QLoRA §3); embedding, LM head, norms and biases in {kept_dtype}; one matrix "
            "dequantised to the compute format at a time (QLoRA Eq. 6)"
        )
    elif fmt is BaseFormat.INT8:
        formulas.append(
            f"int8 base with an fp32 scale per output row (LLM.int8, Dettmers et al. 2022 §3); the rest in {kept_dtype}"
        )
    if paged:
        formulas.append("paged optimizer: states in unified memory, paged to the host when the GPU runs short (QLoRA §3)")
    return tuple(formulas)


def _notes(
    spec: FinetuneSpec, arch: Architecture, optimizer: Optimizer, base_notes: tuple[str, ...], adapter_format: str
) -> tuple[str, ...]:
    """The notes of a LoRA/QLoRA memory answer: full training's, then the adapters' format and what
    LoRA does not save, Adafactor, a mixture's experts, multi-head latent attention."""
    notes = list(base_notes) + [
        f"adapters in {adapter_format}; " + ("32-bit optimizer states, no master copy (QLoRA Eq. 5)" if spec.method is FinetuneMethod.QLORA
                                              else "gradients, master copy and optimizer states as the precision says"),
        "LoRA saves little activation memory: the frozen layers' activations are kept for the backward pass; only the "
        "inputs of frozen matmuls no adapter reads are not",
    ]  # fmt: skip
    if optimizer is Optimizer.ADAFACTOR:
        notes.append("Adafactor's factored adapter states are counted as 0 bytes (r + in values per matrix)")
    if arch.is_moe:
        notes.append(
            "mixture: one adapter per routed expert and projection (each expert an nn.Linear, as DeepSeek's and Mixtral's "
            "published code and transformers 4 build them); the router is not adapted"
            + (
                "; the shared experts are one MLP n_shared_experts times as wide, one adapter each"
                if arch.n_shared_experts
                else ""
            )
        )
    if arch.is_mla:
        notes.append("multi-head latent attention: adapters on q_a/q_b (or q), kv_a_proj_with_mqa, kv_b_proj and o_proj; "
                     "the latent RMSNorms are neither adapted nor quantised")  # fmt: skip
    return tuple(notes)


@dataclass(frozen=True, kw_only=True, slots=True)
class FinetuneCompute:
    """LoRA's FLOPs next to full training's for the same tokens."""

    spec: FinetuneSpec
    targets: tuple[Projection, ...]
    trainable_params: int
    active_adapter_params: int
    adapter_flops_per_token: float  # forward 2*P_a + backward 4*P_a
    full_training_flops_per_token: float
    flops_saved_fraction: float


def finetune_training_flops(
    model: ModelShape,
    tokens: float,
    spec: FinetuneSpec,
    *,
    recompute: Recompute = Recompute.NONE,
    include_attention: bool = False,
    attention_formula: AttentionFormula = AttentionFormula.PALM,
    seq_len: int | None = None,
    causal: bool = False,
) -> tuple[TrainingCompute, FinetuneCompute]:
    """FLOPs of LoRA/QLoRA fine-tuning on ``tokens`` tokens.

    forward = the base's forward (``2P`` + attention, per :func:`service.core.compute.training_flops`)
    + ``2*P_a``; backward = activation gradients through the frozen weights (their forward again:
    ``2P``) + the attention core's backward (twice its forward, as in full training) + the adapters'
    input and weight gradients ``4*P_a``: ``C ≈ (4P + 6P_a)*D`` against ``6PD`` (Hu et al. 2021 §4.2).
    Full recompute runs the forward once more, adapters included. QLoRA's dequantisation adds memory
    traffic, not matmul FLOPs.
    """
    if spec.method is FinetuneMethod.FULL:
        raise InvalidSpecError("finetune.method", "'full' is ordinary training: use the training FLOPs")
    arch = require_architecture(model, "LoRA adapters (their shapes)")
    full = training_flops(arch, tokens, recompute=recompute, include_attention=include_attention,
                          attention_formula=attention_formula, seq_len=seq_len, causal=causal)  # fmt: skip
    targets = resolve_targets(arch, spec.targets)
    p_a = sum(adapter_params(arch, spec.rank, targets).values())
    p_a_active = active_adapter_params(arch, spec.rank, targets)
    attention = full.attention_flops_per_token
    weights_forward = full.forward_flops_per_token - attention
    forward = full.forward_flops_per_token + 2.0 * p_a_active
    backward = weights_forward + 2.0 * attention + 4.0 * p_a_active
    extra = full.recompute_flops_per_token + (2.0 * p_a_active if recompute is Recompute.FULL else 0.0)
    per_token = forward + backward
    formula = (
        f"C = (4*P + 6*P_a)*D: forward 2*P + 2*P_a, backward 2*P through the frozen weights (activation gradients only) "
        f"+ 4*P_a for the adapters (Hu et al. 2021 §4.2); the base's terms as in: {full.formula}"
    )
    if spec.method is FinetuneMethod.QLORA:
        formula += "; QLoRA dequantises each 4-bit weight to bf16 when used (QLoRA Eq. 6): memory traffic, no extra matmul FLOPs"
    compute = TrainingCompute(
        tokens=tokens,
        model_flops_per_token=per_token,
        hardware_flops_per_token=per_token + extra,
        forward_flops_per_token=forward,
        backward_flops_per_token=backward,
        recompute_flops_per_token=extra,
        model_flops=check_flops("total_flops", per_token * tokens),
        hardware_flops=check_flops("hardware_flops", (per_token + extra) * tokens),
        formula=formula,
        params_used=full.params_used,
        attention_flops_per_token=attention,
    )
    detail = FinetuneCompute(
        spec=spec,
        targets=targets,
        trainable_params=p_a,
        active_adapter_params=p_a_active,
        adapter_flops_per_token=6.0 * p_a_active,
        full_training_flops_per_token=full.model_flops_per_token,
        flops_saved_fraction=1 - per_token / full.model_flops_per_token,
    )
    return compute, detail


def smallest_finetune_footprint(
    model: ModelShape,
    spec: FinetuneSpec,
    *,
    n_gpus: int,
    seq_len: int | None = None,
    precision: Precision = Precision.MIXED_BF16,
    cuda_context_bytes: int = CUDA_CONTEXT_BYTES,
) -> tuple[int, str]:
    """The least per-GPU memory of a LoRA/QLoRA job on ``n_gpus`` GPUs, CUDA context included
    (:func:`service.core.memory.device_total_bytes`), and its layout: data
    parallelism with every GPU holding the frozen base (ZeRO 0), or with everything sharded
    (ZeRO-3, FSDP), each with gradient checkpointing (full recompute), FlashAttention and one
    sequence a micro-batch. Paged optimizer states count as on the GPU. A GPU with less memory
    cannot hold the job in these layouts (host offload and tensor parallelism are not tried)."""
    best: tuple[int, str] | None = None
    for zero in (0, 3):
        if zero == 3 and n_gpus == 1:
            continue
        m = finetune_memory(model, spec, precision=precision, parallelism=Parallelism(dp=n_gpus, zero_stage=zero),
                            seq_len=seq_len, recompute=Recompute.FULL, flash_attention=True)  # fmt: skip
        layout = f"dp={n_gpus}, ZeRO-{zero}, full recompute, FlashAttention, micro-batch 1"
        if best is None or m.memory.total_bytes < best[0]:
            best = (m.memory.total_bytes, layout)
    assert best is not None
    return device_total_bytes(best[0], cuda_context_bytes), best[1]
