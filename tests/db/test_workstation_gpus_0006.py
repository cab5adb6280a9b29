"""Migration 0006 on a catalog seeded before it: the workstation and consumer GPUs (RTX 4090, RTX 3090,
RTX A6000, RTX 6000 Ada) arrive as the seed file has them, the catalog version moves, a downgrade
takes them away, and an empty store is left to the seed."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, Table, insert, select, text

from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade
from tests.db.migration_files import migration_module

SEED = loader.gpus()
ADDED = {"rtx-4090", "rtx-3090", "rtx-a6000", "rtx-6000-ada"}


def new_gpu_ids(revision: str) -> list[str]:
    """The ids of the GPUs migration ``revision`` inserts into a seeded store."""
    ids = [row["id"] for row in migration_module(revision).NEW_GPUS]
    assert set(ids) <= set(SEED)
    return ids


def test_upgrade_adds_the_workstation_gpus_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_gpu_ids("0006")
    assert set(added) == ADDED
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine, "0005")
        gpus = Table("gpus", MetaData(), autoload_with=engine)
        columns = [c.name for c in gpus.c if c.name != "updated_at"]
        before = [k for k in SEED if k not in added]
        with engine.begin() as connection:
            connection.execute(insert(gpus), [{k: SEED[i].get(k) for k in columns} | {"version": 1} for i in before])
            connection.execute(text("UPDATE catalog_version SET version = 7"))
        upgrade(engine)
        with engine.connect() as connection:
            rows = {r.id: r._asdict() for r in connection.execute(select(gpus))}
            version = connection.execute(text("SELECT version FROM catalog_version")).scalar_one()
        assert set(rows) == set(SEED) and version == 8  # what a fresh seed holds; running instances reload
        for gpu_id in added:  # exactly the seed file's row
            assert {k: rows[gpu_id][k] for k in columns if k != "version"} == {k: SEED[gpu_id].get(k) for k in columns if k != "version"}
        assert rows["rtx-4090"]["memory_bytes"] == 24 * 2**30 and rows["rtx-a6000"]["memory_bytes"] == 48 * 2**30
        downgrade(engine, "0005")
        with engine.connect() as connection:
            assert set(connection.execute(select(gpus.c.id)).scalars()) == set(before)
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", ["gpus", "model_presets"])
def test_an_empty_store_is_left_to_the_seed(table: str, backend: str, make_database) -> None:
    """Revisions 0004-0006 insert rows into a store seeded before them, never into an empty one."""
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(select(Table(table, MetaData(), autoload_with=engine).c.id)).first() is None
    finally:
        engine.dispose()
