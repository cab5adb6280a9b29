"""Catalog tables: GPUs, providers, prices (append-only history) and model presets.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 11:59:44.229824
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import refuse_dropping_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gpus",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_bandwidth_bytes_per_s", sa.BigInteger(), nullable=False),
        sa.Column("peak_tflops", sa.JSON(), nullable=False),
        sa.Column("interconnect_bytes_per_s", sa.BigInteger(), nullable=True),
        sa.Column("tdp_watts", sa.Integer(), nullable=True),
        sa.Column("form_factor", sa.String(length=64), nullable=True),
        sa.Column("default_mfu", sa.Float(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("memory_bandwidth_bytes_per_s > 0", name=op.f("ck_gpus_bandwidth_positive")),
        sa.CheckConstraint("memory_bytes > 0", name=op.f("ck_gpus_memory_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpus")),
    )
    with op.batch_alter_table("gpus", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gpus_vendor"), ["vendor"], unique=False)

    op.create_table(
        "model_presets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=True),
        sa.Column("n_layers", sa.Integer(), nullable=False),
        sa.Column("d_model", sa.Integer(), nullable=False),
        sa.Column("n_heads", sa.Integer(), nullable=False),
        sa.Column("n_kv_heads", sa.Integer(), nullable=False),
        sa.Column("d_head", sa.Integer(), nullable=False),
        sa.Column("d_ff", sa.Integer(), nullable=False),
        sa.Column("vocab_size", sa.Integer(), nullable=False),
        sa.Column("ffn", sa.String(length=16), nullable=False),
        sa.Column("norm", sa.String(length=16), nullable=False),
        sa.Column("bias", sa.Boolean(), nullable=False),
        sa.Column("qkv_bias", sa.Boolean(), nullable=False),
        sa.Column("tied_embeddings", sa.Boolean(), nullable=False),
        sa.Column("position", sa.String(length=16), nullable=False),
        sa.Column("max_seq_len", sa.Integer(), nullable=False),
        sa.Column("position_embedding_rows", sa.Integer(), nullable=True),
        sa.Column("n_experts", sa.Integer(), nullable=False),
        sa.Column("experts_per_token", sa.Integer(), nullable=False),
        sa.Column("parallel_attention", sa.Boolean(), nullable=False),
        sa.Column("norms_per_layer", sa.Integer(), nullable=False),
        sa.Column("embedding_norm", sa.Boolean(), nullable=False),
        sa.Column("reported_params", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("n_layers > 0 AND d_model > 0 AND n_heads > 0", name=op.f("ck_model_presets_positive_shape")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_presets")),
    )
    with op.batch_alter_table("model_presets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_presets_family"), ["family"], unique=False)

    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
    )
    op.create_table(
        "prices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gpu_id", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("pricing", sa.String(length=16), nullable=False),
        sa.Column("usd_per_gpu_hour", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("pricing IN ('on_demand', 'spot', 'reserved')", name=op.f("ck_prices_pricing_kind")),
        sa.CheckConstraint("usd_per_gpu_hour >= 0", name=op.f("ck_prices_price_not_negative")),
        sa.ForeignKeyConstraint(["gpu_id"], ["gpus.id"], name=op.f("fk_prices_gpu_id_gpus"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_prices_provider_id_providers"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prices")),
    )
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.create_index("ix_prices_lookup", ["gpu_id", "provider_id", "pricing", "as_of"], unique=False)
        batch_op.create_index(batch_op.f("ix_prices_provider_id"), ["provider_id"], unique=False)


def downgrade() -> None:
    refuse_dropping_tables(("prices", "providers", "model_presets", "gpus"), revision=revision)
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prices_provider_id"))
        batch_op.drop_index("ix_prices_lookup")

    op.drop_table("prices")
    op.drop_table("providers")
    with op.batch_alter_table("model_presets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_presets_family"))

    op.drop_table("model_presets")
    with op.batch_alter_table("gpus", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gpus_vendor"))

    op.drop_table("gpus")
