"""The transformer architecture that every formula reads.

:class:`Architecture` describes a decoder-only transformer the way the papers' model cards do;
:func:`service.core.spec.make_architecture` validates it (every rule names its field). A model known only by its
parameter count is a :class:`ParamsOnly`; formulas that need the shape raise
:class:`~service.core.errors.MissingArchitectureError` for it.
"""

from __future__ import annotations

from dataclasses import dataclass
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
