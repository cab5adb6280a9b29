"""Bytes of a linear layer's weights as a serving engine stores them, by weight format, and the
matmul a format runs as.

Per ``k_in x n_out`` weight matrix:

- fp32 4 bytes, bf16/fp16 2 bytes a weight, no scales;
- fp8 1 byte a weight and one fp32 scale per tensor (Micikevicius et al. 2022, "FP8 Formats for
  Deep Learning" §4; vLLM's ``fp8`` quantisation: per-tensor weight scales, vLLM docs "FP8 W8A8");
- int8 1 byte a weight and an fp16 scale per output channel (Dettmers et al. 2022, LLM.int8() §3;
  Xiao et al. 2023, SmoothQuant);
- int4 half a byte a weight and, per group of ``group_size`` inputs of every output channel, an fp16
  scale and a 4-bit zero point, 2.5 bytes (Frantar et al. 2023, GPTQ §5; Lin et al. 2024, AWQ §3.3;
  Marlin's roofline counts the same ``k n / 2 + 2 (k / 128) n`` bytes for its weights and scales,
  IST-DASLab/marlin ``bench.py``/README).

Which matmul a format runs (what a prefill's GEMM reads and computes at): FP8 weights on a GPU with
FP8 tensor cores run W8A8, the activations quantised to FP8 on the fly and the GEMM at the FP8 peak
(vLLM docs, "FP8 W8A8": Ada, Hopper and Blackwell run W8A8 with dynamic activation scales); on a GPU
without them (Ampere, Turing) the FP8 weights are dequantised inside a 16-bit GEMM (vLLM's FP8
Marlin, "W8A16"). int8 and int4 weights run weight-only (W8A16, W4A16): GPTQ/AWQ Marlin kernels
dequantise the weights in registers and multiply FP16/BF16 activations on the 16-bit tensor cores
(IST-DASLab/marlin README: an FP16xINT4 matmul, close to 4x faster than FP16 while memory-bound, at
FP16's speed once compute-bound), so only the weights' bytes change, not the rate.
"""

from __future__ import annotations

import math

from service.core.dtypes import BYTES_PER_ELEMENT, Dtype

INT4_GROUP_SIZE = 128  # GPTQ (Frantar et al. 2023 §5) and AWQ (Lin et al. 2024 §3.3) default
FP8_TENSOR_SCALE_BYTES = 4  # one fp32 scale per tensor
INT8_CHANNEL_SCALE_BYTES = 2  # one fp16 scale per output channel
INT4_GROUP_SCALE_BYTES = 2.5  # per group: an fp16 scale and a 4-bit zero point


def linear_weight_bytes(fmt: Dtype, k_in: float, n_out: float, *, group_size: int = INT4_GROUP_SIZE) -> tuple[float, float]:
    """``(weights, scales)``: bytes of one ``k_in x n_out`` weight matrix stored in ``fmt`` and of
    its scales (and zero points) (module docstring for each format's source)."""
    if fmt in (Dtype.FP32, Dtype.BF16, Dtype.FP16):
        return BYTES_PER_ELEMENT[fmt] * k_in * n_out, 0.0
    if fmt is Dtype.FP8:
        return k_in * n_out, float(FP8_TENSOR_SCALE_BYTES)
    if fmt is Dtype.INT8:
        return k_in * n_out, INT8_CHANNEL_SCALE_BYTES * n_out
    return k_in * n_out / 2, INT4_GROUP_SCALE_BYTES * math.ceil(k_in / group_size) * n_out


def bytes_per_weight(fmt: Dtype, k_in: float, n_out: float, *, group_size: int = INT4_GROUP_SIZE) -> float:
    """Bytes a GEMM reads per weight of a ``k_in x n_out`` matrix in ``fmt``, its scales shared out:
    2 for bf16, about 1 for fp8, ``0.5 + 2.5 / group_size`` for int4 (:func:`linear_weight_bytes`)."""
    if k_in <= 0 or n_out <= 0:
        return BYTES_PER_ELEMENT[fmt]
    body, scales = linear_weight_bytes(fmt, k_in, n_out, group_size=group_size)
    return (body + scales) / (k_in * n_out)
