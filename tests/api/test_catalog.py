"""The catalog resources: GPUs, providers and model presets (CRUD with ETag/If-Match, bearer-token
writes), prices (append-only history), and the calculators reading what the catalog holds.

Every test runs in a rolled-back transaction, once on SQLite and once on Postgres."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from fastapi.testclient import TestClient

from service.catalog import loader
from service.main import create_app
from service.settings import Settings
from tests.conftest import AUTH

PROBLEM_JSON = "application/problem+json"
SEEDED = {"gpus": len(loader.gpus()), "providers": len(loader.providers()), "models": len(loader.model_presets())}
SEEDED_PRICES = len(loader.prices())

NEW_GPU = {
    "id": "test-gpu", "vendor": "TestCo", "name": "Test GPU 48GB", "memory_bytes": 48 * 2**30,
    "memory_bandwidth_bytes_per_s": 2_000_000_000_000, "peak_tflops": {"bf16": 400.0, "fp32": 50.0},
    "interconnect_bytes_per_s": 400_000_000_000, "tdp_watts": 450, "form_factor": "PCIe",
    "default_mfu": 0.35, "gpus_per_node": 4, "intra_node_bandwidth_bytes_per_s": 200_000_000_000,
    "inter_node_bandwidth_bytes_per_s": 12_500_000_000, "intra_node_link": "TestLink 1", "matmul_efficiency": 0.7,
    "source": "test fixture", "notes": "made up",
}  # fmt: skip
CLUSTER_FIELDS = (
    "gpus_per_node", "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s", "intra_node_link",
    "matmul_efficiency",
)  # fmt: skip
NEW_PROVIDER = {"id": "test-cloud", "name": "Test Cloud", "url": "https://example.com/pricing", "notes": "made up"}
NEW_MODEL = {
    "id": "tiny-test", "name": "Tiny Test", "family": "test", "n_layers": 2, "d_model": 64, "n_heads": 4,
    "d_ff": 256, "vocab_size": 1000, "ffn": "swiglu", "norm": "rmsnorm", "position": "rotary",
    "max_seq_len": 512, "source": "test fixture",
}  # fmt: skip
NEW = {"gpus": NEW_GPU, "providers": NEW_PROVIDER, "models": NEW_MODEL}
TODAY = dt.date.today()


def price_body(**overrides: object) -> dict:
    body = {
        "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "on_demand", "usd_per_gpu_hour": 2.49,
        "region": "us-east-1", "as_of": TODAY.isoformat(), "source": "test fixture",
    }  # fmt: skip
    return body | overrides


def problem(r, status: int) -> dict:
    """A problem+json document with the given status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    data = r.json()
    assert {"type", "title", "status", "detail"} <= data.keys()
    assert data["status"] == status
    assert data["detail"]
    return data


def locs(data: dict) -> list[list]:
    return [e["loc"] for e in data["errors"]]


def total(client, resource: str, query: str = "") -> int:
    r = client.get(f"/v1/{resource}?limit=1{query}")
    assert r.status_code == 200, r.text
    return r.json()["total"]


def created(client, resource: str, body: dict) -> dict:
    r = client.post(f"/v1/{resource}", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()


# --- lists ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["gpus", "providers", "models", "prices"])
def test_list_is_a_page(client, resource: str) -> None:
    r = client.get(f"/v1/{resource}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    page = r.json()
    assert page.keys() == {"items", "total", "limit", "offset"}
    assert (page["limit"], page["offset"]) == (50, 0)
    expected = SEEDED_PRICES if resource == "prices" else SEEDED[resource]
    assert page["total"] == expected
    assert len(page["items"]) == min(50, expected)


def test_seeded_catalog(client) -> None:
    assert total(client, "gpus") == 26  # the H800 and H20 of revision 0007, the V100 16GB and T4 of 0014 included
    # the Qwen3 MoE presets of 0005, the state-space ones of 0009, the hybrids of 0010, 0011's, 0012's LFM2 and Zamba,
    # 0013's RWKV-6/7
    assert total(client, "models") == 78
    ids = {g["id"] for g in client.get("/v1/gpus?limit=500").json()["items"]}
    assert {"h100-sxm", "a100-80gb-sxm"} <= ids
    providers = {p["id"] for p in client.get("/v1/providers?limit=500").json()["items"]}
    assert {"aws", "lambda"} <= providers


@pytest.mark.parametrize("resource", ["gpus", "models", "prices"])
def test_pagination(client, resource: str) -> None:
    everything = client.get(f"/v1/{resource}?limit=500").json()
    assert len(everything["items"]) == everything["total"] > 10
    key = "id"
    first = client.get(f"/v1/{resource}?limit=5").json()
    second = client.get(f"/v1/{resource}?limit=5&offset=5").json()
    assert (second["limit"], second["offset"], second["total"]) == (5, 5, everything["total"])
    assert [x[key] for x in first["items"] + second["items"]] == [x[key] for x in everything["items"][:10]]
    beyond = client.get(f"/v1/{resource}?offset={everything['total']}").json()
    assert beyond["items"] == [] and beyond["total"] == everything["total"]
    last = client.get(f"/v1/{resource}?limit=3&offset={everything['total'] - 2}").json()
    assert [x[key] for x in last["items"]] == [x[key] for x in everything["items"][-2:]]


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("limit=501", ["query", "limit"]),
        ("limit=0", ["query", "limit"]),
        ("limit=-1", ["query", "limit"]),
        ("offset=-1", ["query", "offset"]),
        ("limit=ten", ["query", "limit"]),
        ("bogus=1", ["query", "bogus"]),
        ("vendor=AMD&colour=red", ["query", "colour"]),
    ],
)
def test_bad_list_query_is_a_422(client, query: str, loc: list) -> None:
    data = problem(client.get(f"/v1/gpus?{query}"), 422)
    assert loc in locs(data)
    assert loc[-1] in data["detail"]


