"""A retried write waits for locks as its first try did (:func:`service.db.engine.restart_write`): a
rollback ends the transaction, and with it Postgres' ``SET LOCAL lock_timeout`` and SQLite's write lock."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from service.db.engine import begin_write, restart_write


def test_a_restarted_write_keeps_its_bounded_wait(seeded_engine) -> None:
    with Session(seeded_engine) as session:
        begin_write(session, 2.0)
        session.rollback()
        restart_write(session)
        if seeded_engine.dialect.name == "postgresql":
            assert session.execute(text("SHOW lock_timeout")).scalar() == "2s"
        else:  # SQLite: the restarted transaction holds the write lock again (BEGIN IMMEDIATE)
            other = create_engine(seeded_engine.url, connect_args={"timeout": 0})
            try:
                with other.connect() as conn:
                    try:
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                        locked = False
                    except Exception as exc:  # noqa: BLE001 - sqlite3.OperationalError, wrapped
                        locked = "locked" in str(exc)
                assert locked
            finally:
                other.dispose()
        session.rollback()
