"""Disaggregated serving: prompts prefilled on one pool of replicas, their KV caches sent to a
second pool that only decodes (Zhong et al. 2024, "DistServe", §2-4; Patel et al. 2024,
"Splitwise", §4; DeepSeek-V3's deployment, DeepSeek-AI 2024 §3.4). Decode steps then carry no
prompt chunks, so the time per output token is the bare decode step; the first token waits for a
prefill replica, the prefill itself and the KV cache's transfer.

The pools are sized to each other at the request's arrival rate ``lambda``:

- **decode**: ``lambda * output_tokens * TPOT`` sequences in flight (Little's law), spread over
  the fewest replicas whose KV cache holds them;
- **prefill**: each replica an M/D/1 queue (Poisson arrivals, one prompt of fixed length at a
  time, as :mod:`service.core.serving_load` models the colocated wait) of ``prefill_seconds`` per
  prompt; the fewest replicas whose load stays at or under ``MAX_PREFILL_UTILIZATION``, and whose
  p99 wait meets the request's TTFT bound when it gives one;
- **transfer**: the prompt's KV cache over the prefill replica's links, each of its ``tp`` GPUs
  sending its shard at the slower pool's scale-out bandwidth (Mooncake, Qin et al. 2024 §4, and
  DistServe §4.3 move it over RDMA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.core.serving_load import queue_wait

# a stated bound: an M/D/1 queue waits rho / (2 (1 - rho)) service times on average (Pollaczek-Khinchine), 2 at 0.8
MAX_PREFILL_UTILIZATION = 0.8
MAX_POOL_REPLICAS = 1_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class PrefillPool:
    replicas: int
    utilization: float  # of each replica: arrivals per replica x prefill seconds
    wait_seconds: float  # mean queueing before a prefill starts
    p99_wait_seconds: float


def prefill_pool(
    rate: float, prefill_seconds: float, *, max_p99_wait_seconds: float | None = None, length_cv: float = 0.0
) -> PrefillPool | None:  # fmt: skip
    """The fewest prefill replicas for ``rate`` prompts per second (module docstring), prompts of
    varied length (``length_cv``) queueing as M/G/1 (:func:`service.core.serving_load.queue_wait`);
    None when no count under :data:`MAX_POOL_REPLICAS` meets the wait bound."""
    if rate <= 0 or prefill_seconds <= 0:
        return PrefillPool(replicas=1, utilization=0.0, wait_seconds=0.0, p99_wait_seconds=0.0)
    n = max(1, math.ceil(rate * prefill_seconds / MAX_PREFILL_UTILIZATION))
    while n <= MAX_POOL_REPLICAS:
        wait, p99 = queue_wait(rate / n, prefill_seconds, length_cv)
        if max_p99_wait_seconds is None or p99 <= max_p99_wait_seconds:
            return PrefillPool(replicas=n, utilization=rate / n * prefill_seconds, wait_seconds=wait, p99_wait_seconds=p99)
        n = max(n + 1, math.ceil(n * 1.05))
    return None


def kv_transfer_seconds(kv_bytes_per_sequence: int, *, prefill_tp: int, link_bytes_per_s: float) -> float:
    """One prompt's KV cache from the prefill replica to the decode replica, its ``prefill_tp``
    GPUs each sending a shard over its own scale-out link."""
    return kv_bytes_per_sequence / (prefill_tp * link_bytes_per_s)


def decode_replicas(in_flight: float, max_batch: int) -> tuple[int, int]:
    """Replicas for ``in_flight`` decoding sequences at most ``max_batch`` each, and the batch each
    then runs (spread evenly)."""
    replicas = max(1, math.ceil(in_flight / max_batch))
    return replicas, max(1, math.ceil(in_flight / replicas))