@pytest.mark.parametrize("resource", ["providers", "models", "prices"])
def test_unknown_query_param_on_every_list(client, resource: str) -> None:
    assert ["query", "typo"] in locs(problem(client.get(f"/v1/{resource}?typo=1"), 422))
    assert ["query", "limit"] in locs(problem(client.get(f"/v1/{resource}?limit=501"), 422))


def test_list_at_the_limit(client) -> None:
    page = client.get("/v1/prices?limit=500").json()
    assert page["limit"] == 500 and len(page["items"]) == page["total"] == SEEDED_PRICES


def test_filter_gpus_by_vendor(client) -> None:
    page = client.get("/v1/gpus?vendor=AMD").json()
    expected = sorted(k for k, g in loader.gpus().items() if g["vendor"] == "AMD")
    assert page["total"] == len(expected) == 3
    assert [g["id"] for g in page["items"]] == expected
    assert all(g["vendor"] == "AMD" for g in page["items"])
    assert client.get("/v1/gpus?vendor=NoSuchVendor").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_filter_models_by_family(client) -> None:
    page = client.get("/v1/models?family=llama-2").json()
    assert page["total"] == 3
    assert {m["id"] for m in page["items"]} == {"llama-2-7b", "llama-2-13b", "llama-2-70b"}
    assert all(m["family"] == "llama-2" for m in page["items"])
    swiglu = client.get("/v1/models?family=llama-2&ffn=swiglu").json()
    assert swiglu["total"] == 3
    assert client.get("/v1/models?family=llama-2&ffn=gelu").json()["total"] == 0
    assert ["query", "ffn"] in locs(problem(client.get("/v1/models?ffn=relu9"), 422))


def test_filter_prices(client) -> None:
    seeded = loader.prices()
    for query, keep in [
        ("gpu_id=h100-sxm", lambda p: p["gpu_id"] == "h100-sxm"),
        ("provider_id=aws", lambda p: p["provider_id"] == "aws"),
        ("pricing=spot", lambda p: p["pricing"] == "spot"),
        ("gpu_id=h100-sxm&provider_id=aws&pricing=on_demand",
         lambda p: (p["gpu_id"], p["provider_id"], p["pricing"]) == ("h100-sxm", "aws", "on_demand")),
    ]:  # fmt: skip
        page = client.get(f"/v1/prices?limit=500&{query}").json()
        expected = [p for p in seeded if keep(p)]
        assert page["total"] == len(expected) > 0, query
        assert all(keep(p) for p in page["items"]), query
    page = client.get("/v1/prices?gpu_id=h100-sxm&provider_id=lambda&pricing=on_demand").json()
    assert page["total"] == 1
    assert page["items"][0]["usd_per_gpu_hour"] == 3.99
    assert ["query", "pricing"] in locs(problem(client.get("/v1/prices?pricing=hourly"), 422))


# --- get ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "item_id"), [("gpus", "h100-sxm"), ("providers", "lambda"), ("models", "llama-2-7b")])
def test_get_has_an_etag(client, resource: str, item_id: str) -> None:
    r = client.get(f"/v1/{resource}/{item_id}")
    assert r.status_code == 200
    assert r.headers["ETag"] == '"1"'
    item = r.json()
    assert item["id"] == item_id and item["version"] == 1


def test_get_fields(client) -> None:
    gpu = client.get("/v1/gpus/h100-sxm").json()
    assert gpu["vendor"] == "NVIDIA"
    assert gpu["memory_bytes"] == 80 * 2**30
    assert gpu["peak_tflops"]["bf16"] == 989.5
    assert gpu["peak_tflops"].keys() == {"fp32", "tf32", "bf16", "fp16", "fp8", "int8"}
    # NVLink 4: 900 GB/s both ways = 450 GB/s each way; one 400 Gb/s NIC per GPU; Bekman's MAMF 794.5 / 989.5
    assert {k: gpu[k] for k in CLUSTER_FIELDS} == {
        "gpus_per_node": 8, "intra_node_bandwidth_bytes_per_s": 450_000_000_000,
        "inter_node_bandwidth_bytes_per_s": 50_000_000_000, "intra_node_link": "NVLink 4", "matmul_efficiency": 0.8,
    }  # fmt: skip
    assert gpu["interconnect_bytes_per_s"] == 2 * gpu["intra_node_bandwidth_bytes_per_s"]
    assert client.get("/v1/gpus/l4").json()["matmul_efficiency"] is None  # no published measurement
    model = client.get("/v1/models/llama-2-7b").json()
    assert (model["n_layers"], model["d_model"], model["n_heads"], model["d_head"], model["d_ff"]) == (32, 4096, 32, 128, 11008)
    assert model["source"]
    price_id = client.get("/v1/prices?limit=1").json()["items"][0]["id"]
    price = client.get(f"/v1/prices/{price_id}")
    assert price.status_code == 200 and price.json()["id"] == price_id


@pytest.mark.parametrize("path", ["/v1/gpus/no-such-gpu", "/v1/providers/no-such-cloud", "/v1/models/gpt-9", "/v1/prices/999999"])
def test_get_unknown_is_a_404_problem(client, path: str) -> None:
    r = client.get(path)
    data = problem(r, 404)
    assert path.rsplit("/", 1)[1] in data["detail"]
    assert "ETag" not in r.headers


