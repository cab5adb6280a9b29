"""A generated OpenAPI client sends every field at its schema default: such a body answers as the
same body without them does (200 and the same numbers), never a 422 for an input "given"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())
# the minimum each endpoint needs beside its defaults
MINIMUM: dict[str, dict] = {
    "/v1/budget": {"compute_flops": 5.76e23},
    "/v1/budget/for-loss": {"target_loss": 2.0},
    "/v1/budget/lifetime": {"target_loss": 2.0, "inference_tokens": 1e13},
    "/v1/plan": {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "n_gpus": 8},
    "/v1/cost/training": {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "h100-sxm"},
}
# the same with the run timed at a stated MFU (the planner's inputs unread) or by the planner
TIMED: dict[str, dict] = {
    "/v1/budget mfu": {"compute_flops": 5.76e23, "gpu": "h100-sxm", "n_gpus": 64, "mfu": 0.4},
    "/v1/budget planner": {"compute_flops": 5.76e23, "gpu": "h100-sxm", "n_gpus": 64},
    "/v1/budget/for-loss mfu": {"target_loss": 2.0, "gpu": "h100-sxm", "deadline_days": 30, "mfu": 0.4},
    "/v1/budget/lifetime mfu": {"target_loss": 2.0, "inference_tokens": 1e13, "gpu": "h100-sxm", "mfu": 0.4},
    "/v1/cost/training mfu": {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "h100-sxm", "mfu": 0.4},
    # the planner trains at the dtype's precision (mixed_fp16 on a V100, which has no bf16), not the default precision sent
    "/v1/cost/training fp16": {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "v100-32gb-sxm", "dtype": "fp16"},
}
CASES = {path: body for path, body in MINIMUM.items()} | TIMED


def defaults(path: str) -> dict:
    """Every top-level field of the request schema that has a default, at that default."""
    ref = OPENAPI["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = OPENAPI["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return {name: prop["default"] for name, prop in schema["properties"].items() if "default" in prop}


@pytest.mark.parametrize("case", list(CASES))
def test_every_default_sent_explicitly_answers_as_left_out(client, case: str) -> None:
    path = case.split()[0]
    body = defaults(path) | CASES[case]
    assert len(body) > len(CASES[case])
    sent = client.post(path, json=body)
    assert sent.status_code == 200, sent.text
    left_out = client.post(path, json=CASES[case])
    assert left_out.status_code == 200, left_out.text
    assert sent.json() == left_out.json()


def test_a_v100_run_at_fp16_with_every_default_sent_is_planned_at_mixed_fp16(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "v100-32gb-sxm", "dtype": "fp16"}
    data = client.post("/v1/cost/training", json=defaults("/v1/cost/training") | body)
    assert data.status_code == 200, data.text
    assert data.json()["assumptions"]["precision"] == "mixed_fp16"
    assert data.json()["gpu_hours"] == pytest.approx(253_034, rel=1e-3)
