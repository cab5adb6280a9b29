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
