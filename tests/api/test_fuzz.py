"""Property-based API fuzzing with Schemathesis, in-process against the ASGI app.

The contract fuzzed is the committed ``openapi/openapi.json`` (``tests/test_openapi.py`` keeps it equal
to what the app serves). Every generated request must keep the project's invariants:

* no input yields a 5xx;
* every error is ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``
  (a 422 also carries ``errors: [{loc, msg, type}]``);
* no response contains NaN or +-Infinity;
* a 200/201 conforms to the documented schema (Schemathesis' ``response_schema_conformance``);
  a 204 has no body; ``/metrics`` answers Prometheus text, not JSON.

A 422 for a schema-valid but semantically inconsistent body (``n_heads`` not dividing ``d_model``,
an unknown preset, ``gpu`` and ``gpu_memory_bytes`` together, ...) is the API working as designed,
not a failure.

A 404, 409 or 412 for a fuzzed catalog write (an unknown id, a duplicate or a still-referenced row,
a stale ``If-Match``) is also the API working as designed.

Two test functions:

* ``test_contract`` runs Schemathesis' examples, coverage (boundary values, wrong types, missing
  fields, bad content types) and fuzzing phases, positive and negative, on the raw contract: every
  operation of ``openapi/openapi.json``. The app has an API token and every request carries it, so
  catalog writes reach the real write logic; three in four positive path ids are pointed at rows
  the seed created and half the generated ``If-Match`` values at ``*`` or the seeded version
  (else nearly every get/replace/update/delete would stop at a 404 or a 412).
* ``test_consistent_models`` fuzzes positive bodies repaired into consistent ones first (a
  consistent architecture and parallelism, catalog GPUs and providers, one budget source, ...), so
  the calculators, cost, budget and preset writes run on random shapes (most raw bodies stop at a
  semantic 422 before reaching the math or the store, where a NaN or an invalid 200 would come from).

Each test item (one operation of one test function) gets its own throwaway SQLite catalog, a copy
of one migrated and seeded per module: fuzzed writes never leak into another item or another test
file, and nothing under the project's data/ folder is touched.

Bounded for CI: ``MAX_EXAMPLES`` fuzzed cases per operation and test, derandomized, no example
database, no deadline (the coverage phase adds a fixed, deterministic set on top).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from math import gcd
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from sqlalchemy.orm import Session

from service.catalog import loader
from service.db.engine import build_engine, session_factory
from service.db.migrate import upgrade
from service.db.seed import seed_catalog
from service.main import create_app
from service.schemas.budget import LIFETIME_WITH_GPU, MFU_INPUTS, NEEDS_GPU, PLANNER_INPUTS
from service.schemas.inputs import ADAPTER_OPTIONS, MOE_OPTIONS
from service.services.training_cost import COST_PLANNER_INPUTS
from service.settings import Settings
from tests.conftest import API_TOKEN

pytestmark = pytest.mark.slow  # hundreds of generated requests

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = json.loads((ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
PROBLEM_JSON = "application/problem+json"
# Per operation and test; FUZZ_MAX_EXAMPLES=1000 for a deeper local run (still derandomized).
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    # Bodies are large nested objects; Hypothesis' size/filter health checks are noise here.
    # The `fresh_catalog` fixture is per test item on purpose, not per generated example.
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture,
    ],
)  # fmt: skip


def _config(mode: str = "all", **phases: Any) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": mode},
            "phases": phases,
            # Every write carries the bearer token (the contract's `bearerAuth` scheme), so catalog
            # writes get past the 401; Schemathesis also checks a missing or wrong token is refused.
            "auth": {"openapi": {"bearerAuth": {"bearer": API_TOKEN}}},
            # Show request bodies verbatim in failure reports: fields such as `tokens` and
            # `prompt_tokens` are not secrets, and "[Filtered]" makes a report unreproducible.
            "output": {"sanitization": {"enabled": False}},
        }
    )


# Every operation of the contract (test_contract), and those whose bodies `map_body` makes
# consistent (test_consistent_models).
OPERATIONS = sorted(op["operationId"] for item in CONTRACT["paths"].values() for op in item.values())
CONSISTENT = [
    "params-count", "compute-training", "compute-inference", "memory-training", "memory-inference",
    "cost-training", "cost-compare", "cost-inference", "budget-optimal_model", "budget-model_for_loss", "budget-lifetime_optimum",
    "models-create", "models-replace",
]  # fmt: skip

# Schemathesis needs the app when the tests are collected; the database it reads is swapped in
# per test item by the `fresh_catalog` fixture below. This in-memory engine is never connected to.
# Writes need the token: without one every write would stop at a 403.
app = create_app(Settings(database_url="sqlite://", api_token=API_TOKEN, auto_migrate=False))


@pytest.fixture(scope="module")
def seeded_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite catalog file, migrated and seeded once per module, for `fresh_catalog` to copy."""
    path = tmp_path_factory.mktemp("fuzz") / "seeded.sqlite3"
    engine = build_engine(f"sqlite:///{path}")
    upgrade(engine)
    with Session(engine) as session:
        seed_catalog(session)
        session.commit()
    engine.dispose()  # the last connection closing checkpoints the WAL: the file alone is the catalog
    return path


