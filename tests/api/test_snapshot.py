"""The in-process catalog snapshot (service/services/catalog_reader.py): it answers exactly what
the store's queries answer; this process's writes are read at once; another instance's writes
are seen once the snapshot's check against ``catalog_version`` is due; every write bumps that
version in its own transaction. On SQLite and Postgres."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.core.architecture import Ffn, Norm
from service.db.engine import build_engine
from service.db.migrate import upgrade
from service.db.models import Gpu
from service.db.repositories import PriceRepository, VersionedRepository, catalog_version
from service.db.seed import seed_catalog
from service.schemas import catalog as s
from service.services import catalog_reader
from service.services.catalog import GPUS, MODELS, PROVIDERS
from service.services.catalog_reader import SNAPSHOTS, CacheMiss, CatalogSnapshot, Snapshots
from tests.conftest import AUTH
from tests.polling import eventually

TODAY = dt.date.today()


def price(**overrides: object) -> dict:
    body = {
        "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "on_demand", "usd_per_gpu_hour": 2.49,
        "region": "us-east-1", "as_of": TODAY.isoformat(), "source": "test fixture",
    }  # fmt: skip
    return body | overrides


# history: newer and older prices, two on the same day (the higher id wins), other regions and kinds
HISTORY = [
    price(usd_per_gpu_hour=3.10, as_of="2024-01-01"),
    price(usd_per_gpu_hour=2.20, region="eu-west-1"),
    price(usd_per_gpu_hour=2.10, region=None),
    price(pricing="spot", usd_per_gpu_hour=1.00, as_of="2025-06-01", region="eu-west-1"),
    price(pricing="spot", usd_per_gpu_hour=1.20, as_of="2025-05-01"),
    price(gpu_id="a100-80gb-sxm", provider_id="aws", pricing="reserved", usd_per_gpu_hour=1.50, as_of="2025-01-01"),
]
PRICE_FILTERS = [
    {}, {"gpu_id": "h100-sxm"}, {"provider_id": "lambda"}, {"pricing": "spot"}, {"region": "us-east-1"},
    {"region": "eu-west-1", "pricing": "on_demand"}, {"gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "on_demand"},
    {"gpu_id": "nope"},
]  # fmt: skip
PAGES = [(500, 0), (7, 3), (1, 0), (5, 10_000)]


def version(app) -> int:
    with app.state.sessionmaker() as session:
        return catalog_version(session)


def test_pages_and_items_match_the_store(client, app) -> None:
    for body in HISTORY:
        assert client.post("/v1/prices", json=body, headers=AUTH).status_code == 201
    with app.state.sessionmaker() as session:
        snapshot = SNAPSHOTS.get(session)
        for latest in (False, True):
            for params in PRICE_FILTERS:
                filters = s.PriceFilters(**params, latest=latest).filters()
                for limit, offset in PAGES:
                    rows, total = PriceRepository(session).list(filters, latest=latest, limit=limit, offset=offset)
                    items, snapshot_total = snapshot.page("prices", filters, latest=latest, limit=limit, offset=offset)
                    assert snapshot_total == total, (params, latest)
                    assert [i.model_dump() for i in items] == [
                        s.PriceOut.model_validate(r, from_attributes=True).model_dump() for r in rows
                    ]
        cases = [
            (GPUS, [{"vendor": None}, {"vendor": "NVIDIA"}, {"vendor": "AMD"}, {"vendor": "nvidia"}]),
            (PROVIDERS, [{"name": None}, {"name": "Lambda"}]),
            (MODELS, [{"family": None}, {"family": "llama-2"}, {"ffn": Ffn.SWIGLU, "norm": Norm.RMSNORM}, {"family": "none"}]),
        ]
        for res, filter_cases in cases:
            table = res.model.__tablename__
            for filters in filter_cases:
                for limit, offset in PAGES:
                    rows, total = VersionedRepository(session, res.model).list(filters, limit=limit, offset=offset)
                    items, snapshot_total = snapshot.page(table, filters, limit=limit, offset=offset)
                    assert snapshot_total == total
                    assert [i.model_dump() for i in items] == [
                        res.out.model_validate(r, from_attributes=True).model_dump() for r in rows
                    ]
            for item_id in VersionedRepository(session, res.model).ids():
                row = VersionedRepository(session, res.model).get(item_id)
                item, stored = snapshot.item(table, item_id)
                assert (item.model_dump(), stored.version) == (
                    res.out.model_validate(row, from_attributes=True).model_dump(),
                    row.version,
                )
            assert snapshot.item(table, "nope") is None


def test_this_process_reads_its_writes_at_once(client) -> None:
    client.get("/v1/gpus/h100-sxm")  # a snapshot is held
    r = client.patch("/v1/gpus/h100-sxm", json={"default_mfu": 0.31}, headers=AUTH)
    assert r.status_code == 200
    got = client.get("/v1/gpus/h100-sxm")
    assert got.json()["default_mfu"] == 0.31 and got.headers["ETag"] == r.headers["ETag"]
    cost = client.post("/v1/cost/training", json={"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8})
    assert cost.json()["assumptions"]["mfu"] == 0.31  # the calculators' reader too
    created = client.post("/v1/prices", json=price(usd_per_gpu_hour=0.01), headers=AUTH).json()
    latest = client.get("/v1/prices", params={"gpu_id": "h100-sxm", "provider_id": "lambda", "latest": "true"}).json()
    assert created["id"] in {p["id"] for p in latest["items"]}
    cheapest = client.post("/v1/cost/training", json={"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8})
    assert cheapest.json()["price"]["usd_per_gpu_hour"] == 0.01
    assert client.delete(f"/v1/prices/{created['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/prices/{created['id']}").status_code == 404


def test_every_write_bumps_the_version_once_and_failed_writes_do_not(client, app) -> None:
    gpu = {k: v for k, v in client.get("/v1/gpus/h100-sxm").json().items() if k not in ("id", "version")} | {"id": "bump-gpu"}
    writes = [
        lambda: client.post("/v1/gpus", json=gpu, headers=AUTH),
        lambda: client.put("/v1/gpus/bump-gpu", json=gpu | {"notes": "put"}, headers=AUTH),
        lambda: client.patch("/v1/gpus/bump-gpu", json={"notes": "patch"}, headers=AUTH),
        lambda: client.post("/v1/prices", json=price(gpu_id="bump-gpu"), headers=AUTH),
    ]
    for write in writes:
        before = version(app)
        assert write().status_code in (200, 201)
        assert version(app) == before + 1
    before = version(app)
    assert client.patch("/v1/gpus/bump-gpu", json={"notes": "x"}, headers=AUTH | {"If-Match": '"1"'}).status_code == 412
    assert client.post("/v1/gpus", json=gpu, headers=AUTH).status_code == 409
    assert client.delete("/v1/gpus/bump-gpu", headers=AUTH).status_code == 409  # a price refers to it
    assert version(app) == before
    price_id = client.get("/v1/prices", params={"gpu_id": "bump-gpu"}).json()["items"][0]["id"]
    assert client.delete(f"/v1/prices/{price_id}", headers=AUTH).status_code == 204
    assert client.delete("/v1/gpus/bump-gpu", headers=AUTH).status_code == 204
    assert version(app) == before + 2


def test_a_rolled_back_write_leaves_the_version(app, db_connection) -> None:
    before = version(app)
    with app.state.sessionmaker() as session:
        VersionedRepository(session, Gpu).update_if_version("h100-sxm", {"notes": "never"}, 1)
        assert catalog_version(session) == before + 1
        session.rollback()
    assert version(app) == before


def _write_elsewhere(app, notes: str) -> None:
    """A write as another worker commits it: through the store, with no local invalidation."""
    with app.state.sessionmaker() as session:
        repo = VersionedRepository(session, Gpu)
        assert repo.update_if_version("h100-sxm", {"notes": notes}, repo.get("h100-sxm").version)
        session.commit()


def test_another_instance_sees_a_write_when_its_check_is_due(app, db_connection) -> None:
    other = Snapshots()  # another process's snapshots of the same database
    with app.state.sessionmaker() as session:
        held = other.get(session, max_age=60)
    _write_elsewhere(app, "written elsewhere")
    with app.state.sessionmaker() as session:
        assert other.get(session, max_age=60) is held  # not yet due: no query at all
        fresh = other.get(session, max_age=0)  # due: the version moved, so the catalog is read again
        assert fresh is not held and fresh.version == held.version + 1
        assert fresh.item("gpus", "h100-sxm")[0].notes == "written elsewhere"
        assert other.get(session, max_age=0) is fresh  # due, but the version did not move: kept


def test_the_api_serves_another_instance_write_within_the_bound(client, app, monkeypatch) -> None:
    monkeypatch.setattr(catalog_reader, "MAX_STALE_SECONDS", 60.0)
    notes = client.get("/v1/gpus/h100-sxm").json()["notes"]
    _write_elsewhere(app, "written elsewhere")
    assert client.get("/v1/gpus/h100-sxm").json()["notes"] == notes  # within the bound: the held snapshot
    monkeypatch.setattr(catalog_reader, "MAX_STALE_SECONDS", 0.0)
    assert client.get("/v1/gpus/h100-sxm").json()["notes"] == "written elsewhere"


def test_a_load_racing_a_local_write_is_not_kept(app, db_connection, monkeypatch) -> None:
    snapshots = Snapshots()
    load = CatalogSnapshot.load

    def racing_load(session: Session, version: int | None) -> CatalogSnapshot:
        snapshots.clear()  # a write commits here while the old catalog is being read
        return load(session, version)

    monkeypatch.setattr(CatalogSnapshot, "load", staticmethod(racing_load))
    with app.state.sessionmaker() as session:
        assert snapshots.get(session, max_age=60).tables["gpus"].rows
        assert snapshots.peek(catalog_reader.database_of(session), 60) is None


def test_calculators_read_the_snapshot_without_a_session_when_fresh(app, db_connection) -> None:
    reader = app.state.catalog
    with pytest.raises(CacheMiss):  # cleared by the fixture: a cache-only reader cannot load
        reader.cached_only().gpu("h100-sxm")
    assert reader.gpu("h100-sxm").id == "h100-sxm"
    assert reader.cached_only().gpu("h100-sxm") is reader.gpu("h100-sxm")
    assert reader.cached_only().preset_fields("llama-2-7b") == reader.preset_fields("llama-2-7b")
    assert reader.gpu_ids() == sorted(reader.gpu_ids())


def test_reads_answer_503_when_the_check_finds_the_database_down(client, monkeypatch) -> None:
    assert client.get("/v1/gpus").status_code == 200

    def down(_session: Session) -> int:
        raise OperationalError("SELECT version FROM catalog_version", {}, ConnectionRefusedError("down"))

    monkeypatch.setattr(catalog_reader, "catalog_version", down)
    assert client.get("/v1/gpus").status_code == 200  # the held snapshot, checked less than 1 s ago
    monkeypatch.setattr(catalog_reader, "MAX_STALE_SECONDS", 0.0)
    for path in ("/v1/gpus", "/v1/prices?latest=true", "/v1/gpus/h100-sxm"):
        r = client.get(path)
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")


def test_an_empty_snapshot_is_read_again_once_seeded(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)
        snapshots = Snapshots()
        with Session(engine) as session:
            assert snapshots.get(session).empty and catalog_version(session) == 1
        with Session(engine) as session:
            seed_catalog(session)  # the seed bumps no version
            session.commit()
        with Session(engine) as session:
            assert not snapshots.get(session, max_age=0).empty
    finally:
        engine.dispose()


def test_derived_values_are_kept_with_their_snapshot_and_equal_a_fresh_build(client, app, monkeypatch) -> None:
    """Pages' JSON and current-price lists are computed once per snapshot; a write makes a new
    snapshot, so nothing derived from the old one is served after it."""
    first = client.get("/v1/prices", params={"latest": "true", "limit": 7})
    assert client.get("/v1/prices", params={"latest": "true", "limit": 7}).content == first.content
    with app.state.sessionmaker() as session:
        snapshot = SNAPSHOTS.get(session)
        query = s.PriceFilters(latest=True, limit=7)
        items, total = snapshot.page("prices", query.filters(), latest=True, limit=7, offset=0)
        assert first.json() == s.Page[s.PriceOut](items=items, total=total, limit=7, offset=0).model_dump(mode="json")
        assert snapshot.current_prices({"gpu_id": "h100-sxm"}) is snapshot.current_prices({"gpu_id": "h100-sxm"})
    assert client.post("/v1/prices", json=price(usd_per_gpu_hour=0.01), headers=AUTH).status_code == 201
    after = client.get("/v1/prices", params={"latest": "true", "gpu_id": "h100-sxm", "provider_id": "lambda"}).json()["items"]
    assert 0.01 in [item["usd_per_gpu_hour"] for item in after]
    built = []
    monkeypatch.setattr(catalog_reader, "MAX_DERIVED", 0)  # nothing kept: every read builds again
    with app.state.sessionmaker() as session:
        snapshot = SNAPSHOTS.get(session)
        assert snapshot.derived(("k",), lambda: built.append(1) or "v") == "v"
        assert snapshot.derived(("k",), lambda: built.append(1) or "v") == "v"
    assert built == [1, 1]


def test_heavy_work_leaves_the_event_loop(client, app) -> None:
    """On the event loop a plan search not yet cached raises HeavyWork (the route then answers
    from the thread pool); once cached the same answer is served on the loop, identical."""
    from service.core.memory import Precision
    from service.schemas.model import ModelSpec
    from service.services import plan as plan_service
    from service.services.catalog_reader import HeavyWork, on_event_loop
    from service.services.models import resolve_model

    plan_service.PLANS.clear()
    reader = app.state.catalog
    arch = resolve_model(ModelSpec.model_validate({"preset": "llama-2-7b"}), reader)
    cluster = plan_service.cluster_for(reader.gpu("h100-sxm"), Precision.MIXED_BF16)
    args = dict(n_gpus=8, seq_len=4096, global_batch_size=256)
    with pytest.raises(HeavyWork):
        on_event_loop(lambda: plan_service.best_plan(arch, cluster, **args))
    searched = plan_service.best_plan(arch, cluster, **args)  # off the loop: searched, then kept
    assert on_event_loop(lambda: plan_service.best_plan(arch, cluster, **args)) is searched
    body = {"model": {"preset": "llama-2-7b"}, "tokens": 1e12, "gpu": "a100-80gb-sxm", "n_gpus": 64}
    cold = client.post("/v1/cost/training", json=body)
    warm = client.post("/v1/cost/training", json=body)
    assert cold.status_code == warm.status_code == 200 and cold.json() == warm.json()
    assert cold.json()["assumptions"]["time_from"].startswith("the planner's best plan")


def test_priced_answers_are_kept_only_while_their_snapshot_is_current(client, app) -> None:
    """A cost answer is served again for the same request while the catalog it read is unchanged;
    a price written here is in the next answer; a cut plan search is never kept."""
    from service.services import answers as answer_cache

    app.state.answers.clear()
    body = {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8}
    first = client.post("/v1/cost/training", json=body)
    assert first.status_code == 200 and len(app.state.answers) == 1
    assert client.post("/v1/cost/training", json=body).content == first.content
    cheapest = first.json()["price"]["usd_per_gpu_hour"]
    assert client.post("/v1/prices", json=price(usd_per_gpu_hour=cheapest / 2), headers=AUTH).status_code == 201
    second = client.post("/v1/cost/training", json=body).json()
    assert second["price"]["usd_per_gpu_hour"] == cheapest / 2
    assert second["cost_usd"] == pytest.approx(first.json()["cost_usd"] / 2)

    trace = answer_cache.Trace()
    cache = answer_cache.AnswerCache(size=2)
    cache.put("explicit", trace, "{}")  # read no snapshot: valid whatever the catalog
    assert cache.get("explicit", 12345) == "{}"
    cut = answer_cache.Trace(snapshots={7}, keepable=False)
    cache.put("cut", cut, "{}")
    assert cache.get("cut", 7) is None
    cache.put("a", answer_cache.Trace(snapshots={7}), "a")
    cache.put("b", answer_cache.Trace(snapshots={7}), "b")
    assert cache.get("explicit", 7) is None  # least recently used, dropped at size 2
    assert cache.get("a", 8) is None and cache.get("a", 7) is None  # another snapshot: dropped
    assert cache.get("b", 7) == "b"


def test_a_trace_sees_snapshots_read_in_the_thread_pool(app) -> None:
    import asyncio

    from starlette.concurrency import run_in_threadpool

    from service.services.answers import traced

    reader = app.state.catalog

    async def in_thread():
        return await run_in_threadpool(traced, lambda: reader.gpu("h100-sxm"))

    view, trace = asyncio.run(in_thread())
    assert view.id == "h100-sxm" and trace.snapshots == {reader.snapshot().serial}


def test_kept_answers_are_keyed_by_the_fields_sent(client, app) -> None:
    """A field given explicitly may change the answer (a recompute setting is then held fixed in
    the plan search), so a body that states a default is not served the answer of one that omits it."""
    app.state.answers.clear()
    body = {"model": {"preset": "llama-2-7b"}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8}
    assert client.post("/v1/cost/training", json=body).status_code == 200
    assert client.post("/v1/cost/training", json=body | {"recompute": "none"}).status_code == 200
    assert len(app.state.answers) == 2


def test_threads_that_find_the_snapshot_due_together_check_it_once(app, monkeypatch) -> None:
    """Requests that find the snapshot due at the same moment wait for one check of
    catalog_version instead of each reading it (and the catalog) again."""
    import threading
    import time as clock

    reader = app.state.catalog
    reader.snapshot()  # held, then due at once
    monkeypatch.setattr(catalog_reader, "MAX_STALE_SECONDS", 0.5)
    calls = []
    real = catalog_reader.catalog_version

    def slow_version(session: Session) -> int | None:
        calls.append(1)
        clock.sleep(0.05)
        return real(session)

    monkeypatch.setattr(catalog_reader, "catalog_version", slow_version)
    # due once MAX_STALE_SECONDS have passed since the check (the reader's own bound if lower)
    assert eventually(lambda: catalog_reader.SNAPSHOTS.peek(reader.cache.database, reader.cache.max_age) is None)
    threads = [threading.Thread(target=reader.snapshot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
