"""``ModelSpec``: a stored preset, an explicit architecture, or a bare parameter count."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from service.core.architecture import Ffn, Norm, Position
from service.core.compute import REQUIRED_ARCHITECTURE_FIELDS
from service.core.limits import MAX_DIM, MAX_LAYERS, MAX_PARAMS, MAX_SEQ_LEN
from service.schemas.base import Schema

PositiveDim = Annotated[int, Field(ge=1, le=MAX_DIM)]

ARCHITECTURE_FIELDS = (
    "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size", "ffn", "norm",
    "bias", "qkv_bias", "tied_embeddings", "position", "max_seq_len", "position_embedding_rows",
    "n_experts", "experts_per_token", "parallel_attention", "norms_per_layer", "embedding_norm",
)  # fmt: skip
_ARCHITECTURE_FIELD_SET = frozenset(ARCHITECTURE_FIELDS)


class ModelSpec(Schema):
    """The model an estimate is for.

    Give ``preset`` (a stored model id), or the architecture fields (``n_layers``, ``d_model``,
    ``n_heads``, ``d_ff``, ``vocab_size`` at least), or only ``n_params``. Explicit fields
    override a preset's. Answers that need the shape (activations, KV cache, attention FLOPs)
    reject a bare ``n_params`` with a 422 naming the missing fields.
    """

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"preset": "llama-2-7b"},
                {
                    "n_layers": 32, "d_model": 4096, "n_heads": 32, "n_kv_heads": 32,
                    "d_head": 128, "d_ff": 11008, "vocab_size": 32000, "ffn": "swiglu",
                    "norm": "rmsnorm", "bias": False, "tied_embeddings": False,
                    "position": "rotary", "max_seq_len": 4096,
                },
                {"n_params": 175e9},
            ]
        }
    }  # fmt: skip

    preset: str | None = Field(None, max_length=100, description="Stored model id, e.g. `llama-2-70b`.")
    n_params: float | None = Field(
        None, ge=1, le=MAX_PARAMS, description="Total parameters, when the architecture is unknown."
    )
    n_layers: int | None = Field(None, ge=1, le=MAX_LAYERS)
    d_model: PositiveDim | None = None
    n_heads: PositiveDim | None = None
    n_kv_heads: PositiveDim | None = Field(None, description="KV heads (GQA/MQA); default n_heads.")
    d_head: PositiveDim | None = Field(None, description="Head width; default d_model / n_heads.")
    d_ff: int | None = Field(None, ge=1, le=MAX_DIM * 8, description="MLP width (per expert).")
    vocab_size: int | None = Field(None, ge=1, le=MAX_DIM * 10)
    ffn: Ffn | None = None
    norm: Norm | None = None
    bias: bool | None = Field(None, description="Biases on every linear layer.")
    qkv_bias: bool | None = Field(None, description="Biases on the Q, K, V projections only (Qwen2).")
    tied_embeddings: bool | None = None
    position: Position | None = None
    max_seq_len: int | None = Field(None, ge=1, le=MAX_SEQ_LEN)
    position_embedding_rows: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Learned position rows if not max_seq_len (OPT: +2)."
    )
    n_experts: int | None = Field(None, ge=1, le=100_000)
    experts_per_token: int | None = Field(None, ge=1, le=100_000)
    parallel_attention: bool | None = Field(None, description="GPT-J/NeoX-style parallel block.")
    norms_per_layer: int | None = Field(
        None, ge=1, le=8, description="Norm modules per block: 2, or 1 where one feeds both branches."
    )
    embedding_norm: bool | None = Field(None, description="A norm after the embedding (BLOOM).")

    @model_validator(mode="after")
    def _one_kind(self) -> ModelSpec:
        given = self.explicit_fields()
        if self.n_params is not None and (given or self.preset is not None):
            raise ValueError("give n_params alone, or a preset / architecture, not both")
        if self.n_params is None and self.preset is None:
            missing = [n for n in REQUIRED_ARCHITECTURE_FIELDS if getattr(self, n) is None]
            if missing:
                raise ValueError(
                    "give a preset, n_params, or the architecture; missing: " + ", ".join(missing)
                )
        return self

    def explicit_fields(self) -> dict[str, object]:
        """The architecture fields the client set (they override a preset's). A field that was not
        given is None, so only the given ones are read (most requests give none: a preset)."""
        given = self.model_fields_set
        if given.isdisjoint(_ARCHITECTURE_FIELD_SET):
            return {}
        return {name: getattr(self, name) for name in ARCHITECTURE_FIELDS if name in given and getattr(self, name) is not None}
