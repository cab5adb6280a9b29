"""Throughput from a stated efficiency: the per-GPU FLOP/s an answer uses when it does not time the
run with the step-time model (the request's MFU or achieved TFLOP/s, the catalog's MFU, or the
service default), and the scaling efficiency applied on top."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core import cost
from service.errors import Unprocessable
from service.schemas import cost as s
from service.services.catalog_reader import GpuView

DEFAULT_MFU = 0.40  # Transformers Math 101 / formula sheet: 37-50 % is what good large runs reach


@dataclass(frozen=True)
class Rate:
    flops_per_s_per_gpu: float  # before scaling efficiency
    mfu: float | None
    assumptions: dict[str, Any]


def rate(gpu: GpuView, req: s.Throughput) -> Rate:
    """Per-GPU FLOP/s from the request's MFU (or the catalog's, or 0.40) and the GPU's peak."""
    if req.achieved_tflops_per_gpu is not None:
        flops = cost.achieved_flops_per_s(peak_tflops=None, mfu=None, achieved_tflops=req.achieved_tflops_per_gpu)
        return Rate(
            flops, None, {"achieved_tflops_per_gpu": req.achieved_tflops_per_gpu, "mfu_source": "explicit achieved TFLOP/s"}
        )
    peak = gpu.peak_tflops.get(req.dtype)
    if peak is None:
        known = ", ".join(k for k, v in gpu.peak_tflops.items() if v)
        raise Unprocessable.for_field("dtype", f"the catalog has no dense {req.dtype} peak for {gpu.id}; it has: {known}")
    if req.mfu is not None:
        mfu, source = req.mfu, "request"
    elif gpu.default_mfu is not None:
        mfu, source = gpu.default_mfu, f"catalog default for {gpu.id}"
    else:
        mfu, source = DEFAULT_MFU, "service default (no catalog MFU for this GPU)"
    flops = cost.achieved_flops_per_s(peak_tflops=peak, mfu=mfu, achieved_tflops=None)
    return Rate(flops, mfu, {"mfu": mfu, "mfu_source": source, "peak_tflops": peak, "peak_dtype": req.dtype})


def rate_or_error(gpu: GpuView, req: s.Throughput) -> Rate | Unprocessable:
    try:
        return rate(gpu, req)
    except Unprocessable as exc:
        return exc


def scaling_efficiency(req: s.Throughput) -> tuple[float, str]:
    """An explicit scaling efficiency, else 1: an MFU (catalog or request) is an at-scale figure
    that already holds the losses of communication and bubbles (formula sheet, "Compute")."""
    if req.scaling_efficiency is not None:
        return req.scaling_efficiency, "request"
    return 1.0, "none applied: an MFU is measured at its run's scale and already holds the losses of scale"
