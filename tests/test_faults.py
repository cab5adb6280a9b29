"""Hostile input and process faults.

In process (every backend): malformed JSON, a body that is not JSON, deeply nested JSON,
oversized bodies — each a clear 4xx problem+json, never a 500. Against a real
``python -m service serve`` process: its logs are JSON lines with the request id, a 50 MB body is
refused without being read (declared or streamed), several workers start on one migrated store,
and SIGTERM lets an in-flight request finish within SHUTDOWN_TIMEOUT_SECONDS and no longer.
(Database down and back: tests/api/test_database_down.py.)
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import AUTH
from tests.polling import eventually

ROOT = Path(__file__).resolve().parent.parent
ARCH = {"n_layers": 32, "d_model": 4096, "n_heads": 32, "d_ff": 11008, "vocab_size": 32000, "ffn": "swiglu", "norm": "rmsnorm"}
JSON = {"content-type": "application/json"}
MiB = 2**20


def assert_problem(response: httpx.Response, *statuses: int) -> dict:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code and body["detail"]
    return body


# --- hostile bodies, in process ---------------------------------------------------------------

# a calculator (its own pydantic parser), a catalog write (FastAPI's body handling), a planner call
WRITES = [("POST", "/v1/params", {}), ("PATCH", "/v1/gpus/h100-sxm", AUTH), ("POST", "/v1/plan", {})]


@pytest.mark.parametrize(("method", "path", "auth"), WRITES)
@pytest.mark.parametrize(
    "body",
    [b'{"model": ', b"{'model': 1}", b'{"model": {"n_params": NaN}}', b"\xff\xfe{}", b'{"a": 1}}', b"", b"null"],
    ids=["truncated", "single-quotes", "nan", "not-utf8", "trailing", "empty", "null"],
)
def test_malformed_json_is_a_4xx(client: TestClient, method: str, path: str, auth: dict, body: bytes) -> None:
    response = client.request(method, path, content=body, headers=JSON | auth)
    assert_problem(response, 400, 422)


@pytest.mark.parametrize(("method", "path", "auth"), WRITES)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", None],
)
def test_a_body_that_is_not_json_is_415(client: TestClient, method: str, path: str, auth: dict, content_type: str | None) -> None:
    headers = auth | ({"content-type": content_type} if content_type else {})
    response = client.request(method, path, content=json.dumps({"model": {"n_params": 7e9}}), headers=headers)
    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]


def test_json_media_types_are_accepted(client: TestClient) -> None:
    body = json.dumps({"model": ARCH})
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"):
        assert client.post("/v1/params", content=body, headers={"content-type": content_type}).status_code == 200, content_type


@pytest.mark.parametrize(("method", "path", "auth"), WRITES)
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"model": ' * 50_000 + b"1" + b"}" * 50_000, b'{"model": {"n_params": ' + b"[" * 100_000],
    ids=["arrays", "objects", "unterminated"],
)
def test_deeply_nested_json_is_a_4xx(client: TestClient, method: str, path: str, auth: dict, body: bytes) -> None:
    assert len(body) < MiB
    assert_problem(client.request(method, path, content=body, headers=JSON | auth), 400, 422)
    assert client.get("/healthz").status_code == 200  # and the process is fine


def test_huge_numbers_and_strings_are_a_4xx(client: TestClient) -> None:
    assert_problem(client.post("/v1/params", content=b'{"model": {"n_params": 1e400}}', headers=JSON), 422)  # inf
    for model in ({"n_params": "9" * 5000}, {"preset": "x" * 500_000}, ARCH | {"n_layers": 10**30}, ARCH | {"d_model": -(2**70)}):
        assert_problem(client.post("/v1/params", json={"model": model}), 422)


@pytest.mark.parametrize(("method", "path", "auth"), WRITES)
def test_an_oversized_body_is_413(client: TestClient, method: str, path: str, auth: dict) -> None:
    response = client.request(method, path, content=b" " * (MiB + 1), headers=JSON | auth)
    assert "MAX_BODY_BYTES" in assert_problem(response, 413)["detail"]


# --- a real server ----------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def start_server(tmp_path: Path, *args: str, **env: str) -> Server:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "server.log"
    environment = os.environ | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        "PORT": str(port),
        "LOG_LEVEL": "info",
    }
    for name in ("LOG_FORMAT", "WORKERS", "SHUTDOWN_TIMEOUT_SECONDS", "MAX_BODY_BYTES", "AUTO_MIGRATE", "CORS_ORIGINS"):
        environment.pop(name, None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", *args],
            cwd=ROOT,
            env=environment | env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
        if process.poll() is not None:
            break
    server.stop()
    pytest.fail(f"the server did not start:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


def raw_request(port: int, head: bytes, sndbuf: int | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.sendall(head)
    return sock


def read_response(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:  # closed with part of the request body unread: what came before stands
        pass
    return data


@pytest.mark.slow
def test_logs_are_json_lines_with_the_request_id(server: Server) -> None:
    httpx.post(f"{server.url}/v1/params", json={"model": {"preset": "llama-2-7b"}}, headers={"X-Request-ID": "live-1"})
    httpx.get(f"{server.url}/v1/nowhere", headers={"X-Request-ID": "live-2"})

    def both_logged() -> bool:  # the access lines are written once the answers are sent
        try:
            lines = server.log_lines()
        except ValueError:  # a line half written
            return False
        return {"live-1", "live-2"} <= {line.get("request_id") for line in lines if line["logger"] == "service.access"}

    assert eventually(both_logged), server.log_path.read_text()
    lines = server.log_lines()  # every line parses as JSON: nothing printed around the logger
    access = {line["request_id"]: line for line in lines if line["logger"] == "service.access"}
    assert {k: access[k]["status"] for k in ("live-1", "live-2")} == {"live-1": 200, "live-2": 404}
    assert (
        access["live-1"]["method"] == "POST" and access["live-1"]["path"] == "/v1/params" and access["live-1"]["duration_ms"] > 0
    )
    assert not any(line["logger"] == "uvicorn.access" for line in lines)  # one line per request, not two


@pytest.mark.slow
def test_a_declared_50_mb_body_is_refused_unread(server: Server) -> None:
    sock = raw_request(
        server.port, b"POST /v1/params HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
    )
    with sock:  # not one byte of the body sent: the answer comes anyway, and the connection closes
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 413 ")
    assert b"application/problem+json" in response and b"connection: close" in response.lower()


@pytest.mark.slow
def test_a_streamed_50_mb_body_is_cut_off(server: Server) -> None:
    head = b"POST /v1/params HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
    sent, pending, response = 0, b"", b""
    with raw_request(server.port, head, sndbuf=65536) as sock:
        sock.setblocking(False)
        while sent < 50 * MiB:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                response = read_response(sock)
                break
            assert writable, "the server neither read nor answered for 10 s"
            pending = pending or chunk
            try:
                n = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):  # closed: the answer may be waiting
                response = read_response(sock)
                break
            sent, pending = sent + n, pending[n:]
    assert response.startswith(b"HTTP/1.1 413 "), response[:200]
    assert b"MAX_BODY_BYTES" in response
    # the server stopped reading past the first MiB; what else left the client sat in socket
    # buffers (about 1.3 MiB in all here)
    assert sent < 8 * MiB, sent


@pytest.mark.slow
def test_several_workers_on_one_store(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--workers", "2")  # SQLite: migrated and seeded once, before the workers
    try:
        for _ in range(6):
            response = httpx.post(f"{server.url}/v1/params", json={"model": {"preset": "llama-2-7b"}})
            assert response.status_code == 200 and response.json()["total"] == 6_738_415_616
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    messages = [line["message"] for line in server.log_lines()]
    assert messages.count("catalog seeded") == 1 and "seeded the empty catalog" not in messages
    assert sum("Application startup complete" in m for m in messages) == 2


PROC_TCP = Path("/proc/net/tcp")


def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """Linux's send and receive queues (bytes) of the IPv4 TCP socket between the two ports,
    whether or not a process has accepted it yet; None when there is none."""
    for line in PROC_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            tx, rx = queues.split(":")
            return int(tx, 16), int(rx, 16)
    return None


def server_read_all(server: Server, sock: socket.socket) -> bool:
    """Whether the server process has accepted ``sock``'s connection and read all that was sent
    on it: every byte acknowledged by the server's end, none left in its receive queue."""
    client_port = sock.getsockname()[1]
    client, served = tcp_queues(client_port, server.port), tcp_queues(server.port, client_port)
    return client is not None and served is not None and client[0] == 0 and served[1] == 0


