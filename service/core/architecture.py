"""The transformer architecture that every formula reads.

:class:`Architecture` describes a decoder-only transformer the way the papers' model cards do;
:func:`service.core.spec.make_architecture` validates it (every rule names its field). A model known only by its
parameter count is a :class:`ParamsOnly`; formulas that need the shape raise
:class:`~service.core.errors.MissingArchitectureError` for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Ffn(StrEnum):
    """MLP kind. ``gelu`` (also any 2-matrix MLP such as OPT's ReLU): up and down projections;
    ``swiglu``: gate, up and down (Shazeer 2020, "GLU Variants Improve Transformer")."""

    GELU = "gelu"
    SWIGLU = "swiglu"


class Norm(StrEnum):
    """``layernorm`` has a weight and a bias (Ba et al. 2016); ``rmsnorm`` a weight only
    (Zhang & Sennrich 2019)."""

    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"


class Position(StrEnum):
    """Position encoding. Only ``learned`` adds parameters (a ``rows x d_model`` table)."""

    LEARNED = "learned"
    ROTARY = "rotary"
    ALIBI = "alibi"
    RELATIVE = "relative"


@dataclass(frozen=True, kw_only=True, slots=True)
class Architecture:
    """A decoder-only transformer.

    Symbols follow the formula sheet: L ``n_layers``, h ``d_model``, a ``n_heads``,
    k ``n_kv_heads`` (GQA/MQA when k < a), ``d_head``, f ``d_ff`` (per expert for MoE),
    V ``vocab_size`` (the padded row count of the embedding matrix).
    """

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    vocab_size: int
    ffn: Ffn = Ffn.GELU
    norm: Norm = Norm.LAYERNORM
    bias: bool = False
    qkv_bias: bool = False
    tied_embeddings: bool = False
    position: Position = Position.ROTARY
    max_seq_len: int = 2048
    position_embedding_rows: int | None = None
    n_experts: int = 1
    experts_per_token: int = 1
    parallel_attention: bool = False
    norms_per_layer: int = 2
    embedding_norm: bool = False
    # multi-head latent attention (DeepSeek-V2 §2.1), used when kv_lora_rank is set: queries through
    # an optional rank-q_lora_rank bottleneck, keys and values from one rank-kv_lora_rank latent plus
    # a shared qk_rope_head_dim rotary key; heads of qk_nope_head_dim + qk_rope_head_dim (Q, K) and
    # v_head_dim (V)
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    # sliding-window attention (Beltagy et al. 2020; Mistral 7B): sliding_window_layers of the
    # n_layers layers (all when None) attend to the last sliding_window tokens only
    sliding_window: int | None = None
    sliding_window_layers: int | None = None
    # shared + routed experts (DeepSeekMoE, Dai et al. 2024 §3): n_shared_experts always-active MLPs
    # of width d_ff_shared (default d_ff) beside the routed ones; the first first_k_dense layers have
    # one dense MLP of width d_ff_dense (default d_ff) instead of experts
    n_shared_experts: int = 0
    d_ff_shared: int | None = None
    shared_expert_gate: bool = False
    first_k_dense: int = 0
    d_ff_dense: int | None = None
    router_bias: bool = False
    qk_norm: bool = False
    # one learned attention-sink logit per head and layer (gpt-oss: ``GptOssAttention.sinks``, a
    # softmax term that takes no value: "a learned bias in the denominator of the softmax", OpenAI's
    # gpt-oss-120b & gpt-oss-20b model card, 2025, Architecture)
    attention_sinks: bool = False
    # one RMSNorm over the whole query projection (a*d_head) and one over the whole key projection
    # (k*d_head), not per head (OLMo 2: ``Olmo2Attention.q_norm``/``k_norm``; "2 OLMo 2 Furious", OLMo et al.
    # 2024, arXiv 2501.00656, QK-norm); excludes ``qk_norm``
    qk_norm_full_width: bool = False
    # biases on the four attention projections, Q, K, V and output, but not on the MLP (Phi-3.5-MoE's
    # ``attention_bias``: ``PhimoeAttention.q_proj``...``o_proj``); ``bias`` has them too, ``qkv_bias`` not the output's
    attention_bias: bool = False
    # a bias on the LM head, ``V`` values, kept when the weight is tied (Phi-1/1.5/2: ``PhiForCausalLM.lm_head``
    # is ``nn.Linear(h, V, bias=True)``; Phi-3.5-MoE's ``lm_head_bias``)
    lm_head_bias: bool = False
    # where fields were defaulted or inferred (e.g. from a config.json); not part of the shape
    assumptions: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def q_dim(self) -> int:
        """Width of all query heads together, ``a * d_head``."""
        return self.n_heads * self.d_head

    @property
    def kv_dim(self) -> int:
        """Width of all key (or value) heads together, ``k * d_head``."""
        return self.n_kv_heads * self.d_head

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def moe_layers(self) -> int:
        """Layers with routed experts (all but the ``first_k_dense`` dense ones; 0 when dense)."""
        return self.n_layers - self.first_k_dense if self.is_moe else 0

    @property
    def shared_expert_width(self) -> int:
        """Width of a MoE layer's shared experts taken together, ``n_shared * d_ff_shared`` (0 without
        them). They see the same input and their outputs are summed, so they are one MLP that wide:
        the reference implementations build them so (``DeepseekV3MoE.shared_experts`` is one MLP of
        ``moe_intermediate_size * n_shared_experts``; Qwen2-MoE's one ``shared_expert``)."""
        if not self.is_moe or not self.n_shared_experts:
            return 0
        return self.n_shared_experts * (self.d_ff_shared or self.d_ff)

    @property
    def dense_mlp_layers(self) -> int:
        """Layers with one dense MLP."""
        return self.n_layers - self.moe_layers

    @property
    def local_layers(self) -> int:
        """Layers that attend through the sliding window (0 without one)."""
        if self.sliding_window is None:
            return 0
        return self.n_layers if self.sliding_window_layers is None else self.sliding_window_layers

    @property
    def learned_position_rows(self) -> int:
        """Rows of the learned position table (0 without learned positions)."""
        if self.position is not Position.LEARNED:
            return 0
        return self.position_embedding_rows or self.max_seq_len


@dataclass(frozen=True, kw_only=True, slots=True)
class ParamsOnly:
    """A model known only by its parameter count (``{"n_params": 7e9}``)."""

    n_params: float

    @property
    def active(self) -> float:
        """A bare count is taken as a dense model: every parameter is active."""
        return self.n_params


ModelShape = Architecture | ParamsOnly
"""What a formula receives: a full architecture, or only a parameter count."""
