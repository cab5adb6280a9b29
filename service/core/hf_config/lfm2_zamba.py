"""Mappers of LFM2 (``lfm2``, ``lfm2_moe``: gated short convolutions between attention layers) and of
Zamba and Zamba2 (``zamba``, ``zamba2``: Mamba or Mamba-2 layers and a shared attention block).

Each reads its config the way its ``transformers`` implementation builds its modules
(``modeling_lfm2.py``, ``modeling_lfm2_moe.py``, ``modeling_zamba.py``, ``modeling_zamba2.py``) so that
:func:`service.core.params.count_params` equals the reference count (``validation/measure_recurrent.py``).
The layer list is spelled per family: LFM2's ``layer_types`` (``conv``/``full_attention``) or
``full_attn_idxs``; Zamba's ``layers_block_type`` (``mamba``/``hybrid``, or transformers' newer
``linear_attention``/``hybrid``) or its ``attn_layer_period`` rule; Zamba2's ``layers_block_type``. A
config carrying another family's keys, a layer its family cannot build, a list whose length is not the
layer count or a state size of 0 is refused naming the key as the config spells it.
"""

from __future__ import annotations

import math
from typing import Any

from service.core.architecture import Ffn, LayerType, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import _common_decoder, _int_key, _layer_count, _max_positions, _Reader
from service.core.hf_config.hybrid import _check_foreign, _listed_layers

_LFM2_LAYERS = {"conv": LayerType.SHORT_CONV, "full_attention": LayerType.ATTENTION}
_MOE_KEYS = ("num_experts", "num_dense_layers", "moe_intermediate_size")
# the state-space keys of the Mamba families: an LFM2 model has none
_STATE_SPACE_KEYS = ("mamba_d_state", "mamba_d_conv", "mamba_expand", "ssm_state_size", "mamba_n_heads", "mamba_d_head")
# Zamba's names, and transformers' newer ones for the same layers
_ZAMBA_LAYERS = {"mamba": LayerType.MAMBA, "linear_attention": LayerType.MAMBA, "hybrid": LayerType.SHARED_ATTENTION_MAMBA}
_ZAMBA2_LAYERS = {"mamba": LayerType.MAMBA2, "linear_attention": LayerType.MAMBA2, "hybrid": LayerType.SHARED_ATTENTION_MAMBA2}
# Zamba2Config's default layers_block_type (Zamba2-2.7B's 54 layers)
_ZAMBA2_DEFAULT = ("mamba",) + (("mamba",) * 5 + ("hybrid",)) * 7 + ("mamba",) * 4 + ("hybrid",) + ("mamba",) * 3 + (
    "hybrid", "mamba", "mamba")  # fmt: skip


def _fill(r: _Reader, key: str, value: Any, why: str) -> None:
    """A key the shared readers require, filled in where the config class fills it (said in assumptions)."""
    if r.config.get(key) is None and value is not None:
        r.config = {**r.config, key: value}
        r.assumptions[key] = why


def lfm2_mlp_width(r: _Reader) -> Any:
    """The MLP width ``Lfm2MLP`` builds: ``block_ff_dim`` (else ``intermediate_size``), with
    ``block_auto_adjust_ff_dim`` two thirds of it, times ``block_ffn_dim_multiplier`` and rounded up to
    a multiple of ``block_multiple_of`` (Llama's SwiGLU sizing)."""
    width = r.config.get("block_ff_dim", r.config.get("intermediate_size", 12288))
    if "block_ff_dim" in r.config:
        r.key_names["d_ff"] = "block_ff_dim"
    if not bool(r.optional("block_auto_adjust_ff_dim", True)) or not isinstance(width, int) or isinstance(width, bool):
        return width
    width = int(2 * width / 3)
    multiplier = r.optional("block_ffn_dim_multiplier", 1.0)
    if multiplier is None:
        return width
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not 0 < multiplier <= 64:
        raise InvalidSpecError(f"{r.prefix}.block_ffn_dim_multiplier", f"must be a number above 0, got {multiplier!r:.40}")
    multiple = _int_key(r, "block_multiple_of", 256, minimum=1)
    r.assumptions["intermediate_size"] = (
        "Lfm2MLP's width: 2/3 of it, times block_ffn_dim_multiplier, to a multiple of block_multiple_of"
    )
    return multiple * math.ceil(int(multiplier * width) / multiple)


