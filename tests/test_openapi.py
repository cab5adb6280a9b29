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
            assert "$ref" in op["responses"]["200"]["content"]["application/json"]["schema"], (path, method)
            if method == "post":
                assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"]
                assert "422" in op["responses"]
    assert len(ids) == len(set(ids))
    assert {"params-count", "compute-training", "compute-inference", "memory-training", "memory-inference"} <= set(ids)


def test_request_schemas_have_examples() -> None:
    schemas = json.loads(render())["components"]["schemas"]
    for name in ("ParamsRequest", "TrainingComputeRequest", "InferenceComputeRequest", "TrainingMemoryRequest", "InferenceMemoryRequest", "ModelSpec"):
        assert schemas[name].get("examples"), name
