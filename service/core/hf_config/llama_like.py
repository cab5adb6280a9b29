"""Mappers of the dense families built on Llama's block (``modeling_llama.py`` and its copies): RoPE,
RMSNorms, a gated MLP (Arcee's 2-matrix one aside), and per-family biases, q/k norms and window rules.

llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3, granite, smollm3, glm4, ernie4_5,
seed_oss, arcee, hunyuan_v1_dense, exaone4, olmo2, and the language model of Qwen2-VL / Qwen2.5-VL. A
new dense family whose block is Llama's (its mapper starts from ``_llama_like`` or ``_common_decoder``)
goes here, and its ``model_type`` into ``MAPPERS`` in :mod:`service.core.hf_config`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.core.architecture import Ffn
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import (
    _common_decoder,
    _gated_ffn,
    _int_key,
    _llama_like,
    _max_positions,
    _qwen_window,
    _Reader,
    _refuse_attention_bias,
    _sliding_layers,
)


def _map_llama(r: _Reader) -> dict[str, Any]:
    return _llama_like(r, "llama", max_pos=2048, tie=False, window_rule=None)


def _map_mistral(r: _Reader) -> dict[str, Any]:
    return _llama_like(r, "mistral", max_pos=4096 * 32, tie=False, window_rule=lambda i: True, kv_default=8)


def _map_qwen2(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "qwen2", max_pos=32768, tie=False, window_rule=None, kv_default=32)
    f["qkv_bias"] = True  # Qwen2Attention: q, k, v with bias, o without
    _qwen_window(r, f, lambda i, max_window: i >= max_window)
    return f


def _map_qwen3(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "qwen3", max_pos=32768, tie=False, window_rule=None, kv_default=32)
    f["qk_norm"] = True  # Qwen3Attention: q_norm, k_norm over head_dim
    if "head_dim" not in r.config:  # Qwen3Config's head_dim: int = 128, whatever hidden_size / heads
        f["d_head"] = 128
        r.assumptions["head_dim"] = "not given; 128 (the transformers default)"
    _qwen_window(r, f, lambda i, max_window: i >= max_window)
    return f


def _map_gemma(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "gemma", max_pos=8192, tie=True, window_rule=None, kv_default=16)
    r.assumptions.setdefault("embedding", "scaled by sqrt(hidden_size): no parameters")
    if "head_dim" not in r.config:
        f["d_head"] = 256
        r.assumptions["head_dim"] = "not given; 256 (the transformers default)"
    return f


# Gemma3TextConfig's defaults of keys that fix the shape and that the published multimodal configs leave
# out of their text_config (a nested config is saved as its difference from its class's defaults):
# google/gemma-3-4b-it names no heads, no gemma-3-{4b,12b,27b}-it names vocab_size
GEMMA3_TEXT_DEFAULTS = {"num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 262_208}


def _class_defaults(r: _Reader, defaults: dict[str, Any], config_class: str) -> None:
    """Take ``defaults`` for the keys ``r``'s config does not give (or gives as null), each said."""
    missing = {name: value for name, value in defaults.items() if r.config.get(name) is None}
    if missing:
        r.config = {**r.config, **missing}
        for name, value in missing.items():
            r.assumptions[name] = f"not given; {value!r} (the {config_class} default)"


def _map_gemma2(r: _Reader, *, pattern: int = 2, model_type: str = "gemma2") -> dict[str, Any]:
    if model_type == "gemma3_text":
        _class_defaults(r, GEMMA3_TEXT_DEFAULTS, "Gemma3TextConfig")
    max_pos = 8192 if model_type == "gemma2" else 131072
    f = _llama_like(r, model_type, max_pos=max_pos, tie=True, window_rule=None, kv_default=4)  # Gemma2Config, Gemma3TextConfig
    f["norms_per_layer"] = 4  # input, post-attention, pre- and post-feedforward RMSNorms
    if "head_dim" not in r.config:
        f["d_head"] = 256
        r.assumptions["head_dim"] = "not given; 256 (the transformers default)"
    window = r.optional("sliding_window", 4096)  # Gemma2Config and Gemma3TextConfig alike
    if model_type == "gemma3_text":
        f["qk_norm"] = True
        pattern = _int_key(r, "sliding_window_pattern", 6, minimum=1) if "sliding_window_pattern" in r.config else 6
    f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: bool((i + 1) % pattern))
    return f


def _map_gemma3_text(r: _Reader) -> dict[str, Any]:
    return _map_gemma2(r, model_type="gemma3_text")


def _map_phi3(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "phi3", max_pos=4096, tie=False, window_rule=lambda i: True)
    if r.config.get("sliding_window") is None:
        f["sliding_window"], f["sliding_window_layers"] = None, None
    return f


