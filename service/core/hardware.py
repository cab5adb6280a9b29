"""One GPU type and its links as the time models see them: the :class:`Hardware` record, the
matmul roofline and the memory-bound rate of one GPU, the links' achievable bandwidths, and the
cost of the collectives over them.

Shared by the training step time (:mod:`service.core.steptime`, which re-exports these names) and
serving (:mod:`service.core.serving`). Ring collectives cost ``2(n-1)/n * S / B`` (all-reduce) or
``(n-1)/n * S / B`` (reduce-scatter, all-gather) plus a latency per hop (Patarasuk & Yuan 2009;
Thakur et al. 2005), with ``B`` the link's achievable bus bandwidth; a matrix multiply runs at the
sustained matmul rate or its memory roofline, whichever is longer (Williams et al. 2009).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.core.efficiency import KernelEfficiency, default_efficiency
from service.core.fields import keep_hash, kept_hash, restore_hashed

# Per-hop latency of a collective step: ~5 µs inside a node, ~10 µs across InfiniBand
# (NCCL's tuning model, src/graph/tuning.cc base latencies). NCCL uses trees at scale, so the
# hops grow with log2(n) (Sanders et al. 2009, two-tree broadcast/reduction).
INTRA_NODE_LATENCY_SECONDS = 5e-6
INTER_NODE_LATENCY_SECONDS = 10e-6


@dataclass(frozen=True, kw_only=True, slots=True)
class Hardware:
    """One GPU type in a cluster: dense peak of the training dtype, MAMF (the catalog's
    ``matmul_efficiency``), HBM size and bandwidth, and the two network tiers, per GPU and one
    direction; ``efficiency`` the kernel efficiencies (:mod:`service.core.efficiency`; None: the
    defaults from MAMF); ``fp8_peak_flops_per_s`` the dense FP8 peak (None: no FP8 tensor cores);
    ``bf16_peak_flops_per_s`` the dense 16-bit peak, which attention kernels compute at whatever the
    weights' format (None: ``peak_flops_per_s``; read by serving's attention core only)."""

    peak_flops_per_s: float
    matmul_efficiency: float
    memory_bytes: int
    memory_bandwidth_bytes_per_s: float
    gpus_per_node: int
    intra_node_bandwidth_bytes_per_s: float
    inter_node_bandwidth_bytes_per_s: float
    efficiency: KernelEfficiency | None = None
    fp8_peak_flops_per_s: float | None = None
    bf16_peak_flops_per_s: float | None = None
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    # hashed once (every cached formula hashes its hardware): service.core.fields.keep_hash
    __post_init__, __hash__, __setstate__ = keep_hash, kept_hash, restore_hashed

    @property
    def kernels(self) -> KernelEfficiency:
        """The kernel efficiencies in force: the given ones, else :func:`default_efficiency`."""
        return self.efficiency or default_efficiency(self.matmul_efficiency)


def ring_all_reduce_seconds(size_bytes: Any, n: Any, bandwidth: Any, latency: float) -> Any:
    """Ring all-reduce of ``size_bytes`` over ``n`` ranks: ``2(n-1)/n * S / B`` plus
    ``2*log2(n)`` latency hops (Patarasuk & Yuan 2009; formula sheet, "Parallel time"); 0 when
    ``n == 1``."""
    n = np.asarray(n, dtype=np.float64)
    hops = 2 * np.log2(np.maximum(n, 1.0))
    return np.where(n > 1, 2 * (n - 1) / n * size_bytes / bandwidth + hops * latency, 0.0)


def ring_gather_seconds(size_bytes: Any, n: Any, bandwidth: Any, latency: float) -> Any:
    """Reduce-scatter or all-gather of a ``size_bytes`` tensor over ``n`` ranks: half an
    all-reduce, ``(n-1)/n * S / B`` plus ``log2(n)`` latency hops; 0 when ``n == 1``."""
    n = np.asarray(n, dtype=np.float64)
    hops = np.log2(np.maximum(n, 1.0))
    return np.where(n > 1, (n - 1) / n * size_bytes / bandwidth + hops * latency, 0.0)


def all_to_all_seconds(size_bytes: Any, n: Any, bandwidth: Any, latency: float) -> Any:
    """All-to-all where each rank holds ``size_bytes`` and keeps ``1/n`` of it: ``(n-1)/n * S /
    B`` plus ``n - 1`` latencies (pairwise exchange, Thakur et al. 2005 §4.5)."""
    n = np.asarray(n, dtype=np.float64)
    return np.where(n > 1, (n - 1) / n * size_bytes / bandwidth + (n - 1) * latency, 0.0)


def expert_all_to_all_seconds(
    tokens: Any,
    experts_per_token: int,
    d_model: int,
    inner: Any,
    ep: Any,
    hw: Hardware,
    max_nodes: int | None = None,
    *,
    once_per_node: bool = True,
) -> Any:
    """Seconds per byte of element width for one dispatch (or combine) of ``tokens`` routed tokens,
    each to ``experts_per_token`` experts spread over ``ep`` ranks, ``inner`` GPUs apart (tensor x
    context parallel ranks; the group spans ``inner * ep`` GPUs).

    Inside one node it is a pairwise all-to-all over NVLink (Thakur et al. 2005 §4.5). Across nodes
    a token is sent once to each node holding one of its experts and forwarded inside that node
    over NVLink (DeepSeek-V3 §3.2.2; DeepEP's normal kernels): the scale-out link carries
    ``R = (N - 1)(1 - (1 - 1/N)^k)`` copies per token, the expected number of other nodes among
    ``N`` that ``k`` uniformly routed experts land on, while NVLink fans the ``k`` copies out; the
    two run at once, so the slower one sets the time (plus a latency per peer). Node-limited routing
    (``max_nodes``: DeepSeek-V3 §2.1.2 and §3.2.2, each token to at most M = 4 nodes) caps the
    nodes a token reaches at ``M``, of which ``(N - 1)/N`` are other nodes.

    ``once_per_node`` False is a plain all-to-all of the routed copies (NCCL ``all_to_all``,
    Megatron-Core's ``alltoall`` token dispatcher): each of the ``k`` copies whose expert sits on
    another node crosses the scale-out link on its own, ``k (N - 1)/N`` per token."""
    span = np.asarray(inner * ep, dtype=np.float64)
    nvlink, network = link_bandwidths(hw)
    n = np.asarray(ep, dtype=np.float64)
    fan_out = tokens * experts_per_token * d_model * (n - 1) / np.maximum(n, 1)
    nodes = np.maximum(span / hw.gpus_per_node, 1.0)
    remote = (nodes - 1) * (1 - (1 - 1 / nodes) ** experts_per_token)
    if max_nodes is not None:
        remote = np.minimum(remote, max_nodes * (nodes - 1) / nodes)
    if not once_per_node:
        remote = experts_per_token * (nodes - 1) / nodes
    inside = span <= hw.gpus_per_node
    across = np.maximum(tokens * d_model * remote / network, fan_out / nvlink) + (n - 1) * INTER_NODE_LATENCY_SECONDS
    within = fan_out / nvlink + (n - 1) * INTRA_NODE_LATENCY_SECONDS
    return np.where(n > 1, np.where(inside, within, across), 0.0)


def matmul_seconds(
    m: Any, k: Any, n: Any, hw: Hardware, element_bytes: int, *, fp8: bool = False, rate_factor: Any = 1.0,
    weight_bytes_per_element: float | None = None,
) -> Any:  # fmt: skip
    """An ``m x k`` by ``k x n`` matrix multiply: ``2mkn`` FLOPs at the sustained matmul rate
    (:mod:`service.core.efficiency`; the FP8 rate with ``fp8``, operands of one byte) times
    ``rate_factor`` (a shape's share of it: :func:`service.core.steptime_moe.grouped_gemm_factor`),
    or its operands and result through HBM, whichever is longer (roofline, Williams et al. 2009).
    ``weight_bytes_per_element``: the ``k x n`` operand's bytes a weight as stored, scales included
    (:func:`service.core.weight_format.bytes_per_weight`; None: the activations' width)."""
    eff = hw.kernels
    flops = 2.0 * m * k * n / rate_factor
    if fp8 and hw.fp8_peak_flops_per_s:
        rate, activation = hw.fp8_peak_flops_per_s * (eff.matmul_fp8 or eff.matmul), 1
    else:
        rate, activation = hw.peak_flops_per_s * eff.matmul, element_bytes
    weight = activation if weight_bytes_per_element is None else weight_bytes_per_element
    moved = activation * m * k + weight * k * n + element_bytes * m * n
    return np.maximum(flops / rate, moved / memory_rate(hw))


def link_bandwidths(hw: Hardware) -> tuple[float, float]:
    """Achievable collective bandwidth per GPU and direction inside a node and across nodes: the
    links' rates at NCCL's measured bus-bandwidth shares (:mod:`service.core.efficiency`)."""
    eff = hw.kernels
    return (hw.intra_node_bandwidth_bytes_per_s * eff.intra_node_collective,
            hw.inter_node_bandwidth_bytes_per_s * eff.inter_node_collective)  # fmt: skip


def memory_rate(hw: Hardware) -> float:
    """Bytes per second memory-bound kernels stream through HBM."""
    return hw.memory_bandwidth_bytes_per_s * hw.kernels.memory_bandwidth
