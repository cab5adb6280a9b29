"""Optimistic concurrency against a real server: many writers PATCH the same GPU with the same
If-Match; exactly one wins each round, the others get 412, and price rows written at the same
time are all kept. Runs on SQLite and Postgres, without the rollback fixture (real commits)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import AUTH

pytestmark = pytest.mark.slow  # rounds of concurrent writers against a real server

WRITERS = 8
ROUNDS = 5
PRICES_PER_ROUND = 4


@pytest.fixture
def server(live_server) -> str:
    return live_server.base


def test_exactly_one_writer_wins_each_round_and_no_price_is_lost(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as http:
        prices_before = http.get("/v1/prices", params={"gpu_id": "a100-80gb-sxm", "limit": 1}).json()["total"]
        created: list[int] = []
        for round_no in range(ROUNDS):
            etag = http.get("/v1/gpus/a100-80gb-sxm").headers["ETag"]
            barrier = threading.Barrier(WRITERS + PRICES_PER_ROUND)

            def patch(i: int, barrier=barrier, round_no=round_no, etag=etag) -> int:
                with httpx.Client(base_url=server, timeout=60) as own:
                    barrier.wait()
                    body = {"notes": f"round {round_no} writer {i}"}
                    return own.patch("/v1/gpus/a100-80gb-sxm", json=body, headers=AUTH | {"If-Match": etag}).status_code

            def add_price(i: int, barrier=barrier, round_no=round_no) -> int:
                with httpx.Client(base_url=server, timeout=60) as own:
                    barrier.wait()
                    body = {
                        "gpu_id": "a100-80gb-sxm", "provider_id": "lambda", "pricing": "spot",
                        "usd_per_gpu_hour": 1 + round_no + i / 100, "as_of": "2026-01-01", "source": "test",
                    }  # fmt: skip
                    r = own.post("/v1/prices", json=body, headers=AUTH)
                    if r.status_code == 201:
                        created.append(r.json()["id"])
                    return r.status_code

            with ThreadPoolExecutor(WRITERS + PRICES_PER_ROUND) as pool:
                patches = [pool.submit(patch, i) for i in range(WRITERS)]
                prices = [pool.submit(add_price, i) for i in range(PRICES_PER_ROUND)]
                statuses = Counter(f.result() for f in patches)
                price_statuses = Counter(f.result() for f in prices)
            assert statuses == {200: 1, 412: WRITERS - 1}, statuses
            assert price_statuses == {201: PRICES_PER_ROUND}, price_statuses
            new_etag = http.get("/v1/gpus/a100-80gb-sxm").headers["ETag"]
            assert int(new_etag.strip('"')) == int(etag.strip('"')) + 1
        final = http.get("/v1/gpus/a100-80gb-sxm")
        assert final.headers["ETag"] == f'"{1 + ROUNDS}"'
        assert final.json()["notes"].startswith(f"round {ROUNDS - 1} writer ")
        history = http.get("/v1/prices", params={"gpu_id": "a100-80gb-sxm", "limit": 500}).json()
        assert history["total"] == prices_before + ROUNDS * PRICES_PER_ROUND
        assert set(created) <= {p["id"] for p in history["items"]}
        assert len(set(created)) == ROUNDS * PRICES_PER_ROUND
