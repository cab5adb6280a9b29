"""Mappers of the families whose layers keep a fixed-size state: Mamba, Falcon-Mamba, Mamba-2,
RWKV-4 and the Jamba hybrid (Mamba layers between attention layers).

Each reads its config the way its ``transformers`` implementation builds its modules
(``modeling_mamba.py``, ``modeling_falcon_mamba.py``, ``modeling_mamba2.py``, ``modeling_rwkv.py``,
``modeling_jamba.py``) so that :func:`service.core.params.count_params` equals the reference count
(``validation/measure_recurrent.py``). A config that carries another family's keys (a Mamba config
with Mamba-2's ``num_heads``, a Jamba config with Mamba's unprefixed ``state_size``) or a
``layer_types`` entry its family cannot build is refused naming that key.
"""

from __future__ import annotations

import math
from typing import Any

from service.core.architecture import LayerType, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import _common_decoder, _gated_ffn, _int_key, _layer_count, _max_positions, _Reader

# keys that only one family's config class reads: finding them in another family's config means a
# config mixing two families
_KEYS_OF = {
    "mamba": ("state_size", "conv_kernel", "expand", "time_step_rank", "use_conv_bias"),
    "mamba2": ("num_heads", "n_groups", "chunk_size"),
    "jamba": ("mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank", "attn_layer_period", "attn_layer_offset"),
    "rwkv": ("attention_hidden_size", "context_length", "rescale_every"),
    "attention": ("num_attention_heads", "num_key_value_heads"),
}
_FOREIGN = {
    "mamba": ("mamba2", "jamba", "rwkv", "attention"),
    "falcon_mamba": ("mamba2", "jamba", "rwkv", "attention"),
    "mamba2": ("jamba", "rwkv", "attention"),
    "rwkv": ("mamba", "mamba2", "jamba", "attention"),
    "jamba": ("mamba", "mamba2", "rwkv"),
}
# the layer_types names (transformers' convention) each family's layers may carry
_LAYER_NAMES = {
    "mamba": ("linear_attention", "mamba"),
    "falcon_mamba": ("linear_attention", "mamba"),
    "mamba2": ("linear_attention", "mamba2"),
    "rwkv": ("linear_attention", "rwkv"),
    "jamba": ("linear_attention", "mamba", "full_attention", "attention"),
}


def _check_family(r: _Reader, model_type: str) -> None:
    """Refuse another family's keys and ``layer_types`` entries this family cannot build."""
    for family in _FOREIGN[model_type]:
        for key in _KEYS_OF[family]:
            if key in r.config:
                raise InvalidSpecError(
                    f"{r.prefix}.{key}", f"a {family} key in a {model_type} config: a config mixes two families"
                )
    types = r.config.get("layer_types")
    if types is None:
        return
    if not isinstance(types, list):
        raise InvalidSpecError(f"{r.prefix}.layer_types", f"must be a list, got {type(types).__name__}")
    for i, t in enumerate(types):
        if t not in _LAYER_NAMES[model_type]:
            raise InvalidSpecError(
                f"{r.prefix}.layer_types",
                f"entry {i} is {t!r:.40}: a {model_type} model has {' and '.join(_LAYER_NAMES[model_type])} layers only",
            )


