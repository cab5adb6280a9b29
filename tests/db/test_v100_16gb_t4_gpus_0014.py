"""Migration 0014 on a catalog seeded before it: the 16 GB Tesla V100 SXM2 and the T4 arrive as the seed file
has them, the catalog version moves, and a downgrade takes them away; an empty store migrated to the head
gets them from the seed instead."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, select, text
from sqlalchemy.orm import Session

from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade
from service.db.seed import seed_catalog
from tests.db.migration_files import migration_module, upgrade_a_store_seeded_at
from tests.db.test_workstation_gpus_0006 import new_gpu_ids

SEED = loader.gpus()
ADDED = {"v100-16gb-sxm", "t4"}


def test_upgrade_adds_the_v100_16gb_and_the_t4_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_gpu_ids("0014")
    assert set(added) == ADDED
    assert migration_module("0014").down_revision == "0013"
    engine = build_engine(make_database(backend))
    try:
        store = upgrade_a_store_seeded_at(engine, "0013", "gpus", SEED, set(added))
        assert set(store.rows) == set(SEED) and store.version == 8  # what a fresh seed holds; running instances reload
        assert all(store.stored_as_seeded(gpu_id, SEED) for gpu_id in added)
        v100, t4 = store.rows["v100-16gb-sxm"], store.rows["t4"]
        # V100 datasheet: 16 GB HBM2 at 900 GB/s, 125 TFLOPS tensor, no bf16; the 32 GB part's compute and links
        assert (v100["memory_bytes"], v100["memory_bandwidth_bytes_per_s"]) == (16 * 2**30, 900e9)
        assert v100["peak_tflops"]["bf16"] is None and v100["peak_tflops"]["fp16"] == 125.0
        same = ("peak_tflops", "interconnect_bytes_per_s", "intra_node_bandwidth_bytes_per_s", "intra_node_link", "tdp_watts")
        assert {k: v100[k] for k in same} == {k: SEED["v100-32gb-sxm"][k] for k in same}
        # T4 datasheet: 16 GB GDDR6 at 320 GB/s, FP16 65 TFLOPS, INT8 130 TOPS, 70 W, PCIe Gen3 x16 only
        assert (t4["memory_bytes"], t4["memory_bandwidth_bytes_per_s"], t4["tdp_watts"]) == (16 * 2**30, 320e9, 70)
        assert (t4["peak_tflops"]["fp16"], t4["peak_tflops"]["int8"], t4["peak_tflops"]["bf16"]) == (65.0, 130.0, None)
        assert (t4["intra_node_link"], t4["intra_node_bandwidth_bytes_per_s"]) == ("PCIe Gen3 x16", 16e9)
        downgrade(engine, "0013")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
            assert connection.execute(text("SELECT version FROM catalog_version")).scalar_one() == 9
    finally:
        engine.dispose()


def test_an_empty_store_gets_them_from_the_seed(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)  # 0014 finds no GPUs and inserts none
        gpus = Table("gpus", MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            assert connection.execute(select(gpus.c.id)).first() is None
        with Session(engine) as session:
            assert seed_catalog(session)
            session.commit()
        with engine.connect() as connection:
            rows = {r.id: r._asdict() for r in connection.execute(select(gpus))}
        assert set(rows) == set(SEED) and set(rows) >= ADDED
        columns = [c.name for c in gpus.c if c.name not in ("version", "updated_at")]
        for gpu_id in ADDED:
            assert {k: rows[gpu_id][k] for k in columns} == {k: SEED[gpu_id].get(k) for k in columns}
            assert rows[gpu_id]["version"] == 1
    finally:
        engine.dispose()
