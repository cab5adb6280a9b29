"""The migration files as modules, for tests that read the rows a revision froze, and a store seeded
at an older revision, for tests of the revisions that add rows to it."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sqlalchemy import Engine, MetaData, Table, insert, select, text

from service.db.migrate import upgrade
from service.settings import PROJECT_ROOT


def migration_module(revision: str) -> ModuleType:
    """``migrations/versions/*_<revision>.py`` loaded as a module (the directory is no package)."""
    path = next((PROJECT_ROOT / "migrations" / "versions").glob(f"*_{revision}.py"))
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True, kw_only=True)
class SeededUpgrade:
    """A store seeded at an older revision (catalog version 7), then migrated to the head."""

    table: Table
    columns: list[str]  # every column but updated_at
    before: list[str]  # the ids the store held before the upgrade
    rows: dict[str, dict[str, Any]]  # by id, after the upgrade
    version: int  # the catalog version after the upgrade

    def stored_as_seeded(self, row_id: str, seed: dict[str, dict[str, Any]]) -> bool:
        """Whether the stored row is the seed file's, column for column (its version aside)."""
        columns = [k for k in self.columns if k != "version"]
        return {k: self.rows[row_id][k] for k in columns} == {k: seed[row_id].get(k) for k in columns}


def upgrade_a_store_seeded_at(
    engine: Engine, revision: str, table: str, seed: dict[str, dict[str, Any]], later: set[str]
) -> SeededUpgrade:
    """Migrate to ``revision``, store the ``seed`` rows but the ``later`` ids as a catalog seeded then
    would hold them, and migrate to the head."""
    upgrade(engine, revision)
    stored = Table(table, MetaData(), autoload_with=engine)
    columns = [c.name for c in stored.c if c.name != "updated_at"]
    before = [k for k in seed if k not in later]
    with engine.begin() as connection:
        connection.execute(insert(stored), [{k: seed[i].get(k) for k in columns} | {"version": 1} for i in before])
        connection.execute(text("UPDATE catalog_version SET version = 7"))
    upgrade(engine)
    with engine.connect() as connection:  # the rows with the columns of the head (the later revisions' too)
        rows = {r.id: r._asdict() for r in connection.execute(select(Table(table, MetaData(), autoload_with=engine)))}
        version = connection.execute(text("SELECT version FROM catalog_version")).scalar_one()
    return SeededUpgrade(table=stored, columns=columns, before=before, rows=rows, version=version)
