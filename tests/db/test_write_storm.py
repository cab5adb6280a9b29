"""A storm of catalog writes against a real server, on SQLite and Postgres: every write answers
201 or 503 with Retry-After, every 201 is stored exactly once, a retry of every write with its
key stores nothing twice, concurrent requests with one key store one row, and reads keep
answering meanwhile. Timings are judged by `make bench-writes`, not here."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import AUTH

pytestmark = pytest.mark.slow  # hundreds of requests against a real server

WRITERS = 256


@pytest.fixture
def server(live_server) -> tuple[str, object]:
    return live_server.base, live_server.engine


def price(run: str, i: int) -> dict:
    return {
        "gpu_id": "a100-80gb-sxm", "provider_id": "lambda", "pricing": "spot", "usd_per_gpu_hour": 1 + i / 1000,
        "as_of": "2026-01-01", "source": f"storm {run}",
    }  # fmt: skip


async def send_all(base: str, requests: list[tuple[str, dict, dict]]) -> tuple[list[httpx.Response], list[int]]:
    """Every request at once, each on a connection of its own, while one reader keeps reading."""
    limits = httpx.Limits(max_connections=len(requests) + 8, max_keepalive_connections=0)
    reads: list[int] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:

        async def reader() -> None:
            while not done.is_set():
                reads.append((await http.get("/v1/gpus/a100-80gb-sxm")).status_code)

        reading = asyncio.create_task(reader())
        answers = await asyncio.gather(*(http.post(path, json=body, headers=headers) for path, body, headers in requests))
        done.set()
        await reading
    return list(answers), reads


def stored(engine, run: str) -> Counter:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT usd_per_gpu_hour FROM prices WHERE source = :s"), {"s": f"storm {run}"})
        return Counter(round((usd - 1) * 1000) for (usd,) in rows)


def assert_answered_well(answers: list[httpx.Response]) -> None:
    for r in answers:
        assert r.status_code in (201, 503), (r.status_code, r.text)
        if r.status_code == 503:
            assert r.headers["Retry-After"].isdigit() and r.headers["content-type"] == "application/problem+json"


def test_a_storm_of_writers_is_stored_exactly_once_and_a_keyed_retry_adds_nothing(server) -> None:
    base, engine = server
    run = uuid.uuid4().hex[:8]
    requests = [("/v1/prices", price(run, i), AUTH | {"Idempotency-Key": f"{run}-{i}"}) for i in range(WRITERS)]
    answers, reads = asyncio.run(send_all(base, requests))
    assert_answered_well(answers)
    created = {i for i, r in enumerate(answers) if r.status_code == 201}
    assert created, "no write got through"
    rows = stored(engine, run)
    assert set(rows) == created and set(rows.values()) == {1}  # each 201 stored once; nothing refused was stored
    assert reads and set(reads) == {200}  # reads went on during the storm

    retry, _ = asyncio.run(send_all(base, requests))
    assert_answered_well(retry)
    for i, r in enumerate(retry):
        if r.status_code == 201 and i in created:
            assert r.headers["Idempotent-Replayed"] == "true" and r.content == answers[i].content
    after = stored(engine, run)
    assert set(after.values()) == {1}  # nothing twice
    assert set(after) == created | {i for i, r in enumerate(retry) if r.status_code == 201}


def test_concurrent_requests_with_one_key_store_one_row(server) -> None:
    base, engine = server
    run = uuid.uuid4().hex[:8]
    requests = [("/v1/prices", price(run, 7), AUTH | {"Idempotency-Key": f"{run}-same"})] * 24
    answers, _ = asyncio.run(send_all(base, requests))
    assert_answered_well(answers)
    ok = [r for r in answers if r.status_code == 201]
    assert ok and len({r.content for r in ok}) == 1  # one answer, however many got it
    assert stored(engine, run) == Counter({7: 1})
