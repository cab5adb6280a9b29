"""Plans over pools of different GPU types: one pipeline whose stages sit on several pools.

A mixed plan chains the pools used into one pipeline (Metis, Um et al. 2024 §4; FlashFlex/HexiScale,
Yan et al. 2024 §3; HAPT): each pool holds consecutive stages, each stage ``dp x tp`` GPUs of that
pool's type, tensor parallelism inside one of its nodes (``tp`` per pool: it divides the heads and
the node), the same ``dp`` data-parallel pipelines and micro-batch ``b`` throughout (the batch is
split once), and the layers of each pool's stages sized to its speed under its memory (uneven
stages). A stage's data-parallel ranks are one GPU type on one network, so each stage reduces its
gradients and updates its optimizer on its own pool; only the pipeline sends cross pools, on the
slowest link between them. Each piece is the existing model of one GPU type per stage
(:mod:`service.core.mixed_stages`), in the spec's precision: under FP8 (pre-training; every pool's
GPU with FP8 tensor cores, MXFP8 on Blackwell pools only, :func:`validate_pools`) each stage's
matmuls at its own GPU's FP8 peak with the casts of :mod:`service.core.fp8`, and its memory with the
FP8 weight copies and the linear layers' inputs kept in FP8, as the single-type planner counts them.

The search is exhaustive over: every order of every subset of two or more pools (the first stages
hold the most micro-batches in flight: memory-bound stages belong on the larger memories), ``dp``
dividing the batch, ``tp`` per pool, the micro-batch size, recompute none/selective/full and ZeRO
0-3 within each stage. Bounded, and said so in ``searched``: each pool gives all the stages its GPUs
allow (``pp_k = floor(n_k / (dp tp_k))``; a layout with more stages than layers is left out; an
idle pool is a plan on the other pools), 1F1B without interleaving, no context or expert
parallelism, sequence parallelism wherever ``tp > 1``. The layers follow from a bisection on the
slowest stage's time: each pool's stages hold as many layers as fit that time and their memory, the
last stage as many as fit beside its output layer; the best layouts are then priced stage by stage.
The best plan on any single pool is :func:`service.core.plan.plan`'s (the caller compares them).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.core.architecture import Architecture
from service.core.compute import SEARCHED_RECOMPUTE_CODES, Recompute
from service.core.errors import InvalidSpecError
from service.core.fp8 import check_recipe
from service.core.hardware import Hardware
from service.core.memory import Precision, usable_bytes
from service.core.mixed_stages import (
    MemoryTables,
    StageMemory,
    boundary_send_seconds,
    inner_send_seconds,
    layer_seconds,
    layout,
    pipeline_seconds,
    reduction_seconds,
)
from service.core.plan import Search, workload_for
from service.core.plan_space import (
    RECOMPUTES,
    PlanSpec,
    divisors,
    fixed_text,
    flops_per_token_by_recompute,
    micro_batch_sizes,
    zero_text,
)
from service.core.steptime import RECOMPUTE_CODES, Workload

MAX_POOLS = 4
REPRICED = 8  # the fastest layouts by the search's estimate re-priced stage by stage, beyond top_k
MIXED_FIXED = ("tp", "dp", "micro_batch_size", "recompute", "zero_stage")


@dataclass(frozen=True, kw_only=True, slots=True)
class Pool:
    """``n_gpus`` GPUs of one type (``gpu``, its catalog id) as the step-time model sees them;
    ``blackwell``: Blackwell tensor cores, which MXFP8 needs (:func:`service.core.fp8.check_recipe`)."""

    gpu: str
    hardware: Hardware
    n_gpus: int
    blackwell: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Stage:
    """One pipeline stage: ``dp x tp`` GPUs of pool ``pool``, its layers, its per-GPU memory (ZeRO
    stage ``zero_stage``) and its step-time parts (they sum to the plan's step: its idle time is
    ``bubble_seconds``); the data-parallel ``group`` it belongs to (0: a pipeline across pools is one
    group), whose replicas each run ``microbatches`` micro-batches a step with ``recompute``."""

    gpu: str
    pool: int
    n_gpus: int
    layers: int
    tp: int
    dp: int
    micro_batch_size: int
    memory: StageMemory
    step: dict[str, float]
    microbatches: int
    recompute: Recompute
    zero_stage: int
    group: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class MixedPlan:
    stages: tuple[Stage, ...]
    dp: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    zero_stage: int
    recompute: Recompute
    n_gpus: int
    step: dict[str, float]  # the slowest stage's parts, the slowest reduction, the fill and drain
    step_seconds: float
    tokens_per_second: float
    tflops_per_gpu: float
    mfu: float
    hfu: float
    groups: int = 1  # data-parallel groups of different types (service.core.mixed_groups); 1: a pipeline across pools
    pp: int = 0  # stages of each group's pipeline (the largest group's); 0: every stage is one pipeline's (len(stages))
    tp: int = 0  # the largest group's tensor-parallel size; 0: a pipeline across pools (its largest stage's)
    # groups of their own splits: the all-reduce across the groups after each one's own reduction (in
    # each group's dp_comm_seconds); None: a pipeline, or groups of one shared split (one ring over every replica)
    cross_group_seconds: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MixedResult:
    plans: list[MixedPlan]
    search: Search
    reason: str | None
    model_flops_per_token: float


def tensor_parallel_sizes(arch: Architecture, pool: Pool, fixed: dict[str, Any]) -> list[int]:
    node = min(pool.hardware.gpus_per_node, pool.n_gpus)
    tps = [t for t in divisors(arch.n_heads) if t <= node and pool.n_gpus % t == 0
           and (arch.n_kv_heads % t == 0 or t % arch.n_kv_heads == 0)]  # fmt: skip
    return [t for t in tps if t == fixed["tp"]] if "tp" in fixed else tps


def _grid(arch: Architecture, pools: list[Pool], order: tuple[int, ...], spec: PlanSpec) -> dict[str, Any]:
    """Every layout of the pipeline through ``order``'s pools, as flat arrays (module docstring)."""
    fixed, batch = spec.fixed, spec.global_batch_size
    axes: dict[str, list[int]] = {
        "dp": [d for d in divisors(batch) if fixed.get("dp", d) == d],
        "b": micro_batch_sizes(fixed),
        "rc": [RECOMPUTE_CODES[fixed["recompute"]]] if "recompute" in fixed else list(SEARCHED_RECOMPUTE_CODES),
        "zero": [z for z in (0, 1, 2, 3) if fixed.get("zero_stage", z) == z],
    }
    axes |= {f"tp{s}": tensor_parallel_sizes(arch, pools[k], fixed) for s, k in enumerate(order)}
    index = np.indices(tuple(len(v) for v in axes.values())).reshape(len(axes), -1)
    g = {name: np.asarray(values)[index[i]] for i, (name, values) in enumerate(axes.items())}
    ok = (batch % (g["dp"] * g["b"]) == 0) & ((g["zero"] == 0) | (g["dp"] > 1))
    stages = []
    for s, k in enumerate(order):
        pp = pools[k].n_gpus // (g["dp"] * g[f"tp{s}"])
        ok &= pp >= 1
        stages.append(pp)
    total = sum(stages)
    ok &= total <= arch.n_layers
    keep = np.flatnonzero(ok)
    out = {name: a[keep] for name, a in g.items()} | {f"pp{s}": pp[keep] for s, pp in enumerate(stages)}
    out["P"] = total[keep]
    out["m"] = batch // (out["dp"] * out["b"])
    return out


