"""POST /v1/plan/serving: options per GPU type, targets, bounds, bad input."""

from __future__ import annotations

import pytest

from tests.api.test_calculators import locs, problem
from tests.api.test_cost import ok


def test_serving_plan_compares_gpus_for_a_user_target(client) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": ["h100-sxm", "a100-80gb-sxm", "a10g"], "weights_dtype": "fp8",
            "kv_dtype": "fp8", "prompt_tokens": 5000, "output_tokens": 500, "concurrent_users": 200}  # fmt: skip
    data = ok(client, "/v1/plan/serving", body)
    options = data["options"]
    assert [o["gpu"] for o in options if o["fits"]] and options[0]["gpu"] == data["cheapest_gpu"]
    costs = [o["usd_per_million_output_tokens"] for o in options if o["fits"]]
    assert costs == sorted(costs)
    for o in options:
        assert o["replicas"] * o["batch_per_replica"] >= 200 and o["batch_per_replica"] <= o["max_batch_per_replica"]
        assert 64 % o["tp"] == 0 and 8 % o["tp"] == 0 and o["n_gpus"] == o["tp"] * o["replicas"]
        assert o["weights_bytes"] + o["batch_per_replica"] * o["kv_cache_bytes_per_sequence"] <= o["usable_memory_bytes"]
        assert o["output_tokens_per_second_per_replica"] == pytest.approx(o["requests_per_second_per_replica"] * 500)
        assert o["usd_per_million_input_tokens"] > 0 and o["price"]["as_of"]
    assert data["assumptions"]["kv_dtype"] == "fp8"


@pytest.mark.parametrize("load", [{"concurrent_users": 32}, {}, {"tokens_per_second": 100}])
def test_output_tokens_per_second_are_the_requests_served_times_their_tokens(client, load: dict) -> None:
    # 8,000-token prompts and 10 output tokens: a user spends most of a request waiting for its first token,
    # so the users in flight are not all decoding; a replica's tokens/s is its requests/s x 10 (Little's law:
    # users x 10 / latency), not batch / time per output token
    body = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "tp": 1, "prompt_tokens": 8000, "output_tokens": 10} | load
    o = ok(client, "/v1/plan/serving", body)["options"][0]
    per_replica = o["requests_per_second_per_replica"] * 10
    assert o["output_tokens_per_second_per_replica"] == pytest.approx(per_replica)
    assert o["output_tokens_per_second"] == pytest.approx(per_replica * o["replicas"])
    assert per_replica == pytest.approx(o["batch_per_replica"] * 10 / o["latency_seconds"], rel=1e-3)
    assert per_replica < 0.5 * o["batch_per_replica"] / o["time_per_output_token_seconds"]
    if "tokens_per_second" in load:
        assert o["output_tokens_per_second"] >= 100


def test_int4_weights_count_their_scales_and_kv_stays_bf16(client) -> None:
    # the measured case: Llama-3.1-70B in int4 at 32K context x 16 users on H100s
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "int4", "prompt_tokens": 30000,
            "output_tokens": 2000, "concurrent_users": 16}  # fmt: skip
    data = ok(client, "/v1/plan/serving", body)
    o = data["options"][0]
    assert data["assumptions"]["kv_dtype"] == "bf16" and o["kv_cache_bytes_per_token"] == 2 * 80 * 8 * 128 * 2
    assert o["weights_bytes"] > 70.6e9 / 2  # 4 bits plus the scales, and 16-bit embeddings
    assert o["fits"] and o["tp"] >= 2  # 16 users of 32K tokens do not fit beside the weights on one 80 GB GPU


def test_latency_bounds_shape_the_replica(client) -> None:
    base = {
        "model": {"preset": "llama-2-7b"},
        "gpu": "h100-sxm",
        "prompt_tokens": 1000,
        "output_tokens": 200,
        "tokens_per_second": 20000,
    }
    loose = ok(client, "/v1/plan/serving", base)["options"][0]
    tight = ok(client, "/v1/plan/serving", base | {"max_time_per_output_token_seconds": 0.02})["options"][0]
    assert tight["time_per_output_token_seconds"] <= 0.02 < loose["time_per_output_token_seconds"]
    assert tight["n_gpus"] >= loose["n_gpus"]  # lower latency costs GPUs
    assert tight["output_tokens_per_second"] >= 20000
    impossible = ok(client, "/v1/plan/serving", base | {"max_time_per_output_token_seconds": 0.0005})["options"][0]
    assert impossible["fits"] is False and "per output token" in impossible["reason"]


