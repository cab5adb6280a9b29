"""Exact parameter counts of decoder-only transformers.

Counts follow the modules of the reference implementations (GPT-2, GPT-NeoX/Pythia, BLOOM, OPT,
Llama, Mistral, Mixtral, Qwen2, Falcon in HuggingFace ``transformers``) term by term, so that the
totals are exact integers, not approximations such as ``12 * L * h^2``. Tied weights are counted
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from service.core.architecture import Architecture, Ffn, Norm


@dataclass(frozen=True, kw_only=True, slots=True)
class ParamBreakdown:
    """Parameter count of a model, by part.

    ``total`` counts every parameter once; ``active`` counts those used for one token (for a
    mixture of experts only ``experts_per_token`` expert MLPs are active). ``attention``, ``mlp``
    (experts and router) and ``norm`` sum over all layers (``norm`` includes the final norm and an
    embedding norm); ``embedding`` is the token table plus learned positions; ``lm_head`` is 0
    when tied to the embedding.
    """

    total: int
    active: int
    embedding: int
    attention: int
    mlp: int
    norm: int
    lm_head: int

    @property
    def non_embedding(self) -> int:
        """Parameters outside the embedding and LM head: Kaplan et al. 2020's N (§2.1)."""
        return self.total - self.embedding - self.lm_head


def norm_params(arch: Architecture) -> int:
    """Parameters of one norm module: LayerNorm ``2h`` (gain and bias), RMSNorm ``h`` (gain)."""
    return 2 * arch.d_model if arch.norm is Norm.LAYERNORM else arch.d_model


def attention_params_per_layer(arch: Architecture) -> int:
    """Attention parameters of one layer.

    ``h*(a*d_head)`` for Q, ``2*h*(k*d_head)`` for K and V (GQA/MQA shrink only these), and
    ``(a*d_head)*h`` for the output projection (Vaswani et al. 2017 §3.2; Ainslie et al. 2023 for
    GQA). Biases: every projection when ``bias`` (GPT-2, Pythia), only Q/K/V with ``qkv_bias``
    (Qwen2).
    """
    h, q, kv = arch.d_model, arch.q_dim, arch.kv_dim
    weights = h * q + 2 * h * kv + q * h  # q proj + k,v proj + out proj
    if arch.bias:
        return weights + q + 2 * kv + h
    if arch.qkv_bias:
        return weights + q + 2 * kv
    return weights


def mlp_params_per_expert(arch: Architecture) -> int:
    """Parameters of one MLP (one expert of a mixture).

    2-matrix MLP (GELU/ReLU, Vaswani et al. 2017 §3.3): ``2*h*f`` (+ ``f + h`` biases).
    SwiGLU (Shazeer 2020): gate, up and down, ``3*h*f`` (+ ``2f + h`` biases).
    """
    h, f = arch.d_model, arch.d_ff
    if arch.ffn is Ffn.SWIGLU:
        return 3 * h * f + ((2 * f + h) if arch.bias else 0)
    return 2 * h * f + ((f + h) if arch.bias else 0)


def router_params_per_layer(arch: Architecture) -> int:
    """Router of a mixture-of-experts layer: a ``h x n_experts`` linear map, no bias
    (Fedus et al. 2021, Switch Transformer §2.1; Jiang et al. 2024, Mixtral §2.1). 0 when dense."""
    return arch.d_model * arch.n_experts if arch.is_moe else 0


@lru_cache(maxsize=1024)  # a pure function of a frozen, hashable architecture
def count_params(arch: Architecture) -> ParamBreakdown:
    """Exact parameter count of ``arch``.

    total = embedding (``V*h`` + learned positions ``rows*h`` + an embedding norm)
          + L * (attention + n_experts * mlp + router + norms_per_layer * norm)
          + final norm + LM head (``V*h`` unless tied).
    Source: the formula sheet's parameter section (Transformers Math 101; Narayanan et al. 2021
    §5.1 for ``12*L*h^2`` as the MHA/4h special case), checked against the reference
    implementations' module lists (see tests/core/test_params.py).
    """
    h, n_layers = arch.d_model, arch.n_layers
    norm = norm_params(arch)
    embedding = arch.vocab_size * h + arch.learned_position_rows * h
    embedding_norm = norm if arch.embedding_norm else 0
    attention = n_layers * attention_params_per_layer(arch)
    expert = mlp_params_per_expert(arch)
    router = router_params_per_layer(arch)
    mlp = n_layers * (arch.n_experts * expert + router)
    norms = n_layers * arch.norms_per_layer * norm + norm + embedding_norm  # + final norm
    lm_head = 0 if arch.tied_embeddings else arch.vocab_size * h
    total = embedding + attention + mlp + norms + lm_head
    inactive = n_layers * (arch.n_experts - arch.experts_per_token) * expert
    return ParamBreakdown(
        total=total,
        active=total - inactive,
        embedding=embedding,
        attention=attention,
        mlp=mlp,
        norm=norms,
        lm_head=lm_head,
    )


def active_matmul_weights(arch: Architecture) -> int:
    """Weights that take part in a matrix multiply for one token: Q/K/V/O, the active experts'
    MLPs, the router and the logit projection ``V*h`` (computed even when tied). Biases, norms
    and the embedding lookup cost no matmul FLOPs. Megatron-LM's FLOP count is built the same way
    (Narayanan et al. 2021 §5.1)."""
    h, f, n_layers = arch.d_model, arch.d_ff, arch.n_layers
    attention = h * arch.q_dim + 2 * h * arch.kv_dim + arch.q_dim * h
    mlp = (3 if arch.ffn is Ffn.SWIGLU else 2) * h * f
    per_layer = attention + arch.experts_per_token * mlp + router_params_per_layer(arch)
    return n_layers * per_layer + arch.vocab_size * h
