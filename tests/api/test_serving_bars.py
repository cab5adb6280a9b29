"""POST /v1/plan/serving against the serving issue's bars that its core tests show below the API:
the NIM rows through the route, each engine's documented defaults in `assumptions`, EAGLE's
drafter and verification priced, targets no GPU meets, and the bad input the issue lists."""

from __future__ import annotations

import pytest

from tests.api.test_calculators import problem
from tests.api.test_cost import ok
from tests.core.test_serving_load import NIM_ITL_MS, TPOT_BAR, TTFT_BAR

# NVIDIA NIM LLM benchmarking guide 1.0.0: Llama-3.3-70B-Instruct (Llama-3.1-70B's architecture), NIM 1.8.0
# (TensorRT-LLM), FP8, TP2 on 2 x H100 80GB; CALIBRATION.md, "Serving"
NIM = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "kv_dtype": "fp8", "engine": "trtllm",
       "tp": 2, "prompt_tokens": 5000, "output_tokens": 500}  # fmt: skip


@pytest.mark.parametrize("users", [1, 25, 50])
def test_nim_time_per_output_token_through_the_route(client, users: int) -> None:
    # one TP-2 replica holds up to ~85-92 sequences, so 1-50 users are the one replica NIM measured (at 100 users the
    # plan provisions a second replica: the core test times NIM's one replica there)
    o = ok(client, "/v1/plan/serving", NIM | {"concurrent_users": users})["options"][0]
    assert (o["tp"], o["replicas"], o["batch_per_replica"]) == (2, 1, users)
    assert o["time_per_output_token_seconds"] * 1e3 == pytest.approx(NIM_ITL_MS[users], rel=TPOT_BAR)


@pytest.mark.parametrize(("prompt", "output", "ttft_ms"), [(5000, 500, 406.77), (500, 2000, 47.77)])
def test_nim_time_to_first_token_through_the_route(client, prompt: int, output: int, ttft_ms: float) -> None:
    body = NIM | {"prompt_tokens": prompt, "output_tokens": output, "concurrent_users": 1}
    o = ok(client, "/v1/plan/serving", body)["options"][0]
    assert o["time_to_first_token_seconds"] * 1e3 == pytest.approx(ttft_ms, rel=TTFT_BAR)
    assert o["time_to_first_token_seconds"] <= o["p99_time_to_first_token_seconds"]


# each engine's block size and host gap per step, from its documentation (service/core/engines.py)
ENGINES = {"vllm": (16, 1e-3, "vLLM docs"), "sglang": (1, 0.0, "SGLang docs"), "trtllm": (64, 0.0, "TensorRT-LLM docs")}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_each_engine_states_its_documented_defaults(client, engine: str) -> None:
    block, host_seconds, docs = ENGINES[engine]
    body = {
        "model": {"preset": "llama-3.1-70b"},
        "gpu": "h100-sxm",
        "weights_dtype": "fp8",
        "concurrent_users": 8,
        "engine": engine,
    }
    notes = ok(client, "/v1/plan/serving", body)["assumptions"]
    assert notes["engine"] == engine and notes["engine_block_size_tokens"] == block
    assert notes["engine_sources"].startswith(docs)
    assert "chunked prefill: up to 8192 tokens a step" in notes["engine_scheduler"]
    assert notes["engine_step_overhead_seconds"] == pytest.approx(80 * 60e-6 + host_seconds)  # 80 layers of Llama-3.1-70B
    assert notes["gpu_memory_utilization"].startswith("engine default") and notes["runtime_reserve_bytes"].startswith("engine")


def test_eagle_prices_its_drafter_and_the_verification(client) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "prompt_tokens": 1000,
            "output_tokens": 500, "concurrent_users": 8, "tp": 2}  # fmt: skip
    plain = ok(client, "/v1/plan/serving", body)["options"][0]
    eagle = {"method": "eagle", "tokens": 3}
    good, useless = (ok(client, "/v1/plan/serving", body | {"speculative": eagle | {"acceptance_rate": a}}) for a in (0.8, 0.0))
    option = good["options"][0]
    assert option["speculative_tokens_per_step"] == pytest.approx((1 - 0.8**4) / (1 - 0.8))  # Leviathan et al. 2023 eq. 1
    assert option["time_per_output_token_seconds"] < plain["time_per_output_token_seconds"]
    assert option["usd_per_million_output_tokens"] < plain["usd_per_million_output_tokens"]
    assert "1-layer drafter" in good["assumptions"]["speculative"]
    assert "the drafter prefills each prompt after the target" in good["assumptions"]["speculative"]
    # nothing accepted: one token a step, and the drafter's steps and the 4-position verification still paid
    wasted = useless["options"][0]
    assert wasted["speculative_tokens_per_step"] == pytest.approx(1.0)
    assert wasted["time_per_output_token_seconds"] > plain["time_per_output_token_seconds"]
    assert wasted["usd_per_million_output_tokens"] > plain["usd_per_million_output_tokens"]


