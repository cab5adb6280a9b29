"""Mappers of flash-linear-attention's RWKV-6 (Finch) and RWKV-7 (Goose) configs (``model_type`` ``rwkv6``,
``rwkv7``: ``fla.models.RWKV6Config``, ``RWKV7Config``, the format of the fla-hub conversions).

Each reads its config as fla 0.6.0 builds its modules (``fla/models/rwkv*/configuration_rwkv*.py``,
``fla/layers/rwkv*.py``), so that :func:`service.core.params.count_params` equals the reference count
(``validation/measure_recurrent.py``): absent keys take the config class's defaults, a LoRA rank given as
null the layer's own formula. What the core does not model is refused naming the key: keys narrower or
wider than the model (RWKV-6 ``expand_k``/``expand_v`` other than 1, RWKV-7 ``value_dim`` other than
``hidden_size``), hybrid attention layers (``attn``), bias-free LayerNorms, and keys of another family
(RWKV-4's, the other version's LoRAs, attention heads, Mamba's).
"""

from __future__ import annotations

from typing import Any

from service.core.architecture import LayerType, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import _Reader

# keys of other families, refused in an fla RWKV config (a config mixing two families)
_FOREIGN = {
    "rwkv6": ("decay_low_rank_dim", "a_low_rank_dim", "v_low_rank_dim", "value_dim", "head_dim"),
    "rwkv7": ("proj_low_rank_dim", "expand_k", "expand_v"),
}
_OTHERS = ("state_size", "conv_kernel", "expand", "time_step_rank", "num_key_value_heads", "n_groups")
# the keys of RWKV's own remote-code configs (RWKV/v6-Finch-*-HF) and of transformers' RWKV-4
_RWKV_REMOTE = ("attention_hidden_size", "head_size", "num_attention_heads", "context_length", "rescale_every",
                "head_size_divisor")  # fmt: skip
_RANKS = {
    "rwkv6": {"rwkv_mix_lora_rank": ("proj_low_rank_dim", 32), "rwkv_decay_lora_rank": ("gate_low_rank_dim", 64)},
    "rwkv7": {"rwkv_decay_lora_rank": ("decay_low_rank_dim", 64), "rwkv_a_lora_rank": ("a_low_rank_dim", 64),
              "rwkv_value_lora_rank": ("v_low_rank_dim", 16), "rwkv_gate_lora_rank": ("gate_low_rank_dim", 128)},
}  # fmt: skip
# RWKV7Attention's ranks when its config passes None: max(32, round(scale * sqrt(hidden) * factor / 32) * 32)
_RWKV7_NULL_RANK = {"decay_low_rank_dim": (2.5, True), "a_low_rank_dim": (2.5, True), "v_low_rank_dim": (1.7, True),
                    "gate_low_rank_dim": (5.0, False)}  # fmt: skip


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_keys(r: _Reader, model_type: str) -> None:
    for key in _RWKV_REMOTE:
        if key in r.config:
            raise InvalidSpecError(
                f"{r.prefix}.{key}",
                f"a key of RWKV's own remote-code or RWKV-4 config, not of flash-linear-attention's {model_type} config "
                "(hidden_size, num_hidden_layers, the heads and LoRA ranks as fla names them)",
            )
    for key in (*_FOREIGN[model_type], *_OTHERS):
        if key in r.config:
            raise InvalidSpecError(f"{r.prefix}.{key}", f"not a key of an fla {model_type} config: a config mixes two families")
    if r.config.get("attn") is not None:
        raise InvalidSpecError(f"{r.prefix}.attn", "attention layers among the RWKV layers (fla's hybrid attn) are not modelled")
    if r.config.get("norm_bias", True) is not True:
        raise InvalidSpecError(f"{r.prefix}.norm_bias", "bias-free LayerNorms are not modelled: norm_bias must be true")


