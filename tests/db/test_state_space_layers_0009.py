"""Migration 0009 on a catalog seeded before it: the state-space columns arrive (``layer_types`` a JSON
list), the Mamba, Mamba-2, Falcon Mamba and Jamba presets with them (exact counts against
transformers), the catalog version moves, and a downgrade takes them away."""

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
    "mamba-2.8b": (2_768_345_600, 2_768_345_600),
    "mamba2-2.7b": (2_702_599_680, 2_702_599_680),
    "falcon-mamba-7b": (7_272_665_088, 7_272_665_088),
    "jamba-1.5-mini": (51_570_323_328, 12_110_311_296),
}


def test_upgrade_adds_the_state_space_columns_and_presets_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_preset_ids("0009")
    assert sorted(added) == sorted(COUNTS)
    engine = build_engine(make_database(backend))
    try:
        later = set(added) | set(new_preset_ids("0010")) | set(new_preset_ids("0011"))  # 0010's, 0011's came later still
        later |= set(new_preset_ids("0012")) | set(new_preset_ids("0013"))  # and 0012's, 0013's
        store = upgrade_a_store_seeded_at(engine, "0008", "model_presets", SEED, later)
        assert set(store.rows) == set(SEED) and store.version == 12  # what a fresh seed holds; running instances reload
        assert store.rows["jamba-1.5-mini"]["layer_types"] == ["mamba"] * 4 + ["attention"] + ["mamba"] * 3
        for preset_id, (total, active) in COUNTS.items():
            assert store.stored_as_seeded(preset_id, SEED)
            b = count_params(make_architecture(**preset_architecture(store.rows[preset_id])))
            assert (b.total, b.active) == (total, active) == (
                SEED[preset_id]["reference_params"], SEED[preset_id]["reference_active_params"])  # fmt: skip
        downgrade(engine, "0008")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
        columns = {c.name for c in Table("model_presets", MetaData(), autoload_with=engine).c}
        assert not columns & set(migration_module("0009").COLUMNS)
    finally:
        engine.dispose()