def test_a_context_beyond_the_model_is_a_warning(client) -> None:
    data = ok(client, "/v1/plan/serving", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "prompt_tokens": 8000})
    assert data["warnings"] and "exceeds the model's context" in data["warnings"][0]


def test_a_model_too_big_for_a_node_is_listed_with_its_reason(client) -> None:
    data = ok(client, "/v1/plan/serving", {"model": {"preset": "llama-3.1-405b"}, "gpu": "a10g", "usd_per_gpu_hour": 1.0})
    o = data["options"][0]
    assert o["fits"] is False and "GiB usable" in o["reason"] and data["cheapest_gpu"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"tp": 3}, ["body", "tp"]),
        ({"concurrent_users": 0}, ["body", "concurrent_users"]),
        ({"weights_dtype": "int3"}, ["body", "weights_dtype"]),
        ({"output_tokens": 0}, ["body", "output_tokens"]),
        ({"model": {"n_params": 7e9}}, ["body", "model"]),
        ({"concurrent_users": 5, "tokens_per_second": 10}, ["body"]),
        ({"requests_per_second": 0}, ["body", "requests_per_second"]),
        ({"requests_per_second": -1}, ["body", "requests_per_second"]),
        ({"engine": "tgi"}, ["body", "engine"]),
        ({"concurrent_users": 5, "requests_per_second": 1}, ["body"]),
        ({"gpu_memory_utilization": 0}, ["body", "gpu_memory_utilization"]),
    ],
)
def test_serving_bad_input_is_a_422(client, body: dict, loc: list) -> None:
    data = problem(client, "/v1/plan/serving", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm"} | body)
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data


def test_lifetime_prices_served_tokens_with_the_serving_model(client) -> None:
    # the measured inconsistency: a trillion served tokens of a 7B-class model at the training MFU
    # came to ~$0.02 per million while /v1/cost/inference answered ~$0.2; now both use one model
    body = {"target_loss": 2.1, "inference_tokens": 1e12, "gpu": "h100-sxm", "usd_per_gpu_hour": 3.2,
            "prompt_tokens": 1000, "output_tokens": 200}  # fmt: skip
    life = ok(client, "/v1/budget/lifetime", body)
    per_million = life["usd_per_million_served_tokens"]
    assert per_million is not None and life["assumptions"]["serving"] == life["flop_optimal"]["serving"]
    assert life["total_cost_usd"] == pytest.approx(
        life["assumptions"]["training_cost_usd"] + life["assumptions"]["inference_cost_usd"]
    )
    assert life["assumptions"]["inference_cost_usd"] == pytest.approx(per_million * 1e12 / 1e6)
    # the serving plan of the same shape on the same GPU gives the same dollars per request
    arch = life["flop_optimal"]["architecture"]
    assert arch["source"] == "llama3"
    fields = {name: arch[name] for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size",
                                            "tied_embeddings")} | {"ffn": "swiglu", "norm": "rmsnorm", "max_seq_len": 8192}  # fmt: skip
    plan = ok(client, "/v1/plan/serving", {"model": fields, "gpu": "h100-sxm", "usd_per_gpu_hour": 3.2, "prompt_tokens": 1000,
                                           "output_tokens": 200})["options"][0]  # fmt: skip
    per_request = 1000 * plan["usd_per_million_input_tokens"] + 200 * plan["usd_per_million_output_tokens"]
    assert per_million == pytest.approx(per_request / 1200, rel=1e-9)


def test_at_low_load_the_cheapest_fleet_is_chosen_not_the_fastest_at_saturation(client) -> None:
    # Llama-2-7B for 32 users on H100: a TP-2 replica has the most tokens/s per GPU when full, but
    # 32 users fill neither; one GPU serves them for half the price, as /v1/cost/inference prices it
    body = {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "prompt_tokens": 1000, "output_tokens": 1000}
    low = ok(client, "/v1/plan/serving", body | {"concurrent_users": 32})["options"][0]
    assert (low["tp"], low["replicas"], low["n_gpus"], low["batch_per_replica"]) == (1, 1, 1, 32)
    saturated = ok(client, "/v1/plan/serving", body)["options"][0]  # one replica at its largest batch
    assert saturated["tp"] == 2
    cost = ok(client, "/v1/cost/inference", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "n_gpus": 1,
                                               "batch_size": 32, "prompt_tokens": 1000, "output_tokens": 1000})  # fmt: skip
    assert low["usd_per_million_output_tokens"] == pytest.approx(cost["usd_per_million_output_tokens"])
    # at a load that fills replicas the per-GPU rate decides again
    high = ok(client, "/v1/plan/serving", body | {"concurrent_users": 2000})
    assert high["options"][0]["tp"] == 2 and "least cost per output token" in high["assumptions"]["tp_rule"]