# --- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["gpus", "providers", "models"])
def test_create(client, resource: str) -> None:
    body = NEW[resource]
    r = client.post(f"/v1/{resource}", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v1/{resource}/{body['id']}"
    assert r.headers["ETag"] == '"1"'
    item = r.json()
    assert item["version"] == 1
    for key, value in body.items():
        if key != "peak_tflops":
            assert item[key] == value, key
    got = client.get(r.headers["Location"])
    assert got.status_code == 200 and got.json() == item and got.headers["ETag"] == '"1"'
    assert total(client, resource) == SEEDED[resource] + 1


def test_created_gpu_and_model_fill_defaults(client) -> None:
    gpu = created(client, "gpus", NEW_GPU)
    assert gpu["peak_tflops"] == {"fp32": 50.0, "tf32": None, "bf16": 400.0, "fp16": None, "fp8": None, "int8": None}
    model = created(client, "models", NEW_MODEL)
    assert model["n_kv_heads"] == 4  # n_heads
    assert model["d_head"] == 16  # d_model / n_heads
    assert (model["n_experts"], model["bias"], model["notes"]) == (1, False, "")


@pytest.mark.parametrize(("resource", "item_id"), [("gpus", "h100-sxm"), ("providers", "lambda"), ("models", "llama-2-7b")])
def test_create_duplicate_is_a_409_and_changes_nothing(client, resource: str, item_id: str) -> None:
    before = client.get(f"/v1/{resource}/{item_id}").json()
    data = problem(client.post(f"/v1/{resource}", json=NEW[resource] | {"id": item_id}, headers=AUTH), 409)
    assert item_id in data["detail"]
    assert client.get(f"/v1/{resource}/{item_id}").json() == before
    assert total(client, resource) == SEEDED[resource]


@pytest.mark.parametrize("resource", ["gpus", "providers", "models"])
def test_create_without_a_token_is_a_401(client, resource: str) -> None:
    data = problem(client.post(f"/v1/{resource}", json=NEW[resource]), 401)
    assert "Bearer" in data["detail"]
    assert client.post(f"/v1/{resource}", json=NEW[resource]).headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(f"/v1/{resource}/{NEW[resource]['id']}").status_code == 404


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong-token", "Bearer test-token-2", "Basic dGVzdC10b2tlbg==", "test-token", "Bearer "]
)
def test_create_with_a_wrong_token_is_a_401(client, authorization: str) -> None:
    r = client.post("/v1/gpus", json=NEW_GPU, headers={"Authorization": authorization})
    problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/gpus/test-gpu").status_code == 404
    assert total(client, "gpus") == SEEDED["gpus"]


def test_every_write_needs_the_token(client) -> None:
    for method, path, body in [
        ("PUT", "/v1/gpus/h100-sxm", NEW_GPU | {"id": "h100-sxm"}),
        ("PATCH", "/v1/gpus/h100-sxm", {"tdp_watts": 1}),
        ("DELETE", "/v1/models/llama-2-7b", None),
        ("POST", "/v1/prices", price_body()),
        ("DELETE", "/v1/prices/1", None),
    ]:
        r = client.request(method, path, json=body)
        problem(r, 401)
        assert "WWW-Authenticate" in r.headers
    assert client.get("/v1/gpus/h100-sxm").headers["ETag"] == '"1"'
    assert client.get("/v1/models/llama-2-7b").status_code == 200
    assert client.get("/v1/prices/1").status_code == 200
    assert total(client, "prices") == SEEDED_PRICES


def test_writes_without_a_configured_token_are_a_403(app, client) -> None:
    settings = Settings(database_url=app.state.settings.database_url, api_token=None, auto_migrate=False)
    no_token = create_app(settings)
    no_token.state.sessionmaker = app.state.sessionmaker  # the test's rolled-back transaction
    try:
        c = TestClient(no_token)
        for headers in ({}, AUTH):
            for method, path, body in [
                ("POST", "/v1/gpus", NEW_GPU),
                ("POST", "/v1/providers", NEW_PROVIDER),
                ("POST", "/v1/models", NEW_MODEL),
                ("POST", "/v1/prices", price_body()),
                ("PATCH", "/v1/gpus/h100-sxm", {"tdp_watts": 1}),
                ("DELETE", "/v1/providers/lambda", None),
            ]:
                data = problem(c.request(method, path, json=body, headers=headers), 403)
                assert "API_TOKEN" in data["detail"]
        assert c.get("/v1/gpus/h100-sxm").status_code == 200  # reads stay open
    finally:
        no_token.state.engine.dispose()
    assert client.get("/v1/gpus/test-gpu").status_code == 404
    assert client.get("/v1/gpus/h100-sxm").headers["ETag"] == '"1"'
    assert total(client, "prices") == SEEDED_PRICES


@pytest.mark.parametrize(
    ("resource", "changes", "loc"),
    [
        ("gpus", {"memory_bytes": -1}, ["body", "memory_bytes"]),
        ("gpus", {"memory_bytes": 0}, ["body", "memory_bytes"]),
        ("gpus", {"memory_bandwidth_bytes_per_s": -5}, ["body", "memory_bandwidth_bytes_per_s"]),
        ("gpus", {"peak_tflops": {"bf16": -1.0}}, ["body", "peak_tflops", "bf16"]),
        ("gpus", {"default_mfu": 1.5}, ["body", "default_mfu"]),
        ("gpus", {"gpus_per_node": 0}, ["body", "gpus_per_node"]),
        ("gpus", {"gpus_per_node": 1025}, ["body", "gpus_per_node"]),
        ("gpus", {"gpus_per_node": 7.5}, ["body", "gpus_per_node"]),
        ("gpus", {"intra_node_bandwidth_bytes_per_s": 0}, ["body", "intra_node_bandwidth_bytes_per_s"]),
        ("gpus", {"intra_node_bandwidth_bytes_per_s": 2.5e9 + 0.5}, ["body", "intra_node_bandwidth_bytes_per_s"]),
        ("gpus", {"inter_node_bandwidth_bytes_per_s": -1}, ["body", "inter_node_bandwidth_bytes_per_s"]),
        ("gpus", {"inter_node_bandwidth_bytes_per_s": 2**63}, ["body", "inter_node_bandwidth_bytes_per_s"]),
        ("gpus", {"intra_node_link": ""}, ["body", "intra_node_link"]),
        ("gpus", {"intra_node_link": "x" * 65}, ["body", "intra_node_link"]),
        ("gpus", {"matmul_efficiency": 0}, ["body", "matmul_efficiency"]),
        ("gpus", {"matmul_efficiency": 1.01}, ["body", "matmul_efficiency"]),
        ("gpus", {"id": "Not A Slug"}, ["body", "id"]),
        ("gpus", {"colour": "green"}, ["body", "colour"]),
        ("gpus", {"peak_tflops": {"fp4": 9000}}, ["body", "peak_tflops", "fp4"]),
        ("providers", {"name": ""}, ["body", "name"]),
        ("providers", {"homepage": "x"}, ["body", "homepage"]),
        ("models", {"n_heads": 3}, ["body", "n_heads"]),
        ("models", {"n_kv_heads": 3}, ["body", "n_kv_heads"]),
        ("models", {"n_layers": 0}, ["body", "n_layers"]),
        ("models", {"ffn": "relu9"}, ["body", "ffn"]),
        ("models", {"nlayers": 2}, ["body", "nlayers"]),
    ],
)
def test_create_invalid_is_a_422_naming_the_field(client, resource: str, changes: dict, loc: list) -> None:
    body = NEW[resource] | changes
    data = problem(client.post(f"/v1/{resource}", json=body, headers=AUTH), 422)
    assert loc in locs(data), data
    assert all(e["msg"] for e in data["errors"])
    assert total(client, resource) == SEEDED[resource]
    assert client.get(f"/v1/{resource}/{body['id']}").status_code == 404


