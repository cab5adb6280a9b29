"""Two GPUs that mixed-cluster and budget plans ask about: the 16 GB Tesla V100 SXM2 (the V100 of AWS P3
and GCP N1 nodes, the 32 GB part's compute with half its memory; Sailor, SOSP'25, plans A100-40GB beside
V100-16GB) and the T4 (Turing, 16 GB GDDR6 at 320 GB/s, 65 TFLOPS FP16, 70 W, PCIe only; Metis, ATC'24,
plans over T4s). Neither has bf16 tensor cores.

A store that already holds the catalog (it was seeded before this revision) receives the GPUs
below, frozen here as ``service/catalog/gpus.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A GPU id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot. No column changes. No prices: none is seeded for these GPUs.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from migrations.seeded import delete_unchanged, insert_missing

revision: str = "0014"
down_revision: str | None = "0013"
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
        "id": "v100-16gb-sxm",
        "vendor": "NVIDIA",
        "name": "NVIDIA Tesla V100 SXM2 16GB",
        "memory_bytes": 17179869184,
        "memory_bandwidth_bytes_per_s": 900000000000,
        "peak_tflops": {"fp32": 15.7, "tf32": None, "bf16": None, "fp16": 125.0, "fp8": None, "int8": None},
        "interconnect_bytes_per_s": 300000000000,
        "tdp_watts": 300,
        "form_factor": "SXM2",
        "default_mfu": 0.25,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 150000000000,
        "inter_node_bandwidth_bytes_per_s": 6250000000,
        "intra_node_link": "NVLink 2",
        "matmul_efficiency": None,
        "source": "NVIDIA Tesla V100 GPU Datasheet, https://www.nvidia.com/en-us/data-center/v100/ (V100 SXM2: 32/16 GB"
        " HBM2, 900 GB/s, 125 TFLOPS tensor, 15.7 TFLOPS FP32, 300 W, NVLink 300 GB/s) ; NVIDIA Developer "
        "Blog, 'Programming Tensor Cores in CUDA 9' (Tesla V100: up to 125 Tensor TFLOPS), "
        "https://developer.nvidia.com/programming-tensor-cores-cuda-9-0 ; io-tech.fi, 'NVIDIA esitteli Tesla "
        "V100 PCI Express -kiihdyttimen' (2017: the PCIe V100's 16 GB of HBM2, 4 x 4 GB at 1.75 Gbps on 4,096"
        " bits = 900 GB/s), https://www.io-tech.fi/uutinen/nvidia-esitteli-tesla-v100-pci-express-kiihdyttime"
        "n-tieteelliseen-laskentaan/ ; cloud nodes: AWS News Blog, 'New - Amazon EC2 Instances with Up to 8 "
        "NVIDIA Tesla V100 GPUs (P3)' (2017-10: p3.16xlarge, 8 x V100 with 16 GiB each, NVLink 300 GBps, 25 "
        "Gbps network; per V100 125 TFLOPS mixed precision, 15.7 FP32), read in InfoQ's Chinese translation, "
        "https://infoq.cn/article/j629I8X512fg8tuKd6ke ; Google Cloud, 'Networking and GPU machines' (N1 "
        "instances with T4 or V100 GPUs: up to 100 Gbps), "
        "https://cloud.google.com/compute/docs/gpus/gpu-network-bandwidth ; interconnect: NVIDIA DGX-1 with "
        "Tesla V100 System Architecture whitepaper and DGX-1 datasheet (4 x 100 Gb/s EDR InfiniBand per 8-GPU"
        " node)",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. The datasheet figures "
        "are from memory of NVIDIA's page (not re-fetched); 125 TFLOPS is confirmed by NVIDIA's CUDA 9 post, "
        "125 and 15.7 by the AWS P3 launch post, 16 GB at 900 GB/s by the PCIe card's launch coverage (the "
        "same HBM2). 16 GB HBM2 (4 x 4 GiB stacks) at 900 GB/s: the same GV100 SXM2 module as v100-32gb-sxm "
        "with half the memory (the datasheet gives both capacities in one column, every other figure shared)."
        " The 16 GB part came first (2017: DGX-1 with V100, AWS P3, GCP N1); the 32 GB part followed in 2018 "
        "(from memory). FP16 125 TFLOPS is the datasheet 'Tensor Performance' (640 tensor cores x 64 FMA x 2 "
        "x 1.53 GHz boost; Volta has no sparsity, so not halved); FP32 15.7. No TF32/BF16/FP8 tensor support "
        "(null): a mixed_bf16 plan on it is refused with the reason; train in mixed_fp16. int8 null: the "
        "datasheet gives no INT8 figure; DP4A gives roughly 4x FP32 (~62 TOPS), not a tensor-core rate. "
        "NVLink 2: 6 links x 50 GB/s = 300 GB/s total bidirectional. default_mfu 0.25: same source as "
        "v100-32gb-sxm (Megatron-LM, Shoeybi et al. 2019: ~30 TFLOPS/GPU on 512 V100s, about 24% of 125, from"
        " memory); the smaller memory may force more recomputation or parallelism. Cluster fields (nominal "
        "link rates, per GPU, ONE direction): gpus_per_node 8 (DGX-1/HGX-1 hybrid cube-mesh: each GPU links "
        "directly to 4 of its 7 peers, so the aggregate overstates all-to-all rates; p3.16xlarge and GCP N1 "
        "with 8 V100 are 8-GPU nodes too); intra_node 150 GB/s = 6 NVLink 2 links x 25 GB/s each way; "
        "inter_node 6.25 GB/s = DGX-1's 4 x 100 Gb/s EDR InfiniBand per 8 GPUs (50 Gb/s per GPU), as "
        "v100-32gb-sxm. Cloud V100 nodes have much less: p3.16xlarge 25 Gbps per 8 GPUs (0.39 GB/s per GPU), "
        "GCP N1 up to 100 Gbps (1.5625 GB/s per GPU); a request or a pool states its own "
        "inter_node_bandwidth_bytes_per_s for them. matmul_efficiency null: no published MAMF for V100 (and "
        "no bf16); the planner's documented default applies. No price row: the v100-32gb-sxm price notes "
        "quote p3.16xlarge (this GPU) only to tell the two apart.",
    },
    {
        "id": "t4",
        "vendor": "NVIDIA",
        "name": "NVIDIA T4 16GB",
        "memory_bytes": 17179869184,
        "memory_bandwidth_bytes_per_s": 320000000000,
        "peak_tflops": {"fp32": 8.1, "tf32": None, "bf16": None, "fp16": 65.0, "fp8": None, "int8": 130.0},
        "interconnect_bytes_per_s": 32000000000,
        "tdp_watts": 70,
        "form_factor": "PCIe",
        "default_mfu": None,
        "gpus_per_node": 8,
        "intra_node_bandwidth_bytes_per_s": 16000000000,
        "inter_node_bandwidth_bytes_per_s": 1562500000,
        "intra_node_link": "PCIe Gen3 x16",
        "matmul_efficiency": None,
        "source": "NVIDIA T4 Tensor Core GPU Datasheet, https://www.nvidia.com/en-us/data-center/tesla-t4/ (FP32 8.1 "
        "TFLOPS, mixed-precision FP16/FP32 65 TFLOPS, INT8 130 TOPS, INT4 260 TOPS, 16 GB GDDR6 at 320+ GB/s,"
        " 70 W, PCIe Gen3 x16) ; launch coverage: Tom's Hardware, 'Nvidia Announces Tesla T4 GPUs With Turing"
        " Architecture' (2018-09: 16 GB GDDR6, 320 Turing Tensor Cores, 2,560 CUDA cores, "
        "FP32/FP16/INT8/INT4), https://www.tomshardware.co.uk/nvidia-tesla-t4-turing-gpu,news-59152.html ; "
        "Geektopia, 'Nvidia presenta la nueva Tesla T4 basada en Turing orientada a inteligencia artificial' "
        "(2018-09-13: 8.1 TFLOPS FP32, 65 TFLOPS FP16, 130 TOPS INT8, 260 TOPS INT4), https://geektopia.es/es"
        "/technology/2018/09/13/noticias/nvidia-presenta-la-nueva-tesla-t4-basada-en-turing-orientada-a-intel"
        "igencia-artificial.html ; spec table: sysrqmts.com, 'NVIDIA Tesla T4' (TU104, 40 SMs, 1,590 MHz "
        "boost, 256-bit GDDR6 at 10 Gbps = 320.0 GB/s, FP16 65.13 and FP32 8.141 TFLOPS, 70 W, PCIe 3.0 x16),"
        " https://sysrqmts.com/en/gpus/nvidia/tesla/t4 ; cluster: AWS Batch User Guide, 'Run GPU jobs' "
        "instance table (g4dn.12xlarge: 4 x T4, 50 Gbps), "
        "https://docs.aws.amazon.com/batch/latest/userguide/gpu-jobs.html ; AWS SDK for PHP release 3.140.1 "
        "(2020-06: 'New G4dn.metal bare metal instance with 8 NVIDIA T4 GPUs'), "
        "https://github.com/aws/aws-sdk-php/releases/tag/3.140.1 ; Google Cloud, 'Networking and GPU "
        "machines' (N1 instances with T4 or V100 GPUs: up to 100 Gbps), "
        "https://cloud.google.com/compute/docs/gpus/gpu-network-bandwidth",
        "notes": "memory_bytes = vendor capacity interpreted as GiB (2^30), because HBM/GDDR parts are built from "
        "binary-sized stacks/chips; this is closer to what drivers report than N*10^9. 16 GB GDDR6 on a "
        "256-bit bus at 10 Gbps = 320 GB/s (8 x 2 GiB chips); drivers report about 15,100 MiB with ECC on. "
        "Turing (TU104, 40 SMs) inference card. The datasheet figures are from memory of NVIDIA's page (not "
        "re-fetched), each confirmed by the launch coverage and a spec table (sources); they are dense "
        "(Turing has no structured sparsity) and match the clocks: 320 tensor cores x 64 FMA x 2 x 1.59 GHz "
        "boost = 65.1 TFLOPS FP16 with FP32 accumulate; FP32 2,560 cores x 2 x 1.59 GHz = 8.1; INT8 130 TOPS "
        "(2x FP16); INT4 260 TOPS has no catalog field. No TF32/BF16/FP8 tensor support (null): train in "
        "mixed_fp16 (a mixed_bf16 plan is refused with the reason); serving computes its 16-bit matmuls at "
        "the fp16 peak. TDP 70 W, the datasheet's board power (bus-powered, passive, single-slot low-profile;"
        " the launch coverage said 75 W). No NVLink: interconnect is PCIe Gen3 x16, ~32 GB/s bidirectional. "
        "default_mfu null: inference part, no large-LLM training MFU source. Cluster fields (nominal link "
        "rates, per GPU, ONE direction): gpus_per_node 8 (g4dn.metal, the largest G4dn; g4dn.12xlarge and GCP"
        " N1 with T4 have 4, a request or a pool states gpus_per_node 4 for them); intra_node 16 GB/s = PCIe "
        "Gen3 x16 each way (15.75 GB/s after 128b/130b encoding; no NVLink); inter_node 1.5625 GB/s = "
        "g4dn.metal's 100 Gbps (from memory) / 8 GPUs, the same per GPU as g4dn.12xlarge's 50 Gbps / 4 (AWS "
        "Batch table). matmul_efficiency null: no published MAMF for T4. No price row (none seeded).",
    },
]


def upgrade() -> None:
    insert_missing(GPUS, NEW_GPUS)


def downgrade() -> None:
    delete_unchanged("gpus", NEW_GPUS)
