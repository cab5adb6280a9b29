"""A Hugging Face ``config.json`` mapped onto :class:`~service.core.architecture.Architecture`.

Each supported ``model_type`` is read the way its ``transformers`` implementation builds its modules
(``modeling_<type>.py``: which projections carry biases, how many norms a block holds, which layers
use a sliding window or experts), so that :func:`service.core.params.count_params` of the result
equals the reference implementation's parameter count exactly; ``validation/measure_hf_models.py``
measures those counts on the meta device and ``tests/core/test_hf_config.py`` checks them.

Keys that only tune behaviour default to the value the ``transformers`` config class uses, and every
default taken is reported in :attr:`HfMapping.assumptions`; keys that fix the shape (``hidden_size``,
``num_hidden_layers``, ...) are required. Pure: a dict in, a dataclass out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.core.architecture import Architecture, Ffn, Norm, Position
from service.core.errors import InvalidSpecError
from service.core.limits import MAX_LAYERS, MAX_SEQ_LEN
from service.core.spec import make_architecture

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
        """``name`` if present, else ``default`` (reported in assumptions)."""
        if name in self.config:
            return self.config[name]
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
    ``num_key_value_heads`` when it is not the head count (SmolLM3's 4, StarCoder2's 2)."""
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
    if kv is None and kv_default is None:
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


def _map_llama(r: _Reader) -> dict[str, Any]:
    return _llama_like(r, "llama", max_pos=2048, tie=False, window_rule=None)


def _map_mistral(r: _Reader) -> dict[str, Any]:
    return _llama_like(r, "mistral", max_pos=4096 * 32, tie=False, window_rule=lambda i: True)


def _map_mixtral(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "mixtral", max_pos=4096 * 32, tie=False, window_rule=lambda i: True)
    f["n_experts"] = r.optional("num_local_experts", 8)
    f["experts_per_token"] = r.optional("num_experts_per_tok", 2)
    r.key_names["n_experts"] = "num_local_experts"
    return f


def _qwen_window(r: _Reader, f: dict[str, Any], sliding: Callable[[int, int], bool]) -> None:
    """Qwen's windows apply only with ``use_sliding_window``; ``sliding(i, max_window_layers)`` is the
    config class's rule for which layers use them (its ``layer_types`` win when given)."""
    if not r.config.get("use_sliding_window"):
        return
    max_window = r.optional("max_window_layers", 28)
    window = r.optional("sliding_window", 4096)
    f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: sliding(i, max_window))


def _map_qwen2(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "qwen2", max_pos=32768, tie=False, window_rule=None)
    f["qkv_bias"] = True  # Qwen2Attention: q, k, v with bias, o without
    _qwen_window(r, f, lambda i, max_window: i >= max_window)
    return f


def _map_qwen3(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "qwen3", max_pos=32768, tie=False, window_rule=None)
    f["qk_norm"] = True  # Qwen3Attention: q_norm, k_norm over head_dim
    _qwen_window(r, f, lambda i, max_window: i >= max_window)
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
    mlp_only = set(r.optional("mlp_only_layers", None) or [])
    n_experts = r.optional("num_experts", experts)
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
    f = _llama_like(r, "qwen2_moe", max_pos=32768, tie=False, window_rule=None)
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
    f = _llama_like(r, "qwen3_moe", max_pos=32768, tie=False, window_rule=None)
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


def _map_gemma(r: _Reader) -> dict[str, Any]:
    f = _llama_like(r, "gemma", max_pos=8192, tie=True, window_rule=None)
    r.assumptions.setdefault("embedding", "scaled by sqrt(hidden_size): no parameters")
    if "head_dim" not in r.config:
        f["d_head"] = 256
        r.assumptions["head_dim"] = "not given; 256 (the transformers default)"
    return f


