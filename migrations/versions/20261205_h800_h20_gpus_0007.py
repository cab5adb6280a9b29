"""The export Hopper GPUs for China: H800 SXM (H100's compute with NVLink cut to 400 GB/s, the GPU
DeepSeek-V3 was trained on) and H20 (96 GB at 4.0 TB/s, full NVLink, a seventh of H100's compute).

A store that already holds the catalog (it was seeded before this revision) receives the GPUs
below, frozen here as ``service/catalog/gpus.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A GPU id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot. No column changes. No prices: none is seeded for these GPUs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from migrations.seeded import delete_unchanged, insert_missing

revision: str = "0007"
down_revision: str | None = "0006"
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
        "id": "h800-sxm",
        "vendor": "NVIDIA",
        "name": "NVIDIA H800 SXM5 80GB",
        "memory_bytes": 85899345920,
        "memory_bandwidth_bytes_per_s": 3350000000000,
        "peak_tflops": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5, "fp8": 1979.0, "int8": 1979.0},
        "interconnect_bytes_per_s": 400000000000,
        "tdp_watts": 700,
        "form_factor": "SXM5",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 200000000000,
        "inter_node_bandwidth_bytes_per_s": 50000000000,
        "intra_node_link": "NVLink 4",
        "matmul_efficiency": None,
        "source": "DeepSeek-AI, 'Insights into DeepSeek-V3: Scaling Challenges and Reflections on Hardware for AI "
        "Architectures' (ISCA 2025), §4.1 'Current Hardware Architecture': H800 SXM is Hopper like H100, "
        "NVLink reduced from 900 to 400 GB/s, eight 400G InfiniBand CX7 NICs per node, "
        "https://arxiv.org/abs/2505.09343 ; DeepSeek-V3 Technical Report, §3.1 (8 GPUs per node, NVLink "
        "and NVSwitch within, InfiniBand across) and §3.2.2 ('NVLink offers a bandwidth of 160 GB/s, "
        "roughly 3.2 times that of IB (50 GB/s)'), https://arxiv.org/abs/2412.19437 ; compute and "
        "memory: LMSYS Org / Ant Group, 'Together with SGLang: Best Practices for Serving DeepSeek-R1 on "
        "H20-96G' (2025-09-26), table 'Hardware Comparison: H20 vs. H800' (H800-80G: FP8 1979, BF16 989 "
        "TFLOPS, 80 GB, 3,352 GB/s, NVLink 400 GB/s, 8 x 400 Gb/s RDMA NICs per node), "
        "https://lmsys.org/blog/2025-09-26-sglang-ant-group/ ; measured links: deepseek-ai/DeepEP README "
        "(H800 ~160 GB/s NVLink, CX7 400 Gb/s ~50 GB/s RDMA), https://github.com/deepseek-ai/DeepEP",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. The export variant "
        "of H100 SXM for China (2023): the same GH100 compute and 80 GB HBM3, with NVLink and FP64 cut. "
        "NVIDIA publishes no H800 datasheet on its site (its AI Enterprise documentation lists the part); "
        "the figures are H100 SXM's, as Ant Group's H20/H800 table gives them: dense BF16/FP16 989.5, "
        "FP8/INT8 1,979, TF32 494.5 TFLOPS (H100 SXM's sparsity figures halved), FP32 67 (non-tensor); "
        "FP64 is cut too (DeepSeek ISCA 2025 §4.1; spec tables say about 1 TFLOPS), not represented. "
        "DeepSeek's DeepGEMM reaches up to 1,550 TFLOPS FP8 on H800 (deepseek-ai/DeepGEMM README), "
        "consistent with the full FP8 rate. HBM3 3.35 TB/s (Ant Group lists 3,352 GB/s). TDP 700 W as "
        "H100 SXM (from third-party spec tables; DeepSeek's papers give none). Interconnect: NVLink 4 cut "
        "to 400 GB/s total bidirectional (DeepSeek ISCA 2025 §4.1), against H100's 900. Cluster fields "
        "(nominal link rates, per GPU, ONE direction): gpus_per_node 8 (HGX H800 board; DeepSeek-V3 §3.1: "
        "8 GPUs per node on NVLink and NVSwitch); intra_node 200 GB/s = half of the 400 GB/s total; "
        "DeepSeek measures 160 GB/s in practice (V3 report §3.2.2; DeepEP: 153-158 GB/s in its 8-GPU "
        "dispatch and combine), which is the planner's 80 % of link bandwidth for collectives (0.8 x 200 "
        "= 160); inter_node 50 GB/s = one 400 Gb/s ConnectX-7 InfiniBand NIC per GPU (ISCA 2025 §4.1: "
        "eight per node; V3 §3.2.2: IB 50 GB/s). Scale-up is only 4x scale-out here (H100: 9x); "
        "DeepSeek-V3 answers it by training without tensor parallelism and sending each token to at most "
        "4 nodes (ISCA 2025 §4.1). default_mfu null: DeepSeek reports 2.788M H800 GPU-hours for V3 but no "
        "MFU. matmul_efficiency null: no published MAMF for H800 (Bekman's table has H100 SXM, the same "
        "die and tensor rates, at 0.80); the planner's documented default applies. No price: the V3 "
        "report's $2 per GPU-hour is its own assumption, not a quote.",
    },
    {
        "id": "h20",
        "vendor": "NVIDIA",
        "name": "NVIDIA H20 96GB",
        "memory_bytes": 103079215104,
        "memory_bandwidth_bytes_per_s": 4000000000000,
        "peak_tflops": {"fp32": 44.0, "tf32": 74.0, "bf16": 148.0, "fp16": 148.0, "fp8": 296.0, "int8": 296.0},
        "interconnect_bytes_per_s": 900000000000,
        "tdp_watts": 400,
        "form_factor": "SXM5 (HGX H20 8-GPU board)",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 450000000000,
        "inter_node_bandwidth_bytes_per_s": 25000000000,
        "intra_node_link": "NVLink 4",
        "matmul_efficiency": None,
        "source": "LMSYS Org / Ant Group, 'Together with SGLang: Best Practices for Serving DeepSeek-R1 on "
        "H20-96G' (2025-09-26), table 'Hardware Comparison: H20 vs. H800' (H20-96G: FP8 296, BF16 148 "
        "TFLOPS, 96 GB, 4,000 GB/s, NVLink 900 GB/s, 4 x 400 Gb/s RDMA NICs per node), "
        "https://lmsys.org/blog/2025-09-26-sglang-ant-group/ ; NVIDIA MIG User Guide, 'Supported GPUs' "
        "(H20: Hopper GH100, 96GB, 7 instances), "
        "https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-gpus.html ; 400 W, 8-way HGX, "
        "900 GB/s NVLink: NVIDIA's H20 specifications as reported by TweakTown, 'NVIDIA's tweaked H20 AI "
        "GPU enters mass production in Q2 2024' (January 2024), "
        "https://www.tweaktown.com/news/95224/nvidias-tweaked-h20-ai-gpu-enters-mass-production-in-q2-2024-destined-for-china/index.html",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. The export Hopper "
        "for China after the October 2023 rules stopped H800 (shipping from 2024): GH100 with most of its "
        "compute disabled (78 SMs reported from Geekbench, against H100 SXM's 132), but 96 GB HBM3 (6 x "
        "16 GiB stacks) at 4.0 TB/s and the full NVLink 4. NVIDIA publishes no H20 datasheet on its site. "
        "Tensor rates dense, as Ant Group's table gives them beside H800's dense 989/1979: BF16/FP16 148, "
        "FP8 296 TFLOPS, INT8 296 TOPS (the sheets reported in 2024 say the same; 148 is the 15 % of H100 "
        "they quote); TF32 74 and FP32 44 are from those reported sheets only, not checked against "
        "NVIDIA. A 141 GB HBM3e H20 (same compute) was reported on sale in 2025; not this row. "
        "Memory-bound decode is bounded by 4.0 TB/s (H100 SXM: 3.35), compute-bound prefill and training "
        "by 148 TFLOPS (H100 SXM: 989.5, 6.7x more): 37 FLOP per byte of HBM against H100's 295. "
        "Interconnect: NVLink 4, 18 links, 900 GB/s total bidirectional (450 GB/s each way). Cluster "
        "fields (nominal link rates, per GPU, ONE direction): gpus_per_node 8 (HGX H20 8-GPU board); "
        "intra_node 450 GB/s = 18 NVLink 4 links x 25 GB/s each way; inter_node 25 GB/s = 4 x 400 Gb/s "
        "RDMA NICs per 8-GPU node (Ant Group's production H20 serving nodes), 200 Gb/s per GPU; a node "
        "with one 400 Gb/s NIC per GPU has 50 GB/s (the request can override it). default_mfu and "
        "matmul_efficiency null: no published at-scale MFU or MAMF.",
    },
]


def upgrade() -> None:
    insert_missing(GPUS, NEW_GPUS)


def downgrade() -> None:
    delete_unchanged("gpus", NEW_GPUS)
