"""Latency under load and the engine model against the serving rows of the calibration sheet.

Bars (the issue's): MLPerf Inference v4.1 Llama-2-70B offline and server tokens/s within 15 %; the
NVIDIA NIM table's time per output token within 10 % at every concurrency it lists and time to
first token within 25 %. Both sources run TensorRT-LLM with FP8 weights and KV cache, so both use
``engine="trtllm"``. One constant is fitted, on one of these rows:
``service.core.engines.LAYER_OVERHEAD_SECONDS`` (60 us per layer) on the NIM row at concurrency 1;
every other row is a prediction.
"""

from __future__ import annotations

import math

import pytest

from service.core import serving_load as load
from service.core.dtypes import Dtype
from service.core.engines import LAYER_OVERHEAD_SECONDS, Engine, engine_profile, runtime_reserve_bytes
from service.core.serving import ROOFLINE, replica, weight_bytes
from tests.core.helpers import hardware, preset
from validation.serving import trtllm_workload

MLPERF_BAR, TPOT_BAR, TTFT_BAR = 0.15, 0.10, 0.25


def fp8_hardware(gpu_id: str):
    from service.catalog import loader

    return hardware(gpu_id, peak_flops_per_s=loader.gpus()[gpu_id]["peak_tflops"]["fp8"] * 1e12)


def trtllm(model: str, gpu_id: str, *, prompt: int, output: int, tp: int | None = None):
    """TensorRT-LLM's replica degree and workload, as ACCURACY.md computes them."""
    return trtllm_workload(model, gpu_id, prompt, output, tp)


# MLPerf Inference v4.1, closed division, NVIDIA, TensorRT-LLM, Llama-2-70B (99.9 % accuracy, FP8).
# Offline: tokens/s with every sample queued; server: Poisson arrivals within TTFT p99 <= 2 s and
# TPOT <= 200 ms. OpenOrca: mean ~294 input and ~294 output tokens per sample (the reference's
# mean output, 294.45 tokens, is the accuracy check's TOKENS_PER_SAMPLE; the input mean is assumed
# equal). CALIBRATION.md, "Serving".
MLPERF = {"h100-sxm": (24_525, 21_606, 0.461, 0.155), "h200-sxm": (31_303, 29_228, 0.453, 0.123)}
MLPERF_TOKENS = {"prompt": 294, "output": 294}


@pytest.mark.parametrize("gpu_id", sorted(MLPERF))
def test_mlperf_llama_2_70b_offline_and_server(gpu_id: str) -> None:
    offline_published, server_published, _ttft_p99, _tpot = MLPERF[gpu_id]
    tp, w = trtllm("llama-2-70b", gpu_id, **MLPERF_TOKENS)
    # 80 GB cannot hold 70 GB of FP8 weights and a useful cache on one GPU; 141 GB can
    assert tp == {"h100-sxm": 2, "h200-sxm": 1}[gpu_id]
    replicas = 8 // tp
    offline = load.closed_loop(w, w.max_batch).output_tokens_per_second * replicas
    assert offline == pytest.approx(offline_published, rel=MLPERF_BAR)
    server = load.max_rate(w, max_p99_time_to_first_token_seconds=2.0, max_time_per_output_token_seconds=0.2)
    assert server is not None
    assert server.output_tokens_per_second * replicas == pytest.approx(server_published, rel=MLPERF_BAR)
    assert server.p99_time_to_first_token_seconds <= 2.0 and server.time_per_output_token_seconds <= 0.2


def test_mlperf_h100_server_latencies_are_those_published() -> None:
    # not a bar of the issue, a check of the mechanism: at the server rate the mean TPOT is the
    # published 155 ms (the KV cache, not the 200 ms bound, limits the batch) and the p99 TTFT is
    # under the published 461 ms by a quarter (the M/D/1 tail of a mean step's wait)
    _, w = trtllm("llama-2-70b", "h100-sxm", **MLPERF_TOKENS)
    server = load.max_rate(w, max_p99_time_to_first_token_seconds=2.0, max_time_per_output_token_seconds=0.2)
    assert server is not None
    assert server.time_per_output_token_seconds == pytest.approx(0.155, rel=0.10)
    assert server.p99_time_to_first_token_seconds == pytest.approx(0.461, rel=0.35)


# NVIDIA NIM LLM benchmarking guide 1.0.0, "Performance": Llama-3.3-70B-Instruct, NIM 1.8.0
# (TensorRT-LLM), FP8, TP2 on 2 x H100 80GB, 5,000 input / 500 output tokens: ITL 18.58 ms at
# concurrency 1, 38.75 at 25, 59.73 at 50, ~93 from 100 on (~920 tokens/s); TTFT 406.77 ms at 1;
# 500 input / 2,000 output: TTFT 47.77 ms at 1. (tests/core/test_serving.py has the same table.)
NIM_ITL_MS = {1: 18.58, 25: 38.75, 50: 59.73, 100: 93.0}


