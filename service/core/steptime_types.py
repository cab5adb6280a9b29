"""The step-time model's inputs and output (:mod:`service.core.steptime`): what a step does
(:class:`Workload`), the parallel layouts priced at once (:class:`Layout`), and the step's seconds by
part (:class:`StepTime`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core.compute import RECOMPUTE_CODES as RECOMPUTE_CODES  # re-exported: the layouts' codes
from service.core.fp8 import Fp8Recipe
from service.core.steptime_moe import MoeDispatcher


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """What one optimizer step does: ``global_batch_size`` sequences of ``seq_len`` tokens,
    16-bit activations (``element_bytes``), gradients reduced in ``gradient_bytes`` per
    element (``gathered_gradient_bytes`` under ZeRO-3 with a pipeline; :mod:`service.core.gradients`), weights gathered in ``weight_bytes``, ``optimizer_bytes_per_param`` of states and
    master copy updated per parameter. ``overlap_grad_reduce`` false reduces the gradients
    after the backward pass instead of beside it (Megatron-LM's ``local`` DDP of 2021)."""

    seq_len: int
    global_batch_size: int
    flash_attention: bool = True
    dropout: bool = False
    element_bytes: int = 2
    weight_bytes: int = 2
    gradient_bytes: int = 2
    gathered_gradient_bytes: int = 4  # FSDP2's fp32 reduce dtype unless grad_reduce_dtype names one
    optimizer_bytes_per_param: float = 12.0
    overlap_grad_reduce: bool = True
    fp8_cast_bytes_per_element: float = 0.0  # > 0: the blocks' matmuls run in FP8 (service.core.fp8)
    zero3_fp8_recipe: Fp8Recipe | None = None  # FP8: ZeRO-3 gathers the matmul weights as this recipe's FSDP2 all-gather
    tp_comm_overlap: bool = False
    tp_comm_overlap_rs_dgrad: bool = False  # a frozen base's QKV/up reduce-scatters pipelined with their dgrad GEMMs
    ep_comm_overlap: bool = False
    moe_max_nodes_per_token: int | None = None
    fused_kernels: bool = True  # False: PyTorch eager's element-wise kernels (EAGER_*)
    moe_load_imbalance: float = 1.0  # tokens of the busiest expert-parallel rank over the mean
    expert_tensor_parallel: int | None = None  # 1: MoE parallel folding; None: the experts split over tp
    moe_dispatcher: MoeDispatcher = MoeDispatcher.DEEPEP
    cuda_graphs: bool = False  # the layers captured in CUDA graphs: no eager host floor on an adapted layer

    @property
    def fp8(self) -> bool:
        return self.fp8_cast_bytes_per_element > 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Layout:
    """Parallel layouts as arrays (or scalars) that broadcast together. ``recompute`` holds
    :data:`RECOMPUTE_CODES`; ``params_per_gpu`` the parameters of the busiest stage's shard
    before ZeRO (:func:`service.core.memory.params_per_gpu`), of which ``expert_params_per_gpu``
    are routed experts, reduced over ``dp*cp/ep`` ranks only."""

    tp: Any
    pp: Any
    dp: Any
    cp: Any
    ep: Any
    zero_stage: Any
    offload_optimizer: Any
    micro_batch_size: Any
    recompute: Any
    sequence_parallel: Any
    virtual_stages: Any
    params_per_gpu: Any
    expert_params_per_gpu: Any = 0
    pipeline_schedule: Any = None  # codes of service.core.pipeline.SCHEDULES; None: interleaved when v > 1, else 1F1B


@dataclass(frozen=True, kw_only=True, slots=True)
class StepTime:
    """Seconds of one optimizer step on the busiest pipeline stage, by part; the parts sum to
    ``step_seconds``. Communication parts are what is exposed (not hidden under compute)."""

    compute_seconds: Any
    recompute_seconds: Any
    tp_comm_seconds: Any
    cp_comm_seconds: Any
    ep_comm_seconds: Any
    pp_comm_seconds: Any
    bubble_seconds: Any
    dp_comm_seconds: Any
    optimizer_seconds: Any
    host_seconds: Any
    step_seconds: Any
    microbatches: Any
