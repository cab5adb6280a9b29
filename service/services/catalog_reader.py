"""Catalog reads served from an in-process snapshot of the whole catalog.

The catalog is small (tens of GPUs, providers and presets, hundreds of prices) and read far more
often than written, so every read is answered from one immutable snapshot of it per database,
held by this process: the list and get endpoints (:mod:`service.services.catalog`), the prices
the cost and budget answers look up (:func:`service.services.pricing.resolve_price`) and the presets
and GPUs the calculators resolve (:class:`CatalogReader`).

Freshness:

* every catalog write bumps the ``catalog_version`` row in its own transaction
  (:mod:`service.db.repositories`); a snapshot last checked more than :data:`MAX_STALE_SECONDS`
  ago is checked against that row with one primary-key read before it is used, and the whole
  catalog is read again when the version changed. So a write committed by another worker or
  replica on the same database is served here at most 0.5 s (plus one reload) after its
  commit;
* a snapshot is read in one transaction that sees one database state (Postgres: REPEATABLE
  READ, :func:`service.db.engine.begin_consistent_read`), so it never mixes a row from before a
  write with one from after it, and its version is the one its rows are at;
* a write committed by this process drops its snapshots at once (the write session's
  ``after_commit`` calls :meth:`CatalogCache.clear`): this process reads its own writes;
* with the database down a snapshot due for its check fails with it, and the read answers 503
  as before; calculators that need no catalog keep answering.

``CATALOG_CACHE_SECONDS`` below 1 shortens the calculators' check interval (0: a check on
every read).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Engine, Row
from sqlalchemy.orm import Session

from service.core.architecture import ARCHITECTURE_FIELDS
from service.core.fields import Stored
from service.db.engine import begin_consistent_read
from service.db.repositories import catalog_rows, catalog_version
from service.schemas import catalog as s
from service.schemas.base import Schema
from service.services.answers import note_snapshot

T = TypeVar("T")

MAX_STALE_SECONDS = 0.5  # how long a snapshot is used before it is checked against catalog_version
MAX_DERIVED = 4096  # values derived from one snapshot and kept with it (pages' JSON, price lists)


class CacheMiss(Exception):
    """A cache-only reader needed a row that is not cached (the caller retries with the store)."""


class HeavyWork(CacheMiss):
    """Work too slow for the event loop was asked for while :func:`light_work_only` holds (a
    plan search not yet cached, say); the caller retries in the thread pool, as on a miss."""


_LIGHT_WORK_ONLY: ContextVar[bool] = ContextVar("light_work_only", default=False)


def light_work_only() -> bool:
    """True while an answer is computed on the event loop (:func:`on_event_loop`): a service
    about to do heavy work raises :class:`HeavyWork` instead."""
    return _LIGHT_WORK_ONLY.get()


def on_event_loop(compute: Callable[..., T], *args: Any) -> T:
    """``compute(*args)`` with :func:`light_work_only` holding; :class:`CacheMiss` (or
    :class:`HeavyWork`) propagates, and the caller runs it again where it may block."""
    token = _LIGHT_WORK_ONLY.set(True)
    try:
        return compute(*args)
    finally:
        _LIGHT_WORK_ONLY.reset(token)


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
    tdp_watts: int | None = None  # for energy and CO2e (service.core.energy)


class Table:
    """One table's rows in the order the list endpoints answer (the store's ``ORDER BY``, so its
    collation decides), each with its API answer."""

    def __init__(self, rows: Sequence[Row[Any]], out: type[Schema]) -> None:
        # plain attribute bags: a SQLAlchemy Row's attribute access costs about 1 µs, and a
        # comparison reads five columns of each of ~50 current prices
        self.rows = tuple(SimpleNamespace(**row._asdict()) for row in rows)
        self.outs = tuple(out.model_validate(row, from_attributes=True) for row in self.rows)
        self._index = {row.id: i for i, row in enumerate(self.rows)}

    def find(self, item_id: object) -> int | None:
        return self._index.get(item_id)

    def matching(self, filters: Mapping[str, Any]) -> list[int]:
        """Positions of the rows equal to every filter that is not None (``WHERE col = :value``)."""
        wanted = [(column, value) for column, value in filters.items() if value is not None]
        if not wanted:
            return list(range(len(self.rows)))
        return [i for i, row in enumerate(self.rows) if all(_matches(row, column, value) for column, value in wanted)]

    def ids(self) -> list[str]:
        return [row.id for row in self.rows]


def _matches(row: Row[Any], column: str, value: Any) -> bool:
    """``column = value``; for ``q`` (model search) every word of ``value`` appears, in any case, in
    the row's id, name or family."""
    if column == "q":
        text = " ".join(str(getattr(row, name, None) or "") for name in ("id", "name", "family")).lower()
        return all(word in text for word in str(value).lower().split())
    return getattr(row, column) == value


