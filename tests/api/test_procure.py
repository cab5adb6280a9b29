"""``POST /v1/plan`` with pools carrying ``max_n_gpus``: what to rent. GPUs owned at $0 are used
before renting, a tighter deadline never costs less, a budget answer stays within its budget, and
with one pool type the answer is the single-type deadline answer; the bad inputs."""

from __future__ import annotations

import math

import pytest

from tests.api.test_calculators import problem
from tests.api.test_cost import ok

EIGHT_B = {"model": {"preset": "llama-3-8b"}, "seq_len": 4096, "tokens": 2e11, "top_k": 3}


def test_one_pool_type_answers_as_the_single_type_deadline_search(client) -> None:
    fleet = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 131072}]})
    alone = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "gpu": "h100-sxm"})
    mine, theirs = fleet["plans"][0], alone["plans"][0]
    for name in ("gpu", "n_gpus", "tp", "pp", "dp", "micro_batch_size", "recompute", "step_time_seconds", "training_hours"):
        assert mine[name] == theirs[name], name
    assert mine["cost_usd"] == pytest.approx(theirs["cost_usd"], rel=1e-12)
    assert fleet["best_homogeneous"]["n_gpus"] == mine["n_gpus"]
    assert fleet["assumptions"]["fleet"].startswith(f"{mine['n_gpus']} h100-sxm")
    assert "planned" in fleet["search"]["searched"] and not fleet["search"]["cut"]


def test_gpus_owned_at_no_cost_are_used_before_renting(client) -> None:
    rent = [{"gpu": "h100-sxm", "max_n_gpus": 4096}]
    rented = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 2, "pools": rent})["plans"][0]
    assert rented["n_gpus"] > 64  # the deadline needs more than the 64 owned
    owned = ok(
        client,
        "/v1/plan",
        EIGHT_B | {"deadline_days": 2, "pools": rent + [{"gpu": "h100-sxm", "max_n_gpus": 64, "usd_per_gpu_hour": 0}]},
    )
    best = owned["plans"][0]
    price = rented["cost_usd"] / rented["gpu_hours"]
    # the 64 owned GPUs are free: only the rest is paid for
    assert best["n_gpus"] >= 64
    assert best["cost_usd"] == pytest.approx(best["training_hours"] * (best["n_gpus"] - 64) * price, rel=1e-9)
    assert best["cost_usd"] < rented["cost_usd"]
    # a type owned outright that meets the deadline alone costs nothing: nothing is rented
    free = ok(
        client,
        "/v1/plan",
        EIGHT_B | {"deadline_days": 30, "pools": rent + [{"gpu": "a100-80gb-sxm", "max_n_gpus": 256, "usd_per_gpu_hour": 0}]},
    )
    assert free["plans"][0]["gpu"] == "a100-80gb-sxm" and free["plans"][0]["cost_usd"] == 0
    assert (
        "a100-80gb-sxm (limited, owned or held)" not in free["search"]["searched"]
        or "a100-80gb-sxm" in free["search"]["searched"]
    )


def test_a_tighter_deadline_never_costs_less(client) -> None:
    pools = [{"gpu": "h100-sxm", "max_n_gpus": 4096}, {"gpu": "a100-80gb-sxm", "max_n_gpus": 4096}]
    costs = [
        ok(client, "/v1/plan", EIGHT_B | {"deadline_days": days, "pools": pools})["plans"][0]["cost_usd"] for days in (40, 10, 3)
    ]
    assert costs[0] <= costs[1] <= costs[2]


def test_a_budget_answer_stays_within_it_and_more_dollars_never_finish_later(client) -> None:
    pools = [{"gpu": "h100-sxm", "max_n_gpus": 1024}, {"gpu": "a100-80gb-sxm", "max_n_gpus": 1024}]
    hours = []
    for budget in (150_000, 600_000):
        data = ok(client, "/v1/plan", EIGHT_B | {"budget_usd": budget, "pools": pools})
        best = data["plans"][0]
        assert best["cost_usd"] <= budget
        assert all(p["training_hours"] >= best["training_hours"] for p in data["plans"])
        hours.append(best["training_hours"])
    assert hours[1] <= hours[0]