def _segment(g: dict[str, Any], s: int) -> dict[str, Any]:
    return {"tp": g[f"tp{s}"], "dp": g["dp"], "zero": g["zero"], "b": g["b"], "rc": g["rc"]}


def _caps(arch: Architecture, pools: list[Pool], order: tuple[int, ...], g: dict[str, Any], tables: MemoryTables,
          spec: PlanSpec, work: Workload) -> list[Any]:  # fmt: skip
    """Per pool of the order: the most layers each of its stages may hold, from the memory of its
    first stage (the most micro-batches in flight) and its last (the output layer on the last pool),
    each linear in the layers (:class:`service.core.mixed_stages.MemoryTables`): the planner's fit
    rule (:func:`service.core.memory.memory_fits`, ``usable_memory_fraction`` of each pool's
    memory) solved for the layers."""
    caps, start, last_pool = [], np.zeros_like(g["P"]), len(order) - 1
    for s, k in enumerate(order):
        pp, cfg = g[f"pp{s}"], _segment(g, s)
        usable = usable_bytes(pools[k].hardware.memory_bytes, spec.usable_memory_fraction)
        cap = np.full(len(pp), np.inf)
        for position, first, last in (
            (start, s == 0, (s == last_pool) & (pp == 1)),
            (start + pp - 1, (s == 0) & (pp == 1), s == last_pool),
        ):
            flight = np.minimum(g["P"] - position, g["m"])
            one, two = (tables.memory(cfg, k_layers, in_flight=flight, first=first, last=last,
                                      optimizer_per_param=work.optimizer_bytes_per_param).total for k_layers in (1, 2))  # fmt: skip
            slope = np.maximum(two - one, 1.0)
            cap = np.minimum(cap, np.floor((usable - (2 * one - two)) / slope))
        caps.append(cap)
        start = start + pp
    return caps


