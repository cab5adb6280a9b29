"""Migration 0011 on a catalog seeded before it: the Gated DeltaNet columns arrive (``linear_n_key_heads``,
``linear_n_value_heads``, ``linear_key_head_dim``, ``linear_value_head_dim``, ``linear_conv_kernel``) with
``attention_output_gate``, the Qwen3-Next 80B-A3B preset with them (its exact count against transformers),
the catalog version moves, and a downgrade takes them away."""

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
COUNTS = {"qwen3-next-80b-a3b": (79_674_391_296, 3_874_929_408)}


def test_upgrade_adds_the_gated_deltanet_columns_and_preset_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_preset_ids("0011")
    assert sorted(added) == sorted(COUNTS)
    engine = build_engine(make_database(backend))
    try:
        later = set(added) | set(new_preset_ids("0012")) | set(new_preset_ids("0013"))  # 0012's, 0013's came later still
        store = upgrade_a_store_seeded_at(engine, "0010", "model_presets", SEED, later)
        assert set(store.rows) == set(SEED) and store.version == 10  # running instances reload (0011, 0012 and 0013)
        row = store.rows["qwen3-next-80b-a3b"]
        assert row["layer_types"] == ["gated_deltanet"] * 3 + ["attention"]
        assert (row["linear_n_key_heads"], row["linear_n_value_heads"], row["attention_output_gate"]) == (16, 32, True)
        for preset_id, (total, active) in COUNTS.items():
            assert store.stored_as_seeded(preset_id, SEED)
            b = count_params(make_architecture(**preset_architecture(store.rows[preset_id])))
            assert (b.total, b.active) == (total, active) == (
                SEED[preset_id]["reference_params"], SEED[preset_id]["reference_active_params"])  # fmt: skip
        downgrade(engine, "0010")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
        columns = {c.name for c in Table("model_presets", MetaData(), autoload_with=engine).c}
        assert not columns & set(migration_module("0011").COLUMNS)
    finally:
        engine.dispose()
