"""The committed contract works for a generated client.

openapi-python-client generates a Python client from ``openapi/openapi.json`` (once per session),
without a warning; the tests then import it and call the app through it, with FastAPI's
TestClient as the client's httpx client: a calculator, a catalog read and its ``ETag``, an
authenticated write with ``If-Match``, and 401/412/422 answers parsed into the typed ``Problem``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
from fastapi.testclient import TestClient

from tests.conftest import API_TOKEN

pytestmark = pytest.mark.slow  # runs the generator

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "openapi" / "openapi.json"
PACKAGE = "llm_training_math_client"  # from the document's title
BASE_URL = "http://testserver"  # TestClient's


def _generator_missing(reason: str) -> None:
    message = f"openapi-python-client is not installed ({reason}); `pip install -e '.[dev]'` installs it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI requires it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The generated package and the modules the tests use."""
    try:
        import openapi_python_client  # noqa: F401
    except ImportError as exc:
        _generator_missing(str(exc))
    out = tmp_path_factory.mktemp("generated_client")
    config = out / "config.yml"
    config.write_text("post_hooks: []\n", encoding="utf-8")  # no formatter run: nothing outside the venv is needed
    command = [
        sys.executable, "-m", "openapi_python_client", "generate", "--path", str(CONTRACT), "--meta", "none",
        "--config", str(config), "--output-path", str(out / PACKAGE),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower() and "unable" not in output.lower(), output
    sys.path.insert(0, str(out))
    try:
        pkg = importlib.import_module(PACKAGE)
        yield SimpleNamespace(
            pkg=pkg,
            models=importlib.import_module(f"{PACKAGE}.models"),
            types=importlib.import_module(f"{PACKAGE}.types"),
            **{
                name: importlib.import_module(f"{PACKAGE}.api.{tag}.{name}")
                for tag, name in [
                    ("params", "params_count"), ("gpus", "gpus_get"), ("gpus", "gpus_list"), ("gpus", "gpus_update"),
                    ("providers", "providers_create"), ("prices", "prices_list"),
                ]
            },
        )  # fmt: skip
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def api(generated: SimpleNamespace, client: TestClient):
    """An anonymous generated client that sends its requests to the test app."""
    return generated.pkg.Client(base_url=BASE_URL).set_httpx_client(client)


@pytest.fixture
def writer(generated: SimpleNamespace, client: TestClient):
    """A generated client with the API token; its httpx client carries the header the generated
    client builds from ``prefix`` and ``token``."""
    auth = generated.pkg.AuthenticatedClient(base_url=BASE_URL, token=API_TOKEN)
    return auth.set_httpx_client(TestClient(client.app, headers={auth.auth_header_name: f"{auth.prefix} {auth.token}"}))


def test_calculator_call(generated: SimpleNamespace, api) -> None:
    m = generated.models
    r = generated.params_count.sync_detailed(client=api, body=m.ParamsRequest(model=m.ModelSpec(preset="llama-2-7b")))
    assert r.status_code == 200
    assert isinstance(r.parsed, m.ParamsResponse)
    assert r.parsed.total == 6_738_415_616  # as tests/api/test_calculators.py
    assert r.parsed.formulas and r.parsed.assumptions is not None


def test_catalog_read_with_its_etag(generated: SimpleNamespace, api) -> None:
    m = generated.models
    r = generated.gpus_get.sync_detailed("h100-sxm", client=api)
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    gpu = r.parsed
    assert isinstance(gpu, m.GpuOut) and gpu.id == "h100-sxm" and gpu.version == 1
    assert gpu.peak_tflops.bf16 > 0 and gpu.memory_bytes > 2**31
    page = generated.gpus_list.sync(client=api, vendor="NVIDIA", limit=100)
    assert isinstance(page, m.PageGpuOut) and page.total == len(page.items) > 0
    prices = generated.prices_list.sync(client=api, gpu_id="h100-sxm", pricing=m.Pricing.ON_DEMAND, latest=True)
    assert prices.items and all(p.pricing is m.Pricing.ON_DEMAND for p in prices.items)


def test_response_fields_are_typed_as_always_present(generated: SimpleNamespace) -> None:
    """Fields every answer carries are never ``Unset`` in the generated models."""
    m = generated.models
    for model in (m.GpuOut, m.ProviderOut, m.PriceOut, m.ModelPresetOut, m.ParamsResponse, m.PlanResponse):
        optional = [f.name for f in attrs.fields(model) if "Unset" in str(f.type)]
        assert optional == [], (model.__name__, optional)
    assert "Unset" in str(attrs.fields_dict(m.Problem)["errors"].type)  # absent unless a 422
    assert "Unset" not in str(attrs.fields_dict(m.PlanItem)["stages"].type)  # null unless a plan over pools


def test_authenticated_write_with_if_match(generated: SimpleNamespace, api, writer) -> None:
    m = generated.models
    etag = generated.gpus_get.sync_detailed("h100-sxm", client=api).headers["ETag"]
    r = generated.gpus_update.sync_detailed(
        "h100-sxm", client=writer, body=m.GpuPatch(default_mfu=0.42, matmul_efficiency=None), if_match=etag
    )
    assert r.status_code == 200, r.content
    assert r.headers["ETag"] == '"2"'
    assert r.parsed.default_mfu == 0.42 and r.parsed.matmul_efficiency is None and r.parsed.version == 2
    stale = generated.gpus_update.sync_detailed("h100-sxm", client=writer, body=m.GpuPatch(tdp_watts=1), if_match=etag)
    assert stale.status_code == 412 and isinstance(stale.parsed, m.Problem) and "version 2" in stale.parsed.detail
    anonymous = generated.gpus_update.sync_detailed("h100-sxm", client=api, body=m.GpuPatch(tdp_watts=1))
    assert anonymous.status_code == 401 and isinstance(anonymous.parsed, m.Problem) and anonymous.parsed.status == 401

    created = generated.providers_create.sync_detailed(client=writer, body=m.ProviderIn(id="gen-client", name="Generated"))
    assert created.status_code == 201, created.content
    assert created.headers["Location"] == "/v1/providers/gen-client" and created.headers["ETag"] == '"1"'
    assert isinstance(created.parsed, m.ProviderOut) and created.parsed.url is None


def test_a_422_is_a_typed_problem(generated: SimpleNamespace, api) -> None:
    m = generated.models
    body = m.ParamsRequest(model=m.ModelSpec(preset="no-such-model"))
    r = generated.params_count.sync_detailed(client=api, body=body)
    assert r.status_code == 422
    problem = r.parsed
    assert isinstance(problem, m.Problem) and problem.status == 422 and problem.title
    assert isinstance(problem.errors[0], m.FieldProblem)
    assert problem.errors[0].loc == ["body", "model", "preset"]