@pytest.fixture(scope="module")
def nim():
    return trtllm("llama-3.1-70b", "h100-sxm", prompt=5000, output=500, tp=2)


@pytest.mark.parametrize("users", sorted(NIM_ITL_MS))
def test_nim_time_per_output_token_under_load(nim, users: int) -> None:
    _, w = nim
    point = load.closed_loop(w, users)
    assert point.time_per_output_token_seconds * 1e3 == pytest.approx(NIM_ITL_MS[users], rel=TPOT_BAR)


def test_nim_saturates_at_the_kv_cache(nim) -> None:
    _, w = nim
    assert w.max_batch == pytest.approx(85, rel=0.10)  # 920 tokens/s x 93 ms
    assert load.closed_loop(w, 250).output_tokens_per_second == pytest.approx(920, rel=0.10)


def test_nim_time_to_first_token(nim) -> None:
    _, w = nim
    assert load.closed_loop(w, 1).time_to_first_token_seconds * 1e3 == pytest.approx(406.77, rel=TTFT_BAR)
    _, short = trtllm("llama-3.1-70b", "h100-sxm", prompt=500, output=2000, tp=2)
    assert load.closed_loop(short, 1).time_to_first_token_seconds * 1e3 == pytest.approx(47.77, rel=TTFT_BAR)


def test_the_fitted_overhead_is_the_gap_at_one_user() -> None:
    # the one fitted constant: NIM's 18.58 ms at concurrency 1 less the kernels' step, over 80 layers
    arch, hw = preset("llama-3.1-70b"), fp8_hardware("h100-sxm")
    bare = replica(arch, hw, tp=2, batch=1, weights=weight_bytes(arch, Dtype.FP8), kv_dtype=Dtype.FP8, prompt_tokens=5000,
                   output_tokens=500, limits=ROOFLINE)  # fmt: skip
    fitted = (18.58e-3 - bare.decode_step_seconds) / arch.n_layers
    assert fitted == pytest.approx(LAYER_OVERHEAD_SECONDS, rel=0.05)


def test_ttft_grows_with_load_and_users_beyond_the_cache_wait_for_a_slot(nim) -> None:
    _, w = nim
    one, many, full, beyond = (load.closed_loop(w, n) for n in (1, 50, w.max_batch, 2 * w.max_batch))
    assert one.time_to_first_token_seconds < many.time_to_first_token_seconds < full.time_to_first_token_seconds
    assert many.p99_time_to_first_token_seconds >= many.time_to_first_token_seconds
    # the users beyond the cache wait for a slot: (users - B) / throughput
    slot = w.max_batch / full.requests_per_second
    assert beyond.time_to_first_token_seconds == pytest.approx(full.time_to_first_token_seconds + slot, rel=0.02)


def test_open_loop_tpot_is_latency_less_ttft_over_the_other_tokens(nim) -> None:
    _, w = nim
    point = load.open_loop(w, 1.0)
    assert point.stable
    assert point.time_per_output_token_seconds == pytest.approx(
        (point.latency_seconds - point.time_to_first_token_seconds) / (w.output_tokens - 1)
    )
    assert point.batch == pytest.approx(1.0 * (w.output_tokens - 1 + 1) * point.time_per_output_token_seconds, rel=1e-3)
    too_much = load.open_loop(w, 100.0)  # 100 prompts of 5,000 tokens a second: 37 s of prefill per second
    assert not too_much.stable and too_much.reason and math.isinf(too_much.time_to_first_token_seconds)


def test_md1_wait_matches_pollaczek_khinchine_and_its_tail() -> None:
    # M/D/1 at rho = 0.5, D = 1 s: mean wait rho D / (2 (1 - rho)) = 0.5 s; the tail decays at theta
    # with 0.5 (e^theta - 1) = theta, theta = 1.2564 (Asmussen 2003, XIII.5)
    mean, p99 = load.queue_wait(0.5, 1.0)
    assert mean == pytest.approx(0.5)
    theta = 1.2564
    c = 0.5 / (0.5 * math.exp(theta) - 1)
    assert p99 == pytest.approx(math.log(c / 0.01) / theta, rel=1e-3)
    assert load.queue_wait(1.0, 1.0) == (math.inf, math.inf)
    assert load.queue_wait(0.0, 1.0) == (0.0, 0.0)


