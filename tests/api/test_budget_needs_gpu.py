"""Budget inputs that only time or price a run on a GPU type: without `gpu` each is a 422 that
names it and says why, never silently ignored (the time fields would come back null)."""

from __future__ import annotations

import pytest

from tests.api.test_calculators import problem
from tests.api.test_cost import ok

# each input that needs a GPU type, with a valid value
NEEDS_GPU = {
    "n_gpus": 64,
    "deadline_days": 30,
    "mfu": 0.4,
    "achieved_tflops_per_gpu": 400,
    "scaling_efficiency": 0.9,
    "dtype": "fp8",
    "usd_per_gpu_hour": 2.5,
    "provider": "lambda",
    "pricing": "spot",
    "pue": 1.2,
    "grid_kg_co2e_per_kwh": 0.1,
    "gpu_power_fraction": 0.8,
}
LIFETIME_NEEDS_GPU = {
    **{k: v for k, v in NEEDS_GPU.items() if k not in ("deadline_days", "pue", "grid_kg_co2e_per_kwh", "gpu_power_fraction")},
    "serving_gpu": "h100-sxm",
    "max_time_to_first_token_seconds": 1.0,
    "max_time_per_output_token_seconds": 0.02,
}
BASES = {
    "/v1/budget": {"compute_flops": 5.76e23},
    "/v1/budget/for-loss": {"target_loss": 2.0},
    "/v1/budget/lifetime": {"target_loss": 2.0, "inference_tokens": 1e13},
}
CASES = [
    (path, field, value) for path in BASES for field, value in (LIFETIME_NEEDS_GPU if "lifetime" in path else NEEDS_GPU).items()
]


@pytest.mark.parametrize(("path", "field", "value"), CASES, ids=[f"{p.rsplit('/', 1)[-1]}-{f}" for p, f, _ in CASES])
def test_an_input_that_needs_a_gpu_is_a_422_without_one(client, path: str, field: str, value: object) -> None:
    data = problem(client, path, BASES[path] | {field: value})
    assert data["errors"][0]["loc"] == ["body", field], data
    assert data["errors"][0]["msg"].startswith("needs gpu ("), data
    assert data["detail"].startswith(f"{field}: needs gpu ("), data


def test_the_422_names_every_such_input_and_null_is_not_given(client) -> None:
    data = problem(client, "/v1/budget", {"compute_flops": 5.76e23, "n_gpus": 64, "mfu": 0.4, "usd_per_gpu_hour": None})
    assert [e["loc"] for e in data["errors"]] == [["body", "n_gpus"], ["body", "mfu"]]
    assert data["detail"] == (
        "n_gpus: needs gpu (the GPU type whose count it is); mfu: needs gpu (the GPU type whose peak FLOP/s it is a fraction of)"
    )


def test_the_same_inputs_with_a_gpu_time_the_flops(client) -> None:
    # 5.76e23 FLOPs (Chinchilla) at 40 % of an H100's 989.5 dense BF16 TFLOP/s: 404,450 GPU-hours, on 64 GPUs 6,319.5 hours
    body = {"compute_flops": 5.76e23, "gpu": "h100-sxm", "n_gpus": 64, "mfu": 0.4, "usd_per_gpu_hour": 2.0}
    r = ok(client, "/v1/budget", body)
    assert r["time_from"] == "mfu" and r["n_gpus"] == 64
    assert r["gpu_hours"] == pytest.approx(5.76e23 / (0.4 * 989.5e12) / 3600, rel=1e-3)
    assert r["wall_clock_hours"] == pytest.approx(r["gpu_hours"] / 64, rel=1e-12)
    assert r["cost_usd"] == pytest.approx(2.0 * r["gpu_hours"], rel=1e-12)


def test_flops_alone_still_answer_the_shape_with_null_time(client) -> None:
    r = ok(client, "/v1/budget", {"compute_flops": 5.76e23, "scaling_law": "besiroglu2024"})
    assert r["compute_flops"] == 5.76e23 and r["params"] > 0
    assert r["gpu_hours"] is None and r["wall_clock_hours"] is None and r["n_gpus"] is None and r["price"] is None
