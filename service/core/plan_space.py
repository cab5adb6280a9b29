"""The planner's search space: what to plan, the values each dimension may take, every valid
layout of a chunk as flat arrays, and each layout's per-GPU memory over those arrays.

:class:`PlanSpec` says what to plan; :func:`search_axes` the values of each dimension; :func:`layout_grid` keeps
the layouts that obey the rules of :mod:`service.core.plan` (Narayanan et al. 2021 §3; Korthikanti
et al. 2022 §4); :func:`memory_arrays` prices their memory with the
formulas :func:`service.core.memory.training_memory` itself calls (:func:`service.core.memory.sharded_states`,
:func:`service.core.activations.stage_peak_bytes`), for Megatron-LM's fused kernels with the spec's loss
(:attr:`PlanSpec.kernels`), from per-shard
terms of the scalar core (:func:`shard_tables`, :func:`layer_tables`); :func:`flops_per_token_by_recompute` the
FLOPs that MFU and HFU count. :mod:`service.core.plan` searches this space, ranks the layouts and
re-exports these names.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.core import pipeline
from service.core.activations import (
    ActivationOptions,
    layer_activation_bytes,
    recompute_working_bytes,
    stage_end_bytes,
    stage_peak_bytes,
)
from service.core.architecture import Architecture
from service.core.compute import SEARCHED_RECOMPUTE_CODES, AttentionFormula, Recompute, training_flops
from service.core.finetune_spec import FinetuneSpec
from service.core.fp8 import Fp8Recipe
from service.core.gradients import GradReduceDtype
from service.core.kernels import CrossEntropy, Framework, Kernels, resolve_kernels
from service.core.memory import (
    PRECISION_BYTES,
    Optimizer,
    Parallelism,
    Precision,
    ZeroSharding,
    expert_params_per_gpu,
    kept_linear_input_bytes,
    optimizer_shard_bytes,
    params_per_gpu,
    sharded_states,
    zero3_gathered,
)
from service.core.op_checkpoint import op_checkpoint_problem
from service.core.parallelism import context_parallel_problem, end_params_per_gpu, tensor_parallel_problem
from service.core.pipeline import SCHEDULE_CODES, SCHEDULES, PipelineSchedule
from service.core.plan_finetune import (
    FinetuneShardTable,
    data_parallel_only,
    finetune_layer_delta,
    finetune_shard_table,
    finetune_state_arrays,
    resolve_finetune,
)
from service.core.steptime import RECOMPUTE_CODES, Hardware
from service.core.steptime_moe import MoeDispatcher

RECOMPUTES = (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL, Recompute.SELECTIVE_OP)  # by RECOMPUTE_CODES
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
    search. ``finetune`` plans a LoRA/QLoRA fine-tune (None: pre-training, or a full fine-tune).
    ``cross_entropy`` is the loss the run calls (:class:`service.core.kernels.CrossEntropy`):
    Megatron's fused one (4 bytes a logit at its peak) or PyTorch's eager ``F.cross_entropy`` on
    fp32 logits, as torchtitan and transformers call it (12 bytes a logit; 16 on ``tp > 1`` vocabulary
    shards, :func:`service.core.kernels.cross_entropy_logit_bytes`). ``cuda_graphs``: the
    layers' kernels captured in CUDA graphs (one launch a layer), so no eager host floor holds an
    adapted layer (:mod:`service.core.steptime_finetune`). ``grad_reduce_dtype``: the gradients' dtype in memory
    and in the data-parallel reduction (None: the 16-bit format, :mod:`service.core.gradients`).
    """

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
    tp_comm_overlap_rs_dgrad: bool = False
    ep_comm_overlap: bool = False
    moe_max_nodes_per_token: int | None = None
    fused_kernels: bool = True
    moe_load_imbalance: float = 1.0
    expert_tensor_parallel: int | None = None
    moe_dispatcher: MoeDispatcher = MoeDispatcher.DEEPEP
    finetune: FinetuneSpec | None = None
    cross_entropy: CrossEntropy = CrossEntropy.FUSED
    cuda_graphs: bool = False
    grad_reduce_dtype: GradReduceDtype | None = None

    @property
    def kernels(self) -> Kernels:
        """The kernels the planner prices memory with: Megatron-LM's fused ones
        (:data:`service.core.kernels.MEGATRON`, Korthikanti et al. 2022 §4) with the spec's loss."""
        return Kernels(framework=Framework.MEGATRON, cross_entropy=self.cross_entropy)

    def expert_fold(self, tp: Any) -> Any:
        """Ranks an expert's data-parallel replicas span per data-parallel rank: ``tp`` under MoE
        parallel folding (``expert_tensor_parallel`` 1: experts over tp*dp), else 1 (over dp), as
        :attr:`service.core.memory.Parallelism.expert_fold`."""
        return tp if self.expert_tensor_parallel == 1 else 1


