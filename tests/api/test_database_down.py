"""With the database unreachable: /readyz and catalog calls answer 503 problem+json, while the
calculators that need no catalog keep answering."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings
from tests.conftest import API_TOKEN, AUTH

ARCH = {"n_layers": 32, "d_model": 4096, "n_heads": 32, "d_ff": 11008, "vocab_size": 32000, "ffn": "swiglu", "norm": "rmsnorm"}


@pytest.fixture(scope="module")
def down_client():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere"
    with TestClient(create_app(Settings(database_url=url, api_token=API_TOKEN))) as client:
        yield client


def assert_503(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 503


def test_readiness_and_catalog_say_503(down_client) -> None:
    assert down_client.get("/healthz").status_code == 200
    assert_503(down_client.get("/readyz"))
    assert_503(down_client.get("/v1/gpus"))
    assert_503(down_client.get("/v1/models/llama-2-7b"))
    assert_503(down_client.get("/v1/prices", params={"latest": "true"}))
    assert_503(down_client.post("/v1/providers", json={"id": "x", "name": "X"}, headers=AUTH))
    assert_503(down_client.post("/v1/params", json={"model": {"preset": "llama-2-7b"}}))


def test_calculators_without_catalog_keep_answering(down_client) -> None:
    r = down_client.post("/v1/params", json={"model": ARCH})
    assert r.status_code == 200 and r.json()["total"] == 6_738_415_616
    r = down_client.post("/v1/memory/training", json={"model": ARCH, "seq_len": 4096, "gpu_memory_bytes": 80 * 2**30})
    assert r.status_code == 200
    r = down_client.post("/v1/compute/training", json={"model": {"n_params": 7e9}, "tokens": 1e12})
    assert r.status_code == 200
