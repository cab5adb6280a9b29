"""Budget answers timed by the planner: dollars buy the FLOPs of the size's own best plan on the
request's cluster (a fixed point), as /v1/cost/training prices the same run; lifetime optima in
dollars beside FLOPs."""

from __future__ import annotations

import math

import pytest

from tests.api.test_calculators import locs, problem
from tests.api.test_cost import ok

# LLaMA 65B (Touvron et al. 2023 Table 2): 1.4T tokens on 2,048 A100-80GB
LLAMA_65B = {"n_layers": 80, "d_model": 8192, "n_heads": 64, "d_ff": 22016, "vocab_size": 32000, "ffn": "swiglu",
             "norm": "rmsnorm", "max_seq_len": 2048}  # fmt: skip


def _cost_then_budget(client, model: dict, tokens: float, gpu: str, n_gpus: int) -> tuple[dict, dict]:
    run = ok(client, "/v1/cost/training", {"model": model, "tokens": tokens, "gpu": gpu, "n_gpus": n_gpus})
    assert run["plan"] is not None  # timed by the planner
    bought = ok(client, "/v1/budget", {"budget_usd": run["cost_usd"], "gpu": gpu, "n_gpus": n_gpus, "model": model})
    return run, bought


@pytest.mark.parametrize(
    ("model", "tokens", "gpu", "n_gpus"),
    [
        (LLAMA_65B, 1.4e12, "a100-80gb-sxm", 2048),
        # Llama 3 405B: 3.8e25 FLOPs on 16,384 H100 (Dubey et al. 2024 §3.4)
        ({"preset": "llama-3.1-405b"}, 3.8e25 / (6 * 405_853_388_800), "h100-sxm", 16384),
    ],
    ids=["llama-65b", "llama-3-405b"],
)
def test_budget_buys_the_flops_cost_training_charges_for_them(client, model, tokens, gpu, n_gpus) -> None:
    run, bought = _cost_then_budget(client, model, tokens, gpu, n_gpus)
    assert bought["time_from"] == "plan" and bought["fits"] is True
    assert bought["compute_flops"] == pytest.approx(run["total_flops"], rel=0.02)
    assert bought["tokens"] == pytest.approx(tokens, rel=0.02)
    assert bought["gpu_hours"] == pytest.approx(run["gpu_hours"], rel=1e-9)
    assert bought["wall_clock_days"] == pytest.approx(run["wall_clock_days"], rel=0.02)
    assert bought["mfu"] == pytest.approx(run["mfu"], rel=0.02)
    assert bought["plan"]["mfu"] == pytest.approx(run["plan"]["mfu"]) and bought["architecture"]["source"] == "request"


def test_the_family_shape_of_the_same_size_buys_within_a_few_percent(client) -> None:
    # LLaMA 65B's size with Llama 3's shape (a 128K vocabulary, GQA): another architecture, so
    # another plan; its FLOPs stay within 5 % of the original's
    run = ok(client, "/v1/cost/training", {"model": LLAMA_65B, "tokens": 1.4e12, "gpu": "a100-80gb-sxm", "n_gpus": 2048})
    bought = ok(client, "/v1/budget", {"budget_usd": run["cost_usd"], "gpu": "a100-80gb-sxm", "n_gpus": 2048,
                                       "n_params": 65.2e9})  # fmt: skip
    assert bought["architecture"]["source"] == "llama3"
    assert bought["architecture"]["params"] == pytest.approx(65.2e9, rel=0.02)
    assert bought["compute_flops"] == pytest.approx(run["total_flops"], rel=0.05)


def test_a_budget_on_a_cluster_is_the_fixed_point_of_its_own_plan(client) -> None:
    data = ok(client, "/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm", "n_gpus": 256})
    assert data["time_from"] == "plan" and data["n_gpus"] == 256 and data["cost_usd"] == pytest.approx(1e6)
    price = data["price"]["usd_per_gpu_hour"]
    assert data["gpu_hours"] == pytest.approx(1e6 / price)
    assert data["wall_clock_days"] == pytest.approx(1e6 / price / 256 / 24)
    # the size is the law's optimum for the FLOPs its own plan buys, and the architecture planned is that size
    assert data["params"] == data["optimal_params"]
    assert data["architecture"]["params"] == pytest.approx(data["params"], rel=0.02)
    plan = data["plan"]
    assert plan["tp"] * plan["pp"] * plan["dp"] * plan["cp"] == 256
    assert plan["cost_usd"] == pytest.approx(1e6, rel=1e-6)
    # the plan's throughput, over the paid hours with the downtime, is what the dollars buy
    expected = 6 * plan["tokens_per_second"] * data["assumptions"]["architecture_params"] * data["gpu_hours"] / 256 * 3600 * 0.9
    assert data["compute_flops"] == pytest.approx(expected, rel=1e-9)
    assert 0.25 < data["mfu"] < 0.6 and "plan(s)" in data["assumptions"]["fixed_point"]
    # the catalog MFU's answer differs: that is what the planner corrects
    at_mfu = ok(client, "/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm"})
    assert at_mfu["time_from"] == "mfu" and "give n_gpus or deadline_days" in at_mfu["assumptions"]["time_from"]


