"""``python -m service serve|migrate|seed``.

``serve`` runs the API with uvicorn on HOST:PORT; ``migrate`` upgrades the database named by
DATABASE_URL to the newest schema; ``seed`` loads the catalog seed data into an empty store.
"""

from __future__ import annotations

import argparse

from service.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.add_argument("command", choices=["serve", "migrate", "seed"])
    args = parser.parse_args()
    settings = get_settings()
    if args.command == "serve":
        import uvicorn

        uvicorn.run("service.main:app", host=settings.host, port=settings.port, log_level=settings.log_level)
        return
    from service.db.engine import build_engine, session_factory
    from service.db.migrate import upgrade
    from service.db.seed import seed_catalog

    engine = build_engine(settings.database_url)
    upgrade(engine)
    print("database migrated to head")
    if args.command == "seed":
        with session_factory(engine)() as session:
            seeded = seed_catalog(session)
            session.commit()
        print("catalog seeded" if seeded else "catalog not empty: nothing seeded")
    engine.dispose()


if __name__ == "__main__":
    main()
