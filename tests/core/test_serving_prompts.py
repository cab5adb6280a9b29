"""The prompts' spread in length and a prefix cache kept off the GPUs, for tensor-parallel replicas
(the expert-parallel units' own tests: ``tests/core/test_expert_serving.py``)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from service.core.compute import attention_score_flops_per_token
from service.core.dtypes import Dtype
from service.core.memory import kv_cache_bytes
from service.core.serving import (
    DEFAULT_LIMITS,
    attention_peak_flops_per_s,
    prefill_seconds,
    prefix_read_seconds,
    prompt_prefill_seconds,
    replica,
    weight_bytes,
)
from service.core.speculative import cached_prefix_tokens
from tests.core.helpers import hardware, preset

LLAMA_70B = preset("llama-3.1-70b")
H100 = hardware("h100-sxm")


def test_exponential_prompt_lengths_double_the_mean_prompts_attention_core() -> None:
    # E[L^2] = (1 + cv^2) E[L]^2: at cv 1 the core is one more mean-length prompt's core; the matmuls stay linear
    n, tp = 8000, 4
    fraction, _ = H100.kernels.attention_fractions(n, LLAMA_70B.d_head)
    core = attention_score_flops_per_token(LLAMA_70B, n, causal=True) * n / tp / (H100.peak_flops_per_s * fraction)
    one = prefill_seconds(LLAMA_70B, H100, tp=tp, prompt_tokens=n)
    spread = prefill_seconds(LLAMA_70B, H100, tp=tp, prompt_tokens=n, length_cv=1.0)
    assert spread - one == pytest.approx(core, rel=1e-9)
    half = prefill_seconds(LLAMA_70B, H100, tp=tp, prompt_tokens=n, length_cv=0.5)
    assert half - one == pytest.approx(0.25 * core, rel=1e-9)
    assert 0.05 < core / one < 0.5  # at 8K the core is a minor share of a 70B prefill


def test_a_prefix_read_from_storage_is_shared_by_the_nodes_replicas() -> None:
    # 8 GPUs a node, TP 2: four replicas read their prompts' prefixes at once, each at a quarter of the node's rate
    per_token = kv_cache_bytes(LLAMA_70B, seq_len=1, batch_size=1, kv_dtype=Dtype.BF16)
    assert per_token == 2 * 80 * 8 * 128 * 2
    rate = 40 * 2**30  # DeepSeek's 3FS KVCache clients, one 400 Gbps NIC a node
    kept = dataclasses.replace(DEFAULT_LIMITS, prefix_cache_hit_rate=0.5)
    read = dataclasses.replace(kept, prefix_read_bytes_per_s=rate)
    given = {"tp": 2, "prompt_tokens": 6000, "kv_bytes_per_token": per_token}
    cached = cached_prefix_tokens(6000, 0.5)
    extra = prompt_prefill_seconds(LLAMA_70B, H100, limits=read, **given) - prompt_prefill_seconds(
        LLAMA_70B, H100, limits=kept, **given
    )
    assert extra == pytest.approx(cached * per_token * 4 / rate, rel=1e-9)
    assert extra == prefix_read_seconds(cached, per_token, rate, 4)
    # no hits, nothing read; the rate alone changes nothing
    none = dataclasses.replace(DEFAULT_LIMITS, prefix_read_bytes_per_s=rate)
    assert prompt_prefill_seconds(LLAMA_70B, H100, limits=none, **given) == prompt_prefill_seconds(
        LLAMA_70B, H100, limits=DEFAULT_LIMITS, **given
    )


def test_a_replica_carries_the_spread_into_its_time_to_first_token() -> None:
    weights = weight_bytes(LLAMA_70B, Dtype.FP8)
    given = {"tp": 2, "weights": weights, "kv_dtype": Dtype.FP8, "prompt_tokens": 5000, "output_tokens": 500, "batch": 16}
    flat = replica(LLAMA_70B, H100, limits=DEFAULT_LIMITS, **given)
    spread = replica(LLAMA_70B, H100, limits=dataclasses.replace(DEFAULT_LIMITS, prompt_length_cv=1.0), **given)
    core = attention_score_flops_per_token(LLAMA_70B, 5000, causal=True) * 5000 / 2
    fraction, _ = H100.kernels.attention_fractions(5000, LLAMA_70B.d_head)
    assert spread.prefill_seconds - flat.prefill_seconds == pytest.approx(
        core / (attention_peak_flops_per_s(H100, Dtype.FP8) * fraction), rel=1e-9
    )
    assert spread.time_to_first_token_seconds > flat.time_to_first_token_seconds
    assert spread.kv_cache_bytes_per_sequence == flat.kv_cache_bytes_per_sequence  # the cache is sized at the mean


def test_a_sliding_window_layers_core_grows_linearly_past_its_window() -> None:
    # exponential prompt lengths (cv 1) of mean n over a window w: E[g(L)] = E[L^2]/2 - E[(L-w)+^2]/2 =
    # n^2 (1 - exp(-w/n)) for g(L) = L^2/2 up to w and w L - w^2/2 beyond; one prompt of n costs w n - w^2/2
    from service.core.compute import prompt_attention_flops

    mistral = preset("mistral-7b")
    n, w = 12_000, float(mistral.sliding_window)
    assert mistral.global_layers == 0 and mistral.local_layers == mistral.n_layers
    expected = n * n * (1 - math.exp(-w / n)) / (w * n - w * w / 2)
    assert prompt_attention_flops(mistral, n, 1.0) / prompt_attention_flops(mistral, n, 0.0) == pytest.approx(expected, rel=2e-3)
    llama = preset("llama-3.1-70b")  # global attention only: exactly 1 + cv^2
    assert prompt_attention_flops(llama, n, 1.0) == pytest.approx(2 * prompt_attention_flops(llama, n, 0.0), rel=1e-12)
    assert prompt_attention_flops(llama, n, 0.5) == pytest.approx(1.25 * prompt_attention_flops(llama, n, 0.0), rel=1e-12)
