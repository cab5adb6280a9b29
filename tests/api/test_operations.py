"""Operations, in process: the request id and the access log, CORS from configuration, the body
limit, and the settings ``python -m service serve`` hands to uvicorn. (The same against a real
uvicorn process, with hostile inputs: tests/test_faults.py.)

These need no catalog: the apps point at an empty SQLite file and call the calculators with an
explicit architecture."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.__main__ import uvicorn_options
from service.logging_config import JsonFormatter, RequestIdFilter, log_config
from service.main import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARCH = {"n_layers": 32, "d_model": 4096, "n_heads": 32, "d_ff": 11008, "vocab_size": 32000, "ffn": "swiglu", "norm": "rmsnorm"}
PARAMS = {"model": ARCH}
ORIGIN = "https://app.example"


def make_app(tmp_path: Path, **settings) -> FastAPI:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}", auto_migrate=False, **settings))

    @app.get("/boom", tags=["test"], include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("boom")

    return app


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    app = make_app(tmp_path_factory.mktemp("ops"), max_body_bytes=1000)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


@pytest.fixture(scope="module")
def cors_client(tmp_path_factory) -> Iterator[TestClient]:
    app = make_app(tmp_path_factory.mktemp("cors"), cors_origins=[ORIGIN, "https://admin.example"])
    with TestClient(app) as c:
        yield c
    app.state.engine.dispose()


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# --- the request id ---------------------------------------------------------------------------


def test_a_request_id_is_made_when_none_is_sent(client: TestClient) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("sent", ["abc-123", "0f0e0d0c-0b0a-4988-8776-655443322110", "trace:7/span=9@edge_1.a+b", "x" * 128])
def test_a_sane_request_id_is_echoed(client: TestClient, sent: str) -> None:
    assert client.post("/v1/params", json=PARAMS, headers={"X-Request-ID": sent}).headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", ["x" * 129, "has space", "semi;colon", 'quote"d', "new\\nline", "é"])
def test_an_insane_request_id_is_replaced(client: TestClient, sent: str) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": sent.encode()}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_every_answer_carries_the_request_id(client: TestClient) -> None:
    answers = {
        200: client.post("/v1/params", json=PARAMS, headers={"X-Request-ID": "r200"}),
        404: client.get("/v1/nowhere", headers={"X-Request-ID": "r404"}),
        405: client.delete("/v1/params", headers={"X-Request-ID": "r405"}),
        413: client.post("/v1/params", content=b"[" * 2000, headers={"content-type": "application/json", "X-Request-ID": "r413"}),
        415: client.post(
            "/v1/params", content=json.dumps(PARAMS), headers={"content-type": "text/plain", "X-Request-ID": "r415"}
        ),
        422: client.post("/v1/params", json={"model": {}}, headers={"X-Request-ID": "r422"}),
        500: client.get("/boom", headers={"X-Request-ID": "r500"}),
    }
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers["x-request-id"] == f"r{status}"
        if status != 200:
            assert_problem(response, status)


# --- the logs ---------------------------------------------------------------------------------


def test_one_access_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.access"):
        client.post("/v1/params", json=PARAMS, headers={"X-Request-ID": "log-1"})
        client.get("/v1/nowhere", headers={"X-Request-ID": "log-2"})
    records = [r for r in caplog.records if r.name == "service.access"]
    assert [(r.method, r.path, r.status, r.request_id) for r in records] == [
        ("POST", "/v1/params", 200, "log-1"), ("GET", "/v1/nowhere", 404, "log-2"),
    ]  # fmt: skip
    assert all(r.levelno == logging.INFO and r.duration_ms > 0 for r in records)


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    def count(method: str, route: str, status: int) -> float:
        pattern = re.compile(rf'http_requests_total{{method="{method}",route="{route}",status="{status}"}} (\S+)')
        return sum(float(m[1]) for row in client.get("/metrics").text.splitlines() if (m := pattern.fullmatch(row)))

    gpu = r"/v1/gpus/\{\w+\}"  # the route template, whatever its parameter is called
    before = count("GET", gpu, 503), count("POST", "unmatched", 415)
    client.get("/v1/gpus/no-such-gpu")  # 503: these apps have no catalog
    client.post("/v1/params", content=b"x", headers={"content-type": "text/plain"})  # refused before routing
    assert (count("GET", gpu, 503), count("POST", "unmatched", 415)) == (before[0] + 1, before[1] + 1)


def test_metrics_label_an_unknown_method_as_other(client: TestClient) -> None:
    """A method name is any token a client sends: each new one as a label would grow the series
    (and this process's memory) without bound, so the methods HTTP defines keep their names and
    every other is counted as ``OTHER``."""
    for i in range(20):
        assert client.request(f"BREW{i}", "/v1/gpus").status_code == 405
    rows = [row for row in client.get("/metrics").text.splitlines() if row.startswith("http_requests_total{")]
    methods = {re.search(r'method="([^"]*)"', row)[1] for row in rows}
    assert not any(m.startswith("BREW") for m in methods)
    other = re.compile(r'http_requests_total{method="OTHER",route="/v1/gpus",status="405"} (\S+)')
    assert sum(float(m[1]) for row in rows if (m := other.fullmatch(row))) == 20.0


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The service's loggers written through the JSON formatter and the request-id filter, as
    ``python -m service serve`` configures them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("service")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_json_lines_carry_the_request_id(client: TestClient, json_log: io.StringIO) -> None:
    client.post("/v1/params", json=PARAMS, headers={"X-Request-ID": "json-1"})
    client.get("/boom", headers={"X-Request-ID": "json-2"})
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "service.access"]
    assert [(a["method"], a["path"], a["status"], a["request_id"]) for a in access] == [
        ("POST", "/v1/params", 200, "json-1"), ("GET", "/boom", 500, "json-2"),
    ]  # fmt: skip
    assert all(a["level"] == "INFO" and isinstance(a["duration_ms"], float) and a["time"].endswith("+00:00") for a in access)
    (error,) = [line for line in lines if line["logger"] == "service.errors"]
    assert error["level"] == "ERROR" and error["message"] == "unhandled error"
    assert error["request_id"] == "json-2"  # the unhandled-error log names the request
    assert "RuntimeError: boom" in error["exception"]


def test_log_config_is_accepted_by_dictconfig() -> None:
    for fmt in ("json", "text"):
        config = log_config(fmt, "warning")
        logging.config.dictConfig(config | {"root": {"level": "WARNING", "handlers": []}})  # no handler left behind
        assert config["root"]["level"] == "WARNING"
        assert config["loggers"]["uvicorn.access"]["propagate"] is False  # the middleware logs requests
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


# --- CORS -------------------------------------------------------------------------------------


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/v1/params",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-request-id",
        },
    )


def test_no_cors_headers_without_the_setting(client: TestClient) -> None:
    response = preflight(client, ORIGIN)
    assert response.status_code == 405  # no CORS handling: OPTIONS is a method like any other
    assert not any(name.startswith("access-control-") for name in response.headers)
    simple = client.post("/v1/params", json=PARAMS, headers={"Origin": ORIGIN})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_preflight_for_a_configured_origin(cors_client: TestClient) -> None:
    response = preflight(cors_client, ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed and "x-request-id" in allowed
    assert response.headers["x-request-id"]
    simple = cors_client.post("/v1/params", json=PARAMS, headers={"Origin": ORIGIN})
    assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert "etag" in simple.headers["access-control-expose-headers"].lower()


def test_cors_refuses_another_origin(cors_client: TestClient) -> None:
    response = preflight(cors_client, "https://evil.example")
    assert response.status_code == 400 and "access-control-allow-origin" not in response.headers
    simple = cors_client.post("/v1/params", json=PARAMS, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_headers_on_errors_too(cors_client: TestClient) -> None:
    response = cors_client.post("/v1/params", content=b"x", headers={"Origin": ORIGIN, "content-type": "text/plain"})
    assert_problem(response, 415)
    assert response.headers["access-control-allow-origin"] == ORIGIN  # a browser can read why


# --- the body limit ---------------------------------------------------------------------------


def test_content_length_over_the_limit_is_413_before_reading(client: TestClient) -> None:
    body = assert_problem(client.post("/v1/params", content=b" " * 1001, headers={"content-type": "application/json"}), 413)
    assert "1000 bytes" in body["detail"] and "MAX_BODY_BYTES" in body["detail"]
    at_limit = json.dumps(PARAMS).encode().ljust(1000)
    assert client.post("/v1/params", content=at_limit, headers={"content-type": "application/json"}).status_code == 200


def test_413_on_any_route_and_it_closes_the_connection(client: TestClient) -> None:
    response = client.put("/v1/gpus/h100-sxm", content=b"{}" + b" " * 5000, headers={"content-type": "application/json"})
    assert_problem(response, 413)
    assert response.headers["connection"] == "close"  # the server stops reading what is left


async def _post_streamed(app: FastAPI, path: str, chunk: bytes, chunks: int) -> tuple[httpx.Response, int]:
    """POST a body of unknown length (no Content-Length), counting the chunks the app pulled."""
    pulled = 0

    async def body():
        nonlocal pulled
        for _ in range(chunks):
            pulled += 1
            yield chunk

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http:
        response = await http.post(path, content=body(), headers={"content-type": "application/json"})
    return response, pulled


@pytest.mark.parametrize("path", ["/v1/params", "/v1/providers"])  # a calculator's own parser and FastAPI's
def test_a_streamed_body_is_cut_off_at_the_limit(client: TestClient, path: str) -> None:
    response, pulled = asyncio.run(_post_streamed(client.app, path, b" " * 300, chunks=50 * 2**20 // 300))  # 50 MB
    assert_problem(response, 413)
    assert response.headers["connection"] == "close" and response.headers["x-request-id"]
    assert pulled == 4  # 1,200 bytes: the first chunk past 1,000; the rest is never read


def test_a_streamed_body_under_the_limit_is_served(client: TestClient) -> None:
    body = json.dumps(PARAMS).encode()
    response, pulled = asyncio.run(_post_streamed(client.app, "/v1/params", body, chunks=1))
    assert response.status_code == 200 and pulled == 1


def test_the_default_limit_is_one_mebibyte(tmp_path: Path) -> None:
    assert Settings().max_body_bytes == 2**20
    with TestClient(make_app(tmp_path)) as c:
        over = c.post("/v1/params", content=b" " * (2**20 + 1), headers={"content-type": "application/json"})
        assert_problem(over, 413)
        padded = json.dumps(PARAMS).encode().ljust(2**20)
        assert c.post("/v1/params", content=padded, headers={"content-type": "application/json"}).status_code == 200


# --- settings and the production start --------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", " https://a.example, https://b.example/ ,")
    monkeypatch.setenv("LOG_FORMAT", "TEXT")
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("WORKERS", "4")
    monkeypatch.setenv("SHUTDOWN_TIMEOUT_SECONDS", "30")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert (settings.log_format, settings.max_body_bytes, settings.workers, settings.shutdown_timeout_seconds) == (
        "text",
        2048,
        4,
        30,
    )
    monkeypatch.setenv("CORS_ORIGINS", "")
    assert Settings().cors_origins == []
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_serve_hands_uvicorn_the_settings() -> None:
    settings = Settings(workers=3, shutdown_timeout_seconds=7, log_level="debug", log_format="json", port=9000)
    options = uvicorn_options(settings)
    assert options["workers"] == 3 and options["port"] == 9000
    assert options["timeout_graceful_shutdown"] == 7
    assert options["access_log"] is False
    assert options["log_config"]["formatters"]["default"]["()"] is JsonFormatter
    assert uvicorn_options(settings, workers=5)["workers"] == 5  # --workers wins
    import uvicorn

    config = uvicorn.Config("service.main:app", **uvicorn_options(Settings(log_level="warning")))
    assert config.timeout_graceful_shutdown == 20 and config.workers == 1
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = [line for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line]
    listed = {}
    for line in lines:
        name, _, value = line.lstrip("# ").partition("=")
        listed[name.strip()] = value.strip()
    assert set(listed) == {name.upper() for name in Settings.model_fields}
    defaults = Settings.model_construct()
    for name, value in listed.items():
        default = getattr(defaults, name.lower())
        if name in ("DATABASE_URL", "API_TOKEN", "AUTO_MIGRATE", "CORS_ORIGINS", "WRITE_SLOTS"):
            continue  # computed from the project folder, or unset: the file says so in words
        assert str(value) == str(default) or float(value) == default, (name, value, default)


def test_compose_gives_in_flight_requests_their_grace() -> None:
    import yaml

    api = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    grace = api["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > Settings().shutdown_timeout_seconds  # SIGKILL after the grace
    assert api["command"] == ["python", "-m", "service", "serve"] and "WORKERS" in api["environment"]
    assert api["env_file"] == [{"path": ".env", "required": False}]
