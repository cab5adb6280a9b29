"""Configuration from the environment (pydantic-settings).

``DATABASE_URL`` (default: a SQLite file under the project's ``data/`` folder), ``API_TOKEN``
(writes to the catalog need it; unset means writes are refused), ``AUTO_MIGRATE`` (migrate and
seed at start-up; default on for SQLite, off elsewhere so several instances never race a
migration), ``CATALOG_CACHE_SECONDS`` (how long calculators may reuse a preset or GPU read from
the store; 0 disables), ``CORS_ORIGINS`` (comma-separated origins allowed to call from a browser;
empty: no CORS headers), ``MAX_BODY_BYTES`` (larger request bodies get 413), and for
``python -m service serve``: ``HOST``/``PORT``, ``WORKERS``, ``LOG_LEVEL``, ``LOG_FORMAT``
(``json`` or ``text``) and ``SHUTDOWN_TIMEOUT_SECONDS`` (how long in-flight requests may finish
after SIGTERM). Catalog writes go through a bounded lane (:mod:`service.api.write_lane`):
``WRITE_SLOTS`` writes at once per worker (default 1 on SQLite, whose database has one writer; 2
elsewhere), at most ``WRITE_QUEUE`` more waiting, each for at most ``WRITE_WAIT_SECONDS``;
``IDEMPOTENCY_KEY_HOURS`` is how long a write's ``Idempotency-Key`` and its answer are kept.
``.env.example`` lists them all with their defaults.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    log_format: Literal["json", "text"] = "json"
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins for CORS; empty: no CORS headers."
    )
    max_body_bytes: int = Field(1024 * 1024, ge=0, description="Larger request bodies are refused with 413.")
    workers: int = Field(1, ge=1, description="uvicorn worker processes for `python -m service serve`.")
    shutdown_timeout_seconds: int = Field(20, ge=0, description="Grace for in-flight requests after SIGTERM.")
    write_slots: int | None = Field(
        None, ge=1, le=64, description="Concurrent catalog writes per worker; default 1 on SQLite, 2 else."
    )
    write_queue: int = Field(64, ge=0, le=10_000, description="Catalog writes that may wait for a slot; beyond it 503 at once.")
    write_wait_seconds: float = Field(
        1.0, gt=0, le=30, description="Longest wait for a write slot, and for the database's write lock, before a 503."
    )
    idempotency_key_hours: float = Field(24.0, gt=0, le=24 * 30, description="How long a write's Idempotency-Key is kept.")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @property
    def write_lane_slots(self) -> int:
        if self.write_slots is not None:
            return self.write_slots
        return 1 if is_sqlite(self.database_url) else 2

    @property
    def migrate_on_start(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return is_sqlite(self.database_url)


@cache
def get_settings() -> Settings:
    return Settings()
