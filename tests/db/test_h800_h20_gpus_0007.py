"""Migration 0007 on a catalog seeded before it: the export Hopper GPUs (H800 SXM, H20) arrive as the
seed file has them, the catalog version moves, and a downgrade takes them away."""

from __future__ import annotations

from sqlalchemy import select

from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import downgrade
from tests.db.migration_files import upgrade_a_store_seeded_at
from tests.db.test_workstation_gpus_0006 import new_gpu_ids

SEED = loader.gpus()
ADDED = {"h800-sxm", "h20"}


def test_upgrade_adds_the_export_hopper_gpus_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_gpu_ids("0007")
    assert set(added) == ADDED
    engine = build_engine(make_database(backend))
    try:
        later = set(added) | set(new_gpu_ids("0014"))  # 0014's GPUs came later still
        store = upgrade_a_store_seeded_at(engine, "0006", "gpus", SEED, later)
        assert set(store.rows) == set(SEED) and store.version == 9  # a fresh seed's GPUs; one bump each for 0007 and 0014
        assert all(store.stored_as_seeded(gpu_id, SEED) for gpu_id in added)
        # DeepSeek ISCA 2025 §4.1: H800 NVLink 400 GB/s both ways, one 400 Gb/s NIC per GPU; H20 keeps 900 GB/s
        h800, h20 = store.rows["h800-sxm"], store.rows["h20"]
        assert (h800["intra_node_bandwidth_bytes_per_s"], h800["inter_node_bandwidth_bytes_per_s"]) == (200e9, 400e9 / 8)
        assert (h20["memory_bytes"], h20["intra_node_bandwidth_bytes_per_s"]) == (96 * 2**30, 450e9)
        downgrade(engine, "0006")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
    finally:
        engine.dispose()