def _map_gemma2(r: _Reader, *, pattern: int = 2, model_type: str = "gemma2") -> dict[str, Any]:
    f = _llama_like(r, model_type, max_pos=8192 if model_type == "gemma2" else 131072, tie=True, window_rule=None)
    f["norms_per_layer"] = 4  # input, post-attention, pre- and post-feedforward RMSNorms
    if "head_dim" not in r.config:
        f["d_head"] = 256
        r.assumptions["head_dim"] = "not given; 256 (the transformers default)"
    window = r.optional("sliding_window", 4096 if model_type == "gemma2" else 512)
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


def _map_deepseek(r: _Reader, model_type: str) -> dict[str, Any]:
    v3 = model_type == "deepseek_v3"
    f = _common_decoder(r, model_type)
    f["ffn"] = _gated_ffn(r, "hidden_act", "silu")
    f["tied_embeddings"] = bool(r.optional("tie_word_embeddings", False))
    f["max_seq_len"] = _max_positions(r, 4096 if v3 else 2048)
    if r.optional("attention_bias", False):
        f["bias"] = True
        r.assumptions["attention_bias"] = "true: biases counted on the MLA down- and output projections"
    f.pop("d_head", None)
    f.pop("n_kv_heads", None)
    f["q_lora_rank"] = r.optional("q_lora_rank", 1536)
    f["kv_lora_rank"] = r.optional("kv_lora_rank", 512)
    f["qk_nope_head_dim"] = r.optional("qk_nope_head_dim", 128)
    f["qk_rope_head_dim"] = r.optional("qk_rope_head_dim", 64)
    f["v_head_dim"] = r.optional("v_head_dim", 128)
    n_experts = r.optional("n_routed_experts", 256 if v3 else 64)
    if n_experts and n_experts > 1:
        top_k = r.config.get("num_experts_per_tok")
        if top_k is None:
            r.missing.append("num_experts_per_tok")
            r.check_missing(model_type)
        first_dense = r.optional("first_k_dense_replace", 3 if v3 else 0)
        if r.config.get("moe_layer_freq", 1) != 1:
            r.assumptions["moe_layer_freq"] = (
                "ignored: the transformers implementation puts experts in every layer after first_k_dense_replace"
            )
        f["d_ff_dense"] = f["d_ff"]
        f["d_ff"] = r.optional("moe_intermediate_size", 2048 if v3 else 1407)
        r.key_names |= {"d_ff": "moe_intermediate_size", "n_experts": "n_routed_experts"}
        f["n_experts"] = n_experts
        f["experts_per_token"] = top_k
        shared = r.optional("n_shared_experts", 1 if v3 else 2)
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


def _int_key(r: _Reader, name: str, default: int, *, minimum: int = 0) -> int:
    """An integer key of the config (``default`` when absent), refused naming the key otherwise."""
    value = r.optional(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 1_000_000:
        raise InvalidSpecError(f"{r.prefix}.{name}", f"must be an integer from {minimum} to 1000000, got {value!r:.40}")
    return value


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


def _map_phimoe(r: _Reader) -> dict[str, Any]:
    """Phi-3.5-MoE (Abdin et al. 2024, "Phi-3 Technical Report", arXiv 2404.14219, §2 and the
    Phi-3.5-MoE card: 16 experts, 2 routed, 42B total / 6.6B active; ``modeling_phimoe.py``): GQA
    attention with biases on q, k, v and o when ``attention_bias`` (:attr:`Architecture.attention_bias`;
    the experts have none), every layer ``num_local_experts`` SwiGLU experts of ``intermediate_size``
    behind a bias-free router (``PhimoeTopKRouter``), two LayerNorms with bias a layer and a final one
    (``nn.LayerNorm``, eps from ``rms_norm_eps``), an LM head with a bias when ``lm_head_bias``;
    ``sliding_window`` on every layer when set. The jitter noises have no parameters."""
    f = _llama_like(r, "phimoe", max_pos=4096 * 32, tie=False, window_rule=lambda i: True)
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


MAPPERS: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "llama": _map_llama,
    "mistral": _map_mistral,
    "mixtral": _map_mixtral,
    "qwen2": _map_qwen2,
    "qwen2_moe": _map_qwen2_moe,
    "qwen3": _map_qwen3,
    "qwen3_moe": _map_qwen3_moe,
    "gemma": _map_gemma,
    "gemma2": _map_gemma2,
    "gemma3_text": _map_gemma3_text,
    "phi3": _map_phi3,
    "granite": _map_granite,
    "smollm3": _map_smollm3,
    "starcoder2": _map_starcoder2,
    "glm4": _map_glm4,
    "ernie4_5": _map_ernie4_5,
    "seed_oss": _map_seed_oss,
    "arcee": _map_arcee,
    "hunyuan_v1_dense": _map_hunyuan_v1_dense,
    "exaone4": _map_exaone4,
    "olmo2": _map_olmo2,
    "gpt2": _map_gpt2,
    "gpt_neox": _map_gpt_neox,
    "falcon": _map_falcon,
    "deepseek_v2": lambda r: _map_deepseek(r, "deepseek_v2"),
    "deepseek_v3": lambda r: _map_deepseek(r, "deepseek_v3"),
    "glm4_moe": _map_glm4_moe,
    "gpt_oss": _map_gpt_oss,
    "llama4_text": _map_llama4_text,
    "olmoe": _map_olmoe,
    "granitemoe": _map_granitemoe,
    "granitemoeshared": lambda r: _map_granitemoe(r, "granitemoeshared"),
    "dbrx": _map_dbrx,
    "phimoe": _map_phimoe,
    "phi": _map_phi,
    "cohere": _map_cohere,
    "cohere2": _map_cohere2,
    "stablelm": _map_stablelm,
    "gpt_bigcode": _map_gpt_bigcode,
    "opt": _map_opt,
    "bloom": _map_bloom,
    "mpt": _map_mpt,
}


