"""Serving a mixture with expert parallelism and data-parallel attention
(:mod:`service.core.expert_serving`) against DeepSeek's production deployment of DeepSeek-V3
(deepseek-ai/open-infra-index, day 6, 2025-02-28: prefill units EP32 on 4 nodes, decode units
EP144 on 18 nodes of H800; per node ~73.7 k input tokens/s in prefill with the cache hits, ~14.8 k
output tokens/s in decode; 56.3 % of input tokens hit the KV cache; 20-22 tokens/s per user; mean
KV length 4,989).

The model runs the attention core at its kernels' BF16 rates (FlashMLA's in decode), the busiest
GPU's routed work at SGLang's measured imbalance (1.18), and the all-to-all beside the compute, not
under it (the overlap is an option: its perfect form overstates SGLang's measured gains). Day 6's
prefill reads its cache hits from disk (3FS, at its KVCache clients' published 40 GiB/s a node) and
runs prompts of many lengths (taken as exponential about the mean: the attention core of the mean
prompt costs twice that of one prompt of the mean length). What it leaves out: the wait for the
slowest data-parallel rank (day 6's prefill load balancer evens out attention and tokens per GPU),
the redundant experts' memory (day 6: 32 per unit), and the overlap DeepSeek runs; day 6's
throughputs are also 24-hour averages over nodes that follow the load. Nothing is fitted to these
rows."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from service.core import expert_serving as ep_core
from service.core.compute import attention_score_flops_per_token
from service.core.dtypes import Dtype
from service.core.serving import prefix_read_seconds, weight_bytes
from tests.core.helpers import hardware, preset
from validation.serving import (
    DEEPSEEK_KV_TOKENS,
    DEEPSEEK_TOKENS_PER_USER_S,
    _arch,
    _hardware,
    deepseek_request,
    deepseek_rows,
    deepseek_unit,
    sglang_rows,
)


def test_the_mean_request_is_day_six_totals() -> None:
    prompt, output = deepseek_request()
    assert prompt / output == pytest.approx(608 / 168, rel=1e-3)
    assert prompt + output / 2 == pytest.approx(DEEPSEEK_KV_TOKENS, abs=1)


@pytest.mark.parametrize(("ep", "routed_per_gpu"), [(32, 8), (144, 2)])
def test_each_gpu_holds_its_share_of_the_routed_experts(ep: int, routed_per_gpu: int) -> None:
    # day 6: 9 routed experts a GPU in prefill and 2 in decode, counting 32 redundant ones that the model leaves out
    arch = preset("deepseek-v3")
    weights = weight_bytes(arch, Dtype.FP8)
    replicated, routed = ep_core.per_gpu_weight_bytes(arch, weights, ep)
    one_expert = arch.moe_layers * 3 * arch.d_model * arch.d_ff  # FP8: a byte a weight (scales per tensor aside)
    assert routed == pytest.approx(routed_per_gpu * one_expert, rel=1e-3)
    assert replicated + 256 * one_expert == pytest.approx(weights.total_bytes, rel=1e-3)


def test_a_decode_gpu_holds_the_sequences_deepseek_runs_on_it() -> None:
    # 14.8 k output tokens/s per node at 21 tokens/s per user: 88 sequences of 4,989 tokens of latent cache a GPU
    _, _, unit, _ = deepseek_unit(144)
    observed = 14_800 / 8 / DEEPSEEK_TOKENS_PER_USER_S
    assert unit.max_batch / 144 >= observed
    assert unit.ep == 144 and unit.dp_attention and unit.n_gpus == 144


def test_the_all_to_all_crosses_the_network_only_beyond_a_node() -> None:
    arch, h800 = preset("deepseek-v3"), hardware("h800-sxm")
    inside = float(ep_core.all_to_all_seconds(arch, h800, ep=8, tokens=128, element_bytes=1))
    across = float(ep_core.all_to_all_seconds(arch, h800, ep=144, tokens=128, element_bytes=1))
    assert 0 < inside < across
    # across nodes a token reaches a node at most once per node it has experts on: under 8 copies over the network
    assert across < arch.moe_layers * 128 * arch.d_model * 3 * 8 / (50e9 * 0.5)


def test_dense_models_have_no_expert_parallel_units() -> None:
    assert ep_core.expert_parallel_degrees(preset("llama-3.1-70b"), 8) == []
    assert ep_core.expert_parallel_degrees(preset("deepseek-v3"), 8) == [8, 16, 32, 64, 128, 256]


def test_mla_decode_attention_runs_at_flash_mla_published_rates() -> None:
    # FlashMLA README (H800 SXM5, BF16): 580 TFLOPS compute-bound, 3,000 GB/s memory-bound; 128 heads over a
    # 576-wide latent make a decode query compute-bound (its deep-dive: h_q * s_q >= 128)
    arch, h800 = _arch("deepseek-v3"), _hardware("h800-sxm")
    sequences, context = 64, 4096
    seconds = float(ep_core.decode_attention_seconds(arch, h800, batch_per_gpu=np.asarray(float(sequences)),
                                                     context_tokens=context, kv_bytes_per_token=arch.n_layers * 576 * 2))  # fmt: skip
    flops = sequences * context * arch.n_layers * 2 * 128 * (576 + 512)  # FlashMLA's count, 2 h_q s_k (d_k + d_v)
    assert seconds == pytest.approx(flops / 580e12, rel=1e-3)
    assert seconds > sequences * context * arch.n_layers * 576 * 2 / 3000e9


def test_prefill_attention_core_runs_at_the_bf16_peak() -> None:
    # the same unit with FP8 weights: only the attention core's rate moves when the BF16 peak is named
    arch, h800 = _arch("deepseek-v3"), _hardware("h800-sxm")
    at_fp8_peak = dataclasses.replace(h800, bf16_peak_flops_per_s=None)
    given = {"ep": 32, "prompt_tokens": 4096, "element_bytes": 1, "imbalance": 1.0}
    slower = ep_core.ep_prompt_seconds(arch, h800, **given) - ep_core.ep_prompt_seconds(arch, at_fp8_peak, **given)
    fraction, _ = h800.kernels.attention_fractions(4096, arch.d_head)
    core_flops = 4096 * 4096 / 2 * 2 * 128 * (192 + 128) * arch.n_layers  # causal: half the scores
    assert slower == pytest.approx(core_flops / (989.5e12 * fraction) - core_flops / (1979e12 * fraction), rel=1e-6)


def test_cached_prefixes_on_disk_are_read_at_the_nodes_3fs_rate() -> None:
    # 3FS README: KVCache clients read over one 400 Gbps NIC a node, peaking at 40 GiB/s; 8 H800 a node read at once,
    # each prefix 61 layers x (512 + 64) BF16 latent values a token
    arch, h800, unit, setup = deepseek_unit(32)
    prompt, output = deepseek_request()
    # the same unit with its prefixes kept in GPU memory
    kept = ep_core.ep_replica(arch, h800, ep=32, weights=weight_bytes(arch, Dtype.FP8), kv_dtype=Dtype.BF16, prompt_tokens=prompt,
                              output_tokens=output, limits=dataclasses.replace(setup.limits, prefix_read_bytes_per_s=None))  # fmt: skip
    assert unit.cached_prompt_tokens == kept.cached_prompt_tokens == round(0.563 * prompt)
    assert unit.prompt_seconds is not None and kept.prompt_seconds is not None
    read = unit.cached_prompt_tokens * 61 * 576 * 2 / (40 * 2**30 / 8)
    assert unit.prompt_seconds - kept.prompt_seconds == pytest.approx(read, rel=1e-9)
    assert 0.02 < read < 0.05  # about a tenth of the new tokens' prefill
    assert prefix_read_seconds(2468, 70_272, None, 8) == 0.0 == prefix_read_seconds(0, 70_272, 1e9, 8)


def test_prompts_of_exponential_lengths_cost_twice_the_mean_prompts_attention() -> None:
    # E[L^2] = 2 E[L]^2 for exponential lengths: the causal core's FLOPs averaged over them (Gauss-Laguerre) against one
    # prompt of the mean length; the cv-1 prompt's time is the cv-0 one's plus one more mean-length core at the BF16 rate
    arch, h800 = _arch("deepseek-v3"), _hardware("h800-sxm")
    mean = 4383
    nodes, weights = np.polynomial.laguerre.laggauss(40)
    core = [attention_score_flops_per_token(arch, n, causal=True) * n for n in (mean * nodes)]
    assert float(np.dot(weights, core)) == pytest.approx(
        2 * attention_score_flops_per_token(arch, mean, causal=True) * mean, rel=1e-3
    )
    given = {"ep": 32, "prompt_tokens": mean, "element_bytes": 1}
    spread = ep_core.ep_prompt_seconds(arch, h800, length_cv=1.0, **given) - ep_core.ep_prompt_seconds(arch, h800, **given)
    fraction, _ = h800.kernels.attention_fractions(mean, arch.d_head)
    assert spread == pytest.approx(attention_score_flops_per_token(arch, mean, causal=True) * mean / (989.5e12 * fraction))


def test_load_imbalance_slows_a_unit_by_less_than_sglang_measured() -> None:
    # SGLang, EP32 prefill on H100: 59,337 tokens/s per node at simulated perfect balance, 50,302 at its default
    # distribution; the factor stretches only the routed experts and the all-to-all, so the whole prompt less
    arch, h100 = _arch("deepseek-v3"), _hardware("h100-sxm")
    given = {"ep": 32, "prompt_tokens": 4096, "element_bytes": 1}
    balanced = ep_core.ep_prompt_seconds(arch, h100, imbalance=1.0, **given)
    skewed = ep_core.ep_prompt_seconds(arch, h100, imbalance=ep_core.DEFAULT_EXPERT_LOAD_IMBALANCE, **given)
    assert 1.05 < skewed / balanced < 59_337 / 50_302


def test_two_micro_batches_pay_off_only_at_large_decode_batches() -> None:
    # SGLang's two-batch overlap on H100 (LMSYS 2025-05-05): a loss below 64-128 sequences a GPU (-27 % at 32), a gain
    # at 256 (+25.5 %); the model's overlap is perfect, so its gain at 256 is larger
    arch, h100 = _arch("deepseek-v3"), _hardware("h100-sxm")
    weights = weight_bytes(arch, Dtype.FP8)

    def speedup(per_gpu: int) -> float:
        steps = [ep_core.ep_replica(arch, h100, ep=64, batch=64 * per_gpu, weights=weights, kv_dtype=Dtype.BF16, prompt_tokens=2000,
                                    output_tokens=2, overlap=overlap).decode_step_seconds for overlap in (False, True)]  # fmt: skip
        return steps[0] / steps[1]

    assert speedup(32) < 1 < speedup(128)
    assert speedup(256) > 1.255


def test_deepseek_production_decode_per_node_throughput() -> None:
    _name, _quantity, published, predicted, bar = deepseek_rows()[1]
    assert math.isfinite(predicted) and abs(predicted / published - 1) <= bar


def test_deepseek_production_prefill_per_node_throughput() -> None:
    _name, _quantity, published, predicted, bar = deepseek_rows()[0]
    assert math.isfinite(predicted) and abs(predicted / published - 1) <= bar


@pytest.mark.parametrize("index", [0, 1])
def test_sglang_96_h100_per_node_throughput(index: int) -> None:
    # LMSYS 2025-05-05: 54,543 input tok/s per node (EP32 prefill, 2,000-token prompts), 22,282 output (EP72, 256 a GPU)
    _name, _quantity, published, predicted, bar = sglang_rows()[index]
    assert math.isfinite(predicted) and abs(predicted / published - 1) <= bar
