"""Energy and CO2e beside every GPU-hours answer: the defaults stated, overrides, bad inputs, and
GPUs the catalog has no TDP for."""

from __future__ import annotations

import pytest

from service.core.energy import DEFAULT_GRID_KG_CO2E_PER_KWH, DEFAULT_PUE
from tests.api.test_calculators import locs, problem
from tests.api.test_cost import ok

H100_TDP_KW = 0.7  # catalog h100-sxm tdp_watts 700
TRAINING = {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 64, "mfu": 0.4, "usd_per_gpu_hour": 2.0}
COMPARE = {"model": {"n_params": 7e9}, "tokens": 1e12, "n_gpus": 64, "mfu": 0.4}
PLAN = {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "n_gpus": 64, "tokens": 1e12, "usd_per_gpu_hour": 2.0, "top_k": 2}
BUDGET = {"budget_usd": 1e6, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0, "n_gpus": 256}
FOR_LOSS = {"target_loss": 2.2, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0}
REQUESTS = [
    ("/v1/cost/training", TRAINING),
    ("/v1/cost/compare", COMPARE),
    ("/v1/plan", PLAN),
    ("/v1/budget", BUDGET),
    ("/v1/budget/for-loss", FOR_LOSS),
]


def assert_energy(holder: dict, tdp_kw: float, pue: float = DEFAULT_PUE, grid: float = DEFAULT_GRID_KG_CO2E_PER_KWH) -> None:
    """``energy_kwh`` and ``co2e_tonnes`` beside ``gpu_hours``, by the formula."""
    assert holder["gpu_hours"] > 0
    assert holder["energy_kwh"] == pytest.approx(holder["gpu_hours"] * tdp_kw * pue)
    assert holder["co2e_tonnes"] == pytest.approx(holder["energy_kwh"] * grid / 1000)


def assert_defaults_stated(data: dict, tdp_key: str = "tdp_watts", *, every_tdp_known: bool = True) -> None:
    notes = data["assumptions"]
    assert notes["gpu_power_fraction"] == 1.0 and "TDP" in notes["gpu_power_fraction_source"]
    assert notes["pue"] == DEFAULT_PUE == 1.09 and notes["pue_source"].startswith("default: Meta")
    assert (
        notes["grid_kg_co2e_per_kwh"] == DEFAULT_GRID_KG_CO2E_PER_KWH == 0.366 and "EIA" in notes["grid_kg_co2e_per_kwh_source"]
    )
    assert notes[tdp_key] == 700
    assert ("energy_unavailable" not in notes) is every_tdp_known
    assert any(f.startswith("energy_kwh = GPU-hours * TDP/1000") for f in data["formulas"])


def test_training_cost_gives_energy_with_its_defaults_stated(client) -> None:
    data = ok(client, "/v1/cost/training", TRAINING)
    assert_energy(data, H100_TDP_KW)
    assert_defaults_stated(data)


def test_a_planned_training_cost_gives_energy_for_the_run_and_its_plan(client) -> None:
    data = ok(client, "/v1/cost/training", TRAINING | {"model": {"preset": "llama-2-7b"}, "mfu": None})
    assert data["plan"] is not None
    assert_energy(data, H100_TDP_KW)
    assert_energy(data["plan"], H100_TDP_KW)
    assert data["plan"]["energy_kwh"] == pytest.approx(data["energy_kwh"])


def test_a_lora_cost_gives_energy(client) -> None:
    lora = ok(client, "/v1/cost/training", TRAINING | {"model": {"preset": "llama-2-7b"}, "lora": {"r": 16}, "n_gpus": 1})
    assert_energy(lora, H100_TDP_KW)
    assert_defaults_stated(lora)


def test_every_compare_row_gives_energy_at_its_gpus_tdp(client) -> None:
    data = ok(client, "/v1/cost/compare", COMPARE)
    notes = data["assumptions"]
    assert_defaults_stated(data, tdp_key="h100-sxm.tdp_watts", every_tdp_known=False)  # the TPUs have none
    checked = 0
    for row in data["rows"]:
        tdp = notes[f"{row['gpu']}.tdp_watts"]
        if row["gpu_hours"] is None or tdp is None:
            assert row["energy_kwh"] is None and row["co2e_tonnes"] is None
            continue
        assert_energy(row, tdp / 1000)
        checked += 1
    assert checked >= 10
    assert {"a100-80gb-sxm", "b200", "l4"} <= {row["gpu"] for row in data["rows"] if row["energy_kwh"] is not None}


