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

from dataclasses import dataclass
from functools import partial

from service.core.activations import StageActivations
from service.core.adapters import MLA_ALIASES as MLA_ALIASES
from service.core.adapters import MatrixShape as MatrixShape
from service.core.adapters import (
    Projection,
    active_adapter_params,
    adapter_params,
    adapter_params_split,
    resolve_targets,
)
from service.core.adapters import projection_shapes as projection_shapes
from service.core.architecture import Architecture, ModelShape
from service.core.base_weights import DOUBLE_QUANT_BLOCK as DOUBLE_QUANT_BLOCK
from service.core.base_weights import FOUR_BIT, BaseFormat, BaseWeights, base_weight_bytes
from service.core.base_weights import QUANT_BLOCK as QUANT_BLOCK
from service.core.base_weights import quantized_matrix_bytes as quantized_matrix_bytes
from service.core.compute import AttentionFormula, Recompute, TrainingCompute, require_architecture, training_flops
from service.core.errors import InvalidSpecError
from service.core.finetune_activations import activation_changes, layer_delta_bytes, shifted_stage
from service.core.finetune_activations import adapter_activation_bytes as adapter_activation_bytes
from service.core.finetune_activations import adapter_activation_bytes_per_layer as adapter_activation_bytes_per_layer
from service.core.finetune_activations import frozen_input_bytes_per_layer as frozen_input_bytes_per_layer
from service.core.finetune_layout import adapter_bytes, adapter_params_per_gpu, check_layout, frozen_base_bytes, zero_sharded
from service.core.finetune_spec import MASK_BYTES as MASK_BYTES
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec, base_formats, check_rank, resolve_fp8_params
from service.core.finetune_spec import resolve_base_format as resolve_base_format
from service.core.fp8 import BF16_OPS, Fp8Recipe, frozen_weight_bytes_per_param
from service.core.gradients import GradReduceDtype
from service.core.kernels import AttentionKernel, Kernels, dropout_mask_bytes, resolve_kernels, sdpa_math_fallback
from service.core.limits import check_bytes, check_flops
from service.core.memory import (
    CUDA_CONTEXT_BYTES,
    PRECISION_BYTES,
    Optimizer,
    Parallelism,
    Precision,
    TrainingMemory,
    ZeroSharding,
    device_total_bytes,
    expert_params_per_gpu,
    kept_linear_input_bytes,
    params_per_gpu,
    training_memory,
)
from service.core.parallelism import end_params_per_gpu
from service.core.params import count_params


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
    trainable_params_per_gpu: int = 0  # the adapters on one GPU before ZeRO-3 (tp x pp shard)
    trainable_expert_params_per_gpu: int = 0  # of which routed experts' (split over ep)
    fp8_params: bool = False  # the frozen matmul weights in FP8 alone (service.core.finetune_spec.resolve_fp8_params)


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
    fp8_recipe: Fp8Recipe = Fp8Recipe.TENSORWISE,
    grad_reduce_dtype: GradReduceDtype | None = None,
) -> FinetuneMemory:
    """Per-GPU memory of LoRA or QLoRA fine-tuning.

    - weights: the frozen base (:func:`base_weight_bytes`; one GPU's tp x pp shard, FP8 alone or with FP8 copies
      under FP8: :func:`service.core.finetune_layout.frozen_base_bytes`) plus the adapters (split as Megatron-Bridge
      splits them); a quantised base adds its dequantisation buffer.
    - gradients: the adapters' only, in ``grad_reduce_dtype``'s bytes where given (:mod:`service.core.gradients`). LoRA
      adapters otherwise follow ``precision`` as full training does (mixed: 16-bit weights and gradients, fp32 master copy and states; the same 16 bytes a parameter as PEFT's
      fp32 adapters under autocast); QLoRA adapters are bf16 (fp32 under ``precision=fp32``) with 32-bit
      optimizer states and no master copy (QLoRA Eq. 5; the reference uses bitsandbytes' ``paged_adamw_32bit``).
    - optimizer: the adapters' states (:func:`service.core.memory.optimizer_state_bytes`). Paged (QLoRA §3),
      they may move to host memory when the GPU runs short: they are counted on the GPU in ``total_bytes`` and
      reported as ``pageable_bytes``, with ``total_if_paged_bytes`` the GPU memory if they all moved (a slower
      optimizer step, not a smaller model).
    - activations: those of full training (:func:`service.core.memory.training_memory`), less the matmul inputs
      only a frozen weight's gradient would have read (:func:`frozen_input_bytes_per_layer`), plus the adapters' own
      (:func:`adapter_activation_bytes_per_layer`); full recompute keeps each layer's input either way. Under FP8 the
      linear layers' inputs are counted in FP8 in both (:func:`service.core.memory.kept_linear_input_bytes`).
    - ZeRO over ``dp * cp`` (:func:`service.core.finetune_layout.zero_sharded`); a quantised base runs under dp only
      (422 otherwise); ``selective_op`` recompute (full training's block, :mod:`service.core.op_checkpoint`) is a 422.
    """
    if spec.method is FinetuneMethod.FULL:
        raise InvalidSpecError("finetune.method", "'full' is ordinary training: use the training memory")
    if recompute is Recompute.SELECTIVE_OP:
        raise InvalidSpecError("recompute", "selective_op is not counted for fine-tunes")
    arch = require_architecture(model, "LoRA adapters (their shapes)")
    par = parallelism
    fmt, kept_dtype = base_formats(spec, precision)
    check_layout(fmt, par)
    check_rank(arch, spec, targets := resolve_targets(arch, spec.targets))
    pb = PRECISION_BYTES[precision]
    tokens = (seq_len or arch.max_seq_len) // par.cp * micro_batch_size
    fused, mask = _attention_and_masks(arch, kernels, flash_attention=flash_attention, dropout=dropout, e=pb.activation)
    inputs = kept_linear_input_bytes(precision, fp8_recipe)  # FP8: the linear layers' inputs kept in FP8
    delta = _pipeline_delta(arch, spec, targets, par, tokens=tokens, element_bytes=pb.activation, fused=fused, mask_bytes=mask,
                            recompute=recompute, linear_input_bytes=inputs, counted=include_activations)  # fmt: skip
    base_mem = training_memory(
        arch, precision=precision, optimizer=optimizer, parallelism=par, micro_batch_size=micro_batch_size,
        seq_len=seq_len, recompute=recompute, flash_attention=flash_attention, dropout=dropout, fp8_recipe=fp8_recipe,
        include_activations=include_activations, microbatches=microbatches, kernels=kernels, layer_delta_bytes=delta,
    )  # fmt: skip
    base = base_weight_bytes(arch, fmt, double_quant=spec.double_quant, kept_dtype=kept_dtype or BaseFormat.FP32,
                             compute_bytes=pb.activation)  # fmt: skip
    by_target = adapter_params(arch, spec.rank, targets)
    p_a = sum(by_target.values())
    a_gpu, a_expert = adapter_params_per_gpu(arch, *adapter_params_split(arch, spec.rank, targets), par)
    adapters = adapter_bytes(spec, precision, optimizer, p_a, grad_reduce_dtype)
    p_gpu, p_expert = params_per_gpu(arch, par), expert_params_per_gpu(arch, par)
    dense, experts = (adapter_bytes(spec, precision, optimizer, n, grad_reduce_dtype) for n in (a_gpu - a_expert, a_expert))
    fp8_params = resolve_fp8_params(spec, precision)
    frozen = partial(frozen_base_bytes, arch, base, fmt, precision=precision, fp8_params=fp8_params, recipe=fp8_recipe)
    base_dense, base_experts, copies, gathered = frozen(p_gpu, p_expert, ends=end_params_per_gpu(arch, par))
    on_gpu = zero_sharded(ZeroSharding.of(par), base=(base_dense, base_experts), adapters=(dense.weights, experts.weights),
                          gradients=(dense.gradients, experts.gradients), states=(dense.states, experts.states), fp8_copies=copies,
                          dequantization_buffer_bytes=base.dequantization_buffer_bytes, gathered_base=gathered)  # fmt: skip
    adapter_acts, frozen_inputs, activations, stage = _activations(
        arch, spec, targets, base_mem, par, tokens=tokens, element_bytes=pb.activation, mask_bytes=mask, linear_input_bytes=inputs,
        fused=fused and recompute is not Recompute.SELECTIVE, counted=include_activations and recompute is not Recompute.FULL,
    )  # fmt: skip  # a kernel selective recompute reruns keeps no output; full recompute keeps the layer inputs
    total = on_gpu.weights + on_gpu.gradients + on_gpu.optimizer + activations
    paged = spec.paged
    pageable = on_gpu.optimizer if paged else 0
    for name, value in (("weights_bytes", on_gpu.weights), ("total_bytes", total)):
        check_bytes(name, value)
    total_params = count_params(arch).total
    mem = TrainingMemory(
        params_per_gpu=p_gpu + a_gpu, weights_bytes=on_gpu.weights, gradients_bytes=on_gpu.gradients,
        optimizer_bytes=on_gpu.optimizer, activations_bytes=activations, total_bytes=total,
        cpu_offload_bytes=on_gpu.cpu_offload, activations=stage,
        bytes_per_param={"weights": frozen(total_params, 0)[0] / total_params, "gradients": adapters.gradients / p_a,
                         "optimizer": adapters.states / p_a},
        formulas=_formulas(spec, targets, fmt, kept_dtype, paged=paged),
        notes=_notes(spec, arch, optimizer, _fp8_notes(base_mem.notes, fp8_params, fp8_recipe), adapters.format),
    )  # fmt: skip
    return FinetuneMemory(
        memory=mem, spec=spec, base_format=fmt, kept_dtype=kept_dtype, targets=targets, trainable_params=p_a,
        total_params=total_params, adapter_params_by_target=by_target, base=base, base_weights_bytes=on_gpu.base,
        adapter_weights_bytes=on_gpu.adapters, adapter_gradients_bytes=on_gpu.gradients,
        adapter_optimizer_bytes=on_gpu.optimizer, adapter_activations_bytes=adapter_acts,
        frozen_inputs_not_kept_bytes=frozen_inputs, adapter_checkpoint_bytes=adapters.bytes_per_param * p_a,
        paged_optimizer=paged, pageable_bytes=pageable, total_if_paged_bytes=total - pageable,
        trainable_params_per_gpu=a_gpu, trainable_expert_params_per_gpu=a_expert, fp8_params=fp8_params,
    )  # fmt: skip


