"""A LoRA/QLoRA fine-tune laid out over GPUs: which layouts its kernels run, and one GPU's share of
the frozen base and of the adapters with their gradients and optimizer states.

- **Tensor, pipeline, context and expert parallelism** (LoRA on a 16/32-bit base): Megatron-Bridge
  (``megatron.bridge.peft.lora``, from NeMo 2's ``ParallelLinearAdapter``) wraps Megatron-Core's
  parallel linear layers; each adapter is split over ``tp`` with its layer (a column-parallel
  layer's ``A`` over the rank and ``B`` over its outputs, a row-parallel one's ``A`` over its
  inputs), held by the pipeline stage of its layer, and a routed expert's adapters by the
  expert-parallel rank of its expert. Its published LoRA runs use TP2/PP4/VP20 (Llama3-70B).
- **Data parallelism with ZeRO/FSDP**: the frozen base is replicated (DDP, ZeRO 0-2) or sharded
  with everything else (ZeRO-3, FSDP: torchtune's LoRA recipes with FSDP2, PEFT with FSDP or
  DeepSpeed); the adapters alone have gradients and optimizer states (Hu et al. 2021 §4.2), which
  ZeRO-1/2 shard (Rajbhandari et al. 2020 §5).
- **A quantised base** (QLoRA's NF4/FP4, LLM.int8): bitsandbytes' ``Linear4bit``/``Linear8bitLt``
  store each matrix flattened into blocks (QLoRA §3) and have no tensor-parallel form, and
  neither Megatron-Bridge nor torchtune shards them over tensor, pipeline, context or expert
  ranks; they run under data parallelism, sharded by FSDP or ZeRO-3 when the packed 4-bit
  storage is given a float dtype (Answer.AI's FSDP+QLoRA, bitsandbytes' ``quant_storage``,
  torchtune's QLoRA recipes). A quantised base with tp, pp, cp or ep above 1 is refused.
- **A frozen base under ZeRO-3 with a pipeline** (:class:`service.core.memory.ZeroSharding`
  ``gathered``: FSDP2 keeps the stage gathered through the step) holds what pre-training's gathered
  stage holds (:func:`service.core.memory.gathered_fp8_weight_bytes`): under FP8 with a 16-bit base
  its matmul weights as FSDP2's all-gather output, one FP8 byte under tensorwise scaling (torchao's
  ``WeightWithDynamicFloat8CastTensor`` wraps a ``Float8Linear``'s weight whether it trains or not),
  and no FP8 copies; FP8 primary weights as they are stored, unsharded. A quantised base never
  gathers under a pipeline (``pp`` above 1 is refused) and never runs in FP8
  (:func:`service.core.finetune_spec.base_formats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from service.core.activations import pick, round_up
from service.core.architecture import Architecture
from service.core.base_weights import FLOAT_BYTES, BaseFormat, BaseWeights
from service.core.errors import InvalidSpecError
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.fp8 import Fp8Recipe, frozen_weight_bytes_per_param
from service.core.gradients import GRAD_DTYPE_BYTES, GradReduceDtype, resolve_gradient_bytes
from service.core.memory import (
    PRECISION_BYTES,
    Optimizer,
    Precision,
    ZeroSharding,
    fp8_copy_bytes,
    fp8_copy_params,
    gathered_fp8_weight_bytes,
    optimizer_state_bytes,
)
from service.core.parallelism import Parallelism
from service.core.pipeline import stage_layers

MODEL_PARALLEL = ("tp", "pp", "cp", "ep")


def layout_problem(fmt: BaseFormat, sizes: dict[str, int]) -> tuple[str, str] | None:
    """(the size, why) when a base in ``fmt`` cannot run with these parallel sizes, else None
    (module docstring: a quantised base runs under data parallelism and ZeRO/FSDP only)."""
    if fmt in FLOAT_BYTES:
        return None
    for name in MODEL_PARALLEL:
        if sizes.get(name, 1) > 1:
            return name, (
                f"a {fmt.value} base runs under data parallelism with ZeRO/FSDP only: bitsandbytes' quantised linear "
                f"layers have no tensor-parallel form and neither Megatron-Bridge nor torchtune shards them over "
                f"{name} (QLoRA + FSDP as Answer.AI and torchtune run it); use {name}=1, or method 'lora' on a bf16 base"
            )
    return None


def check_layout(fmt: BaseFormat, par: Parallelism, prefix: str = "parallelism") -> None:
    """:func:`layout_problem` as a 422 naming ``<prefix>.<size>``."""
    problem = layout_problem(fmt, {name: getattr(par, name) for name in MODEL_PARALLEL})
    if problem:
        raise InvalidSpecError(f"{prefix}.{problem[0]}", problem[1])


def adapter_params_per_gpu(arch: Architecture, dense: int, routed: int, par: Parallelism) -> tuple[int, int]:
    """(adapter parameters on one GPU of the busiest stage, of which routed experts'): the stage's
    layers' share (:func:`service.core.pipeline.stage_layers`), split over ``tp`` (routed experts'
    over ``ep`` and their own tensor size); with ``ep = 1`` the routed experts' adapters count with
    the rest, as :func:`service.core.parallelism.expert_params_per_gpu` counts the experts."""
    layers = max(stage_layers(arch.n_layers, par.pp, par.virtual_stages))
    if par.ep == 1:
        return math.ceil((dense + routed) * layers / (arch.n_layers * par.tp)), 0
    experts = math.ceil(routed * layers / (arch.n_layers * par.ep * par.etp))
    return math.ceil(dense * layers / (arch.n_layers * par.tp)) + experts, experts


def base_bytes_per_gpu(base: BaseWeights, fmt: BaseFormat, params: int, expert_params: int) -> tuple[int, int]:
    """(the frozen base's bytes on one GPU before ZeRO-3 outside the routed experts, the routed experts'): a 16/32-bit
    base's ``params`` of the shard (:func:`service.core.parallelism.params_per_gpu`) in its format;
    a quantised base (data parallelism only) whole."""
    if fmt in FLOAT_BYTES:
        return FLOAT_BYTES[fmt] * (params - expert_params), FLOAT_BYTES[fmt] * expert_params
    return base.weights_bytes, 0


def frozen_base_bytes(
    model: Any, base: BaseWeights, fmt: BaseFormat, params: Any, expert_params: Any, *, precision: Precision,
    fp8_params: bool, recipe: Fp8Recipe, ends: Any = None,
) -> tuple[Any, Any, Any, Any]:  # fmt: skip
    """(the frozen base's bytes on one GPU outside and inside the routed experts, its FP8 copies, and
    its bytes on a GPU of a stage ZeRO-3 keeps gathered): :func:`base_bytes_per_gpu` with the FP8
    copies of the matmul weights under ``precision=fp8`` (:func:`service.core.memory.fp8_copy_bytes`,
    as full training counts them); with FP8 primary weights
    (:func:`service.core.finetune_spec.resolve_fp8_params`) the matmul weights are stored in FP8
    alone (:func:`service.core.fp8.frozen_weight_bytes_per_param`) and the embedding, the output
    layer and the norms in ``fmt``, with no copies beside them. Gathered (module docstring): the
    base as stored, unsharded, except that under FP8 a 16-bit base's matmul weights are held as
    the all-gather's output (:func:`service.core.memory.gathered_fp8_weight_bytes`). ``ends``: the
    embedding's and LM head's parameters among ``params`` (:func:`service.core.memory.fp8_copy_params`)."""
    dense, experts = base_bytes_per_gpu(base, fmt, params, expert_params)
    if not fp8_params:
        if precision is not Precision.FP8:
            return dense, experts, 0, dense + experts
        gathered = gathered_fp8_weight_bytes(model, params, recipe, FLOAT_BYTES[fmt], ends)
        return dense, experts, fp8_copy_bytes(model, params, recipe, ends), gathered
    per_param, fmt_bytes = frozen_weight_bytes_per_param(recipe), FLOAT_BYTES[fmt]
    no_ends = None if ends is None else 0
    dense_matmul, expert_matmul = (
        fp8_copy_params(model, params - expert_params, ends),
        fp8_copy_params(model, expert_params, no_ends),
    )
    fp8 = (round_up(dense - (fmt_bytes - per_param) * dense_matmul), round_up(experts - (fmt_bytes - per_param) * expert_matmul))
    return fp8[0], fp8[1], 0, fp8[0] + fp8[1]


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterBytes:
    """Adapter parameters' weights, gradients and optimizer states, and their format."""

    bytes_per_param: int  # of the weights, as a checkpoint saves them
    weights: int
    gradients: int
    states: int  # optimizer states (and master copy)
    format: str