@pytest.fixture(autouse=True)
def fresh_catalog(seeded_catalog: Path, tmp_path: Path):
    """A throwaway copy of the seeded catalog for each test item, so presets, GPUs and prices
    resolve, fuzzed writes die with the item, and nothing under data/ is touched."""
    path = tmp_path / "catalog.sqlite3"
    shutil.copyfile(seeded_catalog, path)
    engine = build_engine(f"sqlite:///{path}")
    previous = app.state.engine, app.state.sessionmaker
    app.state.engine, app.state.sessionmaker = engine, session_factory(engine)
    app.state.catalog_cache.clear()
    yield engine
    app.state.catalog_cache.clear()
    app.state.engine, app.state.sessionmaker = previous
    engine.dispose()


def _schema(config: schemathesis.Config, operations: list[str]) -> Any:
    schema = schemathesis.openapi.from_dict(CONTRACT, config=config).include(operation_id=operations)
    schema.app = app  # what `from_asgi` does: requests go to the ASGI app, in-process
    return schema


contract = _schema(_config(), OPERATIONS)
consistent = _schema(
    _config("positive", examples={"enabled": False}, coverage={"enabled": False}, stateful={"enabled": False}),
    CONSISTENT,
)


# --- the project's invariants, asserted on every response ---------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _non_finite_paths(value: Any, path: str = "$") -> list[str]:
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite_paths(v, f"{path}[{i}]")]
    return []


def _sent(response: schemathesis.Response) -> str:
    request = response.request
    body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else request.body
    return f"{request.method} {request.url}\n  body: {body}"


def assert_project_invariants(response: schemathesis.Response) -> None:
    __tracebackhide__ = True
    status = response.status_code
    sent = _sent(response)
    assert status < 500, f"server error {status} for\n  {sent}\n  response: {response.text[:2000]}"

    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip().lower()
    if status == 204:
        assert not response.content, f"204 with a body for\n  {sent}\n  {response.text[:2000]}"
        return
    if status == 200 and response.request.url.split("?")[0].endswith("/metrics"):
        assert content_type == "text/plain", f"metrics as {content_type!r}"  # Prometheus text, not JSON
        return
    assert content_type in ("application/json", PROBLEM_JSON), f"{content_type!r} for\n  {sent}"
    try:
        # Python's json accepts NaN/Infinity/-Infinity by default; JSON (RFC 8259) does not.
        body = json.loads(response.content, parse_constant=_reject_constant)
    except ValueError as exc:
        raise AssertionError(f"response is not strict JSON ({exc}) for\n  {sent}\n  {response.text[:2000]}") from exc
    # A literal such as 1e999 parses to inf: no number may be non-finite either.
    assert not _non_finite_paths(body), f"non-finite numbers at {_non_finite_paths(body)} for\n  {sent}"

    if status < 400:
        assert content_type == "application/json", f"{status} with {content_type!r} for\n  {sent}"
        return
    assert content_type == PROBLEM_JSON, f"{status} error is {content_type!r}, not problem+json, for\n  {sent}"
    assert isinstance(body, dict), f"problem is not an object: {body!r}"
    for key, kind in (("type", str), ("title", str), ("status", int), ("detail", str)):
        assert isinstance(body.get(key), kind), f"problem lacks a {kind.__name__} {key!r}: {body!r}\n  {sent}"
    assert body["status"] == status, f"problem status {body['status']} != HTTP {status}"
    if status == 422:
        errors = body.get("errors")
        assert isinstance(errors, list) and errors, f"422 without errors: {body!r}\n  {sent}"
        for error in errors:
            assert isinstance(error, dict), error
            assert isinstance(error.get("loc"), list), error
            assert all(isinstance(part, (str, int)) for part in error["loc"]), error
            assert isinstance(error.get("msg"), str) and isinstance(error.get("type"), str), error


