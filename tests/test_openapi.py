"""The committed contract (openapi/openapi.json) is exactly what the app serves."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from write_openapi import TARGET, render  # noqa: E402


class _AnyString(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_STRING = _AnyString()


def test_committed_openapi_matches_the_app() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), "run `make openapi` and commit openapi/openapi.json"


def test_every_operation_has_an_id_tag_summary_and_typed_schemas() -> None:
    spec = json.loads(render())
    ids = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            assert op["tags"], (path, method)
            assert op.get("summary"), (path, method)
            ok = next(code for code in op["responses"] if code.startswith("2"))
            if ok != "204" and path != "/metrics":
                assert "$ref" in op["responses"][ok]["content"]["application/json"]["schema"], (path, method)
            if method in ("post", "put", "patch"):
                assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"], (path, method)
                assert "422" in op["responses"], (path, method)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert "application/problem+json" in response["content"], (path, method, code)
    assert len(ids) == len(set(ids))
    assert {"params-count", "compute-training", "compute-inference", "memory-training", "memory-inference"} <= set(ids)
    for resource in ("gpus", "providers", "models"):
        assert {f"{resource}-{verb}" for verb in ("list", "get", "create", "replace", "update", "delete")} <= set(ids)
    assert {"prices-list", "prices-get", "prices-create", "prices-delete"} <= set(ids)


def test_request_schemas_have_examples() -> None:
    schemas = json.loads(render())["components"]["schemas"]
    names = (
        "ParamsRequest", "TrainingComputeRequest", "InferenceComputeRequest", "TrainingMemoryRequest",
        "InferenceMemoryRequest", "ModelSpec", "GpuIn", "ProviderIn", "PriceIn", "ModelPresetIn",
    )  # fmt: skip
    for name in names:
        assert schemas[name].get("examples"), name


# --- what generated clients need (openapi-python-client, openapi-typescript + openapi-fetch) ------

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
CATALOG = ("/v1/gpus", "/v1/providers", "/v1/prices", "/v1/models")
VERSIONED = ("gpus", "providers", "models")
WRITES = ("post", "put", "patch", "delete")
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(render())


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def schema_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in the document except example values (data, not schemas)."""
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key not in ("example", "examples"):
                yield from schema_nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from schema_nodes(item)


def nullable(prop: dict[str, Any]) -> bool:
    return any(branch.get("type") == "null" for branch in prop.get("anyOf", ()))


def test_errors_are_problem_json_with_the_problem_schema(spec) -> None:
    for path, method, op in operations(spec):
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                assert response["content"] == PROBLEM, (path, method, code)
            for media_type, media in response.get("content", {}).items():
                assert media.get("schema"), (path, method, code, media_type)  # no empty entries
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail"]
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/FieldProblem"}


def test_catalog_writes_declare_bearer_auth(spec) -> None:
    assert spec["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": ANY_STRING},
    }
    assert "security" not in spec  # reads are open
    writes = 0
    for path, method, op in operations(spec):
        # POST /v1/models/from-hf-config reads a config.json and stores nothing: a calculator, open
        is_write = path.startswith(CATALOG) and method in WRITES and path != "/v1/models/from-hf-config"
        writes += is_write
        assert op.get("security") == ([{"bearerAuth": []}] if is_write else None), (path, method)
        assert all(p["name"].lower() != "authorization" for p in op.get("parameters", ())), (path, method)
    assert writes == 3 * 4 + 3  # create, replace, update, delete of gpus, providers, models; create, batch, delete of prices


def test_etag_location_and_if_match(spec) -> None:
    paths = spec["paths"]

    def headers(op: dict[str, Any], code: str) -> set[str]:
        return set(op["responses"][code].get("headers", {})) - {"X-Request-ID"}  # on every response (below)

    for resource in VERSIONED:
        item = paths[f"/v1/{resource}/{{{resource[:-1] if resource != 'models' else 'model'}_id}}"]
        assert headers(item["get"], "200") == {"ETag"}
        assert headers(paths[f"/v1/{resource}"]["post"], "201") == {"Location", "ETag", "Idempotent-Replayed"}
        for method in ("put", "patch"):
            assert headers(item[method], "200") == {"ETag", "Idempotent-Replayed"}, (resource, method)
        for method in ("put", "patch", "delete"):
            names = {p["name"] for p in item[method]["parameters"] if p["in"] == "header"}
            assert names == {"If-Match", "Idempotency-Key"} and "412" in item[method]["responses"], (resource, method)
    assert headers(paths["/v1/prices"]["post"], "201") == {"Location", "Idempotent-Replayed"}
    assert headers(paths["/v1/prices/batch"]["post"], "201") == {"Idempotent-Replayed"}
    assert spec["components"]["schemas"]["GpuOut"]["properties"]["version"]["type"] == "integer"
    for path, method, op in operations(spec):  # 412 only where an If-Match can fail
        has_if_match = any(p["name"] == "If-Match" for p in op.get("parameters", ()))
        assert ("412" in op["responses"]) == has_if_match, (path, method)


