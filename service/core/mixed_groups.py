"""Plans over pools as data-parallel groups of different GPU types, and both kinds of plan over pools.

Each pool used runs whole replicas of the model (a *group*): ``dp_k = n_k / (tp_k pp_k)`` replicas on
pool ``k``, each with its own micro-batch size ``b_k``, recompute and micro-batch count ``m_k`` per
step, the groups' shares ``dp_k b_k m_k`` of the global batch sized so that they finish together
(Whale, Jia et al., USENIX ATC'22, "hardware-aware load balancing": each replica's batch sized to its
GPU's speed). Each group's step is the single-type model (:func:`service.core.steptime.step_time`)
of its own replicas on its own hardware in the spec's precision (FP8: at that GPU's FP8 peak),
``m_k`` micro-batches through ``pp_k`` 1F1B stages; the plan's step is the slowest group's (every
group meets the others at the reduction). The gradients are reduced one of two ways:

- **one shared split** (``tp x pp`` the same in every group): each parameter shard's gradient
  lives on one rank of every replica, so one ring all-reduce (or ZeRO's reduce-scatter and
  all-gather) runs over all ``D = sum_k dp_k`` replicas; a ring moves at its slowest hop (Patarasuk
  & Yuan 2009), here the slowest link between the pools (``between_pools_bytes_per_s``, else the
  slowest scale-out link of the pools used) at the smallest NCCL scale-out share. The group's
  data-parallel reduction and optimizer step are the ring's over ``D`` ranks, and ZeRO shards over
  all ``D``. Two pools of one GPU are then exactly one pool of their sum.
- **each group its own split** (``tp_k x pp_k`` and ZeRO stage per pool, as Whale lets replicas of
  different types take different layouts): a hierarchical reduction (Jia et al. 2018, "Highly
  Scalable Deep Learning Training System with Mixed-Precision", its hierarchical all-reduce: reduce
  inside groups, all-reduce across them, broadcast inside; Mikami et al. 2018, "Massively Distributed
  SGD", its 2D-torus all-reduce: the reduce-scatter / all-reduce / all-gather form). First each group
  reduces over its own ``dp_k`` replicas on its own network with ZeRO over its own ``dp_k`` ranks:
  exactly the single-type step of that group alone, its reduction and optimizer over ``dp_k``
  ranks. Its reduce-scatter leaves each of its ``n_k`` GPUs about ``P / n_k`` of the ``P``
  parameters' gradients; the GPUs of the ``G`` groups holding the same range then all-reduce it
  (:func:`cross_group_seconds`: ``2 (G-1)/G * P g / n_k`` bytes per GPU of group ``k`` over its own
  link, capped by the link between the pools; the slowest group sets the pace), exposed, added to
  every group's ``dp_comm_seconds``. The last phase, each
  group gathering the result inside itself, is the second half of its own reduction, already in
  the single-type step. Kept where two groups' splits differ (one split in every group is the
  shared reduction's).

A group's step is affine in its micro-batches (``alpha + beta m``: the pipeline's ``m`` micro-batches
and sends, its bubble, the reduction's edges and ZeRO-2/3's per-micro-batch traffic; the term across
groups a constant), so each layout is priced at two counts and every count follows. Memory is the
single-type stage memory (:class:`service.core.mixed_stages.MemoryTables`) on each group's GPU,
stage ``r`` holding ``min(pp_k - r, m_k)`` micro-batches, ZeRO over ``D`` (shared) or ``dp_k`` (own
splits) ranks.

The search is exhaustive over every subset of two or more pools and, per pool, the micro-batch
size, recompute none/selective/full and the micro-batch count; for the shared split, over the
shared ``tp`` (inside every pool's node, dividing the heads and every pool), ``pp`` (dividing every
pool's GPUs over ``tp``) and ZeRO 0-3, the split of the batch whose slowest group is the fastest for
each (exact: a bisection on that step over the shares each group can take); for own splits, over
each pool's ``tp``, ``pp`` (dividing its GPUs over ``tp``) and ZeRO 0-3, priced once per pool, the
best split of the batch over all of each pool's layouts per subset: one plan of own splits per subset
(none when its best layouts coincide in every group, which the shared split prices). Bounded, and
said so: each
pool used whole, 1F1B without interleaving, no context or expert parallelism, sequence parallelism
wherever ``tp > 1``, global batches up to :data:`MAX_GROUP_BATCH` sequences, and a fixed ``dp``
(every group's replicas together) searched with the shared split only.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any

import numpy as np

from service.core import pipeline, plan_space
from service.core.architecture import Architecture
from service.core.compute import SEARCHED_RECOMPUTE_CODES
from service.core.hardware import INTER_NODE_LATENCY_SECONDS, Hardware, link_bandwidths, ring_all_reduce_seconds
from service.core.mixed_stages import MemoryTables, StageMemory, busiest_layers, layout, reduction_seconds
from service.core.params import count_params
from service.core.plan import Search, workload_for
from service.core.plan_mixed import (
    MixedPlan,
    MixedResult,
    Pool,
    Stage,
    plan_mixed,
    search_each,
    tensor_parallel_sizes,
    validate_pools,
)
from service.core.plan_space import RECOMPUTES, PlanSpec, divisors, flops_per_token_by_recompute, micro_batch_sizes
from service.core.steptime import RECOMPUTE_CODES, StepTime, Workload, step_time

MAX_GROUP_BATCH = 1 << 16  # sequences per step the split of the batch is searched for (arrays of this length)
PARTS = tuple(name for name in StepTime.__slots__ if name.endswith("_seconds") and name != "step_seconds")


def ring_hardware(pools: list[Pool], subset: tuple[int, ...], between: float | None) -> dict[int, Hardware]:
    """Each pool's hardware as its data-parallel ring sees it: every hop on the scale-out network
    (one GPU per node), at the slowest link of the subset (and the link given between pools) and
    the smallest NCCL scale-out share."""
    rate = min([pools[k].hardware.inter_node_bandwidth_bytes_per_s for k in subset] + ([between] if between else []))
    share = min(pools[k].hardware.kernels.inter_node_collective for k in subset)
    return {k: dataclasses.replace(pools[k].hardware, gpus_per_node=1, inter_node_bandwidth_bytes_per_s=rate,
                                   efficiency=dataclasses.replace(pools[k].hardware.kernels, inter_node_collective=share))
            for k in subset}  # fmt: skip


def cross_group_seconds(arch: Architecture, pools: list[Pool], subset: tuple[int, ...], work: Workload,
                        between: float | None) -> float:  # fmt: skip
    """The all-reduce across data-parallel groups of their own splits, after each group's own
    reduction: each of group ``k``'s ``n_k`` GPUs holds about ``P / n_k`` of the ``P`` parameters'
    gradients (``g`` bytes each, the step model's), and the GPUs of every group holding the same
    range all-reduce it, a ring over the ``G`` groups in which each GPU of group ``k`` sends and
    receives ``2 (G-1)/G * P g / n_k`` bytes over its own scale-out link, capped by the link between
    the pools, at its NCCL scale-out share (:func:`service.core.hardware.link_bandwidths`), plus the
    ring's latency hops (:func:`service.core.hardware.ring_all_reduce_seconds`). The slowest group
    sets the pace: the one whose GPUs carry the most bytes for their link."""
    grads = count_params(arch).total * work.gradient_bytes
    seconds = []
    for k in subset:
        hw = pools[k].hardware
        if between:
            hw = dataclasses.replace(hw, inter_node_bandwidth_bytes_per_s=min(hw.inter_node_bandwidth_bytes_per_s, between))
        rate = link_bandwidths(hw)[1]
        seconds.append(float(ring_all_reduce_seconds(grads / pools[k].n_gpus, len(subset), rate, INTER_NODE_LATENCY_SECONDS)))
    return max(seconds)


def _positions(arch: Architecture, pp: Any) -> list[tuple[Any, Any, Any, Any, Any]]:
    """(layers, first, last, most micro-batches in flight, valid) of the stages whose memory can be
    the busiest: the first, the second (a middle stage's layers, when there is one) and the last."""
    first, full, last = pipeline.stage_layers(arch.n_layers, pp)
    one = pp == 1
    return [(first, np.ones_like(pp), one, pp, np.ones_like(pp, dtype=bool)),
            (full, np.zeros_like(pp), np.zeros_like(pp), pp - 1, pp > 2),
            (last, one, np.ones_like(pp), np.ones_like(pp), pp >= 2)]  # fmt: skip


def busiest_params(arch: Architecture, tables: MemoryTables, tp: Any, pp: Any) -> Any:
    """Parameters per GPU of the stage that holds the most (the first, a middle or the last), as the
    single-type step model takes them (:func:`service.core.memory.params_per_gpu`)."""
    pp = np.asarray(pp)
    params = np.zeros(np.broadcast(np.asarray(tp), pp).shape)
    for layers, first, last, _, valid in _positions(arch, pp):
        params = np.where(valid, np.maximum(params, tables.stage_params(tp, layers, first, last)), params)
    return params


def _rows(arch: Architecture, pool: Pool, rows: dict[str, Any], ring_hw: Hardware, spec: PlanSpec, work: Workload,
          tables: MemoryTables, cross: float | None = None) -> dict[str, Any]:  # fmt: skip
    """One pool's group layouts (``rows``: tp, pp, dp, D, zero, b, rc) priced: ``alpha + beta m``
    seconds a step at ``m`` micro-batches per replica, and ``mmax`` the most micro-batches that fit
    (ZeRO over ``D`` ranks). ``cross`` None: a shared split, the reduction and optimizer the ring's
    over ``D`` ranks on ``ring_hw``; else the group's own split, its single-type step (its own
    reduction over its ``dp`` replicas) and ``cross`` seconds across the groups."""
    tp, pp, dp, ranks, zero, b, rc = (rows[k] for k in ("tp", "pp", "dp", "D", "zero", "b", "rc"))
    cfg = {"tp": tp, "pp": pp, "dp": ranks, "zero": zero, "b": b, "rc": rc}
    usable = pool.hardware.memory_bytes * spec.usable_memory_fraction
    params = busiest_params(arch, tables, tp, pp)
    mmax = np.full(len(tp), np.inf)
    for layers, first, last, cap, valid in _positions(arch, pp):
        one, two, full = (tables.memory(cfg, layers, in_flight=i, first=first, last=last,
                                        optimizer_per_param=work.optimizer_bytes_per_param).total for i in (1, 2, cap))  # fmt: skip
        fits = np.where(full <= usable, np.inf, np.floor((usable - one) / np.maximum(two - one, 1.0)) + 1)
        mmax = np.where(valid, np.minimum(mmax, np.where(one > usable, 0.0, fits)), mmax)
    own, ring = layout(tp, pp, dp, b, rc, zero, params), layout(tp, pp, ranks, b, rc, zero, params)
    batch = spec.global_batch_size
    seconds = []
    for g in (batch, 2 * batch):
        w = dataclasses.replace(work, global_batch_size=g)
        st = step_time(arch, pool.hardware, w, own)
        if cross is not None:
            seconds.append((st.step_seconds, g / (dp * b), cross, 0.0))
            continue
        dp_s, opt_s = reduction_seconds(arch, ring_hw, w, ring, busiest_layers(arch, pool.hardware, w, ring))
        seconds.append((st.step_seconds - st.dp_comm_seconds - st.optimizer_seconds, g / (dp * b), dp_s + opt_s, g / (ranks * b)))
    (own1, m1, ring1, r1), (own2, m2, ring2, r2) = seconds
    beta_own = (own2 - own1) / (m2 - m1)
    beta_ring = 0.0 if cross is not None else (ring2 - ring1) / (r2 - r1)
    return rows | {"alpha": own1 - beta_own * m1 + ring1 - beta_ring * r1, "beta": beta_own + beta_ring, "mmax": mmax}


def _best_per_share(priced: dict[str, Any], idx: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """For every share ``s`` of the batch (0..batch), the least step of one pool's group taking
    exactly ``s`` sequences over its layouts ``idx``, and which layout (-1: none)."""
    best, which = np.full(batch + 1, np.inf), np.full(batch + 1, -1)
    for i in idx.tolist():
        per = int(priced["dp"][i] * priced["b"][i])
        count = int(min(priced["mmax"][i], batch // per))
        if count < 1:
            continue
        m = np.arange(1, count + 1)
        shares, step = per * m, priced["alpha"][i] + priced["beta"][i] * m
        better = step < best[shares]
        best[shares[better]], which[shares[better]] = step[better], i
    return best, which


def _convolve(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """The sums ``i + j <= size - 1`` reachable with ``a[i]`` and ``b[j]`` (boolean, via FFT)."""
    n = 1 << (2 * size).bit_length()
    counts = np.fft.irfft(np.fft.rfft(a.astype(np.float64), n) * np.fft.rfft(b.astype(np.float64), n), n)[:size]
    return counts > 0.5


def split_batch(best: list[np.ndarray], batch: int) -> tuple[float, list[int]] | None:
    """The least ``T`` such that every pool's group takes a share stepping within ``T`` and the
    shares sum to ``batch``, and the shares (None: no split). Two pools: every split; more: a
    bisection on ``T`` over the steps reachable, each checked by convolving the shares within it."""
    if len(best) == 2:
        steps = np.maximum(best[0], best[1][::-1])
        s = int(np.argmin(steps))
        return (float(steps[s]), [s, batch - s]) if math.isfinite(steps[s]) else None
    values = np.unique(np.concatenate([f[np.isfinite(f)] for f in best]))
    values = values[values >= max(float(np.min(f)) for f in best)]

    def reach(limit: float) -> list[np.ndarray]:
        within = [f <= limit for f in best]
        sums = [within[0]]
        for w in within[1:]:
            sums.append(_convolve(sums[-1], w, batch + 1))
        return sums

    if not len(values) or not reach(values[-1])[-1][batch]:
        return None
    lo, hi = 0, len(values) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reach(values[mid])[-1][batch] else (mid + 1, hi)
    sums, limit = reach(values[lo]), float(values[lo])
    shares, left = [], batch
    for k in range(len(best) - 1, 0, -1):
        own = np.flatnonzero((best[k][: left + 1] <= limit) & sums[k - 1][left::-1])
        shares.append(int(own[0]))
        left -= int(own[0])
    return limit, [left, *shares[::-1]]


def _shapes(arch: Architecture, pools: list[Pool], subset: tuple[int, ...], spec: PlanSpec) -> list[tuple[int, int, int]]:
    """(tp, pp, ZeRO) every pool of ``subset`` can run: tp inside each node, dividing the heads and every pool."""
    fixed = spec.fixed
    tps = sorted(set.intersection(*(set(tensor_parallel_sizes(arch, pools[k], fixed)) for k in subset)))
    shapes = []
    for t in tps:
        for p in divisors(math.gcd(*(pools[k].n_gpus // t for k in subset))):
            ranks = sum(pools[k].n_gpus // (t * p) for k in subset)
            if p <= arch.n_layers and fixed.get("dp", ranks) == ranks:
                shapes.extend((t, p, z) for z in (0, 1, 2, 3) if fixed.get("zero_stage", z) == z)
    return shapes


def _options(spec: PlanSpec) -> list[tuple[int, int]]:
    rcs = [RECOMPUTE_CODES[spec.fixed["recompute"]]] if "recompute" in spec.fixed else list(SEARCHED_RECOMPUTE_CODES)
    return [(b, rc) for b in micro_batch_sizes(spec.fixed) for rc in rcs]


def _search_subset(arch: Architecture, pools: list[Pool], subset: tuple[int, ...], spec: PlanSpec, work: Workload,
                   tables: MemoryTables, between: float | None) -> tuple[int, int, list[tuple[float, Any]]]:  # fmt: skip
    """(group layouts priced, of which fit, candidates (step, choice)) of the groups on ``subset``
    sharing one split: for each shared shape, the best split of the batch (module docstring)."""
    shapes, options = _shapes(arch, pools, subset, spec), _options(spec)
    if not shapes or not options:
        return 0, 0, []
    grid = np.asarray([(t, p, z, b, rc) for t, p, z in shapes for b, rc in options])
    shape_of = np.repeat(np.arange(len(shapes)), len(options))
    t, p = grid[:, 0], grid[:, 1]
    ranks = sum(pools[k].n_gpus // (t * p) for k in subset)
    rings = ring_hardware(pools, subset, between)
    priced = {}
    for k in subset:
        rows = {
            "tp": t,
            "pp": p,
            "dp": pools[k].n_gpus // (t * p),
            "D": ranks,
            "zero": grid[:, 2],
            "b": grid[:, 3],
            "rc": grid[:, 4],
        }
        priced[k] = _rows(arch, pools[k], rows, rings[k], spec, work, tables)
    fits = sum(int((priced[k]["mmax"] >= 1).sum()) for k in subset)
    found = []
    for s in range(len(shapes)):
        split = _split(priced, subset, np.flatnonzero(shape_of == s), spec.global_batch_size)
        if split is not None:
            found.append((split[0], (None, split[1], priced)))
    return len(grid) * len(subset), fits, found


def _split(priced: dict[int, dict[str, Any]], subset: tuple[int, ...], idx: np.ndarray,
           batch: int) -> tuple[float, list[tuple[int, int, int]]] | None:  # fmt: skip
    """The best split of the batch over the groups of ``subset`` at their rows ``idx``: the step
    and (pool, row, share) per group (None: no split)."""
    per_pool = [_best_per_share(priced[k], idx, batch) for k in subset]
    split = split_batch([best for best, _ in per_pool], batch)
    if split is None:
        return None
    step, shares = split
    return step, [(k, int(per_pool[j][1][share]), share) for j, (k, share) in enumerate(zip(subset, shares, strict=True))]


def own_split_rows(arch: Architecture, pool: Pool, spec: PlanSpec, work: Workload, tables: MemoryTables) -> dict[str, Any]:
    """Every layout of one group on ``pool`` alone, priced without the term across groups: its own
    tp (inside a node, dividing the heads and the pool), pp dividing ``n / tp`` (at most the
    layers), ZeRO 0-3 over its own replicas (0 alone with one), micro-batch and recompute; with
    ``best`` and ``which``, the least step for every share of the batch over them all and its row
    (:func:`_best_per_share`: the term across groups, one constant, shifts every step alike)."""
    fixed, options = spec.fixed, _options(spec)
    shapes = [(t, p, z) for t in tensor_parallel_sizes(arch, pool, fixed) for p in divisors(pool.n_gpus // t) if p <= arch.n_layers
              for z in (0, 1, 2, 3) if fixed.get("zero_stage", z) == z and (z == 0 or pool.n_gpus > t * p)]  # fmt: skip
    if not shapes or not options:
        return {"tp": np.zeros(0, dtype=np.int64), "mmax": np.zeros(0)}
    grid = np.asarray([(t, p, z, b, rc) for t, p, z in shapes for b, rc in options], dtype=np.int64).reshape(-1, 5)
    dp = pool.n_gpus // (grid[:, 0] * grid[:, 1])
    rows = {"tp": grid[:, 0], "pp": grid[:, 1], "dp": dp, "D": dp, "zero": grid[:, 2], "b": grid[:, 3], "rc": grid[:, 4]}
    priced = _rows(arch, pool, rows, pool.hardware, spec, work, tables, cross=0.0)
    best, which = _best_per_share(priced, np.arange(len(grid)), spec.global_batch_size)
    return priced | {"best": best, "which": which}


def _search_own_splits(arch: Architecture, pools: list[Pool], subset: tuple[int, ...], spec: PlanSpec, work: Workload,
                       own: dict[int, dict[str, Any]], between: float | None) -> tuple[int, int, list[tuple[float, Any]]]:  # fmt: skip
    """(group layouts, of which fit, candidates) of the groups on ``subset`` each with its own
    split (``own``: each pool's :func:`own_split_rows`): the term across groups added to every
    row's constant, the best split of the batch over all of each pool's rows; kept where two groups'
    splits (tp, pp, ZeRO) differ (one split in every group is the shared search's, reduced by one
    ring). A fixed ``dp`` (the replicas of every group together) keeps the shared splits."""
    if "dp" in spec.fixed or any(not len(own[k]["tp"]) for k in subset):
        return 0, 0, []
    counts = sum(len(own[k]["tp"]) for k in subset), sum(int((own[k]["mmax"] >= 1).sum()) for k in subset)
    cross = cross_group_seconds(arch, pools, subset, work, between)
    split = split_batch([own[k]["best"] + cross for k in subset], spec.global_batch_size)
    if split is None:
        return *counts, []
    choice = [(k, int(own[k]["which"][share]), share) for k, share in zip(subset, split[1], strict=True)]
    if len({tuple(int(own[k][n][row]) for n in ("tp", "pp", "zero")) for k, row, _ in choice}) == 1:
        return *counts, []
    return *counts, [(split[0], (cross, choice, {k: own[k] | {"alpha": own[k]["alpha"] + cross} for k in subset}))]


def _group_seconds(arch: Architecture, pool: Pool, ring_hw: Hardware, work: Workload, cfg: dict[str, int],
                   params: float, cross: float | None = None) -> tuple[float, dict[str, float]]:  # fmt: skip
    """One group's step and its parts at ``cfg`` (tp, pp, dp, D, zero, b, rc, m): the single-type
    step of its replicas, with the ring's reduction and optimizer over ``D`` ranks (``cross`` None:
    a shared split) or with ``cross`` seconds across the groups added to its own reduction."""
    own = layout(cfg["tp"], cfg["pp"], cfg["dp"], cfg["b"], cfg["rc"], cfg["zero"], params)
    st = step_time(arch, pool.hardware, dataclasses.replace(work, global_batch_size=cfg["dp"] * cfg["b"] * cfg["m"]), own)
    parts = {name: float(getattr(st, name)) for name in PARTS}
    if cross is not None:
        parts["dp_comm_seconds"] += cross
        return sum(parts.values()), parts
    ring = layout(cfg["tp"], cfg["pp"], cfg["D"], cfg["b"], cfg["rc"], cfg["zero"], params)
    w = dataclasses.replace(work, global_batch_size=cfg["D"] * cfg["b"] * cfg["m"])
    dp_s, opt_s = reduction_seconds(arch, ring_hw, w, ring, busiest_layers(arch, pool.hardware, w, ring))
    parts |= {"dp_comm_seconds": float(dp_s), "optimizer_seconds": float(opt_s)}
    return sum(parts.values()), parts


def stage_layer_counts(n_layers: int, pp: int) -> list[int]:
    """Each stage's layers, first to last, summing to ``n_layers``: the first and last stages as
    :func:`service.core.pipeline.stage_layers` gives them, the middle stages sharing the rest as
    evenly as whole layers allow, none above the busiest stage's (the step-time model's)."""
    first, full, last = pipeline.stage_layers(n_layers, pp)
    if pp <= 2:
        return [n_layers] if pp == 1 else [n_layers - last, last]
    q, r = divmod(n_layers - first - last, pp - 2)
    return [first, *([q + 1] * r), *([q] * (pp - 2 - r)), last]


def _group_stages(arch: Architecture, pool: Pool, k: int, g: int, cfg: dict[str, int], parts: dict[str, float], wait: float,
                  spec: PlanSpec, work: Workload, tables: MemoryTables) -> list[Stage] | None:  # fmt: skip
    """Group ``g``'s stages on pool ``k`` at ``cfg``, each with its memory (ZeRO over ``cfg["D"]``
    ranks) and the group's parts, ``wait`` seconds on the slowest group added to its bubble (None:
    a stage's exact memory does not fit)."""
    tp, pp = cfg["tp"], cfg["pp"]
    usable = pool.hardware.memory_bytes * spec.usable_memory_fraction
    stages = []
    for r, layers in enumerate(stage_layer_counts(arch.n_layers, pp)):
        mem = tables.memory(cfg | {"dp": cfg["D"]}, layers, in_flight=min(pp - r, cfg["m"]), first=r == 0, last=r == pp - 1,
                            optimizer_per_param=work.optimizer_bytes_per_param)  # fmt: skip
        if float(mem.total) > usable:
            return None
        memory = StageMemory(**{name: int(np.ceil(getattr(mem, name))) for name in StageMemory.__slots__})
        stages.append(Stage(gpu=pool.gpu, pool=k, n_gpus=cfg["dp"] * tp, layers=int(layers), tp=tp, dp=cfg["dp"],
                            micro_batch_size=cfg["b"], memory=memory, microbatches=cfg["m"], recompute=RECOMPUTES[cfg["rc"]],
                            zero_stage=cfg["zero"], group=g, step=parts | {"bubble_seconds": parts["bubble_seconds"] + wait}))  # fmt: skip
    return stages


def _materialize(arch: Architecture, pools: list[Pool], spec: PlanSpec, work: Workload, tables: MemoryTables,
                 between: float | None, flops: tuple[float, np.ndarray], candidate: Any) -> MixedPlan | None:  # fmt: skip
    """One split priced group by group and stage by stage (None: a stage's exact memory does not fit)."""
    cross, choice, priced = candidate
    subset = tuple(k for k, _, _ in choice)
    rings = ring_hardware(pools, subset, between)
    groups = []
    for k, row, share in choice:
        cfg = {name: int(priced[k][name][row]) for name in ("tp", "pp", "dp", "D", "zero", "b", "rc")}
        cfg["m"] = share // (cfg["dp"] * cfg["b"])
        params = float(busiest_params(arch, tables, cfg["tp"], cfg["pp"]))
        groups.append((k, cfg, *_group_seconds(arch, pools[k], rings[k], work, cfg, params, cross)))
    step = max(seconds for _, _, seconds, _ in groups)
    stages: list[Stage] = []
    for g, (k, cfg, seconds, parts) in enumerate(groups):
        built = _group_stages(arch, pools[k], k, g, cfg, parts, step - seconds, spec, work, tables)
        if built is None:
            return None
        stages.extend(built)
    slowest = max(range(len(groups)), key=lambda g: groups[g][2])
    largest = max(groups, key=lambda grp: pools[grp[0]].n_gpus)[1]
    n_gpus = sum(pools[k].n_gpus for k in subset)
    peak = sum(pools[k].n_gpus * pools[k].hardware.peak_flops_per_s for k in subset)
    tokens_per_second = spec.global_batch_size * spec.seq_len / step
    model, hardware = flops
    per_token_hw = sum(share * float(hardware[int(priced[k]["rc"][row])]) for k, row, share in choice) / spec.global_batch_size
    return MixedPlan(stages=tuple(stages), dp=sum(cfg["dp"] for _, cfg, _, _ in groups), micro_batch_size=largest["b"],
                     gradient_accumulation_steps=largest["m"], zero_stage=largest["zero"], recompute=RECOMPUTES[largest["rc"]],
                     n_gpus=n_gpus, step=dict(groups[slowest][3]), step_seconds=step, tokens_per_second=tokens_per_second,
                     tflops_per_gpu=model * tokens_per_second / n_gpus / 1e12, mfu=model * tokens_per_second / peak,
                     hfu=per_token_hw * tokens_per_second / peak, groups=len(groups), pp=largest["pp"], tp=largest["tp"],
                     cross_group_seconds=cross)  # fmt: skip


def plan_groups(
    arch: Architecture, pools: list[Pool], spec: PlanSpec, *, between_pools_bytes_per_s: float | None = None
) -> MixedResult:
    """The ``spec.top_k`` fastest plans of data-parallel groups over two or more of ``pools``
    (module docstring); past ``spec.time_limit_seconds`` the search stops after a whole subset of
    pools and says ``cut``."""
    validate_pools(arch, pools, spec)
    started = time.perf_counter()
    work, flops = workload_for(spec), flops_per_token_by_recompute(arch, spec.seq_len, causal=spec.flash_attention)
    subsets = [c for r in range(2, len(pools) + 1) for c in itertools.combinations(range(len(pools)), r)]
    names = " + ".join(f"{p.gpu} x{p.n_gpus}" for p in pools)
    if spec.global_batch_size > MAX_GROUP_BATCH:
        reason = f"data-parallel groups over pools are searched for global batches up to {MAX_GROUP_BATCH:,} sequences"
        return MixedResult(plans=[], search=Search(considered=0, feasible=0, returned=0, seconds=0.0, cut=False,
                                                   searched=f"data-parallel groups over {names}: none ({reason})"),
                           reason=reason, model_flops_per_token=flops[0])  # fmt: skip
    tables = MemoryTables(arch, spec, [t for pool in pools for t in tensor_parallel_sizes(arch, pool, spec.fixed)] or [1])
    own: dict[int, dict[str, Any]] = {}  # each pool's layouts as one group of its own split, priced once

    def search(subset: tuple[int, ...]) -> tuple[int, int, list[tuple[float, Any]]]:
        shared = _search_subset(arch, pools, subset, spec, work, tables, between_pools_bytes_per_s)
        if "dp" in spec.fixed:
            return shared
        for k in subset:
            own[k] = own[k] if k in own else own_split_rows(arch, pools[k], spec, work, tables)
        apart = _search_own_splits(arch, pools, subset, spec, work, own, between_pools_bytes_per_s)
        return shared[0] + apart[0], shared[1] + apart[1], shared[2] + apart[2]

    done, considered, feasible, found = search_each(subsets, search, started, spec)
    plans = [
        p
        for _, c in found
        if (p := _materialize(arch, pools, spec, work, tables, between_pools_bytes_per_s, flops, c)) is not None
    ]
    plans.sort(key=lambda p: (p.step_seconds, max(st.memory.total for st in p.stages)))
    plans = plans[: spec.top_k]
    cut = done < len(subsets)
    covered = f"{done} of {len(subsets)} subsets" if cut else f"all {len(subsets)} subsets"
    own_splits = "" if "dp" in spec.fixed else (f"; or each group its own tp x pp and {plan_space.zero_text(spec.fixed)}, reducing over its own "
                                                "replicas, then one all-reduce across the groups (the best such plan per "
                                                "subset)")  # fmt: skip
    searched = (f"data-parallel groups over {names}: {covered} of 2+ pools; one tp x pp in every group, {plan_space.zero_text(spec.fixed)}, one gradient "
                f"ring over every replica at the slowest link{own_splits}; per pool micro-batch, recompute and count, the "
                f"batch split so the slowest group is fastest; each pool whole, 1F1B, cp = ep = 1")  # fmt: skip
    reason = None if plans else ("no data-parallel groups over the pools fit" if feasible else
                                 "no tensor and pipeline split of a group fits its pool") + plan_space.fixed_text(spec.fixed)  # fmt: skip
    return MixedResult(plans=plans, search=Search(considered=considered, feasible=feasible, returned=len(plans),
                                                  seconds=time.perf_counter() - started, cut=cut, searched=searched),
                       reason=reason, model_flops_per_token=flops[0])  # fmt: skip


def plan_over_pools(
    arch: Architecture, pools: list[Pool], spec: PlanSpec, *, between_pools_bytes_per_s: float | None = None
) -> MixedResult:
    """Both kinds of plan over pools, fastest first: pipelines across the pools
    (:func:`service.core.plan_mixed.plan_mixed`) and data-parallel groups (:func:`plan_groups`),
    the second within what the first left of ``spec.time_limit_seconds``."""
    pipelines = plan_mixed(arch, pools, spec, between_pools_bytes_per_s=between_pools_bytes_per_s)
    left = max(spec.time_limit_seconds - pipelines.search.seconds, 0.0)
    groups = plan_groups(arch, pools, dataclasses.replace(spec, time_limit_seconds=left),
                         between_pools_bytes_per_s=between_pools_bytes_per_s)  # fmt: skip
    plans = sorted([*pipelines.plans, *groups.plans], key=lambda p: (p.step_seconds, max(st.memory.total for st in p.stages)))
    plans = plans[: spec.top_k]
    a, b = pipelines.search, groups.search
    search = Search(considered=a.considered + b.considered, feasible=a.feasible + b.feasible, returned=len(plans),
                    seconds=a.seconds + b.seconds, cut=a.cut or b.cut, searched=f"{a.searched}; {b.searched}")  # fmt: skip
    reason = None if plans else "; ".join(r for r in (pipelines.reason, groups.reason) if r)
    return MixedResult(plans=plans, search=search, reason=reason, model_flops_per_token=pipelines.model_flops_per_token)
