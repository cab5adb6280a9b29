"""Errors raised by the formula core.

The core validates its own inputs and raises :class:`InvalidSpecError` naming the offending field,
so every caller (the HTTP API, a notebook, a batch job) gets the same rules and the same messages.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class for every error raised by ``service.core``."""


class InvalidSpecError(CoreError, ValueError):
    """An input is invalid for the formula asked for.

    ``field`` is a dotted path relative to the request (``"model.n_heads"``,
    ``"parallelism.tp"``); ``reason`` says what is wrong in words a user can act on.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class MissingArchitectureError(InvalidSpecError):
    """The answer needs the architecture, but only a bare parameter count was given."""

    def __init__(self, needed_for: str, missing: tuple[str, ...]) -> None:
        super().__init__(
            "model",
            f"{needed_for} needs the architecture, not only n_params; give a preset or these fields: {', '.join(missing)}",
        )
        self.missing = missing
