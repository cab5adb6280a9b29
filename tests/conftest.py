"""Test fixtures: every API test runs against SQLite and against the real Postgres server.

Each backend gets a throwaway database built by running the migrations and seeding the catalog
once per run; each test then runs inside an outer transaction that is rolled back, with the
service's commits turned into savepoints (``join_transaction_mode="create_savepoint"``).

Postgres: ``TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
names a server and an existing database to connect to; a database ``ltm_test_<random>`` is
created there and dropped at the end. Outside CI an unreachable server skips the Postgres half
with a message; in CI (``CI=true``) it fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service.db.engine import build_engine
from service.db.migrate import upgrade
from service.db.seed import seed_catalog
from service.main import create_app
from service.settings import Settings

API_TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)


def postgres_unavailable(reason: str) -> None:
    message = f"Postgres not reachable at {postgres_admin_url()} ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI requires it (.ci/run starts the local server)")
    pytest.skip(f"{message}; start it or set TEST_POSTGRES_URL to run the Postgres half")


@pytest.fixture(scope="session")
def make_database(tmp_path_factory) -> Iterator:
    """A factory of empty throwaway databases: ``make_database("sqlite"|"postgres") -> url``."""
    created: list[tuple[Engine, str]] = []

    def make(backend: str) -> str:
        name = f"ltm_test_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / (name + '.sqlite3')}"
        admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001 - any connection failure means "not reachable"
            admin.dispose()
            postgres_unavailable(type(exc).__name__)
        created.append((admin, name))
        return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)

    yield make
    for admin, name in created:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


def seeded_engine_at(url: str) -> Engine:
    """An engine on the empty database ``url``, migrated to head and seeded."""
    engine = build_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        seed_catalog(session)
        session.commit()
    return engine


@pytest.fixture(scope="session")
def seeded_engine(backend: str, make_database) -> Iterator[Engine]:
    """The backend's database, migrated to head and seeded once for the run."""
    engine = seeded_engine_at(make_database(backend))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(seeded_engine: Engine):
    url = seeded_engine.url.render_as_string(hide_password=False)
    application = create_app(Settings(database_url=url, api_token=API_TOKEN, auto_migrate=False))
    yield application
    application.state.engine.dispose()


@pytest.fixture(scope="session")
def _client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def db_connection(app, seeded_engine: Engine):
    """One connection in an outer transaction, rolled back after the test; the app's sessions
    join it and turn their commits into savepoints."""
    app.state.catalog_cache.clear()
    connection = seeded_engine.connect()
    outer = connection.begin()
    original = app.state.sessionmaker
    app.state.sessionmaker = lambda: Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False, autoflush=False
    )
    yield connection
    app.state.sessionmaker = original
    app.state.catalog_cache.clear()
    outer.rollback()
    connection.close()


@pytest.fixture
def client(_client: TestClient, db_connection) -> TestClient:
    return _client
