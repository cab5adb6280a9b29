"""Waiting for what another thread or process does at its own pace: check a condition until it
holds or a generous deadline passes, instead of sleeping a fixed time and then asserting. A
slow machine then only waits longer, and a fast one no longer than needed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """``condition()`` again every ``interval`` seconds until it returns something true or
    ``timeout`` seconds have passed; its last answer (assert on it)."""
    deadline = time.monotonic() + timeout
    while not (answer := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return answer
