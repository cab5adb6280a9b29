"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine); check what can be
checked by reading: they parse, wire the env names Settings reads, and agree on ports."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy.engine import make_url

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_wires_postgres_migration_and_api() -> None:
    services = compose()["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    migrate, api = services["migrate"], services["api"]
    assert migrate["command"] == ["python", "-m", "service", "seed"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["ports"] == ["8000:8000"]
    assert api["environment"]["PORT"] == "8000"
    assert api["environment"]["AUTO_MIGRATE"] == "false"  # the one-shot step migrates, not each API instance


def test_compose_env_names_are_the_settings_names() -> None:
    services = compose()["services"]
    db_env = services["db"]["environment"]
    for name in ("migrate", "api"):
        env = services[name]["environment"]
        assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV
        url = make_url(env["DATABASE_URL"])
        assert url.drivername == "postgresql+psycopg"  # psycopg 3
        assert (url.host, url.port, url.username, url.password, url.database) == (
            "db", 5432, db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"],
        )  # fmt: skip


def test_dockerfile_runs_the_service_on_the_exposed_port() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0].startswith("FROM python:3.11")
    assert "EXPOSE 8000" in lines
    assert 'CMD ["python", "-m", "service", "serve"]' in lines
    for needed in ("service", "migrations", "alembic.ini", "pyproject.toml"):
        assert any(line.startswith("COPY") and needed in line for line in lines), needed
    assert "HOST=0.0.0.0" in text and "PORT=8000" in text
