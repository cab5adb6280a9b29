"""Read-through cache of the catalog rows the calculators look up (presets and GPUs).

Calculators ask for the same few presets and GPUs again and again; reading them from the store
on every request would cost more than the math. Entries live ``CATALOG_CACHE_SECONDS`` (default
5 s); a write committed by this process clears the cache at once, a write by another instance
is seen within the TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from service.db.models import Gpu, ModelPreset
from service.db.repositories import VersionedRepository
from service.schemas.model import ARCHITECTURE_FIELDS

T = TypeVar("T")


class CacheMiss(Exception):
    """A cache-only reader needed a row that is not cached (the caller retries with the store)."""


class CatalogCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by clear(): a load that raced a write is not stored

    def get(self, key: tuple[str, str], load: Callable[[], T | None] | None) -> T | None:
        """The cached value, else ``load()`` (cached when found); ``load=None`` means cache
        only: a miss raises :class:`CacheMiss`."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        if load is None:
            raise CacheMiss(key)
        generation = self._generation
        value = load()
        if value is not None and self.ttl_seconds > 0:
            with self._lock:
                if generation == self._generation:
                    self._entries[key] = (now + self.ttl_seconds, value)
        return value

    def clear(self, *_: object) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()


@dataclass(frozen=True, slots=True)
class GpuView:
    """What calculators need of a catalog GPU."""

    id: str
    memory_bytes: int
    peak_tflops: dict[str, float | None]
    memory_bandwidth_bytes_per_s: int
    default_mfu: float | None


class CatalogReader:
    """Cached lookups of presets and GPUs; the session connects only on a miss. A reader built
    with ``session=None`` answers from the cache alone and raises :class:`CacheMiss` otherwise,
    so a request can be answered without a thread or a connection when everything is cached."""

    def __init__(self, session: Session | None, cache: CatalogCache) -> None:
        self.session = session
        self.cache = cache

    def cached_only(self) -> CatalogReader:
        return CatalogReader(None, self.cache)

    def _load(self, load: Callable[[], T | None]) -> Callable[[], T | None] | None:
        return None if self.session is None else load

    def preset_fields(self, preset_id: str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            row = VersionedRepository(self.session, ModelPreset).get(preset_id)
            if row is None:
                return None
            return {name: getattr(row, name) for name in ARCHITECTURE_FIELDS if getattr(row, name) is not None}

        return self.cache.get(("preset", preset_id), self._load(load))

    def preset_ids(self) -> list[str]:
        if self.session is None:
            raise CacheMiss(("preset", "*"))
        return VersionedRepository(self.session, ModelPreset).ids()

    def gpu(self, gpu_id: str) -> GpuView | None:
        def load() -> GpuView | None:
            row = VersionedRepository(self.session, Gpu).get(gpu_id)
            if row is None:
                return None
            return GpuView(
                id=row.id,
                memory_bytes=row.memory_bytes,
                peak_tflops=dict(row.peak_tflops),
                memory_bandwidth_bytes_per_s=row.memory_bandwidth_bytes_per_s,
                default_mfu=row.default_mfu,
            )

        return self.cache.get(("gpu", gpu_id), self._load(load))

    def gpu_ids(self) -> list[str]:
        if self.session is None:
            raise CacheMiss(("gpu", "*"))
        return VersionedRepository(self.session, Gpu).ids()
