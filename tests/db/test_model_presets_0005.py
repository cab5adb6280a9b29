"""Migration 0005 on a catalog seeded before it: Qwen3's MoE presets arrive with their architecture
(exact counts against transformers), the catalog version moves, and a downgrade takes them away."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, insert, select, text

from service.catalog import loader
from service.core.params import count_params
from service.core.spec import make_architecture
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade
from tests.core.helpers import preset_architecture
from tests.db.test_model_presets_0004 import new_preset_ids

SEED = loader.model_presets()
# transformers 5.24.0 Qwen3MoeForCausalLM on the meta device (validation/measurements/hf_models.json)
COUNTS = {"qwen3-30b-a3b": (30_532_122_624, 3_353_032_704), "qwen3-235b-a22b": (235_093_634_560, 22_190_763_520)}


def test_upgrade_adds_the_qwen3_moe_presets_to_a_seeded_store(backend: str, make_database) -> None:
    added = new_preset_ids("0005")
    assert sorted(added) == sorted(COUNTS)
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine, "0004")
        presets = Table("model_presets", MetaData(), autoload_with=engine)
        columns = [c.name for c in presets.c if c.name != "updated_at"]
        before = [k for k in SEED if k not in added]
        with engine.begin() as connection:
            connection.execute(insert(presets), [{k: SEED[i].get(k) for k in columns} | {"version": 1} for i in before])
            connection.execute(text("UPDATE catalog_version SET version = 7"))
        upgrade(engine)
        with engine.connect() as connection:
            rows = {r.id: r._asdict() for r in connection.execute(select(presets))}
            version = connection.execute(text("SELECT version FROM catalog_version")).scalar_one()
        assert set(rows) == set(SEED) and version == 8  # what a fresh seed holds; running instances reload
        for preset_id, (total, active) in COUNTS.items():
            assert {k: rows[preset_id][k] for k in columns if k != "version"} == {k: SEED[preset_id].get(k) for k in columns if k != "version"}
            b = count_params(make_architecture(**preset_architecture(rows[preset_id])))
            assert (b.total, b.active) == (total, active) == (SEED[preset_id]["reference_params"], SEED[preset_id]["reference_active_params"])
        downgrade(engine, "0004")
        with engine.connect() as connection:
            assert set(connection.execute(select(presets.c.id)).scalars()) == set(before)
    finally:
        engine.dispose()