def test_fp8_weights_on_a_gpu_without_fp8_tensor_cores_are_said_to_be_weight_only(client) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": ["h100-sxm", "a100-80gb-sxm"], "weights_dtype": "fp8",
            "prompt_tokens": 1000, "output_tokens": 500, "concurrent_users": 16}  # fmt: skip
    notes = ok(client, "/v1/plan/serving", body)["assumptions"]
    assert notes["a100-80gb-sxm.peak_dtype"] == "bf16" and "weight-only" in notes["a100-80gb-sxm.weights"]
    assert notes["h100-sxm.peak_dtype"] == "fp8" and "h100-sxm.weights" not in notes
    cost = ok(client, "/v1/cost/inference", {"model": {"preset": "llama-3.1-70b"}, "gpu": "a100-80gb-sxm", "n_gpus": 2,
                                               "dtype": "fp8", "batch_size": 8, "prompt_tokens": 1000, "output_tokens": 500})  # fmt: skip
    assert "Marlin" in cost["assumptions"]["weights"]


def test_engines_answer_ttft_at_the_load_with_a_p99(client) -> None:
    # MLPerf v4.1 server, Llama-2-70B FP8 on H100 with TensorRT-LLM: 21,606 tok/s of ~294-token
    # answers is ~73 requests/s over 8 GPUs (CALIBRATION.md, "Serving"); p99 TTFT within 2 s
    body = {"model": {"preset": "llama-2-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "kv_dtype": "fp8", "engine": "trtllm",
            "prompt_tokens": 294, "output_tokens": 294, "requests_per_second": 73, "max_time_to_first_token_seconds": 2,
            "max_time_per_output_token_seconds": 0.2}  # fmt: skip
    data = ok(client, "/v1/plan/serving", body)
    o = data["options"][0]
    assert o["fits"] and o["n_gpus"] <= 8  # MLPerf's 8 GPUs serve it
    assert o["time_to_first_token_seconds"] <= o["p99_time_to_first_token_seconds"] <= 2
    assert o["time_per_output_token_seconds"] <= 0.2
    assert o["replicas"] * o["requests_per_second_per_replica"] == pytest.approx(73, rel=1e-6)
    assert o["latency_seconds"] == pytest.approx(o["time_to_first_token_seconds"] + 293 * o["time_per_output_token_seconds"])
    notes = data["assumptions"]
    assert notes["engine"] == "trtllm" and "free_gpu_memory_fraction" in notes["gpu_memory_utilization"]
    assert "M/D/1" in notes["queueing"] and "(latency - TTFT)" in notes["time_per_output_token"]


def test_ttft_under_load_grows_with_the_users(client) -> None:
    base = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "prompt_tokens": 2000, "output_tokens": 200, "tp": 1}
    few, many = (ok(client, "/v1/plan/serving", base | {"concurrent_users": n})["options"][0] for n in (1, 64))
    assert few["time_to_first_token_seconds"] < many["time_to_first_token_seconds"]
    assert few["time_per_output_token_seconds"] < many["time_per_output_token_seconds"]
    # SGLang keeps 0.88 of the memory for weights and cache at TP 1, vLLM 0.9 less a 2 GiB reserve
    engines = {e: ok(client, "/v1/plan/serving", base | {"engine": e})["options"][0] for e in ("vllm", "sglang", "trtllm")}
    assert engines["sglang"]["usable_memory_bytes"] == int(80 * 2**30 * 0.88)
    assert engines["vllm"]["usable_memory_bytes"] == int(80 * 2**30 * 0.9) - 2 * 2**30
    assert engines["vllm"]["max_batch_per_replica"] >= engines["vllm"]["batch_per_replica"]


def test_an_open_loop_beyond_any_bound_is_an_answer_not_an_error(client) -> None:
    body = {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "requests_per_second": 5,
            "max_time_to_first_token_seconds": 0.001}  # fmt: skip
    o = ok(client, "/v1/plan/serving", body)["options"][0]
    assert o["fits"] is False and o["reason"]


MTP = {"method": "mtp", "tokens": 1, "acceptance_rate": 0.875}


