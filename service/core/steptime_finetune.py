"""The time of one LoRA/QLoRA fine-tuning step: :func:`service.core.steptime.step_time` with a frozen
base.

Every term of pre-training's step (:mod:`service.core.steptime`) stays, with what freezing the base
changes:

- **backward of the frozen base**: a linear layer ``Y = XW`` has two backward GEMMs, the input
  gradient ``dX = dY·Wᵀ`` and the weight gradient ``dW = Xᵀ·dY``, each with the forward's ``2mkn``
  FLOPs (Kaplan et al. 2020 §2.1: backward = 2 x forward). A frozen ``W`` needs no ``dW``
  (autograd skips it: ``W.requires_grad`` is false), so the base's backward matmuls are one
  forward's worth: the base costs ``4PD`` instead of ``6PD``, 2/3 of its full-training matmul
  FLOPs (Hu et al. 2021 §4.2); the attention core and the element-wise kernels are unchanged.
  The output layer keeps its weight-gradient GEMM here (under 2 % of a 7B model's step).
- **adapters**: each adapted matrix's ``x·A`` and ``(x·A)·B`` in the forward, at their own
  (thin, mostly memory-bound) roofline, and their input and weight gradients in the backward
  (twice the forward), split over tensor ranks as Megatron-Bridge splits them
  (:mod:`service.core.finetune_layout`; one adapter per fused layer, ``linear_qkv`` and
  ``linear_fc1``) and over a routed expert's tokens as its expert's GEMM.
  Their weight gradients are the pipeline's ``W`` (zero-bubble schedules).
- **QLoRA's dequantisation** (Dettmers et al. 2023, Eq. 6; bitsandbytes' ``dequantize_4bit``):
  before each matmul of the forward, of the backward (``dX`` needs ``W`` again) and of a
  recomputed forward, each 4-bit matrix is expanded to 16 bits on the GPU: a memory-bound kernel
  reading half a byte and the block constants a weight and writing the 16-bit copy.
- **data parallelism**: the adapters' gradients alone are reduced and their states alone
  updated; ZeRO-3/FSDP still gathers the frozen base in its storage format (bitsandbytes'
  ``quant_storage`` packs 4-bit weights in a float tensor that FSDP shards and gathers as bytes), under
  FP8 a 16-bit base's matmul weights as FSDP2's all-gather sends them
  (:func:`service.core.plan_finetune.adapter_load`), the adapters in their own 16/32-bit format.
- **paged optimizer** (QLoRA §3): states paged to host memory when the GPU runs short travel over
  PCIe to the GPU for the update and back, once a step.
- **the host**: the GPU runs a kernel only after the host has launched it. Run eagerly, every
  module of an adapted layer (the frozen linear, its FP8 scaling, the adapters' two small GEMMs
  each with their own autograd node) is Python and a launch per kernel, so when a layer's GPU work
  is small (a micro-batch of a few thousand tokens split over tensor and context ranks) the step
  runs at the host's pace: a layer's forward and backward take at least the catalog's
  ``adapter_layer_host_seconds`` per micro-batch (fitted, with its row, in
  ``kernel_efficiency.json``), a third more with a recomputed forward, as the MoE host floor
  (:mod:`service.core.steptime_moe`), over the share of the layers that hold an adapter (a hybrid's
  mixer-only layers, or its layers without attention under attention targets, take none, as
  pre-training's layers). CUDA graphs (``Workload.cuda_graphs``; NeMo's
  ``LAYER_CUDA_GRAPH``, Megatron-Core's ``--enable-cuda-graph``) launch a layer's kernels at once:
  no floor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from service.core.adapters import MatrixShape, Projection
from service.core.architecture import Architecture
from service.core.compute import RC_FULL
from service.core.finetune_activations import ROW_PARALLEL
from service.core.steptime import (
    PCIE_BANDWIDTH,
    Hardware,
    Layout,
    StepTime,
    Workload,
    dp_groups,
    group_link,
    layer_times,
    layout_sizes,
    matmul_seconds,
    memory_rate,
    ring_gather_seconds,
    step_from_layers,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterLoad:
    """What a fine-tune adds to pre-training's step: the adapters' ``rank`` and matrices (each with
    whether its layer is row-parallel), the quantised base parameters of one layer and the bytes
    their dequantisation moves per parameter (0 for a 16/32-bit base), the frozen base on one GPU
    (arrays: parameters outside the routed experts and the routed experts') with the bytes per
    parameter ZeRO-3 gathers, the optimizer bytes paged to the host, and the share of the layers that
    hold an adapted matrix (:func:`service.core.adapters.adapted_layers`)."""

    rank: int
    matrices: tuple[tuple[MatrixShape, bool], ...]
    dequantized_params_per_layer: float = 0.0
    dequantize_bytes_per_param: float = 0.0
    base_params_per_gpu: Any = 0.0
    base_expert_params_per_gpu: Any = 0.0
    base_gather_bytes_per_param: float = 2.0
    paged_bytes: Any = 0.0
    adapted_share: float = 1.0  # the layers holding an adapted matrix (the host floor's), over n_layers


FUSED = ((Projection.Q, Projection.K, Projection.V), (Projection.GATE, Projection.UP))  # Megatron's linear_qkv, linear_fc1


def adapter_matrices(
    shapes: dict[Any, tuple[MatrixShape, ...]], targets: tuple[Any, ...]
) -> tuple[tuple[MatrixShape, bool], ...]:
    """The adapted matrices of ``targets`` (:func:`service.core.adapters.projection_shapes`) as
    Megatron-Bridge runs them, each with whether its layer is row-parallel (``o``, ``down``): Q, K
    and V are one layer (``linear_qkv``), gate and up one (``linear_fc1``), so the adapters of a
    fused layer read its input once (one ``A``) and write all its outputs (one ``B``)."""
    out: list[tuple[MatrixShape, bool]] = []
    for group in FUSED:
        chosen = [t for t in group if t in targets]
        for kind, m in enumerate(shapes[chosen[0]] if chosen else ()):
            out.append((replace(m, cols_out=sum(shapes[t][kind].cols_out for t in chosen)), False))
    fused = {t for group in FUSED for t in group}
    return tuple(out) + tuple((m, t in ROW_PARALLEL) for t in targets if t not in fused for m in shapes[t])


def _adapter_forward_seconds(arch: Architecture, hw: Hardware, work: Workload, z: Any, load: AdapterLoad) -> Any:
    """One layer's adapter forward for one micro-batch on one GPU (the mean over the layer types):
    ``x·A`` then ``·B``; a column-parallel layer's ``A`` split over its rank, a row-parallel
    one's over its inputs, ``B`` over its outputs (Megatron-Bridge's ``ParallelLinearAdapter``);
    a routed expert's on its share of the routed tokens, as :func:`service.core.steptime` times
    the expert GEMMs."""
    e, r, total = work.element_bytes, load.rank, 0.0
    for m, row_parallel in load.matrices:
        share = (m.layers if m.layers is not None else arch.n_layers) / arch.n_layers
        if m.per_layer > 1:  # routed experts: n_experts/ep local experts, each on its share of the tokens
            split, local = z.etp, m.per_layer / z.ep
            tokens = z.tokens * m.active_per_layer * z.imbalance * z.etp / z.t / local
        else:
            split, local, tokens = z.t, 1.0, z.tokens
        a = (
            matmul_seconds(tokens, m.rows_in / split, r, hw, e)
            if row_parallel
            else matmul_seconds(tokens, m.rows_in, r / split, hw, e)
        )
        b = matmul_seconds(tokens, r, m.cols_out / split, hw, e)
        total = total + share * local * (a + b)
    return total


def adapter_host_floor_seconds(hw: Hardware, work: Workload, recompute: Any) -> Any:
    """Host seconds below which one adapted layer's forward and backward (and a recomputed forward,
    a third more) do not go for one micro-batch, run eagerly; 0 under CUDA graphs (module docstring)."""
    if work.cuda_graphs:
        return 0.0
    return hw.kernels.adapter_layer_host_seconds * np.where(recompute == RC_FULL, 4 / 3, 1.0)


def adapter_forward_host_seconds(hw: Hardware, work: Workload, layers: int) -> float:
    """Host seconds of a forward pass alone (an evaluation's) through ``layers`` adapted layers
    run eagerly: a third of each layer's forward and backward (module docstring); 0 under CUDA
    graphs."""
    return 0.0 if work.cuda_graphs else layers * hw.kernels.adapter_layer_host_seconds / 3


def finetune_step_time(arch: Architecture, hw: Hardware, work: Workload, lay: Layout, load: AdapterLoad) -> StepTime:
    """Seconds of one fine-tuning step for each layout in ``lay`` (module docstring), whose
    ``params_per_gpu`` are the trainable adapters' on one GPU."""
    z = layout_sizes(arch, work, lay)
    lt = layer_times(arch, hw, work, z)
    adapters = _adapter_forward_seconds(arch, hw, work, z, load)
    dequantize = load.dequantized_params_per_layer * load.dequantize_bytes_per_param / memory_rate(hw)
    forward = lt.forward + adapters + dequantize
    backward = lt.backward - lt.matmuls + 2 * adapters + dequantize  # dX only through the frozen weights
    lt = replace(lt, forward=forward, backward=backward, recompute=np.where(z.rc == RC_FULL, forward, lt.recompute))
    _, _, group, expert_group = dp_groups(arch, lay, z)
    bandwidth, latency = group_link(hw, group * z.t)
    frozen_gather = ring_gather_seconds(load.base_gather_bytes_per_param * load.base_params_per_gpu, group, bandwidth, latency)
    frozen_gather = frozen_gather + ring_gather_seconds(
        load.base_gather_bytes_per_param * load.base_expert_params_per_gpu, expert_group, bandwidth, latency
    )
    paging = 2 * np.asarray(load.paged_bytes, dtype=np.float64) / PCIE_BANDWIDTH  # to the GPU for the update and back
    work = replace(work, zero3_fp8_recipe=None)  # the adapters: gathered in their 16/32-bit format, no Float8Linear's
    return step_from_layers(arch, hw, work, lay, z, lt, weight_grad=adapters, frozen_gather=frozen_gather,
                             paging_seconds=paging, host_floor=adapter_host_floor_seconds(hw, work, z.rc),
                             host_floor_share=load.adapted_share)  # fmt: skip