def _lfm2_layers(r: _Reader, n_layers: int, family: str) -> tuple[LayerType, ...]:
    """``layer_types`` one a layer, else attention at ``full_attn_idxs`` (every layer without either:
    ``Lfm2Config``'s default)."""
    types = r.config.get("layer_types")
    if types is not None:
        return _listed_layers(r, family, types, n_layers, _LFM2_LAYERS)
    indices = r.config.get("full_attn_idxs")
    if indices is None:
        r.assumptions["full_attn_idxs"] = "not given; every layer attends (the transformers default)"
        return (LayerType.ATTENTION,)
    if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < n_layers for i in indices):
        raise InvalidSpecError(
            f"{r.prefix}.full_attn_idxs", f"must be a list of layer indices below num_hidden_layers={n_layers}"
        )
    r.key_names["layer_types"] = "full_attn_idxs"
    return tuple(LayerType.ATTENTION if i in indices else LayerType.SHORT_CONV for i in range(n_layers))


def _lfm2_common(r: _Reader, family: str) -> dict[str, Any]:
    """What LFM2 and LFM2-MoE share: GQA attention with a per-head RMSNorm on q and k and no biases, the
    gated short convolutions of ``conv_L_cache`` taps, two RMSNorms a layer and a final one (the model's
    ``embedding_norm``, applied after the last layer), tied embeddings (``tie_embedding`` in older configs)."""
    if key := next((k for k in _STATE_SPACE_KEYS if r.config.get(k) is not None), None):
        raise InvalidSpecError(f"{r.prefix}.{key}", f"a state-space key in an {family} config: a config mixes two families")
    _fill(r, "intermediate_size", r.config.get("block_ff_dim"), "not given; block_ff_dim (older LFM2 configs)")
    if family == "lfm2_moe":
        _fill(r, "intermediate_size", 7168, "not given; 7168 (the transformers default)")
    f = _common_decoder(r, family, kv_default=8)
    tie = r.config.get("tie_embedding", r.config.get("tie_word_embeddings"))  # the config class pops tie_embedding first
    if tie is None:
        tie = r.optional("tie_word_embeddings", True)
    f |= {"ffn": Ffn.SWIGLU, "qk_norm": True, "tied_embeddings": bool(tie), "max_seq_len": _max_positions(r, 128000),
          "short_conv_kernel": _int_key(r, "conv_L_cache", 3, minimum=1),
          "short_conv_bias": bool(r.optional("conv_bias", False))}  # fmt: skip
    n_layers = _layer_count(f["n_layers"])
    if n_layers is not None:
        f["layer_types"] = _lfm2_layers(r, n_layers, family)
    if f.get("layer_types") == (LayerType.ATTENTION,):
        f.pop("short_conv_kernel"), f.pop("short_conv_bias")  # no convolution to size
    r.assumptions["position"] = "rotary positions in the attention layers: no parameters"
    return f


def _map_lfm2(r: _Reader) -> dict[str, Any]:
    """LFM2 (``Lfm2ForCausalLM``; Liquid AI 2025, the LFM2 model cards: "10 double-gated short-range
    convolution blocks and 6 blocks of grouped query attention" in the 350M to 1.2B models): each layer a
    short convolution (``Lfm2ShortConv``) or attention, then a SwiGLU MLP of :func:`lfm2_mlp_width`."""
    _check_foreign(r, "lfm2")
    if moe := next((key for key in _MOE_KEYS if r.config.get(key) is not None), None):
        raise InvalidSpecError(f"{r.prefix}.{moe}", "an lfm2_moe key in an lfm2 config: a config mixes two families")
    f = _lfm2_common(r, "lfm2")
    f["d_ff"] = lfm2_mlp_width(r)
    return f


def _map_lfm2_moe(r: _Reader) -> dict[str, Any]:
    """LFM2-MoE (``Lfm2MoeForCausalLM``; Liquid AI 2025, the LFM2-8B-A1B model card: 8.3B total, 1.5B
    active): LFM2's layers, the first ``num_dense_layers`` with a SwiGLU MLP of ``intermediate_size`` (not
    resized), the others ``num_experts`` SwiGLU experts of ``moe_intermediate_size`` with a bias-free router;
    the routing bias ``expert_bias`` is a buffer, not a parameter (``Lfm2MoeSparseMoeBlock``)."""
    _check_foreign(r, "lfm2_moe", related=("lfm2",))
    f = _lfm2_common(r, "lfm2_moe")
    experts = _int_key(r, "num_experts", 32, minimum=2)
    f |= {"n_experts": experts, "experts_per_token": r.optional("num_experts_per_tok", 4),
          "d_ff": r.optional("moe_intermediate_size", 1792), "d_ff_dense": f["d_ff"],
          "first_k_dense": _int_key(r, "num_dense_layers", 2)}  # fmt: skip
    r.key_names |= {"d_ff": "moe_intermediate_size", "d_ff_dense": "intermediate_size", "first_k_dense": "num_dense_layers",
                    "n_experts": "num_experts"}  # fmt: skip
    if r.config.get("use_expert_bias", True):
        r.assumptions["use_expert_bias"] = "the routing bias is a buffer (num_experts values a layer), not a parameter"
    return f