def _balance(g: dict[str, Any], n_segments: int, per_layer: list[Any], caps: list[Any], n_layers: int,
             logits: Any) -> tuple[Any, list[Any], Any]:  # fmt: skip
    """Layers per stage of each pool, and of the last stage: the least slowest-stage time ``T`` at
    which stages holding ``min(cap, floor(T / t_layer))`` layers (at least one), the last
    ``floor((T - logits) / t_layer)`` (it also runs the output layer), hold the model; a bisection
    per layout."""
    feasible = np.ones(len(g["P"]), dtype=bool)
    for s in range(n_segments):
        feasible &= caps[s] >= 1
    capacity = sum(g[f"pp{s}"] * np.clip(caps[s], 0, n_layers) for s in range(n_segments))
    feasible &= capacity >= n_layers
    lo = np.zeros(len(g["P"]))
    hi = n_layers * np.maximum.reduce(per_layer) + logits
    last = n_segments - 1

    def fit(limit: Any, s: int) -> Any:
        return np.clip(np.floor(limit / per_layer[s] * (1 + 1e-12)), 1, np.clip(caps[s], 1, n_layers))

    def held(limit: Any) -> tuple[list[Any], Any]:
        return [fit(limit, s) for s in range(n_segments)], fit(limit - logits, last)

    for _ in range(48):
        mid = (lo + hi) / 2
        layers, end = held(mid)
        enough = sum(g[f"pp{s}"] * layers[s] for s in range(n_segments)) - layers[last] + end >= n_layers
        hi, lo = np.where(enough, mid, hi), np.where(enough, lo, mid)
    layers, end = held(hi)
    return feasible, [x.astype(np.int64) for x in layers], end.astype(np.int64)


def _bandwidth_between(pools: list[Pool], a: int, b: int, between: float | None) -> tuple[float, float]:
    """(link rate, NCCL's scale-out share) between pools ``a`` and ``b``: the slower of their
    scale-out links, and of the link given between them: a send leaves one GPU's network link, crosses
    the link between the pools and enters the other's, so it moves at the slowest of the three, as the
    data-parallel groups' reductions cap it (:func:`service.core.mixed_groups.ring_hardware`)."""
    ha, hb = pools[a].hardware, pools[b].hardware
    rate = min(ha.inter_node_bandwidth_bytes_per_s, hb.inter_node_bandwidth_bytes_per_s, *([] if between is None else [between]))
    return rate, min(ha.kernels.inter_node_collective, hb.kernels.inter_node_collective)