def _map_granite(r: _Reader) -> dict[str, Any]:
    """IBM Granite 3.x (``modeling_granite.py``): Llama's modules. ``embedding_multiplier``,
    ``residual_multiplier``, ``attention_multiplier`` and ``logits_scaling`` scale activations only:
    no parameters, no matmul FLOPs."""
    f = _llama_like(r, "granite", max_pos=2048, tie=False, window_rule=None)
    r.assumptions["multipliers"] = "embedding/residual/attention multipliers and logits_scaling scale activations: no parameters"
    return f


def _map_smollm3(r: _Reader) -> dict[str, Any]:
    """SmolLM3 (``modeling_smollm3.py``): Llama's modules; every ``no_rope_layer_interval``-th layer
    skips RoPE (NoPE, no parameters either way). With ``use_sliding_window`` the NoPE layers
    (``no_rope_layers[i] == 0``) attend through the window, unless ``layer_types`` says otherwise
    (``SmolLM3Config.__post_init__``)."""
    f = _llama_like(r, "smollm3", max_pos=32768, tie=True, window_rule=None, kv_default=4)
    if r.config.get("use_sliding_window") and r.config.get("sliding_window"):
        no_rope = r.config.get("no_rope_layers")
        if isinstance(no_rope, list) and len(no_rope) == f["n_layers"]:
            rule: Callable[[int], bool] = lambda i: not no_rope[i]  # noqa: E731
        else:
            interval = r.optional("no_rope_layer_interval", 4)
            if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
                raise InvalidSpecError(f"{r.prefix}.no_rope_layer_interval", f"must be a positive integer, got {interval!r:.40}")
            rule = lambda i: (i + 1) % interval == 0  # noqa: E731
        f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], r.config["sliding_window"], rule)
    return f


def _gated_decoder(r: _Reader, model_type: str, *, kv_default: int, head_dim: int, tie: bool, max_pos: int) -> dict[str, Any]:
    """A gated-MLP decoder whose config class has defaults of its own for ``num_key_value_heads`` and
    ``head_dim`` (not ``hidden_size / heads``), ``tie_word_embeddings`` and ``max_position_embeddings``."""
    f = _common_decoder(r, model_type, kv_default=kv_default)
    if "head_dim" not in r.config:
        f["d_head"] = head_dim
        r.assumptions["head_dim"] = f"not given; {head_dim} (the transformers default)"
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", tie))
    f["max_seq_len"] = _max_positions(r, max_pos)
    return f


def _bias_flags(r: _Reader, f: dict[str, Any], *, qkv: tuple[str, bool] | None, rest: tuple[tuple[str, bool], ...]) -> None:
    """Bias switches of a family: every one on is ``bias`` (every projection), only ``qkv`` on is
    ``qkv_bias``, none on is no bias; any other mix is refused naming a key that is on."""
    on_qkv = bool(r.optional(*qkv)) if qkv else False
    on = [key for key, default in rest if r.optional(key, default)]
    if on and len(on) == len(rest) and (on_qkv or qkv is None):
        f["bias"] = True
    elif on:
        raise InvalidSpecError(
            f"{r.prefix}.{on[0]}", "only biases on every projection" + (", or on Q/K/V alone," if qkv else "") + " are modelled"
        )
    elif on_qkv:
        f["qkv_bias"] = True


def _map_glm4(r: _Reader) -> dict[str, Any]:
    """GLM-4-0414 (``modeling_glm4.py``): Q/K/V biases when ``attention_bias`` (the default; the output
    projection has none), a fused gate/up MLP, and four RMSNorms a layer (input, after attention,
    before and after the MLP: ``post_self_attn_layernorm``, ``post_mlp_layernorm``); ``head_dim`` 128
    and 2 KV heads unless given (the config class's defaults)."""
    f = _gated_decoder(r, "glm4", kv_default=2, head_dim=128, tie=False, max_pos=131072)
    f |= {"norms_per_layer": 4, "qkv_bias": bool(r.optional("attention_bias", True))}
    return f


def _map_ernie4_5(r: _Reader) -> dict[str, Any]:
    """ERNIE 4.5 dense (``modeling_ernie4_5.py``): Llama's modules, every projection of attention and
    MLP with a bias when ``use_bias``; ``head_dim`` 128, 2 KV heads and tied embeddings unless given."""
    f = _gated_decoder(r, "ernie4_5", kv_default=2, head_dim=128, tie=True, max_pos=131072)
    f["bias"] = bool(r.optional("use_bias", False))
    return f


