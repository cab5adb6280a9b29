"""Mappers of the mixture-of-experts families with grouped-query attention: routed experts (in every
layer or in some, the others dense) behind a router, with or without shared experts.

mixtral, qwen2_moe, qwen3_moe, gpt_oss, llama4_text, olmoe, granitemoe, granitemoeshared, dbrx,
phimoe. A new MoE family goes here, unless it has multi-head latent attention or DeepSeek's expert
layout (:mod:`.deepseek`); its ``model_type`` goes into ``MAPPERS`` in :mod:`service.core.hf_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.core.architecture import Ffn, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import (
    _common_decoder,
    _gated_ffn,
    _head_dim_of_hidden,
    _int_key,
    _layer_count,
    _llama_like,
    _max_positions,
    _nested,
    _qwen_window,
    _Reader,
    _refuse_attention_bias,
    _sliding_layers,
)
from service.core.limits import MAX_LAYERS


def _map_mixtral(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "mixtral", max_pos=4096 * 32, tie=False, window_rule=lambda i: True, kv_default=8)
    f["n_experts"] = r.optional("num_local_experts", 8)
    f["experts_per_token"] = r.optional("num_experts_per_tok", 2)
    r.key_names["n_experts"] = "num_local_experts"
    return f


def _qwen_moe_layers(r: _Reader, f: dict[str, Any], *, experts: int, top_k: int, moe_ff: int) -> bool:
    """The sparse layers of Qwen2-MoE and Qwen3-MoE (``Qwen2MoeDecoderLayer``, ``Qwen3MoeDecoderLayer``):
    layer ``i`` has ``num_experts`` routed experts of ``moe_intermediate_size`` and a bias-free router
    unless it is in ``mlp_only_layers``, when ``num_experts > 0`` and ``(i + 1) % decoder_sparse_step
    == 0``; the other layers keep a dense MLP of ``intermediate_size``. The defaults are the config
    class's. True when some layer is sparse."""
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return False  # the spec check names num_hidden_layers
    step = _int_key(r, "decoder_sparse_step", 1, minimum=1)
    r.optional("mlp_only_layers", None)  # said when absent
    mlp_only = set(_int_list(r, "mlp_only_layers") or [])
    n_experts = _int_key(r, "num_experts", experts)
    moe = [i for i in range(n_layers) if i not in mlp_only and n_experts > 0 and (i + 1) % step == 0]
    if not (n_experts > 1 and moe):
        return False
    dense = n_layers - len(moe)
    f["d_ff_dense"] = f["d_ff"]  # dense layers keep intermediate_size
    f["d_ff"] = r.optional("moe_intermediate_size", moe_ff)
    r.key_names["d_ff"] = "moe_intermediate_size"
    f["n_experts"] = n_experts
    f["experts_per_token"] = r.optional("num_experts_per_tok", top_k)
    f["first_k_dense"] = dense
    if dense:
        r.assumptions["first_k_dense"] = (
            f"{dense} dense layers (mlp_only_layers / decoder_sparse_step); their order does not change the counts"
        )
    return True


def _map_qwen2_moe(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "qwen2_moe", max_pos=32768, tie=False, window_rule=None, kv_default=16)
    f["qkv_bias"] = bool(r.optional("qkv_bias", True))
    if _qwen_moe_layers(r, f, experts=60, top_k=4, moe_ff=1408):
        shared = r.optional("shared_expert_intermediate_size", 5632)
        if shared:
            f["n_shared_experts"], f["d_ff_shared"], f["shared_expert_gate"] = 1, shared, True
    _qwen_window(r, f, lambda i, max_window: bool((i + 1) % 2) and i < max_window)
    return f


