"""The quantised base's storage against bitsandbytes, the reference implementation of QLoRA's NF4
with double quantisation and of LLM.int8.

Needs torch and bitsandbytes, which the service does not: ``pip install torch==2.13.0 bitsandbytes``
(CPU wheels), then ``pytest tests/reference``. Without them the test is skipped.
"""

from __future__ import annotations

import pytest

from service.core.finetune import BaseFormat, quantized_matrix_bytes

torch = pytest.importorskip("torch")
bnb_functional = pytest.importorskip("bitsandbytes.functional")


def nbytes(t) -> int:
    return t.numel() * t.element_size()


# Llama-2-7B's q (4096 x 4096) and MLP (4096 x 11008) shapes, a GQA k/v (4096 x 1024), and shapes
# whose sizes are not multiples of the 64-value block or of 256 blocks
SHAPES = [(4096, 4096), (4096, 11008), (4096, 1024), (1000, 7), (64, 257), (2048, 5632)]


@pytest.mark.parametrize(("rows_in", "cols_out"), SHAPES)
@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("fmt", [BaseFormat.NF4, BaseFormat.FP4])
def test_four_bit_bytes_match_bitsandbytes(rows_in: int, cols_out: int, double_quant: bool, fmt: BaseFormat) -> None:
    weight = torch.randn(cols_out, rows_in, dtype=torch.bfloat16)  # nn.Linear stores out x in
    packed, state = bnb_functional.quantize_4bit(weight, blocksize=64, compress_statistics=double_quant, quant_type=fmt.value)
    stored = nbytes(packed) + nbytes(state.absmax)
    if double_quant:
        stored += nbytes(state.state2.absmax) + nbytes(state.offset)  # the quantised absmax's own constants
    data, constants = quantized_matrix_bytes(rows_in, cols_out, fmt, double_quant=double_quant)
    assert data + constants == stored
    assert data == nbytes(packed)


@pytest.mark.parametrize(("rows_in", "cols_out"), SHAPES[:4])
def test_int8_bytes_match_bitsandbytes(rows_in: int, cols_out: int) -> None:
    weight = torch.randn(cols_out, rows_in, dtype=torch.float16)
    int8, scales, _ = bnb_functional.int8_vectorwise_quant(weight)  # LLM.int8: a scale per output row
    assert quantized_matrix_bytes(rows_in, cols_out, BaseFormat.INT8, double_quant=False) == (nbytes(int8), nbytes(scales))
