"""Priced answers kept while the catalog snapshot they were computed from is current.

A cost or budget answer is a pure function of its request and the catalog snapshot it read
(:mod:`service.services.catalog_reader`): the presets, GPUs and prices. Budgeting apps ask the
same questions again and again (a dashboard, a comparison table), so the routes that read prices
keep each answer's JSON with the serial numbers of the snapshots it read; it is served again only
while the current snapshot is that one. A write anywhere makes a new snapshot (here at once, in
other workers and replicas within the snapshot's freshness bound), so a kept answer is never
staler than the catalog reads themselves. An answer whose plan search was cut by its time bound
is not kept (a later search may get further), nor are errors.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.services.lru import LruCache

T = TypeVar("T")

ANSWER_CACHE_SIZE = 1024  # answers kept (LRU); a comparison's JSON is ~25 KB, so at most ~25 MB


@dataclass
class Trace:
    """What one computation read: the serials of the snapshots, and whether it may be kept."""

    snapshots: set[int] = field(default_factory=set)
    keepable: bool = True


_TRACE: ContextVar[Trace | None] = ContextVar("answer_trace", default=None)


def note_snapshot(serial: int) -> None:
    """Record that the computation under way read the snapshot ``serial`` (no-op outside one)."""
    trace = _TRACE.get()
    if trace is not None:
        trace.snapshots.add(serial)


def not_keepable() -> None:
    """The computation under way must not be kept (a plan search cut by its time bound)."""
    trace = _TRACE.get()
    if trace is not None:
        trace.keepable = False


def traced(compute: Callable[..., T], *args: Any) -> tuple[T, Trace]:
    """``compute(*args)`` and what it read. The trace is a mutable object held by a context
    variable, so it is filled in also when the call runs in the thread pool (which copies the
    context)."""
    trace = Trace()
    token = _TRACE.set(trace)
    try:
        return compute(*args), trace
    finally:
        _TRACE.reset(token)


class AnswerCache:
    """Answers' JSON by key, each with the snapshot serials it read (:class:`LruCache`: least
    recently used dropped first; several threads share it)."""

    def __init__(self, size: int = ANSWER_CACHE_SIZE) -> None:
        self._answers: LruCache[tuple[frozenset[int], str]] = LruCache(size)

    def get(self, key: Hashable, current_serial: int) -> str | None:
        """The kept answer if every snapshot it read is the current one (or it read none)."""
        found = self._answers.get(key)
        if found is None:
            return None
        serials, body = found
        if serials and serials != {current_serial}:
            self._answers.discard(key)
            return None
        return body

    def put(self, key: Hashable, trace: Trace, body: str) -> None:
        if trace.keepable and len(trace.snapshots) <= 1:
            self._answers.put(key, (frozenset(trace.snapshots), body))

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)
