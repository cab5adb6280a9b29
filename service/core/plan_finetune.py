"""The planner's view of a LoRA/QLoRA fine-tune: per-shard memory terms of the frozen base and the
adapters over the search space's arrays, each layer's activation change, the FLOPs MFU counts and
what the step-time model adds (:mod:`service.core.steptime_finetune`).

Every term is the scalar core's (:func:`service.core.finetune.finetune_memory`, whose layout rules
are in :mod:`service.core.finetune_layout`) evaluated once per (tp, pp, ep, virtual stages) shard
and combined over the layouts as :mod:`service.core.plan_space` combines pre-training's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from service.core import pipeline
from service.core.adapters import Projection, adapted_layers, adapter_params_split, projection_shapes, resolve_targets
from service.core.architecture import Architecture
from service.core.base_weights import FLOAT_BYTES, FOUR_BIT, BaseFormat, BaseWeights, base_weight_bytes, quantized_matrix_bytes
from service.core.compute import AttentionFormula, Recompute
from service.core.errors import InvalidSpecError
from service.core.finetune import finetune_training_flops
from service.core.finetune_activations import layer_delta_bytes
from service.core.finetune_layout import (
    MODEL_PARALLEL,
    adapter_bytes,
    adapter_params_per_gpu,
    frozen_base_bytes,
    layout_problem,
    zero_sharded,
)
from service.core.finetune_spec import FinetuneSpec, base_formats, check_rank, resolve_fp8_params
from service.core.fp8 import Fp8Recipe, zero3_gather_bytes_per_param
from service.core.gradients import GradReduceDtype
from service.core.memory import (
    PRECISION_BYTES,
    Optimizer,
    Parallelism,
    Precision,
    ZeroSharding,
    expert_params_per_gpu,
    fp8_copy_params,
    params_per_gpu,
)
from service.core.parallelism import end_params_per_gpu
from service.core.pipeline import PipelineSchedule
from service.core.steptime_finetune import AdapterLoad, adapter_matrices


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedFinetune:
    """A fine-tune's spec with what follows from it for a model: the base's format and bytes, the
    adapted projections and the adapters' parameters outside and inside the routed experts."""

    spec: FinetuneSpec
    base_format: BaseFormat
    base: BaseWeights
    targets: tuple[Projection, ...]
    adapter_params: int
    routed_adapter_params: int
    fp8_params: bool = False  # the frozen matmul weights in FP8 alone (service.core.finetune_spec.resolve_fp8_params)


@lru_cache(maxsize=256)
def resolve_finetune(arch: Architecture, spec: FinetuneSpec, precision: Precision) -> ResolvedFinetune:
    """:class:`ResolvedFinetune`, or a 422 naming the ``finetune`` field at fault (format, targets, rank)."""
    fmt, kept = base_formats(spec, precision)
    targets = resolve_targets(arch, spec.targets)
    check_rank(arch, spec, targets)
    base = base_weight_bytes(arch, fmt, double_quant=spec.double_quant, kept_dtype=kept or BaseFormat.FP32,
                             compute_bytes=PRECISION_BYTES[precision].activation)  # fmt: skip
    dense, routed = adapter_params_split(arch, spec.rank, targets)
    return ResolvedFinetune(spec=spec, base_format=fmt, base=base, targets=targets, adapter_params=dense + routed,
                            routed_adapter_params=routed, fp8_params=resolve_fp8_params(spec, precision))  # fmt: skip


def check_fixed(ft: ResolvedFinetune, fixed: dict[str, Any]) -> None:
    """A fixed tp, pp, cp or ep that the base's kernels cannot run is the field's fault."""
    problem = layout_problem(ft.base_format, {name: fixed.get(name, 1) for name in MODEL_PARALLEL})
    if problem:
        raise InvalidSpecError(f"fixed.{problem[0]}", problem[1])


def data_parallel_only(ft: ResolvedFinetune) -> bool:
    """A quantised base runs under data parallelism only (:mod:`service.core.finetune_layout`)."""
    return ft.base_format not in FLOAT_BYTES


@dataclass(frozen=True, slots=True)
class FinetuneShardTable:
    """Per-shard terms by (parameter copies - 1, tp, pp, ep, virtual stages), as
    :class:`service.core.plan_space._ShardTable`: the frozen base's bytes and parameters, FP8
    copies, the base a stage ZeRO-3 keeps gathered holds, and the adapters' parameters, weights,
    gradients and optimizer states, each outside and inside the routed experts."""

    terms: dict[str, np.ndarray]
    dequantization_buffer_bytes: int


