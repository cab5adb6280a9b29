"""Rules of the layer list and of the state-space, RWKV, Gated DeltaNet, short-convolution and shared-block
fields (API.md, "Beyond transformers").

:func:`check_layers` validates ``layer_types`` (a list per layer, or a pattern whose length divides
``n_layers``) and the fields of the recurrent layers it names, fills their defaults (the reference
implementations' own: ``MambaConfig``, ``Mamba2Config``, ``mamba_ssm``'s ``Mamba2``) and refuses a
field that no layer of the model uses. Every rule names the field it checks. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from service.core.architecture import ATTENTION_TYPES, SHARED_ATTENTION_TYPES, LayerType
from service.core.errors import InvalidSpecError
from service.core.limits import MAX_DIM, check_positive_int
from service.core.rwkv import rwkv6_default_ranks, rwkv7_default_ranks

_MAMBA_ONLY = ("ssm_dt_rank", "ssm_inner_norms")
_MAMBA2_ONLY = ("ssm_n_heads", "ssm_head_dim", "ssm_n_groups")
_STATE_SPACE = (
    "ssm_state_size", "ssm_conv_kernel", "ssm_expand", "ssm_inner_size", "ssm_proj_bias", *_MAMBA_ONLY, *_MAMBA2_ONLY
)  # fmt: skip
_DELTANET = ("linear_n_key_heads", "linear_n_value_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel")
ATTENTION_KINDS = {*ATTENTION_TYPES, LayerType.ATTENTION_MAMBA2}
_DELTANET_KINDS = {LayerType.GATED_DELTANET, LayerType.ATTENTION, LayerType.SLIDING_ATTENTION}
# the RWKV fields each version reads (beyond rwkv_version)
_RWKV_FIELDS = {
    4: (),
    6: ("rwkv_head_size", "rwkv_mix_lora_rank", "rwkv_decay_lora_rank"),
    7: ("rwkv_head_size", "rwkv_decay_lora_rank", "rwkv_a_lora_rank", "rwkv_value_lora_rank", "rwkv_gate_lora_rank"),
}
_RWKV_ALL = tuple(dict.fromkeys(name for names in _RWKV_FIELDS.values() for name in names))
_SHORT_CONV_KINDS = {LayerType.SHORT_CONV, LayerType.ATTENTION, LayerType.SLIDING_ATTENTION}
# a shared-block model's layers: Mamba with Zamba's, Mamba-2 with Zamba2's
_SHARED_KINDS = (
    {LayerType.MAMBA, LayerType.SHARED_ATTENTION_MAMBA}, {LayerType.MAMBA2, LayerType.SHARED_ATTENTION_MAMBA2}
)  # fmt: skip
_SHARED_FIELDS = {"shared_attention_blocks": None, "shared_adapter_rank": None, "shared_attention_adapters": False}
# bools whose non-default value only a state-space layer reads
_STATE_SPACE_FLAGS = {
    "ssm_conv_bias": True, "ssm_proj_bias": False, "ssm_inner_norms": False, "mixer_mlp": True, "ssm_gated_norm": True
}  # fmt: skip


def check_layers(f: Callable[[str], str], v: dict[str, Any]) -> None:
    """Check ``layer_types`` and the recurrent layers' fields of the field values ``v`` (in place:
    ``layer_types`` becomes a tuple of :class:`LayerType`, defaults are filled in)."""
    types = _layer_types(f, v["layer_types"], v["n_layers"])
    v["layer_types"] = types
    kinds = set(types or (LayerType.ATTENTION,))
    if LayerType.SLIDING_ATTENTION in kinds:
        if v["sliding_window"] is None:
            raise InvalidSpecError(f("layer_types"), "a sliding_attention layer needs sliding_window")
        if v["sliding_window_layers"] is not None:
            raise InvalidSpecError(
                f("sliding_window_layers"), "layer_types already says which layers use the window: give one or the other"
            )
    _blocks(f, v, kinds)
    mamba = bool(kinds & {LayerType.MAMBA, LayerType.SHARED_ATTENTION_MAMBA})
    mamba2 = bool(kinds & {LayerType.MAMBA2, LayerType.ATTENTION_MAMBA2, LayerType.SHARED_ATTENTION_MAMBA2})
    _refuse_unused(f, v, mamba=mamba, mamba2=mamba2, rwkv=LayerType.RWKV in kinds)
    if mamba or mamba2:
        _state_space(f, v, mamba=mamba, mamba2=mamba2)
    _gated_deltanet(f, v, kinds)
    _short_conv(f, v, kinds)
    _shared_blocks(f, v, kinds)
    _rwkv(f, v, kinds)
    if v["n_experts"] > 1 and (mamba or mamba2) and not v["mixer_mlp"] and LayerType.MLP not in kinds:
        raise InvalidSpecError(f("mixer_mlp"), "a mixture of experts with mixer-only Mamba blocks needs mlp blocks")


def _blocks(f: Callable[[str], str], v: dict[str, Any], kinds: set[LayerType]) -> None:
    """MLP-only blocks (Nemotron-H) make every mixer block MLP-free, so they need ``mixer_mlp`` false and a
    mixer beside them; a parallel attention + Mamba-2 layer (Falcon-H1) carries its MLP."""
    if LayerType.MLP in kinds:
        if kinds == {LayerType.MLP}:
            raise InvalidSpecError(f("layer_types"), "mlp blocks need mixer layers beside them")
        if v["mixer_mlp"]:
            raise InvalidSpecError(f("mixer_mlp"), "with mlp blocks the mixer blocks carry no MLP: mixer_mlp must be false")
        if LayerType.ATTENTION_MAMBA2 in kinds:
            raise InvalidSpecError(f("layer_types"), "attention_mamba2 layers carry their MLP: no mlp blocks beside them")
    elif LayerType.ATTENTION_MAMBA2 in kinds and not v["mixer_mlp"]:
        raise InvalidSpecError(f("mixer_mlp"), "an attention_mamba2 layer carries its MLP: mixer_mlp must be true")


def _gated_deltanet(f: Callable[[str], str], v: dict[str, Any], kinds: set[LayerType]) -> None:
    """Gated DeltaNet's sizes (``Qwen3NextGatedDeltaNet``): key heads and their width are required, the
    value heads and width default to the key's, the convolution to 4 taps (``Qwen3NextConfig``,
    ``fla``'s ``ShortConvolution``); the value heads are a multiple of the key heads, which are repeated
    to them. Such a model has attention layers beside them and nothing else; the output gate needs
    attention layers, and is not modelled with multi-head latent attention."""
    if v["attention_output_gate"] and (kinds.isdisjoint(ATTENTION_KINDS) or v["kv_lora_rank"] is not None):
        raise InvalidSpecError(f("attention_output_gate"), "applies to standard (not MLA) attention layers (layer_types)")
    if LayerType.GATED_DELTANET not in kinds:
        if unused := next((name for name in _DELTANET if v[name] is not None), None):
            raise InvalidSpecError(f(unused), "only applies to gated_deltanet layers (layer_types)")
        return
    if not kinds <= _DELTANET_KINDS:
        raise InvalidSpecError(f("layer_types"), "a gated_deltanet model has gated_deltanet and attention layers only")
    for name in ("linear_n_key_heads", "linear_key_head_dim"):
        if v[name] is None:
            raise InvalidSpecError(f(name), "gated_deltanet layers need their key heads and key head width")
        check_positive_int(f(name), v[name], maximum=MAX_DIM)
    v["linear_n_value_heads"] = v["linear_n_value_heads"] or v["linear_n_key_heads"]
    v["linear_value_head_dim"] = v["linear_value_head_dim"] or v["linear_key_head_dim"]
    v["linear_conv_kernel"] = v["linear_conv_kernel"] or 4
    check_positive_int(f("linear_n_value_heads"), v["linear_n_value_heads"], maximum=MAX_DIM)
    check_positive_int(f("linear_value_head_dim"), v["linear_value_head_dim"], maximum=MAX_DIM)
    check_positive_int(f("linear_conv_kernel"), v["linear_conv_kernel"], maximum=64)
    if v["linear_n_value_heads"] % v["linear_n_key_heads"]:
        raise InvalidSpecError(
            f("linear_n_value_heads"),
            f"must be a multiple of linear_n_key_heads={v['linear_n_key_heads']} (key heads are repeated to the value heads)",
        )


def _rwkv(f: Callable[[str], str], v: dict[str, Any], kinds: set[LayerType]) -> None:
    """RWKV's version and sizes (:mod:`service.core.rwkv`): 4, 6 or 7; a field another version reads is
    refused; RWKV-6/7 heads of ``rwkv_head_size`` (default 64) dividing ``d_model``, LoRA ranks defaulting
    to the reference code's (:func:`~service.core.rwkv.rwkv6_default_ranks`,
    :func:`~service.core.rwkv.rwkv7_default_ranks`). Such a model has rwkv layers only, dense."""
    if LayerType.RWKV not in kinds:
        if unused := next((name for name in _RWKV_ALL if v[name] is not None), None):
            raise InvalidSpecError(f(unused), "only applies to rwkv layers (layer_types)")
        return
    version = v["rwkv_version"] = v["rwkv_version"] or 4
    if version not in _RWKV_FIELDS:
        raise InvalidSpecError(f("rwkv_version"), f"RWKV-{version} is not modelled: 4 (RWKV-4), 6 (Finch) or 7 (Goose)")
    if kinds != {LayerType.RWKV}:
        raise InvalidSpecError(f("layer_types"), "an RWKV model has rwkv layers only")
    if v["n_experts"] > 1:
        raise InvalidSpecError(f("n_experts"), "RWKV's channel mixing is dense: n_experts must be 1")
    if unused := next((name for name in _RWKV_ALL if name not in _RWKV_FIELDS[version] and v[name] is not None), None):
        raise InvalidSpecError(f(unused), f"does not apply to RWKV-{version} layers")
    if version == 4:
        return
    size = v["rwkv_head_size"] = 64 if v["rwkv_head_size"] is None else v["rwkv_head_size"]
    check_positive_int(f("rwkv_head_size"), size, maximum=MAX_DIM)
    if v["d_model"] % size:
        raise InvalidSpecError(f("rwkv_head_size"), f"must divide d_model={v['d_model']} (whole heads of rwkv_head_size)")
    defaults = (rwkv6_default_ranks if version == 6 else rwkv7_default_ranks)(v["d_model"])
    for name, default in defaults.items():
        v[name] = default if v[name] is None else v[name]
        check_positive_int(f(name), v[name], maximum=MAX_DIM)


def _short_conv(f: Callable[[str], str], v: dict[str, Any], kinds: set[LayerType]) -> None:
    """LFM2's gated short convolution (``Lfm2ShortConv``): ``short_conv_kernel`` taps, 3 by default
    (``Lfm2Config.conv_L_cache``); such a model has attention layers beside them and nothing else."""
    if LayerType.SHORT_CONV not in kinds:
        if v["short_conv_kernel"] is not None or v["short_conv_bias"]:
            name = "short_conv_kernel" if v["short_conv_kernel"] is not None else "short_conv_bias"
            raise InvalidSpecError(f(name), "only applies to short_conv layers (layer_types)")
        return
    if not kinds <= _SHORT_CONV_KINDS:
        raise InvalidSpecError(f("layer_types"), "a short_conv model has short_conv and attention layers only")
    v["short_conv_kernel"] = 3 if v["short_conv_kernel"] is None else v["short_conv_kernel"]
    check_positive_int(f("short_conv_kernel"), v["short_conv_kernel"], maximum=64)


def _shared_blocks(f: Callable[[str], str], v: dict[str, Any], kinds: set[LayerType]) -> None:
    """Zamba's shared attention blocks: the model's other layers are all Mamba (Zamba) or all Mamba-2
    (Zamba2), none carrying an MLP of its own (``mixer_mlp`` false), dense; ``shared_attention_blocks``
    defaults to 1. The attention adapters add a ``2h``-wide low-rank term to q, k and v
    (``Zamba2Attention.linear_q_adapter_list``...), so they need ``shared_adapter_rank`` and q, k and v
    ``2h`` wide."""
    if kinds.isdisjoint(SHARED_ATTENTION_TYPES):
        if unused := next((name for name, default in _SHARED_FIELDS.items() if v[name] != default), None):
            raise InvalidSpecError(f(unused), "only applies to shared_attention_mamba(2) layers (layer_types)")
        return
    if not any(kinds <= allowed for allowed in _SHARED_KINDS):
        raise InvalidSpecError(
            f("layer_types"), "a shared-attention model has shared_attention_mamba with mamba layers, or "
            "shared_attention_mamba2 with mamba2 layers, only")  # fmt: skip
    if v["mixer_mlp"]:
        raise InvalidSpecError(f("mixer_mlp"), "the MLP is the shared block's: the Mamba layers carry none (mixer_mlp false)")
    if v["n_experts"] > 1:
        raise InvalidSpecError(f("n_experts"), "the shared block's MLP is dense: n_experts must be 1")
    v["shared_attention_blocks"] = v["shared_attention_blocks"] or 1
    check_positive_int(f("shared_attention_blocks"), v["shared_attention_blocks"], maximum=v["n_layers"])
    if v["shared_adapter_rank"] is not None:
        check_positive_int(f("shared_adapter_rank"), v["shared_adapter_rank"], maximum=MAX_DIM)
    if not v["shared_attention_adapters"]:
        return
    if v["shared_adapter_rank"] is None:
        raise InvalidSpecError(f("shared_attention_adapters"), "needs shared_adapter_rank (the adapters' rank)")
    width = 2 * v["d_model"]
    if v["n_heads"] * v["d_head"] != width or v["n_kv_heads"] * v["d_head"] != width:
        raise InvalidSpecError(
            f("shared_attention_adapters"), f"the adapters add 2 * d_model = {width} values to q, k and v: n_heads * d_head "
            "and n_kv_heads * d_head must both equal it")  # fmt: skip


def _layer_types(f: Callable[[str], str], given: Any, n_layers: int) -> tuple[LayerType, ...] | None:
    """``given`` as a tuple of :class:`LayerType`: non-empty, each a known mixer, its length dividing
    ``n_layers``; None when every layer is attention (the default)."""
    if given is None:
        return None
    if isinstance(given, str) or not isinstance(given, (list, tuple)) or not given:
        raise InvalidSpecError(f("layer_types"), "must be a non-empty list of layer types")
    try:
        types = tuple(LayerType(t) for t in given)
    except ValueError as exc:
        known = ", ".join(t.value for t in LayerType)
        raise InvalidSpecError(f("layer_types"), f"unknown layer type ({exc}); known: {known}") from exc
    if len(types) > n_layers or n_layers % len(types):
        raise InvalidSpecError(
            f("layer_types"), f"{len(types)} entries do not divide n_layers={n_layers}: give one per layer or a repeating pattern"
        )
    return None if set(types) == {LayerType.ATTENTION} else types


def _refuse_unused(f: Callable[[str], str], v: dict[str, Any], *, mamba: bool, mamba2: bool, rwkv: bool) -> None:
    """A field no layer of the model reads is refused, naming it."""
    unused: list[tuple[str, str]] = []
    if not (mamba or mamba2):
        unused += [(name, "mamba or mamba2") for name in _STATE_SPACE if v[name] not in (None, False)]
        unused += [(name, "mamba or mamba2") for name, default in _STATE_SPACE_FLAGS.items() if v[name] != default]
    else:
        if not mamba:
            unused += [(name, "mamba") for name in _MAMBA_ONLY if v[name] not in (None, False)]
        if not mamba2:
            unused += [(name, "mamba2") for name in _MAMBA2_ONLY if v[name] is not None]
    if not rwkv and v["rwkv_version"] is not None:  # the other RWKV fields: _rwkv
        unused.append(("rwkv_version", "rwkv"))
    if unused:
        name, kind = unused[0]
        raise InvalidSpecError(f(name), f"only applies to {kind} layers (layer_types)")


def _state_space(f: Callable[[str], str], v: dict[str, Any], *, mamba: bool, mamba2: bool) -> None:
    """Sizes of the Mamba / Mamba-2 mixers, with the reference defaults: ``d_conv`` 4, ``expand`` 2,
    Mamba's ``dt_rank = ceil(d_model / 16)`` (``MambaConfig``), Mamba-2's ``headdim`` 64 and
    ``ngroups`` 1 (``mamba_ssm.modules.mamba2.Mamba2``), heads ``expand * d_model / headdim``."""
    if v["ssm_state_size"] is None:
        raise InvalidSpecError(f("ssm_state_size"), "mamba and mamba2 layers need their state size (d_state)")
    check_positive_int(f("ssm_state_size"), v["ssm_state_size"], maximum=MAX_DIM)
    v["ssm_conv_kernel"] = v["ssm_conv_kernel"] or 4
    v["ssm_expand"] = v["ssm_expand"] or 2
    check_positive_int(f("ssm_conv_kernel"), v["ssm_conv_kernel"], maximum=64)
    check_positive_int(f("ssm_expand"), v["ssm_expand"], maximum=64)
    inner = v["ssm_inner_size"] or v["ssm_expand"] * v["d_model"]
    if v["ssm_inner_size"] is not None:
        check_positive_int(f("ssm_inner_size"), v["ssm_inner_size"], maximum=MAX_DIM * 8)
        if mamba:
            raise InvalidSpecError(f("ssm_inner_size"), "only Mamba-2 layers take an inner width other than ssm_expand * d_model")
    if mamba:
        v["ssm_dt_rank"] = v["ssm_dt_rank"] or math.ceil(v["d_model"] / 16)
        check_positive_int(f("ssm_dt_rank"), v["ssm_dt_rank"], maximum=MAX_DIM)
    if not mamba2:
        return
    head_dim = v["ssm_head_dim"] or (inner // v["ssm_n_heads"] if v["ssm_n_heads"] else 64)
    check_positive_int(f("ssm_head_dim"), head_dim, maximum=MAX_DIM)
    heads = v["ssm_n_heads"] or inner // head_dim
    check_positive_int(f("ssm_n_heads"), heads, maximum=MAX_DIM)
    if heads * head_dim != inner:
        raise InvalidSpecError(
            f("ssm_n_heads"),
            f"ssm_n_heads * ssm_head_dim = {heads} * {head_dim} must equal the inner width "
            f"(ssm_inner_size, else ssm_expand * d_model) = {inner}",
        )
    groups = v["ssm_n_groups"] or 1
    check_positive_int(f("ssm_n_groups"), groups, maximum=MAX_DIM)
    if heads % groups:
        raise InvalidSpecError(f("ssm_n_groups"), f"ssm_n_groups={groups} does not divide ssm_n_heads={heads}")
    v["ssm_head_dim"], v["ssm_n_heads"], v["ssm_n_groups"] = head_dim, heads, groups
