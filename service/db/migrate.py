"""Run Alembic migrations from code (start-up, CLI, tests), and say whether a database is at the
code's head (readiness, start-up)."""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from service.errors import NOT_MIGRATED
from service.settings import PROJECT_ROOT

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


@cache
def head_revision() -> str:
    """The newest migration this code ships (Alembic's head)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the project always ships migrations
        raise RuntimeError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (its ``alembic_version`` row), None when never migrated.
    Read with plain SQL: Alembic's own reader logs at INFO on every call, and readiness probes
    call this every few seconds."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def schema_problem(engine: Engine) -> str | None:
    """Why the database's schema cannot serve this code (behind, empty, or migrated by another
    version), naming the fix; None when it is at the code's head. Raises SQLAlchemyError when
    the database does not answer."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    if current is None:
        return f"the database has no schema (never migrated; this service needs revision {head}): {NOT_MIGRATED}"
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current in known:
        return f"the database schema is at revision {current}, behind this service's {head}: {NOT_MIGRATED}"
    return f"the database schema is at revision {current}, which this service does not know (it needs {head}); it was migrated by another version"
