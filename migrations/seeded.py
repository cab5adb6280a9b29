"""The data steps of revisions that seed catalog rows or add columns, shared so that each one
keeps the store's rule: nothing the user stored is lost, nothing is half-written.

* An upgrade inserts the rows it seeds only into a store that already holds the table's catalog
  (an empty store is left to the seed), and only the ids not there yet: a row the user stored
  under a seeded id is kept as the user has it (``ON CONFLICT DO NOTHING`` covers a row inserted
  while the migration ran).
* A downgrade deletes a seeded row only while it is exactly as the revision seeded it (every
  column but ``version`` and ``updated_at``) and no price references it; a row the user edited
  or depends on stays, in the older schema too.
* A downgrade that drops columns first checks that no remaining row holds a value there that
  the upgrade would not put back; otherwise it refuses with :class:`DowngradeRefused`, naming
  the rows and columns, before anything is dropped.

Every step runs in the migration's transaction (one for the whole ``alembic`` command: DDL is
transactional on Postgres, and on SQLite too), so a refusal leaves the store as it was. Offline
(``--sql``) there are no rows to read and these steps emit nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

IGNORED = ("version", "updated_at")  # bumped by every write and by backfills: not the row's content
MAX_NAMED = 20  # rows a refusal names before counting the rest


class DowngradeRefused(RuntimeError):
    """A downgrade would lose rows or values the user stored; nothing was changed."""


def _offline() -> bool:
    return op.get_context().as_sql


def bump_catalog_version() -> None:
    """Tell running instances to reload their snapshot of the catalog."""
    op.execute(sa.text("UPDATE catalog_version SET version = version + 1"))


def insert_missing(table: sa.TableClause, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert the ``rows`` whose id the table does not hold yet, into a table that holds rows
    (an empty store is left to the seed); bump the catalog version when any is inserted. Returns
    how many were inserted."""
    if _offline():
        return 0
    connection = op.get_bind()
    present = set(connection.execute(sa.select(table.c.id)).scalars())
    if not present:
        return 0  # an empty store: the seed inserts the current catalog
    keys = sorted({key for row in rows for key in row})  # one column set for every row (null where absent)
    missing = [{key: row.get(key) for key in keys} | {"version": 1} for row in rows if row["id"] not in present]
    if not missing:
        return 0
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=["id"])
    connection.execute(stmt, missing)
    bump_catalog_version()
    return len(missing)


def _reflect(table_name: str) -> sa.Table:
    return sa.Table(table_name, sa.MetaData(), autoload_with=op.get_bind())


def _referenced(table_name: str, ids: Iterable[str]) -> set[str]:
    """The ids among ``ids`` that a price references (only GPUs and providers are referenced)."""
    column = {"gpus": "gpu_id", "providers": "provider_id"}.get(table_name)
    if column is None:
        return set()
    prices = sa.table("prices", sa.column(column, sa.String))
    stmt = sa.select(prices.c[column]).where(prices.c[column].in_(list(ids))).distinct()
    return set(op.get_bind().execute(stmt).scalars())


def delete_unchanged(table_name: str, seeded: Sequence[Mapping[str, Any]]) -> list[str]:
    """Delete the ``seeded`` rows still stored exactly as seeded (a column a seeded row leaves out
    is null) and referenced by no price; bump the catalog version when any is deleted. Returns
    the ids kept: stored, but edited, stored by the user under that id, or referenced."""
    if _offline():
        return []
    table = _reflect(table_name)
    compared = [c for c in table.c if c.name not in IGNORED]
    by_id = {row["id"]: row for row in seeded}
    connection = op.get_bind()
    stored = {row.id: row._mapping for row in connection.execute(sa.select(*compared).where(table.c.id.in_(list(by_id))))}
    referenced = _referenced(table_name, stored)
    unchanged = [
        row_id
        for row_id, row in stored.items()
        if row_id not in referenced and all(row[c.name] == by_id[row_id].get(c.name) for c in compared)
    ]
    if unchanged:
        connection.execute(table.delete().where(table.c.id.in_(unchanged)))
        bump_catalog_version()
    return sorted(set(stored) - set(unchanged))


def refuse_dropping(
    table_name: str,
    columns: Iterable[str],
    *,
    revision: str,
    restored: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Raise :class:`DowngradeRefused` when a row of ``table_name`` holds a value in one of the
    ``columns`` the downgrade of ``revision`` drops, unless it is the value the upgrade puts back
    (``restored``: by id, column → value; a backfill)."""
    if _offline():
        return
    columns = list(columns)
    table = _reflect(table_name)
    restored = restored or {}
    holding = sa.or_(*(table.c[name].is_not(None) for name in columns))
    rows = op.get_bind().execute(sa.select(table.c.id, *(table.c[n] for n in columns)).where(holding).order_by(table.c.id))
    blocking: dict[str, list[str]] = {}
    for row in rows:
        back = restored.get(row.id, {})
        lost = [n for n in columns if row._mapping[n] is not None and (n not in back or back[n] != row._mapping[n])]
        if lost:
            blocking[row.id] = lost
    if blocking:
        named = "; ".join(f"{row_id!r} ({', '.join(lost)})" for row_id, lost in list(blocking.items())[:MAX_NAMED])
        more = f"; and {len(blocking) - MAX_NAMED} more" if len(blocking) > MAX_NAMED else ""
        raise DowngradeRefused(
            f"downgrade of revision {revision} refused: it drops columns of {table_name} that hold data the older "
            f"schema cannot keep, in {len(blocking)} row(s): {named}{more}. Clear those fields or delete those rows "
            "(after a backup) and downgrade again; nothing was changed."
        )


def refuse_dropping_tables(table_names: Iterable[str], *, revision: str) -> None:
    """Raise :class:`DowngradeRefused` when any of the tables the downgrade of ``revision``
    drops holds a row."""
    if _offline():
        return
    connection = op.get_bind()
    counts = {
        name: connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one() for name in table_names
    }
    held = {name: n for name, n in counts.items() if n}
    if held:
        named = ", ".join(f"{n} in {name}" for name, n in held.items())
        raise DowngradeRefused(
            f"downgrade of revision {revision} refused: it drops tables that hold rows ({named}). Export and delete "
            "them (or drop the database) first; nothing was changed."
        )
