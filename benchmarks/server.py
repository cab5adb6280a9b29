"""A local uvicorn worker for the benchmarks that talk HTTP, on a free port and a throwaway
SQLite catalog (migrated and seeded at start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from benchmarks.bench_calculators import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running_service(database: Path) -> Iterator[httpx.Client]:
    """Start ``service.main:app`` on a free port and yield a client for it; stop it after."""
    port = free_port()
    database.parent.mkdir(parents=True, exist_ok=True)
    env = {"DATABASE_URL": f"sqlite:///{database}"} | dict(os.environ) | {"PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(200):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("server did not start")
            yield client
    finally:
        server.terminate()
        server.wait(timeout=10)