def test_each_alternative_is_timed_by_its_own_plan_and_none_beats_the_optimum(client) -> None:
    data = ok(client, "/v1/budget", {"budget_usd": 2e6, "gpu": "h100-sxm", "n_gpus": 512})
    labels = [a["label"] for a in data["alternatives"]]
    assert labels == ["isoflop 0.5x", "isoflop 2x", "tokens_per_param 100", "tokens_per_param 500"]
    for alt in data["alternatives"]:
        assert alt["mfu"] is not None and alt["plan"]
        assert alt["compute_flops"] == pytest.approx(6 * alt["params"] * alt["tokens"], rel=1e-9)
        assert alt["predicted_loss"] >= data["predicted_loss"] - 1e-3  # the same dollars, another size
    assert len({a["mfu"] for a in data["alternatives"]}) > 1  # sizes run at their own efficiency


def test_an_alternative_answers_the_architecture_its_plan_times(client) -> None:
    """$300 at $2/GPU-hour on 8 H100: the optimum is about 1e9 parameters, and half of it (4.9e8) and the
    size at 100 tokens a parameter (5.3e8) both come out of Llama 3's shape rules as the same 435,463,168-
    parameter model (20 layers of d_model 1,024, 8 heads, d_ff 3,584, its 128,256 x 1,024 embedding
    tied): 20 x (4 x 1024^2 + 3 x 1024 x 3584 + 2 x 1024) + 1024 + 128256 x 1024. One plan, one run: the
    same params, tokens and loss (they used to answer the two sizes asked for, trained on tokens of
    FLOPs the other architecture's plan bought, and non-integer counts)."""
    data = ok(client, "/v1/budget", {"budget_usd": 300, "gpu": "h100-sxm", "n_gpus": 8, "usd_per_gpu_hour": 2.0})
    alts = {a["label"]: a for a in data["alternatives"]}
    half, over = alts["isoflop 0.5x"], alts["tokens_per_param 100"]
    assert 20 * (4 * 1024**2 + 3 * 1024 * 3584 + 2 * 1024) + 1024 + 128256 * 1024 == 435_463_168
    assert half["params"] == over["params"] == 435_463_168
    assert half["compute_flops"] == over["compute_flops"] and half["tokens"] == over["tokens"]
    assert half["tokens"] == round(half["compute_flops"] / (6 * 435_463_168))
    loss = 1.6934 + 406.4 / 435_463_168**0.3392 + 410.7 / half["tokens"] ** 0.2849  # Hoffmann et al. 2022 eq. 2, unrounded fit
    assert half["predicted_loss"] == over["predicted_loss"] == pytest.approx(loss, rel=1e-12)
    assert all(a["params"] == round(a["params"]) and a["tokens"] == round(a["tokens"]) for a in alts.values())


def test_a_deadline_chooses_the_cluster_that_spends_the_budget_in_time(client) -> None:
    data = ok(client, "/v1/budget", {"budget_usd": 5e6, "gpu": "h100-sxm", "deadline_days": 30})
    need = data["gpu_hours"] / (30 * 24)
    assert data["n_gpus"] % 8 == 0 and need <= data["n_gpus"] < need + 8
    assert data["wall_clock_days"] <= 30 and data["assumptions"]["n_gpus_from"] == "the deadline"
    assert data["plan"]["n_gpus"] == data["n_gpus"]


def test_a_deadline_cluster_that_cannot_split_the_batch_gives_way_to_a_larger_one(client) -> None:
    """$5,000 of H100s within 6 hours needs 33 nodes, which cannot split the default 512-sequence batch;
    the series' next counts (48 and 64 nodes) spend it sooner, and 64 buys the most FLOPs (it used to
    answer fits: false at a stated MFU, blaming an n_gpus the request never gave)."""
    data = ok(client, "/v1/budget", {"budget_usd": 5000, "gpu": "h100-sxm", "deadline_days": 0.25})
    assert data["fits"] is True and data["time_from"] == "plan" and data["n_gpus"] == 512
    assert data["wall_clock_hours"] <= 6 and data["cost_usd"] == pytest.approx(5000)
    on_512 = ok(client, "/v1/budget", {"budget_usd": 5000, "gpu": "h100-sxm", "n_gpus": 512})
    assert data["compute_flops"] == on_512["compute_flops"] and data["params"] == on_512["params"]


