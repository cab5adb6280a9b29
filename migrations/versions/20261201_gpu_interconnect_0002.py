"""GPU cluster fields: GPUs per node, intra- and inter-node bandwidth per GPU (one direction), the
intra-node link, and the matmul efficiency (MAMF / dense bf16 peak); backfilled for the seeded GPUs.

Plain ``ALTER TABLE ... ADD/DROP COLUMN`` on both backends (``recreate="never"``): rebuilding
``gpus`` on SQLite would drop a table that ``prices`` references, which foreign keys forbid. The
checks are column constraints, which SQLite accepts in ``ADD COLUMN``.

The backfill numbers are frozen here (the seed file may change later; this migration may not).
Their sources are in the seed rows' ``source`` and ``notes``: a backfilled row whose ``source``
or ``notes`` is still the seed's text of before this revision gets the seed's current text.
Each backfilled row's ``version`` is bumped, so ETags taken before the upgrade no longer match.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import refuse_dropping

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column]:
    """The new columns, built afresh for each use (a Column belongs to one table)."""
    return [
        sa.Column(
            "gpus_per_node", sa.Integer(),
            sa.CheckConstraint("gpus_per_node > 0", name=op.f("ck_gpus_gpus_per_node_positive")), nullable=True,
        ),
        sa.Column(
            "intra_node_bandwidth_bytes_per_s", sa.BigInteger(),
            sa.CheckConstraint("intra_node_bandwidth_bytes_per_s > 0", name=op.f("ck_gpus_intra_node_bandwidth_positive")),
            nullable=True,
        ),
        sa.Column(
            "inter_node_bandwidth_bytes_per_s", sa.BigInteger(),
            sa.CheckConstraint("inter_node_bandwidth_bytes_per_s > 0", name=op.f("ck_gpus_inter_node_bandwidth_positive")),
            nullable=True,
        ),
        sa.Column("intra_node_link", sa.String(length=64), nullable=True),
        sa.Column(
            "matmul_efficiency", sa.Float(),
            sa.CheckConstraint(
                "matmul_efficiency > 0 AND matmul_efficiency <= 1", name=op.f("ck_gpus_matmul_efficiency_fraction")
            ),
            nullable=True,
        ),
    ]  # fmt: skip


# id: (gpus_per_node, intra-node bytes/s per GPU one way, inter-node bytes/s per GPU one way,
#      intra-node link, matmul efficiency) -- as service/catalog/gpus.json at this revision
BACKFILL: dict[str, tuple[int, int, int, str, float | None]] = {
    "h100-sxm": (8, 450_000_000_000, 50_000_000_000, "NVLink 4", 0.80),
    "h100-pcie": (8, 64_000_000_000, 25_000_000_000, "PCIe Gen5 x16", None),
    "h200-sxm": (8, 450_000_000_000, 50_000_000_000, "NVLink 4", 0.80),
    "a100-80gb-sxm": (8, 300_000_000_000, 25_000_000_000, "NVLink 3", 0.87),
    "a100-40gb-sxm": (8, 300_000_000_000, 25_000_000_000, "NVLink 3", 0.87),
    "v100-32gb-sxm": (8, 150_000_000_000, 6_250_000_000, "NVLink 2", None),
    "a10g": (8, 32_000_000_000, 1_562_500_000, "PCIe Gen4 x16", None),
    "l4": (8, 32_000_000_000, 1_562_500_000, "PCIe Gen4 x16", None),
    "l40s": (8, 32_000_000_000, 6_250_000_000, "PCIe Gen4 x16", None),
    "b200": (8, 900_000_000_000, 50_000_000_000, "NVLink 5", 0.78),
    "gb200": (72, 900_000_000_000, 50_000_000_000, "NVLink 5", 0.73),
    "mi250x": (4, 400_000_000_000, 25_000_000_000, "Infinity Fabric (xGMI)", 0.77),
    "mi300x": (8, 448_000_000_000, 50_000_000_000, "Infinity Fabric (xGMI)", 0.51),
    "mi325x": (8, 448_000_000_000, 50_000_000_000, "Infinity Fabric (xGMI)", 0.60),
    "tpu-v5e": (4, 200_000_000_000, 3_125_000_000, "ICI", None),
    "tpu-v5p": (4, 600_000_000_000, 6_250_000_000, "ICI", None),
    "gaudi2": (8, 262_500_000_000, 37_500_000_000, "RoCE v2 (on-chip 100 GbE)", 0.97),
    "gaudi3": (8, 525_000_000_000, 75_000_000_000, "RoCE v2 (on-chip 200 GbE)", 0.68),
}

GPUS = sa.table(
    "gpus",
    sa.column("id", sa.String),
    sa.column("source", sa.Text),
    sa.column("notes", sa.Text),
    sa.column("version", sa.Integer),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("gpus_per_node", sa.Integer),
    sa.column("intra_node_bandwidth_bytes_per_s", sa.BigInteger),
    sa.column("inter_node_bandwidth_bytes_per_s", sa.BigInteger),
    sa.column("intra_node_link", sa.String),
    sa.column("matmul_efficiency", sa.Float),
)


def upgrade() -> None:
    with op.batch_alter_table("gpus", recreate="never") as batch_op:
        for column in _columns():
            batch_op.add_column(column)
    _backfill()


def downgrade() -> None:
    names = [column.name for column in _columns()]
    # the backfilled values come back with the upgrade; a value the user stored would be lost
    restored = {gpu_id: dict(zip(names, values, strict=True)) for gpu_id, values in BACKFILL.items()}
    refuse_dropping("gpus", names, revision=revision, restored=restored)
    with op.batch_alter_table("gpus", recreate="never") as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)


def _backfill() -> None:
    for gpu_id, (per_node, intra, inter, link, efficiency) in BACKFILL.items():
        op.execute(
            GPUS.update()
            .where(GPUS.c.id == gpu_id)
            .values(
                gpus_per_node=per_node,
                intra_node_bandwidth_bytes_per_s=intra,
                inter_node_bandwidth_bytes_per_s=inter,
                intra_node_link=link,
                matmul_efficiency=efficiency,
                version=GPUS.c.version + 1,
                updated_at=sa.func.now(),
            )
        )
    if op.get_context().as_sql:
        return  # offline (--sql): no rows to read, so the texts stay as they are
    _backfill_texts()


def _backfill_texts() -> None:
    """Give seed rows whose ``source`` or ``notes`` nobody edited the seed's current text, which
    names the sources of the numbers above. A text is unedited when it is a prefix of the seed's
    (this revision only appended to both); an edited one is kept."""
    from service.catalog import loader  # only the seed rows' text

    seed = loader.gpus()
    connection = op.get_bind()
    rows = connection.execute(sa.select(GPUS.c.id, GPUS.c.source, GPUS.c.notes).where(GPUS.c.id.in_(list(BACKFILL))))
    for gpu_id, *texts in rows.all():
        if gpu_id not in seed:
            continue
        values = {
            name: seed[gpu_id][name]
            for name, stored in zip(("source", "notes"), texts, strict=True)
            if isinstance(seed[gpu_id].get(name), str) and seed[gpu_id][name].startswith(stored or "")
        }
        if values:
            connection.execute(GPUS.update().where(GPUS.c.id == gpu_id).values(**values))