# --- Schemathesis checks that flag deliberate behaviour ------------------------------------------
# Each filter drops one precisely described kind of failure and keeps every other failure of the
# same check; the project invariants above are asserted regardless of these filters.


def _is_valid_problem_422(response: schemathesis.Response) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return response.status_code == 422 and isinstance(body, dict) and bool(body.get("errors"))


def _lax_coercion(case: schemathesis.Case) -> bool:
    """The negative body is wrong only by JSON types that pydantic's (default) lax mode coerces:
    ``false``/``true`` for an integer/number field, ``0``/``1`` (or ``0.0``/``1.0``) for a boolean
    field. The coverage phase sends one such value (``incorrect_type``); a fuzzing-phase case counts
    when every mutation it applied left such a value in the body."""
    data = case.meta.phase.data if case.meta is not None else None
    if getattr(getattr(data, "scenario", None), "value", None) == "incorrect_type":
        segments = str(getattr(data, "location", "")).strip("/").split("/")
        # "items" steps into an array (a batch's rows): any element, written "*"
        paths = [
            [segments[i + 1] if s == "properties" else "*" for i, s in enumerate(segments[:-1]) if s in ("properties", "items")]
        ]
    elif mutations := getattr(data, "mutations", ()):
        if any(m.parameter_location != ParameterLocation.BODY for m in mutations):
            return False
        paths = [list(m.path) for m in mutations]
    else:
        return False
    return all(_coercible(case.body, path) for path in paths)


def _coercible(body: Any, path: list[str | int]) -> bool:
    value = body
    try:
        for depth, key in enumerate(path):
            if key == "*":  # some element of the array holds the coercible value
                return any(_coercible(element, path[depth + 1 :]) for element in value)
            value = value[key]
    except (KeyError, IndexError, TypeError):
        return False
    return isinstance(value, bool) or (type(value) in (int, float) and value in (0, 1))


def filter_failure(ctx, failure, case, response) -> bool:  # noqa: ANN001 (Schemathesis hook signature)
    code = failure.code
    # ST202 positive_data_acceptance: a schema-valid body may still be semantically invalid (heads
    # that do not divide d_model, an unknown preset, gpu and gpu_memory_bytes together, ...). The API
    # answers those with a documented 422 problem; any other status for valid data still fails.
    if code == "ST202" and _is_valid_problem_422(response):
        return False
    # ... and a generated `If-Match` is a valid header that names some other version of the row:
    # the documented 412 (404 and 409, the other outcomes of a well-formed write, pass the check).
    if code == "ST202" and response.status_code == 412 and "if-match" in {h.lower() for h in response.request.headers}:
        return False
    # ST103 and ST202 for a 405 at /v1/models/from-hf-config: that path belongs to the POST action
    # (service.api.catalog.PresetId keeps it out of the preset routes), so a get, replace, update or
    # delete of a "preset" of that name meets the action's path and is Method Not Allowed, as
    # problem+json. (The id's exclusion cannot be a contract pattern: pydantic's regex engine has no
    # look-ahead.)
    if code in ("ST103", "ST202") and response.status_code == 405 and response.request.url.endswith("/v1/models/from-hf-config"):
        return False
    # ST201 negative_data_rejection: the service validates with pydantic's default lax mode, which
    # accepts `false` for an integer and `0` for a boolean (a write so accepted may then meet a stale
    # `If-Match`: 412). Other accepted negatives still fail.
    if code == "ST201" and (response.status_code < 300 or response.status_code == 412) and _lax_coercion(case):
        return False
    return True


contract.hook(filter_failure)
consistent.hook(filter_failure)


# --- aiming positive cases at stored rows ---------------------------------------------------------


def _stable_hash(value: Any) -> int:
    """A hash of `repr(value)` that is the same in every run (`hash` of a str is salted per process)."""
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:8], "big")


SEEDED_IDS = {
    "gpu_id": sorted(loader.gpus()),
    "provider_id": sorted(loader.providers()),
    "model_id": sorted(loader.model_presets()),
    "price_id": list(range(1, len(loader.prices()) + 1)),  # the seed inserts them first, ids 1..n
}


