"""Mappers of the dense families whose block is not Llama's: LayerNorms with bias, 2-matrix MLPs,
attention and MLP side by side (parallel blocks), learned or ALiBi positions, GPT-2-era key names
(``n_embd``, ``n_layer``) and nested sub-configs.

starcoder2, gpt2, gpt_neox, falcon, phi, cohere, cohere2, stablelm, gpt_bigcode, opt, bloom, mpt. A
new dense family that does not build Llama's block goes here; its ``model_type`` into ``MAPPERS`` in
:mod:`service.core.hf_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.core.architecture import Ffn, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import (
    GATED_ACTIVATIONS,
    HF_KEYS,
    _common_decoder,
    _gated_ffn,
    _head_dim_of_hidden,
    _int_key,
    _max_positions,
    _nested,
    _Reader,
    _sliding_layers,
)


def _map_starcoder2(r: _Reader) -> dict[str, Any]:
    """StarCoder2 (Lozhkov et al. 2024, §5; ``modeling_starcoder2.py``): GQA attention and a 2-matrix
    MLP (``c_fc``, ``c_proj``), every projection with a bias when ``use_bias`` (the default), LayerNorms
    (weight and bias) before attention, before the MLP and at the end; ``sliding_window`` on every
    layer when set."""
    f = _common_decoder(r, "starcoder2", kv_default=2)
    act = r.optional("hidden_act", "gelu_pytorch_tanh")
    if act in ("silu", "swish"):
        r.assumptions["hidden_act"] = f"{act!r}: StarCoder2's MLP has two matrices whatever the activation"
    window = r.optional("sliding_window", None)
    f |= {
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": bool(r.optional("use_bias", True)),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
        "max_seq_len": _max_positions(r, 4096),
        "sliding_window": window or None,
    }
    return f


def _map_gpt2(r: _Reader) -> dict[str, Any]:
    f: dict[str, Any] = {
        "n_layers": r.required("n_layer", "num_hidden_layers"),
        "d_model": r.required("n_embd", "hidden_size"),
        "n_heads": r.required("n_head", "num_attention_heads"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing("gpt2")
    inner = r.config.get("n_inner")
    if inner is None:
        r.assumptions["n_inner"] = "not given; 4 x n_embd"
    f |= {
        "d_ff": inner or 4 * f["d_model"],
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": True,
        "position": Position.LEARNED,
        "max_seq_len": r.optional("n_positions", 1024),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
    }
    return f


def _map_gpt_neox(r: _Reader) -> dict[str, Any]:
    f = _common_decoder(r, "gpt_neox")
    if not r.optional("attention_bias", True):
        raise InvalidSpecError(f"{r.prefix}.attention_bias", "GPT-NeoX without attention biases is not modelled")
    f |= {
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": True,
        "parallel_attention": bool(r.optional("use_parallel_residual", True)),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": _max_positions(r, 2048),
    }
    return f


def _map_falcon(r: _Reader) -> dict[str, Any]:
    f: dict[str, Any] = {
        "n_layers": r.required("num_hidden_layers", "n_layer"),
        "d_model": r.required("hidden_size"),
        "n_heads": r.required("num_attention_heads", "n_head"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing("falcon")
    new_arch = bool(r.optional("new_decoder_architecture", False))
    multi_query = bool(r.optional("multi_query", True))
    parallel = bool(r.optional("parallel_attn", True))
    if new_arch:
        kv = r.required("num_kv_heads", "n_head_kv")
        r.check_missing("falcon")
    elif multi_query:
        kv = 1
    else:
        kv = f["n_heads"]
    ln_in_parallel = r.config.get("num_ln_in_parallel_attn") or (2 if new_arch else None)
    if new_arch and ln_in_parallel == 2:
        norms = 2  # ln_attn, ln_mlp
    else:
        norms = 1 if parallel else 2  # input_layernorm (+ post_attention_layernorm)
    ffn_hidden = r.config.get("ffn_hidden_size")
    if ffn_hidden is None:
        r.assumptions["ffn_hidden_size"] = "not given; 4 x hidden_size"
    alibi = bool(r.optional("alibi", False))
    f |= {
        "n_kv_heads": kv,
        "d_ff": ffn_hidden or 4 * f["d_model"],
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": bool(r.optional("bias", False)),
        "parallel_attention": parallel or new_arch,
        "norms_per_layer": norms,
        "position": Position.ALIBI if alibi else Position.ROTARY,
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
        "max_seq_len": _max_positions(r, 2048),
    }
    return f


def _map_phi(r: _Reader) -> dict[str, Any]:
    """Phi-1, Phi-1.5 and Phi-2 (Gunasekar et al. 2023, "Textbooks Are All You Need"; Li et al. 2023,
    arXiv 2309.05463; ``modeling_phi.py``): attention and a 2-matrix MLP (``fc1``, ``fc2``) side by side
    after one LayerNorm a layer (``input_layernorm``: a parallel block), every projection with a bias
    (``q_proj``, ``k_proj``, ``v_proj``, ``dense``, ``fc1``, ``fc2``), a final LayerNorm, and an LM head
    with a bias (``nn.Linear(h, V, bias=True)``, kept when the weight is tied). Partial rotary
    (``partial_rotary_factor``) has no parameters. ``qk_layernorm`` (a LayerNorm with bias over one
    head's q and k) is refused: it is neither :attr:`Architecture.qk_norm`'s RMSNorm nor used by a
    published Phi."""
    f = _common_decoder(r, "phi")
    if r.optional("qk_layernorm", False):
        raise InvalidSpecError(f"{r.prefix}.qk_layernorm", "per-head q/k LayerNorms with biases are not modelled")
    act = r.optional("hidden_act", "gelu_new")
    if act not in ("gelu_new", "gelu", "gelu_pytorch_tanh", "gelu_fast", "relu"):
        r.assumptions["hidden_act"] = f"{act!r}: Phi's MLP has two matrices whatever the activation"
    f |= {
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": True,
        "parallel_attention": True,
        "norms_per_layer": 1,
        "lm_head_bias": True,
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": _max_positions(r, 2048),
    }
    return f


def _map_cohere(r: _Reader, model_type: str = "cohere") -> dict[str, Any]:
    """Command R and R+ (Cohere's model cards, 2024: 35B and 104B; ``modeling_cohere.py``): attention and a
    gated MLP side by side after one norm a layer (``input_layernorm``: a parallel block), a final norm,
    tied embeddings by default; the norms are ``CohereLayerNorm``, mean-centred but with a weight only
    (``h`` values, counted as an RMSNorm's). ``use_qk_norm`` adds a ``CohereLayerNorm`` over q of shape
    ``(a, d_head)`` and over k of ``(k, d_head)``: ``a*d_head + k*d_head`` weights, counted as
    :attr:`Architecture.qk_norm_full_width`. ``attention_bias`` puts biases on q, k, v and o
    (:attr:`Architecture.attention_bias`). ``logit_scale`` has no parameters. ``cohere2`` shares the
    block without the q/k norms."""
    f = _common_decoder(r, model_type)
    f |= {
        "ffn": _gated_ffn(r, "hidden_act", "silu"),
        "parallel_attention": True,
        "norms_per_layer": 1,
        "attention_bias": bool(r.optional("attention_bias", False)),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
        "max_seq_len": _max_positions(r, 8192),
    }
    if model_type == "cohere":  # Cohere2Attention builds no q/k norm
        f["qk_norm_full_width"] = bool(r.optional("use_qk_norm", False))
    r.assumptions["norm"] = "LayerNorms without bias (h weights each), counted as RMSNorms"
    return f


def _map_cohere2(r: _Reader) -> dict[str, Any]:
    """Command R7B and Command A (Cohere's model cards and blog "Introducing Command R7B", 2024: three
    sliding-window layers with RoPE to one global layer without; ``modeling_cohere2.py``): Command R's
    parallel block (attention and a gated MLP side by side after one weight-only ``Cohere2LayerNorm``, a
    final one: ``h`` weights each, counted as an RMSNorm's), tied by default, biases on q, k, v and o when
    ``attention_bias``, no q/k norm. ``head_dim`` is ``hidden_size / num_attention_heads`` unless given
    (``Cohere2Config.__post_init__``; a given one is kept). ``sliding_window`` (4096) on the layers ``layer_types``
    marks, else on all but each ``sliding_window_pattern``-th (4). ``logit_scale`` has no parameters."""
    f = _map_cohere(r, "cohere2")
    window = r.optional("sliding_window", 4096)
    types = r.config.get("layer_types")
    if window and not (isinstance(types, list) and len(types) == f["n_layers"]):
        pattern = _int_key(r, "sliding_window_pattern", 4, minimum=1)
        rule: Callable[[int], bool] = lambda i: bool((i + 1) % pattern)  # noqa: E731
    else:
        rule = lambda i: False  # noqa: E731
    f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, rule)
    return f


def _map_stablelm(r: _Reader) -> dict[str, Any]:
    """StableLM 2 and StableLM-3B-4E1T (Bellagente et al. 2024, "Stable LM 2 1.6B Technical Report",
    arXiv 2402.17834, §2; ``modeling_stablelm.py``): a gated MLP without biases, LayerNorms with bias
    (before attention and before the MLP, or one a layer with ``use_parallel_residual``; a final one),
    Q/K/V biases when ``use_qkv_bias`` (the output projection has none); ``qk_layernorm`` adds a bias-free
    LayerNorm over each query head and each key head (``StableLmLayerNormPerHead``: ``a*d_head`` and
    ``k*d_head`` weights, counted as :attr:`Architecture.qk_norm_full_width`). ``head_dim`` is
    ``hidden_size / num_attention_heads`` (``StableLmAttention``); 32 KV heads unless given (the config
    class's default). Partial rotary has no parameters."""
    f = _common_decoder(r, "stablelm", kv_default=32)
    _head_dim_of_hidden(r, f, "stablelm")
    parallel = bool(r.optional("use_parallel_residual", False))
    f |= {
        "ffn": _gated_ffn(r, "hidden_act", "silu"),
        "norm": Norm.LAYERNORM,
        "qkv_bias": bool(r.optional("use_qkv_bias", False)),
        "qk_norm_full_width": bool(r.optional("qk_layernorm", False)),
        "parallel_attention": parallel,
        "norms_per_layer": 1 if parallel else 2,
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": _max_positions(r, 4096),
    }
    if f["qk_norm_full_width"]:
        r.assumptions["qk_layernorm"] = "a bias-free LayerNorm per query and key head: a*d_head + k*d_head weights a layer"
    return f


def _aliased(r: _Reader, field: str, *names: str) -> Any:
    """A required key a config may spell several ways (``n_embd``/``hidden_size``); a rejected value is
    then named by the spelling given."""
    value = r.required(*names)
    given = next((n for n in names if r.config.get(n) is not None), names[0])
    if given != HF_KEYS.get(field):
        r.key_names[field] = given
    return value


def _gpt2_keys(
    r: _Reader, model_type: str, *, layers: tuple[str, ...], hidden: tuple[str, ...], heads: tuple[str, ...]
) -> dict[str, Any]:
    """Layers, width, heads and vocabulary of a GPT-2-era config under its own key names, the first
    given of each tuple (the config class's ``attribute_map`` reads ``num_hidden_layers``,
    ``hidden_size``, ``num_attention_heads`` as them)."""
    f = {
        "n_layers": _aliased(r, "n_layers", *layers),
        "d_model": _aliased(r, "d_model", *hidden),
        "n_heads": _aliased(r, "n_heads", *heads),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing(model_type)
    return f


def _map_gpt_bigcode(r: _Reader) -> dict[str, Any]:
    """StarCoder and SantaCoder (Li et al. 2023, "StarCoder: may the source be with you!", arXiv
    2305.06161, §5: multi-query attention, learned absolute positions; ``modeling_gpt_bigcode.py``):
    GPT-2's block (LayerNorms with bias before attention and the MLP and a final one, every projection
    with a bias, a 2-matrix MLP of ``n_inner``, ``4 * n_embd`` unless given) and a learned position table
    of ``n_positions`` rows; with ``multi_query`` (the default) one key/value head (``c_attn`` is ``h x (h +
    2*d_head)``), else as many as query heads. ``add_cross_attention`` (cross-attention to an encoder) is
    refused."""
    f = _gpt2_keys(
        r,
        "gpt_bigcode",
        layers=("n_layer", "num_hidden_layers"),
        hidden=("n_embd", "hidden_size"),
        heads=("n_head", "num_attention_heads"),
    )
    if r.optional("add_cross_attention", False):
        raise InvalidSpecError(f"{r.prefix}.add_cross_attention", "cross-attention to an encoder is not modelled")
    inner = r.config.get("n_inner")
    if inner is None:
        r.assumptions["n_inner"] = "not given; 4 x n_embd"
    multi_query = bool(r.optional("multi_query", True))
    positions_key = (
        "max_position_embeddings" if "max_position_embeddings" in r.config and "n_positions" not in r.config else "n_positions"
    )
    f |= {
        "n_kv_heads": 1 if multi_query else f["n_heads"],
        "d_ff": inner or 4 * f["d_model"],
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": True,
        "position": Position.LEARNED,
        "max_seq_len": r.optional(positions_key, 1024),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
    }
    r.key_names |= {"d_ff": "n_inner", "max_seq_len": positions_key, "n_kv_heads": "multi_query"}
    return f


def _map_opt(r: _Reader) -> dict[str, Any]:
    """OPT (Zhang et al. 2022, "OPT: Open Pre-trained Transformer Language Models", arXiv 2205.01068,
    §2.1 and Table 1; ``modeling_opt.py``): multi-head attention and a 2-matrix ReLU MLP of ``ffn_dim``,
    every projection with a bias when ``enable_bias`` (the default), LayerNorms with bias before
    attention and before the MLP and a final one, tied embeddings, and a learned position table of
    ``max_position_embeddings + 2`` rows (``OPTLearnedPositionalEmbedding``'s offset of 2). The shapes
    the core does not count are refused naming their key: ``word_embed_proj_dim`` other than
    ``hidden_size`` (OPT-350m's ``project_in``/``project_out``), post-norm layers
    (``do_layer_norm_before`` false: no final norm), norms without weights
    (``layer_norm_elementwise_affine`` false)."""
    f: dict[str, Any] = {
        "n_layers": r.required("num_hidden_layers"),
        "d_model": r.required("hidden_size"),
        "n_heads": r.required("num_attention_heads"),
        "d_ff": r.required("ffn_dim"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing("opt")
    projection = r.config.get("word_embed_proj_dim")
    if projection is not None and projection != f["d_model"]:
        raise InvalidSpecError(
            f"{r.prefix}.word_embed_proj_dim", "an embedding narrower or wider than hidden_size (project_in/out) is not modelled"
        )
    if not r.optional("do_layer_norm_before", True) or r.config.get("_remove_final_layer_norm"):
        key = "do_layer_norm_before" if not r.config.get("do_layer_norm_before", True) else "_remove_final_layer_norm"
        raise InvalidSpecError(f"{r.prefix}.{key}", "an OPT without its final LayerNorm (post-norm layers) is not modelled")
    if not r.optional("layer_norm_elementwise_affine", True):
        raise InvalidSpecError(f"{r.prefix}.layer_norm_elementwise_affine", "LayerNorms without weights are not modelled")
    positions = r.optional("max_position_embeddings", 2048)
    act = r.optional("activation_function", "relu")
    if act in GATED_ACTIVATIONS and act not in ("relu", "gelu", "gelu_new"):
        r.assumptions["activation_function"] = f"{act!r}: OPT's MLP has two matrices whatever the activation"
    f |= {
        "ffn": Ffn.GELU,  # fc1, fc2: a 2-matrix MLP
        "norm": Norm.LAYERNORM,
        "bias": bool(r.optional("enable_bias", True)),
        "position": Position.LEARNED,
        "max_seq_len": positions,
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
    }
    if isinstance(positions, int) and not isinstance(positions, bool):  # the spec check bounds both
        f["position_embedding_rows"] = positions + 2  # OPTLearnedPositionalEmbedding: num_embeddings + offset 2
        r.assumptions["position_embedding_rows"] = "max_position_embeddings + 2 (OPT's learned positions are offset by 2)"
    r.key_names |= {"d_ff": "ffn_dim", "position_embedding_rows": "max_position_embeddings"}
    return f


def _map_bloom(r: _Reader) -> dict[str, Any]:
    """BLOOM (BigScience 2022, "BLOOM: A 176B-Parameter Open-Access Multilingual Language Model", arXiv
    2211.05100, §3.2.3-3.2.4 and Table 3; ``modeling_bloom.py``): ALiBi (no position parameters), a
    LayerNorm after the embedding (``word_embeddings_layernorm``), a fused ``query_key_value`` and
    ``dense`` output with biases, a 2-matrix MLP of ``4 * hidden_size`` (``dense_h_to_4h``: fixed by the
    module, no key sets it) with biases, LayerNorms with bias before attention and the MLP and a final
    one; tied by default. The config has no context key: 2048 tokens (the paper's training sequence
    length) unless ``seq_length`` is given."""
    # BloomConfig.__post_init__ takes the old n_embed over hidden_size when given
    f = _gpt2_keys(
        r,
        "bloom",
        layers=("n_layer", "num_hidden_layers"),
        hidden=("n_embed", "hidden_size"),
        heads=("n_head", "num_attention_heads"),
    )
    f |= {
        "d_ff": 4 * f["d_model"] if isinstance(f["d_model"], int) else f["d_model"],
        "ffn": Ffn.GELU,
        "norm": Norm.LAYERNORM,
        "bias": True,
        "embedding_norm": True,
        "position": Position.ALIBI,
        "max_seq_len": r.optional("seq_length", 2048, why="the BLOOM paper's training sequence length; ALiBi has no table"),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
    }
    r.key_names |= {"d_ff": r.key_names.get("d_model", "hidden_size"), "max_seq_len": "seq_length"}
    return f


def _map_mpt(r: _Reader) -> dict[str, Any]:
    """MPT (MosaicML's "Introducing MPT-7B", 2023: ALiBi, no biases, 6.7B; ``modeling_mpt.py``): a fused
    ``Wqkv`` (``h x 3h``) and ``out_proj`` without biases, a 2-matrix MLP of ``4 * d_model``
    (``MptMLP.up_proj``: fixed by the module), LayerNorms with their bias removed (``norm_1``, ``norm_2``,
    ``norm_f``: ``h`` weights each, counted as RMSNorms), no position table (ALiBi), tied by default.
    transformers builds that whatever some keys say, so a checkpoint those keys describe differently
    would not load and is refused naming the key: ``expansion_ratio`` other than 4, ``no_bias`` false,
    ``attn_config.alibi`` false (a learned table instead), ``attn_config.qk_ln``, ``attn_config.attn_type``
    other than multi-head."""
    f = _gpt2_keys(
        r,
        "mpt",
        layers=("n_layers", "num_hidden_layers"),
        hidden=("d_model", "hidden_size"),
        heads=("n_heads", "num_attention_heads"),
    )
    attn = _nested(r, "attn_config")
    if r.optional("expansion_ratio", 4) != 4:
        raise InvalidSpecError(
            f"{r.prefix}.expansion_ratio", "transformers' MPT builds an MLP of 4 x d_model; other ratios are not modelled"
        )
    if not r.optional("no_bias", True):
        raise InvalidSpecError(f"{r.prefix}.no_bias", "transformers' MPT builds no biases; an MPT with them is not modelled")
    if not attn.optional("alibi", True):
        raise InvalidSpecError(
            f"{attn.prefix}.alibi", "transformers' MPT uses ALiBi and builds no position table; other MPTs are not modelled"
        )
    if attn.optional("qk_ln", False):
        raise InvalidSpecError(
            f"{attn.prefix}.qk_ln", "transformers' MPT builds no q/k LayerNorms; an MPT with them is not modelled"
        )
    if attn.optional("attn_type", "multihead_attention") != "multihead_attention":
        raise InvalidSpecError(f"{attn.prefix}.attn_type", "transformers' MPT builds multi-head attention only")
    if r.config.get("learned_pos_emb", True):
        r.assumptions["learned_pos_emb"] = "no position table: ALiBi is used (transformers builds none)"
    f |= {
        "d_ff": 4 * f["d_model"] if isinstance(f["d_model"], int) else f["d_model"],
        "ffn": Ffn.GELU,
        "norm": Norm.RMSNORM,  # LayerNorm with its bias removed: h weights
        "position": Position.ALIBI,
        "max_seq_len": r.optional("max_seq_len", 2048),
        "tied_embeddings": bool(r.optional("tie_word_embeddings", True)),
    }
    r.assumptions["norm"] = "LayerNorms with their bias removed (h weights each), counted as RMSNorms"
    r.assumptions |= {f"attn_config.{k}": v for k, v in attn.assumptions.items()}
    r.key_names |= {"d_ff": r.key_names.get("d_model", "hidden_size"), "max_seq_len": "max_seq_len"}
    return f