GPUS = ["h100-sxm", "a100-80gb-sxm", "l40s"]


@pytest.mark.parametrize(
    ("load", "bound", "reason"),
    [
        ({"concurrent_users": 5}, {"max_time_per_output_token_seconds": 0.0005}, "per output token"),
        ({"tokens_per_second": 1000}, {"max_time_per_output_token_seconds": 0.0005}, "per output token"),
        ({"requests_per_second": 5}, {"max_time_to_first_token_seconds": 0.0005}, "the first token takes"),
        ({"scenario": "server", "n_gpus": 8}, {"max_time_to_first_token_seconds": 0.0005}, "the first token takes"),
        ({"requests_per_second": 5, "disaggregated": True}, {"max_time_per_output_token_seconds": 0.0005},
         "time-per-output-token bound"),
    ],
)  # fmt: skip
def test_a_target_no_gpu_meets_is_a_200_with_each_options_reason(client, load: dict, bound: dict, reason: str) -> None:
    body = {"model": {"preset": "llama-2-7b"}, "gpu": GPUS} | load | bound
    data = ok(client, "/v1/plan/serving", body)  # finite throughout: ok() checks
    assert data["cheapest_gpu"] is None and sorted(o["gpu"] for o in data["options"]) == sorted(GPUS)
    for o in data["options"]:
        assert o["fits"] is False and reason in o["reason"]
        assert o["time_per_output_token_seconds"] is None and o["usd_per_million_output_tokens"] is None


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"speculative": {"method": "eagle", "tokens": 3, "acceptance_rate": -0.1}}, ["body", "speculative", "acceptance_rate"]),
        ({"speculative": {"method": "mtp", "tokens": 0, "acceptance_rate": 0.8}}, ["body", "speculative", "tokens"]),
        ({"tokens_per_second": 0}, ["body", "tokens_per_second"]),
        ({"disaggregated": True, "decode_gpu": "no-such-gpu"}, ["body", "decode_gpu"]),
        ({"disaggregated": True, "prefill_gpu": "no-such-gpu"}, ["body", "prefill_gpu"]),
        ({"disaggregated": True, "decode_gpu": ""}, ["body", "decode_gpu"]),
    ],
)
def test_the_issues_bad_input_is_a_422_on_its_field(client, extra: dict, field: list) -> None:
    data = problem(client, "/v1/plan/serving", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm"} | extra)
    assert [e["loc"] for e in data["errors"]] == [field], data
    assert data["detail"].startswith(".".join(field[1:])) or data["detail"].startswith(".".join(field)), data


@pytest.mark.parametrize("pool", ["prefill_gpu", "decode_gpu"])
def test_a_pool_outside_a_disaggregated_plan_is_a_422_naming_it(client, pool: str) -> None:
    body = {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "requests_per_second": 5, pool: "h200-sxm"}
    detail = problem(client, "/v1/plan/serving", body)["detail"]
    assert pool in detail and "disaggregated: true" in detail


def test_qwen3_moe_is_offered_expert_parallel_units_beside_tensor_parallel_ones(client) -> None:
    # the issue names Qwen3-MoE beside DeepSeek-V3: both layouts are weighed at the load, the cheapest chosen
    body = {"model": {"preset": "qwen3-235b-a22b"}, "gpu": "h200-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
            "output_tokens": 1000, "concurrent_users": 4000, "engine": "sglang"}  # fmt: skip
    data = ok(client, "/v1/plan/serving", body)
    option = data["options"][0]
    layouts = [(a["tp"], a["ep"]) for a in option["alternatives"]] + [(option["tp"], option["ep"])]
    assert any(ep is None for _, ep in layouts) and any(ep is not None for _, ep in layouts)
    for alt in option["alternatives"]:
        assert alt["usd_per_million_output_tokens"] >= option["usd_per_million_output_tokens"]
        assert alt["dp_attention"] is (alt["ep"] is not None)
    assert option["n_gpus"] == (option["ep"] or option["tp"]) * option["replicas"]
    assert "expert_parallel" in data["assumptions"]
