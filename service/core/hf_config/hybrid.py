"""Mappers of the hybrids: the Mamba-2 hybrids Bamba, Nemotron-H, Falcon-H1 and Granite 4.0-H
(``granitemoehybrid``), and Qwen3-Next's Gated DeltaNet hybrid (``qwen3_next``).

Each reads its config the way its ``transformers`` implementation builds its modules
(``modeling_bamba.py``, ``modeling_nemotron_h.py``, ``modeling_falcon_h1.py``,
``modeling_granitemoehybrid.py``, ``modeling_qwen3_next.py``) so that :func:`service.core.params.count_params` equals the reference
count (``validation/measure_recurrent.py``). The layer list is spelled per family: Bamba's
``attn_layer_indices``, Nemotron-H's ``hybrid_override_pattern`` (``M`` Mamba-2, ``*`` attention,
``-`` MLP, one letter a block), Granite's ``layer_types`` (``mamba``/``attention``), Falcon-H1's
every layer both side by side, and Qwen3-Next's ``layer_types`` (``linear_attention``/``full_attention``)
or ``full_attention_interval``. A config carrying another family's keys, a layer its family cannot
build, a pattern whose length is not the layer count or a state size of 0 is refused naming the key.
"""

from __future__ import annotations

from typing import Any

from service.core.architecture import Ffn, LayerType
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import _common_decoder, _gated_ffn, _int_key, _layer_count, _max_positions, _Reader
from service.core.hf_config.moe import _qwen_moe_layers

# keys only one family's config reads (present and not null in another family's config: two families mixed)
_OWN_KEYS = {
    "bamba": ("attn_layer_indices",),
    "nemotron_h": ("hybrid_override_pattern", "mamba_num_heads", "mamba_head_dim",
                   "moe_shared_expert_intermediate_size", "moe_latent_size"),
    "falcon_h1": ("mamba_d_ssm", "attn_out_multiplier", "ssm_out_multiplier", "mamba_rms_norm"),
    "granitemoehybrid": ("shared_intermediate_size", "num_local_experts"),
    "jamba": ("attn_layer_period", "attn_layer_offset", "mamba_dt_rank"),
    "mamba": ("state_size", "time_step_rank"),
    "qwen3_next": ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                   "linear_conv_kernel_dim", "full_attention_interval"),
    "lfm2": ("conv_L_cache", "block_ff_dim", "full_attn_idxs", "block_auto_adjust_ff_dim"),
    "zamba": ("n_mamba_heads",),
    "zamba2": ("num_mem_blocks", "adapter_rank", "use_shared_attention_adapter", "mamba_ngroups", "use_mem_rope"),
}  # fmt: skip
_QWEN3_NEXT_LAYERS = {"linear_attention": LayerType.GATED_DELTANET, "full_attention": LayerType.ATTENTION}
# Nemotron-H's blocks: an ``E`` (mixture-of-experts) block is an MLP block of a mixture model
_NEMOTRON_LETTERS = {"M": LayerType.MAMBA2, "*": LayerType.ATTENTION, "-": LayerType.MLP, "E": LayerType.MLP}
_NEMOTRON_BLOCKS = {"linear_attention": "M", "full_attention": "*", "mlp": "-", "moe": "E"}


def _check_foreign(r: _Reader, model_type: str, *, related: tuple[str, ...] = ()) -> None:
    """Refuse a key only another family's config reads; ``related``: families whose keys this one shares
    (Zamba's ``attn_layer_period`` is Jamba's too, Zamba2's ``n_mamba_heads`` Zamba's)."""
    for family, keys in _OWN_KEYS.items():
        if family == model_type or family in related:
            continue
        for key in keys:
            if r.config.get(key) is not None:
                raise InvalidSpecError(
                    f"{r.prefix}.{key}", f"a {family} key in a {model_type} config: a config mixes two families"
                )


def _state(r: _Reader, key: str, default: int) -> int:
    """The state size N: a positive integer (0 is refused naming the key)."""
    return _int_key(r, key, default, minimum=1)


