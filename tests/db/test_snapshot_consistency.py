"""A catalog snapshot is read from one database state, tagged with that state's catalog_version.

A write is committed on a second connection in the middle of the snapshot's reads: right before
its SELECT of the GPUs, or of the prices (a ``before_cursor_execute`` hook on the engine). The
write changes a GPU row, adds a price for it and bumps ``catalog_version``, as every catalog write
does. The snapshot must hold the catalog from before the write, whole, tagged with the version
from before it; the next check must then find the version moved and serve the catalog after it.

On Postgres at READ COMMITTED each SELECT sees the commits made before it, so the snapshot mixed
the GPU's old row with its new price (or held the new rows under the old version);
:func:`service.db.engine.begin_consistent_read` reads it at REPEATABLE READ. SQLite, in WAL
mode, reads one state per transaction already: the same test runs on it. Without the rollback
fixture: the write must really commit.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, event, insert, update
from sqlalchemy.orm import Session

from service.db.engine import begin_consistent_read, session_factory
from service.db.models import Gpu, Price
from service.db.repositories import bump_catalog_version, catalog_version
from service.services.catalog_reader import CatalogSnapshot, Snapshots
from tests.conftest import seeded_engine_at

GPU = "a100-80gb-sxm"


@pytest.fixture(scope="module")
def engine(backend: str, make_database) -> Iterator[Engine]:
    """A throwaway database of the run's backend, migrated and seeded; tests commit to it."""
    engine = seeded_engine_at(make_database(backend))
    yield engine
    engine.dispose()


def write_gpu_and_price(engine: Engine) -> None:
    """One catalog write, committed on a connection of its own: the GPU's memory grows by one
    byte (its row version too), a price for it is added, and catalog_version is bumped."""
    with Session(engine) as session:
        session.execute(update(Gpu).where(Gpu.id == GPU).values(memory_bytes=Gpu.memory_bytes + 1, version=Gpu.version + 1))
        session.execute(
            insert(Price).values(
                gpu_id=GPU, provider_id="lambda", pricing="spot", usd_per_gpu_hour=1.25, as_of=dt.date(2026, 1, 1),
                source="test", notes="",
            )
        )  # fmt: skip
        bump_catalog_version(session)
        session.commit()


def state(snapshot: CatalogSnapshot) -> tuple[int | None, int, int]:
    """The snapshot's version, the GPU's memory in bytes and how many prices it has."""
    _, gpu = snapshot.item("gpus", GPU)
    prices = sum(row.gpu_id == GPU for row in snapshot.tables["prices"].rows)
    return snapshot.version, gpu.memory_bytes, prices


def committed_state(engine: Engine) -> tuple[int | None, int, int]:
    with Session(engine) as session:
        return state(CatalogSnapshot.load(session, catalog_version(session)))


def write_before(engine: Engine, table: str) -> Callable[[], None]:
    """Commit :func:`write_gpu_and_price` once, on another connection, right before the next
    statement that reads ``table``; returns the function that removes the hook."""
    pattern = re.compile(rf"^\s*SELECT\b.*\bFROM {table}\b", re.IGNORECASE | re.DOTALL)
    fired = False

    def hook(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        nonlocal fired
        if not fired and pattern.match(statement):
            fired = True
            write_gpu_and_price(engine)

    event.listen(engine, "before_cursor_execute", hook)
    return lambda: event.remove(engine, "before_cursor_execute", hook)


@pytest.mark.parametrize("table", ["gpus", "prices"])
def test_a_write_between_the_reads_is_not_in_the_snapshot(engine: Engine, table: str) -> None:
    version, memory_bytes, prices = before = committed_state(engine)
    after = (version + 1, memory_bytes + 1, prices + 1)
    snapshots = Snapshots()
    open_session = session_factory(engine)
    remove = write_before(engine, table)
    try:
        with open_session() as session:
            first = snapshots.get(session, max_age=0)
    finally:
        remove()
    assert committed_state(engine) == after  # the write did commit, in the middle of the reads
    assert state(first) == before  # all of it from before the write, under the version before it
    with open_session() as session:
        second = snapshots.get(session, max_age=0)
    assert state(second) == after  # the next check saw the version move and read it all again


def test_postgres_snapshot_reads_at_repeatable_read(engine: Engine, backend: str) -> None:
    with session_factory(engine)() as session:
        began = begin_consistent_read(session)
        level = session.connection().exec_driver_sql("SHOW transaction_isolation").scalar() if began else None
        read_only = session.connection().exec_driver_sql("SHOW transaction_read_only").scalar() if began else None
    assert (began, level, read_only) == ((True, "repeatable read", "on") if backend == "postgres" else (False, None, None))
    if backend == "postgres":  # the pool hands the connection on at the default level again
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "off"


def test_in_a_joined_transaction_the_version_is_never_newer_than_the_rows(engine: Engine, backend: str) -> None:
    """A session joined to a transaction already under way (as the test fixtures' are) reads in
    it, at its level: on Postgres READ COMMITTED, where a write between the version and the rows
    is in the rows. The snapshot is then tagged with the older version, so the next check reads
    the catalog again; it is never kept under a version its rows are not yet at."""
    if backend != "postgres":
        pytest.skip("SQLite's outer transaction reads one state: nothing moves under it")
    version, memory_bytes, prices = committed_state(engine)
    snapshots = Snapshots()
    with engine.connect() as conn:
        outer = conn.begin()
        remove = write_before(engine, "gpus")
        try:
            with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
                first = snapshots.get(session, max_age=0)
        finally:
            remove()
        with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
            second = snapshots.get(session, max_age=0)
        outer.rollback()
    assert state(first) == (version, memory_bytes + 1, prices + 1)  # the rows after, the version before
    assert state(second) == (version + 1, memory_bytes + 1, prices + 1)
    assert second is not first