def test_deepseek_v3_multi_token_prediction_speeds_up_decoding(client) -> None:
    # DeepSeek-V3 §5.4.3: the second token is accepted 85-90 % of the time, for 1.8x the tokens per
    # second in DeepSeek's deployment, whose decode batches read every expert either way. On one
    # 8-GPU H200 node at one to 32 users a plain step reads only the experts its tokens pick, and the
    # verification pass routes two tokens a sequence, so it reads more of them: less than 1.8x, more
    # than none, never the 1.875 tokens a step
    for users in (1, 8, 32):
        body = {"model": {"preset": "deepseek-v3"}, "gpu": "h200-sxm", "weights_dtype": "fp8", "prompt_tokens": 1000,
                "output_tokens": 1000, "concurrent_users": users}  # fmt: skip
        plain = ok(client, "/v1/plan/serving", body)["options"][0]
        drafted = ok(client, "/v1/plan/serving", body | {"speculative": MTP})
        option = drafted["options"][0]
        assert option["speculative_tokens_per_step"] == pytest.approx(1.875)
        speed_up = plain["time_per_output_token_seconds"] / option["time_per_output_token_seconds"]
        assert 1.3 < speed_up < 1.8, users
        assert "Leviathan" in drafted["assumptions"]["speculative"]


def test_a_draft_model_and_a_prefix_cache_are_priced(client) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "prompt_tokens": 4000,
            "output_tokens": 500, "concurrent_users": 8}  # fmt: skip
    plain = ok(client, "/v1/plan/serving", body)["options"][0]
    draft = {"method": "draft", "tokens": 4, "acceptance_rate": 0.7, "draft_model": {"preset": "llama-3.2-1b"}}
    drafted = ok(client, "/v1/plan/serving", body | {"speculative": draft})["options"][0]
    assert drafted["time_per_output_token_seconds"] < plain["time_per_output_token_seconds"]
    assert drafted["usd_per_million_output_tokens"] < plain["usd_per_million_output_tokens"]
    cached = ok(client, "/v1/plan/serving", body | {"prefix_cache_hit_rate": 0.563})
    option = cached["options"][0]
    assert option["time_to_first_token_seconds"] < 0.6 * plain["time_to_first_token_seconds"]
    # 1,748 new tokens pay their own prefill, 2,252 cached ones the new tokens' attention over them:
    # together the cached request's prefill
    fresh, hits = 4000 - 2252, 2252
    assert fresh * option["usd_per_million_input_tokens"] + hits * option["usd_per_million_cached_input_tokens"] < (
        0.6 * 4000 * plain["usd_per_million_input_tokens"]
    )
    assert 0 < option["usd_per_million_cached_input_tokens"] < 0.2 * option["usd_per_million_input_tokens"]
    assert plain["usd_per_million_cached_input_tokens"] is None and "prefix_cache" in cached["assumptions"]


def test_a_draft_model_of_another_vocabulary_is_a_422(client) -> None:
    # a drafter proposes token ids the target verifies (Leviathan et al. 2023 §2.3: p and q over one vocabulary);
    # vLLM's spec-decode worker asserts the draft's and the target's vocab sizes are equal (_vocab_size). Qwen2.5-0.5B
    # (151,936 tokens) cannot draft for Llama-3.1-70B (128,256); Llama-3.2-1B (128,256) can
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "prompt_tokens": 1000, "output_tokens": 200,
            "concurrent_users": 4}  # fmt: skip
    draft = {"method": "draft", "tokens": 4, "acceptance_rate": 0.7}
    data = problem(client, "/v1/plan/serving", body | {"speculative": draft | {"draft_model": {"preset": "qwen2.5-0.5b"}}})
    assert ["body", "speculative", "draft_model"] in locs(data)
    assert "151936" in data["detail"] and "128256" in data["detail"]
    ok(client, "/v1/plan/serving", body | {"speculative": draft | {"draft_model": {"preset": "llama-3.2-1b"}}})


def test_a_draft_model_of_one_tokenizer_padded_otherwise_drafts(client) -> None:
    # Qwen2.5-0.5B (embedding padded to 151,936) is the usual drafter of Qwen2.5-72B (152,064): one tokenizer of
    # 151,665 tokens, the rows past it padding; llama.cpp's speculative check allows such a difference up to 128
    # (common/speculative.cpp, SPEC_VOCAB_MAX_SIZE_DIFFERENCE), and the plan is faster for the drafter
    body = {"model": {"preset": "qwen2.5-72b"}, "gpu": "h100-sxm", "prompt_tokens": 1000, "output_tokens": 200,
            "concurrent_users": 4}  # fmt: skip
    draft = {"method": "draft", "tokens": 4, "acceptance_rate": 0.7, "draft_model": {"preset": "qwen2.5-0.5b"}}
    plain = ok(client, "/v1/plan/serving", body)["options"][0]
    drafted = ok(client, "/v1/plan/serving", body | {"speculative": draft})["options"][0]
    assert drafted["fits"] and drafted["time_per_output_token_seconds"] < plain["time_per_output_token_seconds"] / 1.5