@dataclass(frozen=True, slots=True)
class _Wrapper:
    """A multimodal config whose language model is built from its ``text_config``
    (``<Type>ForConditionalGeneration``: ``model.language_model`` and a bias-free ``lm_head``).

    ``text_type``: the text config's ``model_type`` when it names none (the config class's
    ``sub_configs_defaults``); ``fixed``: the text config class is fixed, so a ``model_type`` in it is
    ignored; ``tie``: the wrapper's own ``tie_word_embeddings`` default, which transformers 5 reads to
    tie ``lm_head`` (the text config's key is not read); ``forward_tie``: the config class forwards a
    true ``text_config.tie_word_embeddings`` to the top (``LlavaConfig``, ``Qwen2VLConfig``
    ``__post_init__``); ``flat``: the text keys may sit at the top level instead (Qwen2-VL hub configs);
    ``nested_lm``: the language model is a whole ``<Type>ForCausalLM`` (``language_model.lm_head``)
    that ties its own ``lm_head`` by the text config's ``tie_word_embeddings``, the wrapper's key unread
    (``Llama4ForConditionalGeneration``).
    """

    text_type: str
    fixed: bool
    tie: bool
    forward_tie: bool = False
    flat: bool = False
    nested_lm: bool = False


WRAPPERS: dict[str, _Wrapper] = {
    "gemma3": _Wrapper("gemma3_text", fixed=True, tie=True),
    "mistral3": _Wrapper("mistral", fixed=False, tie=True),
    "llava": _Wrapper("llama", fixed=False, tie=False, forward_tie=True),
    "llava_next": _Wrapper("llama", fixed=False, tie=False),
    "qwen2_vl": _Wrapper("qwen2_vl_text", fixed=True, tie=False, forward_tie=True, flat=True),
    "qwen2_5_vl": _Wrapper("qwen2_5_vl_text", fixed=True, tie=False, forward_tie=True, flat=True),
    "llama4": _Wrapper("llama4_text", fixed=True, tie=False, nested_lm=True),
}