NUL = "a\x00b"  # Postgres text cannot hold U+0000 (its driver raises); SQLite would store it


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("POST", "/v1/gpus", NEW_GPU | {"notes": NUL}, ["body", "notes"]),
        ("POST", "/v1/gpus", NEW_GPU | {"vendor": NUL}, ["body", "vendor"]),
        ("POST", "/v1/providers", NEW_PROVIDER | {"url": NUL}, ["body", "url"]),
        ("POST", "/v1/models", NEW_MODEL | {"family": NUL}, ["body", "family"]),
        ("PUT", "/v1/providers/lambda", {"name": NUL}, ["body", "name"]),
        ("PATCH", "/v1/gpus/h100-sxm", {"intra_node_link": NUL}, ["body", "intra_node_link"]),
        ("PATCH", "/v1/models/llama-2-7b", {"source": NUL}, ["body", "source"]),
        ("POST", "/v1/prices", price_body(region=NUL), ["body", "region"]),
        ("POST", "/v1/prices/batch", {"prices": [price_body(), price_body(notes=NUL)]}, ["body", "prices", 1, "notes"]),
    ],
)
def test_a_nul_character_in_a_text_is_a_422_naming_the_field(client, method: str, path: str, body: dict, loc: list) -> None:
    before = {resource: total(client, resource) for resource in ("gpus", "providers", "models", "prices")}
    data = problem(client.request(method, path, json=body, headers=AUTH), 422)
    assert loc in locs(data), data
    assert {resource: total(client, resource) for resource in before} == before
    assert client.get("/v1/gpus/h100-sxm").headers["ETag"] == '"1"'


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("resource", ["gpus", "providers", "models"])
def test_a_write_to_an_id_holding_a_nul_is_a_404(client, resource: str, method: str) -> None:
    body = {k: v for k, v in NEW[resource].items() if k != "id"} if method == "PUT" else {"notes": "x"}
    r = client.request(method, f"/v1/{resource}/a%00b", json=None if method == "DELETE" else body, headers=AUTH)
    problem(r, 404)


def test_model_preset_heads_must_divide_d_model(client) -> None:
    data = problem(client.post("/v1/models", json=NEW_MODEL | {"d_model": 64, "n_heads": 5}, headers=AUTH), 422)
    assert locs(data) == [["body", "n_heads"]]
    assert "n_heads" in data["detail"] and "d_model" in data["detail"]


def test_create_without_id_is_a_422(client) -> None:
    body = {k: v for k, v in NEW_GPU.items() if k != "id"}
    data = problem(client.post("/v1/gpus", json=body, headers=AUTH), 422)
    assert ["body", "id"] in locs(data)
    assert total(client, "gpus") == SEEDED["gpus"]


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"null", b""])
def test_create_malformed_body_is_a_422(client, raw: bytes) -> None:
    problem(client.post("/v1/gpus", content=raw, headers=AUTH | {"content-type": "application/json"}), 422)
    assert total(client, "gpus") == SEEDED["gpus"]


@pytest.mark.parametrize(
    ("path", "raw", "reason"),
    [
        ("/v1/gpus", b'{"id": "a",\n  "name" 1}', "Invalid JSON: Expecting ':' delimiter at line 2 column 10"),
        ("/v1/providers", b'{"id": "caf\xe9", "name": "x"}', "Invalid JSON: the body is not UTF-8 (byte 0xe9 at offset 11)"),
        ("/v1/prices", b"[" * 5000 + b"]" * 5000, "Invalid JSON: nested too deeply"),
    ],
)
def test_a_body_that_is_not_json_is_a_422_with_the_reason(client, path: str, raw: bytes, reason: str) -> None:
    """As the calculators answer it: located at the body (not at a character offset posing as a
    field) with the parser's reason; bytes json cannot even scan are no bare 400."""
    data = problem(client.post(path, content=raw, headers=AUTH | {"content-type": "application/json"}), 422)
    assert data["errors"] == [{"loc": ["body"], "msg": reason, "type": "json_invalid"}]
    assert data["detail"] == f"body: {reason}"


# --- replace and update ---------------------------------------------------------------------------


