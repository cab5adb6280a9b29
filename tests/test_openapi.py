"""The committed contract (openapi/openapi.json) is exactly what the app serves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from write_openapi import TARGET, render  # noqa: E402


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
