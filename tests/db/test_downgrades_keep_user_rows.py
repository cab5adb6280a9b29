"""Downgrades of the revisions that seed rows or add columns lose nothing the user stored: a seeded
row the user edited, a row stored under a seeded id, a GPU a price references stay; columns that hold
a user's values are not dropped (the downgrade refuses, naming the rows, and leaves the store as it
was); an upgrade again duplicates nothing and overwrites nothing. SQLite and Postgres."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, Table, insert, select, text, update

from migrations.seeded import DowngradeRefused
from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import current_revision, downgrade, head_revision, upgrade
from service.main import create_app
from service.settings import Settings
from tests.db.migration_files import migration_module, upgrade_a_store_seeded_at

SEED = {"gpus": loader.gpus(), "model_presets": loader.model_presets()}
# the revisions that seed rows into a store seeded before them, and their tables
SEEDING = {
    "0004": "model_presets", "0005": "model_presets", "0006": "gpus", "0007": "gpus", "0009": "model_presets",
    "0010": "model_presets", "0011": "model_presets", "0012": "model_presets", "0013": "model_presets", "0014": "gpus",
}  # fmt: skip
DROPS_COLUMNS = ("0004", "0009", "0010", "0011", "0012", "0013")
NOTE = "the operator's own note"


def seeded_ids(revision: str) -> list[str]:
    module = migration_module(revision)
    return [row["id"] for row in getattr(module, "NEW_GPUS", None) or module.NEW_PRESETS]


def seeded_at_or_after(revision: str) -> set[str]:
    table = SEEDING[revision]
    return {i for r, t in SEEDING.items() if t == table and r >= revision for i in seeded_ids(r)}


def previous(revision: str) -> str:
    return migration_module(revision).down_revision


def rows(engine: Engine, table: str) -> dict[str, dict[str, Any]]:
    """Every row of ``table`` by id, ``updated_at`` aside."""
    with engine.connect() as connection:
        stored = connection.execute(select(Table(table, MetaData(), autoload_with=engine))).mappings()
        return {r["id"]: {k: v for k, v in r.items() if k != "updated_at"} for r in stored}


def store(engine: Engine) -> dict[str, Any]:
    """The whole store: its revision and every catalog row."""
    dump: dict[str, Any] = {"revision": current_revision(engine)}
    for table in ("gpus", "providers", "model_presets", "prices", "catalog_version"):
        with engine.connect() as connection:
            dump[table] = [dict(r) for r in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1")).mappings()]
    return dump


def edit_notes(engine: Engine, table: str, row_id: str, notes: str = NOTE) -> None:
    t = Table(table, MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(update(t).where(t.c.id == row_id).values(notes=notes, version=t.c.version + 1))


def add_copy(engine: Engine, table: str, of: str, new_id: str, **changes: Any) -> None:
    """Store a row of the user's: a copy of ``of`` under ``new_id``, with ``changes``."""
    t = Table(table, MetaData(), autoload_with=engine)
    row = rows(engine, table)[of] | {"id": new_id, "name": f"my copy of {of}", "version": 1} | changes
    with engine.begin() as connection:
        connection.execute(insert(t), [row])


