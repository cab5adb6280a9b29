"""Configuration from the environment (pydantic-settings)."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """``HOST`` and ``PORT`` for ``python -m service serve``; ``LOG_LEVEL`` for uvicorn."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"


@cache
def get_settings() -> Settings:
    return Settings()
