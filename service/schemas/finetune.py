"""The ``finetune`` request field (full, LoRA, QLoRA) and the fine-tuning parts of the training
answers. ``{"lora": {...}}`` and ``{"qlora": {...}}`` are accepted as shorthands for
``{"finetune": {"method": "lora", ...}}``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from service.core.errors import InvalidSpecError
from service.core.finetune import BaseFormat, FinetuneMethod, FinetuneSpec, Projection
from service.schemas.base import Schema

# Hugging Face PEFT's module names for Llama-style and DeepSeek-V2/V3 models, and its "all-linear" shorthand
PEFT_NAMES = {f"{p.value}_proj": p.value for p in Projection} | {"kv_a_proj_with_mqa": Projection.KV_A.value}
ALL_LINEAR = ("all-linear", "all_linear", "all")
SHORTHANDS = ("lora", "qlora")
LORA_ONLY_FIELDS = ("r", "alpha", "target_modules", "dropout", "base_format", "double_quant", "kept_dtype", "paged_optimizer",
                    "fp8_params")  # fmt: skip


class Finetune(Schema):
    """How the model is fine-tuned. ``full``: every weight trained (the default when the field is
    absent). ``lora``: the base frozen in its format, rank-``r`` adapters trained (Hu et al. 2021).
    ``qlora``: LoRA on a 4-bit NormalFloat base with double quantisation, bf16 adapters and a paged
    optimizer (Dettmers et al. 2023). Top-level ``{"lora": {"r": 16}}`` or ``{"qlora": {...}}`` is
    the same as ``{"finetune": {"method": "lora", "r": 16}}``."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"method": "lora", "r": 16, "target_modules": ["q", "v"]},
                {"method": "qlora", "r": 64, "alpha": 16, "dropout": 0.05},
            ]
        }
    }

    method: FinetuneMethod = Field(FinetuneMethod.LORA, description="full, lora or qlora.")
    r: int | None = Field(None, ge=1, le=65_536, description="Adapter rank; default 16.")
    alpha: float | None = Field(
        None, gt=0, le=1e6, description="LoRA's alpha (scales the update by alpha/r); changes no byte or FLOP."
    )
    target_modules: list[str] | None = Field(
        None,
        min_length=1,
        max_length=len(Projection),
        description="Projections to adapt: q, k, v, o, gate, up, down, and under multi-head latent attention (DeepSeek-V2/V3) "
        "q_a, q_b, kv_a, kv_b (PEFT's q_proj..., kv_a_proj_with_mqa accepted; 'all-linear' = every one). On an MLA model q "
        "adapts the query path (q_proj, or q_a_proj and q_b_proj), k and v both adapt the joint key-value path "
        "(kv_a_proj_with_mqa and kv_b_proj). gate, up and down adapt every MLP of that name: dense layers', every routed "
        "expert's and every shared expert's; the router is never adapted. "
        "Default: every linear projection of the blocks (QLoRA §4), every expert's in a mixture.",
    )
    dropout: float | None = Field(
        None, ge=0, lt=1, description="LoRA dropout on the adapters' inputs; default 0 (stores a dropped copy when > 0)."
    )
    base_format: BaseFormat | None = Field(
        None, description="Format of the frozen base's linear layers; default the precision's (lora) or nf4 (qlora)."
    )
    double_quant: bool | None = Field(None, description="Quantise the 4-bit base's block constants (QLoRA §3); default true.")
    kept_dtype: BaseFormat | None = Field(
        None,
        description="Format of a quantised base's embedding, LM head, norms and biases; default fp32 (PEFT's prepare_model_for_kbit_training).",
    )
    paged_optimizer: bool | None = Field(None, description="Optimizer states may page to host memory; default true for qlora.")
    fp8_params: bool | None = Field(
        None,
        description="Under precision fp8: the frozen base's matmul weights held in FP8 alone, row- and column-wise, with no "
        "BF16 copy (Transformer Engine fp8_model_init; NeMo's fp8_params, Megatron-Bridge's fp8_param_gather). Default true "
        "for lora on a 16-bit base under precision fp8; false keeps the BF16 base and the FP8 copies beside it.",
    )

    @field_validator("target_modules")
    @classmethod
    def _known_modules(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [v.strip().lower() for v in value]
        if any(n in ALL_LINEAR for n in names):
            if len(names) > 1:
                raise ValueError("'all-linear' stands alone")
            return None
        out: list[str] = []
        for n in names:
            name = PEFT_NAMES.get(n, n)
            if name not in Projection.__members__.values():
                raise ValueError(
                    f"unknown module {n!r}; use q, k, v, o, gate, up, down, or for MLA q_a, q_b, kv_a, kv_b "
                    "(or q_proj..., or 'all-linear')"
                )
            out.append(name)
        return out

    @model_validator(mode="after")
    def _lora_fields(self) -> Finetune:
        if self.method is FinetuneMethod.FULL:
            given = [f for f in LORA_ONLY_FIELDS if getattr(self, f) is not None]
            if given:
                raise InvalidSpecError(given[0], f"{', '.join(given)}: only for method 'lora' or 'qlora'")
        return self

    def spec(self) -> FinetuneSpec:
        """The core's fine-tuning spec, defaults filled."""
        return FinetuneSpec(
            method=self.method,
            rank=self.r or 16,
            alpha=self.alpha,
            targets=None if self.target_modules is None else tuple(Projection(t) for t in self.target_modules),
            dropout=self.dropout or 0.0,
            base_format=self.base_format,
            double_quant=True if self.double_quant is None else self.double_quant,
            kept_dtype=self.kept_dtype,
            paged_optimizer=self.paged_optimizer,
            fp8_params=self.fp8_params,
        )

    @property
    def is_adapter(self) -> bool:
        return self.method is not FinetuneMethod.FULL


STORAGE_FORMATS = ("int8", "int4", "nf4", "fp4", "4bit", "8bit")


def lora_shorthand(data: Any) -> Any:
    """Turn a top-level ``lora`` or ``qlora`` object into ``finetune`` with that method; point a
    4- or 8-bit ``precision`` (a frozen base's storage format, not a training precision) at them."""
    if not isinstance(data, dict):
        return data
    if isinstance(data.get("precision"), str) and data["precision"].lower() in STORAGE_FORMATS:
        raise InvalidSpecError(
            "precision",
            f"{data['precision']!r} stores a frozen base, it does not train one; keep a training precision "
            "(mixed_bf16...) and give qlora: {...} for a 4-bit base, or finetune.base_format",
        )
    if not any(k in data for k in SHORTHANDS):
        return data
    given = [k for k in (*SHORTHANDS, "finetune") if k in data]
    if len(given) > 1:
        raise ValueError(f"give one of finetune, lora or qlora, not {' and '.join(given)}")
    data = dict(data)
    key = given[0]
    body = data.pop(key)
    if body is None or body is True:
        body = {}
    if not isinstance(body, dict):
        raise InvalidSpecError(key, f'an object such as {{"r": 16}} (it stands for finetune: {{"method": "{key}", ...}})')
    if body.get("method", key) != key:
        raise InvalidSpecError(f"{key}.method", f"{body['method']!r} contradicts {key}")
    data["finetune"] = body | {"method": key}
    return data


class FinetuneMemoryDetail(Schema):
    """What a LoRA/QLoRA answer counts, part by part (per GPU unless said)."""

    method: FinetuneMethod
    rank: int
    alpha: float | None
    target_modules: list[str]
    trainable_params: int = Field(description="Adapter parameters (all experts' for a mixture).")
    total_params: int = Field(description="The frozen base's parameters.")
    trainable_fraction: float
    adapter_params_by_module: dict[str, int]
    base_format: BaseFormat
    kept_dtype: BaseFormat | None = Field(description="A quantised base's unquantised parts (embedding, LM head, norms, biases).")
    fp8_params: bool = Field(description="The frozen matmul weights are FP8 primary weights, no BF16 copy (precision fp8).")
    base_weights_bytes: int = Field(description="The frozen base, quantisation constants included (after ZeRO-3).")
    quantization_constants_bytes: int = Field(description="Block constants of a quantised base (whole model).")
    dequantization_buffer_bytes: int = Field(
        description="The largest base matrix dequantised to the compute format while in use."
    )
    adapter_weights_bytes: int
    adapter_gradients_bytes: int
    adapter_optimizer_bytes: int
    adapter_activations_bytes: int = Field(description="What the adapters add to the activations (x*A, LoRA dropout copies).")
    base_activations_bytes: int = Field(description="Activations of the frozen layers: what LoRA does not save.")
    frozen_inputs_not_kept_bytes: int = Field(
        description="Full training's matmul inputs that frozen, unadapted projections do not need (already left out of per_gpu)."
    )
    adapter_checkpoint_bytes: int = Field(description="The trained adapters saved in their format.")
    paged_optimizer: bool
    pageable_bytes: int = Field(description="Optimizer states that may page to host memory (counted on the GPU in total_bytes).")
    total_if_paged_bytes: int = Field(description="The tensors on the GPU if the pageable states all moved to the host.")
    fits_if_paged: bool | None = Field(
        description="total_if_paged_bytes + per_gpu.cuda_context_bytes <= the GPU's memory (null without a GPU)."
    )


class FinetuneComputeDetail(Schema):
    """LoRA's FLOPs next to full training's."""

    method: FinetuneMethod
    rank: int
    target_modules: list[str]
    trainable_params: int
    active_adapter_params: int = Field(
        description="Adapter parameters a token passes (experts_per_token experts' for a mixture)."
    )
    adapter_flops_per_token: float = Field(description="6 * active adapter parameters.")
    full_training_flops_per_token: float = Field(description="What full training would cost per token.")
    flops_saved_fraction: float
