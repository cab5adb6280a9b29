"""``python -m service serve|migrate|seed``.

``serve`` runs the API with uvicorn on HOST:PORT with WORKERS processes (``--workers N``
overrides), logs through :func:`service.logging_config.log_config` (LOG_FORMAT, LOG_LEVEL), and on
SIGTERM stops accepting connections and gives in-flight requests SHUTDOWN_TIMEOUT_SECONDS to
finish before the lifespan disposes the engine. With several workers and AUTO_MIGRATE on (the
SQLite default), the schema is migrated and seeded once, here, before the workers start.
``serve`` never serves a database whose schema is behind the code: with AUTO_MIGRATE off (the
default off SQLite) it exits with the fix (``python -m service migrate``) instead; ``serve
--migrate`` migrates (and seeds an empty catalog) first, as AUTO_MIGRATE=true does. An
unreachable database does not stop it (``/readyz`` answers 503 until the database is up).
``migrate`` upgrades the database named by DATABASE_URL to the newest schema; ``seed`` loads the
catalog seed data into an empty store.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
from collections.abc import Callable
from typing import Any

from service.settings import Settings, get_settings


def uvicorn_options(settings: Settings, workers: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run("service.main:app", ...)``."""
    from service.logging_config import log_config

    return {
        "host": settings.host,
        "port": settings.port,
        "workers": workers or settings.workers,
        "log_level": settings.log_level,
        "log_config": log_config(settings.log_format, settings.log_level),
        "access_log": False,  # the request middleware logs each request, with its id
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }


def migrate(settings: Settings, *, seed: bool, report: Callable[[str], object] = print) -> None:
    from service.db.engine import build_engine, session_factory
    from service.db.migrate import upgrade
    from service.db.seed import seed_catalog

    engine = build_engine(settings.database_url)
    upgrade(engine)
    report("database migrated to head")
    if seed:
        with session_factory(engine)() as session:
            seeded = seed_catalog(session)
            session.commit()
        report("catalog seeded" if seeded else "catalog not empty: nothing seeded")
    engine.dispose()


def schema_problem(settings: Settings) -> str | None:
    """Why the database cannot be served as it is (None also when it does not answer yet)."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.db import migrate as migrations
    from service.db.engine import build_engine

    engine = build_engine(settings.database_url)
    try:
        return migrations.schema_problem(engine)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.add_argument("command", choices=["serve", "migrate", "seed"])
    parser.add_argument("--workers", type=int, default=None, help="serve: worker processes (default: WORKERS, 1)")
    parser.add_argument("--migrate", action="store_true", help="serve: migrate and seed first (as AUTO_MIGRATE=true)")
    args = parser.parse_args()
    if args.migrate:
        os.environ["AUTO_MIGRATE"] = "true"
        get_settings.cache_clear()
    settings = get_settings()
    if args.command == "serve":
        import uvicorn

        options = uvicorn_options(settings, args.workers)
        if not settings.migrate_on_start and (problem := schema_problem(settings)) is not None:
            raise SystemExit(f"not serving: {problem} (or serve --migrate, or AUTO_MIGRATE=true)")
        if settings.migrate_on_start and (args.migrate or options["workers"] > 1):
            logging.config.dictConfig(options["log_config"])
            migrate(settings, seed=True, report=logging.getLogger("service").info)  # once, not in every worker at once
            os.environ["AUTO_MIGRATE"] = "false"  # the workers read their settings afresh
        uvicorn.run("service.main:app", **options)
        return
    migrate(settings, seed=args.command == "seed")


if __name__ == "__main__":
    main()
