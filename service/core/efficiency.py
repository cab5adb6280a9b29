"""Kernel efficiency: what fraction of a GPU's nominal rates each class of kernel reaches.

One layer, shared by the training step time (:mod:`service.core.steptime`) and serving
(:mod:`service.core.serving`). A step is made of four kinds of work, and each runs at its own
achieved rate on each GPU:

- **matmuls**: a sustained fraction of the dense peak. The maximum achievable matmul FLOPS
  (MAMF: the best large-GEMM rate of a sweep, Bekman, "Machine Learning Engineering",
  accelerator chapter) is an upper bound; the GEMMs of a real step (per-GPU shapes, fused
  epilogues, wave quantization, clocks held down by the power limit under sustained load) reach
  less. Where a per-GPU value was fitted it says on which published rows
  (``service/catalog/kernel_efficiency.json``); elsewhere MAMF times
  :data:`DEFAULT_SUSTAINED_FRACTION_OF_MAMF` (fitted on A100 rows).
- **attention**: FlashAttention-style kernels do not run at the matmul rate, and their rate
  grows with the sequence length (fixed per-block overheads; the causal mask's diagonal blocks)
  and the head dimension. Curves of measured forward and backward TFLOP/s by sequence length for
  each implementation (FlashAttention-2, Dao 2023 §4.1; FlashAttention-3 and cuDNN, Shah et al.
  2024 §4.1, Figures 5-6) are interpolated in ``log2`` of the length and of the head dimension,
  as fractions of the GPU's dense peak.
- **memory-bound kernels** (norms, element-wise, optimizer): a fraction of the HBM bandwidth
  (STREAM-like measurements per GPU).
- **collectives**: NCCL's bus bandwidth as a fraction of the link rate, inside a node (NVLink,
  xGMI) and across nodes (InfiniBand, RoCE), as nccl-tests measure it.
- **grouped GEMMs** (a mixture's experts): each output tile pays a fixed cost (filling the
  pipeline, the epilogue) worth ``K0`` of its reduction loop, so a GEMM reducing over ``K`` runs at
  ``K / (K + K0)`` of its long-``K`` rate (:mod:`service.core.steptime_moe`); ``K0`` per dtype from
  published shape sweeps. 0: no shape term.
- **host**: a Mixture-of-Experts layer launches many small kernels and, dropless, waits once per
  forward on its token counts; the seconds one layer's forward and backward take on the host
  (per micro-batch) floor the layer's time. A fine-tune's adapted layer, run eagerly (each module
  launched from Python, as NeMo and PEFT run it without CUDA graphs), issues its kernels no faster
  than the host does: its own floor, which CUDA graphs remove (one launch a layer). 0: no floor.

Every value is an input: the catalog's per-GPU value, or a request's override.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.core.errors import InvalidSpecError

# The A100-fitted fraction of MAMF a step's GEMMs sustain (0.75 x 0.87 = 0.65 of peak, ~204 TFLOP/s:
# centres Narayanan et al. 2021 Table 1, LLaMA and Llama 2 on A100; Anthony et al. 2024, "The Case
# for Co-Designing Model Architectures with Hardware" §5: transformer GEMMs at 65-80 % of peak).
# Used for a GPU with no fitted value of its own.
DEFAULT_SUSTAINED_FRACTION_OF_MAMF = 0.75
# Matmul efficiency when the catalog has none: the median of measured MAMF over current
# accelerators (Bekman, accelerator chapter).
DEFAULT_MATMUL_EFFICIENCY = 0.75
# FlashAttention-2 reaches 50-73 % of A100 peak forward and less backward (Dao 2023, §4.1) where
# cuBLAS GEMMs reach ~86 %: without a measured curve, attention runs at 0.75 of the matmul rate.
DEFAULT_ATTENTION_RATIO = 0.75
# Streaming kernels reach ~90 % of HBM bandwidth (Jia et al. 2018, "Dissecting the NVIDIA Volta GPU
# Architecture via Microbenchmarking" §3: 850 of 900 GB/s).
DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY = 0.9
# nccl-tests on DGX A100 report ~230-240 GB/s bus bandwidth of NVLink 3's 300 GB/s per direction,
# and ~20-23 GB/s of a 200 Gb/s HDR port (NVIDIA, nccl-tests PERFORMANCE.md): about 0.8.
DEFAULT_COLLECTIVE_EFFICIENCY = 0.8
MAX_BANDWIDTH_BYTES_PER_S = 100e12  # 100 TB/s per GPU and direction: above any link or HBM built


@dataclass(frozen=True, kw_only=True, slots=True)
class AttentionCurve:
    """Measured attention rates of one implementation on one GPU family: for each head dimension,
    forward and backward fractions of the dense peak (causal, FLOPs counting the unmasked half)
    at each sequence length."""

    name: str
    seq_lens: tuple[float, ...]
    head_dims: tuple[float, ...]
    forward: tuple[tuple[float, ...], ...]  # [head_dim][seq_len]
    backward: tuple[tuple[float, ...], ...]
    source: str = ""

    def fractions(self, seq_len: Any, head_dim: float) -> tuple[Any, Any]:
        """(forward, backward) fractions of peak at ``seq_len`` keys (a scalar or an array) and
        ``head_dim``, interpolated in log2 of both and held at the measured ends."""
        xs = np.log2(np.asarray(self.seq_lens, dtype=np.float64))
        x = np.log2(np.maximum(np.asarray(seq_len, dtype=np.float64), 1.0))
        ds = np.log2(np.asarray(self.head_dims, dtype=np.float64))
        d = float(np.clip(math.log2(max(head_dim, 1.0)), ds[0], ds[-1]))
        upper = int(np.searchsorted(ds, d)) if len(ds) > 1 else 0
        lower = max(upper - 1, 0)
        weight = 0.0 if upper == lower else (d - ds[lower]) / (ds[upper] - ds[lower])

        def at(rows: tuple[tuple[float, ...], ...]) -> Any:
            low, high = np.interp(x, xs, rows[lower]), np.interp(x, xs, rows[upper])
            return (1 - weight) * low + weight * high

        return at(self.forward), at(self.backward)


@dataclass(frozen=True, kw_only=True, slots=True)
class KernelEfficiency:
    """Achieved fractions of one GPU's nominal rates (module docstring). ``attention`` None runs
    the attention core at :data:`DEFAULT_ATTENTION_RATIO` of the matmul rate; ``attention_override``
    is a flat fraction of peak for both passes instead of any curve; ``matmul_fp8`` the sustained
    fraction of the FP8 dense peak (None: the same as bf16's); the grouped-GEMM and host terms
    as in the module docstring."""

    matmul: float
    matmul_fp8: float | None = None
    attention: AttentionCurve | None = None
    attention_override: float | None = None
    memory_bandwidth: float = DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY
    intra_node_collective: float = DEFAULT_COLLECTIVE_EFFICIENCY
    inter_node_collective: float = DEFAULT_COLLECTIVE_EFFICIENCY
    grouped_gemm_fixed_k: float = 0.0  # K0 of a 16-bit grouped GEMM's tiles (module docstring)
    grouped_gemm_fixed_k_fp8: float = 0.0  # and of an FP8 one
    moe_layer_host_seconds: float = 0.0  # host seconds of one MoE layer's forward + backward, per micro-batch
    adapter_layer_host_seconds: float = 0.0  # and of one adapted (LoRA) layer's, run eagerly
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def attention_fractions(self, seq_len: Any, head_dim: float) -> tuple[Any, Any]:
        """(forward, backward) fractions of the dense peak the attention core reaches."""
        if self.attention_override is not None:
            return self.attention_override, self.attention_override
        if self.attention is None:
            flat = self.matmul * DEFAULT_ATTENTION_RATIO
            return flat, flat
        return self.attention.fractions(seq_len, head_dim)


def default_efficiency(mamf: float | None) -> KernelEfficiency:
    """For a GPU with no per-GPU values: MAMF (or :data:`DEFAULT_MATMUL_EFFICIENCY`) times the
    A100-fitted :data:`DEFAULT_SUSTAINED_FRACTION_OF_MAMF`, and the generic defaults."""
    return KernelEfficiency(matmul=(mamf or DEFAULT_MATMUL_EFFICIENCY) * DEFAULT_SUSTAINED_FRACTION_OF_MAMF)


MIN_EFFICIENCY = 0.001  # below 0.1 % of a peak no kernel is worth timing, and a denormal overflows the times


def check_fraction(name: str, value: float | None) -> None:
    """An efficiency is in [0.001, 1]."""
    if value is not None and not (math.isfinite(value) and MIN_EFFICIENCY <= value <= 1):
        raise InvalidSpecError(name, f"{value} is not an efficiency: must be in [{MIN_EFFICIENCY}, 1]")


def check_bandwidth(name: str, value: float | None) -> None:
    """A bandwidth is positive and below :data:`MAX_BANDWIDTH_BYTES_PER_S`."""
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_BANDWIDTH_BYTES_PER_S):
        raise InvalidSpecError(name, f"{value:g} B/s is not a bandwidth: must be in (0, {MAX_BANDWIDTH_BYTES_PER_S:g}]")


def with_overrides(base: KernelEfficiency, **overrides: float | None) -> KernelEfficiency:
    """``base`` with the given fractions replaced (None keeps the base value); each checked to be
    in [0.001, 1], naming ``efficiency.<field>``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in given.items():
        if name not in {"matmul", "matmul_fp8", "attention_override", "memory_bandwidth", "intra_node_collective",
                        "inter_node_collective"}:  # fmt: skip
            raise InvalidSpecError(f"efficiency.{name}", "unknown efficiency")
        check_fraction(f"efficiency.{'attention_core' if name == 'attention_override' else name}", value)
    if not given:
        return base
    fields = {name: getattr(base, name) for name in KernelEfficiency.__dataclass_fields__}
    return KernelEfficiency(**(fields | given))
