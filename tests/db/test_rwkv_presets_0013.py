"""Migration 0013 on a catalog seeded before it: the RWKV-6/7 columns arrive (``rwkv_head_size`` and the LoRA
ranks ``rwkv_mix_lora_rank``, ``rwkv_decay_lora_rank``, ``rwkv_a_lora_rank``, ``rwkv_value_lora_rank``,
``rwkv_gate_lora_rank``) with the RWKV-7 World and RWKV-6 World presets (their exact counts against
flash-linear-attention), the catalog version moves, and a downgrade takes them away."""

from __future__ import annotations

import json
from pathlib import Path

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
MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]
# flash-linear-attention 0.6.0 on the meta device (validation/measurements/recurrent_models.json)
COUNTS = {
    "rwkv7-world-0.1b": 191_034_624,
    "rwkv7-world-0.4b": 450_767_872,
    "rwkv7-world-1.5b": 1_527_404_544,
    "rwkv7-world-2.9b": 2_947_735_040,
    "rwkv6-world-1.6b": 1_599_873_024,
    "rwkv6-world-3b": 3_099_863_040,
    "rwkv6-world-7b": 7_635_746_816,
}


def test_upgrade_adds_the_rwkv_columns_and_presets_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_preset_ids("0013")
    assert sorted(added) == sorted(COUNTS)
    assert migration_module("0013").down_revision == "0012"
    engine = build_engine(make_database(backend))
    try:
        store = upgrade_a_store_seeded_at(engine, "0012", "model_presets", SEED, set(added))
        assert set(store.rows) == set(SEED) and store.version == 8  # running instances reload
        row = store.rows["rwkv7-world-2.9b"]
        assert (row["layer_types"], row["rwkv_version"], row["rwkv_head_size"]) == (["rwkv"], 7, 64)
        assert (row["rwkv_decay_lora_rank"], row["rwkv_a_lora_rank"], row["rwkv_value_lora_rank"]) == (96, 96, 64)
        assert (row["rwkv_gate_lora_rank"], row["rwkv_mix_lora_rank"]) == (320, None)
        assert (store.rows["rwkv6-world-7b"]["rwkv_mix_lora_rank"], store.rows["rwkv6-world-7b"]["rwkv_decay_lora_rank"]) == (
            64, 128)  # fmt: skip
        for preset_id, total in COUNTS.items():
            assert store.stored_as_seeded(preset_id, SEED)
            b = count_params(make_architecture(**preset_architecture(store.rows[preset_id])))
            assert b.total == b.active == total == SEED[preset_id]["reference_params"] == MEASURED[preset_id]["parameters"]
        downgrade(engine, "0012")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
        columns = {c.name for c in Table("model_presets", MetaData(), autoload_with=engine).c}
        assert not columns & set(migration_module("0013").COLUMNS)
    finally:
        engine.dispose()