def test_put_replaces_every_field(client) -> None:
    created(client, "gpus", NEW_GPU)
    replacement = {
        "vendor": "OtherCo", "name": "Replaced", "memory_bytes": 16 * 2**30,
        "memory_bandwidth_bytes_per_s": 900_000_000_000, "peak_tflops": {"fp16": 100.0}, "source": "replaced",
    }  # fmt: skip
    r = client.put("/v1/gpus/test-gpu", json=replacement, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"'
    gpu = r.json()
    assert {k: gpu[k] for k in replacement if k != "peak_tflops"} == {k: v for k, v in replacement.items() if k != "peak_tflops"}
    # fields not given go back to their defaults
    assert gpu["peak_tflops"] == {"fp32": None, "tf32": None, "bf16": None, "fp16": 100.0, "fp8": None, "int8": None}
    assert (gpu["interconnect_bytes_per_s"], gpu["tdp_watts"], gpu["form_factor"], gpu["default_mfu"], gpu["notes"]) == (
        None, None, None, None, ""
    )  # fmt: skip
    assert {k: gpu[k] for k in CLUSTER_FIELDS} == dict.fromkeys(CLUSTER_FIELDS)
    assert gpu["version"] == 2
    assert client.get("/v1/gpus/test-gpu").json() == gpu


def test_put_replaces_a_model_preset_and_recomputes_defaults(client) -> None:
    body = {k: v for k, v in NEW_MODEL.items() if k != "id"} | {"d_model": 128, "n_heads": 8}
    r = client.put("/v1/models/llama-2-7b", json=body | {"id": "llama-2-7b"}, headers=AUTH)
    assert r.status_code == 200, r.text
    model = r.json()
    assert (model["d_model"], model["n_heads"], model["n_kv_heads"], model["d_head"]) == (128, 8, 8, 16)
    assert model["family"] == "test" and model["notes"] == "" and model["id"] == "llama-2-7b"
    assert r.headers["ETag"] == '"2"'


@pytest.mark.parametrize("resource", ["gpus", "providers", "models"])
def test_put_with_a_different_body_id_is_a_422(client, resource: str) -> None:
    created(client, resource, NEW[resource])
    item_id = NEW[resource]["id"]
    before = client.get(f"/v1/{resource}/{item_id}").json()
    data = problem(client.put(f"/v1/{resource}/{item_id}", json=NEW[resource] | {"id": "other-id"}, headers=AUTH), 422)
    assert ["body", "id"] in locs(data)
    assert client.get(f"/v1/{resource}/{item_id}").json() == before
    assert client.get(f"/v1/{resource}/other-id").status_code == 404


def test_put_unknown_is_a_404(client) -> None:
    problem(client.put("/v1/gpus/no-such-gpu", json=NEW_GPU | {"id": "no-such-gpu"}, headers=AUTH), 404)
    assert client.get("/v1/gpus/no-such-gpu").status_code == 404
    problem(client.patch("/v1/providers/no-such-cloud", json={"name": "x"}, headers=AUTH), 404)


def test_put_invalid_is_a_422_and_changes_nothing(client) -> None:
    before = client.get("/v1/gpus/h100-sxm").json()
    data = problem(client.put("/v1/gpus/h100-sxm", json=NEW_GPU | {"id": "h100-sxm", "memory_bytes": -1}, headers=AUTH), 422)
    assert ["body", "memory_bytes"] in locs(data)
    missing = problem(client.put("/v1/gpus/h100-sxm", json={"name": "only a name"}, headers=AUTH), 422)
    assert ["body", "memory_bytes"] in locs(missing)
    after = client.get("/v1/gpus/h100-sxm")
    assert after.json() == before and after.headers["ETag"] == '"1"'


def test_patch_changes_only_the_given_fields(client) -> None:
    before = client.get("/v1/gpus/h100-sxm").json()
    r = client.patch("/v1/gpus/h100-sxm", json={"tdp_watts": 750, "notes": "patched"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"'
    after = r.json()
    assert after == before | {"tdp_watts": 750, "notes": "patched", "version": 2}
    got = client.get("/v1/gpus/h100-sxm")
    assert got.json() == after and got.headers["ETag"] == '"2"'
    r = client.patch("/v1/gpus/h100-sxm", json={"name": "H100 again"}, headers=AUTH)
    assert r.headers["ETag"] == '"3"' and r.json()["tdp_watts"] == 750


def test_patch_of_peak_tflops_changes_only_the_dtypes_given(client) -> None:
    """Like every other field a PATCH leaves out, a dtype left out of ``peak_tflops`` keeps its peak;
    null clears the one it names."""
    before = client.get("/v1/gpus/h100-sxm").json()["peak_tflops"]
    r = client.patch("/v1/gpus/h100-sxm", json={"peak_tflops": {"fp8": 2000.0}}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["peak_tflops"] == before | {"fp8": 2000.0}
    r = client.patch("/v1/gpus/h100-sxm", json={"peak_tflops": {"int8": None}}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert client.get("/v1/gpus/h100-sxm").json()["peak_tflops"] == before | {"fp8": 2000.0, "int8": None}


def test_patch_and_clear_the_cluster_fields(client) -> None:
    before = client.get("/v1/gpus/h100-sxm").json()
    changes = {"gpus_per_node": 16, "inter_node_bandwidth_bytes_per_s": 100_000_000_000, "matmul_efficiency": 0.75}
    r = client.patch("/v1/gpus/h100-sxm", json=changes, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == before | changes | {"version": 2}
    cleared = client.patch("/v1/gpus/h100-sxm", json={"matmul_efficiency": None, "intra_node_link": None}, headers=AUTH)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() == before | changes | {"matmul_efficiency": None, "intra_node_link": None, "version": 3}
    data = problem(client.patch("/v1/gpus/h100-sxm", json={"matmul_efficiency": 2}, headers=AUTH), 422)
    assert ["body", "matmul_efficiency"] in locs(data)
    assert client.get("/v1/gpus/h100-sxm").headers["ETag"] == '"3"'


def test_patch_a_model_preset(client) -> None:
    before = client.get("/v1/models/llama-2-7b").json()
    r = client.patch("/v1/models/llama-2-7b", json={"max_seq_len": 8192}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == before | {"max_seq_len": 8192, "version": 2}
    data = problem(client.patch("/v1/models/llama-2-7b", json={"n_heads": 30}, headers=AUTH), 422)
    assert ["body", "n_heads"] in locs(data)
    assert client.get("/v1/models/llama-2-7b").json() == before | {"max_seq_len": 8192, "version": 2}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"memory_bytes": -1}, ["body", "memory_bytes"]),
        ({"memory_bytes": None}, ["body", "memory_bytes"]),  # a required field cannot be cleared
        ({"peak_tflops": {"fp8": -3}}, ["body", "peak_tflops", "fp8"]),
        ({"id": "h100-sxm"}, ["body", "id"]),
        ({"speed": "fast"}, ["body", "speed"]),
    ],
)
def test_patch_invalid_is_a_422_and_changes_nothing(client, body: dict, loc: list) -> None:
    before = client.get("/v1/gpus/h100-sxm").json()
    data = problem(client.patch("/v1/gpus/h100-sxm", json=body, headers=AUTH), 422)
    assert loc in locs(data), data
    after = client.get("/v1/gpus/h100-sxm")
    assert after.json() == before and after.headers["ETag"] == '"1"'


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_if_match(client, method: str) -> None:
    def write(if_match: str, tdp: int):
        body = {"tdp_watts": tdp} if method == "PATCH" else NEW_GPU | {"id": "h100-sxm", "tdp_watts": tdp}
        return client.request(method, "/v1/gpus/h100-sxm", json=body, headers=AUTH | {"If-Match": if_match})

    etag = client.get("/v1/gpus/h100-sxm").headers["ETag"]
    r = write(etag, 710)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"'
    stored = client.get("/v1/gpus/h100-sxm").json()
    # the ETag of the first GET is now stale
    data = problem(write(etag, 720), 412)
    assert "version 2" in data["detail"]
    after = client.get("/v1/gpus/h100-sxm")
    assert after.json() == stored and after.json()["tdp_watts"] == 710 and after.headers["ETag"] == '"2"'
    # any version, and a list holding the current one
    r = write("*", 730)
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'
    r = write('"1", "3"', 740)
    assert r.status_code == 200 and r.headers["ETag"] == '"4"'
    problem(write('"not-a-version"', 750), 412)
    assert client.get("/v1/gpus/h100-sxm").json()["tdp_watts"] == 740


def test_stale_if_match_on_delete(client) -> None:
    created(client, "gpus", NEW_GPU)
    client.patch("/v1/gpus/test-gpu", json={"notes": "v2"}, headers=AUTH)
    problem(client.delete("/v1/gpus/test-gpu", headers=AUTH | {"If-Match": '"1"'}), 412)
    assert client.get("/v1/gpus/test-gpu").status_code == 200
    assert client.delete("/v1/gpus/test-gpu", headers=AUTH | {"If-Match": '"2"'}).status_code == 204
    assert client.get("/v1/gpus/test-gpu").status_code == 404


def test_weak_etag_never_matches_if_match(client) -> None:
    r = client.patch("/v1/gpus/h100-sxm", json={"tdp_watts": 701}, headers=AUTH | {"If-Match": 'W/"1"'})
    assert r.status_code == 412


@pytest.mark.parametrize("tag", [b'"\xb2"', b'"1\xb9"'])  # '"²"', '"1¹"': str.isdigit holds, int() refuses
def test_an_if_match_of_non_ascii_digits_is_a_412(client, tag: bytes) -> None:
    """A header's bytes arrive as latin-1 text: superscript digits are no version, and no 500. Sent
    through httpx's ASGI transport, which passes header bytes as they are (the test client re-encodes
    them as UTF-8)."""
    headers = [(b"authorization", AUTH["Authorization"].encode()), (b"if-match", tag)]

    async def send(method: str, body: dict | None) -> int:
        transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
            return (await raw.request(method, "/v1/gpus/h100-sxm", json=body, headers=headers)).status_code

    assert asyncio.run(send("PATCH", {"tdp_watts": 701})) == 412
    assert asyncio.run(send("DELETE", None)) == 412
    assert client.get("/v1/gpus/h100-sxm").json()["tdp_watts"] == 700


# --- delete ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["gpus", "providers", "models"])
def test_delete_then_404(client, resource: str) -> None:
    item_id = created(client, resource, NEW[resource])["id"]
    r = client.delete(f"/v1/{resource}/{item_id}", headers=AUTH)
    assert r.status_code == 204
    assert r.content == b""
    problem(client.get(f"/v1/{resource}/{item_id}"), 404)
    problem(client.delete(f"/v1/{resource}/{item_id}", headers=AUTH), 404)
    assert total(client, resource) == SEEDED[resource]


def test_delete_a_seeded_model_preset(client) -> None:
    assert client.post("/v1/params", json={"model": {"preset": "llama-2-7b"}}).status_code == 200  # read it first
    assert client.delete("/v1/models/llama-2-7b", headers=AUTH).status_code == 204
    problem(client.get("/v1/models/llama-2-7b"), 404)
    data = problem(client.post("/v1/params", json={"model": {"preset": "llama-2-7b"}}), 422)
    assert ["body", "model", "preset"] in locs(data)
    assert total(client, "models") == SEEDED["models"] - 1


@pytest.mark.parametrize(
    ("resource", "item_id", "query"), [("gpus", "h100-sxm", "gpu_id=h100-sxm"), ("providers", "lambda", "provider_id=lambda")]
)
def test_delete_referenced_by_prices_is_a_409(client, resource: str, item_id: str, query: str) -> None:
    before = client.get(f"/v1/{resource}/{item_id}").json()
    prices = total(client, "prices", f"&{query}")
    assert prices > 0
    data = problem(client.delete(f"/v1/{resource}/{item_id}", headers=AUTH), 409)
    assert "price" in data["detail"]
    after = client.get(f"/v1/{resource}/{item_id}")
    assert after.status_code == 200 and after.json() == before
    assert total(client, "prices", f"&{query}") == prices
    assert total(client, resource) == SEEDED[resource]


def test_delete_after_its_prices_are_deleted(client) -> None:
    created(client, "gpus", NEW_GPU)
    price = created(client, "prices", price_body(gpu_id="test-gpu"))
    problem(client.delete("/v1/gpus/test-gpu", headers=AUTH), 409)
    assert client.delete(f"/v1/prices/{price['id']}", headers=AUTH).status_code == 204
    problem(client.get(f"/v1/prices/{price['id']}"), 404)
    problem(client.delete(f"/v1/prices/{price['id']}", headers=AUTH), 404)
    assert client.delete("/v1/gpus/test-gpu", headers=AUTH).status_code == 204
    assert total(client, "prices") == SEEDED_PRICES


# --- prices ---------------------------------------------------------------------------------------


def test_create_price(client) -> None:
    r = client.post("/v1/prices", json=price_body(), headers=AUTH)
    assert r.status_code == 201, r.text
    price = r.json()
    assert r.headers["Location"] == f"/v1/prices/{price['id']}"
    assert price == price_body() | {"id": price["id"], "notes": ""}
    assert client.get(r.headers["Location"]).json() == price
    assert total(client, "prices") == SEEDED_PRICES + 1


def test_prices_are_appended_and_latest_is_the_newest(client) -> None:
    created(client, "gpus", NEW_GPU)
    created(client, "providers", NEW_PROVIDER)
    query = "gpu_id=test-gpu&provider_id=test-cloud&pricing=on_demand"
    old = created(
        client, "prices", price_body(gpu_id="test-gpu", provider_id="test-cloud", usd_per_gpu_hour=3.0, as_of="2026-01-15")
    )
    new = created(client, "prices", price_body(gpu_id="test-gpu", provider_id="test-cloud", usd_per_gpu_hour=2.0))
    spot = created(
        client, "prices", price_body(gpu_id="test-gpu", provider_id="test-cloud", pricing="spot", usd_per_gpu_hour=1.0)
    )
    history = client.get(f"/v1/prices?{query}").json()
    assert history["total"] == 2
    assert [p["id"] for p in history["items"]] == [new["id"], old["id"]]  # newest first
    assert client.get(f"/v1/prices/{old['id']}").json() == old
    latest = client.get(f"/v1/prices?{query}&latest=true").json()
    assert latest["total"] == 1
    assert latest["items"] == [new]
    both_kinds = client.get("/v1/prices?gpu_id=test-gpu&latest=true").json()
    assert sorted(p["id"] for p in both_kinds["items"]) == sorted([new["id"], spot["id"]])
    # an older observation recorded later does not become the latest
    created(client, "prices", price_body(gpu_id="test-gpu", provider_id="test-cloud", usd_per_gpu_hour=9.0, as_of="2025-06-01"))
    assert client.get(f"/v1/prices?{query}").json()["total"] == 3
    assert client.get(f"/v1/prices?{query}&latest=true").json()["items"] == [new]


def test_new_seeded_price_keeps_the_old_one(client) -> None:
    query = "gpu_id=h100-sxm&provider_id=lambda&pricing=on_demand"
    [old] = client.get(f"/v1/prices?{query}").json()["items"]
    new = created(client, "prices", price_body(usd_per_gpu_hour=2.49))
    assert old["as_of"] < new["as_of"]
    history = client.get(f"/v1/prices?{query}").json()["items"]
    assert [p["id"] for p in history] == [new["id"], old["id"]]
    assert client.get(f"/v1/prices?{query}&latest=true").json()["items"] == [new]
    assert client.get(f"/v1/prices/{old['id']}").json() == old
    assert total(client, "prices") == SEEDED_PRICES + 1


@pytest.mark.parametrize(("field", "known"), [("gpu_id", "h100-sxm"), ("provider_id", "lambda")])
def test_price_for_an_unknown_reference_is_a_422(client, field: str, known: str) -> None:
    data = problem(client.post("/v1/prices", json=price_body(**{field: "no-such-thing"}), headers=AUTH), 422)
    assert locs(data) == [["body", field]]
    assert "no-such-thing" in data["detail"]
    assert known in data["detail"]  # lists the known ids
    assert total(client, "prices") == SEEDED_PRICES


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"usd_per_gpu_hour": -0.01}, ["body", "usd_per_gpu_hour"]),
        ({"usd_per_gpu_hour": "cheap"}, ["body", "usd_per_gpu_hour"]),
        ({"as_of": (TODAY + dt.timedelta(days=30)).isoformat()}, ["body", "as_of"]),
        ({"as_of": "2100-01-01"}, ["body", "as_of"]),
        ({"as_of": "1999-12-31"}, ["body", "as_of"]),
        ({"as_of": "yesterday"}, ["body", "as_of"]),
        ({"pricing": "hourly"}, ["body", "pricing"]),
        ({"gpu_id": "H100 SXM"}, ["body", "gpu_id"]),
        ({"source": ""}, ["body", "source"]),
        ({"currency": "EUR"}, ["body", "currency"]),
    ],
)
def test_invalid_price_is_a_422(client, overrides: dict, loc: list) -> None:
    data = problem(client.post("/v1/prices", json=price_body(**overrides), headers=AUTH), 422)
    assert loc in locs(data), data
    assert total(client, "prices") == SEEDED_PRICES