def _map_qwen_vl_text(r: _Reader) -> dict[str, Any]:
    """The language model of Qwen2-VL and Qwen2.5-VL (``Qwen2VLTextModel``, ``Qwen2_5_VLTextModel``):
    Qwen2's modules (Q/K/V biases, output without), ``head_dim = hidden_size / num_attention_heads``
    whatever ``head_dim`` says, the text config class's defaults (8 KV heads, windows from
    ``max_window_layers`` on when ``use_sliding_window``). M-RoPE has no parameters."""
    f = _llama_like(r, "qwen2", max_pos=32768, tie=False, window_rule=None, kv_default=8)
    f.pop("d_head", None)
    f["qkv_bias"] = True
    if r.config.get("use_sliding_window"):
        max_window = r.optional("max_window_layers", 80)
        window = r.optional("sliding_window", 4096)
        f["sliding_window"], f["sliding_window_layers"] = _sliding_layers(r, f["n_layers"], window, lambda i: i >= max_window)
    return f


# language models reachable only through a wrapper's text_config
_TEXT_ONLY: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "qwen2_vl_text": _map_qwen_vl_text,
    "qwen2_5_vl_text": _map_qwen_vl_text,
}
SUPPORTED_MODEL_TYPES = tuple(MAPPERS) + tuple(WRAPPERS)
# the supported types in words, for the API's descriptions
SUPPORTED_TYPES_TEXT = (
    f"model_type {', '.join(MAPPERS)}; multimodal {', '.join(WRAPPERS)}, read from their text_config (the vision tower "
    "is not counted)"
)

_STATE_SPACE = "a state-space model (selective-scan layers, no attention: Mamba, Gu & Dao 2023; Mamba-2, Dao & Gu 2024)"
_HYBRID = "a hybrid whose layers mix attention with state-space or linear-attention mixers that the core does not model"
_ENCODER_DECODER = "an encoder-decoder model (an encoder stack and a decoder with cross-attention)"
_ENCODER = "an encoder-only model (bidirectional, no causal LM head)"
# model types that are not decoder-only transformers of the kinds mapped: refused saying why, not just "unsupported"
NOT_DECODER_TRANSFORMERS: dict[str, str] = {
    "mamba": _STATE_SPACE,
    "mamba2": _STATE_SPACE,
    "falcon_mamba": _STATE_SPACE,
    "rwkv": "a recurrent model (RWKV's time-mixing and channel-mixing blocks, no attention: Peng et al. 2023)",
    "xlstm": "a recurrent model (xLSTM blocks, no attention: Beck et al. 2024)",
    "recurrent_gemma": _HYBRID + " (Griffin's recurrent blocks)",
    "jamba": _HYBRID + " (Mamba layers between attention layers)",
    "falcon_h1": _HYBRID + " (attention and Mamba-2 heads side by side in each layer)",
    "zamba": _HYBRID + " (Mamba layers and a shared attention block)",
    "zamba2": _HYBRID + " (Mamba-2 layers and shared attention blocks)",
    "bamba": _HYBRID + " (Mamba-2 layers between attention layers)",
    "nemotron_h": _HYBRID + " (Mamba-2 layers between attention layers)",
    "granitemoehybrid": _HYBRID + " (Mamba-2 layers between attention layers)",
    "lfm2": _HYBRID + " (short convolution blocks between attention layers)",
    "qwen3_next": _HYBRID + " (Gated DeltaNet linear attention in three of every four layers)",
    "minimax": _HYBRID + " (lightning linear attention in most layers)",
    "t5": _ENCODER_DECODER,
    "mt5": _ENCODER_DECODER,
    "umt5": _ENCODER_DECODER,
    "longt5": _ENCODER_DECODER,
    "switch_transformers": _ENCODER_DECODER,
    "bart": _ENCODER_DECODER,
    "mbart": _ENCODER_DECODER,
    "pegasus": _ENCODER_DECODER,
    "marian": _ENCODER_DECODER,
    "whisper": _ENCODER_DECODER + ", speech to text",
    "encoder-decoder": _ENCODER_DECODER,
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "xlm-roberta": _ENCODER,
    "distilbert": _ENCODER,
    "deberta": _ENCODER,
    "deberta-v2": _ENCODER,
    "electra": _ENCODER,
    "modernbert": _ENCODER,
}


