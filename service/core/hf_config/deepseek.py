"""Mappers of DeepSeek-V2 and V3 (multi-head latent attention; DeepSeekMoE: ``first_k_dense_replace``
dense layers, then routed and shared experts) and of GLM-4.5 / GLM-4.6 (``glm4_moe``), which keeps
grouped-query attention but takes DeepSeek-V3's expert layout and its ``e_score_correction_bias`` router.

A new family with MLA, or with DeepSeek's expert keys (``n_routed_experts``, ``n_shared_experts``,
``first_k_dense_replace``), goes here; its ``model_type`` into ``MAPPERS`` in :mod:`service.core.hf_config`.
"""

from __future__ import annotations

from typing import Any

from service.core.errors import InvalidSpecError
from service.core.hf_config.common import _common_decoder, _gated_ffn, _int_key, _max_positions, _Reader


def _map_deepseek(r: _Reader, model_type: str) -> dict[str, Any]:
    v3 = model_type == "deepseek_v3"
    f = _common_decoder(r, model_type)
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", False))
    f["max_seq_len"] = _max_positions(r, 4096 if v3 else 2048)
    if r.optional("attention_bias", False):  # q_a_proj, kv_a_proj_with_mqa, o_proj; the MLPs keep none
        f["attention_bias"] = True
        r.assumptions["attention_bias"] = "true: biases counted on the MLA down- and output projections"
    if not v3 and r.optional("mlp_bias", False):  # DeepseekV2MLP only: dense and shared experts, not routed ones
        raise InvalidSpecError(
            f"{r.prefix}.mlp_bias", "biases on the dense and shared-expert MLPs but not the routed experts are not modelled"
        )
    f.pop("d_head", None)
    f.pop("n_kv_heads", None)
    f["q_lora_rank"] = r.optional("q_lora_rank", 1536)
    f["kv_lora_rank"] = r.optional("kv_lora_rank", 512)
    f["qk_nope_head_dim"] = r.optional("qk_nope_head_dim", 128)
    f["qk_rope_head_dim"] = r.optional("qk_rope_head_dim", 64)
    f["v_head_dim"] = r.optional("v_head_dim", 128)
    n_experts = r.optional("n_routed_experts", 256 if v3 else 64)
    if n_experts is not None:  # null: a dense model
        n_experts = _int_key(r, "n_routed_experts", 256 if v3 else 64)
    if n_experts and n_experts > 1:
        top_k = r.config.get("num_experts_per_tok")
        if top_k is None:
            r.missing.append("num_experts_per_tok")
            r.check_missing(model_type)
        first_dense = _int_key(r, "first_k_dense_replace", 3 if v3 else 0)
        if r.config.get("moe_layer_freq", 1) != 1:
            r.assumptions["moe_layer_freq"] = (
                "ignored: the transformers implementation puts experts in every layer after first_k_dense_replace"
            )
        f["d_ff_dense"] = f["d_ff"]
        f["d_ff"] = _int_key(r, "moe_intermediate_size", 2048 if v3 else 1407, minimum=1)
        r.key_names |= {"d_ff": "moe_intermediate_size", "n_experts": "n_routed_experts"}
        f["n_experts"] = n_experts
        f["experts_per_token"] = top_k
        shared = r.optional("n_shared_experts", 1 if v3 else 2)
        if shared is not None:  # null: no shared experts
            shared = _int_key(r, "n_shared_experts", 1 if v3 else 2)
        if shared:
            # one MLP of width moe_intermediate_size * n_shared_experts (DeepseekV3MoE.shared_experts)
            f["n_shared_experts"] = shared
        f["first_k_dense"] = first_dense
        f["router_bias"] = v3  # e_score_correction_bias (a buffer in transformers, stored in the checkpoint)
        if v3:
            r.assumptions["router_bias"] = (
                "e_score_correction_bias counted (n_routed_experts per MoE layer: stored in the checkpoint, "
                "a buffer in transformers)"
            )
    if v3 and r.config.get("num_nextn_predict_layers"):
        r.assumptions["num_nextn_predict_layers"] = (
            "the multi-token-prediction module is not counted (transformers does not build it; DeepSeek-V3's "
            "671B excludes its 14B)"
        )
    return f


def _map_glm4_moe(r: _Reader) -> dict[str, Any]:
    """GLM-4.5 / GLM-4.6 (``modeling_glm4_moe.py``; GLM-4.5 report, Zeng et al. 2025, §2.1): GQA
    attention with Q/K/V biases when ``attention_bias`` (the output projection has none), a per-head
    q/k RMSNorm when ``use_qk_norm``, partial rotary (no parameters); the first
    ``first_k_dense_replace`` layers keep a dense MLP of ``intermediate_size``, the others hold
    ``n_routed_experts`` experts of ``moe_intermediate_size``, one shared MLP of
    ``moe_intermediate_size * n_shared_experts`` and DeepSeek-V3's sigmoid router with its
    ``e_score_correction_bias`` (a buffer in transformers, stored in the checkpoint: counted)."""
    f = _common_decoder(r, "glm4_moe", kv_default=8)
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", False))
    f["max_seq_len"] = _max_positions(r, 131072)
    if r.optional("attention_bias", False):
        f["qkv_bias"] = True  # q, k, v with bias; o_proj without
    f["qk_norm"] = bool(r.optional("use_qk_norm", False))
    n_experts = _int_key(r, "n_routed_experts", 128, minimum=2)
    first_dense = _int_key(r, "first_k_dense_replace", 1)
    if isinstance(f["n_layers"], int) and first_dense >= f["n_layers"]:
        r.assumptions["first_k_dense_replace"] = f"{first_dense}: every layer keeps a dense MLP (no experts are built)"
        return f
    f["d_ff_dense"] = f["d_ff"]
    f["d_ff"] = r.optional("moe_intermediate_size", 1408)
    r.key_names |= {"d_ff": "moe_intermediate_size", "n_experts": "n_routed_experts", "d_ff_dense": "intermediate_size"}
    f["n_experts"] = n_experts
    f["experts_per_token"] = r.optional("num_experts_per_tok", 8)
    f["n_shared_experts"] = _int_key(r, "n_shared_experts", 1)
    f["first_k_dense"] = first_dense
    f["router_bias"] = True
    r.assumptions["router_bias"] = (
        "e_score_correction_bias counted (n_routed_experts per MoE layer: stored in the checkpoint, a buffer in transformers)"
    )
    for key in ("num_nextn_predict_layers", "num_mtp_layers"):
        if r.config.get(key):
            r.assumptions[key] = "the multi-token-prediction layer is not counted (transformers does not build it)"
    return f