def test_a_limited_pool_is_mixed_with_a_rented_type(client) -> None:
    # 16 owned H100s at a sunk price cannot meet the deadline alone: mixes with rented A100s are planned
    data = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "pools": [
        {"gpu": "h100-sxm", "max_n_gpus": 16, "usd_per_gpu_hour": 1.0}, {"gpu": "a100-80gb-sxm", "max_n_gpus": 2048}]})  # fmt: skip
    assert data["plans"] and data["plans"][0]["training_hours"] <= 240
    assert "h100-sxm (limited, owned or held)" in data["search"]["searched"] or "h100-sxm, " in data["search"]["searched"]
    gpus = {g["gpu"]: g for g in data["gpus"]}
    assert not gpus["h100-sxm"]["fits"] and "no count of up to 16 h100-sxm meets the deadline" in gpus["h100-sxm"]["reason"]


def test_an_fp8_fleet_mixes_owned_h100s_with_rented_h200s(client) -> None:
    # in FP8 too (both types with FP8 tensor cores): the owned H100s alone miss the deadline, so fleets mix
    # them with rented H200s, pipelines or data-parallel groups over both at their FP8 peaks
    data = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "precision": "fp8", "pools": [
        {"gpu": "h100-sxm", "max_n_gpus": 16, "usd_per_gpu_hour": 1.0}, {"gpu": "h200-sxm", "max_n_gpus": 2048}]})  # fmt: skip
    assert data["plans"] and data["plans"][0]["training_hours"] <= 240
    mixed = [p for p in data["plans"] if p["stages"]]
    assert mixed and {st["gpu"] for st in mixed[0]["stages"]} == {"h100-sxm", "h200-sxm"}


def test_a_deadline_no_fleet_meets_is_an_answer_with_the_reason(client) -> None:
    data = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 1, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 16}]})
    assert data["plans"] == [] and "no fleet meets the deadline" in data["reason"] and data["best_homogeneous"] is None


POOL = {"gpu": "h100-sxm", "max_n_gpus": 64}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pools": [{"gpu": "h100-sxm", "max_n_gpus": 0}], "deadline_days": 10}, "max_n_gpus"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 0, "max_n_gpus": 8}], "deadline_days": 10}, "n_gpus"),
        ({"pools": [{"gpu": "no-such-gpu", "max_n_gpus": 64}], "deadline_days": 10}, "pools.0.gpu"),
        ({"pools": [{"gpu": "h100-sxm", "max_n_gpus": 12, "gpus_per_node": 8}], "deadline_days": 10}, "gpus_per_node"),
        ({"pools": [{"gpu": "h100-sxm", "max_n_gpus": 12}], "deadline_days": 10}, "pools.0.max_n_gpus"),
        ({"pools": [POOL], "gpu": "h100-sxm", "deadline_days": 10}, "pools"),
        ({"pools": [POOL]}, "pools"),  # max_n_gpus without a deadline or budget
        ({"pools": [POOL], "deadline_days": 10, "budget_usd": 1e6}, "pools"),
        ({"pools": [POOL], "budget_usd": 0}, "budget_usd"),
        ({"pools": [POOL], "budget_usd": -5}, "budget_usd"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 64}], "deadline_days": 10}, "deadline_days"),
        ({"pools": [{"gpu": "h100-sxm", "max_n_gpus": 64, "usd_per_gpu_hour": -1}], "deadline_days": 10}, "usd_per_gpu_hour"),
        ({"gpu": "h100-sxm", "n_gpus": 8, "budget_usd": 1e6}, "budget_usd"),
    ],
)
def test_bad_procurements_are_a_422_naming_the_field(client, change: dict, field: str) -> None:
    body = EIGHT_B | change
    if "tokens" in change:
        body.pop("tokens")
    data = problem(client, "/v1/plan", body)
    assert field in data["detail"] or any(field in ".".join(map(str, e["loc"])) for e in data.get("errors", [])), data


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"fixed": {"tp": 3}}, "fixed.tp", "tp=3 must divide n_heads=32"),
        ({"fixed": {"recompute": "selective_op"}, "flash_attention": False}, "fixed.recompute", "needs flash_attention"),
    ],
)
def test_a_fixed_dimension_no_fleet_can_hold_is_a_422_as_in_the_deadline_search(
    client, change: dict, field: str, reason: str
) -> None:
    """Not a 200 saying that no count of up to 64 GPUs meets the deadline after planning all nine."""
    for where in ({"pools": [POOL]}, {"gpu": "h100-sxm"}):
        data = problem(client, "/v1/plan", EIGHT_B | {"deadline_days": 30} | where | change)
        assert [e["loc"][1:] for e in data["errors"]] == [field.split(".")] and reason in data["detail"], data


