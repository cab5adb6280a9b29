"""The GPU cluster fields (GPUs per node, intra-/inter-node bandwidth per GPU one way, link name,
matmul efficiency): the seed data is complete and consistent, the store and the calculators'
reader return it, and migration 0002 backfills a catalog seeded before it existed."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from service.catalog import loader
from service.db.engine import build_engine
from service.db.migrate import downgrade, upgrade
from service.schemas.catalog import GpuFields
from service.services.catalog_reader import CatalogCache, CatalogReader
from tests.db.migration_files import migration_module

CLUSTER = (
    "gpus_per_node", "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s", "intra_node_link",
    "matmul_efficiency",
)  # fmt: skip
SEED = loader.gpus()
# the GPUs a store seeded before 0002 could hold (0006 brought the workstation cards later, 0007 H800 and H20,
# 0014 the V100 16GB and T4)
LATER = ("0006", "0007", "0014")
BEFORE_0006 = [k for k in SEED if k not in {row["id"] for rev in LATER for row in migration_module(rev).NEW_GPUS}]


BACKFILL = migration_module("0002").BACKFILL


# --- the seed data --------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu_id", sorted(SEED))
def test_every_seeded_gpu_has_the_cluster_fields(gpu_id: str) -> None:
    row = SEED[gpu_id]
    GpuFields.model_validate({k: v for k, v in row.items() if k != "id"})  # what the API would accept
    assert type(row["gpus_per_node"]) is int and row["gpus_per_node"] >= 1
    for field in ("intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s"):
        assert type(row[field]) is int and row[field] > 0, field  # bytes are integers
    assert row["intra_node_link"]
    assert row["intra_node_bandwidth_bytes_per_s"] > row["inter_node_bandwidth_bytes_per_s"]
    efficiency = row["matmul_efficiency"]
    assert efficiency is None or 0.5 <= efficiency <= 1
    # every number is explained: the notes spell out the cluster fields, and a measured
    # efficiency names its source
    assert "Cluster fields (nominal link rates, per GPU, ONE direction)" in row["notes"]
    if efficiency is None:
        assert "matmul_efficiency null" in row["notes"]
    else:
        assert "Bekman" in row["source"] and f"matmul_efficiency {efficiency:.2f}" in row["notes"]


@pytest.mark.parametrize("gpu_id", sorted(SEED))
def test_one_direction_is_half_the_total_interconnect(gpu_id: str) -> None:
    """``interconnect_bytes_per_s`` is both directions of the scale-up link; the new field is one.
    Gaudi's on-chip RoCE ports serve both scale-up (21) and scale-out (3), so there the two
    together make up the total."""
    row = SEED[gpu_id]
    one_way = row["intra_node_bandwidth_bytes_per_s"]
    if row["intra_node_link"].startswith("RoCE"):
        one_way += row["inter_node_bandwidth_bytes_per_s"]
    assert 2 * one_way == row["interconnect_bytes_per_s"]


def test_nvlink_is_an_order_of_magnitude_faster_than_the_network() -> None:
    nvlink = {k: g for k, g in SEED.items() if g["intra_node_link"].startswith("NVLink")}
    assert {"h100-sxm", "a100-80gb-sxm", "v100-32gb-sxm", "b200", "gb200", "h20"} <= nvlink.keys()
    export_limited = nvlink.pop("h800-sxm")  # NVLink cut to 400 GB/s both ways beside a 400 Gb/s NIC per GPU
    assert export_limited["intra_node_bandwidth_bytes_per_s"] == 4 * export_limited["inter_node_bandwidth_bytes_per_s"]
    for gpu_id, g in nvlink.items():
        assert g["intra_node_bandwidth_bytes_per_s"] >= 9 * g["inter_node_bandwidth_bytes_per_s"], gpu_id
    for gpu_id, g in SEED.items():
        if g["intra_node_link"].startswith("PCIe"):
            assert g["gpus_per_node"] == 8
            gen = re.match(r"PCIe Gen(\d) x16", g["intra_node_link"]).group(1)
            assert g["intra_node_bandwidth_bytes_per_s"] == {"3": 16e9, "4": 32e9, "5": 64e9}[gen], gpu_id  # nominal x16, one way


def test_reference_values() -> None:
    """Spot checks against the cited sources (exact: nominal link rates)."""
    cluster = {k: tuple(SEED[k][f] for f in CLUSTER) for k in SEED}
    assert cluster["a100-80gb-sxm"] == (8, 300e9, 25e9, "NVLink 3", 0.87)  # 12 x 25 GB/s; HDR 200 Gb/s; MAMF 271.2/312
    assert cluster["gb200"][:2] == (72, 900e9)  # one NVL72 NVLink domain, NVLink 5 18 x 50 GB/s
    assert cluster["v100-32gb-sxm"][2] == 4 * 100e9 / 8 / 8  # DGX-1: 4 x 100 Gb/s EDR for 8 GPUs
    assert cluster["a10g"][2] == 100e9 / 8 / 8  # g5.48xlarge: 100 Gbps for 8 GPUs
    assert cluster["tpu-v5e"][:3] == (4, 200e9, 6.4e12 / 256 / 8)  # 1,600 Gbps ICI; 6.4 Tbps DCN per 256 chips
    assert cluster["mi300x"][4] == pytest.approx(668.4 / 1307.4, abs=0.005)  # Bekman v2 MAMF
    # DeepSeek ISCA 2025 §4.1: H800 NVLink 900 -> 400 GB/s, eight 400G CX7 per node (V3 report §3.2.2 measures
    # 160 and 50 GB/s); Ant Group's H20 nodes: 900 GB/s NVLink, 4 x 400 Gb/s RDMA per 8 GPUs
    assert cluster["h800-sxm"][:3] == (8, 400e9 / 2, 8 * 400e9 / 8 / 8)
    assert cluster["h20"][:3] == (8, 900e9 / 2, 4 * 400e9 / 8 / 8)
    # the 16 GB V100 is the 32 GB part's SXM2 module (V100 datasheet) in the same DGX-1 node; T4: PCIe Gen3 x16 each
    # way, g4dn.metal's 100 Gbps for 8 GPUs = g4dn.12xlarge's 50 Gbps for 4 (AWS Batch GPU instance table)
    assert cluster["v100-16gb-sxm"] == cluster["v100-32gb-sxm"]
    assert cluster["t4"] == (8, 16e9, 100e9 / 8 / 8, "PCIe Gen3 x16", None) and 100e9 / 8 == 50e9 / 4


def test_the_migration_backfills_what_the_seed_holds() -> None:
    assert BACKFILL.keys() == set(BEFORE_0006)  # the GPUs seeded since came with their cluster fields
    for gpu_id, values in BACKFILL.items():
        assert values == tuple(SEED[gpu_id][f] for f in CLUSTER), gpu_id


# --- the store and the reader -----------------------------------------------------------------------


def test_the_seeded_store_and_the_reader_return_them(seeded_engine: Engine) -> None:
    gpus = Table("gpus", MetaData(), autoload_with=seeded_engine)
    with seeded_engine.connect() as connection:
        stored = {r.id: tuple(getattr(r, f) for f in CLUSTER) for r in connection.execute(select(gpus))}
    assert stored == {k: tuple(g[f] for f in CLUSTER) for k, g in SEED.items()}
    reader = CatalogReader(sessionmaker(bind=seeded_engine), CatalogCache(ttl_seconds=0))
    view = reader.gpu("h100-sxm")
    assert (view.gpus_per_node, view.intra_node_bandwidth_bytes_per_s, view.inter_node_bandwidth_bytes_per_s) == (
        8, 450_000_000_000, 50_000_000_000,
    )  # fmt: skip
    assert (view.interconnect_bytes_per_s, view.matmul_efficiency) == (900_000_000_000, 0.8)
    assert reader.gpu("tpu-v5p").matmul_efficiency is None


# --- migration 0002 on a catalog that existed before it ---------------------------------------------


def test_upgrade_backfills_rows_seeded_before_0002(backend: str, make_database) -> None:
    engine = build_engine(make_database(backend))
    try:
        upgrade(engine, "0001")
        metadata = MetaData()
        gpus, providers, prices = (Table(t, metadata, autoload_with=engine) for t in ("gpus", "providers", "prices"))
        assert "gpus_per_node" not in gpus.c
        old_columns = [c.name for c in gpus.c if c.name != "updated_at"]

        def old_row(gpu_id: str, **changes: object) -> dict:
            row = {k: SEED[gpu_id].get(k) for k in old_columns} | {"version": 1}
            # the text as it was before 0002, which only appended to it
            row["notes"] = row["notes"].split(" Cluster fields (")[0]
            row["source"] = re.split(r" ; (?:interconnect|inter-node|cluster|platform): ", row["source"])[0]
            return row | changes

        with engine.begin() as connection:
            connection.execute(insert(gpus), [old_row(k) for k in BEFORE_0006 if k not in ("h100-sxm", "mi300x")])
            connection.execute(insert(gpus), [
                old_row("h100-sxm", version=4),  # edited through the API, text untouched
                old_row("mi300x", notes="an operator's own note"),
                old_row("h100-sxm", id="my-gpu", name="not in the seed"),
            ])  # fmt: skip
            connection.execute(insert(providers), [{"id": "lambda", "name": "Lambda", "notes": "", "version": 1}])
            connection.execute(insert(prices), [{
                "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "on_demand", "usd_per_gpu_hour": 2.99,
                "as_of": dt.date(2026, 11, 1), "source": "test", "notes": "",
            }])  # fmt: skip

        upgrade(engine)  # prices reference gpus: the ALTERs must not rebuild the table

        gpus = Table("gpus", MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            rows = {r.id: r for r in connection.execute(select(gpus))}
            assert connection.execute(select(prices.c.gpu_id)).scalars().all() == ["h100-sxm"]
        assert set(rows) == set(SEED) | {"my-gpu"}  # 0006, 0007 and 0014 added the GPUs they bring
        for gpu_id in BEFORE_0006:
            seed, row = SEED[gpu_id], rows[gpu_id]
            assert tuple(getattr(row, f) for f in CLUSTER) == tuple(seed[f] for f in CLUSTER), gpu_id
            assert row.version == (5 if gpu_id == "h100-sxm" else 2), gpu_id  # ETags taken before no longer match
            assert row.source == seed["source"], gpu_id  # the sources of the new numbers
            if gpu_id != "mi300x":
                assert row.notes == seed["notes"], gpu_id
        assert rows["mi300x"].notes == "an operator's own note"  # edited text is kept (its source still updated)
        mine = rows["my-gpu"]
        assert [getattr(mine, f) for f in CLUSTER] == [None] * len(CLUSTER) and mine.version == 1

        downgrade(engine, "0001")  # with rows and a referencing price in place
        assert "gpus_per_node" not in {c["name"] for c in inspect(engine).get_columns("gpus")}
        with Session(engine) as session:
            assert session.execute(select(prices.c.gpu_id)).scalars().all() == ["h100-sxm"]
            assert len(session.execute(select(Table("gpus", MetaData(), autoload_with=engine))).all()) == len(BEFORE_0006) + 1
    finally:
        engine.dispose()