def aim_at_stored_rows(case: schemathesis.Case) -> None:
    """Aim positive cases at the stored rows, choosing by a stable hash of the generated values
    (the body too: the coverage phase sends one path id and one If-Match with many bodies). Three
    in four path ids become a seeded row's id, so get/replace/update/delete reach the row (the
    fourth keeps the 404 path); half of the `If-Match` values become `*` or the seeded version
    `"1"`, so writes also get past the 412 (the other half keep it). Negative path ids and headers
    stay as generated."""
    negative = case.meta.is_negative_at if case.meta is not None else lambda _location: False
    body = case.body if isinstance(case.body, (dict, list)) else None
    if not negative(ParameterLocation.PATH):
        for name, value in (case.path_parameters or {}).items():
            pick = _stable_hash((value, body))
            if name in SEEDED_IDS and pick % 4:
                case.path_parameters[name] = SEEDED_IDS[name][pick // 4 % len(SEEDED_IDS[name])]
    if not negative(ParameterLocation.HEADER) and "If-Match" in (case.headers or {}):
        pick = _stable_hash((case.headers["If-Match"], body))
        if pick % 2:
            case.headers["If-Match"] = ("*", '"1"')[pick // 2 % 2]


# --- repairing generated bodies into consistent models (for test_consistent_models) ---------------

PRESETS = loader.model_presets()
GPUS = sorted(loader.gpus())
ARCH_FIELDS = (
    "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size", "ffn", "norm",
    "bias", "qkv_bias", "tied_embeddings", "position", "max_seq_len", "position_embedding_rows",
    "n_experts", "experts_per_token", "parallel_attention", "norms_per_layer", "embedding_norm",
)  # fmt: skip
SMALL = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_ff": 256, "vocab_size": 1000}


def _repair_architecture(arch: dict[str, Any]) -> dict[str, Any]:
    # JSON Schema lets an integer be written 1.0; do the arithmetic on ints.
    arch = {k: int(v) if isinstance(v, float) else v for k, v in arch.items()}
    arch["n_heads"] = n_heads = min(arch["n_heads"], arch["d_model"])
    arch["d_model"] = arch["d_model"] // n_heads * n_heads
    arch["n_kv_heads"] = gcd(arch.get("n_kv_heads") or n_heads, n_heads)
    if arch.get("experts_per_token", 1) > arch.get("n_experts", 1):
        arch["n_experts"] = arch["experts_per_token"]
    if arch.get("position") != "learned":
        arch.pop("position_embedding_rows", None)
    return arch


def _repair_model(model: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A consistent model spec, and its resolved architecture (None for a bare n_params)."""
    model = {k: v for k, v in model.items() if v is not None}
    explicit = {k: v for k, v in model.items() if k in ARCH_FIELDS}
    if "preset" in model:
        preset_id = sorted(PRESETS)[len(model["preset"]) % len(PRESETS)]
        base = {k: PRESETS[preset_id][k] for k in ARCH_FIELDS if PRESETS[preset_id].get(k) is not None}
        if "position_embedding_rows" in base and "position_embedding_rows" not in explicit:
            explicit.pop("position", None)  # a preset's learned rows cannot be unset: keep its positions
        arch = _repair_architecture(base | explicit)
        sent = {k: v for k, v in arch.items() if k in explicit or base.get(k) != v}
        return {"preset": preset_id, **sent}, arch
    if "n_params" in model and not explicit:
        return {"n_params": model["n_params"]}, None
    arch = _repair_architecture(SMALL | explicit)
    return arch, arch


def _repair_model_body(path: str, body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    body["model"], arch = _repair_model(body.get("model") or {})
    if arch is None and path == "/v1/params":  # a breakdown needs the shape
        body["model"], arch = _repair_model({k: v for k, v in body["model"].items() if k != "n_params"})
    if arch is None:  # only a parameter count: ask only what needs no shape
        if path in ("/v1/compute/training", "/v1/compute/inference", "/v1/cost/training"):
            body["include_attention"] = False
        elif path == "/v1/memory/training":
            body["include_activations"] = False
        elif path == "/v1/memory/inference":
            body["seq_len"] = 0
    if path.startswith("/v1/memory"):
        if body.get("gpu") is not None:
            body["gpu"] = GPUS[len(body["gpu"]) % len(GPUS)]
            body.pop("gpu_memory_bytes", None)
    if path == "/v1/compute/inference" and body.get("prompt_tokens", 0) + body.get("output_tokens", 1) < 1:
        body["output_tokens"] = 1
    if path == "/v1/memory/training" and isinstance(body.get("parallelism"), dict):
        par = dict(body["parallelism"])
        if arch is not None:
            par["tp"] = gcd(int(par.get("tp", 1)), arch["n_kv_heads"])
            par["pp"] = min(int(par.get("pp", 1)), arch["n_layers"])
        if par.get("offload_optimizer") and not par.get("zero_stage"):
            par["zero_stage"] = 1
        body["parallelism"] = par
    return body


# Seeded prices as (gpu, provider, pricing): a GPU and provider drawn from one of them has a price.
PRICED = sorted({(p["gpu_id"], p["provider_id"], p["pricing"]) for p in loader.prices()})
PROVIDERS = sorted(loader.providers())


def _pick(options: list[Any], seed: Any) -> Any:
    """One of `options`, chosen by a stable hash of the generated value."""
    return options[_stable_hash(seed) % len(options)]


def _repair_rate_and_price(body: dict[str, Any]) -> None:
    """One rate (mfu or achieved TFLOP/s), one price source, and a catalog GPU (and provider)
    with a seeded price of the requested kind when the price is not explicit."""
    if body.get("mfu") is not None:
        body.pop("achieved_tflops_per_gpu", None)
    if body.get("usd_per_gpu_hour") is not None:
        body.pop("provider", None)
    if body.get("gpu") is None:
        return
    if body.get("usd_per_gpu_hour") is not None:
        body["gpu"] = _pick(GPUS, body["gpu"])
        return
    kind = body.get("pricing", "on_demand")
    body["gpu"], provider, _ = _pick([row for row in PRICED if row[2] == kind], body["gpu"])
    if body.get("provider") is not None:
        body["provider"] = provider


def _adapters(body: dict[str, Any]) -> bool:
    """Whether the body fine-tunes LoRA/QLoRA adapters (``finetune``'s method defaults to lora)."""
    tune = body.get("finetune")
    return (isinstance(tune, dict) and tune.get("method", "lora") != "full") or any(
        body.get(k) is not None for k in ("lora", "qlora")
    )


def _is_moe(model: Any) -> bool:
    """Whether a (repaired) model spec has experts: its own n_experts, else its preset's."""
    if not isinstance(model, dict):
        return False
    preset = PRESETS.get(model.get("preset") or "") or {}
    return (model["n_experts"] if "n_experts" in model else preset.get("n_experts") or 1) > 1


def _drop_inapplicable_options(body: dict[str, Any], moe: bool) -> dict[str, Any]:
    """Only the step-time options some step of the run reads: a mixture's on a model with experts,
    cuda_graphs with LoRA/QLoRA adapters."""
    unread = (set() if moe else set(MOE_OPTIONS)) | (set() if _adapters(body) else set(ADAPTER_OPTIONS))
    return {k: v for k, v in body.items() if k not in unread}


def _repair_steptime_body(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """/v1/plan and /v1/cost/training read their step-time options where the run has the work they
    time; /v1/cost/training and /v1/cost/compare read the planner's inputs only where the planner runs
    (an architecture, no stated throughput), and a stated MFU's only where it does not."""
    if path not in ("/v1/plan", "/v1/cost/training", "/v1/cost/compare"):
        return body
    arch = isinstance(body.get("model"), dict) and "n_params" not in body["model"]
    if path == "/v1/plan" or (path == "/v1/cost/training" and arch):
        body = _drop_inapplicable_options(body, _is_moe(body.get("model")))
    if path == "/v1/plan":
        return body
    planner = arch and body.get("mfu") is None and body.get("achieved_tflops_per_gpu") is None
    if not planner:
        unread = {"global_batch_tokens"} if path == "/v1/cost/compare" else set(COST_PLANNER_INPUTS)
        if body.get("include_attention") or (_adapters(body) and path == "/v1/cost/training"):
            unread.discard("seq_len")
    elif path == "/v1/cost/training":
        unread = {"scaling_efficiency"} | ({"dtype"} if "precision" in body else set())
    else:
        unread = set()
    return {k: v for k, v in body.items() if k not in unread}


def _repair_cost_body(path: str, body: dict[str, Any]) -> dict[str, Any]:
    body = _repair_model_body(path, body)
    _repair_rate_and_price(body)
    body = _repair_steptime_body(path, body)
    if body.get("gpus"):
        body["gpus"] = sorted({_pick(GPUS, gpu) for gpu in body["gpus"]})
    if body.get("providers"):
        body["providers"] = sorted({_pick(PROVIDERS, provider) for provider in body["providers"]})
    return body


def _repair_budget_body(path: str, body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    if path == "/v1/budget":  # exactly one of budget_usd and compute_flops; dollars need a GPU
        if body.get("budget_usd") is not None and body.get("compute_flops") is not None:
            body.pop(_pick(["budget_usd", "compute_flops"], body["budget_usd"]))
        elif body.get("budget_usd") is None and body.get("compute_flops") is None:
            body["compute_flops"] = 1e22
        if body.get("budget_usd") is not None and body.get("gpu") is None:
            body["gpu"] = "h100-sxm"
        if body.get("n_params") is not None:
            body.pop("tokens_per_param", None)
    elif isinstance(body.get("target_loss"), int | float) and body["target_loss"] < 2:  # above every law's floor E
        body["target_loss"] += 2
    if body.get("gpu") is None and any(body.get(name) is not None for name in NEEDS_GPU):
        if _pick([True, False], body):  # inputs that time or price a run need its GPU: add one, or drop them
            body["gpu"] = "h100-sxm"
        else:
            body = {k: v for k, v in body.items() if k not in NEEDS_GPU}
    if body.get("fp8_recipe") is not None and body.get("precision") != "fp8":
        body.pop("fp8_recipe")
    body = _repair_planner_inputs(path, body)
    _repair_rate_and_price(body)
    if body.get("gpu") is not None and (body.get("n_gpus") is not None or body.get("deadline_days") is not None):
        if body.get("mfu") is None and body.get("achieved_tflops_per_gpu") is None:  # planned: the family's shapes are dense
            body = _drop_inapplicable_options(body, _is_moe(body.get("model")))
    if body.get("serving_gpu") is not None:  # priced as the training GPU is: a seeded price of the kind asked for
        kind = body.get("pricing", "on_demand")
        priced = GPUS if body.get("usd_per_gpu_hour") is not None else sorted({row[0] for row in PRICED if row[2] == kind})
        body["serving_gpu"] = _pick(priced, body["serving_gpu"])
    return body


def _repair_planner_inputs(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Only the inputs the answer reads: the planner's where it runs (gpu, a cluster, no stated
    throughput), a stated MFU's where it does not; a shape family only without an explicit model."""
    lifetime = path.endswith("/lifetime")
    cluster = body.get("n_gpus") is not None or (not lifetime and body.get("deadline_days") is not None)
    rate = body.get("mfu") is not None or body.get("achieved_tflops_per_gpu") is not None
    planner = body.get("gpu") is not None and cluster and not rate
    kept = LIFETIME_WITH_GPU if lifetime and body.get("gpu") is not None else ()
    unread = set(MFU_INPUTS) - set(kept) if planner else set(PLANNER_INPUTS) - set(kept)
    if body.get("model") is not None:
        unread.add("shape_family")
    return {k: v for k, v in body.items() if k not in unread}


def _repair_preset_body(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A preset with a consistent architecture; on create an id, on replace the path's."""
    arch = _repair_architecture({k: v for k, v in body.items() if k in ARCH_FIELDS and v is not None})
    body = {k: v for k, v in body.items() if k not in ARCH_FIELDS} | arch
    if path.endswith("}"):
        body.pop("id", None)
    elif body.get("id") is None:
        body["id"] = f"fuzz-{_stable_hash(sorted(body.items())) % 10**8}"
    return body


@consistent.hook
def map_body(ctx, body):  # noqa: ANN001 (Schemathesis hook signature)
    if not isinstance(body, dict):
        return body
    path = ctx.operation.path
    if path.startswith("/v1/models"):
        return _repair_preset_body(path, body)
    if path.startswith("/v1/budget"):
        return _repair_budget_body(path, body)
    if not isinstance(body.get("model"), dict):
        return body
    if path.startswith("/v1/cost"):
        return _repair_cost_body(path, body)
    return _repair_steptime_body(path, _repair_model_body(path, body))


# --- the tests ------------------------------------------------------------------------------------


@contract.parametrize()
@FUZZ_SETTINGS
def test_contract(case: schemathesis.Case) -> None:
    aim_at_stored_rows(case)
    response = case.call()
    assert_project_invariants(response)
    case.validate_response(response)


@consistent.parametrize()
@FUZZ_SETTINGS
def test_consistent_models(case: schemathesis.Case) -> None:
    aim_at_stored_rows(case)
    response = case.call()
    assert_project_invariants(response)
    case.validate_response(response)