def add_price(engine: Engine, gpu_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO providers (id, name, notes, version) VALUES ('mine', 'Mine', '', 1)"))
        connection.execute(
            text(
                "INSERT INTO prices (gpu_id, provider_id, pricing, usd_per_gpu_hour, as_of, source, notes) "
                "VALUES (:gpu, 'mine', 'on_demand', 0.35, :as_of, 'my invoice', '')"
            ),
            {"gpu": gpu_id, "as_of": dt.date(2026, 12, 1)},
        )


def served(engine: Engine, *paths: str) -> list[dict[str, Any]]:
    """The answers of GET ``paths`` from the service over the store (200 each)."""
    app = create_app(Settings(database_url=engine.url.render_as_string(hide_password=False), auto_migrate=False))
    try:
        with TestClient(app) as client:
            answers = [client.get(path) for path in paths]
    finally:
        app.state.engine.dispose()
    assert [r.status_code for r in answers] == [200] * len(paths), [r.text for r in answers]
    return [r.json() for r in answers]


@pytest.fixture
def engine(backend: str, make_database):
    engine = build_engine(make_database(backend))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("revision", ["0005", "0006", "0007", "0014"])
def test_a_downgrade_keeps_a_seeded_row_the_user_edited(revision: str, engine: Engine) -> None:
    table, ids, before = SEEDING[revision], seeded_ids(revision), previous(revision)
    seeded = upgrade_a_store_seeded_at(engine, before, table, SEED[table], seeded_at_or_after(revision))
    edited, mine = ids[0], f"my-{ids[0]}"
    edit_notes(engine, table, edited)
    add_copy(engine, table, ids[-1], mine)

    downgrade(engine, before)
    kept = rows(engine, table)
    assert set(kept) == set(seeded.before) | {edited, mine}  # the untouched seeded rows went, no other row
    assert (kept[edited]["notes"], kept[edited]["version"]) == (NOTE, 2)
    assert kept[mine]["name"] == f"my copy of {ids[-1]}"

    upgrade(engine)
    again = rows(engine, table)
    assert set(again) == set(SEED[table]) | {mine} and len(again) == len(SEED[table]) + 1
    assert (again[edited]["notes"], again[edited]["version"]) == (NOTE, 2)  # not overwritten by the seeded row
    assert all(again[i]["version"] == 1 and i in seeded.rows for i in ids if i != edited)
    path = "/v1/gpus" if table == "gpus" else "/v1/models"
    listed, item = served(engine, f"{path}?limit=500", f"{path}/{edited}")
    assert listed["total"] == len(SEED[table]) + 1 and item["notes"] == NOTE


@pytest.mark.parametrize("revision", DROPS_COLUMNS)
def test_a_downgrade_refuses_to_drop_columns_that_hold_the_users_values(revision: str, engine: Engine) -> None:
    table, ids, before = "model_presets", seeded_ids(revision), previous(revision)
    seeded = upgrade_a_store_seeded_at(engine, before, table, SEED[table], seeded_at_or_after(revision))
    module = migration_module(revision)
    frozen = {r["id"]: r for r in module.NEW_PRESETS}
    using = [i for i in ids if any(frozen[i].get(c) is not None for c in module.COLUMNS)]  # the revision's columns
    edited, mine = using[0], f"my-{using[-1]}"
    edit_notes(engine, table, edited)
    add_copy(engine, table, using[-1], mine)
    as_it_was = store(engine)

    with pytest.raises(DowngradeRefused, match=f"revision {revision} refused") as refused:
        downgrade(engine, before)
    message = str(refused.value)
    assert f"'{edited}' (" in message and f"'{mine}' (" in message and "2 row(s)" in message
    assert all(f"'{i}'" not in message for i in ids if i != edited)  # the untouched seeded rows go with the downgrade
    assert store(engine) == as_it_was  # the later revisions' deletions were rolled back too
    assert current_revision(engine) == head_revision()

    # the operator puts the edited row back as seeded and deletes the copy: the downgrade goes through
    edit_notes(engine, table, edited, frozen[edited]["notes"])
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM model_presets WHERE id = :id"), {"id": mine})
    downgrade(engine, before)
    assert set(rows(engine, table)) == set(seeded.before)
    upgrade(engine)
    assert set(rows(engine, table)) == set(SEED[table])


def test_a_seeded_gpu_a_price_references_stays_with_its_price(engine: Engine) -> None:
    seeded = upgrade_a_store_seeded_at(engine, "0013", "gpus", SEED["gpus"], seeded_at_or_after("0014"))
    add_price(engine, "t4")
    downgrade(engine, "0013")  # deleting t4 would break the price's foreign key
    assert set(rows(engine, "gpus")) == set(seeded.before) | {"t4"}
    assert rows(engine, "gpus")["t4"] == {k: v for k, v in seeded.rows["t4"].items() if k != "updated_at"}
    upgrade(engine)
    assert set(rows(engine, "gpus")) == set(SEED["gpus"])
    (prices,) = served(engine, "/v1/prices?gpu_id=t4")
    assert [(p["provider_id"], p["usd_per_gpu_hour"]) for p in prices["items"]] == [("mine", 0.35)]


def test_a_row_the_user_stored_under_a_seeded_id_is_neither_overwritten_nor_deleted(engine: Engine) -> None:
    before = [k for k in SEED["gpus"] if k not in seeded_at_or_after("0014")]
    upgrade_a_store_seeded_at(engine, "0013", "gpus", {k: SEED["gpus"][k] for k in before}, set())
    downgrade(engine, "0013")
    add_copy(engine, "gpus", "v100-32gb-sxm", "t4", name="our T4 (a V100 really)", memory_bytes=2**34)
    mine = rows(engine, "gpus")["t4"]
    upgrade(engine)
    assert rows(engine, "gpus")["t4"] == mine  # left as the user stored it
    (served_t4,) = served(engine, "/v1/gpus/t4")
    assert (served_t4["name"], served_t4["memory_bytes"]) == ("our T4 (a V100 really)", 2**34)
    downgrade(engine, "0013")
    assert rows(engine, "gpus")["t4"] == mine  # not the seeded T4: kept
    assert set(rows(engine, "gpus")) == set(before) | {"t4"}


def test_0002_refuses_to_drop_cluster_fields_the_user_stored(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        gpus = Table("gpus", MetaData(), autoload_with=connection)
        common = {"vendor": "NVIDIA", "memory_bytes": 2**34, "memory_bandwidth_bytes_per_s": 10**12, "source": "mine"}
        connection.execute(insert(gpus), [
            common | {"id": "mine-4", "name": "four to a node", "peak_tflops": {}, "notes": "", "version": 1, "gpus_per_node": 4},
            common | {"id": "mine-bare", "name": "no cluster fields", "peak_tflops": {}, "notes": "", "version": 1, "gpus_per_node": None},
        ])  # fmt: skip
    as_it_was = store(engine)
    with pytest.raises(DowngradeRefused, match=r"revision 0002 refused.*1 row\(s\): 'mine-4' \(gpus_per_node\)"):
        downgrade(engine, "0001")
    assert store(engine) == as_it_was
    with engine.begin() as connection:
        connection.execute(text("UPDATE gpus SET gpus_per_node = NULL WHERE id = 'mine-4'"))
    downgrade(engine, "0001")
    assert set(rows(engine, "gpus")) == {"mine-4", "mine-bare"}


def test_a_downgrade_to_base_refuses_while_the_catalog_holds_rows(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO providers (id, name, notes, version) VALUES ('mine', 'Mine', '', 1)"))
    with pytest.raises(DowngradeRefused, match=r"revision 0001 refused: it drops tables that hold rows \(1 in providers\)"):
        downgrade(engine, "base")
    assert current_revision(engine) == head_revision()
    assert [r["id"] for r in store(engine)["providers"]] == ["mine"]
