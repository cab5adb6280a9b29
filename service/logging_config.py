"""Log records as one JSON object a line (or plain text), each carrying the request id.

:data:`REQUEST_ID` holds the id of the request being served; :class:`RequestIdFilter` copies it
onto every record, so a log line written anywhere while a request runs (the unhandled-error log
included) names the request. :func:`log_config` is the ``logging.config.dictConfig`` document
that ``python -m service serve`` hands to uvicorn (``LOG_FORMAT``, ``LOG_LEVEL``).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Set by the request middleware for the request being served. uvicorn serves each request in a
# task of its own (a copy of the context), so a value never leaks into another request; it is left
# set after the response so the 500 handler, which runs outside the middleware, still sees it.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"

_encode = json.JSONEncoder(default=str, ensure_ascii=False).encode  # built once: a line costs less
# attributes every LogRecord has; anything else on a record came from `extra=` (or a filter)
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def current_request_id() -> str | None:
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record (``None`` outside a request) unless it has one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    record's extra fields (``request_id``, ``method``, ``path``, ``status``, ``duration_ms``, ...)
    and ``exception`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _encode(entry)


class TextFormatter(logging.Formatter):
    """``time level logger message``, then ``request_id=...`` when the record has one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return line if request_id is None else f"{line} request_id={request_id}"


def log_config(log_format: str, log_level: str) -> dict[str, Any]:
    """The dictConfig document for uvicorn's ``log_config``: one stdout handler on the root logger
    (uvicorn's own loggers propagate to it); uvicorn's access log is off, since the service's
    request middleware writes one line per request itself (logger ``service.access``)."""
    level = log_level.upper()
    formatter = {"()": JsonFormatter} if log_format == "json" else {"()": TextFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "default",
                "filters": ["request_id"],
            },
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