def test_max_n_gpus_without_tokens_is_a_422(client) -> None:
    body = {k: v for k, v in EIGHT_B.items() if k != "tokens"} | {"pools": [POOL], "deadline_days": 10}
    data = problem(client, "/v1/plan", body)
    assert "tokens" in data["detail"]


SPOT_H100 = {"gpu": "h100-sxm", "max_n_gpus": 4096, "pricing": "spot"}


def test_spot_at_no_interruptions_costs_the_on_demand_formula_at_the_spot_price(client) -> None:
    """The issue's check: at an interruption rate of 0 the expected hours are the plan's, so the
    dollars are hours x GPUs x the spot price, as an on-demand pool at that price gives them."""
    calm = ok(
        client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "pools": [SPOT_H100], "spot": {"interruptions_per_node_hour": 0}}
    )
    best, (summary,) = calm["plans"][0], calm["gpus"]
    assert summary["pricing"] == "spot" and summary["price"]["pricing"] == "spot"
    price = summary["price"]["usd_per_gpu_hour"]
    assert best["spot"]["job_interruptions_per_hour"] == 0 and best["spot"]["overhead_fraction"] == 1
    assert best["spot"]["checkpoint_interval_hours"] is None and best["spot"]["mtbf_hours"] is None
    assert best["training_hours"] == best["spot"]["work_hours"] == best["spot"]["expected_wall_clock_hours"]
    assert best["cost_usd"] == pytest.approx(best["training_hours"] * best["n_gpus"] * price, rel=1e-12)
    same = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 4096,
                                                                               "usd_per_gpu_hour": price}]})  # fmt: skip
    plain = same["plans"][0]
    assert plain["spot"] is None
    for name in ("n_gpus", "tp", "pp", "dp", "training_hours", "gpu_hours"):
        assert best[name] == plain[name], name
    assert best["cost_usd"] == pytest.approx(plain["cost_usd"], rel=1e-12)


def test_spot_wins_at_the_stated_interruption_rate(client) -> None:
    """compare_spot offers each rented pool on spot too: at AWS's lowest band the spot fleet's expected
    dollars (a little over its plan's hours: checkpoints at Daly's interval, restarts) beat on demand."""
    data = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "compare_spot": True,
                                             "pools": [{"gpu": "h100-sxm", "max_n_gpus": 4096}]})  # fmt: skip
    gpus = {g["pricing"]: g for g in data["gpus"]}
    assert set(gpus) == {"on_demand", "spot"} and all(g["gpu"] == "h100-sxm" for g in data["gpus"])
    best = data["plans"][0]
    detail = best["spot"]
    assert detail is not None and best["cost_usd"] == pytest.approx(gpus["spot"]["cost_usd"], rel=1e-12)
    on_demand = ok(client, "/v1/plan", EIGHT_B | {"deadline_days": 10, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 4096}]})
    assert best["cost_usd"] < on_demand["plans"][0]["cost_usd"]
    # on demand was planned at more dollars, or cut because even its best case costs more
    assert (gpus["on_demand"]["cost_usd"] or math.inf) > best["cost_usd"]
    assert gpus["on_demand"]["fits"] or "cannot beat the best fleet" in gpus["on_demand"]["reason"]
    assert 1 < detail["overhead_fraction"] < 1.05 and best["training_hours"] == pytest.approx(detail["expected_wall_clock_hours"])
    assert best["training_hours"] <= 10 * 24  # the deadline, met in expectation
    # Young's sqrt(2 C M) for the stated checkpoint and MTBF; Daly's optimum within a percent of it (C << M)
    young = math.sqrt(2 * detail["checkpoint_seconds"] * detail["mtbf_hours"] * 3600) / 3600
    assert detail["young_interval_hours"] == pytest.approx(young, rel=1e-12)
    assert detail["checkpoint_interval_hours"] == pytest.approx(young, rel=0.01)
    assert detail["mtbf_hours"] == pytest.approx(1 / detail["job_interruptions_per_hour"])
    assert "in expectation" in data["assumptions"]["spot"]