def _fp8_notes(notes: tuple[str, ...], fp8_params: bool, recipe: Fp8Recipe) -> tuple[str, ...]:
    """Full training's notes, its FP8 copies' note replaced by the FP8 primary weights' when the
    frozen base has them (:func:`service.core.finetune_layout.frozen_base_bytes`)."""
    if not fp8_params:
        return notes
    kept = tuple(n for n in notes if not n.startswith("FP8 ("))
    return kept + (
        f"FP8 ({recipe.value}) primary weights: the frozen matmul weights in FP8 alone, {frozen_weight_bytes_per_param(recipe):g} "
        "bytes each (row- and column-wise), no BF16 copy (Transformer Engine fp8_model_init; NeMo fp8_params, "
        f"Megatron-Bridge fp8_param_gather); {BF16_OPS}",
    )


def _pipeline_delta(
    arch: Architecture, spec: FinetuneSpec, targets: tuple[Projection, ...], par: Parallelism, *, tokens: int,
    element_bytes: int, fused: bool, mask_bytes: int, recompute: Recompute, linear_input_bytes: float | None, counted: bool,
) -> int:  # fmt: skip
    """Each layer's change (:func:`layer_delta_bytes`) with more than one pipeline stage, where every stage's
    layers change and the stage's peak is counted again with it; 0 with one stage (shifted afterwards)."""
    if par.pp == 1 or not counted:
        return 0
    return layer_delta_bytes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes, fused_attention=fused,
                             recompute=recompute, tp=par.tp, sequence_parallel=par.sequence_parallel, mask_bytes=mask_bytes,
                             linear_input_bytes=linear_input_bytes)  # fmt: skip