def test_a_draft_model_larger_than_the_model_is_a_422(client) -> None:
    # Llama-3.1-70B drafting for Llama-3.1-8B (one vocabulary): a draft step costs more than a target step,
    # never faster (Leviathan et al. 2023 §3.4); the 422 names the field and both parameter counts
    body = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "prompt_tokens": 1000, "output_tokens": 200,
            "concurrent_users": 4}  # fmt: skip
    draft = {"method": "draft", "tokens": 4, "acceptance_rate": 0.7, "draft_model": {"preset": "llama-3.1-70b"}}
    data = problem(client, "/v1/plan/serving", body | {"speculative": draft})
    assert ["body", "speculative", "draft_model"] in locs(data)
    assert "70,553,706,496" in data["detail"] and "8,030,261,248" in data["detail"]
    ok(client, "/v1/plan/serving", body | {"speculative": draft | {"draft_model": {"preset": "llama-3.2-1b"}}})


def test_a_mixture_unfit_with_speculation_says_expert_parallel_units_were_not_tried(client) -> None:
    # DeepSeek-V3 in FP8 (627 GiB) fits no tensor-parallel degree of one H100 node; without speculative decoding an
    # expert-parallel unit serves it, with MTP the plan does not model those units and its reason says so
    body = {"model": {"preset": "deepseek-v3"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "concurrent_users": 4}
    assert ok(client, "/v1/plan/serving", body)["options"][0]["ep"] == 16
    mtp = ok(client, "/v1/plan/serving", body | {"speculative": {"method": "mtp", "tokens": 1, "acceptance_rate": 0.8}})
    option = mtp["options"][0]
    assert option["fits"] is False
    assert option["reason"].startswith("at tp=8 the weights (626.8 GiB)")
    assert option["reason"].endswith("expert-parallel units are not considered with speculative decoding (assumptions: "
                                     "expert_parallel)")  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"speculative": {"method": "eagle", "tokens": 3, "acceptance_rate": 1.5}}, ["body", "speculative", "acceptance_rate"]),
        ({"speculative": {"method": "eagle", "tokens": 0, "acceptance_rate": 0.5}}, ["body", "speculative", "tokens"]),
        ({"speculative": {"method": "draft", "tokens": 2, "acceptance_rate": 0.5}}, ["body", "speculative"]),
        ({"speculative": {"method": "medusa", "tokens": 2, "acceptance_rate": 0.5}}, ["body", "speculative", "method"]),
        ({"prefix_cache_hit_rate": 1.2}, ["body", "prefix_cache_hit_rate"]),
        ({"prefix_cache_hit_rate": -0.1}, ["body", "prefix_cache_hit_rate"]),
    ],
)
def test_bad_speculation_or_hit_rate_is_a_422(client, extra: dict, loc: list) -> None:
    data = problem(client, "/v1/plan/serving", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm"} | extra)
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data


@pytest.mark.parametrize("load", [{"concurrent_users": 200}, {"requests_per_second": 5.0}, {}])
def test_the_other_degrees_are_listed_at_the_same_load(client, load: dict) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
            "output_tokens": 500} | load  # fmt: skip
    option = ok(client, "/v1/plan/serving", body)["options"][0]
    others = option["alternatives"]
    assert sorted(a["tp"] for a in others) == [tp for tp in (1, 2, 4, 8) if tp != option["tp"]]
    for alt in others:  # none serves the load on fewer GPU-seconds per output token than the chosen degree
        assert alt["n_gpus"] == alt["tp"] * alt["replicas"]
        if "requests_per_second" in load:  # the fleet for the arrival rate: its GPUs
            assert alt["n_gpus"] >= option["n_gpus"]
        else:
            assert alt["usd_per_million_output_tokens"] >= option["usd_per_million_output_tokens"] * (1 - 1e-9)
        assert (
            alt["time_per_output_token_seconds"] > 0
            and alt["time_to_first_token_seconds"] <= alt["p99_time_to_first_token_seconds"]
        )
        if "concurrent_users" in load:
            assert alt["replicas"] * alt["batch_per_replica"] >= 200


DISAGGREGATED = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
                 "output_tokens": 500, "requests_per_second": 10}  # fmt: skip


