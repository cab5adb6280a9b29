"""What a fine-tune is: its method (full, LoRA, QLoRA), rank, targets and the base's formats.

LoRA (Hu et al. 2021, §4.1) freezes the base and trains rank-``r`` adapters ``B·A``; QLoRA
(Dettmers et al. 2023, §3) stores the frozen base in 4-bit NormalFloat. :mod:`service.core.finetune`
re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.core.adapters import Projection, projection_shapes
from service.core.architecture import Architecture
from service.core.base_weights import FLOAT_BYTES, FOUR_BIT, BaseFormat
from service.core.errors import InvalidSpecError
from service.core.memory import Precision

MASK_BYTES = 1  # CUDA keeps a dropout mask as one byte an element (the CPU: service.core.kernels.dropout_mask_bytes)


class FinetuneMethod(StrEnum):
    """``full``: every weight trained (today's training memory). ``lora``: frozen base in its
    format, rank-r adapters trained (Hu et al. 2021). ``qlora``: ``lora`` on a 4-bit NormalFloat base
    with double quantisation, bf16 adapters and a paged optimizer (Dettmers et al. 2023)."""

    FULL = "full"
    LORA = "lora"
    QLORA = "qlora"


@dataclass(frozen=True, kw_only=True, slots=True)
class FinetuneSpec:
    """How a model is fine-tuned.

    ``targets`` None adapts every linear projection of the blocks (QLoRA §4: "LoRA on all linear
    transformer block layers are required to match full finetuning performance").
    ``base_format`` None: the precision's 16/32-bit weight format for ``lora``, ``nf4`` for
    ``qlora``. ``kept_dtype`` (the unquantised embedding, LM head, norms and biases of a quantised
    base) None: fp32, as PEFT's ``prepare_model_for_kbit_training`` leaves them.
    ``paged_optimizer`` None: on for ``qlora``. ``dropout`` is LoRA's dropout on the adapters'
    inputs. ``alpha`` scales the update (``alpha / r``) and changes no byte or FLOP.
    ``fp8_params``: the frozen base's matmul weights held in FP8 alone, no 16-bit copy
    (:func:`resolve_fp8_params`); None: on for ``lora`` under ``precision=fp8``.
    """

    method: FinetuneMethod = FinetuneMethod.LORA
    rank: int = 16
    alpha: float | None = None
    targets: tuple[Projection, ...] | None = None
    dropout: float = 0.0
    base_format: BaseFormat | None = None
    double_quant: bool = True
    kept_dtype: BaseFormat | None = None
    paged_optimizer: bool | None = None
    fp8_params: bool | None = None

    @property
    def paged(self) -> bool:
        """Whether the optimizer's states may page to host memory (QLoRA §3; on for ``qlora``)."""
        return self.paged_optimizer if self.paged_optimizer is not None else self.method is FinetuneMethod.QLORA


def check_rank(arch: Architecture, spec: FinetuneSpec, targets: tuple[Projection, ...]) -> None:
    """A rank above a targeted matrix's smaller side adds parameters but no rank: ``B·A`` of an
    ``in x out`` matrix has rank at most ``min(in, out)`` (Hu et al. 2021 §4.1 take ``r << min``)."""
    shapes = projection_shapes(arch)
    for t in targets:
        for m in shapes[t]:
            if spec.rank > min(m.rows_in, m.cols_out):
                raise InvalidSpecError(
                    "finetune.r",
                    f"r={spec.rank} exceeds the {m.module} projection ({m.rows_in} x {m.cols_out}): "
                    f"an adapter's rank is at most min(in, out) = {min(m.rows_in, m.cols_out)}",
                )


def resolve_base_format(spec: FinetuneSpec, precision: Precision) -> BaseFormat:
    """The base's format: the request's, else nf4 for ``qlora`` and the precision's weight format
    (bf16, fp16 or fp32) for ``lora``."""
    if spec.base_format is not None:
        if spec.method is FinetuneMethod.QLORA and spec.base_format not in FOUR_BIT:
            raise InvalidSpecError(
                "finetune.base_format", "qlora quantises the base to nf4 or fp4; use method 'lora' for another base format"
            )
        return spec.base_format
    if spec.method is FinetuneMethod.QLORA:
        return BaseFormat.NF4
    return {Precision.MIXED_FP16: BaseFormat.FP16, Precision.FP32: BaseFormat.FP32}.get(precision, BaseFormat.BF16)


def base_formats(spec: FinetuneSpec, precision: Precision) -> tuple[BaseFormat, BaseFormat | None]:
    """The base's format (:func:`resolve_base_format`) and, for a quantised base, the format of its
    unquantised parts (None for a 16/32-bit base). A quantised base under ``precision=fp8`` is a
    422: bitsandbytes dequantises each matrix to 16 bits for its matmul (QLoRA Eq. 6; LLM.int8's
    ``Linear8bitLt`` multiplies in int8 and fp16), so none runs in FP8 and no FP8 copy is kept."""
    fmt = resolve_base_format(spec, precision)
    quantised = fmt not in FLOAT_BYTES
    if quantised and precision is Precision.FP8 and not spec.fp8_params:  # asked for FP8 weights: that field's 422
        raise InvalidSpecError(
            "precision",
            f"a {fmt.value} base is dequantised to 16 bits for every matmul (QLoRA Eq. 6; bitsandbytes): its matmuls "
            "do not run in FP8; use precision mixed_bf16, or method 'lora' on a 16-bit base with fp8",
        )
    if spec.kept_dtype is not None and not quantised:
        raise InvalidSpecError("finetune.kept_dtype", f"only applies to a quantised base (int8, nf4, fp4), not {fmt.value}")
    kept_dtype = (spec.kept_dtype or BaseFormat.FP32) if quantised else None
    if kept_dtype is not None and kept_dtype not in FLOAT_BYTES:
        raise InvalidSpecError("finetune.kept_dtype", "the unquantised parts are kept in fp32, bf16 or fp16")
    return fmt, kept_dtype


def resolve_fp8_params(spec: FinetuneSpec, precision: Precision) -> bool:
    """Whether the frozen base's matmul weights are FP8 primary weights, with no 16-bit copy:
    Transformer Engine's ``fp8_model_init`` ("modules created inside this region will hold only
    FP8 copies of its parameters ... especially useful for ... LoRA-like fine-tuning, where the
    main parameters of the model do not change"), which NeMo's LoRA recipe turns on with FP8
    (MLPerf Training v4.0, NVIDIA's llama2_70b_lora ``megatron_gpt_peft_tuning_config.yaml``:
    ``fp8_params: ${FP8}``) and Megatron-Bridge's FP8 precision recipes with ``fp8_param_gather``.
    The default: on for LoRA on a 16-bit base under ``precision=fp8``; ``false`` keeps the 16-bit
    base and Transformer Engine's FP8 copies beside it (its default without ``fp8_model_init``)."""
    fmt = resolve_base_format(spec, precision)
    if spec.fp8_params is None:
        return precision is Precision.FP8 and spec.method is FinetuneMethod.LORA and fmt in (BaseFormat.BF16, BaseFormat.FP16)
    if spec.fp8_params and precision is not Precision.FP8:
        raise InvalidSpecError("finetune.fp8_params", f"FP8 primary weights need precision 'fp8', not {precision.value}")
    if spec.fp8_params and fmt not in (BaseFormat.BF16, BaseFormat.FP16):
        raise InvalidSpecError("finetune.fp8_params", f"FP8 primary weights replace a 16-bit base, not a {fmt.value} one")
    return spec.fp8_params
