"""Migration 0012 on a catalog seeded before it: the columns of the short-convolution and shared-block fields
arrive (``short_conv_kernel``, ``short_conv_bias``, ``shared_attention_blocks``, ``shared_adapter_rank``,
``shared_attention_adapters``) with the LFM2, Zamba and Zamba2 presets (their exact counts against
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
    "lfm2-1.2b": (1_170_340_608, 1_170_340_608),
    "lfm2-2.6b": (2_569_272_320, 2_569_272_320),
    "lfm2-8b-a1b": (8_339_929_856, 1_557_740_288),
    "zamba-7b": (7_232_490_496, 7_232_490_496),
    "zamba2-1.2b": (1_215_064_704, 1_215_064_704),
    "zamba2-7b": (7_428_314_960, 7_428_314_960),
}


def test_upgrade_adds_the_short_conv_and_shared_block_columns_and_presets(backend: str, make_database) -> None:
    added = new_preset_ids("0012")
    assert sorted(added) == sorted(COUNTS)
    engine = build_engine(make_database(backend))
    try:
        later = set(added) | set(new_preset_ids("0013"))  # revision 0013's presets came later still
        store = upgrade_a_store_seeded_at(engine, "0011", "model_presets", SEED, later)
        assert set(store.rows) == set(SEED) and store.version == 9  # running instances reload (0012 and 0013)
        assert store.rows["lfm2-1.2b"]["short_conv_kernel"] == 3 and store.rows["lfm2-1.2b"]["layer_types"][2] == "attention"
        zamba2 = store.rows["zamba2-7b"]
        assert (zamba2["shared_attention_blocks"], zamba2["shared_adapter_rank"], zamba2["shared_attention_adapters"]) == (
            2, 128, True)  # fmt: skip
        assert zamba2["layer_types"].count("shared_attention_mamba2") == 13
        for preset_id, (total, active) in COUNTS.items():
            assert store.stored_as_seeded(preset_id, SEED)
            b = count_params(make_architecture(**preset_architecture(store.rows[preset_id])))
            assert (b.total, b.active) == (total, active) == (
                SEED[preset_id]["reference_params"], SEED[preset_id]["reference_active_params"])  # fmt: skip
        downgrade(engine, "0011")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
        columns = {c.name for c in Table("model_presets", MetaData(), autoload_with=engine).c}
        assert not columns & set(migration_module("0012").COLUMNS)
    finally:
        engine.dispose()