def newest_per_kind(prices: Sequence[Row[Any]], positions: list[int]) -> list[int]:
    """Of ``positions`` (in price history order: GPU, provider, pricing kind, then newest
    ``as_of`` and highest id first), the first per GPU, provider and pricing kind: the current
    prices, as ``row_number() OVER (PARTITION BY ... ORDER BY as_of DESC, id DESC) = 1`` picks."""
    seen: set[tuple[str, str, str]] = set()
    newest = []
    for i in positions:
        row = prices[i]
        kind = (row.gpu_id, row.provider_id, row.pricing)
        if kind not in seen:
            seen.add(kind)
            newest.append(i)
    return newest


_SERIALS = itertools.count(1)


class CatalogSnapshot:
    """The whole catalog at one ``catalog_version``; immutable once built (readers share it)."""

    def __init__(self, version: int | None, rows: Mapping[str, Sequence[Row[Any]]]) -> None:
        self.version = version
        self.serial = next(_SERIALS)  # unique in this process: what answers derived from it are keyed by
        self.tables = {
            "gpus": Table(rows["gpus"], s.GpuOut),
            "providers": Table(rows["providers"], s.ProviderOut),
            "model_presets": Table(rows["model_presets"], s.ModelPresetOut),
            "prices": Table(rows["prices"], s.PriceOut),
        }
        self.empty = not any(table.rows for table in self.tables.values())
        self.gpu_views = {row.id: _gpu_view(row) for row in self.tables["gpus"].rows}
        self.preset_fields = {row.id: _preset_fields(row) for row in self.tables["model_presets"].rows}
        self._derived: dict[tuple[Any, ...], Any] = {}

    def derived(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        """``build()``, kept with this snapshot under ``key``: the snapshot never changes, so
        what is computed from it alone (a page's JSON, the current prices of a filter) is a pure
        function of the key while the snapshot is in use. At most :data:`MAX_DERIVED` values are
        kept; beyond that they are computed again (threads may race to build one: same value)."""
        try:
            return self._derived[key]
        except KeyError:
            value = build()
            if len(self._derived) < MAX_DERIVED:
                self._derived[key] = value
            return value

    @classmethod
    def load(cls, session: Session, version: int | None) -> CatalogSnapshot:
        """Read every table; ``version`` must have been read first, in the same transaction
        (begun by :func:`begin_consistent_read`)."""
        return cls(version, catalog_rows(session))

    def item(self, table: str, item_id: object) -> tuple[Schema, Row[Any]] | None:
        """A row's API answer and the row (its ``version`` is the ETag), or None."""
        t = self.tables[table]
        i = t.find(item_id)
        return None if i is None else (t.outs[i], t.rows[i])

    def page(
        self, table: str, filters: Mapping[str, Any], *, limit: int, offset: int, latest: bool = False
    ) -> tuple[list[Schema], int]:
        """A page of API answers of the rows matching ``filters``, and how many match; for prices,
        ``latest`` keeps the current price of each GPU, provider and pricing kind."""
        t = self.tables[table]
        positions = t.matching(filters)
        if latest:
            positions = newest_per_kind(t.rows, positions)
        return [t.outs[i] for i in positions[offset : offset + limit]], len(positions)

    def current_prices(self, filters: Mapping[str, Any]) -> tuple[Row[Any], ...]:
        """The current price rows matching ``filters`` (gpu_id, provider_id, pricing, region), in
        price history order."""
        t = self.tables["prices"]
        return self.derived(
            ("current_prices", *sorted(filters.items())),
            lambda: tuple(t.rows[i] for i in newest_per_kind(t.rows, t.matching(filters))),
        )

    def ids(self, table: str) -> list[str]:
        return self.tables[table].ids()


def _gpu_view(row: Row[Any]) -> GpuView:
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
        tdp_watts=row.tdp_watts,
    )


def _preset_fields(row: Row[Any]) -> tuple[tuple[str, Any], ...]:
    """The preset's architecture fields that are set, as sorted ``(name, value)`` pairs:
    immutable, since readers share them, and hashable, as the memoised architecture builder
    (:func:`service.services.models.resolve_model`) needs."""
    values = ((name, getattr(row, name)) for name in PRESET_FIELD_NAMES)
    return tuple(sorted((name, tuple(v) if isinstance(v, list) else v) for name, v in values if v is not None))


PRESET_FIELD_NAMES = tuple(f.name for f in ARCHITECTURE_FIELDS if f.stored is not Stored.NO)
"""The architecture fields preset rows store."""


_DATABASE_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def database_of(session: Session) -> str:
    """The URL of the database a session reads (its engine's, also for a session bound to a
    connection), as a string: the key of that database's snapshot. Engines built for the same
    URL share it."""
    engine = session.get_bind().engine
    key = _DATABASE_KEYS.get(engine)
    if key is None:
        key = _DATABASE_KEYS[engine] = engine.url.render_as_string(hide_password=False)
    return key


