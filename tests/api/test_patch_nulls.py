"""PATCH accepts null exactly where the contract says a field is nullable (tests/test_openapi.py
checks the document's side): null clears a field that may be null, and is a 422 naming the field
where the stored value cannot be null."""

from __future__ import annotations

import pytest

from tests.api.test_catalog import locs, problem
from tests.conftest import AUTH


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/gpus/h100-sxm", "name"),
        ("/v1/gpus/h100-sxm", "notes"),
        ("/v1/gpus/h100-sxm", "peak_tflops"),
        ("/v1/providers/lambda", "name"),
        ("/v1/models/llama-2-7b", "n_layers"),
        ("/v1/models/llama-2-7b", "ffn"),
    ],
)
def test_null_for_a_field_that_cannot_be_null_is_a_422(client, path: str, field: str) -> None:
    before = client.get(path)
    data = problem(client.patch(path, json={field: None}, headers=AUTH), 422)
    assert ["body", field] in locs(data)
    after = client.get(path)
    assert after.json() == before.json() and after.headers["ETag"] == before.headers["ETag"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/gpus/h100-sxm", "default_mfu"),
        ("/v1/gpus/h100-sxm", "tdp_watts"),
        ("/v1/providers/lambda", "url"),
        ("/v1/models/llama-2-7b", "family"),
    ],
)
def test_null_clears_a_nullable_field(client, path: str, field: str) -> None:
    r = client.patch(path, json={field: None}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()[field] is None and r.headers["ETag"] == '"2"'