def adapter_bytes(
    spec: FinetuneSpec, precision: Precision, optimizer: Optimizer, p_a: int, grad_reduce_dtype: GradReduceDtype | None = None
) -> AdapterBytes:
    """The ``p_a`` adapter parameters' weights, gradients and optimizer states: QLoRA's in bf16 (fp32
    under ``precision=fp32``) with 32-bit states and no master copy (QLoRA Eq. 5); LoRA's as
    ``precision`` says. The gradients take ``grad_reduce_dtype``'s bytes where it is given (as full
    training's, :mod:`service.core.gradients`), else the adapters' own (LoRA: the 16-bit format)."""
    pb = PRECISION_BYTES[precision]
    if spec.method is FinetuneMethod.QLORA:
        per_param = 4 if precision is Precision.FP32 else 2
        state_precision = Precision.BF16 if precision is Precision.BF16 else Precision.FP32
        g = GRAD_DTYPE_BYTES[grad_reduce_dtype] if grad_reduce_dtype else per_param
        return AdapterBytes(bytes_per_param=per_param, weights=per_param * p_a, gradients=g * p_a,
                            states=optimizer_state_bytes(p_a, optimizer, state_precision),
                            format="bf16" if per_param == 2 else "fp32")  # fmt: skip
    g = resolve_gradient_bytes(precision, grad_reduce_dtype)[0]
    return AdapterBytes(bytes_per_param=pb.weight, weights=pb.weight * p_a, gradients=g * p_a,
                        states=optimizer_state_bytes(p_a, optimizer, precision), format={2: "16-bit", 4: "fp32"}[pb.weight])  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardedFinetune:
    """One GPU's share under ZeRO over the data-parallel ranks: integers for one layout, NumPy
    arrays for the planner's grid."""

    base: Any
    adapters: Any
    weights: Any  # the base, the adapters, FP8 copies and the dequantisation buffer
    gradients: Any
    optimizer: Any  # on the GPU
    cpu_offload: Any  # optimizer states offloaded to the host