def _sends(arch: Architecture, pools: list[Pool], order: tuple[int, ...], g: dict[str, Any], work: Workload,
           between: float | None) -> Any:  # fmt: skip
    """The slowest send of the pipeline, per micro-batch and direction."""
    worst = np.zeros(len(g["P"]))
    for s, k in enumerate(order):
        lay = layout(g[f"tp{s}"], g["P"], g["dp"], g["b"], g["rc"], g["zero"])
        worst = np.maximum(worst, inner_send_seconds(pools[k].hardware, work, arch.d_model, lay, g["b"], g[f"pp{s}"]))
        if s + 1 < len(order):
            rate, share = _bandwidth_between(pools, k, order[s + 1], between)
            tp = np.minimum(g[f"tp{s}"], g[f"tp{s + 1}"])
            worst = np.maximum(worst, boundary_send_seconds(work, arch.d_model, tp, g["b"], rate, share))
    return worst


def _search_order(arch: Architecture, pools: list[Pool], order: tuple[int, ...], spec: PlanSpec, work: Workload,
                  tables: MemoryTables, between: float | None) -> tuple[int, int, dict[str, Any] | None]:  # fmt: skip
    """(layouts considered, layouts that fit, the best ``KEEP_PER_ORDER`` as arrays) of one order."""
    g = _grid(arch, pools, order, spec)
    if not len(g["P"]):
        return 0, 0, None
    n, last = len(order), len(order) - 1
    seconds = [layer_seconds(arch, pools[k].hardware, work, layout(g[f"tp{s}"], g["P"], g["dp"], g["b"], g["rc"], g["zero"]))
               for s, k in enumerate(order)]  # fmt: skip
    caps = _caps(arch, pools, order, g, tables, spec, work)
    logits = seconds[last].logits
    feasible, layers, end_layers = _balance(g, n, [x.per_layer for x in seconds], caps, arch.n_layers, logits)
    stage = [layers[s] * seconds[s].per_layer for s in range(n)]
    end_stage = end_layers * seconds[last].per_layer + logits  # the last stage, with the output layer
    stage[last] = np.where(g[f"pp{last}"] > 1, stage[last], 0.0)  # the last pool's other stages, if any
    slowest = np.maximum(np.maximum.reduce(stage), end_stage)
    pipeline = sum(g[f"pp{s}"] * stage[s] for s in range(n)) - stage[last] + end_stage + (g["m"] - 1) * slowest
    reduction = np.zeros(len(g["P"]))
    for s, k in enumerate(order):
        for first, end in ((s == 0, False), (False, s == last)):
            held = end_layers if end else layers[s]
            params = tables.stage_params(g[f"tp{s}"], held, int(first), int(end))
            lay = layout(g[f"tp{s}"], g["P"], g["dp"], g["b"], g["rc"], g["zero"], params)
            dp, opt = reduction_seconds(arch, pools[k].hardware, work, lay, held)
            reduction = np.maximum(reduction, dp + opt)
    step = pipeline + 2 * g["m"] * _sends(arch, pools, order, g, work, between) + reduction
    step = np.where(feasible, step, np.inf)
    fits = int(feasible.sum())
    if not fits:
        return len(g["P"]), 0, None
    keep = np.argsort(step, kind="stable")[: min(spec.top_k + REPRICED, fits)]
    return (
        len(g["P"]),
        fits,
        {name: a[keep] for name, a in g.items()}
        | {f"l{s}": layers[s][keep] for s in range(n)}
        | {"l_end": end_layers[keep], "_step": step[keep]},
    )