def test_catalog_writes_take_an_idempotency_key_and_say_when_to_retry(spec) -> None:
    writes = 0
    for path, method, op in operations(spec):
        if not (path.startswith(CATALOG) and method in WRITES and path != "/v1/models/from-hf-config"):
            continue
        writes += 1
        key = [p for p in op.get("parameters", ()) if p["name"] == "Idempotency-Key"]
        assert len(key) == 1 and key[0]["in"] == "header" and not key[0].get("required"), (path, method)
        assert op["responses"]["503"]["headers"]["Retry-After"]["schema"]["type"] == "integer", (path, method)
    assert writes == 15


def test_no_null_defaults_and_real_defaults_kept(spec) -> None:
    for node in schema_nodes(spec):
        assert not ("default" in node and node["default"] is None), node
    schemas = spec["components"]["schemas"]
    assert schemas["TrainingMemoryRequest"]["properties"]["precision"]["default"] == "mixed_bf16"
    assert schemas["PlanRequest"]["properties"]["top_k"]["default"] == 10
    assert schemas["PriceIn"]["properties"]["pricing"]["default"] == "on_demand"
    assert "default" not in schemas["TrainingMemoryRequest"]["properties"]["gpu"]


@pytest.mark.parametrize(
    ("patch", "full"), [("GpuPatch", "GpuIn"), ("ProviderPatch", "ProviderIn"), ("ModelPresetPatch", "ModelPresetIn")]
)
def test_patch_fields_are_nullable_exactly_where_null_clears(spec, patch: str, full: str) -> None:
    """A PATCH field is nullable iff the stored field may be null (so null clears it); the others
    are optional but not nullable (null there is a 422)."""
    schemas = spec["components"]["schemas"]
    patch_props, full_props = schemas[patch]["properties"], schemas[full]["properties"]
    assert set(patch_props) == set(full_props) - {"id"}
    assert "required" not in schemas[patch]
    for name, prop in patch_props.items():
        assert nullable(prop) == nullable(full_props[name]), (patch, name)
    assert not nullable(schemas["GpuPatch"]["properties"]["name"])
    assert nullable(schemas["GpuPatch"]["properties"]["default_mfu"])


def test_response_fields_are_required(spec) -> None:
    """Every field a response carries, always (null where it has no value), is required."""
    schemas = spec["components"]["schemas"]
    names = {
        ref.rpartition("/")[2]
        for _, _, op in operations(spec)
        for code, response in op["responses"].items()
        if code.startswith("2")
        for node in schema_nodes(response)
        if isinstance(ref := node.get("$ref"), str) and ref.startswith("#/components/schemas/")
    }
    seen = set()
    while names - seen:
        name = (names - seen).pop()
        seen.add(name)
        schema = schemas[name]
        names |= {n["$ref"].rpartition("/")[2] for n in schema_nodes(schema) if "$ref" in n}
        if schema.get("type") == "object" and "properties" in schema:
            assert set(schema.get("required", ())) == set(schema["properties"]), name
    assert {"GpuOut", "PlanItem", "PriceQuote", "PeakTflopsOut"} <= seen
    assert not [name for name in schemas if name.endswith(("-Input", "-Output"))]


def test_repeated_enums_are_named_schemas(spec) -> None:
    schemas = spec["components"]["schemas"]
    inline = Counter(
        tuple(node["enum"])
        for name, schema in schemas.items()
        for node in schema_nodes(schema)
        if "enum" in node and node is not schema
    )
    inline.update(tuple(n["enum"]) for path in spec["paths"].values() for n in schema_nodes(path) if "enum" in n)
    assert [values for values, count in inline.items() if count > 1] == []
    assert schemas["Pricing"]["enum"] == ["on_demand", "spot", "reserved"]
    assert schemas["PeakDtype"]["enum"] == ["fp32", "tf32", "bf16", "fp16", "fp8", "int8"]
    refs = {"pricing": "Pricing", "dtype": None, "precision": "Precision", "optimizer": "Optimizer", "recompute": "Recompute"}
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if field in refs:
                targets = {n["$ref"].rpartition("/")[2] for n in schema_nodes(prop) if "$ref" in n}
                assert len(targets) == 1 and (refs[field] is None or targets == {refs[field]}), (name, field, prop)


