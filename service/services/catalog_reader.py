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
    # the cluster around it: bandwidths per GPU in ONE direction (interconnect: both), nominal
    interconnect_bytes_per_s: int | None = None
    gpus_per_node: int | None = None
    intra_node_bandwidth_bytes_per_s: int | None = None
    inter_node_bandwidth_bytes_per_s: int | None = None
    matmul_efficiency: float | None = None  # MAMF / dense bf16 peak


class CatalogReader:
    """Cached lookups of presets and GPUs. A miss opens a short session of its own, so a
    request that finds everything cached never creates one. A reader built without a session
    factory answers from the cache alone and raises :class:`CacheMiss` otherwise, so a request
    can be answered without a thread or a connection when everything is cached."""

    def __init__(self, open_session: Callable[[], Session] | None, cache: CatalogCache) -> None:
        self.open_session = open_session
        self.cache = cache
        self._cached_only = self if open_session is None else CatalogReader(None, cache)

    def cached_only(self) -> CatalogReader:
        """A reader over the same cache that never opens a session (readers hold no per-request
        state, so one is built with this reader and shared)."""
        return self._cached_only

    def _read(self, key: tuple[str, str], read: Callable[[Session], T | None]) -> T | None:
        if self.open_session is None:
            return self.cache.get(key, None)
        open_session = self.open_session

        def load() -> T | None:
            with open_session() as session:
                return read(session)

        return self.cache.get(key, load)

    def _ids(self, model: type[Any]) -> list[str]:
        if self.open_session is None:
            raise CacheMiss((model.__tablename__, "*"))
        with self.open_session() as session:
            return VersionedRepository(session, model).ids()

    def preset_fields(self, preset_id: str) -> tuple[tuple[str, Any], ...] | None:
        """The preset's architecture fields that are set, as sorted ``(name, value)`` pairs:
        immutable, since the cache shares them, and hashable, as the memoised architecture
        builder (:func:`service.services.models.resolve_model`) needs."""

        def read(session: Session) -> tuple[tuple[str, Any], ...] | None:
            row = VersionedRepository(session, ModelPreset).get(preset_id)
            if row is None:
                return None
            return tuple(sorted((name, getattr(row, name)) for name in ARCHITECTURE_FIELDS if getattr(row, name) is not None))

        return self._read(("preset", preset_id), read)

    def preset_ids(self) -> list[str]:
        return self._ids(ModelPreset)

    def gpu(self, gpu_id: str) -> GpuView | None:
        def read(session: Session) -> GpuView | None:
            row = VersionedRepository(session, Gpu).get(gpu_id)
            if row is None:
                return None
            return GpuView(
                id=row.id,
                memory_bytes=row.memory_bytes,
                peak_tflops=dict(row.peak_tflops),
                memory_bandwidth_bytes_per_s=row.memory_bandwidth_bytes_per_s,
                default_mfu=row.default_mfu,
                interconnect_bytes_per_s=row.interconnect_bytes_per_s,
                gpus_per_node=row.gpus_per_node,
                intra_node_bandwidth_bytes_per_s=row.intra_node_bandwidth_bytes_per_s,
                inter_node_bandwidth_bytes_per_s=row.inter_node_bandwidth_bytes_per_s,
                matmul_efficiency=row.matmul_efficiency,
            )

        return self._read(("gpu", gpu_id), read)

    def gpu_ids(self) -> list[str]:
        return self._ids(Gpu)
