"""Migrations: upgrade → downgrade → upgrade on SQLite and Postgres, and no drift between the
migrations and the ORM models (an empty autogenerate diff)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.db.base import Base
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade

TABLES = {"gpus", "providers", "prices", "model_presets"}


def test_upgrade_downgrade_upgrade_and_no_drift(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        downgrade(engine, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": backend == "sqlite"})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()


def test_constraints_follow_the_naming_convention(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine)
        inspector = inspect(engine)
        fks = {fk["name"] for fk in inspector.get_foreign_keys("prices")}
        assert fks == {"fk_prices_gpu_id_gpus", "fk_prices_provider_id_providers"}
        assert inspector.get_pk_constraint("gpus")["name"] in ("pk_gpus", None)  # SQLite does not name PKs
    finally:
        engine.dispose()