def _zamba_layers(r: _Reader, n_layers: int, names: dict[str, LayerType], default: Any) -> tuple[LayerType, ...]:
    """``layers_block_type`` (or its alias ``layer_types``), one a layer; else ``default``: the rule or
    list the config class fills in."""
    key = "layers_block_type" if "layers_block_type" in r.config else "layer_types"
    types = r.config.get(key)
    if types is None:
        types = default(n_layers)
    elif not isinstance(types, list) or len(types) != n_layers:
        raise InvalidSpecError(f"{r.prefix}.{key}", f"must list one type for each of the {n_layers} layers")
    r.key_names["layer_types"] = key
    for i, t in enumerate(types):
        if t not in names:
            raise InvalidSpecError(
                f"{r.prefix}.{key}", f"entry {i} is {t!r:.40}: mamba (or linear_attention) and hybrid layers only"
            )
    return tuple(names[t] for t in types)


def _zamba_attention(r: _Reader, f: dict[str, Any], *, family: str) -> None:
    """The shared block's attention: ``2h`` in (``attention_hidden_size``), heads of ``attention_head_dim``
    (``2h / num_attention_heads`` unless given: Zamba; always that: Zamba2), no biases, no position
    parameters; its MLP gated (gate, up, down) whatever ``hidden_act``."""
    d, a = f["d_model"], f["n_heads"]
    default_head = 2 * d // a if isinstance(d, int) and isinstance(a, int) and a > 0 else None
    given = r.config.get("attention_hidden_size")
    if given is not None and isinstance(d, int) and given != 2 * d:
        raise InvalidSpecError(
            f"{r.prefix}.attention_hidden_size", f"the shared block reads 2 * hidden_size = {2 * d}, got {given!r:.40}"
        )
    head = f.pop("d_head", None) or r.config.get("attention_head_dim")
    if family == "zamba2" and head is not None and head != default_head:
        r.assumptions["attention_head_dim"] = (
            f"ignored: Zamba2Config sets it to 2 * hidden_size / num_attention_heads = {default_head}"
        )
        head = None
    f["d_head"] = head or default_head
    r.key_names["d_head"] = "attention_head_dim"
    f |= {"ffn": Ffn.SWIGLU, "norm": Norm.RMSNORM, "norms_per_layer": 1, "mixer_mlp": False, "position": Position.ROTARY,
          "tied_embeddings": bool(r.optional("tie_word_embeddings", True)), "max_seq_len": _max_positions(r, 4096)}  # fmt: skip
    r.assumptions["layers"] = (
        f"{family}: an RMSNorm and a Mamba mixer a layer; the hybrid layers run the shared attention block "
        "(attention over 2 * hidden_size, its MLP, two RMSNorms; stored once a block) and a per-layer hidden x hidden projection first"
    )


def _map_zamba(r: _Reader) -> dict[str, Any]:
    """Zamba (``ZambaForCausalLM``; Glorioso et al. 2024, "Zamba", §2): Mamba layers whose mixer splits
    its channels over ``n_mamba_heads`` (the same weights as ``MambaMixer``'s: ``ZambaMambaMixer``), and one
    shared attention block run before the mixer of the ``hybrid`` layers: layers 2, and ``i + 3`` for ``i %
    attn_layer_period == attn_layer_offset``, without ``layers_block_type`` (``ZambaConfig``)."""
    _check_foreign(r, "zamba", related=("jamba",))
    f = _common_decoder(r, "zamba", kv_default=16)
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return f
    period = _int_key(r, "attn_layer_period", 6, minimum=1)
    offset = _int_key(r, "attn_layer_offset", 4)

    def default(n: int) -> list[str]:
        return (["mamba", "mamba", "hybrid"] + ["hybrid" if i % period == offset else "mamba" for i in range(n - 3)])[:n]

    f["layer_types"] = _zamba_layers(r, n_layers, _ZAMBA_LAYERS, default)
    _zamba_attention(r, f, family="zamba")
    d = f["d_model"]
    expand = _int_key(r, "mamba_expand", 2, minimum=1)
    heads = _int_key(r, "n_mamba_heads", 2, minimum=1)
    if isinstance(d, int) and (expand * d) % heads:
        raise InvalidSpecError(f"{r.prefix}.n_mamba_heads", f"must divide mamba_expand * hidden_size = {expand * d}")
    rank = r.optional("mamba_dt_rank", "auto")
    f |= {
        "ssm_state_size": _int_key(r, "mamba_d_state", 16, minimum=1),
        "ssm_conv_kernel": r.optional("mamba_d_conv", 4),
        "ssm_expand": expand,
        "ssm_dt_rank": math.ceil(d / 16) if rank == "auto" and isinstance(d, int) else rank,
        "ssm_conv_bias": bool(r.optional("mamba_conv_bias", True)),
        "ssm_proj_bias": bool(r.optional("mamba_proj_bias", False)),
    }
    r.key_names |= {"ssm_state_size": "mamba_d_state", "ssm_conv_kernel": "mamba_d_conv", "ssm_expand": "mamba_expand",
                    "ssm_dt_rank": "mamba_dt_rank"}  # fmt: skip
    return f


