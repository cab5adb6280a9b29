"""The pieces of a pipeline whose stages sit on different GPU types: one layer's seconds on a
stage's GPUs, a stage's memory, its gradient reduction and optimizer step, the sends between
stages, and the step of the whole pipeline.

Every piece is the existing model of one GPU type, applied per stage (the stage's own hardware,
tensor-parallel size and layers):

- **time** of a layer per micro-batch: forward, backward, recompute and the tensor-, context- and
  expert-parallel communication of :mod:`service.core.steptime`; the output layer (logits and
  their backward) on the last stage, as ``steptime`` adds it to the last stage;
- **memory**: :func:`service.core.parallelism.stage_params` for the stage's parameters, ZeRO over
  the stage's data-parallel ranks (Rajbhandari et al. 2020 §5), under FP8 the matmul weights' FP8
  copies below ZeRO-3 (:func:`service.core.memory.fp8_copy_params`,
  :func:`service.core.fp8.weight_copy_bytes_per_param`) and a gathered stage's matmul weights as its
  all-gather holds them (:func:`service.core.fp8.gathered_weight_bytes_per_param`), one layer's activations from
  :func:`service.core.activations.layer_activation_bytes` (the planner's table,
  :func:`service.core.plan_space.layer_tables`, the linear layers' inputs kept in FP8 under FP8)
  times the micro-batches stage ``r`` of ``P`` holds under 1F1B, ``min(P - r, m)`` (Narayanan et
  al. 2021 §2.2.1), the embedding's dropout mask on the first stage and the output layer's inputs
  and the logits at the loss's peak on the last (fused 4 bytes a logit, Korthikanti et al. 2022 §4.3;
  eager 12, 16 on vocabulary shards, ``PlanSpec.cross_entropy``), and the layer recomputation rebuilds
  (:func:`service.core.activations.recompute_working_bytes`), as
  :func:`service.core.plan_space.memory_arrays` counts them;
- **data parallelism and optimizer** of each stage over its own ranks (one GPU type, its own
  network): ``steptime``'s gradient reduction and ZeRO gathers, and the optimizer update;
- **pipeline**: 1F1B over stages of unequal time ``t_j`` per micro-batch takes
  ``sum_j t_j + (m - 1) max_j t_j`` (Zheng et al. 2022, Alpa §5.1 Eq. 2; the cost model of Metis,
  Um et al. 2024 §5, and of FlashFlex/HexiScale, Yan et al. 2024 §4): the fill and drain pass every
  stage once, the rest runs at the slowest stage's pace. Equal stages give Narayanan's
  ``(m + p - 1) t``. Point-to-point sends of ``b*s*h/t`` per micro-batch boundary, forward and
  backward, at the slowest boundary's link (between pools: the slower of the two pools' scale-out
  links, capped by the link given between them; Sailor, Strati et al. 2025 §4.2, costs the
  inter-zone link the same way).

The functions take NumPy arrays (or scalars) for the layouts, so the search prices many at once
and the same code prices one stage of the returned plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from service.core.activations import stage_end_bytes
from service.core.architecture import Architecture
from service.core.compute import SEARCHED_RECOMPUTE_CODES
from service.core.fp8 import gathered_weight_bytes_per_param, weight_copy_bytes_per_param
from service.core.gradients import resolve_gradient_bytes
from service.core.hardware import INTER_NODE_LATENCY_SECONDS, Hardware
from service.core.kernels import resolve_kernels
from service.core.memory import (
    PRECISION_BYTES,
    Parallelism,
    Precision,
    fp8_copy_params,
    zero3_gathered,
)
from service.core.parallelism import stage_end_params, stage_params
from service.core.plan_space import LAYER_AXES, MICRO_BATCH_SIZES, PlanSpec, layer_tables, micro_batch_sizes
from service.core.steptime import (
    RECOMPUTE_CODES,
    Layout,
    Workload,
    busiest_stage,
    cp_comm_layer_seconds,
    dp_comm_step_seconds,
    ep_comm_layer_seconds,
    group_link,
    layer_times,
    layout_sizes,
    optimizer_step_seconds,
    tp_comm_layer_seconds,
)
from service.core.steptime_moe import host_wait_seconds


def layout(tp: Any, pp: Any, dp: Any, b: Any, rc: Any, zero: Any, params: Any = 0.0) -> Layout:
    """A stage's layout for the step-time model: no context or expert parallelism, no
    interleaving, sequence parallelism wherever ``tp > 1`` (Korthikanti et al. 2022 §4.2.2:
    the same traffic as tensor parallelism alone, less memory), 1F1B."""
    tp = np.asarray(tp)
    return Layout(tp=tp, pp=pp, dp=dp, cp=1, ep=1, zero_stage=zero, offload_optimizer=False, micro_batch_size=b,
                  recompute=rc, sequence_parallel=tp > 1, virtual_stages=1, params_per_gpu=params, pipeline_schedule=0)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LayerSeconds:
    """One layer's seconds per micro-batch on one stage's GPUs (``per_layer``: forward, backward,
    recompute, the exposed tensor-, context- and expert-parallel communication and the wait on the
    host), its parts, and the output layer's seconds should the stage be the last."""

    per_layer: Any
    compute: Any
    recompute: Any
    tp_comm: Any
    cp_comm: Any
    ep_comm: Any
    host: Any
    logits: Any