def test_disaggregated_pools_are_sized_to_each_other(client) -> None:
    colocated = ok(client, "/v1/plan/serving", DISAGGREGATED)["options"][0]
    data = ok(client, "/v1/plan/serving", DISAGGREGATED | {"disaggregated": True, "prefill_gpu": "h200-sxm"})
    option = data["options"][0]
    parts = option["disaggregated"]
    prefill, decode = parts["prefill"], parts["decode"]
    assert (prefill["gpu"], decode["gpu"], option["gpu"]) == ("h200-sxm", "h100-sxm", "h100-sxm")
    assert option["n_gpus"] == prefill["n_gpus"] + decode["n_gpus"] and decode["n_gpus"] == option["tp"] * option["replicas"]
    # the prefill pool: each replica an M/D/1 queue at most 80 % busy with 10 prompts a second over the pool
    assert prefill["utilization"] == pytest.approx(10 / prefill["replicas"] * prefill["seconds_per_request"])
    assert prefill["utilization"] <= 0.8
    # decode steps carry no prompt chunks: a shorter time per output token than the colocated plan's
    assert option["time_per_output_token_seconds"] < 0.8 * colocated["time_per_output_token_seconds"]
    assert option["time_to_first_token_seconds"] == pytest.approx(
        parts["prefill_wait_seconds"] + prefill["seconds_per_request"] + parts["kv_transfer_seconds"]
        + option["time_per_output_token_seconds"]
    )  # fmt: skip
    assert option["usd_per_hour"] == pytest.approx(prefill["usd_per_hour"] + decode["usd_per_hour"])
    assert option["output_tokens_per_second"] == pytest.approx(10 * 500)
    assert "DistServe" in data["assumptions"]["disaggregated"]


def test_disaggregated_pools_meet_both_latency_bounds(client) -> None:
    bounds = {"max_time_to_first_token_seconds": 1.0, "max_time_per_output_token_seconds": 0.03}
    option = ok(client, "/v1/plan/serving", DISAGGREGATED | bounds | {"disaggregated": True})["options"][0]
    assert option["p99_time_to_first_token_seconds"] <= 1.0 and option["time_per_output_token_seconds"] <= 0.03
    colocated = ok(client, "/v1/plan/serving", DISAGGREGATED | bounds)["options"][0]
    assert option["n_gpus"] <= colocated["n_gpus"]  # the goodput DistServe reports: no more GPUs for both bounds


@pytest.mark.parametrize("load", [{}, {"concurrent_users": 7}, {"scenario": "offline", "n_gpus": 8}])
def test_a_disaggregated_request_of_one_output_token_and_no_prompt_is_an_answer(client, load: dict) -> None:
    # no prompt to prefill or send, one token to decode: the request's latency is that one step, not 0
    body = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "prompt_tokens": 0, "output_tokens": 1,
            "disaggregated": True} | load  # fmt: skip
    option = ok(client, "/v1/plan/serving", body)["options"][0]
    assert option["fits"] and option["latency_seconds"] == pytest.approx(option["time_per_output_token_seconds"])
    assert option["output_tokens_per_second"] == pytest.approx(
        option["batch_per_replica"] * option["replicas"] / option["latency_seconds"]
    )


def test_a_pool_that_cannot_serve_is_unfit_and_pools_need_disaggregation(client) -> None:
    # Llama 3.1 405B in bf16 (810 GB) holds on no node of 8 H100 (640 GB)
    body = DISAGGREGATED | {"model": {"preset": "llama-3.1-405b"}, "weights_dtype": "bf16", "disaggregated": True}
    data = ok(client, "/v1/plan/serving", body)
    assert data["options"][0]["fits"] is False and data["options"][0]["reason"]
    problem(client, "/v1/plan/serving", DISAGGREGATED | {"prefill_gpu": "h200-sxm"})


MLPERF = {"model": {"preset": "llama-2-70b"}, "weights_dtype": "fp8", "kv_dtype": "fp8", "engine": "trtllm",
          "prompt_tokens": 294, "output_tokens": 294, "n_gpus": 8}  # fmt: skip
MLPERF_BOUNDS = {"max_time_to_first_token_seconds": 2, "max_time_per_output_token_seconds": 0.2}