def micro_batch_sizes(fixed: dict[str, Any]) -> list[int]:
    """The micro-batch sizes a search covers: the fixed one, whatever its size, else
    :data:`MICRO_BATCH_SIZES` (as :func:`search_axes` takes them)."""
    return [fixed["micro_batch_size"]] if "micro_batch_size" in fixed else list(MICRO_BATCH_SIZES)


def zero_text(fixed: dict[str, Any]) -> str:
    """The ZeRO stages a search covers, for its ``searched`` text."""
    return f"ZeRO {fixed['zero_stage']} (fixed)" if "zero_stage" in fixed else "ZeRO 0-3"


def fixed_text(fixed: dict[str, Any]) -> str:
    """The dimensions a request held fixed, for a reason that no plan was found (empty when none)."""
    held = [f"{k}={fixed[k]}" for k in ("tp", "pp", "dp", "zero_stage", "micro_batch_size", "recompute") if k in fixed]
    return f" with {', '.join(held)} fixed" if held else ""


def batch_split_rule(fixed: dict[str, Any]) -> str:
    """The rules on the micro-batches a step that no layout met, for the reason that none splits the
    batch: ``dp * micro_batch_size`` divides it, and the fixed schedule's count
    (:func:`service.core.pipeline.schedule_problem`; interleaving: a multiple of ``pp``)."""
    schedule = fixed.get("pipeline_schedule")
    rule = "dp * micro_batch_size must divide it"
    if schedule == "interleaved" or fixed.get("virtual_stages", 1) > 1:
        rule += "; interleaving needs its micro-batches, global_batch_size / (dp * micro_batch_size), in multiples of pp"
    elif schedule in ("dualpipe", "dualpipev"):
        rule += f"; {schedule} needs at least 2*pp micro-batches, global_batch_size / (dp * micro_batch_size)"
    return f"({rule})"


