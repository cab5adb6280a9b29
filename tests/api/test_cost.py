"""Cost, budget and serving endpoints against published runs, and their bad inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_calculators import assert_finite, locs, problem
from tests.conftest import AUTH


def ok(client, path: str, body: dict) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert_finite(data)
    assert data["formulas"] and isinstance(data["assumptions"], dict)
    return data


# --- published runs -------------------------------------------------------------------------------


def test_llama_65b_days_and_gpu_hours(client) -> None:
    # Touvron et al. 2023 (LLaMA) §2.4: 65.2B parameters, 1.4T tokens, 2048 A100-80GB, ~380
    # tokens/s/GPU, about 21 days; Table 15: 1,022,362 GPU-hours. 380 tokens/s/GPU implies
    # MFU = 6 * 65.2e9 * 380 / 312e12 = 0.476, measured at that scale (scaling_efficiency 1).
    mfu = 6 * 65.2e9 * 380 / 312e12
    body = {"model": {"n_params": 65.2e9}, "tokens": 1.4e12, "gpu": "a100-80gb-sxm", "n_gpus": 2048,
            "mfu": mfu, "scaling_efficiency": 1.0, "usd_per_gpu_hour": 1.0}  # fmt: skip
    data = ok(client, "/v1/cost/training", body)
    assert data["wall_clock_days"] == pytest.approx(21, rel=0.15)
    assert data["gpu_hours"] == pytest.approx(1_022_362, rel=0.15)
    assert data["achieved_tflops_per_gpu"] == pytest.approx(6 * 65.2e9 * 380 / 1e12)


@pytest.mark.parametrize(
    ("preset", "gpu_hours"),
    [("llama-2-7b", 184_320), ("llama-2-13b", 368_640), ("llama-2-70b", 1_720_320)],
)
def test_llama_2_gpu_hours(client, preset: str, gpu_hours: int) -> None:
    # Touvron et al. 2023 (Llama 2), Table 2: A100-80GB GPU-hours for 2T tokens. The paper's
    # figures imply MFU 0.38-0.43 (e.g. 6 * 6.74e9 * 2e12 / (184,320 h * 3600 * 312e12) = 0.39);
    # one MFU of 0.40 reproduces each within 15 %.
    body = {"model": {"preset": preset}, "tokens": 2e12, "gpu": "a100-80gb-sxm", "n_gpus": 2048,
            "mfu": 0.40, "scaling_efficiency": 1.0, "usd_per_gpu_hour": 1.0}  # fmt: skip
    assert ok(client, "/v1/cost/training", body)["gpu_hours"] == pytest.approx(gpu_hours, rel=0.15)


def test_llama_2_34b_gpu_hours(client) -> None:
    # Table 2: 34B, 1,038,336 GPU-hours (the 34B model was not released; 34e9 parameters)
    body = {"model": {"n_params": 34e9}, "tokens": 2e12, "gpu": "a100-80gb-sxm", "n_gpus": 2048,
            "mfu": 0.40, "scaling_efficiency": 1.0, "usd_per_gpu_hour": 1.0}  # fmt: skip
    assert ok(client, "/v1/cost/training", body)["gpu_hours"] == pytest.approx(1_038_336, rel=0.15)


def test_mpt_7b_cost_with_the_catalog_mfu(client) -> None:
    # MosaicML 2023, "Introducing MPT-7B": 6.7B parameters, 1T tokens, 440 A100-40GB, 9.5 days,
    # ~$200k — i.e. 100,320 GPU-hours at ~$2.00/GPU-hour. A bare parameter count cannot be
    # planned: the catalog's at-scale A100 MFU is used as it is, with no second efficiency.
    body = {"model": {"n_params": 6.7e9}, "tokens": 1e12, "gpu": "a100-40gb-sxm", "n_gpus": 440, "usd_per_gpu_hour": 2.0}
    data = ok(client, "/v1/cost/training", body)
    assert data["cost_usd"] == pytest.approx(200_000, rel=0.25)
    assert data["wall_clock_days"] == pytest.approx(9.5, rel=0.25)
    assert data["assumptions"]["mfu_source"].startswith("catalog default")
    assert data["scaling_efficiency"] == 1 and data["fits"] is None and data["plan"] is None
    assert "architecture" in data["assumptions"]["planner"]


def test_thousand_gpus_for_an_hour_is_not_one_gpu_for_a_thousand_hours(client) -> None:
    # with the architecture the time comes from the best plan of each cluster: 1,024 GPUs pay
    # for communication (and a smaller share of each GPU's work per step) that one node does not
    base = {"model": {"preset": "llama-2-7b"}, "tokens": 1e11, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0}
    one = ok(client, "/v1/cost/training", base | {"n_gpus": 8})
    many = ok(client, "/v1/cost/training", base | {"n_gpus": 1024})
    assert many["gpu_hours"] > one["gpu_hours"] * 1.05
    assert many["wall_clock_hours"] * 1024 == pytest.approx(many["gpu_hours"])
    assert many["plan"]["step_time"]["dp_comm_seconds"] + many["plan"]["step_time"]["tp_comm_seconds"] > 0
    assert many["mfu"] < one["mfu"] and many["assumptions"]["mfu_source"].startswith("the step-time model")


# --- prices ---------------------------------------------------------------------------------------


def test_price_sources(client) -> None:
    base = {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8}
    cheapest = ok(client, "/v1/cost/training", base)["price"]
    assert cheapest["chosen"] == "cheapest" and cheapest["provider"] and cheapest["as_of"]
    listed = client.get(
        "/v1/prices", params={"gpu_id": "h100-sxm", "pricing": "on_demand", "latest": "true", "limit": 500}
    ).json()
    assert cheapest["usd_per_gpu_hour"] == min(p["usd_per_gpu_hour"] for p in listed["items"])
    aws = ok(client, "/v1/cost/training", base | {"provider": "aws"})["price"]
    assert (aws["provider"], aws["chosen"]) == ("aws", "provider")
    explicit = ok(client, "/v1/cost/training", base | {"usd_per_gpu_hour": 3.5})
    assert explicit["price"]["chosen"] == "explicit"
    # a newer price for the provider becomes its current price
    client.post("/v1/prices", headers=AUTH, json={"gpu_id": "h100-sxm", "provider_id": "aws", "pricing": "on_demand",
                                                 "usd_per_gpu_hour": 0.5, "as_of": "2026-11-28", "source": "test"})  # fmt: skip
    assert ok(client, "/v1/cost/training", base | {"provider": "aws"})["price"]["usd_per_gpu_hour"] == 0.5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(price=st.floats(0.01, 1000), factor=st.floats(1.5, 10))
def test_cost_is_linear_in_price(client, price: float, factor: float) -> None:
    base = {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 64}
    a = ok(client, "/v1/cost/training", base | {"usd_per_gpu_hour": price})
    b = ok(client, "/v1/cost/training", base | {"usd_per_gpu_hour": price * factor})
    assert b["cost_usd"] == pytest.approx(a["cost_usd"] * factor, rel=1e-9)
    assert b["gpu_hours"] == a["gpu_hours"]


def test_no_price_for_a_gpu_is_a_422(client) -> None:
    gpu = {"id": "lab-gpu", "vendor": "Lab", "name": "Lab GPU", "memory_bytes": 10**11, "memory_bandwidth_bytes_per_s": 10**12,
           "peak_tflops": {"bf16": 100}, "source": "test"}  # fmt: skip
    assert client.post("/v1/gpus", json=gpu, headers=AUTH).status_code == 201
    data = problem(client, "/v1/cost/training", {"model": {"n_params": 1e9}, "tokens": 1e10, "gpu": "lab-gpu"})
    assert "usd_per_gpu_hour" in data["detail"] and "no on_demand price" in data["detail"]
    assert ok(client, "/v1/cost/training", {"model": {"n_params": 1e9}, "tokens": 1e10, "gpu": "lab-gpu", "usd_per_gpu_hour": 1})


# --- compare --------------------------------------------------------------------------------------


def test_compare_sorts_and_marks_gpus_that_cannot_hold_the_job(client) -> None:
    data = ok(client, "/v1/cost/compare", {"model": {"preset": "llama-2-70b"}, "tokens": 2e12, "n_gpus": 8})
    rows = data["rows"]
    assert len(rows) > 20
    fitting = [r for r in rows if r["fits"]]
    not_fitting = [r for r in rows if not r["fits"]]
    assert not_fitting and fitting and rows.index(not_fitting[0]) > rows.index(fitting[-1])
    costs = [r["cost_usd"] for r in fitting if r["cost_usd"] is not None]
    assert costs == sorted(costs)
    # 70B on 8 GPUs: 16 bytes/param over 8 GPUs is 140 GB each with ZeRO-3; an 80 GB GPU holds
    # it only with the optimizer offloaded to the host (ZeRO-Offload), and the plan says so
    for row in fitting:
        if row["gpu"] == "a100-80gb-sxm":
            assert "offloaded" in row["plan"]
    assert "GiB" in not_fitting[0]["note"]
    by_time = ok(
        client,
        "/v1/cost/compare",
        {
            "model": {"preset": "llama-2-7b"},
            "tokens": 2e12,
            "n_gpus": 64,
            "sort_by": "time",
            "gpus": ["h100-sxm", "a100-80gb-sxm"],
        },
    )
    hours = [r["wall_clock_hours"] for r in by_time["rows"]]
    assert hours == sorted(hours) and {r["gpu"] for r in by_time["rows"]} == {"h100-sxm", "a100-80gb-sxm"}


def test_compare_rows_state_each_prices_date_and_source(client) -> None:
    """Each row is one current catalog price: its as-of date and its source, as GET /v1/prices has them."""
    body = {"model": {"n_params": 1e9}, "tokens": 1e10, "gpus": ["h100-sxm"]}
    rows = ok(client, "/v1/cost/compare", body)["rows"]
    current = client.get("/v1/prices?gpu_id=h100-sxm&pricing=on_demand&latest=true&limit=500").json()["items"]
    listed = {p["provider_id"]: (p["as_of"], p["source"]) for p in current}
    assert rows and {r["provider"]: (r["as_of"], r["source"]) for r in rows} == listed


def test_compare_unknown_filter(client) -> None:
    data = problem(client, "/v1/cost/compare", {"model": {"n_params": 1e9}, "tokens": 1e10, "gpus": ["h100-sxm", "tpu-v9"]})
    assert ["body", "gpus"] in locs(data) and "tpu-v9" in data["detail"]


# --- budget ---------------------------------------------------------------------------------------


def test_budget_to_model_and_loss(client) -> None:
    data = ok(client, "/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0, "n_gpus": 256})
    assert data["compute_flops"] == pytest.approx(6 * data["params"] * data["tokens"])
    assert data["cost_usd"] == pytest.approx(1e6)
    assert data["loss"]["unit"] == "nats per token"
    assert data["predicted_loss"] == data["optimal_loss"] and data["loss_gap"] == 0
    assert data["wall_clock_hours"] == pytest.approx(data["gpu_hours"] / 256)


def test_budget_from_compute_under_each_law(client) -> None:
    for law in ("chinchilla_20", "hoffmann2022", "besiroglu2024"):
        data = ok(client, "/v1/budget", {"compute_flops": 5.76e23, "scaling_law": law})
        assert data["compute_flops"] == 5.76e23
        assert data["gpu_hours"] is None
    assert ok(client, "/v1/budget", {"compute_flops": 5.76e23, "scaling_law": "chinchilla_20"})[
        "tokens_per_param"
    ] == pytest.approx(20)


def test_overtrained_fixed_size_gives_up_loss(client) -> None:
    c = 6 * 8e9 * 15e12
    data = ok(client, "/v1/budget", {"compute_flops": c, "n_params": 8e9})
    assert data["tokens"] == pytest.approx(15e12)
    assert data["loss_gap"] > 0


def test_more_dollars_never_smaller_model_or_higher_loss(client) -> None:
    previous = None
    for budget in (1e3, 1e4, 1e5, 1e6, 1e7, 1e8):
        data = ok(client, "/v1/budget", {"budget_usd": budget, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.5})
        if previous:
            assert data["params"] >= previous["params"]
            assert data["predicted_loss"] <= previous["predicted_loss"]
        previous = data


def test_for_loss_round_trip(client) -> None:
    forward = ok(client, "/v1/budget", {"budget_usd": 5e6, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0})
    back = ok(
        client, "/v1/budget/for-loss", {"target_loss": forward["predicted_loss"], "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0}
    )
    assert back["cost_usd"] == pytest.approx(5e6, rel=0.01)
    assert back["params"] == pytest.approx(forward["params"], rel=0.01)


def test_lifetime_optimum(client) -> None:
    data = ok(
        client, "/v1/budget/lifetime", {"target_loss": 2.0, "inference_tokens": 1e14, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0}
    )
    assert data["params"] < data["chinchilla_params"]
    assert 0 < data["flops_saved_fraction"] < 1
    assert data["total_cost_usd"] < data["chinchilla_total_cost_usd"]


# --- serving --------------------------------------------------------------------------------------


def test_serving_cost_of_an_expert_parallel_unit(client) -> None:
    # DeepSeek's decode units (open-infra-index day 6): EP144 on H800, about 88 sequences a GPU at 20-22 tokens/s per user
    body = {"model": {"preset": "deepseek-v3"}, "gpu": "h800-sxm", "usd_per_gpu_hour": 2.0, "dtype": "fp8", "ep": 144,
            "batch_size": 144 * 88, "prompt_tokens": 4383, "output_tokens": 1211}  # fmt: skip
    unit = ok(client, "/v1/cost/inference", body)
    assert unit["fits"] is True and unit["assumptions"]["replica"].startswith("an expert-parallel unit of 144 x h800-sxm")
    assert 1 / unit["decode_step_seconds"] >= 20
    # $2/h a GPU over 144 GPUs, per output token at the unit's decode pace
    assert unit["usd_per_million_output_tokens"] == pytest.approx(
        144 * 2.0 / 3600 * unit["decode_step_seconds"] / (144 * 88) * 1e6
    )
    for wrong in ({"model": {"preset": "llama-3.1-70b"}}, {"n_gpus": 8}, {"ep": 512}):
        assert ["body", "ep"] in locs(problem(client, "/v1/cost/inference", body | wrong))


def test_serving_cost_roofline(client) -> None:
    base = {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "usd_per_gpu_hour": 3.6, "prompt_tokens": 0, "output_tokens": 2}
    one = ok(client, "/v1/cost/inference", base | {"batch_size": 1})
    # batch 1 is memory-bound: one step reads the 13.48 GB of bf16 weights less the input embedding it only looks
    # up (32,000 x 4,096 x 2 bytes) at 90 % of 3.35 TB/s (plus two latency-bound all-reduces per layer, none on
    # one GPU), plus vLLM's per-step overhead: 60 us per layer (fitted, service.core.engines) over 32 layers and
    # 1 ms on the host
    assert one["decode_bound"] == "memory"
    read = 13_476_831_232 - 32_000 * 4_096 * 2
    assert one["decode_step_seconds"] == pytest.approx(read / (3.35e12 * 0.9) + 32 * 60e-6 + 1e-3, rel=0.01)
    # $3.60/h = $0.001/s; per million output tokens at the decode step's pace (no prompt here)
    assert one["usd_per_million_output_tokens"] == pytest.approx(0.001 * one["decode_step_seconds"] * 1e6)
    assert one["time_per_output_token_seconds"] == pytest.approx(one["decode_step_seconds"])
    batched = ok(client, "/v1/cost/inference", base | {"batch_size": 64})
    assert batched["usd_per_million_output_tokens"] < one["usd_per_million_output_tokens"] / 10
    huge = ok(client, "/v1/cost/inference", base | {"batch_size": 4096})
    assert huge["decode_bound"] == "compute"
    too_big = ok(client, "/v1/cost/inference", {"model": {"preset": "llama-2-70b"}, "gpu": "h100-sxm", "usd_per_gpu_hour": 3})
    assert too_big["fits"] is False  # an answer, not an error
    # the same question gets the same dollars from the serving plan (one serving model)
    plan = ok(client, "/v1/plan/serving", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "usd_per_gpu_hour": 3.6, "tp": 1,
                                           "prompt_tokens": 1000, "output_tokens": 200})["options"][0]  # fmt: skip
    same = ok(client, "/v1/cost/inference", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "usd_per_gpu_hour": 3.6,
                                             "prompt_tokens": 1000, "output_tokens": 200, "batch_size": plan["batch_per_replica"]})  # fmt: skip
    assert same["usd_per_million_output_tokens"] == pytest.approx(plan["usd_per_million_output_tokens"])
    assert same["usd_per_million_input_tokens"] == pytest.approx(plan["usd_per_million_input_tokens"])
    # a tensor-parallel degree that cannot divide the heads is refused
    assert client.post("/v1/cost/inference", json=base | {"n_gpus": 3}).status_code == 422
    # the KV cache defaults to bf16, not the weights' int4
    int4 = ok(client, "/v1/cost/inference", base | {"dtype": "int4"})
    assert int4["assumptions"]["kv_dtype"] == "bf16"


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/budget", {"budget_usd": 0, "gpu": "h100-sxm"}, ["body", "budget_usd"]),
        ("/v1/budget", {"budget_usd": -5, "gpu": "h100-sxm"}, ["body", "budget_usd"]),
        ("/v1/budget", {"budget_usd": 1e20, "gpu": "h100-sxm"}, ["body", "budget_usd"]),
        ("/v1/budget", {"budget_usd": 1e-12, "gpu": "h100-sxm", "usd_per_gpu_hour": 1e6}, ["body", "budget_usd"]),
        ("/v1/budget", {"compute_flops": 1}, ["body", "compute_flops"]),
        ("/v1/budget", {"budget_usd": 1e6}, ["body", "gpu"]),
        ("/v1/budget", {"budget_usd": 1e6, "compute_flops": 1e20, "gpu": "h100-sxm"}, ["body"]),
        ("/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm", "mfu": 0}, ["body", "mfu"]),
        ("/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm", "mfu": 1.5}, ["body", "mfu"]),
        ("/v1/budget", {"budget_usd": 1e6, "gpu": "tpu-v9"}, ["body", "gpu"]),
        ("/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm", "provider": "acme"}, ["body", "provider"]),
        ("/v1/budget", {"compute_flops": 1e20, "scaling_law": "kaplan"}, ["body", "scaling_law"]),
        ("/v1/budget/for-loss", {"target_loss": 1.5}, ["body", "target_loss"]),
        ("/v1/budget/for-loss", {"target_loss": 1.8, "scaling_law": "besiroglu2024"}, ["body", "target_loss"]),
        (
            "/v1/cost/training",
            {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "scaling_efficiency": 0},
            ["body", "scaling_efficiency"],
        ),
        (
            "/v1/cost/training",
            {
                "model": {"n_params": 7e9},
                "tokens": 1e12,
                "gpu": "h100-sxm",
                "dtype": "fp8",
                "mfu": 0.3,
                "usd_per_gpu_hour": 1,
                "n_gpus": 0,
            },
            ["body", "n_gpus"],
        ),
        ("/v1/cost/training", {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "tpu-v5e", "dtype": "fp32"}, ["body", "dtype"]),
        ("/v1/cost/inference", {"model": {"n_params": 7e9}, "gpu": "h100-sxm"}, ["body", "model"]),
    ],
)
def test_bad_cost_input_is_a_422(client, path: str, body: dict, loc: list) -> None:
    data = problem(client, path, body)
    assert loc in locs(data), data


def test_unknown_gpu_lists_the_known_ids(client) -> None:
    data = problem(client, "/v1/cost/training", {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "tpu-v9"})
    assert "h100-sxm" in data["detail"]


def test_recompute_changes_hardware_flops_not_time_at_a_given_mfu(client) -> None:
    # MFU counts model FLOPs only (Chowdhery et al. 2022, App. B): at the same MFU a full-recompute
    # run takes the same time, and its hardware FLOPs imply an HFU a third higher
    base = {
        "model": {"preset": "llama-2-7b"},
        "tokens": 1e12,
        "gpu": "h100-sxm",
        "n_gpus": 8,
        "mfu": 0.5,
        "usd_per_gpu_hour": 2.0,
    }
    plain = ok(client, "/v1/cost/training", base)
    full = ok(client, "/v1/cost/training", base | {"recompute": "full"})
    assert full["gpu_hours"] == plain["gpu_hours"]
    assert full["hardware_flops"] == pytest.approx(plain["total_flops"] * 4 / 3)
    assert full["assumptions"]["implied_hfu"] == pytest.approx(0.5 * 4 / 3)


def test_a_zero_catalog_price_cannot_price_a_budget(client) -> None:
    client.post("/v1/prices", headers=AUTH, json={"gpu_id": "l4", "provider_id": "lambda", "pricing": "on_demand",
                                                 "usd_per_gpu_hour": 0, "as_of": "2026-11-28", "source": "free credits"})  # fmt: skip
    data = problem(client, "/v1/budget", {"budget_usd": 1000, "gpu": "l4"})
    assert ["body", "gpu"] in locs(data) and "$0" in data["detail"]


def test_training_cost_counts_attention_at_the_planners_sequence_length(client) -> None:
    # Llama 3.1's 131,072-token context is not its training length: the attention FLOPs, the plan that
    # times them and the memory check all take 8,192 unless asked, so the MFU stays a fraction
    from tests.api.test_calculators import ok

    body = {"model": {"preset": "llama-3.1-8b"}, "tokens": 1e9, "include_attention": True, "gpu": "h100-sxm", "n_gpus": 8,
            "usd_per_gpu_hour": 2.0}  # fmt: skip
    default = ok(client, "/v1/cost/training", body)
    asked = ok(client, "/v1/cost/training", body | {"seq_len": 8192})
    compute = ok(client, "/v1/compute/training", {"model": body["model"], "tokens": 1e9, "include_attention": True})
    assert default["total_flops"] == asked["total_flops"] == compute["total_flops"]
    assert default["assumptions"]["attention_seq_len"] == 8192 and 0 < default["mfu"] < 1


SPOT_RUN = {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 256}


def test_spot_at_no_interruptions_is_the_on_demand_formula_at_the_spot_price(client) -> None:
    on_demand = ok(client, "/v1/cost/training", SPOT_RUN | {"usd_per_gpu_hour": 2.0})
    calm = ok(client, "/v1/cost/training", SPOT_RUN | {"usd_per_gpu_hour": 2.0, "spot": {"interruptions_per_node_hour": 0}})
    assert calm["cost_usd"] == pytest.approx(on_demand["cost_usd"]) and calm["gpu_hours"] == pytest.approx(on_demand["gpu_hours"])
    assert calm["spot"]["checkpoint_interval_hours"] is None and on_demand["spot"] is None
    priced = ok(client, "/v1/cost/training", SPOT_RUN | {"pricing": "spot", "spot": {"interruptions_per_node_hour": 0}})
    assert priced["price"]["pricing"] == "spot"
    assert priced["cost_usd"] == pytest.approx(priced["gpu_hours"] * priced["price"]["usd_per_gpu_hour"])


def test_spot_interruptions_add_checkpoints_and_lost_work(client) -> None:
    base = ok(client, "/v1/cost/training", SPOT_RUN | {"usd_per_gpu_hour": 2.0})
    spot = {"interruptions_per_node_hour": 0.01, "checkpoint_seconds": 120, "restart_seconds": 600}
    data = ok(client, "/v1/cost/training", SPOT_RUN | {"usd_per_gpu_hour": 2.0, "spot": spot})
    detail = data["spot"]
    # 32 nodes of 8 GPUs at 0.01 an hour: the job is interrupted 0.32 times an hour
    assert detail["job_interruptions_per_hour"] == pytest.approx(0.32) and detail["mtbf_hours"] == pytest.approx(3.125)
    assert detail["young_interval_hours"] == pytest.approx(math.sqrt(2 * 120 * 3.125 * 3600) / 3600)
    assert detail["work_hours"] == pytest.approx(base["wall_clock_hours"])
    assert data["wall_clock_hours"] == pytest.approx(detail["expected_wall_clock_hours"])
    assert data["wall_clock_hours"] > base["wall_clock_hours"]
    assert data["cost_usd"] == pytest.approx(base["cost_usd"] * detail["overhead_fraction"])
    assert data["mfu"] == pytest.approx(base["mfu"] / detail["overhead_fraction"])


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        (
            {"usd_per_gpu_hour": 2.0, "spot": {"interruptions_per_node_hour": -0.1}},
            ["body", "spot", "interruptions_per_node_hour"],
        ),
        ({"spot": {}}, ["body"]),  # priced on demand: say spot
        ({"usd_per_gpu_hour": 2.0, "spot": {"checkpoint_interval_hours": 0}}, ["body", "spot", "checkpoint_interval_hours"]),
    ],
)
def test_bad_spot_input_is_a_422(client, extra: dict, loc: list) -> None:
    data = problem(client, "/v1/cost/training", SPOT_RUN | extra)
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data


def test_recompute_sent_at_its_default_leaves_the_planner_its_choice(client) -> None:
    # Llama 3.1 8B on two H100s without optimizer offload: only full recompute fits, so the planner
    # picks it when recompute is left out; "none" sent (the schema's default) must mean the same
    base = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "n_gpus": 2, "tokens": 1e10,
            "fixed": {"offload_optimizer": False, "zero_stage": 3}}  # fmt: skip
    left_out = ok(client, "/v1/cost/training", base)
    sent = ok(client, "/v1/cost/training", base | {"recompute": "none"})
    assert left_out["assumptions"]["plan"] == "tp=1 pp=1 dp=2 cp=1 ZeRO-3 micro-batch 2 recompute=full"
    assert left_out["gpu_hours"] == pytest.approx(430.199, rel=1e-4)
    assert sent == left_out
    # another recompute sent is held: no plan fits it, and the answer falls back to the MFU
    selective = ok(client, "/v1/cost/training", base | {"recompute": "selective"})
    assert "plan" not in selective["assumptions"] and selective["gpu_hours"] == pytest.approx(338.145, rel=1e-4)


def test_the_hardware_flops_are_those_of_the_plan_s_recompute(client) -> None:
    # the planner picks full recompute for Llama 3.1 8B on two H100s without offload (above): the run it
    # times re-runs every forward, 8PD hardware FLOPs against 6PD of the model (Korthikanti et al. 2022 §5)
    base = {"model": {"preset": "llama-3.1-8b"}, "gpu": "h100-sxm", "n_gpus": 2, "tokens": 1e10,
            "fixed": {"offload_optimizer": False, "zero_stage": 3}}  # fmt: skip
    data = ok(client, "/v1/cost/training", base)
    assert data["assumptions"]["plan"].endswith("recompute=full")
    assert data["total_flops"] == pytest.approx(6 * 8_030_261_248 * 1e10, rel=1e-12)
    assert data["hardware_flops"] == pytest.approx(8 * 8_030_261_248 * 1e10, rel=1e-12)
    # at a stated MFU nothing is planned: the request's recompute (none by default) counts
    mfu = ok(client, "/v1/cost/training", {k: v for k, v in base.items() if k != "fixed"} | {"mfu": 0.4})
    assert mfu["hardware_flops"] == mfu["total_flops"]
