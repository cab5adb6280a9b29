"""The write lane: catalog writes wait for the database here, bounded, and never in the thread pool.

A write blocked on the database's write lock (SQLite has one writer per database; on Postgres
every catalog write updates the ``catalog_version`` row) holds a worker thread while it waits.
Left alone, a burst of writes fills the thread pool that reads, calculators and plans share, and
the whole service stalls for as long as the lock's timeout. So a write first takes one of
``slots`` places in this lane, waiting for it on the event loop (no thread, no connection):

* at most ``slots`` writes of a worker reach the database at once (1 on SQLite: the process
  serialises its own writers, and the database serialises the workers' through its lock);
* at most ``queue`` more wait, each at most ``wait_seconds``, first come first served; a write
  that finds the queue full, or whose wait runs out, answers 503 with ``Retry-After``
  (:class:`service.errors.Busy`). A write that would wait longer than ``wait_seconds`` behind
  those queued (by the recent time a write holds its slot, a moving average) is refused at once
  rather than after the wait;
* the database's own lock wait is bounded by the same ``wait_seconds`` (SQLite ``busy_timeout``,
  Postgres ``lock_timeout``: :func:`service.db.engine.begin_write`), so across workers too a
  write answers within about twice that, never after a 30-s pool or lock time-out.

Reads never enter the lane. Waiters are futures of the loop they run on, so the lane serves any
event loop (the test client runs one per client).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.errors import Busy


class _Waiter:
    """A write waiting for a slot: ``granted`` is set under the lane's lock when a slot is handed
    to it, so a wait that ends at that moment knows whether it holds one."""

    __slots__ = ("future", "granted")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.granted = False


class WriteLane:
    """``slots`` places for writes and a bounded FIFO of writes waiting for one."""

    def __init__(self, slots: int, queue: int, wait_seconds: float) -> None:
        self.slots = slots
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._busy = 0  # writes holding a slot
        self._waiting: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self.hold_seconds = 0.0  # moving average of how long a write holds its slot (0: none yet)

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def _acquire(self) -> None:
        with self._lock:
            if self._busy < self.slots and not self._waiting:
                self._busy += 1
                return
            if len(self._waiting) >= self.queue:
                raise Busy(f"{self._busy} catalog writes are running and {len(self._waiting)} waiting; retry shortly")
            if (len(self._waiting) + 1) * self.hold_seconds / self.slots > self.wait_seconds:
                raise Busy(
                    f"{len(self._waiting)} catalog writes are waiting, more than {self.wait_seconds:g} s of work; retry shortly"
                )
            waiter = _Waiter(asyncio.get_running_loop().create_future())
            self._waiting.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), self.wait_seconds)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiting.remove(waiter)
            if granted and isinstance(exc, TimeoutError):
                return  # the slot came as the wait ended: use it
            if granted:
                self._release()  # cancelled (the client left) while a slot was handed over: pass it on
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise Busy(f"no catalog write slot within {self.wait_seconds:g} s; retry shortly") from None

    def _release(self, held_seconds: float | None = None) -> None:
        """Hand the slot to the first waiter, or free it; ``held_seconds`` updates the average."""
        with self._lock:
            if held_seconds is not None:
                self.hold_seconds = held_seconds if self.hold_seconds == 0 else 0.8 * self.hold_seconds + 0.2 * held_seconds
            if self._waiting:
                waiter = self._waiting.popleft()
                waiter.granted = True  # the slot passes over: _busy stays
                waiter.future.get_loop().call_soon_threadsafe(_wake, waiter.future)
                return
            self._busy -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the ``async with`` body, or raise :class:`Busy`."""
        await self._acquire()
        began = time.perf_counter()
        try:
            yield
        finally:
            self._release(time.perf_counter() - began)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