def test_price_without_as_of_is_a_422(client) -> None:
    body = {k: v for k, v in price_body().items() if k != "as_of"}
    assert ["body", "as_of"] in locs(problem(client.post("/v1/prices", json=body, headers=AUTH), 422))


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_prices_are_append_only(client, method: str) -> None:
    before = client.get("/v1/prices/1").json()
    problem(client.request(method, "/v1/prices/1", json=price_body(), headers=AUTH), 405)
    assert client.get("/v1/prices/1").json() == before
    assert total(client, "prices") == SEEDED_PRICES


def test_405_names_the_allowed_methods(client) -> None:
    r = client.put("/v1/prices/1", json=price_body(), headers=AUTH)
    assert r.status_code == 405
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}


# --- a failed write leaves the store as it was -----------------------------------------------------


def test_failed_writes_change_nothing(client) -> None:
    def snapshot() -> dict:
        return {
            resource: client.get(f"/v1/{resource}?limit=500").json() for resource in ("gpus", "providers", "models", "prices")
        }

    before = snapshot()
    attempts = [
        ("POST", "/v1/gpus", NEW_GPU | {"id": "h100-sxm"}, 409),
        ("POST", "/v1/gpus", NEW_GPU | {"memory_bytes": -1}, 422),
        ("POST", "/v1/providers", NEW_PROVIDER | {"id": "aws"}, 409),
        ("POST", "/v1/models", NEW_MODEL | {"n_heads": 3}, 422),
        ("POST", "/v1/models", NEW_MODEL | {"id": "llama-2-7b"}, 409),
        ("POST", "/v1/prices", price_body(gpu_id="nope"), 422),
        ("POST", "/v1/prices", price_body(usd_per_gpu_hour=-1), 422),
        ("PUT", "/v1/gpus/h100-sxm", NEW_GPU | {"id": "a100-80gb-sxm"}, 422),
        ("PATCH", "/v1/gpus/h100-sxm", {"memory_bytes": None}, 422),
        ("PATCH", "/v1/models/llama-2-7b", {"n_kv_heads": 5}, 422),
        ("DELETE", "/v1/gpus/h100-sxm", None, 409),
        ("DELETE", "/v1/providers/aws", None, 409),
        ("PUT", "/v1/prices/1", price_body(), 405),
    ]
    for method, path, body, status in attempts:
        problem(client.request(method, path, json=body, headers=AUTH), status)
        if status != 405:  # no route: no auth to check
            problem(client.request(method, path, json=body, headers={"If-Match": '"1"'}), 401)
    assert snapshot() == before
    assert client.get("/v1/gpus/h100-sxm").headers["ETag"] == '"1"'


