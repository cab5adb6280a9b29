"""A real server for the tests that need concurrent HTTP clients: uvicorn in a thread, on a free
port, over a throwaway database of the run's backend, migrated and seeded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from sqlalchemy import Engine

from service.main import create_app
from service.settings import Settings
from tests.conftest import API_TOKEN, seeded_engine_at


@dataclass(frozen=True)
class LiveServer:
    base: str  # http://127.0.0.1:<port>
    engine: Engine  # the server's database, for checking what it stored


@pytest.fixture
def live_server(backend: str, make_database) -> Iterator[LiveServer]:
    url = make_database(backend)
    engine = seeded_engine_at(url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(database_url=url, api_token=API_TOKEN, auto_migrate=False))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", backlog=4096))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", engine)
    srv.should_exit = True
    thread.join(timeout=10)
    engine.dispose()