def _map_seed_oss(r: _Reader) -> dict[str, Any]:
    """Seed-OSS (``modeling_seed_oss.py``): Llama's modules with Q/K/V biases (``attention_bias``, on
    by default), the output projection's bias apart (``attention_out_bias``, off) and MLP biases
    (``mlp_bias``, off); ``head_dim`` 128 and 8 KV heads unless given. The two combinations a
    checkpoint uses, Q/K/V only or all of them, are counted; the others are refused."""
    f = _gated_decoder(r, "seed_oss", kv_default=8, head_dim=128, tie=False, max_pos=524288)
    _bias_flags(r, f, qkv=("attention_bias", True), rest=(("attention_out_bias", False), ("mlp_bias", False)))
    return f


def _map_arcee(r: _Reader) -> dict[str, Any]:
    """Arcee AFM (``modeling_arcee.py``): Llama's attention and a 2-matrix MLP (``up_proj``,
    ``down_proj``) with ReLU² (``relu2``); biases as Llama's ``attention_bias`` / ``mlp_bias``."""
    f = _common_decoder(r, "arcee")
    r.optional("hidden_act", "relu2")
    f |= {
        "ffn": Ffn.GELU,
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": _max_positions(r, 4096),
    }
    _bias_flags(r, f, qkv=None, rest=(("attention_bias", False), ("mlp_bias", False)))
    return f


def _map_hunyuan_v1_dense(r: _Reader) -> dict[str, Any]:
    """Hunyuan dense (``modeling_hunyuan_v1_dense.py``): Llama's modules plus an RMSNorm over each
    head's query and key (``query_layernorm``, ``key_layernorm``); no biases by default. ``head_dim``
    is required: the config class defaults it to None, on which the attention module fails."""
    r.required("head_dim")
    f = _llama_like(r, "hunyuan_v1_dense", max_pos=2048, tie=False, window_rule=None)
    _refuse_attention_bias(r)
    f["qk_norm"] = True
    return f


def _map_exaone4(r: _Reader) -> dict[str, Any]:
    """EXAONE 4.0 (``modeling_exaone4.py``): no biases, a per-head q/k RMSNorm, two RMSNorms a layer
    (after attention and after the MLP: no input norm); ``sliding_window`` (4096 by default) on the
    layers ``layer_types`` marks, else by ``sliding_window_pattern``: an integer p slides every layer
    but each p-th, a string such as ``LLLG`` repeats from layer 0 (``Exaone4Config``)."""
    f = _llama_like(r, "exaone4", max_pos=2048, tie=False, window_rule=None, kv_default=32)
    f["qk_norm"] = True
    window = r.optional("sliding_window", 4096)
    pattern = r.optional("sliding_window_pattern", 4)
    if isinstance(pattern, str) and pattern:
        rule: Callable[[int], bool] = lambda i: pattern[i % len(pattern)] == "L"  # noqa: E731
    elif isinstance(pattern, int) and not isinstance(pattern, bool) and pattern > 0:
        rule = lambda i: (i + 1) % pattern != 0  # noqa: E731
    elif window and not isinstance(r.config.get("layer_types"), list):
        raise InvalidSpecError(
            f"{r.prefix}.sliding_window_pattern", f"must be a positive integer or a string such as 'LLLG', got {pattern!r:.40}"
        )
    else:
        rule = lambda i: False  # noqa: E731
    f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, rule)
    return f


def _map_olmo2(r: _Reader) -> dict[str, Any]:
    """OLMo 2 ("2 OLMo 2 Furious", OLMo et al. 2024, arXiv 2501.00656; ``modeling_olmo2.py``): Llama's
    projections and gated MLP, no biases (``attention_bias`` puts one on q, k, v and o: refused, the MLP
    has none); the RMSNorms sit after attention and after the MLP (``post_attention_layernorm``,
    ``post_feedforward_layernorm``: two a layer, no input norm), and ``q_norm``/``k_norm`` are
    RMSNorms over the whole projection (``a*d_head`` and ``k*d_head`` weights), not per head."""
    f = _llama_like(r, "olmo2", max_pos=2048, tie=False, window_rule=None)
    _refuse_attention_bias(r)
    f["qk_norm_full_width"] = True
    return f


def _map_qwen_vl_text(r: _Reader) -> dict[str, Any]:
    """The language model of Qwen2-VL and Qwen2.5-VL (``Qwen2VLTextModel``, ``Qwen2_5_VLTextModel``):
    Qwen2's modules (Q/K/V biases, output without), ``head_dim = hidden_size / num_attention_heads``
    whatever ``head_dim`` says, the text config class's defaults (8 KV heads, windows from
    ``max_window_layers`` on when ``use_sliding_window``). M-RoPE has no parameters."""
    f = _llama_like(r, "qwen2", max_pos=32768, tie=False, window_rule=None, kv_default=8)
    f.pop("d_head", None)
    f["qkv_bias"] = True
    if r.config.get("use_sliding_window"):
        max_window = _int_key(r, "max_window_layers", 80)
        window = r.optional("sliding_window", 4096)
        f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: i >= max_window)
    return f
