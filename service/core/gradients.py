"""The dtype gradients are accumulated and data-parallel reduced in, and its bytes per element.

What the frameworks do under mixed precision:

- Megatron-LM, ``--bf16``: gradients accumulate in fp32 ``main_grad`` buffers and are all-reduced or
  reduce-scattered in fp32 (``megatron/training/arguments.py`` sets ``accumulate_allreduce_grads_in_fp32``
  unless ``--grad-reduce-in-bf16``; ``megatron/training/training.py`` passes it as
  ``DistributedDataParallelConfig.grad_reduce_in_fp32``; the grad buffer's dtype is ``torch.float``).
  Its own memory formula counts ``18`` bytes a parameter, ``6 + 12/d`` with the distributed optimizer
  (``megatron/training/theoretical_memory_usage.py``; ``docs/source/api-guide/dist_optimizer.md``: fp16
  param + fp32 grads 18, 6 + 12/d). ``--fp16``: gradients in fp16 unless
  ``--accumulate-allreduce-grads-in-fp32``.
- Megatron-Bridge / NeMo 2.0: ``bf16_mixed()`` sets ``grad_reduce_in_fp32=True``, ``fp16_mixed()`` False,
  the FP8 recipes start from ``bf16_mixed()`` (``src/megatron/bridge/training/mixed_precision.py``); its
  performance recipes often turn it off (DeepSeek-V3 on H100: ``grad_reduce_in_fp32 = False``).
- torchtitan / FSDP2: ``MixedPrecisionPolicy(param_dtype=bfloat16, reduce_dtype=float32)``
  (``mixed_precision_reduce = "float32"``): fp32 reduce-scatter into the fp32 sharded gradient.
- DeepSpeed: bf16 without ZeRO accumulates in fp32 (BF16_Optimizer); with ZeRO the default
  ``grad_accum_dtype`` is the model's dtype (``deepspeed/runtime/engine.py`` ``get_data_types``).
- Llama 3 (Dubey et al. 2024 §3.3.2, "Numerical stability"): fp32 accumulation and fp32 reduce-scatter.

The default here stays ZeRO's accounting (Rajbhandari et al. 2020 §3: 2 bytes of 16-bit gradients,
16 bytes a parameter with AdamW), except for ZeRO-3 under a pipeline, which accumulates in FSDP2's fp32
reduce dtype (:data:`FSDP_REDUCE_BYTES`): with fp32 gradients everywhere, the planner moves Llama 3 405B
(16,384 H100, tp 8 / pp 16) and DeepSeek-V3 (Megatron-Bridge, 1,024 H100) out of their throughput bars
(ACCURACY.md), so fp32 is a request option (``grad_reduce_dtype``), not the default.
"""

from __future__ import annotations

from enum import StrEnum

from service.core.errors import InvalidSpecError


class GradReduceDtype(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


GRAD_DTYPE_BYTES = {GradReduceDtype.FP32: 4, GradReduceDtype.BF16: 2, GradReduceDtype.FP16: 2}

# FSDP2's reduce dtype under mixed precision (torchtitan: MixedPrecisionPolicy(param_dtype=bfloat16,
# reduce_dtype=float32)): the dtype ZeRO-3 under a pipeline accumulates its unsharded gradients in
FSDP_REDUCE_BYTES = 4

# the 16-bit format of each training precision's gradients (keys: service.core.memory.Precision values)
SIXTEEN_BIT = {"mixed_bf16": GradReduceDtype.BF16, "fp8": GradReduceDtype.BF16, "bf16": GradReduceDtype.BF16,
               "mixed_fp16": GradReduceDtype.FP16}  # fmt: skip


def default_grad_dtype(precision: str) -> GradReduceDtype:
    """The dtype gradients are counted in when the request names none: the weights' 16-bit format
    (ZeRO §3), fp32 for fp32 training."""
    return SIXTEEN_BIT.get(precision, GradReduceDtype.FP32)


def grad_dtype_problem(precision: str, dtype: GradReduceDtype | None) -> str | None:
    """Why ``dtype`` does not go with ``precision`` (None when it does): fp32 goes with any, a 16-bit
    one only with training whose weights are in that format."""
    if dtype is None or dtype is GradReduceDtype.FP32 or SIXTEEN_BIT.get(precision) is dtype:
        return None
    return f"{dtype.value} gradients do not go with precision {precision}: use fp32 or {default_grad_dtype(precision).value}"


def resolve_gradient_bytes(precision: str, dtype: GradReduceDtype | None) -> tuple[int, int]:
    """Bytes a gradient element takes (in memory and in the data-parallel reduction) and under ZeRO-3
    with a pipeline (:func:`service.core.memory.zero3_gathered`): the named dtype for both, or by default
    the 16-bit format and FSDP2's fp32 reduce dtype (:data:`FSDP_REDUCE_BYTES`). A dtype that does not go with
    ``precision`` (:func:`grad_dtype_problem`) is an :class:`InvalidSpecError` on ``grad_reduce_dtype``."""
    if problem := grad_dtype_problem(precision, dtype):
        raise InvalidSpecError("grad_reduce_dtype", problem)
    if dtype is not None:
        return GRAD_DTYPE_BYTES[dtype], GRAD_DTYPE_BYTES[dtype]
    g = GRAD_DTYPE_BYTES[default_grad_dtype(precision)]
    return g, max(g, FSDP_REDUCE_BYTES)


def grad_formula(precision: str, dtype: GradReduceDtype | None, bytes_per_param: int) -> str:
    """The formula line naming the gradients' dtype and bytes as counted (``bytes_per_param``) and who keeps them so."""
    if dtype is None:
        named = f"{default_grad_dtype(precision).value} by default (ZeRO §3's accounting"
        why = "; fp32 under ZeRO-3 with a pipeline, FSDP2's reduce dtype)" if bytes_per_param == FSDP_REDUCE_BYTES else ")"
        return (f"gradients: {bytes_per_param} bytes a parameter, stored and reduced over dp, {named}{why}; "
                "grad_reduce_dtype fp32 counts Megatron-LM's --bf16 default (18 bytes a parameter with AdamW, "
                "theoretical_memory_usage.py) and FSDP2's reduce_dtype=float32")  # fmt: skip
    return (f"gradients: {bytes_per_param} bytes a parameter in {dtype.value} (grad_reduce_dtype), stored, sharded by "
            "ZeRO-2 and reduced over dp in it (Megatron-LM's grad_reduce_in_fp32, FSDP2's reduce_dtype)")  # fmt: skip


def workload_gradient_bytes(precision: str, dtype: GradReduceDtype | None) -> dict[str, int]:
    """:func:`resolve_gradient_bytes` as the step-time model's :class:`service.core.steptime_types.Workload` fields."""
    g, gathered = resolve_gradient_bytes(precision, dtype)
    return {"gradient_bytes": g, "gathered_gradient_bytes": gathered}


def grad_dtype_assumption(precision: str, dtype: GradReduceDtype | None) -> str:
    """What an answer's ``assumptions.grad_reduce_dtype`` says: the dtype counted and whether it was asked for."""
    g, gathered = resolve_gradient_bytes(precision, dtype)
    if dtype is not None:
        return f"{dtype.value} ({g} bytes a parameter, requested): stored and reduced over dp"
    under = f"; {gathered} (fp32, FSDP2's reduce dtype) under ZeRO-3 with a pipeline" if gathered != g else ""
    return f"{default_grad_dtype(precision).value} by default ({g} bytes a parameter{under}); fp32 on request (grad_reduce_dtype)"
