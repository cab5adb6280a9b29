"""Exact parameter counts of decoder-only transformers.

Counts follow the modules of the reference implementations (GPT-2, GPT-NeoX/Pythia, BLOOM, OPT,
Llama, Mistral, Mixtral, Qwen2, Falcon in HuggingFace ``transformers``) term by term, so that the
totals are exact integers, not approximations such as ``12 * L * h^2``. Tied weights are counted
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from service.core.architecture import Architecture, Ffn, Norm
from service.core.recurrent import channel_mix_params, mixer_params, recurrent_linear_shapes, recurrent_matmul_weights
from service.core.shared_blocks import shared_block_norm_params


@dataclass(frozen=True, kw_only=True, slots=True)
class ParamBreakdown:
    """Parameter count of a model, by part.

    ``total`` counts every parameter once; ``active`` counts those used for one token (for a
    mixture of experts only ``experts_per_token`` expert MLPs are active). ``attention``, ``mlp``
    (experts and router) and ``norm`` sum over all layers (``norm`` includes the final norm and an
    embedding norm); ``embedding`` is the token table plus learned positions; ``lm_head`` is 0
    when tied to the embedding (its bias, ``V``, when it has one). In a model with recurrent layers
    ``attention`` holds every layer's token mixer (attention, or the Mamba, Mamba-2, RWKV time-mix,
    Gated DeltaNet or short-convolution mixer; a shared attention block's uses their projections and
    adapters) and ``mlp`` RWKV's channel mixing with the MLPs; a shared block's attention and MLP are
    counted once a block.
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
    GQA). Biases: every projection when ``bias`` (GPT-2, Pythia, gpt-oss) or ``attention_bias`` (Q, K, V
    and output, the MLP keeping none: Phi-3.5-MoE), only Q/K/V with ``qkv_bias`` (Qwen2). ``qk_norm`` adds ``2*d_head`` (a per-head RMSNorm on q and on k, Qwen3); ``qk_norm_full_width``
    adds ``a*d_head + k*d_head`` (one RMSNorm over the whole q and one over the whole k projection:
    ``Olmo2Attention.q_norm``/``k_norm``); ``attention_sinks`` adds ``a``, one learned sink logit per
    head (``GptOssAttention.sinks``; gpt-oss model card, Architecture). ``attention_output_gate`` widens
    the query projection (and its bias) to ``2*a*d_head``, the gate's half (Qiu et al. 2025, "Gated
    Attention for Large Language Models", §2; ``Qwen3NextAttention.q_proj``). A shared attention block
    (Zamba) reads a ``2h``-wide input into Q, K and V (:attr:`Architecture.attention_input_width`).
    """
    if arch.is_mla:
        return mla_params_per_layer(arch)
    h, q, kv, q_proj = arch.d_model, arch.q_dim, arch.kv_dim, arch.q_proj_width
    h_in = arch.attention_input_width
    weights = h_in * q_proj + 2 * h_in * kv + q * h  # q proj (and output gate) + k,v proj + out proj
    qk_norm = 2 * arch.d_head if arch.qk_norm else 0  # RMSNorm over each head's q and k (Qwen3, Gemma 3)
    qk_norm += q + kv if arch.qk_norm_full_width else 0  # RMSNorm over all of q and all of k (OLMo 2)
    qk_norm += arch.n_heads if arch.attention_sinks else 0  # one sink logit per head (gpt-oss)
    if arch.bias or arch.attention_bias:
        return weights + q_proj + 2 * kv + h + qk_norm
    if arch.qkv_bias:
        return weights + q_proj + 2 * kv + qk_norm
    return weights + qk_norm


def mla_params_per_layer(arch: Architecture) -> int:
    """Multi-head latent attention parameters of one layer (DeepSeek-V2, Liu et al. 2024, §2.1.2-2.1.3,
    equations 9-19; module names of ``DeepseekV3Attention`` in ``transformers``).

    With ``a`` heads, ``d_qk = qk_nope_head_dim + qk_rope_head_dim``, ``d_c = kv_lora_rank``,
    ``d_r = qk_rope_head_dim``, ``d_v = v_head_dim``, ``d_q = q_lora_rank``:
    queries ``h*d_q + d_q`` (down-projection and its RMSNorm) ``+ d_q*a*d_qk`` (up), or ``h*a*d_qk``
    without a query rank; keys and values ``h*(d_c + d_r)`` (latent and the shared rotary key)
    ``+ d_c`` (RMSNorm) ``+ d_c*a*(qk_nope_head_dim + d_v)`` (up); output ``a*d_v*h``. With
    ``bias`` or ``attention_bias`` the down-projections and the output carry biases (DeepSeek's
    ``attention_bias``: ``q_a_proj``, ``kv_a_proj_with_mqa`` and ``o_proj`` in ``DeepseekV2Attention``;
    ``bias`` adds the MLPs' too, ``attention_bias`` not).
    """
    h, a = arch.d_model, arch.n_heads
    biased = arch.bias or arch.attention_bias
    nope, rope, d_v = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0, arch.v_head_dim or 0
    d_c, d_qk = arch.kv_lora_rank or 0, nope + rope
    if arch.q_lora_rank:
        d_q = arch.q_lora_rank
        query = h * d_q + d_q + d_q * a * d_qk + (d_q if biased else 0)  # q_a_proj + q_a_layernorm + q_b_proj
    else:
        query = h * a * d_qk  # q_proj
    kv = h * (d_c + rope) + d_c + d_c * a * (nope + d_v) + ((d_c + rope) if biased else 0)  # kv_a + norm + kv_b
    out = a * d_v * h + (h if biased else 0)  # o_proj
    return query + kv + out


def attention_matmul_weights_per_layer(arch: Architecture) -> int:
    """Matrix weights of one layer's attention (what a token multiplies through): Q/K/V/O, or MLA's
    projections (:func:`mla_params_per_layer` without norms and biases)."""
    if not arch.is_mla:  # the output gate's half of the query projection is a matmul too
        h_in = arch.attention_input_width  # 2h into a shared block's Q, K and V (Zamba)
        return h_in * arch.q_proj_width + arch.d_model * arch.q_dim + 2 * h_in * arch.kv_dim
    h, a = arch.d_model, arch.n_heads
    nope, rope, d_v = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0, arch.v_head_dim or 0
    d_c, d_qk = arch.kv_lora_rank or 0, nope + rope
    query = h * arch.q_lora_rank + arch.q_lora_rank * a * d_qk if arch.q_lora_rank else h * a * d_qk
    return query + h * (d_c + rope) + d_c * a * (nope + d_v) + a * d_v * h


def mlp_params(arch: Architecture, d_ff: int) -> int:
    """Parameters of one MLP of width ``d_ff`` (see :func:`mlp_params_per_expert`)."""
    h = arch.d_model
    if arch.ffn is Ffn.SWIGLU:
        return 3 * h * d_ff + ((2 * d_ff + h) if arch.bias else 0)
    return 2 * h * d_ff + ((d_ff + h) if arch.bias else 0)


def shared_expert_params_per_layer(arch: Architecture) -> int:
    """Always-active shared experts of one MoE layer (DeepSeekMoE, Dai et al. 2024 §3.2), one MLP
    of :attr:`Architecture.shared_expert_width` (biases included once); Qwen2-MoE adds a ``h x 1``
    sigmoid gate on their output."""
    if not arch.shared_expert_width:
        return 0
    gate = arch.d_model if arch.shared_expert_gate else 0
    return mlp_params(arch, arch.shared_expert_width) + gate


def dense_mlp_params(arch: Architecture) -> int:
    """The MLP of a dense layer: width ``d_ff_dense`` in a mixture's first dense layers (DeepSeek's
    ``intermediate_size``), else ``d_ff``."""
    return mlp_params(arch, (arch.d_ff_dense or arch.d_ff) if arch.is_moe else arch.d_ff)


def mlp_params_per_expert(arch: Architecture) -> int:
    """Parameters of one MLP (one expert of a mixture).

    2-matrix MLP (GELU/ReLU, Vaswani et al. 2017 §3.3): ``2*h*f`` (+ ``f + h`` biases).
    SwiGLU (Shazeer 2020): gate, up and down, ``3*h*f`` (+ ``2f + h`` biases).
    """
    return mlp_params(arch, arch.d_ff)


def router_params_per_layer(arch: Architecture) -> int:
    """Router of a mixture-of-experts layer: a ``h x n_experts`` linear map, no bias
    (Fedus et al. 2021, Switch Transformer §2.1; Jiang et al. 2024, Mixtral §2.1). 0 when dense.
    ``router_bias``: DeepSeek-V3's per-expert load-balancing bias (DeepSeek-V3 §2.1.2, auxiliary-loss-free
    balancing) adds ``n_experts``."""
    if not arch.is_moe:
        return 0
    return arch.d_model * arch.n_experts + (arch.n_experts if arch.router_bias else 0)


@lru_cache(maxsize=1024)  # a pure function of a frozen, hashable architecture
def count_params(arch: Architecture) -> ParamBreakdown:
    """Exact parameter count of ``arch``.

    total = embedding (``V*h`` + learned positions ``rows*h`` + an embedding norm)
          + L * (attention + n_experts * mlp + router + norms_per_layer * norm)
          + final norm + LM head (``V*h`` unless tied).
    A shared attention block's attention, MLP and two norms are counted once a block (Zamba,
    :mod:`service.core.shared_blocks`), what each use adds with the mixers.
    Source: the formula sheet's parameter section (Transformers Math 101; Narayanan et al. 2021
    §5.1 for ``12*L*h^2`` as the MHA/4h special case), checked against the reference
    implementations' module lists (see tests/core/test_params.py).
    """
    h, n_layers = arch.d_model, arch.n_layers
    norm = norm_params(arch)
    embedding = arch.vocab_size * h + arch.learned_position_rows * h
    embedding_norm = norm if arch.embedding_norm else 0
    # token mixers: attention layers, then the recurrent layers' mixers (service.core.recurrent)
    attention = arch.attention_weight_layers * attention_params_per_layer(arch) + mixer_params(arch)
    expert = mlp_params_per_expert(arch)
    router = router_params_per_layer(arch)
    # MoE layers: routed experts + router + shared experts; dense layers (all of a dense model,
    # the first_k_dense of a mixture): one MLP
    moe_layer = arch.n_experts * expert + router + shared_expert_params_per_layer(arch)
    mlp = arch.moe_layers * moe_layer + arch.dense_mlp_weight_layers * dense_mlp_params(arch) + channel_mix_params(arch)
    norms = n_layers * arch.norms_per_layer * norm + norm + embedding_norm  # + final norm
    norms += shared_block_norm_params(arch)  # a shared block's two norms (Zamba)
    # + V for an LM-head bias (PhiForCausalLM.lm_head), which tying the weight leaves in place
    lm_head = (0 if arch.tied_embeddings else arch.vocab_size * h) + (arch.vocab_size if arch.lm_head_bias else 0)
    total = embedding + attention + mlp + norms + lm_head
    inactive = arch.moe_layers * (arch.n_experts - arch.experts_per_token) * expert
    return ParamBreakdown(
        total=total,
        active=total - inactive,
        embedding=embedding,
        attention=attention,
        mlp=mlp,
        norm=norms,
        lm_head=lm_head,
    )


def attention_linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count per layer, in_features, out_features)`` of one layer's attention projections:
    Q, K, V and O, or multi-head latent attention's ``q_proj`` (or ``q_a_proj`` and ``q_b_proj``),
    ``kv_a_proj_with_mqa``, ``kv_b_proj`` and ``o_proj`` (DeepSeek-V2 §2.1; the shapes of
    :func:`attention_matmul_weights_per_layer`)."""
    h = arch.d_model
    if not arch.is_mla:
        h_in = arch.attention_input_width  # 2h into a shared block's Q, K and V (Zamba)
        return [(1, h_in, arch.q_proj_width), (2, h_in, arch.kv_dim), (1, arch.q_dim, h)]
    a = arch.n_heads
    nope, rope, d_v = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0, arch.v_head_dim or 0
    d_c = arch.kv_lora_rank or 0
    query = (
        [(1, h, arch.q_lora_rank), (1, arch.q_lora_rank, a * (nope + rope))] if arch.q_lora_rank else [(1, h, a * (nope + rope))]
    )
    return query + [(1, h, d_c + rope), (1, d_c, a * (nope + d_v)), (1, a * d_v, h)]


