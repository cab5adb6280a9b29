"""Migration 0006 on a catalog seeded before it: the workstation and consumer GPUs (RTX 4090, RTX 3090,
RTX A6000, RTX 6000 Ada) arrive as the seed file has them, the catalog version moves, a downgrade
takes them away, and an empty store is left to the seed."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, Table, select

from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade
from tests.db.migration_files import migration_module, upgrade_a_store_seeded_at

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
        later = set(added) | set(new_gpu_ids("0007")) | set(new_gpu_ids("0014"))  # 0007's and 0014's GPUs came later still
        store = upgrade_a_store_seeded_at(engine, "0005", "gpus", SEED, later)
        assert set(store.rows) == set(SEED) and store.version == 10  # a fresh seed's GPUs; one bump each for 0006, 0007 and 0014
        assert all(store.stored_as_seeded(gpu_id, SEED) for gpu_id in added)
        assert store.rows["rtx-4090"]["memory_bytes"] == 24 * 2**30 and store.rows["rtx-a6000"]["memory_bytes"] == 48 * 2**30
        downgrade(engine, "0005")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", ["gpus", "model_presets"])
def test_an_empty_store_is_left_to_the_seed(table: str, backend: str, make_database) -> None:
    """Revisions 0004-0007 and 0009-0014 insert rows into a store seeded before them, never into an empty one."""
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(select(Table(table, MetaData(), autoload_with=engine).c.id)).first() is None
    finally:
        engine.dispose()
