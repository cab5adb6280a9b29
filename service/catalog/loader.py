"""Read the seed data files shipped in this package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


def _read(name: str) -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"))


@cache
def model_presets() -> dict[str, dict[str, Any]]:
    """Model presets by id, from ``models.json``."""
    return {row["id"]: row for row in _read("models.json")["models"]}


@cache
def gpus() -> dict[str, dict[str, Any]]:
    """Accelerators by id, from ``gpus.json``."""
    return {row["id"]: row for row in _read("gpus.json")["gpus"]}


@cache
def providers() -> dict[str, dict[str, Any]]:
    """Cloud providers by id, from ``providers.json``."""
    return {row["id"]: row for row in _read("providers.json")["providers"]}


@cache
def prices() -> tuple[dict[str, Any], ...]:
    """Observed prices, from ``prices.json``."""
    return tuple(_read("prices.json")["prices"])


@cache
def kernel_efficiency() -> dict[str, Any]:
    """Per-GPU kernel efficiencies and measured attention curves, from ``kernel_efficiency.json``."""
    return _read("kernel_efficiency.json")
