"""Which replica serves: the tensor-parallel degrees that can, the one with the most tokens per
GPU at saturation, and the cheapest fleet at the user's load (:mod:`service.core.serving` for a
replica's memory and times)."""

from __future__ import annotations

import math
from collections.abc import Callable

from service.core.architecture import Architecture
from service.core.dtypes import Dtype
from service.core.serving import (
    DEFAULT_LIMITS,
    GPU_MEMORY_UTILIZATION,
    RUNTIME_RESERVE_BYTES,
    EngineLimits,
    Replica,
    Weights,
    replica,
    valid_tensor_parallel,
)
from service.core.steptime import Hardware


def replica_candidates(
    arch: Architecture, hw: Hardware, *, weights: Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    tp: int | None = None, max_time_to_first_token_seconds: float | None = None,
    max_time_per_output_token_seconds: float | None = None, utilization: float = GPU_MEMORY_UTILIZATION,
    reserve_bytes: int = RUNTIME_RESERVE_BYTES, limits: EngineLimits = DEFAULT_LIMITS,
) -> list[Replica] | str:  # fmt: skip
    """The replicas that can serve, one per tensor-parallel degree (``tp``, or every valid one in
    a node) whose usable memory holds the weights and a sequence and that meets the latency
    bounds, each at its largest batch; a string says why none qualifies."""
    candidates: list[Replica] = []
    why = "no tensor-parallel degree inside a node divides the heads"
    for degree in [tp] if tp is not None else valid_tensor_parallel(arch, hw.gpus_per_node):
        r = replica(arch, hw, tp=degree, weights=weights, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                    max_time_per_output_token_seconds=max_time_per_output_token_seconds, utilization=utilization,
                    reserve_bytes=reserve_bytes, limits=limits)  # fmt: skip
        if r.max_batch == 0:
            why = (f"at tp={degree} the weights ({weights.total_bytes / 2**30:.1f} GiB) and one sequence's KV cache "
                   f"({r.kv_cache_bytes_per_sequence / 2**30:.2f} GiB) exceed the {r.usable_memory_bytes / 2**30:.1f} GiB usable")  # fmt: skip
            continue
        if max_time_to_first_token_seconds is not None and r.time_to_first_token_seconds > max_time_to_first_token_seconds:
            why = f"at tp={degree} the first token takes {r.time_to_first_token_seconds:.3f} s"
            continue
        if max_time_per_output_token_seconds is not None and r.time_per_output_token_seconds > max_time_per_output_token_seconds:
            why = f"at tp={degree} even one sequence takes {r.time_per_output_token_seconds * 1e3:.1f} ms per output token"
            continue
        candidates.append(r)
    return candidates or why


def choose_replica(
    arch: Architecture, hw: Hardware, *, weights: Weights, kv_dtype: Dtype, prompt_tokens: int, output_tokens: int,
    tp: int | None = None, max_time_to_first_token_seconds: float | None = None,
    max_time_per_output_token_seconds: float | None = None, utilization: float = GPU_MEMORY_UTILIZATION,
    reserve_bytes: int = RUNTIME_RESERVE_BYTES, limits: EngineLimits = DEFAULT_LIMITS,
) -> Replica | str:  # fmt: skip
    """The replica to serve with at saturation: of :func:`replica_candidates`, the one with the
    most output tokens per second per GPU at its largest batch — the cheapest per token when
    every replica runs full; the smaller degree on a tie. A string says why none qualifies."""
    candidates = replica_candidates(
        arch, hw, weights=weights, kv_dtype=kv_dtype, prompt_tokens=prompt_tokens, output_tokens=output_tokens, tp=tp,
        max_time_to_first_token_seconds=max_time_to_first_token_seconds,
        max_time_per_output_token_seconds=max_time_per_output_token_seconds, utilization=utilization, reserve_bytes=reserve_bytes,
        limits=limits,
    )  # fmt: skip
    if isinstance(candidates, str):
        return candidates
    return most_per_gpu(candidates)


def most_per_gpu(candidates: list[Replica]) -> Replica:
    """The replica with the most output tokens per second per GPU at its batch; the smaller degree
    on a tie."""
    return max(candidates, key=lambda r: (r.output_tokens_per_second / r.n_gpus, -r.n_gpus))


def at_load(full: Replica, users: int) -> tuple[int, int]:
    """Replicas of ``full``'s degree that serve ``users`` concurrent sequences, and the batch each
    then runs (the users spread evenly; at most the replica's largest batch)."""
    replicas = math.ceil(users / full.batch)
    return replicas, math.ceil(users / replicas)


def cheapest_at_load(candidates: list[Replica], users: int, rerun: Callable[[Replica, int], Replica]) -> tuple[Replica, int]:
    """Of the replicas that can serve, the one whose fleet serves ``users`` concurrent sequences at
    the least cost per output token — the fewest GPU-seconds per token, ``tp * replicas / (replicas
    * tokens/s at the batch the load gives each replica)`` — with the smaller degree on a tie; it
    is rerun at that batch (``rerun(full, batch)``). At low load a small degree that is not full
    is cheaper than a larger one that would be faster at saturation; at saturation this is
    :func:`choose_replica`'s rule. Returns the replica at the load and how many of it."""
    best: tuple[float, int, Replica, int] | None = None
    for full in candidates:
        replicas, batch = at_load(full, users)
        loaded = rerun(full, batch)
        gpu_seconds_per_token = full.n_gpus / loaded.output_tokens_per_second
        if best is None or (gpu_seconds_per_token, full.n_gpus) < (best[0], best[1]):
            best = (gpu_seconds_per_token, full.n_gpus, loaded, replicas)
    assert best is not None, "at least one candidate"
    return best[2], best[3]