def _stage_layers(row: dict[str, int], order: tuple[int, ...], per_layer: list[float], logits: float,
                  n_layers: int) -> list[list[int]]:  # fmt: skip
    """Each stage's layers: the pools' per-stage counts and the last stage's (it also runs the output
    layer, ``logits`` seconds), less the layers beyond the model taken one per stage from the
    slowest stages first."""
    layers = [[row[f"l{s}"]] * row[f"pp{s}"] for s in range(len(order))]
    layers[-1][-1] = row["l_end"]
    extra = sum(sum(x) for x in layers) - n_layers
    flat = [(s, j) for s in range(len(order)) for j in range(len(layers[s]))]
    end = flat[-1]
    flat.sort(key=lambda sj: (-(layers[sj[0]][sj[1]] * per_layer[sj[0]] + (logits if sj == end else 0.0)), sj != end))
    while extra > 0:
        for s, j in flat:
            if extra and layers[s][j] > 1:
                layers[s][j] -= 1
                extra -= 1
        if all(layers[s][j] <= 1 for s, j in flat):
            break
    return layers


def _materialize(arch: Architecture, pools: list[Pool], order: tuple[int, ...], row: dict[str, int], spec: PlanSpec,
                 work: Workload, tables: MemoryTables, between: float | None, flops: tuple[float, np.ndarray]) -> MixedPlan:  # fmt: skip
    """One layout priced stage by stage with the same pieces (exact layers per stage)."""
    m, dp, b, rc, zero, total = row["m"], row["dp"], row["b"], row["rc"], row["zero"], row["P"]
    secs = [
        layer_seconds(arch, pools[k].hardware, work, layout(row[f"tp{s}"], total, dp, b, rc, zero)) for s, k in enumerate(order)
    ]
    per_stage = _stage_layers(row, order, [float(x.per_layer) for x in secs], float(secs[-1].logits), arch.n_layers)
    g = {name: np.asarray([value]) for name, value in row.items()}
    pp_comm = float(2 * m * _sends(arch, pools, order, g, work, between)[0])
    built: list[tuple[int, int, int, StageMemory, float, float, float]] = []
    position = 0
    for s, k in enumerate(order):
        tp = row[f"tp{s}"]
        for layers in per_stage[s]:
            first, last = position == 0, position == total - 1
            cfg = {"tp": tp, "dp": dp, "zero": zero, "b": b, "rc": rc}
            mem = tables.memory(cfg, layers, in_flight=min(total - position, m), first=first, last=last,
                                optimizer_per_param=work.optimizer_bytes_per_param)  # fmt: skip
            lay = layout(tp, total, dp, b, rc, zero, mem.params)
            dp_s, opt_s = reduction_seconds(arch, pools[k].hardware, work, lay, layers)
            t = layers * float(secs[s].per_layer) + (float(secs[s].logits) if last else 0.0)
            built.append((s, k, layers, mem, t, float(dp_s), float(opt_s)))
            position += 1
    slowest, pipeline = pipeline_seconds([x[4] for x in built], m)
    reduction = max(x[5] + x[6] for x in built)
    step = float(pipeline) + pp_comm + reduction
    stages = []
    for s, k, layers, mem, t, dp_s, opt_s in built:
        parts = _parts(secs[s], layers, m, t, is_last=t > layers * float(secs[s].per_layer), pp_comm=pp_comm, dp=dp_s, opt=opt_s,
                       step=step)  # fmt: skip
        memory = StageMemory(**{name: int(np.ceil(getattr(mem, name))) for name in StageMemory.__slots__})
        stages.append(Stage(gpu=pools[k].gpu, pool=k, n_gpus=dp * row[f"tp{s}"], layers=layers, tp=row[f"tp{s}"], dp=dp,
                            micro_batch_size=b, memory=memory, step=parts, microbatches=m, recompute=RECOMPUTES[rc],
                            zero_stage=zero))  # fmt: skip
    busiest = max(range(len(built)), key=lambda i: built[i][4])
    reducing = max(range(len(built)), key=lambda i: built[i][5] + built[i][6])
    plan_parts = dict(stages[busiest].step) | {"dp_comm_seconds": built[reducing][5], "optimizer_seconds": built[reducing][6]}
    plan_parts["bubble_seconds"] = max(0.0, step - sum(v for name, v in plan_parts.items() if name != "bubble_seconds"))
    n_gpus = sum(st.n_gpus for st in stages)
    peak = sum(st.n_gpus * pools[st.pool].hardware.peak_flops_per_s for st in stages)
    tokens_per_second = spec.global_batch_size * spec.seq_len / step
    model, hardware = flops
    return MixedPlan(stages=tuple(stages), dp=dp, micro_batch_size=b, gradient_accumulation_steps=m, zero_stage=zero,
                     recompute=RECOMPUTES[rc], n_gpus=n_gpus, step=plan_parts, step_seconds=step, tokens_per_second=tokens_per_second,
                     tflops_per_gpu=model * tokens_per_second / n_gpus / 1e12, mfu=model * tokens_per_second / peak,
                     hfu=float(hardware[rc]) * tokens_per_second / peak)  # fmt: skip


