"""``POST /v1/plan`` with pools carrying ``max_n_gpus``: what to rent. GPUs owned at $0 are used
before renting, a tighter deadline never costs less, a budget answer stays within its budget, and
with one pool type the answer is the single-type deadline answer; the bad inputs."""

from __future__ import annotations

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


def test_max_n_gpus_without_tokens_is_a_422(client) -> None:
    body = {k: v for k, v in EIGHT_B.items() if k != "tokens"} | {"pools": [POOL], "deadline_days": 10}
    data = problem(client, "/v1/plan", body)
    assert "tokens" in data["detail"]
