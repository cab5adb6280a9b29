"""How a catalog write ends: its answer, committed once, and kept under its ``Idempotency-Key``.

A write's use case (:mod:`service.services.catalog`) builds its whole answer (status, JSON body,
``Location``/``ETag`` headers) inside its transaction and hands it to :func:`finish`, which
stores it with the key, when the request sent one, in that same transaction and commits. So a
write and the record that it happened commit together or not at all, on every backend:

* a retry with the key finds the record (:func:`replay_or_remember`, right after the write's
  transaction began) and gets the stored answer again, with ``Idempotent-Replayed: true``,
  without writing anything;
* the same key with another request (method, path, ``If-Match`` or body differ) is a 422;
* two requests with the same key at the same moment: SQLite runs them one after the other (the
  write lock is taken at BEGIN), so the second finds the record; on Postgres the second's insert
  of the key waits for the first's commit and fails on the primary key, its transaction (and its
  write) is rolled back, and it answers the first one's stored answer.

Only successful writes are stored; a refused write (4xx) changed nothing and may be retried.
Keys live for ``IDEMPOTENCY_KEY_HOURS`` (24 h by default), as the IETF draft suggests stating
(draft-ietf-httpapi-idempotency-key-header, §2.3); expired keys are purged as writes go by.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.engine import begin_write
from service.db.repositories import IdempotencyRepository
from service.errors import Conflict, Unprocessable

KEY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII, as a header value carries it unquoted
PURGE_EVERY_SECONDS = 600.0
_SESSION_KEY = "idempotent_request"


@dataclass(frozen=True)
class WriteAnswer:
    """A write's answer as it goes out (and is replayed): status, JSON body or none, headers."""

    status_code: int
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdempotentRequest:
    """A write's key and what identifies its request (:func:`fingerprint`)."""

    key: str
    fingerprint: str
    ttl_seconds: float
    wait_seconds: float  # the write's lock wait, for the transaction that reads a racing winner


class Replayed(Exception):  # noqa: N818 - not an error: the answer to send instead of writing
    """The key's write already happened: answer ``answer`` (the route sends it as it was)."""

    def __init__(self, answer: WriteAnswer) -> None:
        super().__init__(answer.status_code)
        self.answer = answer


def fingerprint(method: str, path: str, if_match: str | None, body: bytes) -> str:
    """sha256 of what makes two writes the same request: method, path and query, ``If-Match``
    and the body's bytes."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), (if_match or "").encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(body)
    return digest.hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def key_error(reason: str) -> Unprocessable:
    return Unprocessable(
        f"{KEY_HEADER}: {reason}", errors=[{"loc": ["header", KEY_HEADER], "msg": reason, "type": "value_error"}]
    )


def _replay_of(session: Session, request: IdempotentRequest) -> Replayed | None:
    stored = IdempotencyRepository(session).find(request.key, _now())
    if stored is None:
        return None
    if stored.request_hash != request.fingerprint:
        raise key_error("already used for a different request (method, path, If-Match or body); use a new key")
    return Replayed(WriteAnswer(stored.status_code, stored.body, dict(stored.headers) | {"Idempotent-Replayed": "true"}))


def replay_or_remember(session: Session, request: IdempotentRequest | None) -> None:
    """Right after the write's transaction began: raise :class:`Replayed` when the key's write
    already happened (422 when with another request), else remember the key for :func:`finish`."""
    if request is None:
        return
    if (replay := _replay_of(session, request)) is not None:
        raise replay
    session.info[_SESSION_KEY] = request


class _Purge:
    """When this process last deleted expired keys (once per :data:`PURGE_EVERY_SECONDS`)."""

    def __init__(self) -> None:
        self.last = float("-inf")
        self.lock = threading.Lock()

    def due(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now - self.last < PURGE_EVERY_SECONDS:
                return False
            self.last = now
            return True


_PURGE = _Purge()


def finish(session: Session, answer: WriteAnswer) -> WriteAnswer:
    """Store ``answer`` under the request's key (if it sent one) and commit the write."""
    request: IdempotentRequest | None = session.info.pop(_SESSION_KEY, None)
    if request is not None:
        now = _now()
        repo = IdempotencyRepository(session)
        if _PURGE.due():
            repo.purge(now)
        values = {
            "key": request.key, "request_hash": request.fingerprint, "status_code": answer.status_code,
            "body": answer.body, "headers": dict(answer.headers), "created_at": now,
            "expires_at": now + dt.timedelta(seconds=request.ttl_seconds),
        }  # fmt: skip
        try:
            repo.add(values, now)
        except IntegrityError:
            # a request with the same key committed first (Postgres): undo ours, answer theirs
            session.rollback()
            begin_write(session, request.wait_seconds)
            replay = _replay_of(session, request)
            session.rollback()
            if replay is None:  # theirs expired in between: vanishingly rare
                raise Conflict(f"a write with this {KEY_HEADER} was applied concurrently; send it again") from None
            raise replay from None
    session.commit()
    return answer
