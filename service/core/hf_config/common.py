"""The config reader and the helpers the family mappers share.

:class:`_Reader` reads one ``config.json`` (recording each default taken, naming missing keys);
:class:`HfMapping` is what a mapped config becomes; :data:`HF_KEYS` names the config key a core field
usually comes from. The rest are building blocks of more than one family module: the Llama-style keys
(``_common_decoder``, ``_llama_like``), the RoPE-scaled context, sliding-window layer rules, checked
integer keys, nested sub-configs. A helper only one family group uses lives in that group's module.
Pure: a dict in, a dataclass out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.core.architecture import ARCHITECTURE_FIELDS, Ffn, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.limits import MAX_LAYERS, MAX_SEQ_LEN

GATED_ACTIVATIONS = ("silu", "swish", "gelu", "gelu_pytorch_tanh", "gelu_new", "gelu_fast", "relu", "gelu_tanh")


@dataclass(frozen=True, kw_only=True, slots=True)
class HfMapping:
    """A config mapped to core fields.

    ``fields`` are :func:`~service.core.spec.make_architecture`'s keyword arguments (as sorted pairs);
    ``assumptions`` say which keys were defaulted or how a key was read; ``context_tokens`` is the
    context the model was built for (``max_position_embeddings``, or the RoPE-scaled context);
    ``key_prefix`` is where the mapped keys sit (``hf_config.text_config`` for a multimodal config);
    ``key_names``: core fields read from another key than :data:`HF_KEYS` says (a mixture's ``d_ff``
    from ``moe_intermediate_size``).
    """

    model_type: str
    fields: tuple[tuple[str, Any], ...]
    assumptions: tuple[tuple[str, str], ...]
    context_tokens: int
    key_prefix: str = "hf_config"
    key_names: tuple[tuple[str, str], ...] = ()


class _Reader:
    """Reads keys of one config, recording defaults and naming missing keys."""

    def __init__(self, config: Mapping[str, Any], prefix: str) -> None:
        self.config = config
        self.prefix = prefix
        self.missing: list[str] = []
        self.assumptions: dict[str, str] = {}
        self.key_names: dict[str, str] = {}  # core field -> its config key, where not HF_KEYS'

    def required(self, *names: str) -> Any:
        """The first of ``names`` that is present (aliases, e.g. ``n_embd``/``hidden_size``)."""
        for name in names:
            if self.config.get(name) is not None:
                return self.config[name]
        self.missing.append(names[0])
        return None

    def optional(self, name: str, default: Any, *, why: str | None = None) -> Any:
        """``name`` if present, else ``default`` (reported in assumptions). A switch (a key whose default
        is a boolean) given as anything but a boolean, a 0/1 or null is refused naming it: ``"false"``
        would otherwise read as true."""
        if name in self.config:
            value = self.config[name]
            if isinstance(default, bool) and value is not None and not isinstance(value, (bool, int)):
                raise InvalidSpecError(f"{self.prefix}.{name}", f"must be true or false, got {value!r:.40}")
            return value
        self.assumptions[name] = f"not given; {default!r}" + (f" ({why})" if why else " (the transformers default)")
        return default

    def check_missing(self, model_type: str) -> None:
        if self.missing:
            raise InvalidSpecError(
                f"{self.prefix}.{self.missing[0]}",
                f"a {model_type} config needs {', '.join(self.missing)} (missing)",
            )


def _context(r: _Reader, max_positions: int | None) -> int | None:
    """The context a config was built for: ``max_position_embeddings``, extended by RoPE scaling
    (``rope_scaling``, or ``rope_parameters`` in transformers 5) to ``factor *
    original_max_position_embeddings`` for yarn/longrope/llama3/dynamic/linear scaling (Peng et al.
    2023, YaRN §3; Meta's Llama 3.1 card), whichever is larger. Without
    ``original_max_position_embeddings`` the config's ``max_position_embeddings`` is taken as the
    scaled context (Gemma 3: 131,072 with a linear factor of 8)."""
    scaling = r.config.get("rope_scaling") or r.config.get("rope_parameters")
    if not isinstance(scaling, Mapping) or max_positions is None:
        return max_positions
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = scaling.get("factor")
    if (
        kind in (None, "default")
        or not isinstance(factor, (int, float))
        or isinstance(factor, bool)
        or not math.isfinite(factor)
        or factor <= 1
        or factor > MAX_SEQ_LEN
    ):
        return max_positions
    original = scaling.get("original_max_position_embeddings", r.config.get("original_max_position_embeddings"))
    if original is not None and (isinstance(original, bool) or not isinstance(original, int) or not 0 < original <= MAX_SEQ_LEN):
        raise InvalidSpecError(
            f"{r.prefix}.rope_scaling.original_max_position_embeddings",
            f"must be an integer from 1 to {MAX_SEQ_LEN}, got {original!r:.40}",
        )
    if original is not None:
        scaled = int(factor * original)
        r.assumptions["context"] = f"max(max_position_embeddings, {kind} factor {factor:g} x original {original})"
    else:  # e.g. Gemma 3's linear factor 8: max_position_embeddings is already the scaled context
        scaled = max_positions
        r.assumptions["context"] = (
            f"max_position_embeddings ({kind} rope scaling without original_max_position_embeddings is taken as already applied)"
        )
    return max(max_positions, scaled)


def _gated_ffn(r: _Reader, key: str, default: str) -> Ffn:
    """Families whose MLP is gated (gate, up, down: Shazeer 2020) whatever ``hidden_act`` is."""
    act = r.optional(key, default)
    if act not in GATED_ACTIVATIONS:
        r.assumptions[key] = f"{act!r}: counted as a gated 3-matrix MLP (the family's module)"
    return Ffn.SWIGLU


def _layer_count(n_layers: Any) -> int | None:
    """``n_layers`` when it is an integer the spec accepts (1 to ``MAX_LAYERS``), else None: a per-layer
    rule is then not walked (a hostile ``10**15`` layers would take hours) and the spec check names the key."""
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 0 < n_layers <= MAX_LAYERS:
        return None
    return n_layers


def _sliding_layers(r: _Reader, n_layers: int, window: int | None, rule: Callable[[int], bool]) -> tuple[int | None, int | None]:
    """(sliding_window, how many layers use it): from ``layer_types`` when given, else ``rule``
    (the config class's default pattern)."""
    if not window or _layer_count(n_layers) is None:
        return None, None
    types = r.config.get("layer_types")
    if isinstance(types, list) and len(types) == n_layers:
        count = sum(1 for t in types if t == "sliding_attention")
    else:
        count = sum(1 for i in range(n_layers) if rule(i))
    if count == 0:
        return None, None
    return window, (None if count == n_layers else count)


def _common_decoder(r: _Reader, model_type: str, *, kv_default: int | None = None) -> dict[str, Any]:
    """The Llama-style keys most families share. ``kv_default``: the config class's
    ``num_key_value_heads`` when it is not the head count (SmolLM3's 4, StarCoder2's 2, Mistral's 8),
    taken when the key is absent; an explicit null is the head count (the config classes'
    ``__post_init__``: ``if self.num_key_value_heads is None: ... = self.num_attention_heads``)."""
    fields: dict[str, Any] = {
        "n_layers": r.required("num_hidden_layers"),
        "d_model": r.required("hidden_size"),
        "n_heads": r.required("num_attention_heads"),
        "d_ff": r.required("intermediate_size"),
        "vocab_size": r.required("vocab_size"),
        "norm": Norm.RMSNORM,
        "position": Position.ROTARY,
    }
    r.check_missing(model_type)
    kv = r.config.get("num_key_value_heads")
    if kv is None and (kv_default is None or "num_key_value_heads" in r.config):  # null: __post_init__ takes the heads
        r.assumptions["num_key_value_heads"] = "not given; num_attention_heads (multi-head attention)"
        kv = fields["n_heads"]
    elif kv is None:
        r.assumptions["num_key_value_heads"] = f"not given; {kv_default} (the transformers default)"
        kv = kv_default
    fields["n_kv_heads"] = kv  # 0 or a bad value: the spec check names it
    head_dim = r.config.get("head_dim")
    if head_dim is not None:
        fields["d_head"] = head_dim
    return fields


def _max_positions(r: _Reader, default: int) -> int:
    return r.optional("max_position_embeddings", default)


def _llama_like(
    r: _Reader,
    model_type: str,
    *,
    max_pos: int,
    tie: bool,
    window_rule: Callable[[int], bool] | None,
    kv_default: int | None = None,
) -> dict[str, Any]:
    f = _common_decoder(r, model_type, kv_default=kv_default)
    if model_type.startswith("gemma"):  # GeGLU; transformers reads hidden_activation
        key = "hidden_activation" if "hidden_activation" in r.config else "hidden_act"
        f["ffn"] = _gated_ffn(r, key, "gelu_pytorch_tanh")
    else:
        f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", tie))
    f["max_seq_len"] = _max_positions(r, max_pos)
    if model_type in ("mistral", "mixtral"):  # MistralAttention/MixtralAttention build every projection without a bias
        if r.config.get("attention_bias"):
            r.assumptions["attention_bias"] = f"ignored: {model_type}'s modelling code builds no attention biases"
    elif model_type in ("llama", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text", "granite", "smollm3"):
        # attention_bias puts a bias on q, k, v and o alike (LlamaAttention and its copies); mlp_bias on
        # gate, up and down (llama, granite, smollm3)
        attention_bias = bool(r.optional("attention_bias", False))
        mlp_bias = bool(r.optional("mlp_bias", False)) if model_type in ("llama", "granite", "smollm3") else False
        if attention_bias and mlp_bias:
            f["bias"] = True
        elif attention_bias:
            f["attention_bias"] = True
        elif mlp_bias:
            raise InvalidSpecError(f"{r.prefix}.mlp_bias", "MLP biases without attention biases are not modelled")
    if window_rule is not None:
        window = r.optional("sliding_window", 4096 if model_type == "mistral" else None)
        f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, window_rule)
    return f


def _refuse_attention_bias(r: _Reader) -> None:
    """Families whose ``attention_bias`` puts a bias on q, k, v and o alike while the MLP keeps none:
    not a combination :class:`Architecture` counts (``bias`` is every projection, ``qkv_bias`` Q/K/V
    alone), so a true value is refused naming the key."""
    if r.optional("attention_bias", False):
        raise InvalidSpecError(
            f"{r.prefix}.attention_bias", "attention biases (Q/K/V and output) without MLP biases are not modelled"
        )


def _qwen_window(r: _Reader, f: dict[str, Any], sliding: Callable[[int, int], bool]) -> None:
    """Qwen's windows apply only with ``use_sliding_window``; ``sliding(i, max_window_layers)`` is the
    config class's rule for which layers use them (its ``layer_types`` win when given)."""
    if not r.config.get("use_sliding_window"):
        return
    max_window = _int_key(r, "max_window_layers", 28)
    window = r.optional("sliding_window", 4096)
    f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: sliding(i, max_window))


def _int_key(r: _Reader, name: str, default: int, *, minimum: int = 0) -> int:
    """An integer key of the config (``default`` when absent), refused naming the key otherwise."""
    value = r.optional(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 1_000_000:
        raise InvalidSpecError(f"{r.prefix}.{name}", f"must be an integer from {minimum} to 1000000, got {value!r:.40}")
    return value


def _head_dim_of_hidden(r: _Reader, f: dict[str, Any], model_type: str) -> None:
    """Families whose modules size a norm or projection by ``hidden_size`` itself, so that a
    ``head_dim`` other than ``hidden_size // num_attention_heads`` cannot be built: refused naming it."""
    given = f.pop("d_head", None)
    d, a = f["d_model"], f["n_heads"]
    if given is not None and isinstance(d, int) and isinstance(a, int) and a > 0 and given != d // a:
        raise InvalidSpecError(
            f"{r.prefix}.head_dim",
            f"a {model_type} model sizes its modules by hidden_size / num_attention_heads ({d // a}), got {given!r:.40}",
        )


def _nested(r: _Reader, name: str) -> _Reader:
    """A reader of the nested config ``name`` (DBRX's ``attn_config``, ``ffn_config``), its keys named
    ``<prefix>.<name>.<key>``; absent, the config class's defaults are taken (and said)."""
    sub = r.config.get(name)
    if sub is None:
        r.assumptions[name] = "not given; the config class's defaults"
        sub = {}
    if not isinstance(sub, Mapping):
        raise InvalidSpecError(f"{r.prefix}.{name}", f"must be a JSON object, got {type(sub).__name__}")
    return _Reader(sub, f"{r.prefix}.{name}")


# core field -> the config key it usually comes from (declared with the field), to name a rejected
# key in its own terms
HF_KEYS = {f.name: f.hf_key for f in ARCHITECTURE_FIELDS if f.hf_key is not None}