def _mamba2(r: _Reader, *, prefix: str, heads_key: str, head_key: str, groups_key: str, state_key: str,
            defaults: tuple[int, int, int]) -> dict[str, Any]:  # fmt: skip
    """The Mamba-2 mixer's keys as the family spells them; ``defaults``: (state, groups, conv kernel)."""
    state, groups, kernel = defaults
    f = {
        "ssm_state_size": _state(r, state_key, state),
        "ssm_n_heads": r.optional(heads_key, 128),
        "ssm_n_groups": r.optional(groups_key, groups),
        "ssm_conv_kernel": r.optional(f"{prefix}d_conv" if prefix else "conv_kernel", kernel),
        "ssm_conv_bias": bool(r.optional(f"{prefix}conv_bias" if prefix else "use_conv_bias", True)),
        "ssm_proj_bias": bool(r.optional("mamba_proj_bias" if prefix else "use_bias", False)),
    }
    head_dim = r.config.get(head_key)
    if head_dim is not None and head_dim != "auto":
        f["ssm_head_dim"] = head_dim
    r.key_names |= {"ssm_state_size": state_key, "ssm_n_heads": heads_key, "ssm_head_dim": head_key,
                    "ssm_n_groups": groups_key}  # fmt: skip
    return f


def _swiglu_decoder(r: _Reader, model_type: str, *, kv_default: int | None, max_positions: int) -> dict[str, Any]:
    """The Llama-style keys of Bamba, Falcon-H1 and Granite 4.0-H: a SwiGLU MLP, untied by default,
    attention biases on all four projections or none."""
    f = _common_decoder(r, model_type, kv_default=kv_default)
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", False))
    f["max_seq_len"] = _max_positions(r, max_positions)
    f["attention_bias"] = bool(r.optional("attention_bias", False))
    return f


def _attention_indices(r: _Reader, n_layers: int, key: str) -> tuple[LayerType, ...]:
    indices = r.config.get(key) or []
    if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < n_layers for i in indices):
        raise InvalidSpecError(f"{r.prefix}.{key}", f"must be a list of layer indices below num_hidden_layers={n_layers}")
    return tuple(LayerType.ATTENTION if i in indices else LayerType.MAMBA2 for i in range(n_layers))


def _listed_layers(r: _Reader, family: str, types: Any, n_layers: int, names: dict[str, LayerType]) -> tuple[LayerType, ...]:
    """A config's ``layer_types``, one of ``names`` for each of the ``n_layers`` layers (Granite 4.0-H's,
    Qwen3-Next's), refused naming the key otherwise."""
    if not isinstance(types, list) or len(types) != n_layers:
        raise InvalidSpecError(f"{r.prefix}.layer_types", f"must list one type for each of the {n_layers} layers")
    for i, t in enumerate(types):
        if t not in names:
            raise InvalidSpecError(
                f"{r.prefix}.layer_types",
                f"entry {i} is {t!r:.40}: a {family} model has {' and '.join(names)} layers only",
            )
    return tuple(names[t] for t in types)


def _map_bamba(r: _Reader) -> dict[str, Any]:
    """Bamba (``BambaForCausalLM``; IBM et al. 2024, "Bamba-9B"): layers ``attn_layer_indices`` attend, the
    others are Mamba-2 mixers (``BambaMixer``); every layer has two RMSNorms and a SwiGLU MLP."""
    _check_foreign(r, "bamba")
    f = _swiglu_decoder(r, "bamba", kv_default=8, max_positions=262144)
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return f
    f["layer_types"] = _attention_indices(r, n_layers, "attn_layer_indices")
    r.key_names["layer_types"] = "attn_layer_indices"
    f |= _mamba2(r, prefix="mamba_", heads_key="mamba_n_heads", head_key="mamba_d_head", groups_key="mamba_n_groups",
                 state_key="mamba_d_state", defaults=(256, 1, 4))  # fmt: skip
    f["ssm_expand"] = r.optional("mamba_expand", 2)
    r.key_names["ssm_expand"] = "mamba_expand"
    return f


