"""Catalog writes: Idempotency-Key replays, price batches, the bounded write lane, and a store
that says when it is not migrated. The API tests run on SQLite and Postgres (conftest)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.api.write_lane import WriteLane
from service.db.engine import build_engine
from service.db.migrate import downgrade, head_revision, schema_problem, upgrade
from service.db.models import IdempotencyKey, Price
from service.db.seed import seed_catalog
from service.errors import Busy
from service.main import create_app
from service.schemas.catalog import MAX_PRICE_BATCH, ProviderIn
from service.settings import Settings
from tests.conftest import API_TOKEN, AUTH

PRICE = {
    "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "spot", "usd_per_gpu_hour": 1.75,
    "as_of": "2026-01-01", "source": "test",
}  # fmt: skip


def key(value: str) -> dict[str, str]:
    return AUTH | {"Idempotency-Key": value}


def prices_in_store(connection, **where) -> int:
    stmt = select(func.count()).select_from(Price)
    for column, value in where.items():
        stmt = stmt.where(getattr(Price, column) == value)
    return connection.execute(stmt).scalar_one()


# --- Idempotency-Key ----------------------------------------------------------------------------


def test_a_retried_price_with_its_key_is_stored_once_and_answered_the_same(client: TestClient, db_connection) -> None:
    body = PRICE | {"usd_per_gpu_hour": 1.2345}
    first = client.post("/v1/prices", json=body, headers=key("price-1"))
    again = client.post("/v1/prices", json=body, headers=key("price-1"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert prices_in_store(db_connection, usd_per_gpu_hour=1.2345) == 1
    # what the write answered is what a read answers
    assert client.get(first.headers["Location"]).content == first.content
    # without a key every POST appends
    client.post("/v1/prices", json=body, headers=AUTH)
    assert prices_in_store(db_connection, usd_per_gpu_hour=1.2345) == 2


def test_a_key_reused_with_another_body_or_path_is_a_422_naming_the_header(client: TestClient, db_connection) -> None:
    assert client.post("/v1/prices", json=PRICE, headers=key("reused")).status_code == 201
    for method, path, body in (
        ("POST", "/v1/prices", PRICE | {"usd_per_gpu_hour": 9.0}),
        ("PATCH", "/v1/gpus/h100-sxm", {"notes": "x"}),
    ):
        r = client.request(method, path, json=body, headers=key("reused"))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
        assert "different request" in r.json()["detail"]
    assert prices_in_store(db_connection, usd_per_gpu_hour=9.0) == 0
    assert client.get("/v1/gpus/h100-sxm").json()["notes"] != "x"


@pytest.mark.parametrize("bad", [b"", b"has space", b"x" * 256, "ключ".encode()])
def test_a_malformed_key_is_a_422(client: TestClient, bad: bytes) -> None:
    headers = AUTH | {"Idempotency-Key": bad}
    r = client.post("/v1/prices", json=PRICE, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


def test_keys_make_put_patch_and_delete_safe_to_retry(client: TestClient) -> None:
    gpu = client.get("/v1/gpus/h100-sxm")
    etag = gpu.headers["ETag"]
    first = client.patch("/v1/gpus/h100-sxm", json={"notes": "once"}, headers=key("patch-1") | {"If-Match": etag})
    again = client.patch("/v1/gpus/h100-sxm", json={"notes": "once"}, headers=key("patch-1") | {"If-Match": etag})
    assert first.status_code == again.status_code == 200  # without the key the stale If-Match would be a 412
    assert again.content == first.content and again.headers["ETag"] == first.headers["ETag"] == f'"{int(etag[1:-1]) + 1}"'
    assert client.get("/v1/gpus/h100-sxm").json()["version"] == int(etag[1:-1]) + 1

    body = {"id": "idem-provider", "name": "Idempotent"}
    created = client.post("/v1/providers", json=body, headers=key("create-1"))
    assert client.post("/v1/providers", json=body, headers=key("create-1")).status_code == 201  # not a 409
    replaced = client.put("/v1/providers/idem-provider", json=body | {"name": "Replaced"}, headers=key("put-1"))
    assert (
        client.put("/v1/providers/idem-provider", json=body | {"name": "Replaced"}, headers=key("put-1")).content
        == replaced.content
    )
    assert created.status_code == 201 and replaced.json()["version"] == 2
    assert client.delete("/v1/providers/idem-provider", headers=key("delete-1")).status_code == 204
    assert client.delete("/v1/providers/idem-provider", headers=key("delete-1")).status_code == 204  # not a 404
    assert client.delete("/v1/providers/idem-provider", headers=AUTH).status_code == 404


def test_a_refused_write_is_not_stored_under_its_key(client: TestClient, db_connection) -> None:
    bad = PRICE | {"gpu_id": "no-such-gpu"}
    assert client.post("/v1/prices", json=bad, headers=key("refused")).status_code == 422
    assert db_connection.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one() == 0
    assert client.post("/v1/prices", json=PRICE, headers=key("refused")).status_code == 201  # the key is still free


def test_an_expired_key_is_a_new_write(client: TestClient, db_connection) -> None:
    body = PRICE | {"usd_per_gpu_hour": 2.468}
    assert client.post("/v1/prices", json=body, headers=key("expiring")).status_code == 201
    db_connection.execute(
        text("UPDATE idempotency_keys SET expires_at = :t WHERE key = 'expiring'"), {"t": "2000-01-01 00:00:00"}
    )
    again = client.post("/v1/prices", json=body, headers=key("expiring"))
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert prices_in_store(db_connection, usd_per_gpu_hour=2.468) == 2


# --- batches --------------------------------------------------------------------------------------


def test_a_batch_is_stored_whole_with_one_catalog_version(client: TestClient, db_connection) -> None:
    version = db_connection.execute(text("SELECT version FROM catalog_version")).scalar_one()
    rows = [PRICE | {"usd_per_gpu_hour": 3 + i / 1000, "region": "batch-test"} for i in range(MAX_PRICE_BATCH)]
    r = client.post("/v1/prices/batch", json={"prices": rows}, headers=key("batch-1"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["count"] == MAX_PRICE_BATCH == len(out["items"])
    assert [item["usd_per_gpu_hour"] for item in out["items"]] == [row["usd_per_gpu_hour"] for row in rows]  # in the order sent
    assert len({item["id"] for item in out["items"]}) == MAX_PRICE_BATCH
    assert db_connection.execute(text("SELECT version FROM catalog_version")).scalar_one() == version + 1
    assert client.get("/v1/prices", params={"region": "batch-test", "limit": 1}).json()["total"] == MAX_PRICE_BATCH
    replay = client.post("/v1/prices/batch", json={"prices": rows}, headers=key("batch-1"))
    assert replay.content == r.content and prices_in_store(db_connection, region="batch-test") == MAX_PRICE_BATCH


def test_a_batch_with_unknown_references_stores_nothing_and_names_the_rows(client: TestClient, db_connection) -> None:
    rows = [PRICE, PRICE | {"gpu_id": "no-such-gpu"}, PRICE, PRICE | {"provider_id": "no-such-cloud"}]
    rows = [row | {"region": "refused-batch"} for row in rows]
    r = client.post("/v1/prices/batch", json={"prices": rows}, headers=AUTH)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "prices", 1, "gpu_id"], ["body", "prices", 3, "provider_id"]]
    assert "rows 1, 3" in r.json()["detail"]
    assert prices_in_store(db_connection, region="refused-batch") == 0


@pytest.mark.parametrize("prices", [[], [PRICE] * (MAX_PRICE_BATCH + 1)])
def test_an_empty_or_oversized_batch_is_a_422(client: TestClient, prices: list) -> None:
    r = client.post("/v1/prices/batch", json={"prices": prices}, headers=AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "prices"]


def test_a_batch_needs_the_token_and_the_path_is_not_a_price_id(client: TestClient) -> None:
    assert client.post("/v1/prices/batch", json={"prices": [PRICE]}).status_code == 401
    r = client.get("/v1/prices/batch")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


# --- the write lane -------------------------------------------------------------------------------


def test_the_lane_serialises_writers_and_refuses_beyond_its_queue() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        lane = WriteLane(slots=1, queue=2, wait_seconds=5)
        order: list[str] = []

        async def write(name: str) -> str:
            try:
                async with lane.slot():
                    order.append(f"{name} in")
                    await asyncio.sleep(0.01)
                    order.append(f"{name} out")
                return "ok"
            except Busy:
                return "busy"

        results = await asyncio.gather(*(write(str(i)) for i in range(5)))
        return order, list(results)

    order, results = asyncio.run(scenario())
    assert results == ["ok", "ok", "ok", "busy", "busy"]  # one running, two waiting, first come first served
    assert order == ["0 in", "0 out", "1 in", "1 out", "2 in", "2 out"]  # never two at once


def test_a_write_waits_at_most_the_lanes_bound() -> None:
    async def scenario() -> tuple[type[BaseException] | None, int, int]:
        lane = WriteLane(slots=1, queue=10, wait_seconds=0.05)
        release = asyncio.Event()

        async def holder() -> None:
            async with lane.slot():
                await release.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0)
        try:
            async with lane.slot():
                raised = None
        except Busy as exc:
            raised = type(exc)
        waiting = lane.waiting
        release.set()
        await task
        return raised, waiting, lane.busy

    raised, waiting, busy = asyncio.run(scenario())
    assert raised is Busy and waiting == 0 and busy == 0  # the timed-out waiter left the queue; the slot is free


def test_a_lane_that_knows_its_pace_refuses_at_once_what_it_cannot_serve_in_time() -> None:
    async def scenario() -> str:
        lane = WriteLane(slots=1, queue=100, wait_seconds=0.5)
        lane.hold_seconds = 0.3  # two waiting writes would wait 0.6 s
        async with lane.slot():
            first = asyncio.create_task(lane._acquire())  # the one waiter the pace allows
            await asyncio.sleep(0)
            try:
                await lane._acquire()
                return "admitted"
            except Busy as exc:
                return exc.detail
            finally:
                first.cancel()

    assert "more than 0.5 s of work" in asyncio.run(scenario())


def test_a_full_lane_answers_503_with_retry_after_and_stores_nothing(client: TestClient, app, db_connection) -> None:
    lane = app.state.write_lane
    saved = lane.slots, lane.queue
    lane.slots, lane.queue = 0, 0  # every slot taken, no room to wait
    try:
        r = client.post("/v1/prices", json=PRICE | {"usd_per_gpu_hour": 4.321}, headers=key("while-full"))
    finally:
        lane.slots, lane.queue = saved
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.headers["content-type"] == "application/problem+json"
    assert prices_in_store(db_connection, usd_per_gpu_hour=4.321) == 0
    # reads do not use the lane
    lane.slots = 0
    try:
        assert client.get("/v1/gpus/h100-sxm").status_code == 200
    finally:
        lane.slots = saved[0]
    assert client.post("/v1/prices", json=PRICE | {"usd_per_gpu_hour": 4.321}, headers=key("while-full")).status_code == 201


# --- a store that says what state it is in --------------------------------------------------------


@pytest.fixture
def unmigrated(backend: str, make_database) -> Iterator[TestClient]:
    """An app on an empty database (nobody ran the migrations), AUTO_MIGRATE off."""
    url = make_database(backend)
    app = create_app(Settings(database_url=url, api_token=API_TOKEN, auto_migrate=False))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


def test_an_unmigrated_store_is_not_ready_and_answers_no_500(unmigrated: TestClient) -> None:
    r = unmigrated.get("/readyz")
    assert r.status_code == 503 and "python -m service migrate" in r.json()["detail"]
    assert "Retry-After" in r.headers
    for method, path, body in (
        ("GET", "/v1/gpus", None), ("GET", "/v1/gpus/h100-sxm", None), ("GET", "/v1/prices?latest=true", None),
        ("GET", "/v1/models", None), ("POST", "/v1/prices", PRICE), ("POST", "/v1/prices/batch", {"prices": [PRICE]}),
        ("POST", "/v1/memory/training", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm"}),
        ("POST", "/v1/cost/training", {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8}),
        ("POST", "/v1/plan", {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "n_gpus": 8}),
    ):  # fmt: skip
        r = unmigrated.request(method, path, json=body, headers=AUTH | {"Idempotency-Key": f"k-{path}"})
        assert r.status_code == 503, (method, path, r.status_code, r.text)
        assert "python -m service migrate" in r.json()["detail"], (method, path)
    # a calculator that needs no catalog still answers
    arch = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_ff": 256, "vocab_size": 1000}
    assert unmigrated.post("/v1/params", json={"model": arch}).status_code == 200


def test_a_store_behind_the_code_is_named_with_its_revision(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)
        assert schema_problem(engine) is None
        downgrade(engine, "0007")
        problem = schema_problem(engine)
        assert problem is not None and "0007" in problem and head_revision() in problem and "migrate" in problem
        app = create_app(Settings(database_url=engine.url.render_as_string(hide_password=False), auto_migrate=False))
        with TestClient(app) as c:
            r = c.get("/readyz")
            assert r.status_code == 503 and "behind" in r.json()["detail"]
        app.state.engine.dispose()
        upgrade(engine)
        with Session(engine) as session:
            seed_catalog(session)
            session.commit()
        assert schema_problem(engine) is None
    finally:
        engine.dispose()


def test_serve_refuses_a_store_behind_the_code_and_migrates_when_asked(tmp_path: Path, monkeypatch) -> None:
    import service.__main__ as cli

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    build_engine(url).dispose()
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("AUTO_MIGRATE", "false")
    started: list[dict] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: started.append(options))
    monkeypatch.setattr("sys.argv", ["python -m service", "serve"])
    cli.get_settings.cache_clear()
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert "python -m service migrate" in str(exited.value) and not started
    monkeypatch.setattr("sys.argv", ["python -m service", "serve", "--migrate"])
    cli.get_settings.cache_clear()
    cli.main()
    assert len(started) == 1
    engine = build_engine(url)
    try:
        assert schema_problem(engine) is None
    finally:
        engine.dispose()
    cli.get_settings.cache_clear()


# --- writes that change nothing -----------------------------------------------------------------


def catalog_version(connection) -> int:
    return connection.execute(text("SELECT version FROM catalog_version")).scalar_one()


@pytest.mark.parametrize(
    ("path", "same"),
    [
        ("/v1/gpus/h100-sxm", {"memory_bytes": 85_899_345_920, "peak_tflops": {"bf16": 989.5}}),
        ("/v1/providers/lambda", {"name": "Lambda"}),
        ("/v1/models/llama-3.1-8b", {"n_layers": 32, "d_model": 4096}),
    ],
)
def test_a_patch_that_changes_nothing_writes_nothing(client: TestClient, db_connection, path: str, same: dict) -> None:
    before = client.get(path)
    stored = before.json()
    assert {k: stored[k] if k != "peak_tflops" else {"bf16": stored[k]["bf16"]} for k in same} == same  # as seeded
    version = catalog_version(db_connection)
    for body in ({}, same):
        r = client.patch(path, json=body, headers=AUTH | {"If-Match": before.headers["ETag"]})
        assert r.status_code == 200, r.text
        assert r.headers["ETag"] == before.headers["ETag"] and r.json() == stored
    assert catalog_version(db_connection) == version
    assert client.get(path).headers["ETag"] == before.headers["ETag"]
    # another client's conditional write at the ETag it read still goes through
    changed = client.patch(path, json={"notes": "changed"}, headers=AUTH | {"If-Match": before.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] == f'"{stored["version"] + 1}"'
    assert catalog_version(db_connection) == version + 1


def test_a_keyed_patch_that_changes_nothing_is_replayed_unchanged(client: TestClient, db_connection) -> None:
    before = client.get("/v1/providers/lambda")
    first = client.patch("/v1/providers/lambda", json={}, headers=key("noop-1"))
    again = client.patch("/v1/providers/lambda", json={}, headers=key("noop-1"))
    assert first.status_code == again.status_code == 200 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true" and first.headers["ETag"] == before.headers["ETag"]
    assert db_connection.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one() >= 1


def test_a_put_of_the_stored_item_writes_nothing(client: TestClient, db_connection) -> None:
    before = client.get("/v1/providers/lambda")
    body = {k: v for k, v in before.json().items() if k in ProviderIn.model_fields}
    version = catalog_version(db_connection)
    r = client.put("/v1/providers/lambda", json=body, headers=AUTH | {"If-Match": before.headers["ETag"]})
    assert r.status_code == 200 and r.headers["ETag"] == before.headers["ETag"] and r.json() == before.json()
    assert catalog_version(db_connection) == version