def _attention_and_masks(
    arch: Architecture, kernels: Kernels, *, flash_attention: bool, dropout: bool, e: int
) -> tuple[bool, int]:
    """Whether attention runs a fused kernel that keeps its output (not eager, not the CPU's SDPA math path
    with dropout), and the bytes a LoRA dropout mask keeps an element (:func:`service.core.kernels.dropout_mask_bytes`)."""
    k = resolve_kernels(kernels, arch, flash_attention=flash_attention)
    return k.attention is not AttentionKernel.EAGER and not sdpa_math_fallback(k, dropout=dropout), dropout_mask_bytes(k, e)


def _activations(
    arch: Architecture, spec: FinetuneSpec, targets: tuple[Projection, ...], base_mem: TrainingMemory, par: Parallelism, *,
    tokens: int, element_bytes: int, fused: bool, mask_bytes: int, counted: bool, linear_input_bytes: float | None,
) -> tuple[int, int, int, StageActivations | None]:  # fmt: skip
    """(the adapters' activations, the frozen inputs not kept, the stage's activations and their
    detail): full training's shifted by the changes of every layer with one pipeline stage; with
    more, the changes are already in each stage's layers (``layer_delta_bytes``)."""
    adapter_acts = frozen_inputs = 0
    if counted:
        adapter_acts, frozen_inputs = activation_changes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes,
                                                         fused_attention=fused, tp=par.tp, mask_bytes=mask_bytes,
                                                         sequence_parallel=par.sequence_parallel,
                                                         linear_input_bytes=linear_input_bytes)  # fmt: skip
    if par.pp > 1:
        return adapter_acts, frozen_inputs, base_mem.activations_bytes, base_mem.activations
    stage = shifted_stage(base_mem.activations, adapter_acts - frozen_inputs, arch.n_layers)
    return adapter_acts, frozen_inputs, base_mem.activations_bytes - frozen_inputs + adapter_acts, stage


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