def _map_nemotron_h(r: _Reader) -> dict[str, Any]:
    """Nemotron-H (``NemotronHForCausalLM``; NVIDIA 2025, "Nemotron-H", §2.1; Nemotron 3 Nano, NVIDIA 2025,
    the NVIDIA-Nemotron-3-Nano-30B-A3B model card): one block a letter of ``hybrid_override_pattern`` (or
    one entry of ``layers_block_type``), an RMSNorm and one operator each: ``M`` a Mamba-2 mixer of
    ``mamba_num_heads * mamba_head_dim`` channels, ``*`` attention (heads of ``head_dim``, no positions),
    ``-`` a squared-ReLU MLP (up and down), ``E`` a mixture of such MLPs (``NemotronHMoE``, :func:`_nemotron_moe`)."""
    _check_foreign(r, "nemotron_h")
    pattern, key = _nemotron_pattern(r)
    f = _common_decoder(r, "nemotron_h", kv_default=8)
    if len(pattern) != f["n_layers"]:
        raise InvalidSpecError(
            f"{r.prefix}.{key}", f"{len(pattern)} blocks for num_hidden_layers={f['n_layers']!r:.20}: one block a layer"
        )
    f["layer_types"] = tuple(_NEMOTRON_LETTERS[c] for c in pattern)
    r.key_names["layer_types"] = key
    if "d_head" not in f:
        f["d_head"] = r.optional("attention_head_dim", 128)
    if r.config.get("mlp_hidden_act", "relu2") != "relu2" or r.config.get("mlp_bias"):
        raise InvalidSpecError(f"{r.prefix}.mlp_hidden_act", "Nemotron-H's bias-free squared-ReLU MLP is modelled only")
    f |= {"ffn": Ffn.GELU, "mixer_mlp": False, "norms_per_layer": 1, "max_seq_len": _max_positions(r, 4096),
          "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
          "attention_bias": bool(r.optional("attention_bias", False))}  # fmt: skip
    f |= _mamba2(r, prefix="", heads_key="mamba_num_heads", head_key="mamba_head_dim", groups_key="n_groups",
                 state_key="ssm_state_size", defaults=(128, 8, 4))  # fmt: skip
    f["ssm_head_dim"] = f.get("ssm_head_dim", 64)
    heads, head_dim = f["ssm_n_heads"], f["ssm_head_dim"]
    if isinstance(heads, int) and isinstance(head_dim, int):
        f["ssm_inner_size"] = heads * head_dim  # NemotronHMamba2Mixer.intermediate_size
    r.key_names["ssm_inner_size"] = "mamba_head_dim"
    if "E" in pattern:
        _nemotron_moe(r, f)
    r.assumptions["layers"] = "nemotron_h: one operator a block (Mamba-2, attention, MLP or MoE), one RMSNorm each"
    r.assumptions["position"] = "no position encoding in Nemotron-H's attention: no parameters"
    return f


def _nemotron_pattern(r: _Reader) -> tuple[str, str]:
    """Nemotron-H's blocks as pattern letters and the key that listed them: ``hybrid_override_pattern``, else
    ``layers_block_type`` (``NemotronHConfig._pattern_to_list``: ``linear_attention`` is Mamba-2's ``M``)."""
    key = "hybrid_override_pattern"
    pattern = r.config.get(key)
    if pattern is None and r.config.get("layers_block_type") is not None:
        key, blocks = "layers_block_type", r.config["layers_block_type"]
        if not isinstance(blocks, list) or not blocks:
            raise InvalidSpecError(f"{r.prefix}.{key}", f"must list one of {', '.join(_NEMOTRON_BLOCKS)} a layer")
        for i, block in enumerate(blocks):
            if block not in _NEMOTRON_BLOCKS:
                raise InvalidSpecError(
                    f"{r.prefix}.{key}", f"entry {i} is {block!r:.40}: a nemotron_h block is {', '.join(_NEMOTRON_BLOCKS)}"
                )
        pattern = "".join(_NEMOTRON_BLOCKS[b] for b in blocks)
    if pattern is None:
        r.required(key)
        r.check_missing("nemotron_h")
    if not isinstance(pattern, str) or not pattern:
        raise InvalidSpecError(f"{r.prefix}.{key}", "must be a string of M, *, - and E letters")
    for i, letter in enumerate(pattern):
        if letter not in _NEMOTRON_LETTERS:
            raise InvalidSpecError(
                f"{r.prefix}.{key}",
                f"letter {i} is {letter!r}: a nemotron_h block is M (Mamba-2), * (attention), - (MLP) or E (MoE)",
            )
    if "E" in pattern and "-" in pattern:
        raise InvalidSpecError(
            f"{r.prefix}.{key}", "dense MLP blocks (- or mlp) beside mixture-of-experts blocks (E or moe) are not modelled"
        )
    return pattern, key