def layer_seconds(arch: Architecture, hw: Hardware, work: Workload, lay: Layout) -> LayerSeconds:
    """:class:`LayerSeconds` of ``lay`` on ``hw``, from :mod:`service.core.steptime`'s terms."""
    z = layout_sizes(arch, work, lay)
    lt = layer_times(arch, hw, work, z)
    tp = tp_comm_layer_seconds(arch, hw, work, z, lt)
    cp = cp_comm_layer_seconds(arch, hw, work, z, lt)
    ep = ep_comm_layer_seconds(arch, hw, work, z, lt)
    per_layer = lt.forward + lt.backward + lt.recompute + tp + cp + ep
    host = host_wait_seconds(arch, hw, z.rc, per_layer)
    per_layer = per_layer + host
    # the output layer: steptime's, for a stage that holds it (a one-stage view puts it there)
    _, logits = busiest_stage(arch, hw, work, replace(z, p=np.ones_like(z.p)), per_layer)
    return LayerSeconds(per_layer=per_layer, compute=lt.forward + lt.backward, recompute=lt.recompute, tp_comm=tp, cp_comm=cp,
                        ep_comm=ep, host=host, logits=logits)  # fmt: skip


def busiest_layers(arch: Architecture, hw: Hardware, work: Workload, lay: Layout) -> Any:
    """The layers of the busiest stage of a pipeline of equal-type stages, as :func:`service.core.steptime.step_time`
    counts them (its data-parallel overlap windows are that stage's)."""
    return busiest_stage(arch, hw, work, layout_sizes(arch, work, lay), layer_seconds(arch, hw, work, lay).per_layer)[0]


def reduction_seconds(arch: Architecture, hw: Hardware, work: Workload, lay: Layout, layers: Any) -> tuple[Any, Any]:
    """(exposed data-parallel communication, optimizer) of one stage holding ``layers`` layers
    and ``lay.params_per_gpu`` parameters per GPU, over its own data-parallel ranks."""
    z = layout_sizes(arch, work, lay)
    lt = layer_times(arch, hw, work, z)
    m = work.global_batch_size / (z.d * z.b)
    return dp_comm_step_seconds(arch, hw, work, lay, z, lt, layers, m), optimizer_step_seconds(arch, hw, work, lay, z)


def send_seconds(work: Workload, d_model: int, tp: Any, b: Any, bandwidth: Any, latency: Any) -> Any:
    """One micro-batch's activations (or their gradients) across a stage boundary: ``b*s*h/t``
    bytes per GPU (Narayanan et al. 2021 §4.1, scatter/gather), ``tp`` the smaller side's, in one
    message (one hop's latency, as :func:`service.core.steptime.step_time` sends it)."""
    return b * work.element_bytes * work.seq_len * d_model / np.asarray(tp, dtype=np.float64) / bandwidth + latency


def inner_send_seconds(hw: Hardware, work: Workload, d_model: int, lay: Layout, b: Any, stages: Any) -> Any:
    """A send between two stages of one pool (its node, or its scale-out network when the
    pool's stages span nodes: ranks ordered as Megatron-LM's, pipeline outermost)."""
    tp = np.asarray(lay.tp, dtype=np.float64)
    bandwidth, latency = group_link(hw, tp * np.asarray(lay.dp) * stages)
    return np.where(stages > 1, send_seconds(work, d_model, tp, b, bandwidth, latency), 0.0)