def _map_qwen3_moe(r: _Reader) -> dict[str, Any]:
    """Qwen3-MoE (Qwen3 Technical Report, Yang et al. 2025, §2 and Table 2: 128 experts, 8 routed per
    token, no shared experts; ``modeling_qwen3_moe.py``): Qwen3's attention (``head_dim`` given, which
    need not be ``hidden_size / num_attention_heads``; RMSNorm on q and k per head) with Qwen2-MoE's
    layer rule. ``norm_topk_prob`` only rescales the routing weights: no parameters, no FLOPs counted.
    With ``use_sliding_window`` every layer uses the window (the config class has no per-layer rule)."""
    f = _llama_like(r, "qwen3_moe", max_pos=32768, tie=False, window_rule=None, kv_default=4)
    f["qk_norm"] = True  # Qwen3MoeAttention: q_norm, k_norm over head_dim
    if _qwen_moe_layers(r, f, experts=128, top_k=8, moe_ff=768):
        renormalised = r.optional("norm_topk_prob", False)
        r.assumptions["norm_topk_prob"] = (
            f"{bool(renormalised)}: the top-k routing weights are {'' if renormalised else 'not '}renormalised "
            "(no parameters; counts and FLOPs unchanged)"
        )
    if r.config.get("use_sliding_window"):
        window = r.optional("sliding_window", 4096)
        f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: True)
    return f


def _map_gpt_oss(r: _Reader) -> dict[str, Any]:
    """gpt-oss (OpenAI's gpt-oss-120b & gpt-oss-20b model card, 2025, Architecture;
    ``modeling_gpt_oss.py``): GQA attention with biases on Q, K, V and O and one learned sink logit
    per head; every layer a mixture of ``num_local_experts`` SwiGLU experts whose fused gate/up and
    down projections carry biases, routed by a linear router with a bias; layers alternate between a
    ``sliding_window`` (128) band and full attention (``layer_types``, by default the even layers
    slide); ``head_dim`` 64 unless given (the config class's default)."""
    f = _common_decoder(r, "gpt_oss", kv_default=8)
    if "head_dim" not in r.config:
        f["d_head"] = 64
        r.assumptions["head_dim"] = "not given; 64 (the transformers default)"
    if not r.optional("attention_bias", True):
        raise InvalidSpecError(
            f"{r.prefix}.attention_bias", "gpt-oss without attention biases is not modelled (its experts keep theirs)"
        )
    f |= {
        "ffn": Ffn.SWIGLU,  # the clamped SwiGLU of swiglu_alpha / swiglu_limit: no parameters
        "bias": True,  # q/k/v/o biases, each expert's gate_up and down biases
        "attention_sinks": True,
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": _max_positions(r, 131072),
        "n_experts": _int_key(r, "num_local_experts", 128, minimum=2),
        "experts_per_token": r.optional("num_experts_per_tok", 4),
        "router_bias": True,  # GptOssTopKRouter.bias
    }
    r.key_names["n_experts"] = "num_local_experts"
    window = r.optional("sliding_window", 128)
    f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: bool((i + 1) % 2))
    return f


def _int_list(r: _Reader, name: str) -> list[int] | None:
    """A list-of-integers key (``moe_layers``, ``no_rope_layers``), None when absent or null; refused
    naming the key when it is anything else."""
    value = r.config.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise InvalidSpecError(f"{r.prefix}.{name}", f"must be a list of integers, got {value!r:.40}")
    return value


def _llama4_chunked_layers(r: _Reader, n_layers: int) -> int:
    """How many layers attend in chunks (``Llama4TextConfig.__post_init__``): ``layer_types`` when it
    lists every layer, else the RoPE layers (``no_rope_layers[i] == 1``; by default all but each
    ``no_rope_layer_interval``-th, 4) while ``attention_chunk_size`` is set. The NoPE layers attend
    over the whole context and have the same modules (no parameters either way)."""
    types = r.config.get("layer_types")
    if isinstance(types, list) and len(types) == n_layers:
        return sum(1 for t in types if t == "chunked_attention")
    no_rope = _int_list(r, "no_rope_layers")
    if no_rope:  # an empty list takes the default, as the config class does
        if len(no_rope) < n_layers:
            raise InvalidSpecError(f"{r.prefix}.no_rope_layers", f"must list at least num_hidden_layers={n_layers} entries")
        return sum(1 for i in range(n_layers) if no_rope[i])
    interval = _int_key(r, "no_rope_layer_interval", 4, minimum=1)
    return sum(1 for i in range(n_layers) if (i + 1) % interval != 0)