def test_plans_and_gpu_summaries_give_energy(client) -> None:
    data = ok(client, "/v1/plan", PLAN)
    assert data["plans"]
    for item in data["plans"]:
        assert_energy(item, H100_TDP_KW)
    (summary,) = data["gpus"]
    assert_energy(summary, H100_TDP_KW)
    assert summary["energy_kwh"] == data["plans"][0]["energy_kwh"]
    assert_defaults_stated(data, tdp_key="h100-sxm.tdp_watts")


def test_a_plan_without_tokens_has_no_gpu_hours_and_no_energy(client) -> None:
    data = ok(client, "/v1/plan", {k: v for k, v in PLAN.items() if k != "tokens"})
    assert all(p["gpu_hours"] is None and p["energy_kwh"] is None and p["co2e_tonnes"] is None for p in data["plans"])
    assert "pue" not in data["assumptions"]
    assert not any("energy_kwh" in f for f in data["formulas"])


@pytest.mark.parametrize(("path", "body"), [("/v1/budget", BUDGET), ("/v1/budget/for-loss", FOR_LOSS)])
def test_budget_answers_give_energy(client, path: str, body: dict) -> None:
    data = ok(client, path, body)
    assert_energy(data, H100_TDP_KW)
    assert_defaults_stated(data)


def test_a_budget_in_flops_has_no_gpu_and_no_energy(client) -> None:
    data = ok(client, "/v1/budget", {"compute_flops": 5.76e23})
    assert data["gpu_hours"] is None and data["energy_kwh"] is None and data["co2e_tonnes"] is None
    assert "pue" not in data["assumptions"]


@pytest.mark.parametrize(("path", "body"), REQUESTS)
def test_overrides_change_the_answer_in_proportion(client, path: str, body: dict) -> None:
    def energy_of(data: dict) -> dict:
        return data["rows"][0] if path.endswith("compare") else data["plans"][0] if path == "/v1/plan" else data

    base = ok(client, path, body)
    # each request differs from the last in one field: a kept answer (service.services.answers)
    # is keyed by every field sent, so none is served for another's inputs
    pue = ok(client, path, body | {"pue": 2 * DEFAULT_PUE})
    grid = ok(client, path, body | {"grid_kg_co2e_per_kwh": 2 * DEFAULT_GRID_KG_CO2E_PER_KWH})
    half = ok(client, path, body | {"gpu_power_fraction": 0.5})
    zero = ok(client, path, body | {"grid_kg_co2e_per_kwh": 0})
    b = energy_of(base)
    assert energy_of(pue)["gpu_hours"] == b["gpu_hours"]
    assert energy_of(pue)["energy_kwh"] == pytest.approx(2 * b["energy_kwh"])
    assert energy_of(pue)["co2e_tonnes"] == pytest.approx(2 * b["co2e_tonnes"])
    assert energy_of(grid)["energy_kwh"] == pytest.approx(b["energy_kwh"])
    assert energy_of(grid)["co2e_tonnes"] == pytest.approx(2 * b["co2e_tonnes"])
    assert energy_of(half)["energy_kwh"] == pytest.approx(b["energy_kwh"] / 2)
    assert energy_of(half)["co2e_tonnes"] == pytest.approx(b["co2e_tonnes"] / 2)
    assert energy_of(zero)["co2e_tonnes"] == 0 and energy_of(zero)["energy_kwh"] == pytest.approx(b["energy_kwh"])
    assert pue["assumptions"]["pue"] == 2 * DEFAULT_PUE and pue["assumptions"]["pue_source"] == "request"
    assert grid["assumptions"]["grid_kg_co2e_per_kwh_source"] == "request"
    assert half["assumptions"]["gpu_power_fraction"] == 0.5 and half["assumptions"]["gpu_power_fraction_source"] == "request"
    assert base["assumptions"]["pue_source"].startswith("default")  # the kept default answer is still the default one
    assert ok(client, path, body)["assumptions"]["pue"] == DEFAULT_PUE


BAD_INPUTS = [
    ("pue", 0.99),
    ("pue", 3.5),
    ("pue", "high"),
    ("grid_kg_co2e_per_kwh", -0.01),
    ("grid_kg_co2e_per_kwh", 2.5),
    ("gpu_power_fraction", 0),
    ("gpu_power_fraction", 1.51),
]