def test_flops_or_a_loss_in_keep_the_laws_shape_and_are_timed_by_its_plan(client) -> None:
    law_only = ok(client, "/v1/budget", {"compute_flops": 5.76e23})
    planned = ok(client, "/v1/budget", {"compute_flops": 5.76e23, "gpu": "h100-sxm", "n_gpus": 1024})
    for name in ("params", "tokens", "predicted_loss", "optimal_params"):
        assert planned[name] == law_only[name]  # Chinchilla's arithmetic does not move
    assert planned["time_from"] == "plan" and planned["cost_usd"] == pytest.approx(
        planned["gpu_hours"] * planned["price"]["usd_per_gpu_hour"]
    )
    loss = ok(client, "/v1/budget/for-loss", {"target_loss": 2.0, "gpu": "h100-sxm", "n_gpus": 1024})
    assert loss["time_from"] == "plan" and loss["predicted_loss"] == pytest.approx(2.0)
    assert loss["plan"]["n_gpus"] == 1024 and loss["wall_clock_hours"] * 1024 == pytest.approx(loss["gpu_hours"])


def test_a_deadline_no_cluster_meets_is_a_reasoned_answer(client) -> None:
    short = ok(client, "/v1/budget", {"compute_flops": 5.76e23, "gpu": "h100-sxm", "deadline_days": 0.01})
    assert short["fits"] is False and short["reason"].startswith("deadline_days") and short["time_from"] == "mfu"
    huge = ok(client, "/v1/budget", {"budget_usd": 1e10, "gpu": "h100-sxm", "deadline_days": 0.5})
    assert huge["fits"] is False and huge["reason"].startswith("deadline_days")
    # $50 on 8,192 GPUs is six seconds of training; a step of a 69-billion-token batch is longer
    step = ok(
        client, "/v1/budget", {"budget_usd": 50, "gpu": "h100-sxm", "n_gpus": 8192, "global_batch_tokens": 8192 * 8192 * 1024}
    )
    assert step["fits"] is False and step["reason"].startswith("budget_usd: one step takes")


def test_a_deadline_at_a_stated_mfu_is_met_or_said_to_be_unmet(client) -> None:
    """With the request's MFU no plan times the run, yet the deadline still sizes the cluster: $1M at
    $2/GPU-hour is 500,000 GPU-hours, within 10 days 2,083.3 GPUs, so 261 nodes of 8 (2,088). $10B is
    5e9 GPU-hours, within half a day 4.2e8 GPUs, more than any cluster: fits false and why (it used
    to answer n_gpus and wall clock null with fits null, the deadline silently dropped)."""
    at = {"gpu": "h100-sxm", "usd_per_gpu_hour": 2.0, "mfu": 0.4}
    met = ok(client, "/v1/budget", at | {"budget_usd": 1e6, "deadline_days": 10})
    assert met["n_gpus"] == 2088 and met["wall_clock_hours"] == pytest.approx(500_000 / 2088)
    assert met["fits"] is None and met["reason"] is None and met["time_from"] == "mfu"
    unmet = ok(client, "/v1/budget", at | {"budget_usd": 1e10, "deadline_days": 0.5})
    assert unmet["compute_flops"] == pytest.approx(5e9 * 3600 * 989.5e12 * 0.4)  # still what the dollars buy
    assert unmet["fits"] is False and unmet["n_gpus"] is None and unmet["wall_clock_hours"] is None
    assert unmet["reason"] == "deadline_days: spending 5e+09 GPU-hours within 0.5 days needs more than 131,072 GPUs"
    # FLOPs in: Chinchilla's 5.76e23 at 0.4 of 989.5 TFLOP/s is 404,245 GPU-hours; in 0.24 hours 1.7M GPUs
    flops = ok(client, "/v1/budget", at | {"compute_flops": 5.76e23, "deadline_days": 0.01})
    assert flops["gpu_hours"] == pytest.approx(5.76e23 / (989.5e12 * 0.4) / 3600)
    assert flops["fits"] is False and flops["reason"].startswith("deadline_days: spending 4.04e+05 GPU-hours")
    loss = ok(client, "/v1/budget/for-loss", at | {"target_loss": 1.9, "deadline_days": 0.01})
    assert loss["fits"] is False and loss["reason"].startswith("deadline_days: spending")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"budget_usd": 1.0, "n_gpus": 8}, ["body", "budget_usd"]),  # under one GPU-hour
        ({"budget_usd": 1e6, "n_gpus": 8, "deadline_days": 3}, ["body"]),
        ({"budget_usd": 1e6, "n_gpus": 8, "shape_family": "gpt2"}, ["body", "shape_family"]),
        ({"budget_usd": 1e6, "n_gpus": 8, "model": {"preset": "llama-2-7b"}, "n_params": 7e9}, ["body"]),
        ({"budget_usd": 1e6, "n_gpus": 8, "model": {"n_params": 7e9}}, ["body", "model"]),
        ({"budget_usd": 1e6, "n_gpus": 8, "deadline_days": 0}, ["body", "deadline_days"]),
    ],
)
def test_bad_budget_input_is_a_422_naming_the_field(client, body: dict, loc: list) -> None:
    data = problem(client, "/v1/budget", {"gpu": "h100-sxm"} | body)
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data