def _nemotron_moe(r: _Reader, f: dict[str, Any]) -> None:
    """Nemotron-H's ``E`` blocks (``NemotronHMoE``): ``n_routed_experts`` squared-ReLU experts of
    ``moe_intermediate_size`` (up and down, no gate: ``NemotronHExperts``), ``num_experts_per_tok`` of them
    routed by a bias-free ``h x n_routed_experts`` sigmoid router whose ``e_score_correction_bias`` (a buffer
    in transformers, stored in the checkpoint: counted, as DeepSeek-V3's), and one shared MLP of
    ``moe_shared_expert_intermediate_size`` (``NemotronHMoE.shared_experts``: one MLP whatever
    ``n_shared_experts`` says). ``moe_latent_size`` (experts on a projected latent) is refused."""
    if r.config.get("moe_latent_size") is not None:
        raise InvalidSpecError(f"{r.prefix}.moe_latent_size", "experts on a latent projection are not modelled")
    f |= {"n_experts": _int_key(r, "n_routed_experts", 8, minimum=2),
          "experts_per_token": _int_key(r, "num_experts_per_tok", 2, minimum=1),
          "d_ff": _int_key(r, "moe_intermediate_size", 7688, minimum=1), "n_shared_experts": 1,
          "d_ff_shared": _int_key(r, "moe_shared_expert_intermediate_size", 7688, minimum=1), "router_bias": True}  # fmt: skip
    r.key_names |= {"n_experts": "n_routed_experts", "d_ff": "moe_intermediate_size",
                    "d_ff_shared": "moe_shared_expert_intermediate_size"}  # fmt: skip
    if r.config.get("n_shared_experts", 1) != 1:
        r.assumptions["n_shared_experts"] = "ignored: NemotronHMoE builds one shared MLP"
    r.assumptions["router_bias"] = "e_score_correction_bias counted (n_routed_experts per E block: stored in the checkpoint)"


def _map_falcon_h1(r: _Reader) -> dict[str, Any]:
    """Falcon-H1 (``FalconH1ForCausalLM``; TII 2025, "Falcon-H1", §2.1): in every layer attention and a
    Mamba-2 mixer of ``mamba_d_ssm`` channels read the same normed input and their outputs are summed,
    then a SwiGLU MLP; two RMSNorms a layer. The gated RMSNorm exists only with ``mamba_rms_norm``; the
    muP multipliers scale activations and add no parameters (``mup_vector`` is a buffer)."""
    _check_foreign(r, "falcon_h1")
    f = _swiglu_decoder(r, "falcon_h1", kv_default=8, max_positions=8192)
    if r.config.get("mlp_bias"):
        raise InvalidSpecError(f"{r.prefix}.mlp_bias", "MLP biases without attention biases are not modelled")
    f["layer_types"] = (LayerType.ATTENTION_MAMBA2,)
    f |= _mamba2(r, prefix="mamba_", heads_key="mamba_n_heads", head_key="mamba_d_head", groups_key="mamba_n_groups",
                 state_key="mamba_d_state", defaults=(256, 1, 4))  # fmt: skip
    if bool(r.optional("projectors_bias", False)) != f["ssm_proj_bias"]:
        raise InvalidSpecError(f"{r.prefix}.projectors_bias", "must equal mamba_proj_bias (one bias flag is modelled)")
    d_ssm = r.optional("mamba_d_ssm", 1024)
    expand = r.optional("mamba_expand", 2)
    f["ssm_inner_size"] = expand * f["d_model"] if d_ssm is None and isinstance(expand, int) else d_ssm
    f["ssm_gated_norm"] = bool(r.optional("mamba_rms_norm", False))
    r.key_names |= {"ssm_inner_size": "mamba_d_ssm", "ssm_gated_norm": "mamba_rms_norm"}
    r.assumptions["layers"] = "falcon_h1: attention and Mamba-2 side by side in every layer (attention_mamba2)"
    return f