@pytest.mark.parametrize(("gpu", "offline", "server"), [("h100-sxm", 24_525, 21_606), ("h200-sxm", 31_303, 29_228)])
def test_mlperf_offline_and_server_tokens_per_second(client, gpu: str, offline: float, server: float) -> None:
    # MLPerf Inference v4.1 closed, NVIDIA, TensorRT-LLM, Llama-2-70B on 8 GPUs (TTFT <= 2 s p99, TPOT <= 200 ms);
    # the mean input length is taken as the reference's mean output (294 tokens), as ACCURACY.md states
    off = ok(client, "/v1/plan/serving", MLPERF | {"gpu": gpu, "scenario": "offline"})["options"][0]
    assert off["output_tokens_per_second"] == pytest.approx(offline, rel=0.15)
    assert off["n_gpus"] == off["tp"] * off["replicas"] <= 8
    srv = ok(client, "/v1/plan/serving", MLPERF | MLPERF_BOUNDS | {"gpu": gpu, "scenario": "server"})["options"][0]
    assert srv["output_tokens_per_second"] == pytest.approx(server, rel=0.15)
    assert srv["p99_time_to_first_token_seconds"] <= 2 and srv["time_per_output_token_seconds"] <= 0.2


@pytest.mark.parametrize(
    "extra", [{"scenario": "offline"}, {"n_gpus": 8}, {"scenario": "server", "n_gpus": 8, "concurrent_users": 4},
              {"scenario": "batch", "n_gpus": 8}, {"scenario": "offline", "n_gpus": 0}],
)  # fmt: skip
def test_a_scenario_needs_its_gpus_and_no_other_load(client, extra: dict) -> None:
    problem(client, "/v1/plan/serving", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm"} | extra)


def test_a_mixture_at_scale_is_served_expert_parallel_with_data_parallel_attention(client) -> None:
    # DeepSeek-V3 §3.4 and open-infra-index day 6: at scale, routed experts sharded over nodes and attention data-parallel
    body = {"model": {"preset": "deepseek-v3"}, "gpu": "h200-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
            "output_tokens": 1000, "concurrent_users": 4000, "engine": "sglang"}  # fmt: skip
    data = ok(client, "/v1/plan/serving", body)
    option = data["options"][0]
    assert option["ep"] is not None and option["ep"] % 8 == 0 and option["dp_attention"] is True and option["tp"] == 1
    assert option["n_gpus"] == option["ep"] * option["replicas"]
    tensor_parallel = [a for a in option["alternatives"] if a["ep"] is None]
    assert [a["tp"] for a in tensor_parallel] == [8] and tensor_parallel[0]["dp_attention"] is False
    for alt in option["alternatives"]:  # the cheapest layout at the load was chosen
        assert alt["usd_per_million_output_tokens"] >= option["usd_per_million_output_tokens"]
    # the latent cache is replicated over tensor ranks but not over data-parallel ones: the unit holds more
    assert option["usd_per_million_output_tokens"] < 0.5 * tensor_parallel[0]["usd_per_million_output_tokens"]
    assert "dp_attention" in data["assumptions"]["expert_parallel"]
    dense = ok(client, "/v1/plan/serving", body | {"model": {"preset": "llama-3.1-70b"}})
    assert dense["options"][0]["ep"] is None and dense["options"][0]["dp_attention"] is False
    assert "expert_parallel" not in dense["assumptions"]


def test_disaggregated_pools_of_a_mixture_may_be_expert_parallel_units(client) -> None:
    # DeepSeek's deployment (open-infra-index day 6): prefill and decode on their own expert-parallel units
    body = {"model": {"preset": "deepseek-v3"}, "gpu": "h200-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
            "output_tokens": 1000, "requests_per_second": 100, "engine": "sglang", "disaggregated": True}  # fmt: skip
    option = ok(client, "/v1/plan/serving", body)["options"][0]
    prefill, decode = option["disaggregated"]["prefill"], option["disaggregated"]["decode"]
    assert decode["ep"] is not None and decode["dp_attention"] is True and option["ep"] == decode["ep"]
    assert decode["n_gpus"] == decode["ep"] * decode["replicas"] and option["n_gpus"] == prefill["n_gpus"] + decode["n_gpus"]
    assert prefill["n_gpus"] == (prefill["ep"] or prefill["tp"]) * prefill["replicas"]
    assert option["time_per_output_token_seconds"] > 0 and option["usd_per_million_output_tokens"] > 0


def test_expert_parallel_units_take_the_stated_imbalance_and_overlap(client) -> None:
    # the busiest GPU's routed tokens over the mean (default 1.18, SGLang's measured EP32 imbalance) slows a unit;
    # two micro-batches put the all-to-all under the compute (DeepSeek-V3 §3.4; SGLang's two-batch overlap)
    body = {"model": {"preset": "deepseek-v3"}, "gpu": "h200-sxm", "weights_dtype": "fp8", "prompt_tokens": 2000,
            "output_tokens": 1000, "concurrent_users": 4000, "engine": "sglang"}  # fmt: skip
    default = ok(client, "/v1/plan/serving", body)
    assert "1.18 x the mean: default" in default["assumptions"]["expert_parallel"]
    balanced = ok(client, "/v1/plan/serving", body | {"moe_load_imbalance": 1.0})
    assert "1.00 x the mean (request)" in balanced["assumptions"]["expert_parallel"]
    assert balanced["options"][0]["ep"] is not None
    cost = "usd_per_million_output_tokens"
    assert balanced["options"][0][cost] < default["options"][0][cost]
    overlapped = ok(client, "/v1/plan/serving", body | {"micro_batch_overlap": True})
    assert "two micro-batches" in overlapped["assumptions"]["expert_parallel"]
    # on EP16 a GPU holds 16 routed experts a layer (~41 GB), which the second micro-batch reads again: at 250
    # sequences a GPU that costs more than the two-node all-to-all it hides (the core tests where it pays off)
    assert overlapped["options"][0]["ep"] == default["options"][0]["ep"] == 16
    assert overlapped["options"][0][cost] > default["options"][0][cost]
    assert "moe_load_imbalance" in str(problem(client, "/v1/plan/serving", body | {"moe_load_imbalance": 0.5}))


def test_prompt_spread_and_prefix_reads_are_request_fields(client) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "weights_dtype": "fp8", "kv_dtype": "fp8",
            "prompt_tokens": 8000, "output_tokens": 500, "concurrent_users": 16, "tp": 2}  # fmt: skip
    flat = ok(client, "/v1/plan/serving", body)
    spread = ok(client, "/v1/plan/serving", body | {"prompt_length_cv": 1.0})
    assert "one length" in flat["assumptions"]["prompt_lengths"] and "E[L^2]" in spread["assumptions"]["prompt_lengths"]
    assert spread["options"][0]["time_to_first_token_seconds"] > flat["options"][0]["time_to_first_token_seconds"]
    hits = body | {"prefix_cache_hit_rate": 0.5}
    kept = ok(client, "/v1/plan/serving", hits)
    read = ok(client, "/v1/plan/serving", hits | {"prefix_read_bytes_per_s": 40 * 2**30})
    assert read["options"][0]["time_to_first_token_seconds"] > kept["options"][0]["time_to_first_token_seconds"]
    assert "read in" in read["assumptions"]["prefix_cache"] and "no copy" in kept["assumptions"]["prefix_cache"]
    idle = ok(client, "/v1/plan/serving", body | {"prefix_read_bytes_per_s": 40 * 2**30})
    assert "no effect" in idle["assumptions"]["prefix_cache"]
    assert idle["options"][0]["time_to_first_token_seconds"] == flat["options"][0]["time_to_first_token_seconds"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt_length_cv", -0.1),
        ("prompt_length_cv", 11),
        ("prefix_read_bytes_per_s", 0),
        ("prefix_read_bytes_per_s", 2 * 10**14),
    ],  # fmt: skip
)
def test_prompt_spread_and_prefix_reads_out_of_range_are_422(client, field: str, value: float) -> None:
    body = {"model": {"preset": "llama-3.1-70b"}, "gpu": "h100-sxm", "prompt_tokens": 800, "output_tokens": 100,
            "concurrent_users": 4, field: value}  # fmt: skip
    assert locs(problem(client, "/v1/plan/serving", body)) == [["body", field]]


def test_an_open_loop_fleet_is_priced_by_every_hour_it_is_paid(client) -> None:
    # Poisson arrivals: the tokens served at their prices add up to the fleet's hourly price (idle time included),
    # whatever the prefix cache does to the replica's batch
    body = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "prompt_tokens": 2000, "output_tokens": 200,
            "requests_per_second": 3.0, "usd_per_gpu_hour": 2.0}  # fmt: skip
    for extra in ({}, {"prefix_cache_hit_rate": 0.5}):
        (o,) = ok(client, "/v1/plan/serving", body | extra)["options"]
        per_second = o["n_gpus"] * 2.0 / 3600
        assert o["usd_per_hour"] == pytest.approx(o["n_gpus"] * 2.0)
        assert o["output_tokens_per_second"] == pytest.approx(3.0 * 200)
        cached = round(0.5 * 2000) if extra else 0
        spend = 3.0 * (200 * o["usd_per_million_output_tokens"] + (2000 - cached) * o["usd_per_million_input_tokens"]
                       + cached * (o["usd_per_million_cached_input_tokens"] or 0.0)) / 1e6  # fmt: skip
        assert spend == pytest.approx(per_second, rel=1e-3)