def boundary_send_seconds(work: Workload, d_model: int, tp: Any, b: Any, bandwidth: float, efficiency: float) -> Any:
    """A send between stages on two pools, over the link between them at NCCL's scale-out share."""
    return send_seconds(work, d_model, tp, b, bandwidth * efficiency, INTER_NODE_LATENCY_SECONDS)


def pipeline_seconds(stage_seconds: list[Any], microbatches: Any) -> tuple[Any, Any]:
    """(the slowest stage's seconds per micro-batch, the step's pipeline seconds) of 1F1B over
    stages of unequal time: ``sum_j t_j + (m - 1) max_j t_j`` (Alpa §5.1 Eq. 2; module docstring)."""
    slowest = np.maximum.reduce([np.asarray(t, dtype=np.float64) for t in stage_seconds])
    return slowest, sum(stage_seconds) + (microbatches - 1) * slowest


@dataclass(frozen=True, slots=True)
class StageMemory:
    """Per-GPU bytes of one stage: states (ZeRO over the stage's data-parallel ranks) and the
    activations it holds at its peak."""

    params: Any
    weights: Any
    gradients: Any
    optimizer: Any
    activations: Any

    @property
    def total(self) -> Any:
        return self.weights + self.gradients + self.optimizer + self.activations


class MemoryTables:
    """What a stage's memory needs, tabulated once per search: one layer's activation bytes by
    (tp, sequence parallelism, recompute, micro-batch: the searched ones and a fixed one) from
    the planner's table, and the parameters per GPU of a stage as ``p0 + p1 * layers`` by (tp,
    first, last) from :func:`service.core.parallelism.stage_params` (exact for dense layers: each
    adds the same)."""

    def __init__(self, arch: Architecture, spec: PlanSpec, tps: list[int]) -> None:
        self.arch, self.spec = arch, spec
        self.tps = np.asarray(sorted(set(tps)))
        # the searched micro-batch sizes and a fixed one of any size (plan_space.micro_batch_sizes)
        self.sizes = np.asarray(sorted(set(MICRO_BATCH_SIZES) | set(micro_batch_sizes(spec.fixed))))
        # the searched recomputes and a fixed one (selective_op is only ever fixed)
        fixed_rc = {RECOMPUTE_CODES[spec.fixed["recompute"]]} if "recompute" in spec.fixed else set()
        self.recomputes = np.asarray(sorted(set(SEARCHED_RECOMPUTE_CODES) | fixed_rc))
        axes = {"tp": self.tps, "sequence_parallel": np.asarray([False, True]), "recompute": self.recomputes,
                "micro_batch_size": self.sizes, "cp": np.asarray([1])}  # fmt: skip
        assert tuple(axes) == LAYER_AXES
        self.layer = layer_tables(arch, spec, axes)
        self.params = np.zeros((len(self.tps), 2, 2, 2))  # tp, first, last, (p0, p1)
        self.ends = np.zeros((len(self.tps), 2, 2))  # tp, first, last: the embedding's and LM head's
        for i, t in enumerate(self.tps.tolist()):
            for first in (0, 1):
                for last in (0, 1):
                    one, two = (stage_params(arch, Parallelism(tp=t), k, first=bool(first), last=bool(last))[0] for k in (1, 2))
                    self.params[i, first, last] = (2 * one - two, two - one)
                    self.ends[i, first, last] = stage_end_params(arch, Parallelism(tp=t), first=bool(first), last=bool(last))
        pb = PRECISION_BYTES[spec.precision]
        self.weight, self.element = pb.weight, pb.activation
        self.gradient, self.gathered_gradient = resolve_gradient_bytes(spec.precision, spec.grad_reduce_dtype)
        # FP8: bytes of the matmul weights' row- and column-wise FP8 copies per parameter (none under ZeRO-3),
        # and what a matmul weight of a stage ZeRO-3 keeps gathered holds (service.core.memory.gathered_fp8_weight_bytes)
        fp8 = spec.precision is Precision.FP8
        self.fp8_copy = weight_copy_bytes_per_param(spec.fp8_recipe) if fp8 else 0.0
        self.gathered_matmul = gathered_weight_bytes_per_param(spec.fp8_recipe) if fp8 else float(self.weight)

    def layer_bytes(self, tp: Any, rc: Any, b: Any, part: int = 0) -> Any:
        """One layer's kept bytes (``part`` 0) or the layer recomputation rebuilds (``part`` 1)."""
        i = np.searchsorted(self.tps, tp)
        return self.layer[
            i, (np.asarray(tp) > 1).astype(int), np.searchsorted(self.recomputes, rc), np.searchsorted(self.sizes, b), 0, part
        ]

    def stage_params(self, tp: Any, layers: Any, first: Any, last: Any) -> Any:
        first, last = np.asarray(first, dtype=np.int64), np.asarray(last, dtype=np.int64)
        p0, p1 = np.moveaxis(self.params[np.searchsorted(self.tps, tp), first, last], -1, 0)
        return p0 + p1 * layers

    def memory(
        self, cfg: dict[str, Any], layers: Any, *, in_flight: Any, first: Any, last: Any, optimizer_per_param: float
    ) -> StageMemory:
        """Per-GPU bytes of a stage of ``layers`` layers holding ``in_flight`` micro-batches.

        The states are ZeRO's terms (:func:`service.core.memory.sharded_states`) for a dense
        stage of pre-training (plans over pools refuse fine-tunes), under FP8 with the matmul
        weights' FP8 copies below ZeRO-3 and a gathered stage's matmul weights as its all-gather holds
        them, with two differences kept on purpose: each share is left
        unrounded and the optimizer's bytes are a rate per parameter (the step-time model's, from
        :func:`service.core.memory.optimizer_state_bytes`), so the memory stays linear in
        ``layers`` and :func:`service.core.plan_mixed._caps` can solve it for the most layers a
        stage holds (rounding each term would bend that line by a few bytes); the plan reports each
        term rounded up once."""
        tp, dp, zero, b, rc = cfg["tp"], cfg["dp"], cfg["zero"], cfg["b"], cfg["rc"]
        params = self.stage_params(tp, layers, first, last)
        shards = np.asarray(dp, dtype=np.float64)
        ends = self.ends[np.searchsorted(self.tps, tp), np.asarray(first, dtype=int), np.asarray(last, dtype=int)]
        matmul = fp8_copy_params(self.arch, params, ends)  # the stage's matmul weights
        copies = self.fp8_copy * matmul
        # ZeRO-3 under a pipeline (a pipeline over pools has 2+ stages) keeps its weights gathered and
        # its gradients whole in the reduce dtype (service.core.memory.ZeroSharding)
        gathered = zero3_gathered(np.asarray(zero), np.asarray(cfg.get("pp", 2)))
        held = self.weight * params - (self.weight - self.gathered_matmul) * matmul
        weights = np.where(gathered, held, np.where(zero >= 3, self.weight * params / shards, self.weight * params + copies))
        gradients = np.where(zero >= 2, self.gradient * params / shards, self.gradient * params)
        gradients = np.where(gathered, self.gathered_gradient * params, gradients)
        optimizer = np.where(zero >= 1, optimizer_per_param * params / shards, optimizer_per_param * params)
        # the stage's activations: its layers, the embedding's mask and the output layer as
        # service.core.activations.stage_end_bytes counts them for every plan (sequence parallel with tp)
        t = np.asarray(tp, dtype=np.float64)
        mask, output = stage_end_bytes(self.arch, resolve_kernels(self.spec.kernels, self.arch, flash_attention=self.spec.flash_attention),
                                       element_bytes=self.element, seq_len=self.spec.seq_len,
                                       micro_batch_size=np.asarray(b, dtype=np.float64), tp=t, sequence_parallel=t > 1,
                                       dropout=self.spec.dropout)  # fmt: skip
        activations = np.ceil(in_flight * (layers * self.layer_bytes(tp, rc, b) + np.where(first, mask, 0.0)))
        # the layer recomputation rebuilds: on top, or after the loss's peak on the last stage (stage_peak_bytes)
        rebuilt = self.layer_bytes(tp, rc, b, part=1)
        activations = activations + np.where(last, np.maximum(output, rebuilt), rebuilt)
        return StageMemory(params=params, weights=weights, gradients=gradients, optimizer=optimizer, activations=activations)
