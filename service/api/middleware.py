"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: no extra task, nothing buffered).

* :class:`RequestMiddleware`: the request id (``X-Request-ID`` in, or a new one) echoed on
  every response, one log line per request (logger ``service.access``, INFO), and the
  Prometheus request metrics (:mod:`service.metrics`): one layer, one clock, for all three.
* :class:`BodyGuardMiddleware`: ``MAX_BODY_BYTES`` and JSON-only request bodies, answered with
  problem+json. FastAPI's own ``max_body_size`` is not used: it sits outside the app's middleware
  and exception handlers, and answers a request whose ``Content-Length`` is over the limit with a
  ``text/plain`` 413 that replaces whatever response the app sends, so that answer could be
  neither problem+json nor carry the request id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import problem
from service.logging_config import REQUEST_ID, REQUEST_ID_HEADER
from service.metrics import Metrics

__all__ = ["REQUEST_ID_HEADER", "BodyGuardMiddleware", "BodyTooLarge", "RequestMiddleware"]
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}").fullmatch
access_log = logging.getLogger("service.access")


class RequestMiddleware:
    """One pass per request for the request id, the access log and the metrics.

    The id is the request's ``X-Request-ID`` when that is a sane token (at most 128 of
    ``A-Z a-z 0-9 . _ : / + = @ -``), else a new uuid4 hex; it goes into :data:`REQUEST_ID` for
    the logs and onto the response. Then one log line at INFO (method, path, status, duration,
    id) and, with ``metrics``, the request counted and timed under its route template (not the
    raw path, so ids do not explode the label set). Outermost of the app's middleware, so every
    answer but an unhandled error's 500 passes through it (the 500 handler adds the header)."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        raw_id = next((value for name, value in scope["headers"] if name == b"x-request-id"), None)
        request_id = raw_id.decode("ascii") if raw_id is not None and _SANE_REQUEST_ID(raw_id) else uuid.uuid4().hex
        REQUEST_ID.set(request_id)
        id_header = (b"x-request-id", request_id.encode("ascii"))
        status = 500  # what the client gets when the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            method = scope["method"]
            if self.metrics is not None:
                self.metrics.observe(method, getattr(scope.get("route"), "path", "unmatched"), status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                path, duration_ms = scope["path"], round(1000 * seconds, 3)
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    path,
                    status,
                    duration_ms,
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": duration_ms,
                        "request_id": request_id,
                    },
                )


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body without a ``Content-Length`` streams past the limit;
    the app's exception handler renders it as problem+json."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)")


class BodyGuardMiddleware:
    """Refuses a body over ``max_body_bytes`` with 413, before reading any of it when
    ``Content-Length`` says so, else as soon as the streamed (chunked) body passes the limit; and
    a POST, PUT or PATCH body that is not JSON (``application/json`` or ``application/*+json``)
    with 415. A 413 closes the connection (``Connection: close``), so the server stops reading
    the rest of the body."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_length = content_type = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                content_length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
        if content_length is not None:
            length = int(content_length) if content_length.isdigit() else 0  # the server rejects a bad one itself
            if length > self.max_body_bytes:
                await self._refuse(413, BodyTooLarge(self.max_body_bytes).detail, scope, receive, send)
                return
            has_body = length > 0
        else:
            has_body = chunked
        if has_body and scope["method"] in ("POST", "PUT", "PATCH") and not _is_json(content_type):
            detail = "the request body must be JSON: send it with `Content-Type: application/json`"
            await self._refuse(415, detail, scope, receive, send)
            return
        if content_length is not None or not chunked:  # the server never delivers more than Content-Length
            await self.app(scope, receive, send)
            return
        await self._call_counting(scope, receive, send)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit, received, started = self.max_body_bytes, 0, False

        async def receive_counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if received > limit:
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, receive_counting, send_closing)
        except BodyTooLarge as exc:  # only if no exception handler turned it into a response
            if started:
                raise
            await self._refuse(413, str(exc.detail), scope, receive, send)

    @staticmethod
    async def _refuse(status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(status, HTTPStatus(status).phrase, detail)
        if status == 413:
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _is_json(content_type: Any) -> bool:
    if content_type is None:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))