def _width(r: _Reader, d: Any, ratio_default: float) -> Any:
    """Channel mixing's width: ``intermediate_size``, else ``int(hidden_size * hidden_ratio)`` rounded up to a
    multiple of 32 (``RWKV6FeedForward``, ``RWKV7FeedForward``)."""
    width = r.config.get("intermediate_size")
    if width is not None:
        return width
    ratio = r.config.get("hidden_ratio")
    ratio = ratio_default if ratio is None else ratio
    if not _is_int(d):
        return 1  # the spec check names hidden_size
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 64:
        raise InvalidSpecError(f"{r.prefix}.hidden_ratio", f"must be a number from 0 to 64, got {ratio!r:.40}")
    r.assumptions["intermediate_size"] = f"not given; int(hidden_size * {ratio:g}) rounded up to a multiple of 32 (fla)"
    return 32 * -(-int(d * ratio) // 32)


def _common(r: _Reader, model_type: str) -> dict[str, Any]:
    _check_keys(r, model_type)
    f: dict[str, Any] = {
        "n_layers": r.required("num_hidden_layers"),
        "d_model": r.required("hidden_size"),
        "vocab_size": r.required("vocab_size"),
    }
    r.check_missing(model_type)
    f |= {
        "d_ff": _width(r, f["d_model"], 3.5 if model_type == "rwkv6" else 4),
        "layer_types": (LayerType.RWKV,),
        "rwkv_version": 6 if model_type == "rwkv6" else 7,
        "norm": Norm.LAYERNORM,
        "embedding_norm": bool(r.optional("norm_first", True, why="fla: a LayerNorm on the first block's input")),
        "position": Position.ROTARY,  # no position encoding: token shift and the recurrence order the tokens
        "tied_embeddings": bool(r.optional("tie_word_embeddings", False)),
        "max_seq_len": r.optional("max_position_embeddings", 2048, why="fla's default; the recurrence has no limit"),
    }
    r.key_names |= {"d_ff": "intermediate_size", "max_seq_len": "max_position_embeddings"}
    for field, (key, default) in _RANKS[model_type].items():
        f[field] = r.optional(key, default, why=f"{model_type.upper()}Config's default")
        r.key_names[field] = key
    r.assumptions["layers"] = (
        f"{model_type}: LayerNorms before time mixing and channel mixing (channel mixing counted as the MLP), no attention"
    )
    return f


def _heads(f: dict[str, Any], head: Any) -> dict[str, Any]:
    """The head width and, for the record, the heads (no attention: n_heads is H, d_head N)."""
    d = f["d_model"]
    f["rwkv_head_size"] = head
    if _is_int(head) and _is_int(d) and head > 0 and d % head == 0:
        f |= {"n_heads": d // head, "d_head": head}
    else:
        f["n_heads"] = 1  # the head size is refused by the spec check, naming its key
    return f


def _map_rwkv7(r: _Reader) -> dict[str, Any]:
    """RWKV-7 (``RWKV7ForCausalLM``; Peng et al. 2025): heads of ``head_dim`` (default 64; without it,
    ``hidden_size / num_heads``), LoRA ranks ``decay_low_rank_dim``, ``a_low_rank_dim``, ``v_low_rank_dim``,
    ``gate_low_rank_dim`` (``RWKV7Config``'s 64, 64, 16, 128 when absent; a null the layer's formula),
    channel mixing ``intermediate_size`` or ``hidden_ratio`` (4) times ``hidden_size``; ``value_dim`` other
    than ``hidden_size`` is refused."""
    f = _common(r, "rwkv7")
    d = f["d_model"]
    value = r.config.get("value_dim")
    if value is not None and any(v != d for v in (value if isinstance(value, list) else [value])):
        raise InvalidSpecError(f"{r.prefix}.value_dim", f"a value width other than hidden_size ({d!r:.20}) is not modelled")
    head = r.config.get("head_dim", 64)
    if head is None:
        heads = r.config.get("num_heads")
        if not _is_int(heads) or heads < 1 or not _is_int(d) or d % heads:
            raise InvalidSpecError(f"{r.prefix}.num_heads", f"must divide hidden_size={d!r:.20} when head_dim is null")
        head = d // heads
    r.key_names["rwkv_head_size"] = "head_dim"
    for field, (key, _) in _RANKS["rwkv7"].items():
        if key in r.config and r.config[key] is None and _is_int(d) and _is_int(head):
            scale, by_head = _RWKV7_NULL_RANK[key]
            f[field] = max(32, int(round(scale * d**0.5 * (head / 64 if by_head else 1) / 32) * 32))
            r.assumptions[key] = "null: RWKV7Attention's own rank for hidden_size and head_dim"
    return _heads(f, head)


def _map_rwkv6(r: _Reader) -> dict[str, Any]:
    """RWKV-6 (``RWKV6ForCausalLM``; Peng et al. 2024): ``num_heads`` heads (``RWKV6Config``'s 4 when absent)
    of ``hidden_size * expand_k / num_heads``; keys and values as wide as the model (``expand_k`` and
    ``expand_v`` 1, as the released Finch models have them: the config class's 0.5 for keys is refused),
    the token-shift LoRA ``proj_low_rank_dim`` (32) and the decay LoRA ``gate_low_rank_dim`` (64), channel
    mixing ``intermediate_size`` or ``hidden_ratio`` (3.5) times ``hidden_size``."""
    f = _common(r, "rwkv6")
    for key, default in (("expand_k", 0.5), ("expand_v", 1.0)):
        given = r.config.get(key, default)
        if given != 1:
            said = "" if key in r.config else f" (not given: RWKV6Config's {default})"
            raise InvalidSpecError(
                f"{r.prefix}.{key}", f"keys and values as wide as hidden_size (1) are modelled, got {given!r:.20}{said}"
            )
    d, heads = f["d_model"], r.optional("num_heads", 4, why="RWKV6Config's default")
    r.key_names["rwkv_head_size"] = "num_heads"
    if not _is_int(heads) or heads < 1 or not _is_int(d) or d % heads:
        raise InvalidSpecError(f"{r.prefix}.num_heads", f"must divide hidden_size={d!r:.20}, got {heads!r:.20}")
    return _heads(f, d // heads)