# --- the calculators read the catalog --------------------------------------------------------------


def test_calculators_accept_every_catalog_preset_and_gpu(client) -> None:
    models = client.get("/v1/models?limit=500").json()["items"]
    assert len(models) == SEEDED["models"]
    for model in models:
        r = client.post("/v1/params", json={"model": {"preset": model["id"]}})
        assert r.status_code == 200, (model["id"], r.text)
        assert r.json()["total"] > 0
    for gpu in client.get("/v1/gpus?limit=500").json()["items"]:
        r = client.post("/v1/memory/inference", json={"model": {"preset": "llama-2-7b"}, "seq_len": 2048, "gpu": gpu["id"]})
        assert r.status_code == 200, (gpu["id"], r.text)
        data = r.json()
        assert data["gpu_memory_bytes"] == gpu["memory_bytes"]
        assert data["gpus_needed"] >= 1


def test_a_new_preset_is_usable_right_away(client) -> None:
    problem(client.post("/v1/params", json={"model": {"preset": "tiny-test"}}), 422)
    created(client, "models", NEW_MODEL)
    by_preset = client.post("/v1/params", json={"model": {"preset": "tiny-test"}})
    assert by_preset.status_code == 200, by_preset.text
    explicit = {k: v for k, v in NEW_MODEL.items() if k not in ("id", "name", "family", "source")}
    by_fields = client.post("/v1/params", json={"model": explicit})
    assert by_preset.json()["total"] == by_fields.json()["total"] > 0
    # and a change to it is used right away too
    client.patch("/v1/models/tiny-test", json={"n_layers": 4}, headers=AUTH)
    deeper = client.post("/v1/params", json={"model": {"preset": "tiny-test"}}).json()
    assert deeper["total"] > by_preset.json()["total"]
    assert client.post("/v1/params", json={"model": {"preset": "tiny-test"}, "typo": 1}).status_code == 422