SHARD_TERMS = ("base", "base_expert", "base_params", "base_expert_params", "fp8_copies", "trainable", "trainable_expert",
               "weights", "weights_expert", "gradients", "gradients_expert", "states", "states_expert",
               "gathered_base")  # fmt: skip


def finetune_shard_table(
    arch: Architecture, ft: ResolvedFinetune, axes: dict[str, np.ndarray], *, precision: Precision, optimizer: Optimizer,
    fp8_recipe: Fp8Recipe, expert_tensor_parallel: int | None, grad_reduce_dtype: GradReduceDtype | None = None,
) -> FinetuneShardTable:  # fmt: skip
    """:class:`FinetuneShardTable` from the scalar core's terms
    (:mod:`service.core.finetune_layout`), one shard at a time."""
    names = ("tp", "pp", "ep", "virtual_stages")
    shape = (2, *(len(axes[k]) for k in names))
    terms = {name: np.zeros(shape, dtype=np.float64) for name in SHARD_TERMS}
    dual = pipeline.DUALPIPE in axes["pipeline_schedule"]
    for idx in np.ndindex(shape):
        twice, (t, p, ep, v) = idx[0], (axes[k][i].item() for k, i in zip(names, idx[1:], strict=True))
        if p * v > pipeline.max_chunks(arch.n_layers) or (v > 1 and p == 1) or (twice and (not dual or v > 1 or p % 2)):
            continue  # never a valid layout
        par = Parallelism(tp=t, pp=p, ep=ep, virtual_stages=v, pipeline_schedule=PipelineSchedule.DUALPIPE if twice else None,
                          expert_tensor_parallel=expert_tensor_parallel)  # fmt: skip
        p_gpu, p_expert = params_per_gpu(arch, par), expert_params_per_gpu(arch, par)
        base, base_expert, copies, gathered = frozen_base_bytes(arch, ft.base, ft.base_format, p_gpu, p_expert, precision=precision,
                                                      fp8_params=ft.fp8_params, recipe=fp8_recipe,
                                                      ends=end_params_per_gpu(arch, par))  # fmt: skip
        a_gpu, a_expert = adapter_params_per_gpu(
            arch, ft.adapter_params - ft.routed_adapter_params, ft.routed_adapter_params, par
        )
        dense, experts = (
            adapter_bytes(ft.spec, precision, optimizer, n, grad_reduce_dtype) for n in (a_gpu - a_expert, a_expert)
        )
        values = (base, base_expert, p_gpu - p_expert, p_expert, copies, a_gpu, a_expert, dense.weights,
                  experts.weights, dense.gradients, experts.gradients, dense.states, experts.states, gathered)  # fmt: skip
        for name, value in zip(SHARD_TERMS, values, strict=True):
            terms[name][idx] = value
    return FinetuneShardTable(terms=terms, dequantization_buffer_bytes=ft.base.dequantization_buffer_bytes)


def finetune_state_arrays(table: FinetuneShardTable, shard: tuple[np.ndarray, ...], zero: ZeroSharding) -> dict[str, np.ndarray]:
    """Per-GPU weights, gradients and optimizer states (on the GPU and offloaded) of every layout by
    :func:`service.core.finetune_layout.zero_sharded`, the formula of
    :func:`service.core.finetune.finetune_memory`, and the per-GPU parameters the step-time model
    reads (trainable, frozen)."""
    t = {name: table.terms[name][shard] for name in SHARD_TERMS}
    s = zero_sharded(zero, base=(t["base"], t["base_expert"]), adapters=(t["weights"], t["weights_expert"]),
                     gradients=(t["gradients"], t["gradients_expert"]), states=(t["states"], t["states_expert"]),
                     fp8_copies=t["fp8_copies"], dequantization_buffer_bytes=table.dequantization_buffer_bytes,
                     gathered_base=t["gathered_base"])  # fmt: skip
    return {"weights": s.weights, "gradients": s.gradients, "optimizer": s.optimizer, "offloaded": s.cpu_offload,
            "params": t["trainable"], "expert_params": t["trainable_expert"], "base_params": t["base_params"],
            "base_expert_params": t["base_expert_params"]}  # fmt: skip