class Snapshots:
    """This process's catalog snapshots, one per database, and when each was last checked."""

    def __init__(self) -> None:
        self._slots: dict[str, tuple[CatalogSnapshot, float]] = {}
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()  # held while one thread checks (or loads) a snapshot
        self._generation = 0  # bumped by clear(): a load that raced a local write is not kept

    def peek(self, database: str | None, max_age: float) -> CatalogSnapshot | None:
        """The database's snapshot if it was checked less than ``max_age`` seconds ago (no I/O)."""
        slot = self._slots.get(database)
        if slot is not None and time.monotonic() - slot[1] < max_age:
            return slot[0]
        return None

    def get(self, session: Session, max_age: float = MAX_STALE_SECONDS) -> CatalogSnapshot:
        """The snapshot of the session's database: as held if checked less than ``max_age``
        seconds ago; else as held if ``catalog_version`` has not moved since it was loaded (one
        primary-key read in ``session``); else the catalog read again in ``session``, in the
        transaction that read the version (:func:`begin_consistent_read`), so the snapshot is
        tagged with the version its rows are at, never a newer one. An empty
        snapshot (a catalog not yet seeded: seeding bumps no version), or one of a database
        without the version row, is read again at every check."""
        database = database_of(session)
        slot = self._slots.get(database)
        if slot is not None and time.monotonic() - slot[1] < max_age:
            return slot[0]
        # one check at a time: the requests that found the snapshot due together wait for it
        # instead of each reading catalog_version (and the whole catalog) again
        with self._check_lock:
            now = time.monotonic()
            slot = self._slots.get(database)
            if slot is not None and now - slot[1] < max_age:
                return slot[0]
            generation = self._generation
            begin_consistent_read(session)  # the version and every row: one database state
            version = catalog_version(session)
            held = slot[0] if slot is not None else None
            if held is not None and version is not None and held.version == version and not held.empty:
                snapshot = held
            else:
                snapshot = CatalogSnapshot.load(session, version)
            with self._lock:
                if generation == self._generation:
                    self._slots[database] = (snapshot, now)
            return snapshot

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._slots.clear()


SNAPSHOTS = Snapshots()  # the process's; empty until the first read


class CatalogCache:
    """One app's handle on the process's catalog snapshots: how often its readers check them
    (``min(ttl_seconds, MAX_STALE_SECONDS)``) and which database they read. :meth:`clear` drops
    the snapshots, for every database (a local write's commit calls it)."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self.database: str | None = None  # set by the first read through a session

    @property
    def max_age(self) -> float:
        """How long a snapshot is used before its check: ``min(ttl_seconds, MAX_STALE_SECONDS)``."""
        return min(self.ttl_seconds, MAX_STALE_SECONDS)

    def snapshot(self, open_session: Callable[[], Session] | None) -> CatalogSnapshot:
        """The current snapshot; without ``open_session`` only one checked within ``max_age``
        (else :class:`CacheMiss`), with it one checked or loaded through a session of its own."""
        snapshot = SNAPSHOTS.peek(self.database, self.max_age)
        if snapshot is not None:
            return snapshot
        if open_session is None:
            raise CacheMiss(("catalog", "snapshot"))
        with open_session() as session:
            self.database = database_of(session)
            return SNAPSHOTS.get(session, self.max_age)

    def clear(self, *_: object) -> None:
        SNAPSHOTS.clear()


class CatalogReader:
    """Presets and GPUs for calculators, from the catalog snapshot. A snapshot due for its check
    opens a short session of its own, so a request that finds it fresh never creates one. A
    reader built without a session factory answers from a fresh snapshot alone and raises
    :class:`CacheMiss` otherwise, so a request can be answered without a thread or a connection
    when the snapshot is fresh."""

    def __init__(self, open_session: Callable[[], Session] | None, cache: CatalogCache) -> None:
        self.open_session = open_session
        self.cache = cache
        self._cached_only = self if open_session is None else CatalogReader(None, cache)

    def cached_only(self) -> CatalogReader:
        """A reader over the same cache that never opens a session (readers hold no per-request
        state, so one is built with this reader and shared)."""
        return self._cached_only

    def snapshot(self) -> CatalogSnapshot:
        snapshot = self.cache.snapshot(self.open_session)
        note_snapshot(snapshot.serial)  # an answer computed from it is kept only while it is current
        return snapshot

    def preset_fields(self, preset_id: str) -> tuple[tuple[str, Any], ...] | None:
        """The preset's architecture fields that are set, as sorted ``(name, value)`` pairs
        (shared and hashable: see :func:`_preset_fields`)."""
        return self.snapshot().preset_fields.get(preset_id)

    def preset_ids(self) -> list[str]:
        return self.snapshot().ids("model_presets")

    def gpu(self, gpu_id: str) -> GpuView | None:
        return self.snapshot().gpu_views.get(gpu_id)

    def gpu_ids(self) -> list[str]:
        return self.snapshot().ids("gpus")