def test_a_new_gpu_is_usable_right_away(client) -> None:
    body = {"model": {"preset": "llama-2-7b"}, "seq_len": 2048, "gpu": "test-gpu"}
    problem(client.post("/v1/memory/inference", json=body), 422)
    created(client, "gpus", NEW_GPU)
    r = client.post("/v1/memory/inference", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["gpu_memory_bytes"] == NEW_GPU["memory_bytes"]


def test_patched_gpu_memory_is_used_by_the_calculators(client) -> None:
    body = {"model": {"preset": "llama-2-70b"}, "seq_len": 4096, "gpu": "h100-sxm"}
    before = client.post("/v1/memory/inference", json=body).json()
    assert before["gpu_memory_bytes"] == 80 * 2**30
    r = client.patch("/v1/gpus/h100-sxm", json={"memory_bytes": 160 * 2**30}, headers=AUTH)
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    after = client.post("/v1/memory/inference", json=body).json()
    assert after["gpu_memory_bytes"] == 160 * 2**30
    assert after["total_bytes"] == before["total_bytes"]
    assert after["gpus_needed"] < before["gpus_needed"]
    training = client.post("/v1/memory/training", json={"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm"}).json()
    assert training["gpu_memory_bytes"] == 160 * 2**30


def test_patching_heads_keeps_derived_fields_derived(client) -> None:
    body = {
        "id": "tiny-mha",
        "name": "Tiny",
        "n_layers": 2,
        "d_model": 64,
        "n_heads": 4,
        "d_ff": 256,
        "vocab_size": 100,
        "source": "test",
    }
    created = client.post("/v1/models", json=body, headers=AUTH).json()
    assert (created["n_kv_heads"], created["d_head"]) == (4, 16)
    patched = client.patch("/v1/models/tiny-mha", json={"n_heads": 8}, headers=AUTH).json()
    assert (patched["n_kv_heads"], patched["d_head"]) == (8, 8)  # still MHA, d_head = d_model / n_heads
    gqa = client.patch("/v1/models/tiny-mha", json={"n_kv_heads": 2}, headers=AUTH).json()
    wider = client.patch("/v1/models/tiny-mha", json={"d_model": 128}, headers=AUTH).json()
    assert (wider["n_kv_heads"], wider["d_head"]) == (gqa["n_kv_heads"], 16)  # explicit GQA kept


@pytest.mark.parametrize(
    ("field", "value"),
    [("peak_tflops", {"bf16": 1e-300}), ("matmul_efficiency", 1e-300), ("default_mfu", 1e-300)],
)
def test_a_near_zero_rate_is_refused_before_it_overflows_an_estimate(client, field: str, value: object) -> None:
    # a peak of 1e-300 TFLOP/s (or an efficiency or MFU near zero) turns a step or a decode time into an overflow:
    # refused at the write, as a request's efficiency overrides are, naming the field
    data = problem(client.post("/v1/gpus", json=NEW_GPU | {field: value}, headers=AUTH), 422)
    assert locs(data)[0][:2] == ["body", field]
    assert total(client, "gpus") == SEEDED["gpus"]
