"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine); check what can be
checked by reading: they parse, wire the env names Settings reads, and agree on ports; the image
installs the pinned runtime lock. The locks (requirements/, `make lock`) pin every dependency
pyproject.toml names, within its bounds."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
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


def test_dockerfile_installs_the_runtime_lock_then_the_service_without_resolving() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    copy_lock = next(i for i, line in enumerate(lines) if line.startswith("COPY") and "requirements/lock.txt" in line)
    install_lock = next(i for i, line in enumerate(lines) if "pip install" in line and "-r requirements/lock.txt" in line)
    install_service = next(i for i, line in enumerate(lines) if "pip install" in line and "--no-deps ." in line)
    assert copy_lock < install_lock < install_service
    installs = [line for line in lines if "pip install" in line]
    assert len(installs) == 2, installs  # nothing else installed, pinned or not


# --- the locks (`make lock`) ----------------------------------------------------------------------


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(name: str) -> dict[str, Version]:
    """``package == version`` lines of a lock file, by canonical name."""
    found = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier  # one pin, nothing looser
            assert specifier.operator == "==", line
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def assert_pins_satisfy(lock: dict[str, Version], requirements: list[str]) -> None:
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not in the lock: run `make lock`"
        assert lock[name] in requirement.specifier, f"{name} {lock[name]} is outside {requirement.specifier}: run `make lock`"


def test_the_runtime_lock_pins_every_runtime_dependency_within_its_bounds() -> None:
    lock = pins("lock.txt")
    assert_pins_satisfy(lock, pyproject()["project"]["dependencies"])
    assert "httpx" not in lock  # the service never imports it: tests and benchmarks do (the dev extra)


def test_the_dev_lock_is_the_runtime_lock_plus_the_dev_extra() -> None:
    runtime, dev = pins("lock.txt"), pins("dev-lock.txt")
    assert {name: dev.get(name) for name in runtime} == runtime  # the same versions as the image's
    assert_pins_satisfy(dev, pyproject()["project"]["optional-dependencies"]["dev"])
    assert not {"torch", "transformers", "peft"} & set(dev)  # the validation extra stays out of `make test`