def start_slow_request(server: Server) -> socket.socket:
    """A calculator request whose body is half sent: in flight (its head read by the server)
    until the rest arrives."""
    body = json.dumps({"model": ARCH}).encode()
    head = b"POST /v1/params HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    sock = raw_request(server.port, head + body[:10])
    if PROC_TCP.exists():
        assert eventually(lambda: server_read_all(server, sock)), "the server did not read the request's head"
    else:  # no way to see the server's end here: give it a moment
        time.sleep(0.3)
    return sock


def refuses_connections(server: Server) -> bool:
    """Whether a new connection is refused (or closed unanswered: closed, or reset when the listening
    socket closes with it still in the backlog); a slow answer is not a refusal."""
    try:
        httpx.get(f"{server.url}/healthz", timeout=10)
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        return True
    return False


@pytest.mark.slow
def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    server = start_server(tmp_path, SHUTDOWN_TIMEOUT_SECONDS="20")
    with start_slow_request(server) as sock:
        server.process.send_signal(signal.SIGTERM)
        assert eventually(lambda: refuses_connections(server))  # no longer accepting new ones
        assert server.process.poll() is None  # but still waiting for the request
        body = json.dumps({"model": ARCH}).encode()
        sock.sendall(body[10:])
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"6738415616" in response
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in [line["message"] for line in server.log_lines()]


@pytest.mark.slow
def test_sigterm_cancels_requests_after_the_timeout(tmp_path: Path) -> None:
    server = start_server(tmp_path, SHUTDOWN_TIMEOUT_SECONDS="1")
    with start_slow_request(server):
        started = time.monotonic()
        assert server.stop(timeout=10) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 5
    messages = [line["message"] for line in server.log_lines()]
    assert any("timeout graceful shutdown exceeded" in m for m in messages)
    assert "Application shutdown complete." in messages  # the lifespan still disposed the engine