def _parts(
    sec: Any, layers: int, m: int, t: float, *, is_last: bool, pp_comm: float, dp: float, opt: float, step: float
) -> dict[str, float]:
    """A stage's step-time parts; what it waits (fill, drain, the slowest stage and reduction) is its bubble."""
    logits = float(sec.logits) if is_last else 0.0
    parts = {"compute_seconds": m * (layers * float(sec.compute) + logits), "recompute_seconds": m * layers * float(sec.recompute),
             "tp_comm_seconds": m * layers * float(sec.tp_comm), "cp_comm_seconds": m * layers * float(sec.cp_comm),
             "ep_comm_seconds": m * layers * float(sec.ep_comm), "pp_comm_seconds": pp_comm, "bubble_seconds": 0.0,
             "dp_comm_seconds": dp, "optimizer_seconds": opt, "host_seconds": m * layers * float(sec.host)}  # fmt: skip
    parts["bubble_seconds"] = max(0.0, step - sum(parts.values()))
    return parts


def search_each(items: list[Any], search: Callable[[Any], tuple[int, int, list[tuple[float, Any]]]], started: float,
                spec: PlanSpec) -> tuple[int, int, int, list[tuple[float, Any]]]:  # fmt: skip
    """Each item searched in turn (``search``: layouts considered, fitting, candidates (step, what)),
    at least one, until ``spec.time_limit_seconds`` from ``started``: (items done, considered,
    fitting, the ``top_k + REPRICED`` fastest candidates)."""
    considered = feasible = done = 0
    found: list[tuple[float, Any]] = []
    for item in items:
        if done and time.perf_counter() - started > spec.time_limit_seconds:
            break
        done += 1
        seen, fits, candidates = search(item)
        considered, feasible = considered + seen, feasible + fits
        found.extend(candidates)
    found.sort(key=lambda f: f[0])
    return done, considered, feasible, found[: spec.top_k + REPRICED]


