"""Disaggregated serving options: a prefill pool and a decode pool, of possibly different GPU
types, sized to each other at the request's load (:mod:`service.core.disaggregation`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from service.core import disaggregation as pools
from service.core import expert_serving as ep_core
from service.core import serving as core
from service.core import serving_load as load
from service.core.architecture import Architecture
from service.core.hardware import link_bandwidths
from service.core.memory import recurrent_state_dtype
from service.core.serving_reason import batch_limit_reason
from service.core.speculative import expected_tokens
from service.core.steptime import Hardware
from service.schemas import serving as s
from service.schemas.cost import PriceQuote

Candidates = Sequence[tuple[core.Replica, load.EngineSetup]]
FIXED_POINT_STEPS = 8  # the decode batch, its step time and the arrivals they admit: a few rounds


@dataclass(frozen=True)
class Pool:
    """One pool's GPU type as the plan sees it: its id, hardware, price and the replicas that can
    serve on it (one per tensor-parallel degree, with the engine's setup)."""

    gpu: str
    hw: Hardware
    price: PriceQuote | None
    candidates: Candidates


@dataclass(frozen=True)
class _Decode:
    full: core.Replica
    setup: load.EngineSetup
    max_batch: int  # the KV cache's, the engine's and the TPOT bound's limit


def _context(req: s.ServingPlanRequest) -> float:
    """The mean context a decode step reads: the prompt and half the output."""
    return req.prompt_tokens + req.output_tokens / 2


def _decode_step(arch: Architecture, pool: Pool, d: _Decode, batch: float, req: s.ServingPlanRequest) -> tuple[float, bool]:
    """A decode step per output token at ``batch`` with no prompt chunks (the prompts are
    prefilled elsewhere), and whether memory bounds it."""
    step, bound = ep_core.ep_step_seconds(arch, pool.hw, d.full, batch=batch, context_tokens=_context(req),
                                          limits=d.setup.limits)  # fmt: skip
    return float(step), bool(bound)


def _decoders(arch: Architecture, pool: Pool, req: s.ServingPlanRequest) -> list[_Decode]:
    """Each decode degree with the largest batch it may run: the KV cache's, at most the engine's
    sequences, lowered to meet the TPOT bound."""
    out = []
    for full, setup in pool.candidates:
        cap = max(1, min(full.max_batch, setup.limits.max_num_seqs or full.max_batch))
        if req.max_time_per_output_token_seconds is not None:
            sizes = np.arange(1, cap + 1)
            steps, _ = ep_core.ep_step_seconds(
                arch, pool.hw, full, batch=sizes, context_tokens=_context(req), limits=setup.limits
            )
            ok = np.flatnonzero(steps <= req.max_time_per_output_token_seconds)
            if not len(ok):
                continue
            cap = int(sizes[ok[-1]])
        out.append(_Decode(full, setup, cap))
    return out


def _prefiller(pool: Pool) -> core.Replica:
    """The prefill degree with the fewest GPU-seconds per prompt (the smaller on a tie)."""
    return min((r for r, _ in pool.candidates), key=lambda r: (r.n_gpus * r.prefill_seconds, r.n_gpus))


@dataclass(frozen=True)
class _Plan:
    decode: _Decode
    decode_replicas: int
    batch: int
    tpot: float
    bound: bool
    rate: float  # requests per second over the fleet
    prefill: pools.PrefillPool
    transfer: float
    ttft: float
    p99_ttft: float


def _at_load(
    arch: Architecture, pre: Pool, dec: Pool, d: _Decode, prefill: core.Replica, req: s.ServingPlanRequest
) -> _Plan | str:
    """The pools for decode degree ``d`` at the request's load: a fixed point of the decode batch,
    its step, the arrival rate and the time to first token (module docstring of
    :mod:`service.core.disaggregation`)."""
    out = req.output_tokens
    link = min(link_bandwidths(pre.hw)[1], link_bandwidths(dec.hw)[1])
    kv = core.replica_kv_cache_bytes(arch, tp=prefill.tp, seq_len=req.prompt_tokens, kv_dtype=req.kv_dtype,
                                     state_dtype=recurrent_state_dtype(req.weights_dtype))  # fmt: skip
    transfer = pools.kv_transfer_seconds(kv, prefill_tp=prefill.tp, link_bytes_per_s=link) if req.prompt_tokens else 0.0
    prompt = _prompt_seconds(prefill)
    ttft: float | None = None  # the first round's guess: no wait for a prefill replica
    plan: _Plan | str = "no fixed point"
    for _ in range(FIXED_POINT_STEPS):
        if req.concurrent_users is not None:
            in_flight = float(req.concurrent_users)
        elif req.requests_per_second is not None or req.tokens_per_second is not None:
            rate = req.requests_per_second or req.tokens_per_second / out
            tpot_guess = plan.tpot if isinstance(plan, _Plan) else _decode_step(arch, dec, d, d.max_batch, req)[0]
            in_flight = rate * (out - 1) * tpot_guess
        else:
            in_flight = float(d.max_batch)  # one decode replica, full
        replicas, batch = pools.decode_replicas(in_flight, d.max_batch)
        tpot, bound = _decode_step(arch, dec, d, batch, req)
        guess = prompt + transfer + tpot if ttft is None else ttft  # a first token takes a decode step after the prefill
        rate = (req.requests_per_second or (req.tokens_per_second or 0) / out) or in_flight / (guess + (out - 1) * tpot)
        budget = None
        if req.max_time_to_first_token_seconds is not None:
            budget = req.max_time_to_first_token_seconds - prompt - transfer - tpot
            if budget < 0:
                return f"a prompt's prefill and KV transfer alone take longer than {req.max_time_to_first_token_seconds:g} s"
        pool = pools.prefill_pool(rate, prefill.prefill_seconds, max_p99_wait_seconds=budget, length_cv=req.prompt_length_cv)
        if pool is None:
            return "no prefill pool meets the time-to-first-token bound"
        new_ttft = pool.wait_seconds + prompt + transfer + tpot
        plan = _Plan(d, replicas, batch, tpot, bound, rate, pool, transfer, new_ttft,
                     pool.p99_wait_seconds + prompt + transfer + tpot)  # fmt: skip
        if ttft is not None and abs(new_ttft - ttft) <= 1e-9 * new_ttft:
            break
        ttft = new_ttft
    return plan


def _prompt_seconds(r: core.Replica) -> float:
    """One prompt's prefill as its request waits for it: on one GPU of an expert-parallel unit
    (whose ``prefill_seconds`` is the unit's time per prompt), else the replica's."""
    return r.prefill_seconds if r.prompt_seconds is None else r.prompt_seconds


def _usd_per_second(plan: _Plan, prefill: core.Replica, pre: Pool, dec: Pool) -> tuple[float | None, float | None]:
    """Each pool's dollars per second (None without a price)."""
    p = None if pre.price is None else plan.prefill.replicas * prefill.n_gpus * pre.price.usd_per_gpu_hour / core.SECONDS_PER_HOUR
    d = (
        None
        if dec.price is None
        else plan.decode_replicas * plan.decode.full.n_gpus * dec.price.usd_per_gpu_hour / core.SECONDS_PER_HOUR
    )
    return p, d


def disaggregated_option(arch: Architecture, pre: Pool, dec: Pool, req: s.ServingPlanRequest) -> s.ServingOption | str:
    """The decode degree (and pools) of least dollars per output token at the load, or why none serves."""
    if not pre.candidates:
        return f"no prefill replica of {pre.gpu} holds the weights"
    prefill = _prefiller(pre)
    best: tuple[float, int, _Plan] | None = None
    why = f"no decode replica of {dec.gpu} meets the time-per-output-token bound"
    for d in _decoders(arch, dec, req):
        plan = _at_load(arch, pre, dec, d, prefill, req)
        if isinstance(plan, str):
            why = plan
            continue
        p_usd, d_usd = _usd_per_second(plan, prefill, pre, dec)
        gpus = plan.prefill.replicas * prefill.n_gpus + plan.decode_replicas * d.full.n_gpus
        key = ((p_usd or 0) + (d_usd or 0)) / (plan.rate * req.output_tokens) if p_usd is not None and d_usd is not None else gpus
        if best is None or (key, d.full.n_gpus) < (best[0], best[1]):
            best = (key, d.full.n_gpus, plan)
    if best is None:
        return why
    return _option(best[2], prefill, pre, dec, req)


def _option(plan: _Plan, prefill: core.Replica, pre: Pool, dec: Pool, req: s.ServingPlanRequest) -> s.ServingOption:
    full, out = plan.decode.full, req.output_tokens
    p_usd, d_usd = _usd_per_second(plan, prefill, pre, dec)
    tokens_per_s = plan.rate * out
    n_prefill = plan.prefill.replicas * prefill.n_gpus
    parts = s.DisaggregatedParts(
        prefill=s.PoolPart(gpu=pre.gpu, tp=prefill.tp, ep=prefill.ep, dp_attention=prefill.dp_attention,
                           replicas=plan.prefill.replicas, n_gpus=n_prefill, utilization=plan.prefill.utilization,
                           seconds_per_request=_prompt_seconds(prefill),
                           usd_per_hour=None if p_usd is None else p_usd * core.SECONDS_PER_HOUR),
        decode=s.PoolPart(gpu=dec.gpu, tp=full.tp, ep=full.ep, dp_attention=full.dp_attention, replicas=plan.decode_replicas,
                          n_gpus=plan.decode_replicas * full.n_gpus,
                          utilization=min(1.0, plan.batch / plan.decode.max_batch), seconds_per_request=(out - 1) * plan.tpot,
                          usd_per_hour=None if d_usd is None else d_usd * core.SECONDS_PER_HOUR),
        kv_transfer_seconds=plan.transfer, prefill_wait_seconds=plan.prefill.wait_seconds,
    )  # fmt: skip
    return s.ServingOption(
        gpu=dec.gpu, fits=True, tp=full.tp,
        reason=batch_limit_reason(replace(full, batch=plan.batch, max_batch=plan.decode.max_batch),
                                  prompt_tokens=req.prompt_tokens, output_tokens=out), ep=full.ep, dp_attention=full.dp_attention, replicas=plan.decode_replicas,
        n_gpus=plan.decode_replicas * full.n_gpus + n_prefill, max_batch_per_replica=plan.decode.max_batch, batch_per_replica=plan.batch,
        usable_memory_bytes=full.usable_memory_bytes, weights_bytes=full.weights_bytes,
        kv_cache_bytes_per_token=full.kv_cache_bytes_per_token, kv_cache_bytes_per_sequence=full.kv_cache_bytes_per_sequence,
        state_cache_bytes_per_sequence=full.state_bytes_per_sequence or None, time_to_first_token_seconds=plan.ttft, p99_time_to_first_token_seconds=plan.p99_ttft,
        time_per_output_token_seconds=plan.tpot, latency_seconds=plan.ttft + (out - 1) * plan.tpot,
        requests_per_second_per_replica=plan.rate / plan.decode_replicas, decode_bound="memory" if plan.bound else "compute",
        speculative_tokens_per_step=None if req.speculative is None
        else expected_tokens(req.speculative.acceptance_rate, req.speculative.tokens),
        output_tokens_per_second_per_user=1 / plan.tpot, output_tokens_per_second_per_replica=plan.batch / plan.tpot,
        output_tokens_per_second=tokens_per_s,
        usd_per_hour=None if p_usd is None or d_usd is None else (p_usd + d_usd) * core.SECONDS_PER_HOUR,
        usd_per_million_output_tokens=None if d_usd is None else d_usd / tokens_per_s * 1e6,
        usd_per_million_input_tokens=None if p_usd is None or not req.prompt_tokens else p_usd / (plan.rate * req.prompt_tokens) * 1e6,
        price=dec.price, disaggregated=parts,
    )  # fmt: skip


def transfer_note() -> str:
    return ("disaggregated: prompts prefilled on their own pool (the degree of fewest GPU-seconds per prompt, M/D/1 per replica "
            f"at most {pools.MAX_PREFILL_UTILIZATION:.0%} busy, more when the p99 TTFT bound asks), their KV cache sent over the "
            "slower pool's scale-out links, decode steps with no prompt chunks (DistServe, Zhong et al. 2024; Splitwise, "
            "Patel et al. 2024); input tokens pay the prefill pool, output tokens the decode pool")  # fmt: skip
