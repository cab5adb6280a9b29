"""Migration 0010 on a catalog seeded before it: the Mamba-2 hybrid columns arrive (``ssm_inner_size``,
``ssm_gated_norm``), the Nemotron-H 8B, Falcon-H1 7B and Granite 4.0-H Tiny presets with them (exact
counts against transformers), the catalog version moves, and a downgrade takes them away."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, select

from service.catalog import loader
from service.core.params import count_params
from service.core.spec import make_architecture
from service.db.engine import build_engine
from service.db.migrate import downgrade
from tests.core.helpers import preset_architecture
from tests.db.migration_files import migration_module, upgrade_a_store_seeded_at
from tests.db.test_model_presets_0004 import new_preset_ids

SEED = loader.model_presets()
# transformers 5.25.0 on the meta device (validation/measurements/recurrent_models.json): total and active
COUNTS = {
    "nemotron-h-8b": (8_100_852_736, 8_100_852_736),
    "falcon-h1-7b": (7_585_513_568, 7_585_513_568),
    "granite-4.0-h-tiny": (6_939_037_248, 1_465_470_528),
}


def test_upgrade_adds_the_hybrid_columns_and_presets_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_preset_ids("0010")
    assert sorted(added) == sorted(COUNTS)
    engine = build_engine(make_database(backend))
    try:
        later = set(added) | set(new_preset_ids("0011")) | set(new_preset_ids("0012"))  # 0011's, 0012's came later still
        later |= set(new_preset_ids("0013"))  # and 0013's
        store = upgrade_a_store_seeded_at(engine, "0009", "model_presets", SEED, later)
        assert set(store.rows) == set(SEED)
        assert store.rows["falcon-h1-7b"]["layer_types"] == ["attention_mamba2"]
        assert (store.rows["falcon-h1-7b"]["ssm_inner_size"], store.rows["falcon-h1-7b"]["ssm_gated_norm"]) == (3072, False)
        for preset_id, (total, active) in COUNTS.items():
            assert store.stored_as_seeded(preset_id, SEED)
            b = count_params(make_architecture(**preset_architecture(store.rows[preset_id])))
            assert (b.total, b.active) == (total, active) == (
                SEED[preset_id]["reference_params"], SEED[preset_id]["reference_active_params"])  # fmt: skip
        downgrade(engine, "0009")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
        columns = {c.name for c in Table("model_presets", MetaData(), autoload_with=engine).c}
        assert not columns & set(migration_module("0010").COLUMNS)
    finally:
        engine.dispose()