def _map_llama4_text(r: _Reader) -> dict[str, Any]:
    """The language model of Llama 4 Scout and Maverick (``modeling_llama4.py``: ``Llama4TextModel``;
    Meta's Llama 4 model cards, 2025: 17B active of 109B and 400B with the vision encoder).

    Llama's attention without biases (``attention_bias`` puts one on q, k, v and o alike: refused, as
    the MLPs keep none) and two RMSNorms a layer. A layer listed in ``moe_layers`` (by default every
    ``interleave_moe_layer_step``-th, from layer ``step - 1``) holds ``num_local_experts`` routed
    experts of ``intermediate_size`` (fused ``gate_up_proj`` ``E x h x 2f`` and ``down_proj``
    ``E x f x h``: ``3hf`` each, as three matrices), a bias-free router ``h x E`` choosing
    ``num_experts_per_tok``, and one always-on ``shared_expert`` MLP of ``intermediate_size``
    (``Llama4TextMoe``); the other layers hold one dense MLP of ``intermediate_size_mlp``
    (``Llama4TextMLP``). ``use_qk_norm`` is an L2 norm without weights (``Llama4TextL2Norm``).
    Defaults are ``Llama4TextConfig``'s (Scout's shape: 8 KV heads, ``head_dim`` 128)."""
    f = _common_decoder(r, "llama4_text", kv_default=8)
    if "head_dim" not in r.config:
        f["d_head"] = 128
        r.assumptions["head_dim"] = "not given; 128 (the transformers default)"
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", False))
    f["max_seq_len"] = _max_positions(r, 4096 * 32)
    _refuse_attention_bias(r)
    if r.optional("use_qk_norm", True):
        r.assumptions["use_qk_norm"] = "an L2 norm of q and k on the RoPE layers: no parameters"
    n_layers = f["n_layers"]
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 0 < n_layers <= MAX_LAYERS:
        return f  # the spec check names num_hidden_layers
    listed = _int_list(r, "moe_layers")
    if listed is None:
        step = _int_key(r, "interleave_moe_layer_step", 1, minimum=1)
        moe = len(range(step - 1, n_layers, step))
    else:
        moe = len(set(listed) & set(range(n_layers)))
    dense_width = r.optional("intermediate_size_mlp", 16384)
    if moe == 0:
        r.assumptions["moe_layers"] = "no layer holds experts: every layer is a dense MLP of intermediate_size_mlp"
        f["d_ff"] = dense_width
        r.key_names["d_ff"] = "intermediate_size_mlp"
    else:
        f |= {
            "n_experts": _int_key(r, "num_local_experts", 16, minimum=2),
            "experts_per_token": r.optional("num_experts_per_tok", 1),
            "n_shared_experts": 1,  # Llama4TextMoe.shared_expert: one MLP of intermediate_size
            "first_k_dense": n_layers - moe,
        }
        r.key_names |= {"n_experts": "num_local_experts", "first_k_dense": "moe_layers"}
        if moe < n_layers:
            f["d_ff_dense"] = dense_width
            r.key_names["d_ff_dense"] = "intermediate_size_mlp"
            r.assumptions["first_k_dense"] = (
                f"{n_layers - moe} dense layers of intermediate_size_mlp, interleaved with the {moe} MoE layers (not first): "
                "counts and FLOPs are the same; a pipeline stage holds a different mix than the first-k layout suggests"
            )
    chunk = r.optional("attention_chunk_size", 8192)
    chunked = _llama4_chunked_layers(r, n_layers) if chunk is not None else 0
    if chunked:
        f["sliding_window"], f["sliding_window_layers"] = chunk, (None if chunked == n_layers else chunked)
        r.key_names["sliding_window"] = "attention_chunk_size"
        r.assumptions["attention_chunk_size"] = (
            f"chunked attention on {chunked} of {n_layers} layers modelled as a sliding window of {chunk}: the cache "
            f"holds at most {chunk} tokens either way, but a chunk's token attends to 1 to {chunk} earlier tokens "
            f"(about half a chunk on average), a window's to {chunk}: attention FLOPs past {chunk} tokens are overstated"
        )
    return f