def _unsupported(field: str, model_type: str, what: str) -> InvalidSpecError:
    """The 422 of an unmapped ``model_type``: why, for a kind that is no decoder-only transformer
    (:data:`NOT_DECODER_TRANSFORMERS`), else the list of supported types."""
    why = NOT_DECODER_TRANSFORMERS.get(model_type)
    if why is not None:
        return InvalidSpecError(
            field,
            f"{what} {model_type!r} is {why}, not a decoder-only transformer of the kinds mapped; its parameters and "
            "memory cannot be counted from this config (give n_params or an explicit architecture instead)",
        )
    return InvalidSpecError(field, f"unsupported {what} {model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")


_NON_TEXT_KEYS = ("model_type", "text_config", "vision_config", "architectures")


def _text_of_wrapper(config: Mapping[str, Any], prefix: str, model_type: str) -> tuple[Mapping[str, Any], str, str]:
    """(the language model's config, the prefix its keys are named by, its model_type)."""
    w = WRAPPERS[model_type]
    text = config.get("text_config")
    if text is None and w.flat:
        return {k: v for k, v in config.items() if k not in _NON_TEXT_KEYS}, prefix, w.text_type
    if not isinstance(text, Mapping):
        raise InvalidSpecError(
            f"{prefix}.text_config", f"a {model_type} config needs its language model's text_config (a JSON object)"
        )
    text_prefix = f"{prefix}.text_config"
    text_type = w.text_type if w.fixed else text.get("model_type", w.text_type)
    if not isinstance(text_type, str):
        raise InvalidSpecError(f"{text_prefix}.model_type", f"must be a string, got {type(text_type).__name__}")
    if text_type not in MAPPERS and text_type not in _TEXT_ONLY:
        if text_type in NOT_DECODER_TRANSFORMERS:
            raise _unsupported(f"{text_prefix}.model_type", text_type, f"the language model of a {model_type} config,")
        raise InvalidSpecError(
            f"{text_prefix}.model_type",
            f"unsupported language model {text_type!r} in a {model_type} config; supported: {', '.join(MAPPERS)}",
        )
    return text, text_prefix, text_type


def _wrapper_tie(config: Mapping[str, Any], model_type: str, fields: dict[str, Any], r: _Reader) -> None:
    """``lm_head`` tied as the wrapper's config says (see :class:`_Wrapper`), not as the text config's."""
    w = WRAPPERS[model_type]
    text_tie = bool(fields.get("tied_embeddings"))
    if w.nested_lm:  # the text config's key (or its class's default) ties lm_head; the wrapper's is not read
        if config.get("tie_word_embeddings") is not None and bool(config["tie_word_embeddings"]) != text_tie:
            r.assumptions["tie_word_embeddings"] = (
                f"text_config's {text_tie!r} ties lm_head (the {model_type} language model ties its own); "
                "the top-level key is not read"
            )
        return
    r.assumptions.pop("tie_word_embeddings", None)
    top = config.get("tie_word_embeddings")
    if top is None:
        tied = w.tie
        r.assumptions["tie_word_embeddings"] = (
            f"not given at the top level; {w.tie!r} (the {model_type} config class's default, which transformers 5 "
            "reads to tie lm_head; a checkpoint that stores lm_head apart loads untied: give false for its count)"
        )
    else:
        tied = bool(top)
    if w.forward_tie and not tied and text_tie:
        tied = True
        r.assumptions["tie_word_embeddings"] = f"true: text_config's true is forwarded to the {model_type} config"
    fields["tied_embeddings"] = tied


