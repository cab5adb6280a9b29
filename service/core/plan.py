"""The parallelism planner: every layout of a model on a cluster, the fastest ones that fit.

The search is exhaustive over data (``dp``), tensor (``tp``), pipeline (``pp``), context (``cp``)
and expert (``ep``) parallel sizes, ZeRO stage 0-3, optimizer offload, micro-batch size,
recompute none/selective/full, sequence parallelism and interleaved pipeline chunks. Rules of a
valid layout (Narayanan et al. 2021 §3; Korthikanti et al. 2022 §4):

- ``tp * pp * dp * cp = n_gpus``; ``tp`` stays inside a node and divides the heads (and the KV
  heads divide it or it divides them); ``pp <= n_layers``, stages may be uneven (the busiest
  holds ``ceil(L/pp)`` layers: Llama 3 ran 126 layers on 16 stages, Dubey et al. 2024 §3.3.2);
  ``dp * micro_batch_size`` divides the global batch; interleaving needs a layer per chunk
  (``pp * v <= n_layers + 2``: the embedding and the output layer may fill a chunk each) and the micro-batches divisible by ``pp`` (Megatron-LM's rule); ``cp`` needs FlashAttention and divides the
  sequence; ``ep`` divides the experts and ``dp``; ZeRO needs more than one data-parallel rank
  (or offload: ZeRO-Offload trains on one GPU), offload needs ZeRO; sequence parallelism needs
  ``tp > 1``.

Each layout's per-GPU memory (the busiest stage) is computed with the same formulas as
:func:`service.core.memory.training_memory`, for Megatron-LM's fused kernels
(:data:`service.core.kernels.MEGATRON`: the planner lays out tensor, sequence and pipeline
parallelism as Megatron-LM runs them) — its per-shard parts are taken from that module and
combined here over arrays — and layouts that do not fit are pruned before the step-time model
(:mod:`service.core.steptime`) prices the rest. The returned plans are recomputed one by one
with the scalar core, so what a plan reports is exactly what the memory calculator answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.core import pipeline
from service.core.activations import LOGIT_BYTES, MASK_BYTES, ActivationOptions, layer_activation_bytes
from service.core.architecture import Architecture
from service.core.compute import AttentionFormula, Recompute, training_flops
from service.core.errors import InvalidSpecError
from service.core.fp8 import Fp8Recipe, cast_bytes_per_element, weight_copy_bytes_per_param
from service.core.kernels import MEGATRON
from service.core.memory import (
    PRECISION_BYTES,
    Optimizer,
    Parallelism,
    Precision,
    TrainingMemory,
    expert_params_per_gpu,
    fp8_copy_params,
    optimizer_state_bytes,
    params_per_gpu,
    training_memory,
)
from service.core.pipeline import SCHEDULE_CODES, SCHEDULES, PipelineSchedule, schedule_problem
from service.core.steptime import RECOMPUTE_CODES, Hardware, Layout, StepTime, Workload, step_time

RECOMPUTES = (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)
MICRO_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
VIRTUAL_STAGES = (1, 2, 3, 4, 5, 6, 8)
CONTEXT_PARALLEL = (1, 2, 4, 8, 16, 32)
DEFAULT_TIME_LIMIT_SECONDS = 5.0
DIMENSIONS = (
    "tp", "pp", "dp", "cp", "ep", "zero_stage", "offload_optimizer", "micro_batch_size", "recompute",
    "sequence_parallel", "virtual_stages", "pipeline_schedule",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanSpec:
    """What to plan: ``n_gpus`` of one type, the step's batch, the number formats, and any
    dimension held ``fixed`` (names in :data:`DIMENSIONS`; ``recompute`` as a string).
    ``usable_memory_fraction`` of the GPU's memory is what a plan may fill (the rest holds the
    CUDA context, NCCL buffers and allocator fragmentation); ``time_limit_seconds`` bounds the
    search."""

    n_gpus: int
    seq_len: int
    global_batch_size: int
    precision: Precision = Precision.MIXED_BF16
    optimizer: Optimizer = Optimizer.ADAMW
    flash_attention: bool = True
    dropout: bool = False
    fixed: dict[str, Any] = field(default_factory=dict)
    top_k: int = 10
    usable_memory_fraction: float = 0.95
    time_limit_seconds: float = DEFAULT_TIME_LIMIT_SECONDS
    overlap_grad_reduce: bool = True
    fp8_recipe: Fp8Recipe = Fp8Recipe.TENSORWISE
    tp_comm_overlap: bool = False
    ep_comm_overlap: bool = False
    moe_max_nodes_per_token: int | None = None
    fused_kernels: bool = True
    moe_load_imbalance: float = 1.0
    expert_tensor_parallel: int | None = None

    def expert_fold(self, tp: Any) -> Any:
        """Ranks an expert's data-parallel replicas span per data-parallel rank: ``tp`` under MoE
        parallel folding (``expert_tensor_parallel`` 1: experts over tp*dp), else 1 (over dp), as
        :attr:`service.core.memory.Parallelism.expert_fold`."""
        return tp if self.expert_tensor_parallel == 1 else 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """One layout with its memory (from :func:`service.core.memory.training_memory`) and step
    time (from :func:`service.core.steptime.step_time`)."""

    tp: int
    pp: int
    dp: int
    cp: int
    ep: int
    zero_stage: int
    offload_optimizer: bool
    micro_batch_size: int
    gradient_accumulation_steps: int
    recompute: Recompute
    sequence_parallel: bool
    virtual_stages: int
    pipeline_schedule: PipelineSchedule
    memory: TrainingMemory
    step: dict[str, float]
    step_seconds: float
    tokens_per_second: float
    tflops_per_gpu: float
    mfu: float
    hfu: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Search:
    considered: int
    feasible: int
    returned: int
    seconds: float
    cut: bool
    searched: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanResult:
    plans: list[Plan]
    search: Search
    reason: str | None
    model_flops_per_token: float


def _divisors(n: int) -> list[int]:
    small = [i for i in range(1, math.isqrt(n) + 1) if n % i == 0]
    return sorted(set(small + [n // i for i in small]))


def _axis(name: str, default: list[Any], fixed: dict[str, Any]) -> np.ndarray:
    values = [fixed[name]] if name in fixed else default
    return np.asarray(values)


def workload_for(spec: PlanSpec) -> Workload:
    """The step-time model's view of the spec: 16-bit activations and weights (fp32 for fp32
    training), gradients reduced in the gradient dtype, and the optimizer's bytes per parameter
    (master copy and states, :func:`service.core.memory.optimizer_state_bytes`)."""
    pb = PRECISION_BYTES[spec.precision]
    fp8 = spec.precision is Precision.FP8
    return Workload(
        seq_len=spec.seq_len,
        global_batch_size=spec.global_batch_size,
        flash_attention=spec.flash_attention,
        dropout=spec.dropout,
        element_bytes=pb.activation,
        weight_bytes=pb.weight,  # ZeRO-3 under FP8 gathers in FP8 (service.core.steptime)
        gradient_bytes=pb.gradient,
        optimizer_bytes_per_param=optimizer_state_bytes(1e6, spec.optimizer, spec.precision) / 1e6,
        overlap_grad_reduce=spec.overlap_grad_reduce,
        fp8_cast_bytes_per_element=cast_bytes_per_element(spec.fp8_recipe) if fp8 else 0.0,
        tp_comm_overlap=spec.tp_comm_overlap,
        ep_comm_overlap=spec.ep_comm_overlap,
        moe_max_nodes_per_token=spec.moe_max_nodes_per_token,
        fused_kernels=spec.fused_kernels,
        moe_load_imbalance=spec.moe_load_imbalance,
        expert_tensor_parallel=spec.expert_tensor_parallel,
    )


AXES = ("tp", "pp", "cp", "ep", "zero_stage", "offload_optimizer", "micro_batch_size", "recompute",
        "sequence_parallel", "virtual_stages", "pipeline_schedule")  # fmt: skip


def _axes(arch: Architecture, hw: Hardware, spec: PlanSpec) -> dict[str, np.ndarray]:
    """The values each dimension may take (a fixed dimension: its one value)."""
    n, s, fixed = spec.n_gpus, spec.seq_len, spec.fixed
    node = min(hw.gpus_per_node, n)
    tps = [t for t in _divisors(arch.n_heads) if t <= node and n % t == 0
           and (arch.n_kv_heads % t == 0 or t % arch.n_kv_heads == 0)]  # fmt: skip
    defaults: dict[str, list[Any]] = {
        "tp": tps,
        "pp": [p for p in _divisors(n) if p <= arch.n_layers],
        "cp": [c for c in CONTEXT_PARALLEL if s % c == 0 and n % c == 0] if spec.flash_attention else [1],
        "ep": _divisors(arch.n_experts) if arch.is_moe else [1],
        "zero_stage": [0, 1, 2, 3],
        "offload_optimizer": [False, True],
        "micro_batch_size": list(MICRO_BATCH_SIZES),
        "recompute": [0, 1, 2],
        "sequence_parallel": [False, True],
        "virtual_stages": list(VIRTUAL_STAGES),
        "pipeline_schedule": list(range(len(SCHEDULES))),
    }
    if "recompute" in fixed:
        fixed = fixed | {"recompute": RECOMPUTE_CODES[fixed["recompute"]]}
    if "pipeline_schedule" in fixed:
        fixed = fixed | {"pipeline_schedule": SCHEDULE_CODES[fixed["pipeline_schedule"]]}
    return {name: _axis(name, values, fixed) for name, values in defaults.items()}


OUTER = ("tp", "pp", "cp", "ep", "micro_batch_size", "virtual_stages", "pipeline_schedule")
INNER = ("zero_stage", "offload_optimizer", "recompute", "sequence_parallel")


def _grid(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every structurally valid layout, as flat arrays (one entry per layout); ``i_<dim>`` holds
    each layout's index into ``axes[dim]``. Built in two products so that the rules on sizes
    prune before the memory and recompute choices multiply them."""
    n = spec.n_gpus
    outer = np.indices(tuple(len(axes[k]) for k in OUTER), dtype=np.int32).reshape(len(OUTER), -1)
    t, p, c, ep, b, v, sched = (axes[k][outer[i]].astype(np.int64) for i, k in enumerate(OUTER))
    model_parallel = t * p * c
    ok = n % model_parallel == 0
    d = np.maximum(n // model_parallel, 1)
    if "dp" in spec.fixed:
        ok &= d == spec.fixed["dp"]
    ok &= spec.global_batch_size % (d * b) == 0
    m = spec.global_batch_size // (d * b)
    ok &= (d * spec.expert_fold(t)) % ep == 0  # experts over dp (or tp*dp, folded)
    ok &= (v == 1) | ((p > 1) & (p * v <= pipeline.max_chunks(arch.n_layers)) & (m % p == 0))
    # one schedule per layout: 1F1B without a pipeline; interleaved exactly when v > 1; DualPipe
    # (DualPipeV with any pp) with at least 2*pp micro-batches (service.core.pipeline.schedule_problem)
    dual = (sched == pipeline.DUALPIPE) | (sched == pipeline.DUALPIPEV)
    ok &= np.where(p == 1, sched == pipeline.ONE_F_ONE_B, (sched == pipeline.INTERLEAVED) == (v > 1))
    ok &= ~dual | (((p % 2 == 0) | (sched == pipeline.DUALPIPEV)) & (m >= 2 * p))
    keep = np.flatnonzero(ok)
    outer, d, m = outer[:, keep], d[keep], m[keep]
    inner = np.indices(tuple(len(axes[k]) for k in INNER), dtype=np.int32).reshape(len(INNER), -1)
    rows = np.repeat(np.arange(len(keep)), inner.shape[1])
    cols = np.tile(np.arange(inner.shape[1]), len(keep))
    index = {k: outer[i][rows] for i, k in enumerate(OUTER)} | {k: inner[i][cols] for i, k in enumerate(INNER)}
    g = {k: axes[k][index[k]] for k in AXES}
    d, m = d[rows], m[rows]
    z, off, sp = g["zero_stage"], g["offload_optimizer"].astype(bool), g["sequence_parallel"].astype(bool)
    # ZeRO shards over more than one rank, or (ZeRO-Offload, Ren et al. 2021) moves the states off
    ok = ((z == 0) | (d * g["cp"] > 1) | off) & (~off | (z >= 1)) & (~sp | (g["tp"] > 1))
    keep = np.flatnonzero(ok)
    out = {k: a[keep] for k, a in g.items()}
    out.update({f"i_{k}": a[keep] for k, a in index.items()})
    out["dp"] = d[keep]
    out["microbatches"] = m[keep]
    return out


@dataclass(frozen=True, slots=True)
class _ShardTable:
    """Per-shard terms from the scalar core by (tp, pp, ep, virtual stages): the busiest stage's
    dense and expert parameters and their optimizer bytes. float64 throughout the pruning
    arithmetic: exact for integer byte counts below 2^53 (8 PiB, far beyond any GPU), and an
    absurd request overflows to inf (never fits) instead of wrapping."""

    dense: np.ndarray
    expert: np.ndarray
    optimizer_dense: np.ndarray
    optimizer_expert: np.ndarray


def _shard_table(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> _ShardTable:
    """Indexed by (parameter copies - 1, tp, pp, ep, virtual stages): DualPipe keeps two copies."""
    names = ("tp", "pp", "ep", "virtual_stages")
    dense = np.zeros((2, *(len(axes[k]) for k in names)), dtype=np.float64)
    expert, optimizer_dense, optimizer_expert = np.zeros_like(dense), np.zeros_like(dense), np.zeros_like(dense)
    dual = pipeline.DUALPIPE in axes["pipeline_schedule"]
    for idx in np.ndindex(dense.shape):
        twice, (t, p, ep, v) = idx[0], (axes[k][i].item() for k, i in zip(names, idx[1:], strict=True))
        if p * v > pipeline.max_chunks(arch.n_layers) or (v > 1 and p == 1) or (twice and (not dual or v > 1 or p % 2)):
            continue  # never a valid layout
        schedule = PipelineSchedule.DUALPIPE if twice else None
        par = Parallelism(tp=t, pp=p, ep=ep, virtual_stages=v, pipeline_schedule=schedule,
                          expert_tensor_parallel=spec.expert_tensor_parallel)  # fmt: skip
        total, experts = params_per_gpu(arch, par), expert_params_per_gpu(arch, par)
        dense[idx], expert[idx] = total - experts, experts
        optimizer_dense[idx] = optimizer_state_bytes(total - experts, spec.optimizer, spec.precision, arch)
        optimizer_expert[idx] = optimizer_state_bytes(experts, spec.optimizer, spec.precision, arch) if experts else 0
    return _ShardTable(dense=dense, expert=expert, optimizer_dense=optimizer_dense, optimizer_expert=optimizer_expert)


LAYER_AXES = ("tp", "sequence_parallel", "recompute", "micro_batch_size", "cp")


def _layer_table(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> np.ndarray:
    """One layer's activation bytes by (tp, sequence_parallel, recompute, micro-batch, cp),
    from :func:`service.core.activations.layer_activation_bytes`."""
    e = PRECISION_BYTES[spec.precision].activation
    layer = np.empty(tuple(len(axes[k]) for k in LAYER_AXES), dtype=np.float64)
    for idx in np.ndindex(layer.shape):
        t, sp, rc, b, c = (axes[k][i].item() for k, i in zip(LAYER_AXES, idx, strict=True))
        opts = ActivationOptions(
            seq_len=spec.seq_len // c, micro_batch_size=b, tp=t, sequence_parallel=bool(sp), recompute=RECOMPUTES[rc],
            flash_attention=spec.flash_attention, dropout=spec.dropout, element_bytes=e, kernels=MEGATRON,
        )  # fmt: skip
        layer[idx] = layer_activation_bytes(arch, opts).total_bytes
    return layer


def _memory_arrays(
    arch: Architecture, spec: PlanSpec, g: dict[str, np.ndarray], shard_table: _ShardTable, layer_table: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-GPU bytes of every layout, as :func:`service.core.memory.training_memory` combines
    the per-shard terms (ZeRO over ``dp * cp``, experts over ``dp * cp / ep``, offload, the
    busiest stage's activations)."""
    pb = PRECISION_BYTES[spec.precision]
    t, p, c = g["tp"], g["pp"], g["cp"]
    code = g["pipeline_schedule"]
    copies = (code == pipeline.DUALPIPE) & (p > 1)
    shard = (copies.astype(np.int64), g["i_tp"], g["i_pp"], g["i_ep"], g["i_virtual_stages"])
    dense, expert = shard_table.dense[shard], shard_table.expert[shard]
    shards = (g["dp"] * c).astype(np.float64)
    expert_shards = shards * spec.expert_fold(t) / g["ep"]  # folded: tp*dp*cp/ep
    z = g["zero_stage"]

    def sharded(dense_bytes: np.ndarray, expert_bytes: np.ndarray, applies: np.ndarray) -> np.ndarray:
        # service.core.memory.zero_sharded_bytes over arrays
        return np.where(applies, -(-dense_bytes // shards) - (-expert_bytes // expert_shards), dense_bytes + expert_bytes)

    weights = sharded(pb.weight * dense, pb.weight * expert, z >= 3)
    if spec.precision is Precision.FP8:  # FP8 weight copies below ZeRO-3, as service.core.memory.training_memory counts them
        per_param = weight_copy_bytes_per_param(spec.fp8_recipe)
        copies = np.ceil(per_param * fp8_copy_params(arch, dense)) + np.ceil(per_param * fp8_copy_params(arch, expert))
        weights = weights + np.where(z >= 3, 0, copies)
    gradients = sharded(pb.gradient * dense, pb.gradient * expert, z >= 2)
    optimizer = sharded(shard_table.optimizer_dense[shard], shard_table.optimizer_expert[shard], z >= 1)
    offloaded = np.where(g["offload_optimizer"], optimizer, 0)
    optimizer = np.where(g["offload_optimizer"], 0, optimizer)

    layer = layer_table[g["i_tp"], g["i_sequence_parallel"], g["i_recompute"], g["i_micro_batch_size"], g["i_cp"]]
    # the stage's total, as service.core.activations.stage_activation_bytes builds it
    e, s, b, sp = pb.activation, spec.seq_len, g["micro_batch_size"], g["sequence_parallel"]
    sbh = (s // c) * b.astype(np.float64) * arch.d_model
    embedding_mask = MASK_BYTES * sbh if spec.dropout else np.zeros_like(sbh)
    output_inputs = 2 * e * sbh
    embedding_mask = np.where(sp, -(-embedding_mask // t), embedding_mask)
    output_inputs = np.where(sp, -(-output_inputs // t), output_inputs)
    output = output_inputs + np.ceil(LOGIT_BYTES * (s // c) * b * arch.vocab_size / t)
    v, m = g["virtual_stages"], g["microbatches"]
    first_layers, per_stage, last_layers = pipeline.stage_layers(arch.n_layers, p, v)
    in_flight = pipeline.in_flight(code, p, v, m, rank=0)
    first = np.ceil(in_flight * (first_layers * layer + embedding_mask))
    second = np.where(p > 2, np.ceil(pipeline.in_flight(code, p, v, m, rank=1) * per_stage * layer), 0.0)
    first = np.maximum(first, second)
    last = last_layers * layer + output
    both_ends = np.ceil(in_flight * (per_stage * layer + embedding_mask)) + output  # DualPipe's GPUs hold both ends
    single = per_stage * layer + embedding_mask + output
    activations = np.where(p == 1, single, np.where(pipeline.hides_communication(code), both_ends, np.maximum(first, last)))
    total = weights + gradients + optimizer + activations
    return {"params": dense + expert, "expert_params": expert, "total": total, "weights": weights, "gradients": gradients,
            "optimizer": optimizer, "activations": activations, "offloaded": offloaded}  # fmt: skip


def _flops_per_token(arch: Architecture, seq_len: int, causal: bool) -> tuple[float, np.ndarray]:
    """Model FLOPs per token (every matmul and the attention core, Narayanan et al. 2021 §5.1,
    as PaLM's MFU counts them) and hardware FLOPs per token for none/selective/full recompute.
    The attention square is halved where the kernel skips the masked half (causal
    FlashAttention), so MFU counts the work the step-time model times and stays below 1."""
    by_recompute = [
        training_flops(
            arch,
            1.0,
            recompute=r,
            include_attention=True,
            attention_formula=AttentionFormula.MEGATRON,
            seq_len=seq_len,
            causal=causal,
        )  # fmt: skip
        for r in RECOMPUTES
    ]
    return by_recompute[0].model_flops_per_token, np.asarray([f.hardware_flops_per_token for f in by_recompute])


SIZES = ("tp", "pp", "dp", "cp", "ep", "micro_batch_size", "virtual_stages")


def validate_fixed(arch: Architecture, spec: PlanSpec) -> None:
    """Reject fixed dimensions no cluster size can satisfy, naming the field."""
    fixed = spec.fixed
    if spec.top_k < 1:
        raise InvalidSpecError("top_k", "must be at least 1")
    for name, value in fixed.items():
        if name not in DIMENSIONS:
            raise InvalidSpecError(f"fixed.{name}", f"unknown dimension; known: {', '.join(DIMENSIONS)}")
        if name in SIZES and not (isinstance(value, int) and value >= 1):
            raise InvalidSpecError(f"fixed.{name}", "must be a positive integer")
    tp = fixed.get("tp")
    if tp is not None and (arch.n_heads % tp or (arch.n_kv_heads % tp and tp % arch.n_kv_heads)):
        raise InvalidSpecError(
            "fixed.tp", f"tp={tp} must divide n_heads={arch.n_heads} (and n_kv_heads={arch.n_kv_heads} divide it or it them)"
        )
    if fixed.get("pp", 1) > arch.n_layers:
        raise InvalidSpecError("fixed.pp", f"pp={fixed['pp']} exceeds n_layers={arch.n_layers}")
    if fixed.get("zero_stage", 0) not in (0, 1, 2, 3):
        raise InvalidSpecError("fixed.zero_stage", "must be 0, 1, 2 or 3")
    if fixed.get("ep", 1) > 1 and (not arch.is_moe or arch.n_experts % fixed["ep"]):
        raise InvalidSpecError(
            "fixed.ep", f"ep={fixed['ep']} needs a mixture of experts whose n_experts={arch.n_experts} it divides"
        )
    if spec.expert_tensor_parallel not in (None, 1):
        raise InvalidSpecError(
            "expert_tensor_parallel", "1 (MoE parallel folding: whole experts over tensor and data ranks) or unset (tp)"
        )
    folded = spec.expert_tensor_parallel == 1 and "tp" in fixed
    ranks = fixed.get("dp", 0) * spec.expert_fold(fixed.get("tp", 1))
    if fixed.get("ep", 1) > 1 and "dp" in fixed and (spec.expert_tensor_parallel != 1 or folded) and ranks % fixed["ep"]:
        where = (
            f"tp*dp={ranks} (parallel folding)" if folded else f"dp={fixed['dp']} (experts are spread over data-parallel ranks)"
        )
        raise InvalidSpecError("fixed.ep", f"ep={fixed['ep']} must divide {where}")
    if fixed.get("cp", 1) > 1 and (not spec.flash_attention or spec.seq_len % fixed["cp"]):
        raise InvalidSpecError("fixed.cp", f"cp={fixed['cp']} needs flash_attention and must divide seq_len={spec.seq_len}")
    if "recompute" in fixed and fixed["recompute"] not in RECOMPUTE_CODES:
        raise InvalidSpecError("fixed.recompute", "must be none, selective or full")
    if fixed.get("sequence_parallel") and fixed.get("tp") == 1:
        raise InvalidSpecError("fixed.sequence_parallel", "sequence parallelism needs tp > 1")
    if fixed.get("offload_optimizer") and fixed.get("zero_stage") == 0:
        raise InvalidSpecError("fixed.offload_optimizer", "optimizer offload needs zero_stage 1, 2 or 3 (ZeRO-Offload)")
    if fixed.get("virtual_stages", 1) > 1 and (
        fixed.get("pp") == 1 or fixed.get("pp", 1) * fixed["virtual_stages"] > pipeline.max_chunks(arch.n_layers)
    ):
        raise InvalidSpecError(
            "fixed.virtual_stages",
            "interleaving needs pp > 1 and a layer per chunk (pp * virtual_stages <= n_layers + 2: "
            "the embedding and the output layer may fill one each)",
        )
    if "pipeline_schedule" in fixed:
        validate_fixed_schedule(fixed)
    if fixed.get("zero_stage", 0) >= 1 and not fixed.get("offload_optimizer") and fixed.get("dp") == 1 and fixed.get("cp") == 1:
        raise InvalidSpecError("fixed.zero_stage", "ZeRO shards over the dp*cp ranks: with dp = cp = 1 there is nothing to shard")


def validate_fixed_schedule(fixed: dict[str, Any]) -> None:
    """A fixed ``pipeline_schedule`` is a known one that the other fixed dimensions allow
    (:func:`service.core.pipeline.schedule_problem`)."""
    name = fixed["pipeline_schedule"]
    if name not in SCHEDULE_CODES:
        raise InvalidSpecError("fixed.pipeline_schedule", f"unknown schedule {name!r}; known: {', '.join(SCHEDULE_CODES)}")
    schedule = PipelineSchedule(name)
    if fixed.get("pp") == 1 and schedule is not PipelineSchedule.ONE_F_ONE_B:
        raise InvalidSpecError("fixed.pipeline_schedule", f"{name} needs pipeline stages (pp > 1)")
    v = fixed.get("virtual_stages")
    if schedule is PipelineSchedule.INTERLEAVED and v == 1:
        raise InvalidSpecError("fixed.pipeline_schedule", "the interleaved schedule needs virtual_stages > 1")
    problem = schedule_problem(schedule, fixed.get("pp", 2), v or (2 if schedule is PipelineSchedule.INTERLEAVED else 1), None)
    if problem:
        raise InvalidSpecError("fixed.pipeline_schedule", problem)


def _check_expert_ranks(spec: PlanSpec, axes: dict[str, np.ndarray]) -> None:
    """A fixed ``ep`` that no layout's data-parallel ranks (tensor x data under folding) can hold
    is the ``fixed.ep`` field's fault, not the batch's."""
    ep = spec.fixed.get("ep", 1)
    if ep <= 1:
        return
    for t in axes["tp"].tolist():
        for p in axes["pp"].tolist():
            for c in axes["cp"].tolist():
                if spec.n_gpus % (t * p * c) == 0 and (spec.n_gpus // (t * p * c) * spec.expert_fold(t)) % ep == 0:
                    return
    hint = "tp*dp" if spec.expert_tensor_parallel == 1 else "dp (or tp*dp with expert_tensor_parallel 1: MoE parallel folding)"
    raise InvalidSpecError("fixed.ep", f"ep={ep} divides no layout's {hint} under the fixed dimensions {spec.fixed}")


def validate_spec(arch: Architecture, hw: Hardware, spec: PlanSpec) -> None:
    """Reject what no layout can satisfy, naming the field: :func:`validate_fixed`, and the rules
    that depend on the cluster size."""
    validate_fixed(arch, spec)
    n, node, fixed = spec.n_gpus, hw.gpus_per_node, spec.fixed
    if n == 1 and fixed.get("pipeline_schedule", "1f1b") != "1f1b":
        raise InvalidSpecError("fixed.pipeline_schedule", f"{fixed['pipeline_schedule']} needs pipeline stages: one GPU has none")
    if n == 1 and fixed.get("virtual_stages", 1) > 1:
        raise InvalidSpecError("fixed.virtual_stages", "interleaving needs pipeline stages: one GPU has none")
    if n > node and n % node:
        raise InvalidSpecError("n_gpus", f"n_gpus={n} is not a multiple of gpus_per_node={node} (whole nodes, or less than one)")
    if fixed.get("tp", 1) > min(node, n):
        raise InvalidSpecError(
            "fixed.tp",
            f"tp={fixed['tp']} exceeds the {min(node, n)} GPUs of a node: tensor parallelism stays on the intra-node link",
        )
    for name in ("tp", "pp", "dp", "cp"):
        if name in fixed and n % fixed[name]:
            raise InvalidSpecError(f"fixed.{name}", f"{name}={fixed[name]} does not divide n_gpus={n}")


def _scalar_plan(arch: Architecture, hw: Hardware, spec: PlanSpec, work: Workload, row: dict[str, Any],
                 model_per_token: float, hardware_per_token: np.ndarray) -> Plan:  # fmt: skip
    """One layout, priced with the scalar core (exact memory) and the same step-time model."""
    par = Parallelism(
        dp=row["dp"], tp=row["tp"], pp=row["pp"], cp=row["cp"], ep=row["ep"], virtual_stages=row["virtual_stages"],
        sequence_parallel=row["sequence_parallel"], zero_stage=row["zero_stage"], offload_optimizer=row["offload_optimizer"],
        pipeline_schedule=SCHEDULES[row["pipeline_schedule"]], expert_tensor_parallel=spec.expert_tensor_parallel,
    )  # fmt: skip
    recompute = RECOMPUTES[row["recompute"]]
    microbatches = spec.global_batch_size // (row["dp"] * row["micro_batch_size"])
    mem = training_memory(
        arch, precision=spec.precision, optimizer=spec.optimizer, parallelism=par, micro_batch_size=row["micro_batch_size"],
        seq_len=spec.seq_len, recompute=recompute, flash_attention=spec.flash_attention, dropout=spec.dropout,
        microbatches=microbatches, kernels=MEGATRON, fp8_recipe=spec.fp8_recipe,
    )  # fmt: skip
    lay = Layout(
        tp=row["tp"], pp=row["pp"], dp=row["dp"], cp=row["cp"], ep=row["ep"], zero_stage=row["zero_stage"],
        offload_optimizer=row["offload_optimizer"], micro_batch_size=row["micro_batch_size"], recompute=row["recompute"],
        sequence_parallel=row["sequence_parallel"], virtual_stages=row["virtual_stages"], params_per_gpu=mem.params_per_gpu,
        expert_params_per_gpu=expert_params_per_gpu(arch, par), pipeline_schedule=row["pipeline_schedule"],
    )  # fmt: skip
    st = step_time(arch, hw, work, lay)
    step = float(st.step_seconds)
    if not (math.isfinite(step) and step > 0):  # efficiencies and bandwidths are bounded so that this cannot happen
        raise InvalidSpecError("efficiency", f"the step time of {row} is not a positive finite number ({step})")
    tokens_per_second = spec.global_batch_size * spec.seq_len / step
    per_gpu = tokens_per_second / spec.n_gpus
    return Plan(
        tp=row["tp"], pp=row["pp"], dp=row["dp"], cp=row["cp"], ep=row["ep"], zero_stage=row["zero_stage"],
        offload_optimizer=row["offload_optimizer"], micro_batch_size=row["micro_batch_size"],
        gradient_accumulation_steps=microbatches, recompute=recompute, sequence_parallel=row["sequence_parallel"],
        virtual_stages=row["virtual_stages"], pipeline_schedule=par.schedule, memory=mem,
        step={name: float(getattr(st, name)) for name in StepTime.__slots__ if name.endswith("_seconds") and name != "step_seconds"},
        step_seconds=step, tokens_per_second=tokens_per_second, tflops_per_gpu=model_per_token * per_gpu / 1e12,
        mfu=model_per_token * per_gpu / hw.peak_flops_per_s, hfu=float(hardware_per_token[row["recompute"]]) * per_gpu / hw.peak_flops_per_s,
    )  # fmt: skip


def _no_fit_reason(mem: dict[str, np.ndarray], g: dict[str, np.ndarray], usable_bytes: float, considered: int) -> str:
    i = int(np.argmin(mem["total"]))
    gib = 2**30
    return (
        f"no layout fits: the least memory over {considered} layouts is {mem['total'][i] / gib:.1f} GiB per GPU "
        f"(tp={g['tp'][i]}, pp={g['pp'][i]}, dp={g['dp'][i]}, cp={g['cp'][i]}, ep={g['ep'][i]}, ZeRO-{g['zero_stage'][i]}"
        f"{' with offload' if g['offload_optimizer'][i] else ''}, recompute={RECOMPUTES[g['recompute'][i]].value}, "
        f"micro-batch {g['micro_batch_size'][i]}: weights {mem['weights'][i] / gib:.1f}, gradients {mem['gradients'][i] / gib:.1f}, "
        f"optimizer {mem['optimizer'][i] / gib:.1f}, activations {mem['activations'][i] / gib:.1f} GiB) "
        f"against {usable_bytes / gib:.1f} GiB usable"
    )


def _top(step: np.ndarray, total: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` fastest, ties broken by less memory (every tie at the k-th time is
    kept for the sort, so a leaner plan is never dropped for an equally fast one)."""
    if len(step) > k:
        kth = np.partition(step, k - 1)[k - 1]
        candidates = np.flatnonzero(step <= kth)
    else:
        candidates = np.arange(len(step))
    return candidates[np.lexsort((total[candidates], step[candidates]))[:k]]


def plan(arch: Architecture, hw: Hardware, spec: PlanSpec) -> PlanResult:
    """The ``top_k`` fastest layouts of ``arch`` on ``spec.n_gpus`` GPUs that fit in memory.

    Exhaustive over the space in the module docstring, built and evaluated in chunks, one per
    (pipeline size, expert-parallel size); past ``time_limit_seconds`` the search stops (after
    at least one chunk), says ``cut`` and which chunks it covered. No layout that fits is an
    answer with ``plans: []`` and the reason.
    """
    validate_spec(arch, hw, spec)
    started = time.perf_counter()
    work = workload_for(spec)
    axes = _axes(arch, hw, spec)
    model_per_token, hardware_per_token = _flops_per_token(arch, spec.seq_len, causal=spec.flash_attention)
    layer_table = _layer_table(arch, spec, axes)
    usable = hw.memory_bytes * spec.usable_memory_fraction
    considered = feasible = 0
    best: list[dict[str, np.ndarray]] = []
    chunks = [(p, ep) for p in axes["pp"].tolist() for ep in axes["ep"].tolist()]
    done: list[tuple[int, int]] = []
    smallest: tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
    for p, ep in chunks:
        if done and time.perf_counter() - started > spec.time_limit_seconds:  # at least one chunk is searched
            break
        done.append((p, ep))
        chunk_axes = axes | {"pp": np.asarray([p]), "ep": np.asarray([ep])}
        grid = _grid(arch, spec, chunk_axes)
        if not len(grid["tp"]):
            continue
        mem = _memory_arrays(arch, spec, grid, _shard_table(arch, spec, chunk_axes), layer_table)
        considered += len(mem["total"])
        fits = mem["total"] <= usable
        if not fits.any():
            i = int(np.argmin(mem["total"]))
            if smallest is None or mem["total"][i] < smallest[0]:
                smallest = (float(mem["total"][i]), mem, grid)
            continue
        idx = np.flatnonzero(fits)
        feasible += len(idx)
        rows = {k: a[idx] for k, a in grid.items()}
        lay = Layout(
            **{k: rows[k] for k in DIMENSIONS}, params_per_gpu=mem["params"][idx], expert_params_per_gpu=mem["expert_params"][idx]
        )
        step = np.asarray(step_time(arch, hw, work, lay).step_seconds, dtype=np.float64)
        keep = _top(step, mem["total"][idx], spec.top_k)
        best.append({k: a[keep] for k, a in rows.items()} | {"_step": step[keep], "_total": mem["total"][idx][keep]})
    cut = len(done) < len(chunks)
    if considered == 0 and not cut:
        _check_expert_ranks(spec, axes)
        raise InvalidSpecError(
            "global_batch_size",
            f"no layout of {spec.n_gpus} GPUs splits global_batch_size={spec.global_batch_size} "
            f"under the fixed dimensions {spec.fixed or '{}'} (dp * micro_batch_size must divide it)",
        )
    plans: list[Plan] = []
    if best:
        rows = {k: np.concatenate([r[k] for r in best]) for k in best[0]}
        for i in _top(rows["_step"], rows["_total"], spec.top_k).tolist():
            row = {k: rows[k][i].item() for k in rows if not k.startswith(("i_", "_"))}
            plans.append(_scalar_plan(arch, hw, spec, work, row, model_per_token, hardware_per_token))
    reason = None
    covered = sorted({p for p, _ in done})
    stopped = f"the search stopped at its time bound after pp in {covered}" if cut else ""
    if not plans:
        if smallest is not None:
            reason = _no_fit_reason(smallest[1], smallest[2], usable, considered) + (f"; {stopped}" if cut else "")
        else:
            reason = stopped or "no layout"
    seconds = time.perf_counter() - started
    where = f"{len(done)} of {len(chunks)} (pp, ep) chunks: pp in {covered}" if cut else f"all {len(axes['pp'])} pipeline sizes"
    return PlanResult(
        plans=plans,
        search=Search(considered=considered, feasible=feasible, returned=len(plans), seconds=seconds, cut=cut, searched=where),
        reason=reason,
        model_flops_per_token=model_per_token,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineResult:
    """The GPU count that meets a deadline at the least GPU-hours, its plans, every count tried
    with its wall-clock hours (None: no layout fits, or the fixed dimensions do not tile it),
    and the layouts considered and fitting over all the counts tried."""

    n_gpus: int | None
    result: PlanResult | None
    tried: list[tuple[int, float | None]]
    cut: bool
    considered: int
    feasible: int


def gpu_counts(gpus_per_node: int, max_gpus: int) -> list[int]:
    """Candidate cluster sizes: 1, 2, 4... below a node, then whole nodes in a 1-1.5-2 series
    (1, 2, 3, 4, 6, 8, 12, 16... nodes)."""
    counts = [n for n in (1, 2, 4) if n < gpus_per_node]
    nodes = 1
    while nodes * gpus_per_node <= max_gpus:
        counts.append(nodes * gpus_per_node)
        if nodes >= 2 and nodes * 3 // 2 * gpus_per_node <= max_gpus and (nodes & (nodes - 1)) == 0:
            counts.append(nodes * 3 // 2 * gpus_per_node)
        nodes *= 2
    return sorted(set(counts))


def plan_for_deadline(
    arch: Architecture,
    hw: Hardware,
    spec: PlanSpec,
    *,
    tokens: float,
    deadline_hours: float,
    effective_time_fraction: float,
    batch_for: Callable[[int], int] | None = None,
    max_gpus: int = 131072,
) -> DeadlineResult:
    """The smallest-GPU-hours cluster (from :func:`gpu_counts`) whose best plan trains
    ``tokens`` within ``deadline_hours``. GPU-hours grow with the cluster (communication,
    bubbles), so the search walks up the sizes and looks two sizes past the first that meets
    the deadline in case a larger one lays out better. ``batch_for(n)`` gives the global batch
    for ``n`` GPUs (default: the spec's). Sizes the fixed dimensions cannot tile are skipped; the
    walk ends where the batch no longer splits, or, ``cut``, past the spec's time limit."""
    validate_fixed(arch, spec)  # a fixed dimension no size can satisfy is the caller's error
    started = time.perf_counter()
    tried: list[tuple[int, float | None]] = []
    best: tuple[float, int, PlanResult] | None = None
    after = considered = feasible = 0
    cut = False
    for n in gpu_counts(hw.gpus_per_node, max_gpus):
        remaining = spec.time_limit_seconds - (time.perf_counter() - started)
        if remaining <= 0:
            cut = True
            break
        batch = batch_for(n) if batch_for else spec.global_batch_size
        probe = PlanSpec(**{**spec_fields(spec), "n_gpus": n, "global_batch_size": batch, "time_limit_seconds": remaining})
        try:
            result = plan(arch, hw, probe)
        except InvalidSpecError as exc:
            tried.append((n, None))
            if exc.field == "global_batch_size":
                break  # more GPUs only split the batch further
            continue  # this size does not tile the fixed dimensions; a larger one may
        considered, feasible = considered + result.search.considered, feasible + result.search.feasible
        cut = cut or result.search.cut
        if not result.plans:
            tried.append((n, None))
            continue
        hours = tokens / result.plans[0].tokens_per_second / effective_time_fraction / 3600
        tried.append((n, hours))
        if hours <= deadline_hours:
            if best is None or hours * n < best[0]:
                best = (hours * n, n, result)
            after += 1
            if after > 2:
                break
    common = {"tried": tried, "cut": cut, "considered": considered, "feasible": feasible}
    if best is None:
        return DeadlineResult(n_gpus=None, result=None, **common)
    return DeadlineResult(n_gpus=best[1], result=best[2], **common)


def spec_fields(spec: PlanSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in PlanSpec.__dataclass_fields__}