def mlp_linear_shapes(arch: Architecture, d_ff: int) -> list[tuple[int, int, int]]:
    """``(count, in_features, out_features)`` of one MLP of width ``d_ff``: up and down, and the
    gate of a SwiGLU MLP (Shazeer 2020)."""
    h = arch.d_model
    return [(2 if arch.ffn is Ffn.SWIGLU else 1, h, d_ff), (1, d_ff, h)]


def block_linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count, in_features, out_features)`` of every linear layer of the blocks, all layers (what
    a weight quantiser converts): attention (:func:`attention_linear_shapes`), the dense layers'
    MLP, in a mixture every routed expert's MLP and the shared experts' one wide MLP, and the recurrent
    layers' projections (:func:`~service.core.recurrent.recurrent_linear_shapes`). Routers, norms, biases,
    embeddings and the LM head are not in it. Their weights add up to the blocks' matmul weights
    of :func:`count_params` (a shared attention block's once a block)."""
    shapes = [(arch.attention_weight_layers * n, i, o) for n, i, o in attention_linear_shapes(arch)]
    dense_width = (arch.d_ff_dense or arch.d_ff) if arch.is_moe else arch.d_ff
    if arch.dense_mlp_weight_layers:
        shapes += [(arch.dense_mlp_weight_layers * n, i, o) for n, i, o in mlp_linear_shapes(arch, dense_width)]
    if arch.moe_layers:
        shapes += [(arch.moe_layers * arch.n_experts * n, i, o) for n, i, o in mlp_linear_shapes(arch, arch.d_ff)]
        if arch.shared_expert_width:
            shapes += [(arch.moe_layers * n, i, o) for n, i, o in mlp_linear_shapes(arch, arch.shared_expert_width)]
    return shapes + recurrent_linear_shapes(arch)


def active_matmul_weights(arch: Architecture) -> int:
    """Weights that take part in a matrix multiply for one token: Q/K/V/O, the active experts'
    MLPs, the router and the logit projection ``V*h`` (computed even when tied). Biases, norms
    and the embedding lookup cost no matmul FLOPs. Megatron-LM's FLOP count is built the same way
    (Narayanan et al. 2021 §5.1). A shared attention block's weights count once a use (Zamba)."""
    h = arch.d_model
    matrices = 3 if arch.ffn is Ffn.SWIGLU else 2
    attention = attention_matmul_weights_per_layer(arch)
    moe_mlp = (
        arch.experts_per_token * matrices * h * arch.d_ff + matrices * h * arch.shared_expert_width + h * arch.n_experts  # router
    )
    dense_mlp = matrices * h * ((arch.d_ff_dense or arch.d_ff) if arch.is_moe else arch.d_ff)
    mixers = arch.attention_layers * attention + recurrent_matmul_weights(arch)  # + Mamba/RWKV projections
    return mixers + arch.moe_layers * moe_mlp + arch.dense_mlp_layers * dense_mlp + arch.vocab_size * h


def weight_reads_per_token(arch: Architecture) -> float:
    """How many times a decode step reads the stored weights, as a multiple of them: once, less the input
    embedding of a model whose LM head is its own matrix (an embedding lookup reads the rows of the step's
    tokens, ``torch.nn.functional.embedding``'s gather, not the table; a tied table is read whole by the
    head), plus each use of a shared attention block beyond its first reads the block's attention and MLP
    again (Zamba: a block of Zamba2 7B's is over 600 MB in bf16, far beyond a GPU's L2 cache, so every use
    streams it from HBM). The parts' bytes are taken at the model's mean bytes a parameter."""
    params = count_params(arch)
    reads = 1.0 - (0.0 if arch.tied_embeddings else params.embedding / params.total)
    extra_uses = arch.shared_attention_layers - arch.shared_blocks
    if extra_uses <= 0:
        return reads
    return reads + extra_uses * (attention_params_per_layer(arch) + dense_mlp_params(arch)) / params.total


def expert_missed(arch: Architecture, tokens: Any) -> Any:
    """The chance that ``tokens`` routed tokens all miss a given routed expert of a layer, each
    picking ``k`` of the ``E`` with routing balanced over the experts: ``(1 - k/E)^tokens``
    (:func:`unread_expert_share`); scalars or arrays."""
    return np.power(1.0 - arch.experts_per_token / arch.n_experts, tokens)


def unread_expert_share(arch: Architecture, tokens: Any) -> Any:
    """The share of the stored weights a decode step over ``tokens`` routed tokens leaves unread: the
    routed experts none of them picks. Each token picks ``k`` of the ``E`` experts of a layer; with
    routing balanced over the experts (what the load-balancing loss aims at: Fedus et al. 2022,
    Switch Transformer §2.2; DeepSeek-V3 §2.1.2) one token misses a given expert with probability
    ``1 - k/E``, all ``tokens`` with ``(1 - k/E)^tokens``, so the step streams ``E (1 - (1 - k/E)^tokens)``
    experts a layer from HBM (the union over the batch, "reuse fragmentation": Adhinarayanan &
    Jayasena 2026, arXiv:2603.08960). The experts' bytes are taken at the model's mean bytes a
    parameter; 0 for a dense model."""
    if not arch.moe_layers:
        return 0.0
    routed = arch.moe_layers * arch.n_experts * mlp_params_per_expert(arch)
    return routed / count_params(arch).total * expert_missed(arch, tokens)
