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
(:data:`service.core.kernels.MEGATRON`) with the spec's loss (``PlanSpec.cross_entropy``: fused,
or PyTorch's eager one), combined over arrays in :mod:`service.core.plan_space`
(the search space, re-exported here); layouts that do not fit are pruned before the step-time
model (:mod:`service.core.steptime`) prices the rest, except those whose floor
(:func:`service.core.steptime.step_lower_bound`) is already slower than the k-th best found. The
returned plans are recomputed one by one with the scalar core, so what a plan reports is exactly
what the memory calculator answers. ``selective_op`` (torchtitan's op-level checkpointing) is
priced only when ``fixed.recompute`` asks for it; the search does not try it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.core import pipeline
from service.core.architecture import Architecture
from service.core.compute import Recompute
from service.core.errors import InvalidSpecError
from service.core.finetune import finetune_memory
from service.core.finetune_layout import adapter_bytes
from service.core.fp8 import cast_bytes_per_element
from service.core.gradients import workload_gradient_bytes
from service.core.memory import (
    PRECISION_BYTES,
    Parallelism,
    Precision,
    TrainingMemory,
    expert_params_per_gpu,
    memory_fits,
    optimizer_state_bytes,
    params_per_gpu,
    training_memory,
    usable_bytes,
)
from service.core.op_checkpoint import op_checkpoint_problem
from service.core.parallelism import context_parallel_problem, tensor_parallel_problem
from service.core.pipeline import SCHEDULE_CODES, SCHEDULES, PipelineSchedule, schedule_problem
from service.core.plan_finetune import adapter_load, check_fixed, finetune_flops_per_token, resolve_finetune
from service.core.plan_space import AXES as AXES
from service.core.plan_space import CONTEXT_PARALLEL as CONTEXT_PARALLEL
from service.core.plan_space import DEFAULT_TIME_LIMIT_SECONDS as DEFAULT_TIME_LIMIT_SECONDS
from service.core.plan_space import (
    DIMENSIONS,
    RECOMPUTES,
    PlanSpec,
    batch_split_rule,
    flops_per_token_by_recompute,
    layer_tables,
    layout_grid,
    memory_arrays,
    partial_node_hint,
    search_axes,
    shard_tables,
)
from service.core.plan_space import INNER as INNER
from service.core.plan_space import LAYER_AXES as LAYER_AXES
from service.core.plan_space import MICRO_BATCH_SIZES as MICRO_BATCH_SIZES
from service.core.plan_space import OUTER as OUTER
from service.core.plan_space import VIRTUAL_STAGES as VIRTUAL_STAGES
from service.core.steptime import RECOMPUTE_CODES, Hardware, Layout, StepTime, Workload, step_lower_bound, step_time
from service.core.steptime_finetune import finetune_step_time


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


def workload_for(spec: PlanSpec) -> Workload:
    """The step-time model's view of the spec: 16-bit activations and weights (fp32 for fp32 training), gradients
    reduced in ``grad_reduce_dtype``'s bytes (:func:`service.core.gradients.workload_gradient_bytes`), and the optimizer's
    bytes per parameter (master copy and states, :func:`service.core.memory.optimizer_state_bytes`)."""
    pb, fp8 = PRECISION_BYTES[spec.precision], spec.precision is Precision.FP8
    optimizer_bytes = optimizer_state_bytes(1e6, spec.optimizer, spec.precision) / 1e6
    if spec.finetune is not None:  # the adapters' states alone are updated (QLoRA's 32-bit, no master copy)
        optimizer_bytes = adapter_bytes(spec.finetune, spec.precision, spec.optimizer, 10**6).states / 1e6
    return Workload(
        seq_len=spec.seq_len, global_batch_size=spec.global_batch_size, flash_attention=spec.flash_attention, dropout=spec.dropout,
        element_bytes=pb.activation,
        weight_bytes=pb.weight,  # ZeRO-3 under FP8 gathers the matmul weights as zero3_fp8_recipe's all-gather sends them
        **workload_gradient_bytes(spec.precision, spec.grad_reduce_dtype),
        optimizer_bytes_per_param=optimizer_bytes,
        overlap_grad_reduce=spec.overlap_grad_reduce,
        fp8_cast_bytes_per_element=cast_bytes_per_element(spec.fp8_recipe) if fp8 else 0.0,
        zero3_fp8_recipe=spec.fp8_recipe if fp8 else None,
        tp_comm_overlap=spec.tp_comm_overlap,
        tp_comm_overlap_rs_dgrad=spec.tp_comm_overlap_rs_dgrad,
        ep_comm_overlap=spec.ep_comm_overlap,
        moe_max_nodes_per_token=spec.moe_max_nodes_per_token,
        fused_kernels=spec.fused_kernels,
        moe_load_imbalance=spec.moe_load_imbalance,
        expert_tensor_parallel=spec.expert_tensor_parallel,
        moe_dispatcher=spec.moe_dispatcher,
        cuda_graphs=spec.cuda_graphs,
    )  # fmt: skip


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
    if problem := tensor_parallel_problem(arch, fixed.get("tp", 1)):
        raise InvalidSpecError("fixed.tp", problem)
    if problem := context_parallel_problem(arch, fixed.get("cp", 1), seq_len=spec.seq_len, fused_attention=spec.flash_attention):
        raise InvalidSpecError("fixed.cp", problem)
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
    if "recompute" in fixed and fixed["recompute"] not in RECOMPUTE_CODES:
        raise InvalidSpecError("fixed.recompute", "must be none, selective, full or selective_op")
    if fixed.get("recompute") == "selective_op" and (why := op_checkpoint_problem(arch, spec.flash_attention, spec.finetune)):
        raise InvalidSpecError("fixed.recompute", why)
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
    if spec.finetune is not None:  # the fine-tune's own fields, then the layouts its base's kernels run
        check_fixed(resolve_finetune(arch, spec.finetune, spec.precision), fixed)


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
        raise InvalidSpecError("n_gpus", f"n_gpus={n} is not a multiple of gpus_per_node={node} (whole nodes, or less than one): "
                               + partial_node_hint(n, node))  # fmt: skip
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
    options = dict(precision=spec.precision, optimizer=spec.optimizer, parallelism=par, micro_batch_size=row["micro_batch_size"],
                   seq_len=spec.seq_len, recompute=recompute, flash_attention=spec.flash_attention, dropout=spec.dropout,
                   microbatches=microbatches, kernels=spec.kernels, fp8_recipe=spec.fp8_recipe,
                   grad_reduce_dtype=spec.grad_reduce_dtype)  # fmt: skip
    sizes = {k: row[k] for k in ("tp", "pp", "dp", "cp", "ep", "zero_stage", "offload_optimizer", "micro_batch_size", "recompute",
                                 "sequence_parallel", "virtual_stages", "pipeline_schedule")}  # fmt: skip
    if spec.finetune is None:
        mem = training_memory(arch, **options)  # type: ignore[arg-type]
        lay = Layout(**sizes, params_per_gpu=mem.params_per_gpu, expert_params_per_gpu=expert_params_per_gpu(arch, par))
        st = step_time(arch, hw, work, lay)
    else:  # the frozen base and its adapters (service.core.finetune), paged states beyond the usable memory
        ftm = finetune_memory(arch, spec.finetune, **options)  # type: ignore[arg-type]
        mem = ftm.memory
        paged = (
            max(0.0, mem.total_bytes - usable_bytes(hw.memory_bytes, spec.usable_memory_fraction)) if ftm.paged_optimizer else 0.0
        )
        lay = Layout(
            **sizes, params_per_gpu=ftm.trainable_params_per_gpu, expert_params_per_gpu=ftm.trainable_expert_params_per_gpu
        )
        expert = expert_params_per_gpu(arch, par)
        load = adapter_load(arch, resolve_finetune(arch, spec.finetune, spec.precision), base_expert_params=expert,
                            base_params=params_per_gpu(arch, par) - expert, paged_bytes=paged, fp8_recipe=work.zero3_fp8_recipe)  # fmt: skip
        st = finetune_step_time(arch, hw, work, lay, load)
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


def _within_bound(arch: Architecture, hw: Hardware, work: Workload, grid: dict[str, np.ndarray], mem: dict[str, np.ndarray],
                  idx: np.ndarray, best: list[dict[str, np.ndarray]], k: int, ceiling: float) -> np.ndarray:  # fmt: skip
    """The layouts of ``idx`` that could still be among the ``k`` fastest and step within
    ``ceiling`` seconds: those whose :func:`service.core.steptime.step_lower_bound` is above
    neither the k-th best step of the chunks searched so far nor the ceiling (a bound: with an
    infinite ceiling the plans returned are the same as without it; with a finite one, every
    plan returned whose step is within the ceiling is where it would be without it)."""
    kept = np.concatenate([b["_step"] for b in best]) if best else np.empty(0)
    if (len(kept) < k and ceiling == math.inf) or not len(idx):
        return idx
    kth = min(np.partition(kept, k - 1)[k - 1] if len(kept) >= k else math.inf, ceiling)
    lay = Layout(**{name: grid[name][idx] for name in DIMENSIONS}, params_per_gpu=mem["params"][idx],
                 expert_params_per_gpu=mem["expert_params"][idx])  # fmt: skip
    floor = np.asarray(step_lower_bound(arch, hw, work, lay), dtype=np.float64)
    return idx[floor <= kth * (1 + 1e-9)]


def _top(step: np.ndarray, total: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` fastest, ties broken by less memory (every tie at the k-th time is
    kept for the sort, so a leaner plan is never dropped for an equally fast one)."""
    if len(step) > k:
        kth = np.partition(step, k - 1)[k - 1]
        candidates = np.flatnonzero(step <= kth)
    else:
        candidates = np.arange(len(step))
    return candidates[np.lexsort((total[candidates], step[candidates]))[:k]]


def plan(arch: Architecture, hw: Hardware, spec: PlanSpec, *, step_ceiling_seconds: float = math.inf) -> PlanResult:
    """The ``top_k`` fastest layouts of ``arch`` on ``spec.n_gpus`` GPUs that fit in memory.

    Exhaustive over the space in the module docstring, built and evaluated in chunks, one per
    (pipeline size, expert-parallel size); past ``time_limit_seconds`` the search stops (after
    at least one chunk), says ``cut`` and which chunks it covered. No layout that fits is an
    answer with ``plans: []`` and the reason. A finite ``step_ceiling_seconds`` (a question that
    only needs the plans stepping within it: a deadline) skips the layouts whose step floor is
    above it; the plans returned that step within the ceiling are exact (:func:`_within_bound`),
    the search's counts (considered, fitting) are unchanged.
    """
    return _priced(arch, hw, _searched(arch, hw, spec, step_ceiling_seconds), spec.top_k)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Searched:
    """A search's fastest layouts (rows, before they are priced as :class:`Plan`) and what it covered."""

    spec: PlanSpec
    work: Workload
    best: list[dict[str, np.ndarray]]
    considered: int
    feasible: int
    covered: list[int]
    where: str
    cut: bool
    smallest: tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]] | None
    usable_bytes: float
    started: float
    model_per_token: float
    hardware_per_token: np.ndarray


def _searched(arch: Architecture, hw: Hardware, spec: PlanSpec, step_ceiling_seconds: float) -> _Searched:
    """:func:`plan`'s search: the ``top_k`` fastest rows of every chunk covered."""
    validate_spec(arch, hw, spec)
    started = time.perf_counter()
    work = workload_for(spec)
    axes = search_axes(arch, hw, spec)
    ft = None if spec.finetune is None else resolve_finetune(arch, spec.finetune, spec.precision)
    if ft is None:
        model_per_token, hardware_per_token = flops_per_token_by_recompute(arch, spec.seq_len, causal=spec.flash_attention)
    else:
        model_per_token, hardware_per_token = finetune_flops_per_token(arch, ft, spec.seq_len, causal=spec.flash_attention)
    layer_table = layer_tables(arch, spec, axes)
    usable = usable_bytes(hw.memory_bytes, spec.usable_memory_fraction)
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
        grid = layout_grid(arch, spec, chunk_axes)
        if not len(grid["tp"]):
            continue
        mem = memory_arrays(arch, spec, grid, shard_tables(arch, spec, chunk_axes), layer_table)
        considered += len(mem["total"])
        fits = memory_fits(mem["total"], hw.memory_bytes, usable_fraction=spec.usable_memory_fraction)
        if ft is not None and ft.spec.paged:  # paged optimizer states may leave the GPU (QLoRA §3)
            fits |= memory_fits(mem["total"] - mem["optimizer"], hw.memory_bytes, usable_fraction=spec.usable_memory_fraction)
        if not fits.any():
            i = int(np.argmin(mem["total"]))
            if smallest is None or mem["total"][i] < smallest[0]:
                smallest = (float(mem["total"][i]), mem, grid)
            continue
        idx = np.flatnonzero(fits)
        feasible += len(idx)
        if ft is None:  # layouts whose floor is slower than the k-th best so far cannot be returned
            idx = _within_bound(arch, hw, work, grid, mem, idx, best, spec.top_k, step_ceiling_seconds)
            if not len(idx):
                continue
        rows = {k: a[idx] for k, a in grid.items()}
        lay = Layout(
            **{k: rows[k] for k in DIMENSIONS}, params_per_gpu=mem["params"][idx], expert_params_per_gpu=mem["expert_params"][idx]
        )
        if ft is None:
            step = np.asarray(step_time(arch, hw, work, lay).step_seconds, dtype=np.float64)
        else:
            load = adapter_load(arch, ft, base_params=mem["base_params"][idx], base_expert_params=mem["base_expert_params"][idx],
                                paged_bytes=np.maximum(0.0, mem["total"][idx] - usable) if ft.spec.paged else 0.0,
                                fp8_recipe=work.zero3_fp8_recipe)  # fmt: skip
            step = np.asarray(finetune_step_time(arch, hw, work, lay, load).step_seconds, dtype=np.float64)
        keep = _top(step, mem["total"][idx], spec.top_k)
        best.append({k: a[keep] for k, a in rows.items()} | {"_step": step[keep], "_total": mem["total"][idx][keep]})
    cut = len(done) < len(chunks)
    if considered == 0 and not cut:
        _check_expert_ranks(spec, axes)
        raise InvalidSpecError(
            "global_batch_size",
            f"no layout of {spec.n_gpus} GPUs splits global_batch_size={spec.global_batch_size} "
            f"under the fixed dimensions {spec.fixed or '{}'} {batch_split_rule(spec.fixed)}",
        )
    covered = sorted({p for p, _ in done})
    where = f"{len(done)} of {len(chunks)} (pp, ep) chunks: pp in {covered}" if cut else f"all {len(axes['pp'])} pipeline sizes"
    return _Searched(spec=spec, work=work, best=best, considered=considered, feasible=feasible, covered=covered, where=where,
                     cut=cut, smallest=smallest, usable_bytes=usable, started=started, model_per_token=model_per_token,
                     hardware_per_token=hardware_per_token)  # fmt: skip


def _priced(arch: Architecture, hw: Hardware, found: _Searched, k: int) -> PlanResult:
    """The ``k`` fastest rows of a search priced as plans (``k`` at most the search's ``top_k``:
    the first ``k`` of its plans), with the search's counts."""
    spec, considered = found.spec, found.considered
    plans: list[Plan] = []
    if found.best:
        rows = {name: np.concatenate([r[name] for r in found.best]) for name in found.best[0]}
        for i in _top(rows["_step"], rows["_total"], k).tolist():
            row = {name: rows[name][i].item() for name in rows if not name.startswith(("i_", "_"))}
            plans.append(_scalar_plan(arch, hw, spec, found.work, row, found.model_per_token, found.hardware_per_token))
    reason = None
    stopped = f"the search stopped at its time bound after pp in {found.covered}" if found.cut else ""
    if not plans:
        if found.smallest is not None:
            smallest = found.smallest
            reason = _no_fit_reason(smallest[1], smallest[2], found.usable_bytes, considered) + (
                f"; {stopped}" if found.cut else ""
            )
        else:
            reason = stopped or "no layout"
    seconds = time.perf_counter() - found.started
    return PlanResult(
        plans=plans,
        search=Search(
            considered=considered,
            feasible=found.feasible,
            returned=len(plans),
            seconds=seconds,
            cut=found.cut,
            searched=found.where,
        ),  # fmt: skip
        reason=reason,
        model_flops_per_token=found.model_per_token,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineResult:
    """The GPU count that meets a deadline at the least GPU-hours, its plans, every count tried
    with its wall-clock hours (None: no layout fits, none meets the deadline, or the fixed
    dimensions do not tile it),
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


def plan_for_deadline(arch: Architecture, hw: Hardware, spec: PlanSpec, *, tokens: float, deadline_hours: float,
                      effective_time_fraction: float, batch_for: Callable[[int], int] | None = None,
                      max_gpus: int = 131072, min_gpus: int = 1) -> DeadlineResult:  # fmt: skip
    """The smallest-GPU-hours cluster (from :func:`gpu_counts`) whose best plan trains
    ``tokens`` within ``deadline_hours``. GPU-hours grow with the cluster (communication,
    bubbles), so the search walks up the sizes and looks two sizes past the first that meets
    the deadline in case a larger one lays out better. ``batch_for(n)`` gives the global batch
    for ``n`` GPUs (default: the spec's). Sizes the fixed dimensions cannot tile are skipped; the
    walk ends where the batch no longer splits, or, ``cut``, past the spec's time limit. Sizes under
    ``min_gpus`` (a bound below which no plan can meet the deadline) are not searched. Each size's
    search skips the layouts whose step floor misses the deadline (:func:`plan`'s step ceiling)
    and prices its fastest layout alone: whether a size meets the deadline, and at what hours, is
    exact; the size chosen prices its ``top_k``, and is searched again without the ceiling when
    those might miss some that step slower than the deadline."""
    validate_fixed(arch, spec)  # a fixed dimension no size can satisfy is the caller's error
    started = time.perf_counter()
    tried: list[tuple[int, float | None]] = []
    best: tuple[float, int, _Searched, PlanSpec, float] | None = None
    after = considered = feasible = 0
    cut = False
    for n in gpu_counts(hw.gpus_per_node, max_gpus):
        if n < min_gpus:
            continue
        remaining = spec.time_limit_seconds - (time.perf_counter() - started)
        if remaining <= 0:
            cut = True
            break
        batch = batch_for(n) if batch_for else spec.global_batch_size
        probe = PlanSpec(**{**spec_fields(spec), "n_gpus": n, "global_batch_size": batch, "time_limit_seconds": remaining})
        # the slowest step that meets the deadline (a hair generous: a looser ceiling only skips less)
        ceiling = deadline_hours * 3600 * effective_time_fraction * batch * spec.seq_len / tokens * (1 + 1e-6)
        try:
            found = _searched(arch, hw, probe, ceiling)
        except InvalidSpecError as exc:
            tried.append((n, None))
            if exc.field == "global_batch_size":
                break  # more GPUs only split the batch further
            continue  # this size does not tile the fixed dimensions; a larger one may
        result = _priced(arch, hw, found, 1)  # the fastest plan decides; the size chosen prices its top_k below
        considered, feasible = considered + result.search.considered, feasible + result.search.feasible
        cut = cut or result.search.cut
        if not result.plans or result.plans[0].step_seconds > ceiling:  # no plan meets the deadline
            tried.append((n, None))
            continue
        hours = tokens / result.plans[0].tokens_per_second / effective_time_fraction / 3600
        tried.append((n, hours))
        if hours <= deadline_hours:
            if best is None or hours * n < best[0]:
                best = (hours * n, n, found, probe, ceiling)
            after += 1
            if after > 2:
                break
    common = {"tried": tried, "cut": cut, "considered": considered, "feasible": feasible}
    if best is None:
        return DeadlineResult(n_gpus=None, result=None, **common)
    _, n, found, probe, ceiling = best
    result = _priced(arch, hw, found, spec.top_k)
    if len(result.plans) < spec.top_k or result.plans[-1].step_seconds > ceiling:  # some plans may have been skipped
        remaining = max(0.0, spec.time_limit_seconds - (time.perf_counter() - started))
        result = plan(arch, hw, PlanSpec(**{**spec_fields(probe), "time_limit_seconds": remaining}))
        common["cut"] = cut or result.search.cut
    return DeadlineResult(n_gpus=n, result=result, **common)


def spec_fields(spec: PlanSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in PlanSpec.__dataclass_fields__}