def finetune_layer_delta(
    arch: Architecture, ft: ResolvedFinetune, *, tokens: int, element_bytes: int, flash_attention: bool, recompute: Recompute,
    tp: int, sequence_parallel: bool, linear_input_bytes: float | None = None,
) -> int:  # fmt: skip
    """One layer's activation change on one GPU (:func:`service.core.finetune_activations.layer_delta_bytes`),
    Megatron-LM's kernels: fused attention exactly when FlashAttention is on; ``linear_input_bytes`` the FP8
    linear layers' kept inputs (:func:`service.core.memory.kept_linear_input_bytes`)."""
    return layer_delta_bytes(arch, ft.spec, ft.targets, tokens=tokens, element_bytes=element_bytes,
                             fused_attention=flash_attention, recompute=recompute, tp=tp, sequence_parallel=sequence_parallel,
                             linear_input_bytes=linear_input_bytes)  # fmt: skip


def finetune_flops_per_token(arch: Architecture, ft: ResolvedFinetune, seq_len: int, causal: bool) -> tuple[float, np.ndarray]:
    """Model FLOPs per token of the fine-tune (``(4P + 6P_a)`` + the attention core,
    :func:`service.core.finetune.finetune_training_flops`) and hardware FLOPs per token for
    none/selective/full recompute, as :func:`service.core.plan_space.flops_per_token_by_recompute` counts them."""
    by_recompute = [
        finetune_training_flops(arch, 1.0, ft.spec, recompute=r, include_attention=True, attention_formula=AttentionFormula.MEGATRON,
                                seq_len=seq_len, causal=causal)[0]
        for r in (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)
    ]  # fmt: skip
    return by_recompute[0].model_flops_per_token, np.asarray([f.hardware_flops_per_token for f in by_recompute])


def adapter_load(arch: Architecture, ft: ResolvedFinetune, *, base_params: Any, base_expert_params: Any,
                 paged_bytes: Any = 0.0, fp8_recipe: Fp8Recipe | None = None) -> AdapterLoad:  # fmt: skip
    """The step-time model's :class:`service.core.steptime_finetune.AdapterLoad`: a quantised base's
    dequantisation reads its data and block constants and writes 16 bits a weight (bitsandbytes'
    ``dequantize_4bit``; QLoRA Eq. 6); ZeRO-3 gathers the base in its storage format, FP8 primary
    weights' matmul weights in FP8 (Megatron's --fp8-param-gather) and, under FP8 training
    (``fp8_recipe``), a 16-bit base's as FSDP2's all-gather sends them
    (:func:`service.core.fp8.zero3_gather_bytes_per_param`, what a gathered stage holds:
    :func:`service.core.finetune_layout.frozen_base_bytes`)."""
    quantised = ft.base.quantized_params
    per_param = 0.0
    if quantised and ft.base_format in FOUR_BIT + (BaseFormat.INT8,):
        data, constants = quantized_matrix_bytes(arch.d_model, arch.d_model, ft.base_format, double_quant=ft.spec.double_quant)
        per_param = (data + constants) / arch.d_model**2 + 2  # read the stored weight, write its 16-bit copy
    gather = ft.base.weights_bytes / max(1, ft.base.quantized_params + ft.base.kept_params)
    if ft.fp8_params:  # FP8 primary weights: ZeRO-3 gathers the matmul weights in FP8 (Megatron's --fp8-param-gather)
        gather = gather - (gather - 1) * fp8_copy_params(arch, 1.0)
    elif quantised == 0:  # a 16/32-bit base (a quantised one never runs in FP8)
        gather = zero3_gather_bytes_per_param(gather, fp8_copy_params(arch, 1.0), fp8_recipe)
    return AdapterLoad(rank=ft.spec.rank, matrices=adapter_matrices(projection_shapes(arch), ft.targets),
                       dequantized_params_per_layer=quantised / arch.n_layers, dequantize_bytes_per_param=per_param,
                       base_params_per_gpu=base_params, base_expert_params_per_gpu=base_expert_params,
                       base_gather_bytes_per_param=gather, paged_bytes=paged_bytes,
                       adapted_share=adapted_layers(arch, ft.targets) / arch.n_layers)  # fmt: skip
