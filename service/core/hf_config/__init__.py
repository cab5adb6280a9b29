"""A Hugging Face ``config.json`` mapped onto :class:`~service.core.architecture.Architecture`.

Each supported ``model_type`` is read the way its ``transformers`` implementation builds its modules
(``modeling_<type>.py``: which projections carry biases, how many norms a block holds, which layers
use a sliding window or experts), so that :func:`service.core.params.count_params` of the result
equals the reference implementation's parameter count exactly; ``validation/measure_hf_models.py``
measures those counts on the meta device and ``tests/core/test_hf_config.py`` checks them.

Keys that only tune behaviour default to the value the ``transformers`` config class uses, and every
default taken is reported in :attr:`HfMapping.assumptions`; keys that fix the shape (``hidden_size``,
``num_hidden_layers``, ...) are required. Pure: a dict in, a dataclass out.

Where things live: :mod:`.common` holds the config reader (``_Reader``), :class:`HfMapping`,
:data:`HF_KEYS` and the helpers several family groups share; the mappers (``_map_<model_type>``) sit by
family group in :mod:`.llama_like` (dense, Llama's block), :mod:`.other_dense` (dense, other blocks:
GPT-2, GPT-NeoX, Falcon, Phi, Cohere, OPT, BLOOM, MPT, ...), :mod:`.moe` (mixtures of experts) and
:mod:`.deepseek` (MLA and DeepSeek's expert layout), :mod:`.recurrent` (Mamba, Mamba-2, RWKV-4, Jamba), :mod:`.rwkv` (fla's RWKV-6 and RWKV-7), :mod:`.hybrid` (Bamba, Nemotron-H, Falcon-H1, Granite 4.0-H, Qwen3-Next), :mod:`.lfm2_zamba` (LFM2, LFM2-MoE,
Zamba, Zamba2); this module holds the registry (:data:`MAPPERS`,
the multimodal :data:`WRAPPERS`, the refused :data:`NOT_DECODER_TRANSFORMERS`) and the entry points
(:func:`map_hf_config`, :func:`architecture_from_hf_config`, :func:`architecture_from_mapping`,
:func:`in_config_terms`). A new family: its mapper in the module of its group, a helper it shares with
another group in :mod:`.common`, and its ``model_type`` in :data:`MAPPERS` (a multimodal wrapper in
:data:`WRAPPERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service.core.architecture import Architecture
from service.core.errors import InvalidSpecError
from service.core.hf_config.common import GATED_ACTIVATIONS, HF_KEYS, HfMapping, _context, _Reader
from service.core.hf_config.deepseek import _map_deepseek, _map_glm4_moe
from service.core.hf_config.hybrid import _map_bamba, _map_falcon_h1, _map_granitemoehybrid, _map_nemotron_h, _map_qwen3_next
from service.core.hf_config.lfm2_zamba import _map_lfm2, _map_lfm2_moe, _map_zamba, _map_zamba2
from service.core.hf_config.llama_like import (
    _map_arcee,
    _map_ernie4_5,
    _map_exaone4,
    _map_gemma,
    _map_gemma2,
    _map_gemma3_text,
    _map_glm4,
    _map_granite,
    _map_hunyuan_v1_dense,
    _map_llama,
    _map_mistral,
    _map_olmo2,
    _map_phi3,
    _map_qwen2,
    _map_qwen3,
    _map_qwen_vl_text,
    _map_seed_oss,
    _map_smollm3,
)
from service.core.hf_config.moe import (
    _map_dbrx,
    _map_gpt_oss,
    _map_granitemoe,
    _map_llama4_text,
    _map_mixtral,
    _map_olmoe,
    _map_phimoe,
    _map_qwen2_moe,
    _map_qwen3_moe,
)
from service.core.hf_config.other_dense import (
    _map_bloom,
    _map_cohere,
    _map_cohere2,
    _map_falcon,
    _map_gpt2,
    _map_gpt_bigcode,
    _map_gpt_neox,
    _map_mpt,
    _map_opt,
    _map_phi,
    _map_stablelm,
    _map_starcoder2,
)
from service.core.hf_config.recurrent import _map_falcon_mamba, _map_jamba, _map_mamba, _map_mamba2, _map_rwkv
from service.core.hf_config.rwkv import _map_rwkv6, _map_rwkv7
from service.core.spec import make_architecture

__all__ = [
    "GATED_ACTIVATIONS",
    "HF_KEYS",
    "MAPPERS",
    "NOT_DECODER_TRANSFORMERS",
    "SUPPORTED_MODEL_TYPES",
    "SUPPORTED_TYPES_TEXT",
    "WRAPPERS",
    "HfMapping",
    "architecture_from_hf_config",
    "architecture_from_mapping",
    "in_config_terms",
    "map_hf_config",
]


MAPPERS: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "llama": _map_llama,
    "mistral": _map_mistral,
    "mixtral": _map_mixtral,
    "qwen2": _map_qwen2,
    "qwen2_moe": _map_qwen2_moe,
    "qwen3": _map_qwen3,
    "qwen3_moe": _map_qwen3_moe,
    "qwen3_next": _map_qwen3_next,
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
    "mamba": _map_mamba,
    "falcon_mamba": _map_falcon_mamba,
    "mamba2": _map_mamba2,
    "rwkv": _map_rwkv,
    "rwkv6": _map_rwkv6,  # flash-linear-attention's RWKV6Config
    "rwkv7": _map_rwkv7,  # flash-linear-attention's RWKV7Config
    "jamba": _map_jamba,
    "bamba": _map_bamba,
    "nemotron_h": _map_nemotron_h,
    "falcon_h1": _map_falcon_h1,
    "granitemoehybrid": _map_granitemoehybrid,
    "lfm2": _map_lfm2,
    "lfm2_moe": _map_lfm2_moe,
    "zamba": _map_zamba,
    "zamba2": _map_zamba2,
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

_HYBRID = "a hybrid whose layers mix attention with state-space or linear-attention mixers that the core does not model"
_ENCODER_DECODER = "an encoder-decoder model (an encoder stack and a decoder with cross-attention)"
_ENCODER = "an encoder-only model (bidirectional, no causal LM head)"
# model types that are not decoder-only transformers of the kinds mapped: refused saying why, not just "unsupported"
NOT_DECODER_TRANSFORMERS: dict[str, str] = {
    "xlstm": "a recurrent model (xLSTM blocks, no attention: Beck et al. 2024)",
    "recurrent_gemma": _HYBRID + " (Griffin's recurrent blocks)",
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
