"""Workstation and consumer GPUs for fine-tuning questions: GeForce RTX 4090 and RTX 3090 (24 GB),
RTX A6000 and RTX 6000 Ada (48 GB), the cards QLoRA's 24/48 GB claims are about.

A store that already holds the catalog (it was seeded before this revision) receives the GPUs
below, frozen here as ``service/catalog/gpus.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A GPU id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot. No column changes. No prices: none is seeded for these cards.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from migrations.seeded import delete_unchanged, insert_missing

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GPUS = sa.table(
    "gpus",
    sa.column("id", sa.String),
    sa.column("vendor", sa.String),
    sa.column("name", sa.String),
    sa.column("memory_bytes", sa.BigInteger),
    sa.column("memory_bandwidth_bytes_per_s", sa.BigInteger),
    sa.column("peak_tflops", sa.JSON),
    sa.column("interconnect_bytes_per_s", sa.BigInteger),
    sa.column("tdp_watts", sa.Integer),
    sa.column("form_factor", sa.String),
    sa.column("default_mfu", sa.Float),
    sa.column("gpus_per_node", sa.Integer),
    sa.column("intra_node_bandwidth_bytes_per_s", sa.BigInteger),
    sa.column("inter_node_bandwidth_bytes_per_s", sa.BigInteger),
    sa.column("intra_node_link", sa.String),
    sa.column("matmul_efficiency", sa.Float),
    sa.column("source", sa.Text),
    sa.column("notes", sa.Text),
    sa.column("version", sa.Integer),
)

# the GPUs this revision adds (service/catalog/gpus.json at this revision, database columns only)
NEW_GPUS: list[dict] = [
    {
        "id": "rtx-4090",
        "vendor": "NVIDIA",
        "name": "NVIDIA GeForce RTX 4090 24GB",
        "memory_bytes": 25769803776,
        "memory_bandwidth_bytes_per_s": 1008000000000,
        "peak_tflops": {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2, "fp8": 330.3, "int8": 660.6},
        "interconnect_bytes_per_s": 64000000000,
        "tdp_watts": 450,
        "form_factor": "PCIe",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 32000000000,
        "inter_node_bandwidth_bytes_per_s": 1562500000,
        "intra_node_link": "PCIe Gen4 x16",
        "matmul_efficiency": None,
        "source": "NVIDIA Ada GPU Architecture whitepaper (v2.1), Appendix A, Table 2: GeForce RTX 4090, "
        "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. 24 GB GDDR6X, "
        "1,008 GB/s, 450 W, 128 SMs. Tensor rates dense (the whitepaper's sparse figures halved) and with "
        "FP32 accumulate, as training uses: GeForce cards run FP16/BF16 with FP32 accumulate at half the "
        "FP16-accumulate rate (330.3), FP8 likewise (660.6 with FP16 accumulate). TF32 82.6, INT8 660.6 "
        "TOPS. No NVLink, and GeForce drivers disable peer-to-peer transfers: GPUs exchange data through "
        "host memory. Cluster fields (nominal link rates, per GPU, ONE direction): no source describes a "
        "typical cluster of these cards; gpus_per_node 8 (8-GPU PCIe servers of this card are sold and "
        "rented; a workstation holds 2-4); intra_node 32 GB/s = PCIe Gen4 x16 each way; inter_node 1.5625 "
        "GB/s = a 100 Gb/s node network shared by 8 GPUs, an assumption. default_mfu and "
        "matmul_efficiency null: no published at-scale MFU or MAMF.",
    },
    {
        "id": "rtx-3090",
        "vendor": "NVIDIA",
        "name": "NVIDIA GeForce RTX 3090 24GB",
        "memory_bytes": 25769803776,
        "memory_bandwidth_bytes_per_s": 936000000000,
        "peak_tflops": {"fp32": 35.6, "tf32": 35.6, "bf16": 71.0, "fp16": 71.0, "fp8": None, "int8": 284.0},
        "interconnect_bytes_per_s": 64000000000,
        "tdp_watts": 350,
        "form_factor": "PCIe",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 32000000000,
        "inter_node_bandwidth_bytes_per_s": 1562500000,
        "intra_node_link": "PCIe Gen4 x16",
        "matmul_efficiency": None,
        "source": "NVIDIA Ampere GA102 GPU Architecture whitepaper (v2.0), Appendix A, Table 9: GeForce RTX 3090, "
        "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. 24 GB GDDR6X, 936 "
        "GB/s, 350 W, 82 SMs. Tensor rates dense (sparse figures halved) with FP32 accumulate: FP16/BF16 "
        "71 TFLOPS (142 with FP16 accumulate), TF32 35.6, INT8 284 TOPS; no FP8. An NVLink bridge joins "
        "two cards (112.5 GB/s both directions); between more cards, PCIe. Cluster fields (nominal link "
        "rates, per GPU, ONE direction): no source describes a typical cluster of these cards; "
        "gpus_per_node 8 (8-GPU PCIe servers of this card are sold and rented; a workstation holds 2-4); "
        "intra_node 32 GB/s = PCIe Gen4 x16 each way; inter_node 1.5625 GB/s = a 100 Gb/s node network "
        "shared by 8 GPUs, an assumption. default_mfu and matmul_efficiency null: no published at-scale "
        "MFU or MAMF.",
    },
    {
        "id": "rtx-a6000",
        "vendor": "NVIDIA",
        "name": "NVIDIA RTX A6000 48GB",
        "memory_bytes": 51539607552,
        "memory_bandwidth_bytes_per_s": 768000000000,
        "peak_tflops": {"fp32": 38.7, "tf32": 77.4, "bf16": 154.8, "fp16": 154.8, "fp8": None, "int8": 309.7},
        "interconnect_bytes_per_s": 64000000000,
        "tdp_watts": 300,
        "form_factor": "PCIe",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 32000000000,
        "inter_node_bandwidth_bytes_per_s": 1562500000,
        "intra_node_link": "PCIe Gen4 x16",
        "matmul_efficiency": None,
        "source": "NVIDIA RTX A6000 datasheet, https://www.nvidia.com/en-us/design-visualization/rtx-a6000/ ; "
        "NVIDIA Ampere GA102 GPU Architecture whitepaper (v2.0), Appendix A",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. 48 GB GDDR6 with "
        "ECC, 768 GB/s, 300 W, 84 SMs. The datasheet's 309.7 TFLOPS tensor figure is FP16 with sparsity: "
        "dense FP16/BF16 154.8 (professional cards keep the full rate with FP32 accumulate), TF32 77.4, "
        "INT8 309.7 TOPS; FP32 38.7; no FP8. The 48 GB card QLoRA's 65B fine-tune fits (Dettmers et al. "
        "2023). An NVLink bridge joins two cards (112.5 GB/s both directions); between more cards, PCIe. "
        "Cluster fields (nominal link rates, per GPU, ONE direction): no source describes a typical "
        "cluster of these cards; gpus_per_node 8 (8-GPU PCIe servers of this card are sold and rented; a "
        "workstation holds 2-4); intra_node 32 GB/s = PCIe Gen4 x16 each way; inter_node 1.5625 GB/s = a "
        "100 Gb/s node network shared by 8 GPUs, an assumption. default_mfu and matmul_efficiency null: "
        "no published at-scale MFU or MAMF.",
    },
    {
        "id": "rtx-6000-ada",
        "vendor": "NVIDIA",
        "name": "NVIDIA RTX 6000 Ada Generation 48GB",
        "memory_bytes": 51539607552,
        "memory_bandwidth_bytes_per_s": 960000000000,
        "peak_tflops": {"fp32": 91.1, "tf32": 182.1, "bf16": 364.2, "fp16": 364.2, "fp8": 728.5, "int8": 728.5},
        "interconnect_bytes_per_s": 64000000000,
        "tdp_watts": 300,
        "form_factor": "PCIe",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 32000000000,
        "inter_node_bandwidth_bytes_per_s": 1562500000,
        "intra_node_link": "PCIe Gen4 x16",
        "matmul_efficiency": None,
        "source": "NVIDIA RTX 6000 Ada Generation datasheet, "
        "https://www.nvidia.com/en-us/design-visualization/rtx-6000/ ; NVIDIA Ada GPU Architecture "
        "whitepaper (v2.1), Appendix A",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. 48 GB GDDR6 with "
        "ECC, 960 GB/s, 300 W, 142 SMs. The datasheet's 1,457 TFLOPS tensor figure is FP8 with sparsity: "
        "dense FP8 728.5, FP16/BF16 364.2 (full rate with FP32 accumulate), TF32 182.1, INT8 728.5 TOPS; "
        "FP32 91.1. No NVLink. Cluster fields (nominal link rates, per GPU, ONE direction): no source "
        "describes a typical cluster of these cards; gpus_per_node 8 (8-GPU PCIe servers of this card are "
        "sold and rented; a workstation holds 2-4); intra_node 32 GB/s = PCIe Gen4 x16 each way; "
        "inter_node 1.5625 GB/s = a 100 Gb/s node network shared by 8 GPUs, an assumption. default_mfu "
        "and matmul_efficiency null: no published at-scale MFU or MAMF.",
    },
]


def upgrade() -> None:
    insert_missing(GPUS, NEW_GPUS)


def downgrade() -> None:
    delete_unchanged("gpus", NEW_GPUS)
