"""Configuration from the environment (pydantic-settings).

``DATABASE_URL`` (default: a SQLite file under the project's ``data/`` folder), ``API_TOKEN``
(writes to the catalog need it; unset means writes are refused), ``AUTO_MIGRATE`` (migrate and
seed at start-up; default on for SQLite, off elsewhere so several instances never race a
migration), ``CATALOG_CACHE_SECONDS`` (how long calculators may reuse a preset or GPU read from
the store; 0 disables), ``HOST``/``PORT``/``LOG_LEVEL`` for ``python -m service serve``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.db.engine import is_sqlite

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'catalog.sqlite3'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    api_token: SecretStr | None = None
    auto_migrate: bool | None = Field(None, description="Default: true for SQLite, false otherwise.")
    catalog_cache_seconds: float = Field(5.0, ge=0, le=3600, description="TTL of cached presets and GPUs.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"

    @property
    def migrate_on_start(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return is_sqlite(self.database_url)


@cache
def get_settings() -> Settings:
    return Settings()
