"""``ModelSpec``: a stored preset, an explicit architecture, or a bare parameter count."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model, model_validator

from service.core.architecture import ARCHITECTURE_FIELDS
from service.core.compute import REQUIRED_ARCHITECTURE_FIELDS
from service.core.hf_config import SUPPORTED_TYPES_TEXT
from service.core.limits import MAX_PARAMS
from service.schemas.architecture import request_fields
from service.schemas.base import Schema

ARCHITECTURE_FIELD_NAMES = tuple(f.name for f in ARCHITECTURE_FIELDS)
_ARCHITECTURE_FIELD_SET = frozenset(ARCHITECTURE_FIELD_NAMES)


class _ModelSource(Schema):
    preset: str | None = Field(None, max_length=100, description="Stored model id, e.g. `llama-2-70b`.")
    n_params: float | None = Field(None, ge=1, le=MAX_PARAMS, description="Total parameters, when the architecture is unknown.")


# then the architecture fields (n_layers ... lm_head_bias), each optional, from their declaration
# (service.core.architecture.Architecture); ModelSpec adds hf_config after them
_ModelFields = create_model("_ModelFields", __base__=_ModelSource, **request_fields())


class ModelSpec(_ModelFields):
    """The model an estimate is for.

    Give ``preset`` (a stored model id), ``hf_config`` (a Hugging Face ``config.json``), or the
    architecture fields (``n_layers``, ``d_model``, ``n_heads``, ``d_ff``, ``vocab_size`` at least),
    or only ``n_params``. Explicit fields override a preset's or a config's. Answers that need the shape (activations, KV cache, attention FLOPs)
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

    hf_config: dict[str, Any] | None = Field(
        None,
        description=f"A Hugging Face config.json ({SUPPORTED_TYPES_TEXT}); explicit fields override it.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ModelSpec:
        given = self.explicit_fields()
        if self.n_params is not None and (given or self.preset is not None or self.hf_config is not None):
            raise ValueError("give n_params alone, or a preset / architecture, not both")
        if self.hf_config is not None and self.preset is not None:
            raise ValueError("give hf_config or preset, not both")
        if self.n_params is None and self.preset is None and self.hf_config is None:
            missing = [n for n in REQUIRED_ARCHITECTURE_FIELDS if getattr(self, n) is None]
            if missing:
                raise ValueError("give a preset, n_params, or the architecture; missing: " + ", ".join(missing))
        return self

    def explicit_fields(self) -> dict[str, object]:
        """The architecture fields the client set (they override a preset's). A field that was not
        given is None, so only the given ones are read (most requests give none: a preset)."""
        given = self.model_fields_set
        if given.isdisjoint(_ARCHITECTURE_FIELD_SET):
            return {}
        return {
            name: getattr(self, name) for name in ARCHITECTURE_FIELD_NAMES if name in given and getattr(self, name) is not None
        }