def zero_sharded(
    zero: ZeroSharding, *, base: tuple[Any, Any], adapters: tuple[Any, Any], gradients: tuple[Any, Any],
    states: tuple[Any, Any], fp8_copies: Any, dequantization_buffer_bytes: int, gathered_base: Any,
) -> ShardedFinetune:  # fmt: skip
    """ZeRO over ``dp * cp`` (routed experts over ``dp * cp / ep``) of (dense, expert) byte pairs:
    stage 1 shards the adapters' optimizer ``states``, 2 their ``gradients`` too, 3 every weight,
    the frozen ``base`` included (FSDP with LoRA); the weights add the FP8 copies of the frozen
    matmul weights below ZeRO-3 (as full training counts them,
    :func:`service.core.memory.sharded_states`) and a quantised base's dequantisation buffer;
    ZeRO-3 under a pipeline holds the base as ``gathered_base`` (:func:`frozen_base_bytes`) and no
    FP8 copies; ``offload`` moves the states to the host. The one formula of
    :func:`service.core.finetune.finetune_memory` (scalars) and of the planner's grid
    (:func:`service.core.plan_finetune.finetune_state_arrays`, arrays)."""
    # ZeRO-3 under a pipeline: the stage's base as its all-gather holds it
    on_gpu_base, on_gpu_adapters = pick(zero.gathered, gathered_base, zero.shard(*base, 3)), zero.shard(*adapters, 3)
    weights = on_gpu_base + on_gpu_adapters + pick(zero.stage >= 3, 0, fp8_copies) + dequantization_buffer_bytes
    optimizer = zero.shard(*states, 1)
    return ShardedFinetune(base=on_gpu_base, adapters=on_gpu_adapters, weights=weights, gradients=zero.shard(*gradients, 2),
                           optimizer=pick(zero.offload, 0, optimizer), cpu_offload=pick(zero.offload, optimizer, 0))  # fmt: skip