MEMORY_BOUND = {"prompt_tokens": 200, "output_tokens": 800, "max_time_per_output_token_seconds": 0.01}


def test_memory_bound_serving_moves_the_dollar_optimum_below_the_flop_optimum(client) -> None:
    # 10^13 served tokens of decode-heavy traffic at 100 tokens/s per user: each decode step reads the
    # weights for few sequences, so a served FLOP costs more than a training FLOP
    body = {"target_loss": 2.0, "inference_tokens": 1e13, "gpu": "h100-sxm", "usd_per_gpu_hour": 3.0} | MEMORY_BOUND
    data = ok(client, "/v1/budget/lifetime", body)
    flop, dollar = data["flop_optimal"], data["dollar_optimal"]
    assert flop["params"] == data["params"] and flop["total_usd"] == pytest.approx(data["total_cost_usd"])
    assert flop["serving_usd_per_flop_over_training"] > 1
    assert dollar["params"] < 0.9 * flop["params"]
    assert (
        data["usd_saved"] == pytest.approx(flop["total_usd"] - dollar["total_usd"])
        and data["usd_saved"] > 0.05 * flop["total_usd"]
    )
    for choice in (flop, dollar):  # both reach the same loss, each on its own shape and serving layout
        assert choice["total_usd"] == pytest.approx(choice["training_usd"] + choice["serving_usd"])
        assert choice["architecture"]["params"] == pytest.approx(choice["params"], rel=0.02)
        assert choice["serving"].startswith("h100-sxm: tp=")


def test_cheap_served_flops_move_the_dollar_optimum_up_and_it_never_costs_more(client) -> None:
    # prefill-heavy traffic at full batches: a served FLOP is cheaper than a training one
    body = {"target_loss": 2.0, "inference_tokens": 1e13, "gpu": "h100-sxm", "prompt_tokens": 1000, "output_tokens": 200}
    data = ok(client, "/v1/budget/lifetime", body)
    assert data["flop_optimal"]["serving_usd_per_flop_over_training"] < 1
    assert data["dollar_optimal"]["params"] >= data["flop_optimal"]["params"] and data["usd_saved"] >= 0


def test_lifetime_on_a_cluster_times_training_by_each_sizes_plan(client) -> None:
    body = {"target_loss": 2.1, "inference_tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 256} | MEMORY_BOUND
    data = ok(client, "/v1/budget/lifetime", body)
    assert "best plan" in data["assumptions"]["training_time_from"]
    mfus = {data["flop_optimal"]["training_mfu"], data["dollar_optimal"]["training_mfu"]}
    assert all(0.1 < m < 0.7 for m in mfus)
    assert problem(client, "/v1/budget/lifetime", body | {"deadline_days": 30})["errors"]
    assert math.isfinite(data["usd_saved"])


def test_an_unknown_serving_gpu_names_its_own_field(client) -> None:
    body = {"target_loss": 2.0, "inference_tokens": 1e12, "gpu": "h100-sxm", "serving_gpu": "h900"}
    assert locs(problem(client, "/v1/budget/lifetime", body)) == [["body", "serving_gpu"]]
    assert locs(problem(client, "/v1/budget/lifetime", body | {"gpu": "h900", "serving_gpu": "h100-sxm"})) == [["body", "gpu"]]


def test_the_serving_gpus_price_states_its_date_and_source(client) -> None:
    """The serving GPU's catalog price carries its as-of date and source, as the training price does."""
    current = client.get("/v1/prices?gpu_id=l40s&pricing=on_demand&latest=true&limit=500").json()["items"]
    cheapest = min(current, key=lambda p: (p["usd_per_gpu_hour"], p["provider_id"]))
    body = {"target_loss": 2.0, "inference_tokens": 2e13, "gpu": "h100-sxm", "serving_gpu": "l40s"}
    notes = ok(client, "/v1/budget/lifetime", body)["assumptions"]
    assert notes["serving_price_usd_per_gpu_hour"] == cheapest["usd_per_gpu_hour"]
    assert (notes["serving_price_as_of"], notes["serving_price_source"]) == (cheapest["as_of"], cheapest["source"])
    explicit = ok(client, "/v1/budget/lifetime", body | {"usd_per_gpu_hour": 2.0})["assumptions"]
    assert (explicit["serving_price_as_of"], explicit["serving_price_source"]) == (None, "request")