def test_numeric_types_are_consistent(spec) -> None:
    """One quantity, one type: a field name is integer everywhere or number everywhere; bytes are
    int64 integers, FLOPs numbers."""
    types: dict[str, set[str]] = {}
    for schema in spec["components"]["schemas"].values():
        for field, prop in schema.get("properties", {}).items():
            for node in (prop, *prop.get("anyOf", ()), prop.get("items", {})):  # the field's own value, not a map's
                if node.get("type") in ("integer", "number"):
                    types.setdefault(field, set()).add(node["type"])
                    if "_bytes" in field:
                        assert (node["type"], node.get("format")) == ("integer", "int64"), field
                    if "flops" in field and "tflops" not in field:
                        assert node["type"] == "number", field
    # ``tokens``: a run's tokens (a number: 1.5e13 overflows int32 clients) and, in
    # SpeculativeDecoding, the tokens drafted per step (API.md names both ``tokens``)
    shared_name = {"tokens"}
    assert {field: kinds for field, kinds in types.items() if len(kinds) > 1 and field not in shared_name} == {}
    assert spec["components"]["schemas"]["SpeculativeDecoding"]["properties"]["tokens"]["type"] == "integer"


def test_integer_bounds_are_integers_and_wide_integers_int64(spec) -> None:
    integers = [node for node in schema_nodes(spec) if node.get("type") == "integer"]
    assert len(integers) > 100
    for node in integers:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert type(node[key]) is int and INT64_MIN <= node[key] <= INT64_MAX, node
        low = node.get("minimum", node.get("exclusiveMinimum", INT64_MIN))
        high = node.get("maximum", node.get("exclusiveMaximum", INT64_MAX))
        if high > INT32_MAX or low < -INT32_MAX - 1:
            assert node.get("format") == "int64", node
    memory = spec["components"]["schemas"]["GpuIn"]["properties"]["memory_bytes"]
    assert memory == {"exclusiveMinimum": 0, "maximum": INT64_MAX, "type": "integer", "format": "int64", "title": "Memory Bytes"}


def test_operation_ids_read_as_method_names(spec) -> None:
    ids = {op["operationId"] for _, _, op in operations(spec)}
    assert {"budget-optimal_model", "budget-model_for_loss", "budget-lifetime_optimum"} <= ids
    for operation_id in ids:
        tag, _, name = operation_id.partition("-")
        assert re.fullmatch(r"[a-z]+", tag) and re.fullmatch(r"[a-z]+(_[a-z]+)*", name), operation_id
        assert name != tag, operation_id  # `budget-budget` says nothing


def test_info_license_and_servers(spec) -> None:
    assert spec["info"]["version"] == "1.0.0"
    assert spec["info"]["license"] == {"name": "MIT", "identifier": "MIT"}
    assert spec["servers"] == [{"url": "http://127.0.0.1:8000", "description": "make run"}]


def test_lists_document_only_what_they_send(spec) -> None:
    for path, method, op in operations(spec):
        if method == "get" and path.startswith(CATALOG) and "{" not in path:
            assert set(op["responses"]) == {"200", "422", "503"}, path


def test_every_request_body_has_media_type_examples(spec) -> None:
    schemas = spec["components"]["schemas"]
    bodies = 0
    for path, method, op in operations(spec):
        if "requestBody" not in op:
            continue
        bodies += 1
        media = op["requestBody"]["content"]["application/json"]
        assert media.get("examples"), (path, method)
        model = schemas[media["schema"]["$ref"].rpartition("/")[2]]
        assert [example["value"] for example in media["examples"].values()] == model["examples"], (path, method)
    assert (
        bodies == 14 + 2 * 3 + 3 + 2
    )  # calculators (from-hf-config too), plans, budget; PUT+PATCH; POST of versioned; POST price, batch


def test_middleware_answers_and_the_request_id_are_declared(spec) -> None:
    """413 and 415 come from the body guard before any route runs, on every operation that takes
    a body; every response carries X-Request-ID."""
    assert spec["components"]["headers"]["X-Request-ID"]["schema"] == {"type": "string", "maxLength": 128}
    bodies = 0
    for path, method, op in operations(spec):
        for code, response in op["responses"].items():
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}, (path, method, code)
        if "requestBody" in op:
            bodies += 1
            for code in ("413", "415"):
                assert op["responses"][code]["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (path, method, code)
        else:
            assert "413" not in op["responses"] and "415" not in op["responses"], (path, method)
    assert bodies >= 20
