"""Annotated dependency aliases shared by the routers."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.db.engine import begin_write
from service.errors import Forbidden, Unauthorized
from service.services.catalog_reader import CacheMiss, CatalogReader, CatalogSnapshot
from service.services.writes import KEY_HEADER, KEY_PATTERN, MAX_KEY_LENGTH, IdempotentRequest, fingerprint, replay_or_remember
from service.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request. It connects only when first used, so calculators that need no
    catalog never touch the database. Services commit; nothing is committed here."""
    with request.app.state.sessionmaker() as session:
        yield session


async def write_slot(request: Request) -> AsyncIterator[None]:
    """A place in the write lane (:mod:`service.api.write_lane`), held until the write's session
    has closed; waited for on the event loop, so a waiting write holds no thread. 503 with
    ``Retry-After`` when the lane is full or the wait runs out."""
    async with request.app.state.write_lane.slot():
        yield


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        pattern=KEY_PATTERN,
        max_length=MAX_KEY_LENGTH,
        description="Any unique string (a UUID, say; 1-255 visible ASCII characters). A write retried with the same key "
        "is applied once: the retry gets the first answer again (with `Idempotent-Replayed: true`); the same key with "
        "another request is a 422. Keys are kept for IDEMPOTENCY_KEY_HOURS (24 h by default).",
    ),
]


async def idempotent_request(request: Request, key: IdempotencyKey = None) -> IdempotentRequest | None:
    """The write's key and its request's fingerprint, when it sent a key."""
    if key is None:
        return None
    settings: Settings = request.app.state.settings
    scope = request.scope
    path = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else "")
    return IdempotentRequest(
        key=key,
        fingerprint=fingerprint(request.method, path, request.headers.get("if-match"), await request.body()),
        ttl_seconds=settings.idempotency_key_hours * 3600,
        wait_seconds=settings.write_wait_seconds,
    )


def get_write_session(
    request: Request,
    _slot: Annotated[None, Depends(write_slot)],
    idempotent: Annotated[IdempotentRequest | None, Depends(idempotent_request)],
) -> Iterator[Session]:
    """A session whose transaction starts as a write, with the lane's bounded lock wait (see
    :func:`service.db.engine.begin_write`); a key already used answers its stored write
    (:func:`service.services.writes.replay_or_remember`). Each commit clears the calculators'
    catalog cache."""
    with request.app.state.sessionmaker() as session:
        event.listen(session, "after_commit", request.app.state.catalog_cache.clear)
        begin_write(session, request.app.state.settings.write_wait_seconds)
        replay_or_remember(session, idempotent)
        yield session


async def get_catalog(request: Request) -> CatalogReader:
    """A catalog reader for calculators; it opens a session only on a cache miss."""
    return request.app.state.catalog


async def get_snapshot(catalog: Annotated[CatalogReader, Depends(get_catalog)]) -> CatalogSnapshot:
    """The catalog snapshot for a read: on the event loop when it is fresh, else checked (and
    reloaded if a write moved ``catalog_version``) in the thread pool, where the store may block."""
    try:
        return catalog.cached_only().snapshot()
    except CacheMiss:
        return await run_in_threadpool(catalog.snapshot)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]
CatalogDep = Annotated[CatalogReader, Depends(get_catalog)]
SnapshotDep = Annotated[CatalogSnapshot, Depends(get_snapshot)]
IfMatch = Annotated[
    str,  # optional where used (`= None`); a header is omitted, never null
    Header(
        alias="If-Match",
        description='The `ETag` a GET or write answered (e.g. `"3"`), a comma-separated list of them, or `*`: the write '
        "happens only while the item is at one of those versions, else 412. Omit it to write unconditionally.",
    ),
]


bearer = HTTPBearer(
    scheme_name="bearerAuth",
    description="`Authorization: Bearer <API_TOKEN>`, the token the service is configured with; catalog writes only.",
    auto_error=False,  # require_writer answers with the service's own 401/403 problems
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require_writer(settings: SettingsDep, credentials: BearerDep) -> None:
    """Writes need ``Authorization: Bearer <API_TOKEN>``, compared in constant time. Without a
    configured token every write is refused (403). ``bearer`` declares the scheme in the OpenAPI
    document and parses the header (None when it is missing, empty or not a bearer token)."""
    if settings.api_token is None or not settings.api_token.get_secret_value():
        raise Forbidden("catalog writes are disabled: set the API_TOKEN environment variable to enable them")
    if credentials is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <API_TOKEN>'")
    if not hmac.compare_digest(credentials.credentials.encode(), settings.api_token.get_secret_value().encode()):
        raise Unauthorized("invalid bearer token")


Writer = Depends(require_writer)
