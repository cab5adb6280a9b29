"""Every catalog query lives here. Repositories flush; the service layer commits once.

Every write that changes a catalog row also bumps ``catalog_version`` in the same transaction
(last, so the counter's row lock is held only until the commit), which is how other instances'
snapshots of the catalog learn of it (:mod:`service.services.catalog_reader`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy import Row, Select, delete, func, select, update
from sqlalchemy.orm import Session

from service.db.models import CatalogVersion, Gpu, IdempotencyKey, ModelPreset, Price, Provider

M = TypeVar("M", Gpu, Provider, ModelPreset)


class VersionedRepository(Generic[M]):
    """Reads and optimistic-concurrency writes of one versioned catalog table."""

    def __init__(self, session: Session, model: type[M]) -> None:
        self.session = session
        self.model = model

    def get(self, item_id: str) -> M | None:
        if "\x00" in item_id:  # no id holds one (ids are slugs), and Postgres text cannot carry it
            return None
        return self.session.get(self.model, item_id, populate_existing=True)

    def exists(self, item_id: str) -> bool:
        stmt = select(self.model.id).where(self.model.id == item_id)
        return self.session.execute(stmt).first() is not None

    def ids(self) -> list[str]:
        return list(self.session.scalars(select(self.model.id).order_by(self.model.id)))

    def list(self, filters: Mapping[str, Any], *, limit: int, offset: int) -> tuple[list[M], int]:
        stmt: Select[Any] = select(self.model)
        for column, value in filters.items():
            if value is not None:
                stmt = stmt.where(getattr(self.model, column) == value)
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = self.session.scalars(stmt.order_by(self.model.id).limit(limit).offset(offset))
        return list(rows), total

    def add(self, values: Mapping[str, Any]) -> M:
        row = self.model(**values, version=1)
        self.session.add(row)
        self.session.flush()
        bump_catalog_version(self.session)
        return row

    def update_if_version(self, item_id: str, values: Mapping[str, Any], version: int) -> bool:
        """``UPDATE ... SET version = version + 1 WHERE id = :id AND version = :version``:
        atomic on every backend, so of concurrent writers holding the same version exactly one
        succeeds. Returns whether a row was updated."""
        stmt = (
            update(self.model)
            .where(self.model.id == item_id, self.model.version == version)
            .values(**values, version=self.model.version + 1, updated_at=func.now())
            .execution_options(synchronize_session=False)
        )
        return _bumped_if(self.session, self.session.execute(stmt).rowcount == 1)

    def delete(self, item_id: str, version: int | None = None) -> bool:
        """``DELETE ... WHERE id = :id``, and ``AND version = :version`` when given (a conditional
        delete: a row another writer changed since it was read at ``version`` stays). Returns
        whether a row was deleted."""
        stmt = delete(self.model).where(self.model.id == item_id)
        if version is not None:
            stmt = stmt.where(self.model.version == version)
        return _bumped_if(self.session, self.session.execute(stmt).rowcount == 1)


# the order of price history: per GPU, provider and pricing kind, newest first
PRICE_ORDER = (Price.gpu_id, Price.provider_id, Price.pricing, Price.as_of.desc(), Price.id.desc())


class PriceRepository:
    """Append-only price history."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, price_id: int) -> Price | None:
        return self.session.get(Price, price_id)

    def _filtered(self, filters: Mapping[str, Any]) -> Select[Any]:
        stmt: Select[Any] = select(Price)
        for column, value in filters.items():
            if value is not None:
                stmt = stmt.where(getattr(Price, column) == value)
        return stmt

    def list(self, filters: Mapping[str, Any], *, latest: bool, limit: int, offset: int) -> tuple[list[Price], int]:
        """Prices matching ``filters``; with ``latest`` only the newest per GPU, provider and
        pricing kind (highest ``as_of``, then highest id)."""
        stmt = self._filtered(filters)
        if latest:
            rank = (
                func.row_number()
                .over(
                    partition_by=(Price.gpu_id, Price.provider_id, Price.pricing),
                    order_by=(Price.as_of.desc(), Price.id.desc()),
                )
                .label("rank")
            )
            ranked = self._filtered(filters).add_columns(rank).subquery()
            newest = select(ranked.c.id).where(ranked.c.rank == 1)
            stmt = select(Price).where(Price.id.in_(newest))
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = self.session.scalars(stmt.order_by(*PRICE_ORDER).limit(limit).offset(offset))
        return list(rows), total

    def add(self, values: Mapping[str, Any]) -> Price:
        row = Price(**values)
        self.session.add(row)
        self.session.flush()
        bump_catalog_version(self.session)
        return row

    def add_many(self, rows: list[Mapping[str, Any]]) -> list[Price]:
        """Append every row in the caller's transaction, with one catalog version bump."""
        prices = [Price(**values) for values in rows]
        self.session.add_all(prices)
        self.session.flush()
        bump_catalog_version(self.session)
        return prices

    def delete(self, price_id: int) -> bool:
        return _bumped_if(self.session, self.session.execute(delete(Price).where(Price.id == price_id)).rowcount == 1)

    def count_referencing(self, *, gpu_id: str | None = None, provider_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(Price)
        if gpu_id is not None:
            stmt = stmt.where(Price.gpu_id == gpu_id)
        if provider_id is not None:
            stmt = stmt.where(Price.provider_id == provider_id)
        return self.session.scalar(stmt) or 0


def bump_catalog_version(session: Session) -> None:
    """Count one more catalog write, in the caller's transaction."""
    stmt = update(CatalogVersion).where(CatalogVersion.id == 1).values(version=CatalogVersion.version + 1)
    session.execute(stmt.execution_options(synchronize_session=False))


def _bumped_if(session: Session, changed: bool) -> bool:
    if changed:
        bump_catalog_version(session)
    return changed


def catalog_version(session: Session) -> int | None:
    """The catalog's write counter (None where the row is missing: no migration 0003)."""
    return session.scalar(select(CatalogVersion.version).where(CatalogVersion.id == 1))


def catalog_rows(session: Session) -> dict[str, list[Row[Any]]]:
    """Every row of the catalog's tables by table name, as plain rows (no ORM identity), in the
    order the list endpoints answer: by id, prices in :data:`PRICE_ORDER`. Read them, and the
    version before them, in one transaction begun by
    :func:`service.db.engine.begin_consistent_read`: then the version and every row are of one
    database state. (In a transaction that could not be begun so, a Postgres READ COMMITTED one,
    each statement sees the commits made before it: rows read after the version are at least as
    new as it, never older, so a snapshot tagged with that version is read again at its next
    check after a write it missed.)"""
    out: dict[str, list[Row[Any]]] = {}
    for model, order in ((Gpu, (Gpu.id,)), (Provider, (Provider.id,)), (ModelPreset, (ModelPreset.id,)), (Price, PRICE_ORDER)):
        out[model.__tablename__] = list(session.execute(select(*model.__table__.columns).order_by(*order)))
    return out


def catalog_is_empty(session: Session) -> bool:
    return all(session.scalar(select(func.count()).select_from(m)) == 0 for m in (Gpu, Provider, Price, ModelPreset))


class IdempotencyRepository:
    """Stored answers of writes sent with an ``Idempotency-Key``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, key: str, now: dt.datetime) -> IdempotencyKey | None:
        """The key's stored answer, unless it has expired."""
        stmt = select(IdempotencyKey).where(IdempotencyKey.key == key, IdempotencyKey.expires_at > now)
        return self.session.scalars(stmt).first()

    def add(self, values: Mapping[str, Any], now: dt.datetime) -> None:
        """Store an answer under its key (an expired row of the same key is replaced); a live
        row of the same key, stored concurrently, raises IntegrityError at the flush."""
        expired = delete(IdempotencyKey).where(IdempotencyKey.key == values["key"], IdempotencyKey.expires_at <= now)
        self.session.execute(expired)
        self.session.add(IdempotencyKey(**values))
        self.session.flush()

    def purge(self, now: dt.datetime) -> int:
        """Delete every expired key; how many."""
        return self.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now)).rowcount
