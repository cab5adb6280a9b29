"""ORM models of the catalog: GPUs, providers, prices (append-only history) and model presets.

Every mutable row carries ``version``, bumped on each write; the API's ETag is built from it and
``If-Match`` writes are conditional updates on it (optimistic concurrency).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.core.architecture import ARCHITECTURE_FIELDS
from service.core.fields import Stored
from service.db.base import Base

SLUG = 64


class Versioned:
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Gpu(Versioned, Base):
    __tablename__ = "gpus"
    __table_args__ = (
        CheckConstraint("memory_bytes > 0", name="memory_positive"),
        CheckConstraint("memory_bandwidth_bytes_per_s > 0", name="bandwidth_positive"),
        CheckConstraint("gpus_per_node > 0", name="gpus_per_node_positive"),
        CheckConstraint("intra_node_bandwidth_bytes_per_s > 0", name="intra_node_bandwidth_positive"),
        CheckConstraint("inter_node_bandwidth_bytes_per_s > 0", name="inter_node_bandwidth_positive"),
        CheckConstraint("matmul_efficiency > 0 AND matmul_efficiency <= 1", name="matmul_efficiency_fraction"),
    )

    id: Mapped[str] = mapped_column(String(SLUG), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    memory_bandwidth_bytes_per_s: Mapped[int] = mapped_column(BigInteger)
    peak_tflops: Mapped[dict[str, Any]] = mapped_column(JSON)
    interconnect_bytes_per_s: Mapped[int | None] = mapped_column(BigInteger)  # total, both directions
    tdp_watts: Mapped[int | None] = mapped_column(Integer)
    form_factor: Mapped[str | None] = mapped_column(String(64))
    default_mfu: Mapped[float | None] = mapped_column(Float)
    # the cluster a planner assumes: GPUs sharing the fast link, and per-GPU bandwidths in ONE
    # direction (what ring-collective formulas take), nominal link rates
    gpus_per_node: Mapped[int | None] = mapped_column(Integer)
    intra_node_bandwidth_bytes_per_s: Mapped[int | None] = mapped_column(BigInteger)
    inter_node_bandwidth_bytes_per_s: Mapped[int | None] = mapped_column(BigInteger)
    intra_node_link: Mapped[str | None] = mapped_column(String(64))
    # fraction of the dense bf16 peak that large bf16 GEMMs reach (MAMF / peak)
    matmul_efficiency: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")


class Provider(Versioned, Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(SLUG), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str] = mapped_column(Text, default="")


class Price(Base):
    """One observed price. Rows are never updated: a new price is a new row, and the newest
    ``as_of`` (then the highest id) per GPU, provider and pricing kind is the current one."""

    __tablename__ = "prices"
    __table_args__ = (
        CheckConstraint("usd_per_gpu_hour >= 0", name="price_not_negative"),
        CheckConstraint("pricing IN ('on_demand', 'spot', 'reserved')", name="pricing_kind"),
        Index("ix_prices_lookup", "gpu_id", "provider_id", "pricing", "as_of"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gpu_id: Mapped[str] = mapped_column(ForeignKey("gpus.id", ondelete="RESTRICT"))
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"), index=True)
    pricing: Mapped[str] = mapped_column(String(16))
    usd_per_gpu_hour: Mapped[float] = mapped_column(Float)
    region: Mapped[str | None] = mapped_column(String(64))
    as_of: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _architecture_columns(stored: Stored) -> list[Column[Any]]:
    """The preset columns of the architecture fields stored as ``stored``, in their declared order
    (:data:`service.core.architecture.ARCHITECTURE_FIELDS`): an enum as a short string, a bool as a
    boolean, an int as an integer, a tuple as a JSON list; NOT NULL unless the field may be None or is stored nullable."""
    columns: list[Column[Any]] = []
    for f in ARCHITECTURE_FIELDS:
        if f.stored is not stored:
            continue
        if f.is_sequence:
            kind: Any = JSON()
        else:
            kind = String(16) if issubclass(f.kind, StrEnum) else Boolean() if f.kind is bool else Integer()
        columns.append(Column(f.name, kind, nullable=f.optional or stored is Stored.NULLABLE))
    return columns


class ModelPreset(Versioned, Base):
    """A stored model: its id, name and source, and the architecture fields it stores
    (:class:`~service.core.fields.Stored`): those every preset has, then the newer ones (migration
    0004), null where a preset does not use them. The columns of the architecture fields follow
    from their declaration; a new one needs a migration."""

    __tablename__ = "model_presets"
    __table__ = Table(
        __tablename__,
        Base.metadata,
        Column("id", String(SLUG), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("family", String(64), index=True),
        *_architecture_columns(Stored.ALWAYS),
        Column("reported_params", BigInteger),
        Column("source", Text, nullable=False),
        Column("notes", Text, nullable=False, default=""),
        *_architecture_columns(Stored.NULLABLE),
        Column("version", Integer, nullable=False, default=1),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        CheckConstraint("n_layers > 0 AND d_model > 0 AND n_heads > 0", name="positive_shape"),
    )

    id: Mapped[str]
    name: Mapped[str]
    family: Mapped[str | None]
    reported_params: Mapped[int | None]
    source: Mapped[str]
    notes: Mapped[str]


class CatalogVersion(Base):
    """One row (``id`` 1) whose ``version`` every catalog write bumps in its own transaction, so
    an instance holding a snapshot of the catalog learns with one primary-key read whether any
    instance has written since (:mod:`service.services.catalog_reader`)."""

    __tablename__ = "catalog_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IdempotencyKey(Base):
    """A catalog write's ``Idempotency-Key`` with the answer it got, stored in the write's own
    transaction: a retry with the key is answered from here instead of writing again, until
    ``expires_at`` (:mod:`service.services.writes`)."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of method, path, If-Match and body
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
