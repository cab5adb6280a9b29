"""Bytes per element of the number formats the formulas use.

fp32 4, bf16/fp16 2, fp8/int8 1, int4 0.5 bytes (IEEE 754 and the OCP FP8 spec; Transformers
Math 101, "Inference"). int4 packs two values per byte, so counts are rounded up to whole bytes.
"""

from __future__ import annotations

import math
from enum import StrEnum


class Dtype(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"


BYTES_PER_ELEMENT: dict[Dtype, float] = {
    Dtype.FP32: 4.0,
    Dtype.BF16: 2.0,
    Dtype.FP16: 2.0,
    Dtype.FP8: 1.0,
    Dtype.INT8: 1.0,
    Dtype.INT4: 0.5,
}


def tensor_bytes(elements: float, dtype: Dtype) -> int:
    """Bytes of ``elements`` values stored as ``dtype``, rounded up to a whole byte."""
    return math.ceil(elements * BYTES_PER_ELEMENT[dtype])


PEAK_KEY: dict[Dtype, str] = {
    Dtype.FP32: "fp32",
    Dtype.BF16: "bf16",
    Dtype.FP16: "fp16",
    Dtype.FP8: "fp8",
    Dtype.INT8: "int8",
    Dtype.INT4: "int8",  # int4 weights are dequantised into int8/16-bit matmuls on current GPUs
}
"""Which dense peak of a GPU's datasheet a weight format computes at."""


def serving_peak(dtype: Dtype, peak_tflops: dict[str, float | None]) -> tuple[str, float] | None:
    """The datasheet peak a model stored as ``dtype`` computes at, falling back to bf16 where
    the GPU lists no peak for that format: ``(peak name, TFLOP/s)``, or None."""
    for key in (PEAK_KEY[dtype], "bf16"):
        value = peak_tflops.get(key)
        if value:
            return key, value
    return None
