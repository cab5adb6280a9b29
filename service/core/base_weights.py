"""The frozen base of a LoRA/QLoRA fine-tune: its storage formats and its bytes.

16/32-bit floats, LLM.int8 (Dettmers et al. 2022 §3: int8 with an fp32 scale per output row) or
bitsandbytes' 4-bit NormalFloat and FP4 in blocks of 64 values with a constant each, double-quantised
to 8 bits with an fp32 constant per 256 of them (Dettmers et al. 2023, QLoRA §3). bitsandbytes
quantises every linear layer of the blocks and keeps the embedding, the LM head, norms and biases
unquantised. :mod:`service.core.finetune` re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from service.core.adapters import MatrixShape, projection_shapes, stored_shape
from service.core.architecture import Architecture
from service.core.errors import InvalidSpecError
from service.core.params import count_params
from service.core.recurrent import recurrent_linear_shapes

QUANT_BLOCK = 64  # QLoRA §3: block size 64 for W
DOUBLE_QUANT_BLOCK = 256  # QLoRA §3: block size 256 for the second quantisation of the constants


class BaseFormat(StrEnum):
    """Storage format of the frozen base's linear layers: 16/32-bit floats, LLM.int8 (int8 with an
    fp32 scale per output row; Dettmers et al. 2022), or bitsandbytes' 4-bit ``nf4``/``fp4`` with
    block constants (QLoRA §3)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    INT8 = "int8"
    NF4 = "nf4"
    FP4 = "fp4"


FLOAT_BYTES = {BaseFormat.FP32: 4, BaseFormat.BF16: 2, BaseFormat.FP16: 2}
FOUR_BIT = (BaseFormat.NF4, BaseFormat.FP4)


def _block_matrices(arch: Architecture) -> list[MatrixShape]:
    """Every matmul weight of the blocks (what bitsandbytes quantises): the projections (MLA's
    included; its latent RMSNorms are norms and stay unquantised) and, in a mixture's expert layers,
    the router ``h x n_experts`` and a shared-expert gate ``h x 1`` (Qwen2-MoE); the recurrent layers'
    ``nn.Linear`` projections (:func:`service.core.recurrent.recurrent_linear_shapes`), which
    bitsandbytes quantises as any other (their convolutions, ``A_log``, ``D`` and norms stay). A shared
    attention block's attention and MLP matrices are stored once a block (Zamba), not once a use."""
    matrices = [stored_shape(arch, m) for shapes in projection_shapes(arch).values() for m in shapes]
    matrices += [MatrixShape(rows_in=rows_in, cols_out=cols_out, per_layer=1, active_per_layer=1, layers=count, module="mixer")
                 for count, rows_in, cols_out in recurrent_linear_shapes(arch)]  # fmt: skip
    if arch.is_moe:
        matrices.append(MatrixShape(rows_in=arch.d_model, cols_out=arch.n_experts, per_layer=1, active_per_layer=1,
                                    layers=arch.moe_layers, module="mlp.gate"))  # fmt: skip
        if arch.n_shared_experts and arch.shared_expert_gate:
            matrices.append(MatrixShape(rows_in=arch.d_model, cols_out=1, per_layer=1, active_per_layer=1,
                                        layers=arch.moe_layers, module="mlp.shared_expert_gate"))  # fmt: skip
    return matrices


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseWeights:
    """The frozen base: its stored bytes, the quantisation constants among them, and the largest
    dequantised matrix a 4-bit or int8 base materialises while it is used."""

    weights_bytes: int  # everything, constants included
    quantized_params: int
    kept_params: int  # stored unquantised (embedding, LM head, norms, biases) when quantised
    constants_bytes: int
    dequantization_buffer_bytes: int


def quantized_matrix_bytes(rows_in: int, cols_out: int, fmt: BaseFormat, *, double_quant: bool) -> tuple[int, int]:
    """Bytes of one quantised ``rows_in x cols_out`` weight as bitsandbytes stores it: (data,
    constants). 4-bit (``quantize_4bit``, QLoRA §3): two values a byte, the flattened matrix in
    blocks of 64 with an absmax each: fp32, or double-quantised to one byte with an fp32 absmax per
    256 blocks and one fp32 offset (their mean) per matrix. int8 (LLM.int8, Dettmers et al. 2022
    §3): a byte a value and an fp32 scale per output row."""
    n = rows_in * cols_out
    if fmt in FOUR_BIT:
        blocks = math.ceil(n / QUANT_BLOCK)
        constants = blocks + 4 * math.ceil(blocks / DOUBLE_QUANT_BLOCK) + 4 if double_quant else 4 * blocks
        return math.ceil(n / 2), constants
    if fmt is BaseFormat.INT8:
        return n, 4 * cols_out
    raise InvalidSpecError("finetune.base_format", f"{fmt.value} is not a quantised format")


def base_weight_bytes(
    arch: Architecture, fmt: BaseFormat, *, double_quant: bool, kept_dtype: BaseFormat, compute_bytes: int
) -> BaseWeights:
    """Bytes of the frozen base in ``fmt``.

    16/32-bit: ``P * bytes``. Quantised (bitsandbytes' layout): each block matrix flattened into
    blocks; 4-bit stores ``ceil(n/2)`` bytes and one constant per 64 values — fp32 (``0.5`` bits a
    value) or, double-quantised, one byte plus an fp32 constant per 256 blocks and an fp32 mean per
    matrix (``0.127`` bits; QLoRA §3); int8 stores ``n`` bytes and an fp32 scale per output row
    (LLM.int8, Dettmers et al. 2022 §3). The embedding, LM head, norms and biases stay in
    ``kept_dtype``. While a quantised matrix is used it is dequantised to the compute format (QLoRA
    Eq. 6), one at a time: the largest such matrix is the buffer counted.
    """
    total = count_params(arch).total
    if fmt in FLOAT_BYTES:
        return BaseWeights(weights_bytes=total * FLOAT_BYTES[fmt], quantized_params=0, kept_params=total,
                           constants_bytes=0, dequantization_buffer_bytes=0)  # fmt: skip
    quantized = data = constants = largest = 0
    for m in _block_matrices(arch):
        n, copies = m.rows_in * m.cols_out, m.copies(arch.n_layers)
        matrix_data, matrix_constants = quantized_matrix_bytes(m.rows_in, m.cols_out, fmt, double_quant=double_quant)
        quantized += n * copies
        largest = max(largest, n)
        data += copies * matrix_data
        constants += copies * matrix_constants
    kept = total - quantized
    kept_bytes = kept * FLOAT_BYTES[kept_dtype]
    return BaseWeights(
        weights_bytes=data + constants + kept_bytes,
        quantized_params=quantized,
        kept_params=kept,
        constants_bytes=constants,
        dequantization_buffer_bytes=largest * compute_bytes,
    )