def _mixer_only(r: _Reader, model_type: str, layer: LayerType, *, tie: bool) -> dict[str, Any]:
    """The keys Mamba-style models share: a stack of ``RMSNorm -> mixer`` blocks, no MLP, no attention,
    no positions, an optional tie of the LM head."""
    _check_family(r, model_type)
    f: dict[str, Any] = {
        "n_layers": r.required("num_hidden_layers"),
        "d_model": r.required("hidden_size"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing(model_type)
    expand = r.optional("expand", 2)
    d = f["d_model"]
    inner = expand * d if isinstance(expand, int) and isinstance(d, int) and not isinstance(expand, bool) else 1
    f |= {
        "n_heads": 1,  # no attention: the heads are unused
        "d_ff": max(1, inner),  # no MLP (mixer_mlp false): the width is unused
        "layer_types": (layer,),
        "mixer_mlp": False,
        "norm": Norm.RMSNORM,
        "norms_per_layer": 1,
        "position": Position.ROTARY,  # no position encoding: the recurrence orders the tokens; no parameters
        "tied_embeddings": bool(r.optional("tie_word_embeddings", tie)),
        "ssm_expand": expand,
        "ssm_conv_kernel": r.optional("conv_kernel", 4),
        "ssm_conv_bias": bool(r.optional("use_conv_bias", True)),
        "ssm_proj_bias": bool(r.optional("use_bias", False)),
    }
    r.assumptions["layers"] = f"{model_type}: RMSNorm and mixer per block, no attention and no MLP (n_heads and d_ff unused)"
    r.assumptions.setdefault("context", "no max_position_embeddings: the recurrence has no context limit; 2048 taken")
    return f


def _time_step_rank(r: _Reader, key: str, d_model: Any) -> Any:
    """``time_step_rank`` (``"auto"``: ``ceil(hidden_size / 16)``, the config class's rule)."""
    rank = r.optional(key, "auto")
    if rank == "auto":
        return math.ceil(d_model / 16) if isinstance(d_model, int) and not isinstance(d_model, bool) and d_model > 0 else None
    return rank


def _map_mamba(r: _Reader, model_type: str = "mamba") -> dict[str, Any]:
    """Mamba (``MambaForCausalLM``; Gu & Dao 2023) and Falcon-Mamba (``FalconMambaForCausalLM``, whose
    extra RMSNorms on the step size, B and C have no weights). ``intermediate_size`` is not read: the
    config class sets it to ``expand * hidden_size``."""
    f = _mixer_only(r, model_type, LayerType.MAMBA, tie=True)
    f["ssm_state_size"] = r.optional("state_size", 16)
    f["ssm_dt_rank"] = _time_step_rank(r, "time_step_rank", f["d_model"])
    if model_type == "falcon_mamba":
        r.assumptions["mixer_rms_eps"] = "Falcon-Mamba's RMSNorms on dt, B and C have no weights: no parameters"
    return f


def _map_falcon_mamba(r: _Reader) -> dict[str, Any]:
    return _map_mamba(r, "falcon_mamba")


def _map_mamba2(r: _Reader) -> dict[str, Any]:
    """Mamba-2 (``Mamba2ForCausalLM``; Dao & Gu 2024): ``Mamba2Config``'s defaults (128 heads of 64,
    8 groups, state 128, untied)."""
    f = _mixer_only(r, "mamba2", LayerType.MAMBA2, tie=False)
    f["ssm_state_size"] = r.optional("state_size", 128)
    f["ssm_n_heads"] = r.optional("num_heads", 128)
    f["ssm_head_dim"] = r.optional("head_dim", 64)
    f["ssm_n_groups"] = r.optional("n_groups", 8)
    r.key_names["ssm_head_dim"] = "head_dim"
    return f


def _map_rwkv(r: _Reader) -> dict[str, Any]:
    """RWKV-4 (``RwkvForCausalLM``; Peng et al. 2023): LayerNorms (two a block, ``pre_ln`` on the
    first block's input, ``ln_out``), time mixing of ``attention_hidden_size`` (it must be
    ``hidden_size``: the core's RWKV layers are square), channel mixing of ``intermediate_size``
    (default ``4 * hidden_size``), an untied ``head``; ``context_length`` is the trained context."""
    _check_family(r, "rwkv")
    f: dict[str, Any] = {
        "n_layers": r.required("num_hidden_layers"),
        "d_model": r.required("hidden_size"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing("rwkv")
    d = f["d_model"]
    attention = r.config.get("attention_hidden_size")
    if attention is not None and attention != d:
        raise InvalidSpecError(
            f"{r.prefix}.attention_hidden_size", f"an attention_hidden_size other than hidden_size ({d!r:.20}) is not modelled"
        )
    width = r.config.get("intermediate_size")
    if width is None:
        width = 4 * d if isinstance(d, int) and not isinstance(d, bool) else None
        r.assumptions["intermediate_size"] = "not given; 4 * hidden_size (the transformers default)"
    f |= {
        "n_heads": 1,  # RWKV-4's WKV has no heads
        "d_ff": width,
        "layer_types": (LayerType.RWKV,),
        "rwkv_version": 4,
        "norm": Norm.LAYERNORM,
        "embedding_norm": True,  # blocks[0].pre_ln
        "position": Position.ROTARY,  # no position encoding: token shift and the recurrence; no parameters
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": r.optional("context_length", 1024),
    }
    r.key_names |= {"d_ff": "intermediate_size", "max_seq_len": "context_length"}
    return f


def _map_jamba(r: _Reader) -> dict[str, Any]:
    """Jamba (``JambaForCausalLM``; Lieber et al. 2024, §2): layer ``i`` attends when ``i %
    attn_layer_period == attn_layer_offset``, else it is a Mamba layer (with weighted RMSNorms on dt,
    B and C); every layer has two RMSNorms and an MLP, a mixture of ``num_experts`` on every
    ``expert_layer_period``-th layer from ``expert_layer_offset`` (``JambaConfig.layers_num_experts``),
    counted as :attr:`first_k_dense` dense layers. Attention without biases or positions."""
    _check_family(r, "jamba")
    f = _common_decoder(r, "jamba", kv_default=8)
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", False))
    f["max_seq_len"] = _max_positions(r, 262144)
    period = _int_key(r, "attn_layer_period", 8, minimum=1)
    offset = _int_key(r, "attn_layer_offset", 4)
    if offset >= period:
        raise InvalidSpecError(f"{r.prefix}.attn_layer_offset", f"must be below attn_layer_period={period}, got {offset}")
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return f  # the spec check names num_hidden_layers
    length = period if n_layers % period == 0 else n_layers
    f["layer_types"] = tuple(LayerType.ATTENTION if i % period == offset else LayerType.MAMBA for i in range(length))
    r.key_names["layer_types"] = "attn_layer_period"
    f |= {
        "ssm_state_size": r.optional("mamba_d_state", 16),
        "ssm_conv_kernel": r.optional("mamba_d_conv", 4),
        "ssm_expand": r.optional("mamba_expand", 2),
        "ssm_dt_rank": _time_step_rank(r, "mamba_dt_rank", f["d_model"]),
        "ssm_conv_bias": bool(r.optional("mamba_conv_bias", True)),
        "ssm_proj_bias": bool(r.optional("mamba_proj_bias", False)),
        "ssm_inner_norms": True,  # JambaMambaMixer.dt_layernorm, b_layernorm, c_layernorm
    }
    r.key_names |= {"ssm_state_size": "mamba_d_state", "ssm_conv_kernel": "mamba_d_conv", "ssm_expand": "mamba_expand",
                    "ssm_dt_rank": "mamba_dt_rank"}  # fmt: skip
    experts = _int_key(r, "num_experts", 16, minimum=1)
    e_period = _int_key(r, "expert_layer_period", 2, minimum=1)
    e_offset = _int_key(r, "expert_layer_offset", 1)
    moe = len(range(e_offset, n_layers, e_period)) if experts > 1 else 0
    if moe:
        f |= {"n_experts": experts, "experts_per_token": r.optional("num_experts_per_tok", 2), "first_k_dense": n_layers - moe}
        r.key_names |= {"n_experts": "num_experts", "first_k_dense": "expert_layer_period"}
        if moe < n_layers:
            r.assumptions["first_k_dense"] = (
                f"{n_layers - moe} dense MLP layers interleaved with the {moe} MoE layers (not first): counts and FLOPs "
                "are the same; a pipeline stage holds a different mix than the first-k layout suggests"
            )
    r.assumptions["position"] = "no position encoding in Jamba's attention: no parameters"
    return f