def _map_granitemoehybrid(r: _Reader) -> dict[str, Any]:
    """Granite 4.0-H (``GraniteMoeHybridForCausalLM``; IBM 2025, "Granite 4.0"): ``layer_types`` of
    ``mamba`` (Mamba-2) and ``attention``; every layer two RMSNorms, a shared SwiGLU MLP of
    ``shared_intermediate_size`` and, when ``num_local_experts`` > 0, a mixture of ``num_local_experts``
    SwiGLU experts of ``intermediate_size`` with a bias-free router; dense (``num_local_experts`` 0) the
    shared MLP is the layer's only MLP. No positions with ``position_embedding_type`` ``nope``."""
    _check_foreign(r, "granitemoehybrid")
    f = _swiglu_decoder(r, "granitemoehybrid", kv_default=None, max_positions=2048)
    types = r.config.get("layer_types")
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return f
    if types is None:
        f["layer_types"] = (LayerType.MAMBA2,)
        r.assumptions["layer_types"] = "not given; every layer mamba (the transformers default)"
    else:
        f["layer_types"] = _listed_layers(
            r, "granitemoehybrid", types, n_layers, {"mamba": LayerType.MAMBA2, "attention": LayerType.ATTENTION}
        )
    f |= _mamba2(r, prefix="mamba_", heads_key="mamba_n_heads", head_key="mamba_d_head", groups_key="mamba_n_groups",
                 state_key="mamba_d_state", defaults=(256, 1, 4))  # fmt: skip
    f["ssm_expand"] = r.optional("mamba_expand", 2)
    r.key_names["ssm_expand"] = "mamba_expand"
    shared = r.optional("shared_intermediate_size", 1024)
    experts = _int_key(r, "num_local_experts", 8)
    if experts > 0:
        f |= {"n_experts": experts, "experts_per_token": r.optional("num_experts_per_tok", 2), "n_shared_experts": 1,
              "d_ff_shared": shared}  # fmt: skip
        r.key_names |= {"n_experts": "num_local_experts", "d_ff_shared": "shared_intermediate_size"}
    else:
        f["d_ff"] = shared
        r.key_names["d_ff"] = "shared_intermediate_size"
        r.assumptions["num_local_experts"] = "0: dense, the shared MLP is each layer's MLP"
    if r.config.get("position_embedding_type", "nope") != "nope":
        r.assumptions["position"] = "rotary positions: no parameters"
    return f


def _map_qwen3_next(r: _Reader) -> dict[str, Any]:
    """Qwen3-Next (``Qwen3NextForCausalLM``; Qwen team 2025, "Qwen3-Next", the Qwen3-Next-80B-A3B model card):
    ``layer_types`` of ``linear_attention`` (Gated DeltaNet, ``Qwen3NextGatedDeltaNet``: Yang et al. 2024)
    and ``full_attention`` (gated attention, ``Qwen3NextAttention``: a query projection twice as wide for
    the output gate, RMSNorm on q and k per head, heads of ``head_dim`` 256 unless given), or without
    them every ``full_attention_interval``-th layer (4) attends (``Qwen3NextConfig``); Qwen2-MoE's layer
    rule with one gated shared expert; two RMSNorms a layer. The multi-token-prediction weights of the
    checkpoints are not part of the model transformers builds (``_keys_to_ignore_on_load_unexpected``)."""
    _check_foreign(r, "qwen3_next")
    f = _common_decoder(r, "qwen3_next", kv_default=2)
    f |= {"ffn": _gated_ffn(r, "hidden_act", "silu"), "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
          "max_seq_len": _max_positions(r, 32768), "attention_bias": bool(r.optional("attention_bias", False)),
          "qk_norm": True, "attention_output_gate": True}  # fmt: skip
    if "d_head" not in f:
        f["d_head"] = 256
        r.assumptions["head_dim"] = "not given; 256 (the transformers default)"
    n_layers = _layer_count(f["n_layers"])
    if n_layers is None:
        return f
    f["layer_types"] = _qwen3_next_layers(r, n_layers)
    f |= {
        "linear_n_key_heads": _int_key(r, "linear_num_key_heads", 16, minimum=1),
        "linear_n_value_heads": _int_key(r, "linear_num_value_heads", 32, minimum=1),
        "linear_key_head_dim": _int_key(r, "linear_key_head_dim", 128, minimum=1),
        "linear_value_head_dim": _int_key(r, "linear_value_head_dim", 128, minimum=1),
        "linear_conv_kernel": _int_key(r, "linear_conv_kernel_dim", 4, minimum=1),
    }
    if _qwen_moe_layers(r, f, experts=512, top_k=10, moe_ff=512):
        f |= {"n_shared_experts": 1, "d_ff_shared": _int_key(r, "shared_expert_intermediate_size", 512, minimum=1),
              "shared_expert_gate": True}  # fmt: skip
    return f


def _qwen3_next_layers(r: _Reader, n_layers: int) -> tuple[LayerType, ...]:
    """Qwen3-Next's layers: ``layer_types`` one a layer, else attention every ``full_attention_interval``-th."""
    types = r.config.get("layer_types")
    if types is None:
        interval = _int_key(r, "full_attention_interval", 4, minimum=1)
        r.key_names["layer_types"] = "full_attention_interval"
        return tuple(LayerType.ATTENTION if (i + 1) % interval == 0 else LayerType.GATED_DELTANET for i in range(n_layers))
    return _listed_layers(r, "qwen3_next", types, n_layers, _QWEN3_NEXT_LAYERS)
