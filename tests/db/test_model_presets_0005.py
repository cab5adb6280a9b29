"""Migration 0005 on a catalog seeded before it: Qwen3's MoE presets arrive with their architecture
(exact counts against transformers), the catalog version moves, and a downgrade takes them away."""

from __future__ import annotations

from sqlalchemy import select

from service.catalog import loader
from service.core.params import count_params
from service.core.spec import make_architecture
from service.db.engine import build_engine
from service.db.migrate import downgrade
from tests.core.helpers import preset_architecture
from tests.db.migration_files import upgrade_a_store_seeded_at
from tests.db.test_model_presets_0004 import new_preset_ids

SEED = loader.model_presets()
# transformers 5.24.0 Qwen3MoeForCausalLM on the meta device (validation/measurements/hf_models.json)
COUNTS = {"qwen3-30b-a3b": (30_532_122_624, 3_353_032_704), "qwen3-235b-a22b": (235_093_634_560, 22_190_763_520)}


def test_upgrade_adds_the_qwen3_moe_presets_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_preset_ids("0005")
    assert sorted(added) == sorted(COUNTS)
    engine = build_engine(make_database(backend))
    try:
        later = set(added) | set(new_preset_ids("0009")) | set(new_preset_ids("0010"))  # 0009's, 0010's came later still
        later |= set(new_preset_ids("0011")) | set(new_preset_ids("0012")) | set(new_preset_ids("0013"))  # and 0011's to 0013's
        store = upgrade_a_store_seeded_at(engine, "0004", "model_presets", SEED, later)
        # what a fresh seed holds; running instances reload (0005, 0009, 0010, 0011, 0012 and 0013 each move the version)
        assert set(store.rows) == set(SEED) and store.version == 13
        for preset_id, (total, active) in COUNTS.items():
            assert store.stored_as_seeded(preset_id, SEED)
            b = count_params(make_architecture(**preset_architecture(store.rows[preset_id])))
            assert (
                (b.total, b.active)
                == (total, active)
                == (SEED[preset_id]["reference_params"], SEED[preset_id]["reference_active_params"])
            )
        downgrade(engine, "0004")
        with engine.connect() as connection:
            assert set(connection.execute(select(store.table.c.id)).scalars()) == set(store.before)
    finally:
        engine.dispose()