def _experts_key(r: _Reader, primary: str, alias: str) -> str:
    """The key a config gives its expert count by: ``primary``, or ``alias`` where only that is given
    (the config class's ``attribute_map`` reads one as the other)."""
    return alias if alias in r.config and primary not in r.config else primary


def _map_olmoe(r: _Reader) -> dict[str, Any]:
    """OLMoE (Muennighoff et al. 2024, "OLMoE: Open Mixture-of-Experts Language Models", arXiv
    2409.02060, §2; ``modeling_olmoe.py``): Llama's attention without biases (``attention_bias`` puts
    one on q, k, v and o: refused) with an RMSNorm over the whole query (``q_norm``: ``hidden_size``
    weights) and the whole key projection (``k_norm``: ``k*d_head``), as OLMo 2; every layer holds
    ``num_experts`` SwiGLU experts of ``intermediate_size`` (fused ``gate_up_proj`` and ``down_proj``)
    and a bias-free router (``OlmoeTopKRouter``) choosing ``num_experts_per_tok``; two RMSNorms a layer.
    ``clip_qkv`` and ``norm_topk_prob`` have no parameters."""
    f = _llama_like(r, "olmoe", max_pos=4096, tie=False, window_rule=None)
    _head_dim_of_hidden(r, f, "olmoe")  # q_norm is hidden_size wide
    _refuse_attention_bias(r)
    key = _experts_key(r, "num_experts", "num_local_experts")
    f |= {
        "qk_norm_full_width": True,
        "n_experts": _int_key(r, key, 64, minimum=2),
        "experts_per_token": r.optional("num_experts_per_tok", 8),
    }
    r.key_names["n_experts"] = key
    return f


def _map_granitemoe(r: _Reader, model_type: str = "granitemoe") -> dict[str, Any]:
    """IBM Granite 3.0 MoE (``modeling_granitemoe.py``; ``granitemoeshared`` adds one shared MLP):
    Llama's attention without biases (``attention_bias`` puts one on q, k, v and o: refused), every
    layer ``num_local_experts`` SwiGLU experts of ``intermediate_size`` (fused ``gate_up_proj``,
    ``down_proj``) behind a bias-free router (``GraniteMoeTopKRouter``); with ``granitemoeshared``,
    a ``shared_mlp`` of ``shared_intermediate_size`` (gated, ``input_linear`` ``h x 2s`` and
    ``output_linear``, no gate on its output) when that is not 0. The multipliers scale activations
    only: no parameters."""
    f = _llama_like(r, model_type, max_pos=2048, tie=False, window_rule=None)
    _refuse_attention_bias(r)
    key = _experts_key(r, "num_local_experts", "num_experts")
    f |= {"n_experts": _int_key(r, key, 8, minimum=2), "experts_per_token": r.optional("num_experts_per_tok", 2)}
    r.key_names["n_experts"] = key
    r.assumptions["multipliers"] = "embedding/residual/attention multipliers and logits_scaling scale activations: no parameters"
    if model_type == "granitemoeshared":
        shared = _int_key(r, "shared_intermediate_size", 0)
        if shared:
            f |= {"n_shared_experts": 1, "d_ff_shared": shared}
    return f