def _map_zamba2(r: _Reader) -> dict[str, Any]:
    """Zamba2 (``Zamba2ForCausalLM``; Glorioso et al. 2024, "The Zamba2 Suite", §2): Mamba-2 layers of
    ``n_mamba_heads`` heads (``mamba_expand * hidden_size / n_mamba_heads`` wide), ``mamba_ngroups`` groups
    and a convolution that always has a bias, and ``num_mem_blocks`` shared attention blocks used in turn
    by the ``hybrid`` layers, every use with its own rank-``adapter_rank`` adapters on the MLP (and on q, k, v
    with ``use_shared_attention_adapter``). ``add_bias_linear`` is refused (biases on the Mamba projections
    and the MLP but not attention are not modelled)."""
    _check_foreign(r, "zamba2", related=("zamba",))
    hidden = r.config.get("hidden_size")
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        _fill(r, "intermediate_size", 4 * hidden, "not given; 4 * hidden_size (the transformers default)")
    f = _common_decoder(r, "zamba2")
    d = f["d_model"]
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return f
    if r.config.get("layers_block_type", r.config.get("layer_types")) is None and n_layers != len(_ZAMBA2_DEFAULT):
        raise InvalidSpecError(
            f"{r.prefix}.layers_block_type",
            f"not given: the default list has {len(_ZAMBA2_DEFAULT)} layers, not num_hidden_layers={n_layers}",
        )
    f["layer_types"] = _zamba_layers(r, n_layers, _ZAMBA2_LAYERS, lambda n: list(_ZAMBA2_DEFAULT))
    _zamba_attention(r, f, family="zamba2")
    if r.optional("add_bias_linear", False):
        raise InvalidSpecError(f"{r.prefix}.add_bias_linear", "biases on the Mamba projections and the MLP are not modelled")
    expand = _int_key(r, "mamba_expand", 2, minimum=1)
    heads = _int_key(r, "n_mamba_heads", 8, minimum=1)
    if isinstance(d, int) and (expand * d) % heads:
        raise InvalidSpecError(f"{r.prefix}.n_mamba_heads", f"must divide mamba_expand * hidden_size = {expand * d}")
    f |= {
        "ssm_state_size": _int_key(r, "mamba_d_state", 64, minimum=1),
        "ssm_conv_kernel": r.optional("mamba_d_conv", 4),
        "ssm_expand": expand,
        "ssm_n_heads": heads,
        "ssm_n_groups": _int_key(r, "mamba_ngroups", 1, minimum=1),
    }
    if LayerType.SHARED_ATTENTION_MAMBA2 in f["layer_types"]:  # without hybrid layers no block is built
        f |= {"shared_attention_blocks": _int_key(r, "num_mem_blocks", 1, minimum=1),
              "shared_adapter_rank": _int_key(r, "adapter_rank", 128, minimum=1),
              "shared_attention_adapters": bool(r.optional("use_shared_attention_adapter", False))}  # fmt: skip
    if not r.config.get("use_conv_bias", True):
        r.assumptions["use_conv_bias"] = "ignored: Zamba2MambaMixer builds its convolution with a bias"
    r.key_names |= {"ssm_state_size": "mamba_d_state", "ssm_conv_kernel": "mamba_d_conv", "ssm_expand": "mamba_expand",
                    "ssm_n_heads": "n_mamba_heads", "ssm_n_groups": "mamba_ngroups"}  # fmt: skip
    return f
