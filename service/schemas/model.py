"""``ModelSpec``: a stored preset, an explicit architecture, or a bare parameter count."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from service.core.architecture import Ffn, Norm, Position
from service.core.compute import REQUIRED_ARCHITECTURE_FIELDS
from service.core.hf_config import SUPPORTED_TYPES_TEXT
from service.core.limits import MAX_DIM, MAX_LAYERS, MAX_PARAMS, MAX_SEQ_LEN
from service.schemas.base import Schema

PositiveDim = Annotated[int, Field(ge=1, le=MAX_DIM)]

ARCHITECTURE_FIELDS = (
    "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size", "ffn", "norm",
    "bias", "qkv_bias", "tied_embeddings", "position", "max_seq_len", "position_embedding_rows",
    "n_experts", "experts_per_token", "parallel_attention", "norms_per_layer", "embedding_norm",
)  # fmt: skip
# fields of the newer architectures (multi-head latent attention, sliding windows, shared experts):
# preset rows store them as nullable columns (migration 0004), null where a model does not use them
EXTENDED_ARCHITECTURE_FIELDS = (
    "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "sliding_window",
    "sliding_window_layers", "n_shared_experts", "d_ff_shared", "shared_expert_gate", "first_k_dense", "d_ff_dense",
    "router_bias", "qk_norm",
)  # fmt: skip
# fields only a request (or a mapped config.json) gives: no preset stores them
SPEC_ONLY_ARCHITECTURE_FIELDS = ("attention_sinks", "qk_norm_full_width", "attention_bias", "lm_head_bias")
_ARCHITECTURE_FIELD_SET = (
    frozenset(ARCHITECTURE_FIELDS) | frozenset(EXTENDED_ARCHITECTURE_FIELDS) | frozenset(SPEC_ONLY_ARCHITECTURE_FIELDS)
)


class ModelSpec(Schema):
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

    preset: str | None = Field(None, max_length=100, description="Stored model id, e.g. `llama-2-70b`.")
    n_params: float | None = Field(None, ge=1, le=MAX_PARAMS, description="Total parameters, when the architecture is unknown.")
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
    q_lora_rank: PositiveDim | None = Field(
        None, description="MLA: rank of the query bottleneck (none: a full query projection)."
    )
    kv_lora_rank: PositiveDim | None = Field(
        None,
        description="MLA (DeepSeek-V2/V3): rank of the compressed KV latent; setting it selects multi-head latent attention.",
    )
    qk_nope_head_dim: int | None = Field(None, ge=0, le=MAX_DIM, description="MLA: per-head query/key width without rotary.")
    qk_rope_head_dim: PositiveDim | None = Field(None, description="MLA: rotary query/key width (one shared rotary key).")
    v_head_dim: PositiveDim | None = Field(None, description="MLA: per-head value width.")
    sliding_window: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Tokens a sliding-window layer attends to (and caches)."
    )
    sliding_window_layers: int | None = Field(
        None, ge=0, le=MAX_LAYERS, description="Layers using the window (Gemma 2: half); default all."
    )
    n_shared_experts: int | None = Field(None, ge=0, le=1_000, description="Always-active shared experts per MoE layer.")
    d_ff_shared: int | None = Field(None, ge=1, le=MAX_DIM * 8, description="Width of each shared expert; default d_ff.")
    shared_expert_gate: bool | None = Field(None, description="A sigmoid gate on the shared experts (Qwen2-MoE).")
    first_k_dense: int | None = Field(
        None, ge=0, le=MAX_LAYERS, description="Leading layers with one dense MLP instead of experts."
    )
    d_ff_dense: int | None = Field(None, ge=1, le=MAX_DIM * 8, description="MLP width of those dense layers; default d_ff.")
    router_bias: bool | None = Field(None, description="A per-expert router bias (DeepSeek-V3's load-balancing bias).")
    qk_norm: bool | None = Field(None, description="RMSNorm on each head's query and key (Qwen3, Gemma 3).")
    attention_sinks: bool | None = Field(None, description="One learned attention-sink logit per head and layer (gpt-oss).")
    qk_norm_full_width: bool | None = Field(
        None, description="RMSNorm over the whole query and the whole key projection, not per head (OLMo 2); excludes qk_norm."
    )
    attention_bias: bool | None = Field(
        None, description="Biases on the Q, K, V and output projections but not the MLP (Phi-3.5-MoE); bias implies them."
    )
    lm_head_bias: bool | None = Field(None, description="A bias on the LM head, V values, kept when tied (Phi-2, Phi-3.5-MoE).")
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
            name: getattr(self, name)
            for name in (*ARCHITECTURE_FIELDS, *EXTENDED_ARCHITECTURE_FIELDS, *SPEC_ONLY_ARCHITECTURE_FIELDS)
            if name in given and getattr(self, name) is not None
        }
