"""Latency under load: time to first token with the wait for a prefill slot and its p99, and time
per output token with the prefill chunks that ride in the decode steps, for a replica under a
closed loop (``concurrent_users``) or an open loop (``requests_per_second``, Poisson arrivals).

The replica runs continuous batching with chunked prefill (Yu et al. 2022, Orca; Agrawal et al.
2024, Sarathi-Serve §3-4): every step decodes one token of each running sequence and carries prompt
chunks up to the engine's token budget. Over a second the GPU spends ``lam * P`` on prefill (``lam``
requests per second, ``P`` the compute of one prompt), the rest on decode steps of ``S(B)`` each
(:func:`service.core.serving.decode_step_seconds` with the engine's per-step overhead), so a
running sequence gets one token every

    tpot = S(B) / (1 - lam' * P)          lam' = the other requests' prefill rate

which is the contract's ``(latency - TTFT) / (output_tokens - 1)``. The batch follows Little's law,
``B = lam * latency``, ``latency = TTFT + (output - 1) * tpot``: the two are solved together by a
fixed point.

**Time to first token** = the rest of the step in progress (half a mean step when the replica is
busy, a whole step at p99) + the wait for a prefill slot + the steps the prompt's chunks ride in
(``k = ceil(prompt / (budget - B))``, each a mean step) + the prompt's own compute. The wait is an
**M/D/1 queue** (Poisson arrivals; deterministic service: the share of a step's token budget one
prompt takes, ``D = tpot * prompt / (budget - B)``): the mean is Pollaczek-Khinchine's
``rho * D / (2 (1 - rho))`` and the p99 comes from the exponential tail ``P(W > t) ~ C e^(-theta t)``
(Cramér-Lundberg), ``theta`` solving ``lam (e^(theta D) - 1) = theta`` and ``C = (1 - rho) /
(lam D e^(theta D) - 1)`` (Asmussen, "Applied Probability and Queues", 2003, XIII.5); prompts of
varied length (``prompt_length_cv``) make it M/G/1 with gamma service (:func:`queue_wait`). A closed
loop is priced with the same queue at its own throughput (it can only queue less: conservative),
and users beyond what the KV cache (or ``max_num_seqs``) holds wait for a slot: ``(users - B_max)
/ throughput`` by Little's law. Where the replica's GPU time caps the closed loop's throughput, the
sequences it holds wait for it too: ``B / throughput`` less the latency the queue gives, so that
throughput x latency = ``B`` (Little's law with no think time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from service.core.architecture import Architecture
from service.core.engines import Engine, EngineProfile, engine_profile, runtime_reserve_bytes
from service.core.expert_serving import ep_step_seconds
from service.core.serving import EngineLimits, Replica
from service.core.speculative import Speculation
from service.core.steptime import Hardware

P99 = 0.01  # the tail probability of a p99
FIXED_POINT_ITERATIONS = 60


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """One replica's work: a prompt's prefill compute (``prefill_seconds``), the decode step at a
    batch (``step_seconds(batch)``, per-step overhead included), the engine's token budget per step
    and the most sequences it decodes at once (KV cache or ``max_num_seqs``)."""

    prompt_tokens: int
    output_tokens: int
    prefill_seconds: float
    step_seconds: Callable[[float], float]
    token_budget: int
    max_batch: int
    ranks: int = 1  # data-parallel attention ranks, each scheduling its own prompts (an expert-parallel unit's GPUs)
    prompt_seconds: float | None = None  # one prompt on its rank, when ranks > 1 (prefill_seconds is then the unit's share)
    length_cv: float = 0.0  # the prompts' spread in length: a slot's service time varies with it (M/G/1)


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineSetup:
    """An engine's defaults applied to one replica degree: the memory fraction and reserve the
    replica uses (a request's own values win), and its scheduler limits and overheads."""

    profile: EngineProfile
    utilization: float
    reserve_bytes: int
    limits: EngineLimits


def engine_setup(
    engine: Engine, arch: Architecture, *, tp: int, gpu_memory_bytes: int, utilization: float | None = None,
    reserve_bytes: int | None = None, speculation: Speculation | None = None, prefix_cache_hit_rate: float = 0.0,
    prompt_length_cv: float = 0.0, prefix_read_bytes_per_s: float | None = None,
) -> EngineSetup:  # fmt: skip
    """``engine``'s defaults (:mod:`service.core.engines`) for a replica of ``tp`` GPUs; a given
    ``utilization`` or ``reserve_bytes`` replaces the engine's; speculative decoding and the prefix
    cache's hit rate as the request enables them (:mod:`service.core.speculative`), the prompts'
    spread in length and where cached prefixes are read from (:class:`~service.core.serving.EngineLimits`)."""
    p = engine_profile(engine, tp=tp, gpu_memory_bytes=gpu_memory_bytes)
    limits = EngineLimits(kv_fraction_of_free=p.memory_fraction if p.fraction_of_free else None, max_num_seqs=p.max_num_seqs,
                          layer_overhead_seconds=p.layer_overhead_seconds, host_overhead_seconds=p.host_overhead_seconds,
                          speculation=speculation, prefix_cache_hit_rate=prefix_cache_hit_rate,
                          prompt_length_cv=prompt_length_cv, prefix_read_bytes_per_s=prefix_read_bytes_per_s)  # fmt: skip
    return EngineSetup(
        profile=p,
        utilization=p.memory_fraction if utilization is None else utilization,
        reserve_bytes=runtime_reserve_bytes(p, arch, tp=tp) if reserve_bytes is None else reserve_bytes,
        limits=limits,
    )


def workload(
    arch: Architecture, hw: Hardware, r: Replica, *, setup: EngineSetup, prompt_tokens: int, output_tokens: int
) -> Workload:  # fmt: skip
    """The replica ``r`` as the queueing model sees it: its prefill, its decode step at any batch
    (at the mean context, with the engine's per-step overhead), the engine's token budget and the
    most sequences it decodes at once (``r.batch``: the KV cache's and ``max_num_seqs``'s limit)."""
    context = prompt_tokens + output_tokens / 2

    kept: dict[float, float] = {}  # a closed loop asks the same batch at every bisection step

    def step(batch: float) -> float:
        if batch not in kept:
            seconds, _ = ep_step_seconds(arch, hw, r, batch=batch, context_tokens=context, limits=setup.limits)
            kept[batch] = float(seconds)
        return kept[batch]

    return Workload(prompt_tokens=prompt_tokens, output_tokens=output_tokens, prefill_seconds=r.prefill_seconds, step_seconds=step,
                    token_budget=setup.profile.token_budget, max_batch=max(1, r.batch), ranks=r.ep or 1,
                    prompt_seconds=r.prompt_seconds, length_cv=setup.limits.prompt_length_cv)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadPoint:
    """A replica at a load: means, and the p99 of the time to first token."""

    requests_per_second: float  # the replica's throughput
    batch: float  # mean sequences decoding at once
    time_to_first_token_seconds: float
    p99_time_to_first_token_seconds: float
    time_per_output_token_seconds: float
    latency_seconds: float  # arrival to last token
    output_tokens_per_second: float  # the replica's
    prefill_share: float  # of the replica's time spent on prompts
    stable: bool
    reason: str | None


def decay_rate(rho: float) -> float:
    """The positive root x of ``rho * (exp(x) - 1) = x`` (x = theta * D, the tail's decay rate
    times the service time), for 0 < rho < 1. The left side less the right is convex with one
    positive root, so Newton's method from a point past it falls to it monotonically: the lesser
    of ``2 (1 - rho) / rho`` (where ``rho (x + x^2/2)``, below the left side, already equals x) and
    ``2 ln(1/rho) + 2`` taken twice through ``x -> ln(1 + x/rho)`` (which maps points past the root
    to points past it, nearer), a few steps to machine precision."""
    far = 2 * math.log(1 / rho) + 2
    x = min(2 * (1 - rho) / rho, math.log1p(math.log1p(far / rho) / rho))
    for _ in range(100):
        step = (rho * math.expm1(x) - x) / (rho * math.exp(x) - 1)
        x -= step
        if step <= 1e-13 * x:
            break
    return x


def queue_wait(rate: float, service_seconds: float, service_cv: float = 0.0) -> tuple[float, float]:
    """Mean and p99 wait of an M/D/1 queue (module docstring), or with ``service_cv`` > 0 of an
    M/G/1 queue whose service times are gamma-distributed with that coefficient of variation (prompts
    of varied length take slots in proportion to their tokens): the mean is Pollaczek-Khinchine's
    ``rho * D * (1 + cv^2) / (2 (1 - rho))`` and the tail's ``theta`` solves ``lam (M(theta) - 1) =
    theta`` with ``M(theta) = (1 - theta D / k)^-k``, ``k = 1 / cv^2``, and ``C = (1 - rho) / (lam
    M'(theta) - 1)`` (Asmussen 2003, XIII.5; ``k`` 1 is M/M/1's ``theta D = 1 - rho``). ``inf``
    when ``rho >= 1``."""
    rho = rate * service_seconds
    if rho <= 0:
        return 0.0, 0.0
    if rho >= 1:
        return math.inf, math.inf
    mean = rho * service_seconds * (1 + service_cv**2) / (2 * (1 - rho))
    if service_cv:
        k = 1 / service_cv**2
        x = _gamma_decay_rate(rho, k)
        slope = rho * (1 - x / k) ** -(k + 1)  # lam M'(theta), M' = D (1 - theta D / k)^-(k+1)
    else:
        x = decay_rate(rho)
        slope = rho * math.exp(x)
    theta = x / service_seconds
    c = (1 - rho) / (slope - 1)
    p99 = math.log(c / P99) / theta if c > P99 else 0.0
    return mean, max(p99, 0.0)


def _gamma_decay_rate(rho: float, k: float) -> float:
    """The root x in (0, k) of ``rho ((1 - x/k)^-k - 1) = x`` (x = theta * D for gamma service of
    shape ``k``): the left side less the right is convex, negative just above 0 and unbounded at k,
    so bisection holds it."""
    lo, hi = 0.0, k
    for _ in range(200):
        mid = (lo + hi) / 2
        if rho * ((1 - mid / k) ** -k - 1) - mid < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return (lo + hi) / 2


def chunk_steps(prompt_tokens: int, token_budget: int, batch: float) -> int:
    """Steps a prompt's chunks ride in: the budget less the decode tokens of the batch, at least
    one token a step."""
    if prompt_tokens == 0:
        return 0
    return math.ceil(prompt_tokens / max(1.0, token_budget - batch))


def _point(w: Workload, rate: float, batch: float, users: float | None) -> tuple[LoadPoint, float]:
    """One evaluation at an arrival ``rate`` and ``batch``; returns the point and the batch that
    Little's law gives back."""
    others = rate * (batch - 1) / batch if users is not None and batch >= 1 else rate  # closed: not its own
    busy = 1.0 if users is None or users > 1 else 0.0
    share = others * w.prefill_seconds
    if share >= 1:
        return _unstable(rate, batch, "prompts alone need more than the replica's time"), batch
    step = w.step_seconds(max(batch, 1.0))
    tpot = step / (1 - share)
    free = max(1.0, w.token_budget - batch / w.ranks)  # each rank's budget less its own decodes
    service = tpot * w.prompt_tokens / (free * w.ranks) if w.prompt_tokens else 0.0
    wait, wait_p99 = queue_wait(rate, service, w.length_cv) if busy else (0.0, 0.0)
    if math.isinf(wait):
        return _unstable(rate, batch, "prompts arrive faster than the token budget admits them"), batch
    k = chunk_steps(w.prompt_tokens, w.token_budget, batch / w.ranks)
    prompt = w.prefill_seconds if w.prompt_seconds is None else w.prompt_seconds
    ttft = busy * tpot / 2 + wait + k * tpot + prompt
    ttft_p99 = busy * tpot + wait_p99 + k * tpot + prompt
    latency = ttft + (w.output_tokens - 1) * tpot
    point = LoadPoint(
        requests_per_second=rate, batch=batch, time_to_first_token_seconds=ttft, p99_time_to_first_token_seconds=ttft_p99,
        time_per_output_token_seconds=tpot, latency_seconds=latency, output_tokens_per_second=rate * w.output_tokens,
        prefill_share=rate * w.prefill_seconds, stable=True, reason=None,
    )  # fmt: skip
    decoding = rate * (w.output_tokens - 1 + k) * tpot  # Little's law over the steps a sequence is in the batch
    return point, decoding


def _unstable(rate: float, batch: float, why: str) -> LoadPoint:
    inf = math.inf
    return LoadPoint(requests_per_second=rate, batch=batch, time_to_first_token_seconds=inf, p99_time_to_first_token_seconds=inf,
                     time_per_output_token_seconds=inf, latency_seconds=inf, output_tokens_per_second=0.0, prefill_share=inf,
                     stable=False, reason=why)  # fmt: skip


def open_loop(w: Workload, rate: float) -> LoadPoint:
    """The replica under Poisson arrivals at ``rate`` requests per second: the batch and the
    latencies solved together (module docstring); not stable when the prompts need the whole
    replica, the token budget cannot admit them, or the batch exceeds ``max_batch``."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    batch = 1.0
    point = _unstable(rate, batch, "no fixed point")
    for _ in range(FIXED_POINT_ITERATIONS):
        point, implied = _point(w, rate, batch, None)
        if not point.stable:
            return point
        implied = max(implied, 1.0)
        if implied > w.max_batch * 1.5:
            break
        if abs(implied - batch) <= 1e-4 * batch:
            batch = implied
            break
        batch = 0.5 * (batch + implied)
    if batch > w.max_batch:
        return _unstable(rate, batch, f"{batch:.0f} sequences would decode at once; the replica holds {w.max_batch}")
    return point


def closed_loop(w: Workload, users: int) -> LoadPoint:
    """The replica with ``users`` sequences in flight and no think time: those the KV cache holds
    decode at once; the rest wait for a slot (module docstring). Where the replica's GPU time bounds
    the throughput, the sequences it holds wait for it before their first token, so that throughput
    times latency is the sequences in flight (Little's law)."""
    if users < 1:
        raise ValueError("users must be at least 1")
    batch = float(min(users, w.max_batch))
    # the throughput where rate = batch / latency(rate): latency grows with the rate (the others'
    # prompts stretch every step), so bisect between nothing and the GPU-time bound
    lo, hi = 0.0, 1.0 / max(w.prefill_seconds + w.output_tokens * w.step_seconds(batch) / batch, 1e-12)
    point: LoadPoint | None = None
    # g(rate) = rate * latency(rate) - batch rises with the rate: regula falsi with the Illinois
    # halving (Dowell & Jarratt 1971) where both ends are stable, bisection where the upper is not
    g_lo, g_hi, kept = -float(batch), None, 0
    top, _ = _point(w, hi * (1 - 1e-7), batch, float(users))
    if top.stable and hi * (1 - 1e-7) * top.latency_seconds <= batch:  # saturated: the GPU-time bound itself
        lo, point = hi, top
    for _ in range(FIXED_POINT_ITERATIONS if lo < hi else 0):
        mid = (lo + hi) / 2 if g_hi is None else lo - g_lo * (hi - lo) / (g_hi - g_lo)
        trial, _ = _point(w, mid, batch, float(users))
        g = mid * trial.latency_seconds - batch if trial.stable else None
        if g is not None and g <= 0:
            lo, g_lo, point = mid, g, trial
            kept = kept + 1 if kept >= 0 else 1
            if kept >= 2 and g_hi is not None:
                g_hi /= 2  # the upper end held twice: halve its weight
        else:
            hi, g_hi = mid, g
            kept = kept - 1 if kept <= 0 else -1
            if kept <= -2:
                g_lo /= 2
        if hi - lo <= 1e-6 * hi or (g is not None and abs(g) <= 1e-9 * batch):
            break
    wait = 0.0
    if point is None:  # not even a trickle meets the fixed point's condition: the trickle's numbers
        point = _point(w, hi * 1e-9, batch, float(users))[0]
    else:  # saturated at the GPU-time bound, the sequences in flight wait for it: Little's law, batch = rate * latency
        wait = max(0.0, batch / point.requests_per_second - point.latency_seconds)
    if users > w.max_batch:
        wait += (users - w.max_batch) / point.requests_per_second  # Little's law over the users waiting for a slot
    if not wait:
        return point
    return LoadPoint(
        requests_per_second=point.requests_per_second, batch=point.batch,
        time_to_first_token_seconds=point.time_to_first_token_seconds + wait,
        p99_time_to_first_token_seconds=point.p99_time_to_first_token_seconds + wait,
        time_per_output_token_seconds=point.time_per_output_token_seconds, latency_seconds=point.latency_seconds + wait,
        output_tokens_per_second=point.output_tokens_per_second, prefill_share=point.prefill_share, stable=True, reason=None,
    )  # fmt: skip


def max_rate(
    w: Workload,
    *,
    max_p99_time_to_first_token_seconds: float | None = None,
    max_time_per_output_token_seconds: float | None = None,
) -> LoadPoint | None:
    """The highest Poisson arrival rate the replica serves stably within the bounds (p99 TTFT,
    mean TPOT; MLPerf's server scenario), by bisection; None when even a trickle misses them."""

    def ok(p: LoadPoint) -> bool:
        return p.stable and (
            max_p99_time_to_first_token_seconds is None or p.p99_time_to_first_token_seconds <= max_p99_time_to_first_token_seconds
        ) and (max_time_per_output_token_seconds is None or p.time_per_output_token_seconds <= max_time_per_output_token_seconds)  # fmt: skip

    saturated = closed_loop(w, w.max_batch)
    hi = saturated.requests_per_second * 1.05 if saturated.stable else 1.0
    lo = hi * 1e-4
    best = open_loop(w, lo)
    if not ok(best):
        return None
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        p = open_loop(w, mid)
        if ok(p):
            lo, best = mid, p
        else:
            hi = mid
        if hi / lo < 1.002:
            break
    return best