def divisors(n: int) -> list[int]:
    small = [i for i in range(1, math.isqrt(n) + 1) if n % i == 0]
    return sorted(set(small + [n // i for i in small]))


def partial_node_hint(n: int, node: int) -> str:
    """What would place ``n`` GPUs on nodes of ``node``: the whole-node counts either side, and the
    most GPUs a node could run in equal shares of ``n`` (an NVLink domain beyond one host, such as
    an NVL72 rack, is often run partly filled)."""
    lower, upper = n // node * node, -(-n // node) * node
    hint = f"{lower:,} or {upper:,} GPUs fill whole nodes"
    fewer = max(d for d in divisors(n) if d <= node)  # the most GPUs a node can take in equal shares of n
    if fewer > 1:
        hint += f", or give gpus_per_node={fewer} to run {fewer} GPUs a node"
    if node > 8:
        hint += " (an NVL72 rack is often run at 64 of its 72 GPUs)"
    return hint


def _axis(name: str, default: list[Any], fixed: dict[str, Any]) -> np.ndarray:
    values = [fixed[name]] if name in fixed else default
    return np.asarray(values)


AXES = ("tp", "pp", "cp", "ep", "zero_stage", "offload_optimizer", "micro_batch_size", "recompute",
        "sequence_parallel", "virtual_stages", "pipeline_schedule")  # fmt: skip


def search_axes(arch: Architecture, hw: Hardware, spec: PlanSpec) -> dict[str, np.ndarray]:
    """The values each dimension may take (a fixed dimension: its one value)."""
    n, s, fixed = spec.n_gpus, spec.seq_len, spec.fixed
    node = min(hw.gpus_per_node, n)
    tps = [t for t in range(1, node + 1) if n % t == 0 and tensor_parallel_problem(arch, t) is None]
    defaults: dict[str, list[Any]] = {
        "tp": tps,
        "pp": [p for p in divisors(n) if p <= arch.n_layers],
        "cp": [
            c
            for c in CONTEXT_PARALLEL
            if n % c == 0 and context_parallel_problem(arch, c, seq_len=s, fused_attention=spec.flash_attention) is None
        ],  # fmt: skip
        "ep": divisors(arch.n_experts) if arch.is_moe else [1],
        "zero_stage": [0, 1, 2, 3],
        "offload_optimizer": [False, True],
        "micro_batch_size": list(MICRO_BATCH_SIZES),
        "recompute": list(SEARCHED_RECOMPUTE_CODES),
        "sequence_parallel": [False, True],
        "virtual_stages": list(VIRTUAL_STAGES),
        "pipeline_schedule": list(range(len(SCHEDULES))),
    }
    if spec.finetune is not None and data_parallel_only(resolve_finetune(arch, spec.finetune, spec.precision)):
        defaults |= {"tp": [1], "pp": [1], "cp": [1], "ep": [1]}  # a quantised base: data parallelism only
    if "recompute" in fixed:
        fixed = fixed | {"recompute": RECOMPUTE_CODES[fixed["recompute"]]}
    if "pipeline_schedule" in fixed:
        fixed = fixed | {"pipeline_schedule": SCHEDULE_CODES[fixed["pipeline_schedule"]]}
    return {name: _axis(name, values, fixed) for name, values in defaults.items()}


OUTER = ("tp", "pp", "cp", "ep", "micro_batch_size", "virtual_stages", "pipeline_schedule")
INNER = ("zero_stage", "offload_optimizer", "recompute", "sequence_parallel")


def layout_grid(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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
    z, off, sp = (axes[k][inner[INNER.index(k)]][None, :] for k in ("zero_stage", "offload_optimizer", "sequence_parallel"))
    off, sp = off.astype(bool), sp.astype(bool)
    sharded = (d * axes["cp"][outer[OUTER.index("cp")]] > 1)[:, None]
    tp_split = (axes["tp"][outer[OUTER.index("tp")]] > 1)[:, None]
    # ZeRO shards over more than one rank, or (ZeRO-Offload, Ren et al. 2021) moves the states off;
    # judged on the (outer, inner) table, then only the valid pairs are built (in the same order)
    rows, cols = np.nonzero(((z == 0) | sharded | off) & (~off | (z >= 1)) & (~sp | tp_split))
    index = {k: outer[i][rows] for i, k in enumerate(OUTER)} | {k: inner[i][cols] for i, k in enumerate(INNER)}
    out = {k: axes[k][index[k]] for k in AXES}
    out.update({f"i_{k}": a for k, a in index.items()})
    out["dp"] = d[rows]
    out["microbatches"] = m[rows]
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
    ends: np.ndarray  # of dense, the embedding's and LM head's (service.core.parallelism.end_params_per_gpu)


def shard_tables(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> _ShardTable | FinetuneShardTable:
    """Indexed by (parameter copies - 1, tp, pp, ep, virtual stages): DualPipe keeps two copies.
    A fine-tune's: :func:`service.core.plan_finetune.finetune_shard_table`."""
    if spec.finetune is not None:
        return finetune_shard_table(arch, resolve_finetune(arch, spec.finetune, spec.precision), axes, precision=spec.precision,
                                    optimizer=spec.optimizer, fp8_recipe=spec.fp8_recipe,
                                    expert_tensor_parallel=spec.expert_tensor_parallel,
                                    grad_reduce_dtype=spec.grad_reduce_dtype)  # fmt: skip
    return _cached_shard_table(arch, spec.optimizer, spec.precision, spec.expert_tensor_parallel,
                               tuple(tuple(axes[k].tolist()) for k in SHARD_AXES),
                               bool(pipeline.DUALPIPE in axes["pipeline_schedule"]))  # fmt: skip


SHARD_AXES = ("tp", "pp", "ep", "virtual_stages")


@functools.lru_cache(maxsize=1024)
def _cached_shard_table(arch: Architecture, optimizer: Optimizer, precision: Precision, expert_tensor_parallel: int | None,
                        values: tuple[tuple[int, ...], ...], dual: bool) -> _ShardTable:  # fmt: skip
    """:func:`shard_tables` of pre-training, memoised (read-only): a deadline search asks the same
    table of every (pp, ep) chunk again for each cluster size and GPU type."""
    dense = np.zeros((2, *(len(v) for v in values)), dtype=np.float64)
    expert, optimizer_dense, optimizer_expert, ends = (np.zeros_like(dense) for _ in range(4))
    for idx in np.ndindex(dense.shape):
        twice, (t, p, ep, v) = idx[0], (values[k][i] for k, i in enumerate(idx[1:]))
        if p * v > pipeline.max_chunks(arch.n_layers) or (v > 1 and p == 1) or (twice and (not dual or v > 1 or p % 2)):
            continue  # never a valid layout
        schedule = PipelineSchedule.DUALPIPE if twice else None
        par = Parallelism(tp=t, pp=p, ep=ep, virtual_stages=v, pipeline_schedule=schedule,
                          expert_tensor_parallel=expert_tensor_parallel)  # fmt: skip
        total, experts = params_per_gpu(arch, par), expert_params_per_gpu(arch, par)
        dense[idx], expert[idx], ends[idx] = total - experts, experts, end_params_per_gpu(arch, par)
        optimizer_dense[idx], optimizer_expert[idx] = optimizer_shard_bytes(total - experts, experts, optimizer, precision, arch)
    for table in (dense, expert, optimizer_dense, optimizer_expert, ends):
        table.flags.writeable = False
    return _ShardTable(dense=dense, expert=expert, optimizer_dense=optimizer_dense, optimizer_expert=optimizer_expert, ends=ends)


LAYER_AXES = ("tp", "sequence_parallel", "recompute", "micro_batch_size", "cp")


@functools.lru_cache(maxsize=16_384)
def _layer_bytes(arch: Architecture, opts: ActivationOptions) -> tuple[int, int]:
    """:func:`service.core.activations.layer_activation_bytes`' total and the layer recomputation
    rebuilds (:func:`service.core.activations.recompute_working_bytes`), memoised: every search asks
    the same (tp, sp, recompute, micro-batch, cp) entries again for each cluster size and GPU type."""
    return layer_activation_bytes(arch, opts).total_bytes, recompute_working_bytes(arch, opts)


def layer_tables(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> np.ndarray:
    """One layer's activation bytes by (tp, sequence_parallel, recompute, micro-batch, cp) and, on a
    last axis of two, (kept, rebuilt): the kept bytes from
    :func:`service.core.activations.layer_activation_bytes` (with a fine-tune's change,
    :func:`service.core.plan_finetune.finetune_layer_delta`), the layer recomputation rebuilds from
    :func:`service.core.activations.recompute_working_bytes`; memoised (read-only): a deadline
    search asks the same table for every cluster size and GPU type."""
    return _cached_layer_table(arch, spec.precision, spec.fp8_recipe, spec.seq_len, spec.flash_attention, spec.dropout,
                               spec.finetune, spec.cross_entropy, tuple(tuple(axes[k].tolist()) for k in LAYER_AXES))  # fmt: skip


@functools.lru_cache(maxsize=256)
def _cached_layer_table(arch: Architecture, precision: Precision, fp8_recipe: Fp8Recipe, seq_len: int, flash_attention: bool,
                        dropout: bool, finetune: FinetuneSpec | None, cross_entropy: CrossEntropy,
                        values: tuple[tuple[Any, ...], ...]) -> np.ndarray:  # fmt: skip
    spec = PlanSpec(n_gpus=1, seq_len=seq_len, global_batch_size=1, precision=precision, fp8_recipe=fp8_recipe,
                    flash_attention=flash_attention, dropout=dropout, finetune=finetune, cross_entropy=cross_entropy)  # fmt: skip
    axes = {k: np.asarray(v) for k, v in zip(LAYER_AXES, values, strict=True)}
    table = _build_layer_table(arch, spec, axes)
    table.flags.writeable = False
    return table


def _build_layer_table(arch: Architecture, spec: PlanSpec, axes: dict[str, np.ndarray]) -> np.ndarray:
    e = PRECISION_BYTES[spec.precision].activation
    inputs = kept_linear_input_bytes(spec.precision, spec.fp8_recipe)  # FP8: the linear layers' inputs kept in FP8
    ft = None if spec.finetune is None else resolve_finetune(arch, spec.finetune, spec.precision)
    layer = np.empty((*(len(axes[k]) for k in LAYER_AXES), 2), dtype=np.float64)
    for idx in np.ndindex(layer.shape[:-1]):
        t, sp, rc, b, c = (axes[k][i].item() for k, i in zip(LAYER_AXES, idx, strict=True))
        opts = ActivationOptions(
            seq_len=spec.seq_len // c, micro_batch_size=b, tp=t, sequence_parallel=bool(sp), recompute=RECOMPUTES[rc],
            flash_attention=spec.flash_attention, dropout=spec.dropout, element_bytes=e, linear_input_bytes=inputs,
            kernels=spec.kernels,
        )  # fmt: skip
        layer[idx] = _layer_bytes(arch, opts)
        if ft is not None:
            layer[(*idx, 0)] += finetune_layer_delta(arch, ft, tokens=spec.seq_len // c * b, element_bytes=e,
                                               flash_attention=spec.flash_attention, recompute=RECOMPUTES[rc], tp=t,
                                               sequence_parallel=bool(sp), linear_input_bytes=inputs)  # fmt: skip
    return layer


def memory_arrays(
    arch: Architecture,
    spec: PlanSpec,
    g: dict[str, np.ndarray],
    shard_table: _ShardTable | FinetuneShardTable,
    layer_table: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-GPU bytes of every layout by the scalar core's own formulas over arrays: the states by
    :func:`service.core.memory.sharded_states` (ZeRO over ``dp * cp``, experts over ``dp * cp / ep``,
    offload), a fine-tune's by :func:`service.core.finetune_layout.zero_sharded`
    (:func:`service.core.plan_finetune.finetune_state_arrays`), the busiest stage's activations by
    :func:`service.core.activations.stage_peak_bytes`, as :func:`service.core.memory.training_memory`
    combines them."""
    pb = PRECISION_BYTES[spec.precision]
    t, p, c = g["tp"], g["pp"], g["cp"]
    code = g["pipeline_schedule"]
    copies = (code == pipeline.DUALPIPE) & (p > 1)
    shard = (copies.astype(np.int64), g["i_tp"], g["i_pp"], g["i_ep"], g["i_virtual_stages"])
    zero = ZeroSharding(stage=g["zero_stage"], offload=g["offload_optimizer"], shards=(g["dp"] * c).astype(np.float64),
                        ep=g["ep"], fold=spec.expert_fold(t), gathered=zero3_gathered(g["zero_stage"], p))  # fmt: skip
    if isinstance(shard_table, FinetuneShardTable):
        states = finetune_state_arrays(shard_table, shard, zero)
    else:
        states = _state_arrays(arch, spec, shard_table, shard, zero)

    layer, rebuilt = np.moveaxis(
        layer_table[g["i_tp"], g["i_sequence_parallel"], g["i_recompute"], g["i_micro_batch_size"], g["i_cp"]], -1, 0
    )
    # the stage's total, by the lines service.core.activations.stage_activation_bytes uses
    k = resolve_kernels(spec.kernels, arch, flash_attention=spec.flash_attention)
    embedding_mask, output = stage_end_bytes(arch, k, element_bytes=pb.activation, seq_len=spec.seq_len // c,
                                             micro_batch_size=g["micro_batch_size"].astype(np.float64), tp=t,
                                             sequence_parallel=g["sequence_parallel"], dropout=spec.dropout)  # fmt: skip
    first, last = stage_peak_bytes(arch.n_layers, layer, embedding_mask, output, pp=p, virtual_stages=g["virtual_stages"],
                                   microbatches=g["microbatches"], schedule=code, rebuilt=rebuilt)  # fmt: skip
    activations = np.maximum(first, last)
    total = states["weights"] + states["gradients"] + states["optimizer"] + activations
    return states | {"total": total, "activations": activations}


def _state_arrays(
    arch: Architecture, spec: PlanSpec, shard_table: _ShardTable, shard: tuple[np.ndarray, ...], zero: ZeroSharding
) -> dict[str, np.ndarray]:
    """Per-GPU weights, gradients and optimizer states (on the GPU and offloaded) of pre-training's
    layouts (:func:`service.core.memory.sharded_states` over the shard table's terms), and the
    parameters of each GPU's shard."""
    dense, expert = shard_table.dense[shard], shard_table.expert[shard]
    s = sharded_states(arch, spec.precision, zero, dense_params=dense, expert_params=expert,
                       optimizer_dense=shard_table.optimizer_dense[shard], optimizer_expert=shard_table.optimizer_expert[shard],
                       fp8_recipe=spec.fp8_recipe, grad_reduce_dtype=spec.grad_reduce_dtype,
                       end_params=shard_table.ends[shard])  # fmt: skip
    return {"params": dense + expert, "expert_params": expert, "weights": s.weights, "gradients": s.gradients,
            "optimizer": s.optimizer, "offloaded": s.offloaded}  # fmt: skip


def flops_per_token_by_recompute(arch: Architecture, seq_len: int, causal: bool) -> tuple[float, np.ndarray]:
    """Model FLOPs per token (every matmul and the attention core, Narayanan et al. 2021 §5.1,
    as PaLM's MFU counts them) and hardware FLOPs per token for none/selective/full recompute.
    The attention square is halved where the kernel skips the masked half (causal
    FlashAttention), so MFU counts the work the step-time model times and stays below 1."""
    # selective_op only where torchtitan's op policy applies (service.core.plan refuses it elsewhere): NaN, never chosen
    applies = op_checkpoint_problem(arch, flash_attention=True) is None
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
        if applies or r is not Recompute.SELECTIVE_OP
    ]
    hardware = [f.hardware_flops_per_token for f in by_recompute] + ([] if applies else [np.nan])
    return by_recompute[0].model_flops_per_token, np.asarray(hardware)
