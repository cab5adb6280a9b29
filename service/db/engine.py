"""Engine and session factory for a database URL (SQLite by default, Postgres in production)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

WRITE_OPTION = "catalog_write"  # execution option: the write's longest wait for the write lock, in ms
WAIT_KEY = "write_wait_seconds"  # Session.info: the wait begin_write gave the session's writes
READ_BUSY_TIMEOUT_MS = 30_000  # SQLite readers (WAL: they wait only in rare recovery cases)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def build_engine(url: str) -> Engine:
    """An engine with the settings each backend needs.

    SQLite: foreign keys switched on per connection (off by default), a busy timeout so that
    concurrent writers wait instead of failing, and the data folder created. Postgres: psycopg 3
    (``postgresql+psycopg://``), pre-ping so a restarted server is noticed.
    """
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": READ_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            # let SQLAlchemy emit BEGIN itself (pysqlite's own transaction handling breaks
            # SAVEPOINTs: SQLAlchemy docs, "Serializable isolation / Savepoints / Transactional DDL")
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:  # noqa: ANN001
            # a writing transaction takes the write lock up front (BEGIN IMMEDIATE), so that
            # concurrent writers queue on the busy timeout instead of failing with SQLITE_BUSY
            # when a deferred reader tries to become a writer; it waits at most its own bound
            wait_ms = connection.get_execution_options().get(WRITE_OPTION)
            busy_ms = int(wait_ms) if wait_ms else READ_BUSY_TIMEOUT_MS
            if connection.info.get("busy_timeout_ms") != busy_ms:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")
                connection.info["busy_timeout_ms"] = busy_ms
            connection.exec_driver_sql("BEGIN IMMEDIATE" if wait_ms else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def begin_write(session: Session, wait_seconds: float = 30.0) -> None:
    """Start the session's transaction as a write that waits at most ``wait_seconds`` for a lock:
    SQLite takes the database's write lock now (BEGIN IMMEDIATE, ``busy_timeout``); Postgres
    bounds each lock wait of the transaction (``SET LOCAL lock_timeout``). A wait that runs out
    raises OperationalError (SQLITE_BUSY, SQLSTATE 55P03), which answers 503 with Retry-After."""
    wait_ms = max(1, round(1000 * wait_seconds))
    session.info[WAIT_KEY] = wait_seconds
    connection = session.connection(execution_options={WRITE_OPTION: wait_ms})
    if connection.dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))


def begin_consistent_read(session: Session) -> bool:
    """Start the session's transaction as one read of a single database state, however many
    statements it makes; True where this call set it up.

    Postgres: REPEATABLE READ READ ONLY. At the default READ COMMITTED each statement sees the
    commits made before *it*, so two SELECTs of one transaction can read two states (PostgreSQL
    docs, "Transaction Isolation", 13.2.1-13.2.2); at REPEATABLE READ every statement reads the
    state as of the transaction's first one. A read-only transaction at that level never fails
    with a serialization error. The level is set on the connection the session checks out and
    reset when it goes back to the pool (SQLAlchemy, "Setting Isolation For Individual
    Transactions").

    SQLite: nothing to do (False). A WAL reader's transaction reads one snapshot of the database
    from its first read to its end (SQLite docs, "Write-Ahead Logging", 2.2 Concurrency), and
    the engine's ``begin`` hook opens one transaction per session.

    A session that already began, or one bound to a connection whose transaction is already
    under way (the test fixtures' sessions, which turn their transactions into savepoints of an
    outer one), reads in that transaction at its level (False): a level can only be set before
    a transaction's first statement."""
    bind = session.get_bind()
    if session.in_transaction() or isinstance(bind, Connection) or bind.dialect.name != "postgresql":
        return False
    session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
    return True


def restart_write(session: Session) -> None:
    """After a rollback, start the session's next transaction as a write again, with the wait
    :func:`begin_write` gave it: a rollback ends the transaction and with it ``SET LOCAL
    lock_timeout`` (Postgres) and the write lock (SQLite), so a retried write would otherwise wait
    on a row lock without bound."""
    begin_write(session, session.info.get(WAIT_KEY, 30.0))