def _map_dbrx(r: _Reader) -> dict[str, Any]:
    """DBRX (Databricks' DBRX model card and "Introducing DBRX", 2024: 132B total, 36B active;
    ``modeling_dbrx.py``): a fused ``Wqkv`` (``h x (h + 2*k*d_head)``, ``d_head = d_model / n_heads``)
    and ``out_proj`` without biases, KV heads from ``attn_config.kv_n_heads``; every layer holds
    ``ffn_config.moe_num_experts`` GLU experts (``w1``, ``v1``, ``w2``: ``3*h*f`` each, ``f =
    ffn_hidden_size``) behind a bias-free router choosing ``moe_top_k``; two LayerNorms a layer and a
    final one, all without bias (``nn.LayerNorm(d_model, bias=False)``: ``h`` weights each, counted as
    an RMSNorm's). Tied embeddings are refused by the config class itself."""
    f: dict[str, Any] = {
        "n_layers": r.required("n_layers"),
        "d_model": r.required("d_model"),
        "n_heads": r.required("n_heads"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing("dbrx")
    if r.optional("tie_word_embeddings", False):
        raise InvalidSpecError(
            f"{r.prefix}.tie_word_embeddings", "DBRX does not tie its embeddings (its config class refuses it)"
        )
    attn, ffn = _nested(r, "attn_config"), _nested(r, "ffn_config")
    act = ffn.optional("ffn_act_fn", {"name": "silu"})
    if not isinstance(act, Mapping):
        raise InvalidSpecError(f"{ffn.prefix}.ffn_act_fn", f"must be a JSON object such as {{'name': 'silu'}}, got {act!r:.40}")
    f |= {
        "n_kv_heads": attn.optional("kv_n_heads", 1),
        "d_ff": ffn.optional("ffn_hidden_size", 3584),
        "n_experts": _int_key(ffn, "moe_num_experts", 4, minimum=2),
        "experts_per_token": ffn.optional("moe_top_k", 1),
        "ffn": Ffn.SWIGLU,  # w1 (gate), v1 (up), w2 (down) whatever the activation
        "norm": Norm.RMSNORM,  # LayerNorm without bias: h weights, as an RMSNorm
        "position": Position.ROTARY,
        "tied_embeddings": False,
        "max_seq_len": r.optional("max_seq_len", 2048),
    }
    for sub in (attn, ffn):
        r.assumptions |= {f"{sub.prefix.removeprefix(r.prefix + '.')}.{k}": v for k, v in sub.assumptions.items()}
    r.assumptions["norm"] = "LayerNorms without bias (h weights each), counted as RMSNorms"
    r.key_names |= {
        "n_layers": "n_layers", "d_model": "d_model", "n_heads": "n_heads", "max_seq_len": "max_seq_len",
        "n_kv_heads": "attn_config.kv_n_heads", "d_ff": "ffn_config.ffn_hidden_size",
        "n_experts": "ffn_config.moe_num_experts", "experts_per_token": "ffn_config.moe_top_k",
    }  # fmt: skip
    return f


def _map_phimoe(r: _Reader) -> dict[str, Any]:
    """Phi-3.5-MoE (Abdin et al. 2024, "Phi-3 Technical Report", arXiv 2404.14219, §2 and the
    Phi-3.5-MoE card: 16 experts, 2 routed, 42B total / 6.6B active; ``modeling_phimoe.py``): GQA
    attention with biases on q, k, v and o when ``attention_bias`` (:attr:`Architecture.attention_bias`;
    the experts have none), every layer ``num_local_experts`` SwiGLU experts of ``intermediate_size``
    behind a bias-free router (``PhimoeTopKRouter``), two LayerNorms with bias a layer and a final one
    (``nn.LayerNorm``, eps from ``rms_norm_eps``), an LM head with a bias when ``lm_head_bias``;
    ``sliding_window`` on every layer when set. The jitter noises have no parameters."""
    f = _llama_like(r, "phimoe", max_pos=4096 * 32, tie=False, window_rule=lambda i: True, kv_default=8)
    if r.config.get("sliding_window") is None:
        f["sliding_window"], f["sliding_window_layers"] = None, None
    key = _experts_key(r, "num_local_experts", "num_experts")
    f |= {
        "norm": Norm.LAYERNORM,
        "attention_bias": bool(r.optional("attention_bias", False)),
        "lm_head_bias": bool(r.optional("lm_head_bias", False)),
        "n_experts": _int_key(r, key, 16, minimum=2),
        "experts_per_token": r.optional("num_experts_per_tok", 2),
    }
    r.key_names["n_experts"] = key
    return f
