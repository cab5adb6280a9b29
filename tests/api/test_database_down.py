"""With the database unreachable: /readyz and catalog calls answer 503 problem+json, while the
calculators that need no catalog keep answering; and when Postgres goes away under a running app
and comes back, the same app recovers without a restart."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service.db.engine import build_engine
from service.db.migrate import upgrade
from service.db.seed import seed_catalog
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


class TcpProxy:
    """A TCP forwarder to ``target`` that can be cut (listener closed, open connections reset)
    and restored on the same port: the database "goes away" and "comes back"."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.acceptor: threading.Thread | None = None
        self.up()

    def up(self) -> None:
        self.listener = listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self.acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self.acceptor.start()

    def down(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        if self.acceptor is not None:  # its accept loop has noticed: no connection is added after this
            self.acceptor.join(timeout=10)
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def postgres_behind_proxy(make_database) -> Iterator[tuple[str, TcpProxy]]:
    """A migrated, seeded throwaway Postgres database, reached through a :class:`TcpProxy`."""
    url = make_url(make_database("postgres"))
    engine = build_engine(url.render_as_string(hide_password=False))
    upgrade(engine)
    with Session(engine) as session:
        seed_catalog(session)
        session.commit()
    engine.dispose()
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.down()


def eventually_503(get, timeout: float = 10) -> None:
    """Catalog reads may be answered from the in-process catalog cache for a moment; once it
    has to ask the store, the answer is 503."""
    deadline = time.monotonic() + timeout
    while (response := get()).status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_503(response)


def test_postgres_down_then_back_recovers_without_restart(postgres_behind_proxy) -> None:
    url, proxy = postgres_behind_proxy
    app = create_app(Settings(database_url=url, api_token=API_TOKEN, auto_migrate=False, catalog_cache_seconds=0))
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/v1/gpus/h100-sxm").status_code == 200  # the pool now holds a live connection

        proxy.down()
        assert_503(client.get("/readyz"))
        assert_503(client.post("/v1/providers", json={"id": "x", "name": "X"}, headers=AUTH))
        eventually_503(lambda: client.get("/v1/gpus"))
        eventually_503(lambda: client.post("/v1/params", json={"model": {"preset": "llama-2-7b"}}))
        r = client.post("/v1/params", json={"model": ARCH})
        assert r.status_code == 200 and r.json()["total"] == 6_738_415_616
        assert client.post("/v1/compute/training", json={"model": {"n_params": 7e9}, "tokens": 1e12}).status_code == 200

        proxy.up()  # the same app, no restart: the pool's dead connections are replaced on checkout
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.get("/v1/gpus/h100-sxm").status_code == 200
        assert client.post("/v1/params", json={"model": {"preset": "llama-2-7b"}}).status_code == 200
        created = client.post("/v1/providers", json={"id": "back-again", "name": "Back again"}, headers=AUTH)
        assert created.status_code == 201, created.text
    app.state.engine.dispose()