def validate_pools(arch: Architecture, pools: list[Pool], spec: PlanSpec) -> None:
    """Reject what no mixed layout can satisfy, naming the field: a fine-tune, and FP8 on a pool
    whose GPU has no FP8 tensor cores or cannot run the recipe (MXFP8 off Blackwell)."""
    if not 1 <= len(pools) <= MAX_POOLS:
        raise InvalidSpecError("pools", f"give 1 to {MAX_POOLS} pools")
    for i, pool in enumerate(pools):
        node = pool.hardware.gpus_per_node
        if pool.n_gpus < 1:
            raise InvalidSpecError(f"pools.{i}.n_gpus", "must be at least 1")
        if pool.n_gpus > node and pool.n_gpus % node:
            raise InvalidSpecError(f"pools.{i}.n_gpus", f"n_gpus={pool.n_gpus} is not a multiple of gpus_per_node={node}")
    for name in spec.fixed:
        if name not in MIXED_FIXED:
            raise InvalidSpecError(f"fixed.{name}", f"plans over pools fix only {', '.join(MIXED_FIXED)}")
    if spec.finetune is not None:
        raise InvalidSpecError("pools", "plans over pools cover pre-training (not LoRA/QLoRA fine-tunes)")
    if spec.precision is Precision.FP8:  # every pool's matmuls at its FP8 peak, in the spec's recipe
        for i, pool in enumerate(pools):
            if not pool.hardware.fp8_peak_flops_per_s:
                raise InvalidSpecError(f"pools.{i}.gpu", f"{pool.gpu} has no FP8 tensor cores (no dense FP8 peak): plan "
                                       "these pools in mixed_bf16, or without this pool")  # fmt: skip
            check_recipe(spec.fp8_recipe, gpu=pool.gpu, blackwell=pool.blackwell, field=f"pools.{i}.gpu")


def plan_mixed(
    arch: Architecture, pools: list[Pool], spec: PlanSpec, *, between_pools_bytes_per_s: float | None = None
) -> MixedResult:
    """The ``spec.top_k`` fastest pipelines over two or more of ``pools`` (module docstring);
    ``between_pools_bytes_per_s`` the link between pools per GPU and direction (a cap on the slower
    pool's scale-out link; None: that link). Past ``spec.time_limit_seconds`` the search stops after a whole order
    of pools and says ``cut``."""
    validate_pools(arch, pools, spec)
    started = time.perf_counter()
    work = workload_for(spec)
    flops = flops_per_token_by_recompute(arch, spec.seq_len, causal=spec.flash_attention)
    tables = MemoryTables(arch, spec, [t for pool in pools for t in tensor_parallel_sizes(arch, pool, spec.fixed)] or [1])
    orders = [
        o
        for r in range(2, len(pools) + 1)
        for c in itertools.combinations(range(len(pools)), r)
        for o in itertools.permutations(c)
    ]

    def search(order: tuple[int, ...]) -> tuple[int, int, list[tuple[float, Any]]]:
        seen, fits, best = _search_order(arch, pools, order, spec, work, tables, between_pools_bytes_per_s)
        rows = [] if best is None else [(float(best["_step"][i]), (order, {name: int(a[i]) for name, a in best.items() if name != "_step"}))
                                        for i in range(len(best["P"]))]  # fmt: skip
        return seen, fits, rows

    done, considered, feasible, found = search_each(orders, search, started, spec)
    plans = [
        _materialize(arch, pools, order, row, spec, work, tables, between_pools_bytes_per_s, flops) for _, (order, row) in found
    ]
    plans.sort(key=lambda p: (p.step_seconds, max(st.memory.total for st in p.stages)))
    plans = plans[: spec.top_k]
    cut = done < len(orders)
    names = [f"{p.gpu} x{p.n_gpus}" for p in pools]
    covered = f"{done} of {len(orders)} orders" if cut else f"all {len(orders)} orders"
    searched = (f"pipelines over {' + '.join(names)}: {covered} of 2+ pools, dp dividing the batch, tp per pool, micro-batch, "
                f"recompute, {zero_text(spec.fixed)}; all of each pool's stages, layers balanced under memory; 1F1B, cp = ep = 1")  # fmt: skip
    reason = None
    if not plans:
        reason = "no pipeline over the pools fits" if considered else "no pipeline over the pools splits the batch into stages"
        reason += fixed_text(spec.fixed)
        if len(orders) == 0:
            reason = "one pool: nothing to mix"
    seconds = time.perf_counter() - started
    return MixedResult(plans=plans, search=Search(considered=considered, feasible=feasible, returned=len(plans), seconds=seconds,
                                                  cut=cut, searched=searched),
                       reason=reason, model_flops_per_token=flops[0])  # fmt: skip