@pytest.mark.parametrize(("field", "value"), BAD_INPUTS)
def test_a_bad_energy_input_is_a_422_naming_it(client, field: str, value: object) -> None:
    data = problem(client, "/v1/cost/training", TRAINING | {field: value})
    assert locs(data) == [["body", field]]
    assert field in data["detail"]


@pytest.mark.parametrize(("path", "body"), REQUESTS[1:])
def test_every_request_with_gpu_hours_checks_the_inputs(client, path: str, body: dict) -> None:
    for field, value in (("pue", 0.5), ("grid_kg_co2e_per_kwh", 3), ("gpu_power_fraction", -1)):
        assert locs(problem(client, path, body | {field: value})) == [["body", field]]


def test_a_gpu_without_a_tdp_gives_null_energy_and_says_why(client) -> None:
    # Google publishes no TPU power (catalog notes): tpu-v5e has tdp_watts null
    body = TRAINING | {"gpu": "tpu-v5e", "mfu": 0.5}
    data = ok(client, "/v1/cost/training", body)
    assert data["gpu_hours"] > 0
    assert data["energy_kwh"] is None and data["co2e_tonnes"] is None
    assert data["assumptions"]["tdp_watts"] is None
    assert "tpu-v5e" in data["assumptions"]["energy_unavailable"] and "tdp_watts" in data["assumptions"]["energy_unavailable"]
    assert data["assumptions"]["pue"] == DEFAULT_PUE  # the inputs are still stated
    budget = ok(client, "/v1/budget", BUDGET | {"gpu": "tpu-v5e", "mfu": 0.5})
    assert budget["gpu_hours"] > 0 and budget["energy_kwh"] is None and "tpu-v5e" in budget["assumptions"]["energy_unavailable"]


def test_a_comparison_names_the_gpus_without_a_tdp(client) -> None:
    data = ok(client, "/v1/cost/compare", COMPARE | {"gpus": ["h100-sxm", "tpu-v5e", "tpu-v5p"]})
    rows = {row["gpu"]: row for row in data["rows"]}
    assert rows["h100-sxm"]["energy_kwh"] > 0
    assert rows["tpu-v5e"]["gpu_hours"] > 0 and rows["tpu-v5e"]["energy_kwh"] is None and rows["tpu-v5e"]["co2e_tonnes"] is None
    notes = data["assumptions"]
    assert notes["tpu-v5e.tdp_watts"] is None and notes["h100-sxm.tdp_watts"] == 700
    assert "tpu-v5e, tpu-v5p" in notes["energy_unavailable"]


def test_a_plan_on_gpus_without_a_tdp_says_which(client) -> None:
    body = PLAN | {"gpu": ["h100-sxm", "tpu-v5e"], "precision": "mixed_bf16"}
    data = ok(client, "/v1/plan", body)
    by_gpu = {g["gpu"]: g for g in data["gpus"]}
    assert_energy(by_gpu["h100-sxm"], H100_TDP_KW)
    assert by_gpu["tpu-v5e"]["gpu_hours"] > 0 and by_gpu["tpu-v5e"]["energy_kwh"] is None
    assert all(p["energy_kwh"] is None for p in data["plans"] if p["gpu"] == "tpu-v5e")
    assert "tpu-v5e" in data["assumptions"]["energy_unavailable"]


def test_llama_3_1_405b_end_to_end(client) -> None:
    # The Llama 3.1 model card: 30.84M H100 GPU-hours and 8,930 t CO2eq (location-based) for
    # 405B. The planner's GPU-hours are held within 15 % of the card (tests/api/test_plan.py,
    # tests/test_training_throughput.py; 29.8M) and the sourced energy defaults are 3.6 % low on the
    # card's own GPU-hours (tests/core/test_energy.py): 8,333 t, within 15 % while both hold.
    body = {"model": {"preset": "llama-3.1-405b"}, "tokens": 15.6e12, "gpu": "h100-sxm", "n_gpus": 16384, "seq_len": 8192,
            "usd_per_gpu_hour": 2.0}  # fmt: skip
    data = ok(client, "/v1/cost/training", body)
    assert data["co2e_tonnes"] == pytest.approx(8_930, rel=0.15)
