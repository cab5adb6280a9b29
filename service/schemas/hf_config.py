"""Request and response of ``POST /v1/models/from-hf-config``."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from service.schemas.base import Schema
from service.schemas.calculators import Estimate

LLAMA_3_1_8B_CONFIG = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
    "rope_scaling": {"factor": 8.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": False, "hidden_act": "silu",
}  # fmt: skip


class HfConfigRequest(Schema):
    """``{"hf_config": {...}}``; a bare config.json (an object with ``model_type`` and no ``hf_config``)
    is accepted as the body too."""

    model_config = Schema.model_config | {"json_schema_extra": {"examples": [{"hf_config": LLAMA_3_1_8B_CONFIG}]}}

    hf_config: dict[str, Any] = Field(description="The model's config.json, as published with its weights.")

    @model_validator(mode="before")
    @classmethod
    def _bare_config(cls, data: object) -> object:
        """A bare config.json sent as the body (``curl -d @config.json``): an object with a
        ``model_type`` and no ``hf_config`` is read as ``{"hf_config": <body>}``."""
        if isinstance(data, dict) and "hf_config" not in data and "model_type" in data:
            return {"hf_config": data}
        return data


class HfConfigResponse(Estimate):
    model_type: str
    model: dict[str, Any] = Field(description="The architecture as explicit ModelSpec fields: send it as `model`.")
    total_params: int = Field(description="All parameters, tied weights once (the reference implementation's count).")
    active_params: int = Field(description="Parameters used per token (MoE: routed experts_per_token + shared).")
    context_tokens: int = Field(description="max_position_embeddings, or the RoPE-scaled context.")
    kv_cache_bytes_per_token: int = Field(description="KV cache per token in bf16 over all layers (before any window cap).")
