"""Migration 0004 on a catalog seeded before it: the architecture columns appear, the new presets
arrive, Mistral 7B gets its sliding window, and a downgrade takes them away again."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, insert, inspect, select

from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade
from tests.db.migration_files import migration_module

SEED = loader.model_presets()
NEW = ("deepseek-v3", "gemma-2-9b", "qwen3-8b", "llama-3.3-70b", "phi-4")


def test_upgrade_adds_the_new_presets_to_a_seeded_store(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine, "0003")
        presets = Table("model_presets", MetaData(), autoload_with=engine)
        assert "kv_lora_rank" not in presets.c
        old_columns = [c.name for c in presets.c if c.name != "updated_at"]
        # later revisions' presets came later
        new_ids = set(new_preset_ids("0004")) | set(new_preset_ids("0005")) | set(new_preset_ids("0009"))
        new_ids |= set(new_preset_ids("0010")) | set(new_preset_ids("0011")) | set(new_preset_ids("0012"))
        new_ids |= set(new_preset_ids("0013"))
        before_0004 = [k for k in SEED if k not in new_ids]
        with engine.begin() as connection:
            connection.execute(insert(presets), [{k: SEED[i].get(k) for k in old_columns} | {"version": 1} for i in before_0004])
        upgrade(engine)
        presets = Table("model_presets", MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            rows = {r.id: r for r in connection.execute(select(presets))}
        assert set(rows) == set(SEED)  # the store now holds what a fresh seed holds
        for preset_id in NEW:
            for column in ("kv_lora_rank", "sliding_window", "n_shared_experts", "first_k_dense", "qk_norm", "d_ff"):
                assert getattr(rows[preset_id], column) == SEED[preset_id].get(column), (preset_id, column)
        assert (rows["mistral-7b"].sliding_window, rows["mistral-7b"].version) == (4096, 2)
        downgrade(engine, "0003")
        assert "kv_lora_rank" not in {c["name"] for c in inspect(engine).get_columns("model_presets")}
        with engine.connect() as connection:
            ids = set(connection.execute(select(Table("model_presets", MetaData(), autoload_with=engine).c.id)).scalars())
        assert ids == set(before_0004)
    finally:
        engine.dispose()


def new_preset_ids(revision: str) -> list[str]:
    """The ids of the presets migration ``revision`` inserts into a seeded store."""
    ids = [row["id"] for row in migration_module(revision).NEW_PRESETS]
    assert set(ids) <= set(SEED)
    return ids