def test_frequent_interruptions_make_on_demand_the_cheaper_fleet(client) -> None:
    """At half an interruption per node-hour and 10-minute restarts a spot fleet spends more than
    its discount on lost work and restarts: on demand is chosen, and the spot type says what it costs."""
    body = EIGHT_B | {"deadline_days": 10, "compare_spot": True, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 4096}],
                      "spot": {"interruptions_per_node_hour": 0.5, "restart_seconds": 600}}  # fmt: skip
    data = ok(client, "/v1/plan", body)
    best = data["plans"][0]
    assert best["spot"] is None
    gpus = {g["pricing"]: g for g in data["gpus"]}
    spot_type = gpus["spot"]
    discount = gpus["on_demand"]["price"]["usd_per_gpu_hour"] / spot_type["price"]["usd_per_gpu_hour"]
    if spot_type["fits"]:  # a spot fleet met the deadline in expectation, at more dollars
        assert spot_type["cost_usd"] > best["cost_usd"]
        assert spot_type["training_hours"] / (spot_type["gpu_hours"] / spot_type["n_gpus"]) == pytest.approx(1.0)
    spot_fleets = [p for p in data["plans"] if p["spot"]]
    assert all(p["spot"]["overhead_fraction"] > discount for p in spot_fleets)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spot": {"interruptions_per_node_hour": -0.1}}, "interruptions_per_node_hour"),
        ({"pools": [SPOT_H100 | {"interruptions_per_node_hour": -1}]}, "interruptions_per_node_hour"),
        ({"spot": {"restart_seconds": -5}}, "restart_seconds"),
        ({"pools": [SPOT_H100 | {"pricing": "auction"}]}, "pricing"),
        (
            {"pools": [SPOT_H100 | {"pricing": "on_demand", "interruptions_per_node_hour": 0.1}]},
            "pools.0.interruptions_per_node_hour",
        ),
    ],
)
def test_bad_spot_terms_are_a_422_naming_the_field(client, change: dict, field: str) -> None:
    body = EIGHT_B | {"deadline_days": 10, "pools": [SPOT_H100]} | change
    data = problem(client, "/v1/plan", body)
    assert field in data["detail"] or any(field in ".".join(map(str, e["loc"])) for e in data.get("errors", [])), data


@pytest.mark.parametrize(
    "change", [{"spot": {}}, {"compare_spot": True}, {"pools": [{"gpu": "h100-sxm", "n_gpus": 8, "pricing": "spot"}]}]
)
def test_spot_outside_a_fleet_search_is_a_422(client, change: dict) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "seq_len": 4096, "gpu": "h100-sxm", "n_gpus": 8} | change
    if "pools" in change:
        body.pop("gpu"), body.pop("n_gpus")
    data = problem(client, "/v1/plan", body)
    assert "fleet search" in data["detail"], data


def test_a_most_off_the_node_series_still_finds_the_budget_fleet(client) -> None:
    """67 nodes of H100 cannot split the 8B model's batch; a budget walks down from there to 64 nodes,
    which can (it used to stop at the 67 and answer that no fleet fits)."""
    body = EIGHT_B | {"tokens": 2e10, "budget_usd": 3000, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 536}]}
    data = ok(client, "/v1/plan", body)
    best = data["plans"][0]
    assert data["reason"] is None and best["n_gpus"] == 512 and best["cost_usd"] <= 3000
    alone = ok(client, "/v1/plan", EIGHT_B | {"tokens": 2e10, "gpu": "h100-sxm", "n_gpus": 512, "top_k": 1})["plans"][0]
    assert best["training_hours"] == alone["training_hours"]


def test_each_catalog_price_of_a_ladder_states_its_as_of_date(client) -> None:
    """A type priced by a ladder (8 owned, then spot) has no single price quote in ``gpus``: the
    assumptions state each catalog price's source and its as-of date (the spot row's source has none)."""
    data = ok(client, "/v1/plan", EIGHT_B | {"tokens": 2e10, "deadline_days": 2, "pools": [
        {"gpu": "h100-sxm", "max_n_gpus": 64, "pricing": "spot"}, {"gpu": "h100-sxm", "max_n_gpus": 8, "usd_per_gpu_hour": 0}]})  # fmt: skip
    spot = next(g for g in data["gpus"] if g["pricing"] == "spot")
    assert spot["fits"] and spot["price"] is None  # two prices: no single quote
    alone = ok(client, "/v1/plan", EIGHT_B | {"tokens": 2e10, "deadline_days": 2, "pools": [
        {"gpu": "h100-sxm", "max_n_gpus": 64, "pricing": "spot"}]})["gpus"][0]["price"]  # fmt: skip
    text = data["assumptions"]["h100-sxm spot.fleet_prices"]
    assert alone["as_of"] and f"${alone['usd_per_gpu_hour']:g}/GPU-h on spot" in text and f"as of {alone['as_of']}" in text