def map_hf_config(config: Mapping[str, Any], *, prefix: str = "hf_config") -> HfMapping:
    """Map a ``config.json`` dict to core fields; raise :class:`InvalidSpecError` naming an unknown
    ``model_type`` or the missing keys. A multimodal config (:data:`WRAPPERS`: gemma3, mistral3,
    llava, llava_next, qwen2_vl, qwen2_5_vl, llama4) is read from its ``text_config`` (the vision tower and
    the projector are not counted); its keys are then named ``<prefix>.text_config.<key>``."""
    if not isinstance(config, Mapping):
        raise InvalidSpecError(prefix, "must be a JSON object (the model's config.json)")
    model_type = config.get("model_type")
    if model_type is None:
        raise InvalidSpecError(f"{prefix}.model_type", f"missing; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    if not isinstance(model_type, str):
        raise InvalidSpecError(f"{prefix}.model_type", f"must be a string, got {type(model_type).__name__}")
    if model_type not in MAPPERS and model_type not in WRAPPERS:
        raise _unsupported(f"{prefix}.model_type", model_type, "model_type")
    text, key_prefix, text_type = config, prefix, model_type
    if model_type in WRAPPERS:
        text, key_prefix, text_type = _text_of_wrapper(config, prefix, model_type)
    r = _Reader(text, key_prefix)
    try:
        fields = (MAPPERS.get(text_type) or _TEXT_ONLY[text_type])(r)
        r.check_missing(text_type)
        if model_type in WRAPPERS:
            _wrapper_tie(config, model_type, fields, r)
            r.assumptions["text_config"] = (
                f"the {text_type} language model of a multimodal {model_type} config; the vision tower and projector are not counted"
            )
        fields = {k: v for k, v in fields.items() if v is not None}
        context = _context(r, fields.get("max_seq_len"))
    except TypeError as exc:  # e.g. a string where a number belongs
        raise InvalidSpecError(key_prefix, f"a key has the wrong JSON type ({exc})") from exc
    if context is not None:
        fields["max_seq_len"] = context
    return HfMapping(
        model_type=model_type,
        fields=tuple(sorted(fields.items())),
        assumptions=tuple(sorted(r.assumptions.items())),
        context_tokens=context or 0,
        key_prefix=key_prefix,
        key_names=tuple(sorted(r.key_names.items())),
    )


# core field -> the config key it usually comes from, to name a rejected key in its own terms
HF_KEYS = {
    "n_layers": "num_hidden_layers",
    "d_model": "hidden_size",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "d_head": "head_dim",
    "d_ff": "intermediate_size",
    "max_seq_len": "max_position_embeddings",
    "n_experts": "num_experts",
    "experts_per_token": "num_experts_per_tok",
    "first_k_dense": "first_k_dense_replace",
    "d_ff_dense": "intermediate_size",
    "d_ff_shared": "shared_expert_intermediate_size",
}


def architecture_from_hf_config(config: Mapping[str, Any], *, prefix: str = "hf_config") -> Architecture:
    """:func:`map_hf_config` then :func:`~service.core.spec.make_architecture`, the assumptions kept
    in :attr:`Architecture.assumptions`."""
    return architecture_from_mapping(map_hf_config(config, prefix=prefix), prefix=prefix)


def architecture_from_mapping(m: HfMapping, *, prefix: str = "hf_config") -> Architecture:
    """The validated architecture of a :class:`HfMapping`; a rejected field is named by its config key."""
    fields = dict(m.fields)
    try:
        return make_architecture(**fields, prefix=prefix, assumptions=m.assumptions)
    except TypeError as exc:  # a key of the wrong JSON type reaching a comparison
        raise InvalidSpecError(prefix, f"a key has the wrong JSON type ({exc})") from exc
    except InvalidSpecError as exc:
        renamed = in_config_terms(exc, field_prefix=prefix, config_prefix=m.key_prefix, key_names=dict(m.key_names))
        if renamed is exc:
            raise
        raise renamed from exc


def in_config_terms(
    exc: InvalidSpecError, *, field_prefix: str, config_prefix: str, key_names: Mapping[str, str] | None = None
) -> InvalidSpecError:
    """``exc`` about a core field (``field_prefix.d_model``) renamed to the config key it was read
    from (``config_prefix.hidden_size``; ``key_names`` first, then :data:`HF_KEYS`); unchanged for a
    field with no such key."""
    name = exc.field.removeprefix(f"{field_prefix}.")
    key = (key_names or {}).get(name) or HF_KEYS.get(name)
    if key is None:
        return exc
    return InvalidSpecError(f"{config_prefix}.{key}", exc.reason.replace(name, key))
