"""What limits a serving replica's batch, in words: the memory each sequence holds (the attention
layers' KV cache, growing with the context, and the recurrent layers' state, fixed per sequence:
Gu & Dao 2023, "Mamba", §3.4; Peng et al. 2023, "RWKV", §4) against what the weights leave, and the
batch the load and the bounds take below it (:func:`service.core.serving.replica`)."""

from __future__ import annotations

from service.core.serving import Replica


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def batch_limit_reason(r: Replica, *, prompt_tokens: int, output_tokens: int) -> str:
    """Why ``r`` runs ``r.batch`` sequences: ``r.max_batch`` is what the memory left after the weights
    holds at ``kv_cache_bytes_per_sequence`` a sequence (its KV cache at prompt + output tokens plus
    its fixed state), and a smaller batch is the load's, the latency bounds' or the engine's
    ``max_num_seqs``."""
    tokens = prompt_tokens + output_tokens
    state = r.state_bytes_per_sequence
    kv = r.kv_cache_bytes_per_sequence - state
    parts = [f"{_gib(kv)} of attention KV cache, growing with the context"] if kv else []
    if state:
        parts.append(f"{_gib(state)} of recurrent state, the same at any context")
    held = f"each sequence of {tokens:,} tokens holds {_gib(r.kv_cache_bytes_per_sequence)} ({'; '.join(parts)})"
    limit = f"the memory the weights ({_gib(r.weights_bytes)}) leave holds {r.max_batch:,} a replica"
    if r.batch >= r.max_batch:
        return f"batch limited by memory: {held}; {limit}"
    return f"{held}; {limit}; batch {r.batch:,} below it: the load, the latency bounds or the engine's max_num_seqs"