def test_engine_memory_defaults_are_the_documented_ones() -> None:
    arch = preset("llama-3.1-70b")
    big, small = 80 * 2**30, 24 * 2**30
    vllm, vllm_small = (engine_profile(Engine.VLLM, tp=2, gpu_memory_bytes=m) for m in (big, small))
    assert (vllm.memory_fraction, vllm.block_size_tokens, vllm.token_budget, vllm.max_num_seqs) == (0.9, 16, 8192, 1024)
    assert (vllm_small.token_budget, vllm_small.max_num_seqs) == (2048, 256)
    sglang = [engine_profile(Engine.SGLANG, tp=t, gpu_memory_bytes=big).memory_fraction for t in (1, 2, 4, 8)]
    assert sglang == [0.88, 0.87, 0.85, 0.81]
    trt = engine_profile(Engine.TRTLLM, tp=2, gpu_memory_bytes=big)
    assert trt.fraction_of_free and (trt.memory_fraction, trt.token_budget, trt.max_num_seqs) == (0.9, 8192, 2048)
    # TensorRT-LLM's reserve: 1 GiB context + 0.5 GiB graphs + 8,192 tokens of activations at TP 2
    reserve = runtime_reserve_bytes(trt, arch, tp=2)
    assert 2 * 2**30 < reserve < 4 * 2**30
    # the KV cache TensorRT-LLM gives 2 x H100 for Llama-3.1-70B FP8: 0.9 of what is free
    hw = fp8_hardware("h100-sxm")
    setup = load.engine_setup(Engine.TRTLLM, arch, tp=2, gpu_memory_bytes=hw.memory_bytes)
    w = weight_bytes(arch, Dtype.FP8)
    r = replica(arch, hw, tp=2, weights=w, kv_dtype=Dtype.FP8, prompt_tokens=5000, output_tokens=500,
                utilization=setup.utilization, reserve_bytes=setup.reserve_bytes, limits=setup.limits)  # fmt: skip
    free = 2 * (hw.memory_bytes - reserve) - w.total_bytes
    assert r.max_batch == int(0.9 * free) // r.kv_cache_bytes_per_sequence


def test_prompts_of_varied_length_queue_as_m_g_1() -> None:
    # exponential service (cv 1) is M/M/1: mean wait rho D / (1 - rho), P(W > t) = rho exp(-(1 - rho) t / D) exactly
    from service.core.serving_load import queue_wait

    rate, service = 8.0, 0.1  # rho 0.8
    mean, p99 = queue_wait(rate, service, 1.0)
    assert mean == pytest.approx(0.8 * 0.1 / 0.2, rel=1e-12)
    assert p99 == pytest.approx(math.log(0.8 / 0.01) / ((1 - 0.8) / 0.1), rel=1e-9)
    deterministic = queue_wait(rate, service)
    assert queue_wait(rate, service, 0.0) == deterministic and deterministic[0] == pytest.approx(mean / 2)
    between = queue_wait(rate, service, 0.5)  # gamma of shape 4: Pollaczek-Khinchine's (1 + cv^2), a tail between the two
    assert between[0] == pytest.approx(deterministic[0] * 1.25) and deterministic[1] < between[1] < p99


@pytest.mark.parametrize(("prompt", "output", "users"), [(32_000, 100, 8), (8_000, 10, 32), (1_000, 200, 64), (5_000, 500, 50)])
def test_a_closed_loop_keeps_its_users_in_flight(prompt: int, output: int, users: int) -> None:
    # Little's law with no think time: the users the cache holds are in flight the whole time, so
    # throughput x latency is their number, whether the replica's GPU time is saturated or not.
    # Llama-3.1-8B on one H100 under vLLM: 8 users of 32,000-token prompts saturate its GPU time
    # (1.33 s of prefill each) at 0.634 requests/s, so each waits 8 / 0.634 = 12.6 s, not 9.1 s
    from service.core.serving import replica, weight_bytes

    arch, hw = preset("llama-3.1-8b"), hardware("h100-sxm")
    setup = load.engine_setup(Engine.VLLM, arch, tp=1, gpu_memory_bytes=hw.memory_bytes)
    full = replica(arch, hw, tp=1, weights=weight_bytes(arch, Dtype.BF16), kv_dtype=Dtype.BF16, prompt_tokens=prompt,
                   output_tokens=output, utilization=setup.utilization, reserve_bytes=setup.reserve_bytes, limits=setup.limits)  # fmt: skip
    w = load.workload(arch, hw, full, setup=setup, prompt_tokens=prompt, output_tokens=output)
    point = load.closed_loop(w, users)
    assert users <= w.max_batch
    assert point.requests_per_second * point.latency_seconds == pytest.approx(users, rel=1e-3)
    assert point.latency_seconds == pytest.approx(
        point.time_to_first_token_seconds + (output - 1) * point.time_per_output_token_seconds
    )
    assert point.output_tokens_per_second == pytest.approx(point.requests_per_second * output)
