"""Start-up leaves its objects out of the garbage collector's generations (``gc.freeze``): full
collections then skip them, which removed 80-260 ms pauses of every request under load
(benchmarks/README.md, ``make bench-load``)."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient


def test_start_up_freezes_what_it_built(client: TestClient) -> None:
    assert gc.get_freeze_count() > 10_000  # the modules, schemas and routes of the app
    assert client.get("/healthz").status_code == 200
