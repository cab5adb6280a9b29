"""Turn a request's ``ModelSpec`` (and GPU reference) into core inputs, reading the catalog."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from service.core.architecture import Architecture, ModelShape
from service.core.context import check_context
from service.core.errors import InvalidSpecError
from service.core.hf_config import in_config_terms, map_hf_config
from service.core.kernels import family_norm_weight_fp32
from service.core.spec import make_architecture, make_params_only
from service.errors import Unprocessable
from service.schemas.model import ModelSpec
from service.services.catalog_reader import CatalogReader, GpuView


def resolve_model(spec: ModelSpec, catalog: CatalogReader, *, field: str = "model") -> ModelShape:
    """Resolve ``spec`` to an architecture (preset fields, overridden by explicit ones) or a bare
    parameter count. Only a preset reads the store; an unknown preset is a 422 listing the known
    ids."""
    if spec.n_params is not None:
        return make_params_only(spec.n_params, prefix=field)
    fields: dict[str, Any] = {}
    explicit = spec.explicit_fields()
    if spec.hf_config is not None:
        mapping = map_hf_config(spec.hf_config, prefix=f"{field}.hf_config")
        fields = merge_architecture(dict(mapping.fields), explicit)
        notes = mapping.assumptions + tuple((f"{name}_source", "request (overrides hf_config)") for name in explicit)
        try:
            return _architecture(tuple(sorted(fields.items())), field, notes)
        except InvalidSpecError as exc:  # a key of the config named in the config's own terms
            renamed = in_config_terms(
                exc, field_prefix=field, config_prefix=mapping.key_prefix, key_names=dict(mapping.key_names)
            )
            if renamed is exc or exc.field.removeprefix(f"{field}.") in explicit:
                raise
            raise renamed from exc
    if spec.preset is not None:
        preset = catalog.preset_fields(spec.preset)
        if preset is None:
            raise Unprocessable.for_field(
                f"{field}.preset", f"unknown preset {spec.preset!r}; known: {', '.join(catalog.preset_ids())}"
            )
        if not explicit:  # the common case: the cached pairs are already the memo key
            return _architecture(preset, field)
        fields = dict(preset)
    else:
        defaulted = [name for name in DEFAULTED_SILENTLY if name not in explicit]
        notes = tuple((f"{name}_default", DEFAULTED_SILENTLY[name]) for name in defaulted)
        fields = merge_architecture(fields, explicit)
        return _architecture(tuple(sorted(fields.items())), field, notes)
    fields = merge_architecture(fields, explicit)
    return _architecture(tuple(sorted(fields.items())), field)


def norm_weight_fp32_default(spec: ModelSpec, catalog: CatalogReader) -> bool:
    """Whether the model's norms multiply by their weight in fp32 (Gemma, OLMo 2:
    :func:`service.core.kernels.family_norm_weight_fp32`), from its ``config.json``'s ``model_type``
    or its preset's family; False for a model given by its fields alone."""
    if spec.hf_config is not None:
        return family_norm_weight_fp32(model_type=str(spec.hf_config.get("model_type")))
    if spec.preset is not None:
        item = catalog.snapshot().item("model_presets", spec.preset)
        return item is not None and family_norm_weight_fp32(family=getattr(item[1], "family", None))
    return False


def model_assumptions(
    model: ModelShape, spec: ModelSpec, seq_len: int | None = None, *, field: str = "seq_len"
) -> dict[str, str | float | int | bool | None]:
    """What the answer took from the model: where its architecture came from (explicit, or the
    preset and the fields overridden), its defaults and inferences (``notes``), its attention
    kind, and a ``seq_len_warning`` when ``seq_len`` is beyond its context (a 422 naming ``field``
    beyond a learned position table: :func:`service.core.context.check_context`). Every answer
    about a model (calculators, cost, serving) says these the same way."""
    if not isinstance(model, Architecture):
        return {"architecture": "unknown (n_params only)", "n_params": model.n_params}
    if spec.preset is None:
        source = "explicit"
    else:
        overridden = sorted(spec.explicit_fields())
        source = f"preset {spec.preset}" + (f" with {', '.join(overridden)} overridden" if overridden else "")
    out: dict[str, str | float | int | bool | None] = {"architecture": source, "max_seq_len": model.max_seq_len}
    for name, note in model.assumptions:
        out[f"model.{name}"] = note
    if model.is_mla:
        out["attention"] = (
            f"multi-head latent attention: KV cache of kv_lora_rank + qk_rope_head_dim = "
            f"{(model.kv_lora_rank or 0) + (model.qk_rope_head_dim or 0)} values per token and layer"
        )
    if model.sliding_window is not None:
        out["sliding_window"] = model.sliding_window
        out["sliding_window_layers"] = model.local_layers
    warning = check_context(model, seq_len, field=field)
    if warning:
        out["seq_len_warning"] = warning
    return out


# an explicit architecture that leaves these out gets the defaults below: said in the answer
DEFAULTED_SILENTLY = {
    "ffn": "gelu (a 2-matrix MLP); give ffn='swiglu' for a gated MLP (Llama, Mistral, Qwen...)",
    "norm": "layernorm (weight and bias); give norm='rmsnorm' for Llama-style models",
    "position": "rotary (no position parameters)",
    "tied_embeddings": "false (a separate LM head)",
}


def merge_architecture(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` overridden by ``changes``, keeping derived fields derived: a ``d_head`` that was
    ``d_model / n_heads`` and an ``n_kv_heads`` that was ``n_heads`` (MHA) are dropped unless the
    changes set them, so they follow a new ``d_model`` or ``n_heads``; a learned-position table
    size is dropped with the learned positions. Used for preset overrides and for PATCH."""
    merged = base | changes
    if "d_head" not in changes and base.get("d_head") is not None and base["d_head"] * base["n_heads"] == base["d_model"]:
        merged["d_head"] = None
    if "n_kv_heads" not in changes and base.get("n_kv_heads") is not None and base["n_kv_heads"] == base["n_heads"]:
        merged["n_kv_heads"] = None
    if merged.get("position", "learned") != "learned" and "position_embedding_rows" not in changes:
        merged["position_embedding_rows"] = None
    return {name: value for name, value in merged.items() if value is not None or name in changes}


@lru_cache(maxsize=4096)
def _architecture(fields: tuple[tuple[str, Any], ...], field: str, notes: tuple[tuple[str, str], ...] = ()) -> ModelShape:
    """Validated architectures, memoised on their (immutable) field values."""
    return make_architecture(**dict(fields), prefix=field, assumptions=notes)


def resolve_gpu(gpu: str | None, gpu_memory_bytes: int | None, catalog: CatalogReader) -> tuple[GpuView | None, int | None]:
    """The catalog GPU (if named) and the memory to fit into: a GPU id or an explicit size."""
    if gpu is not None and gpu_memory_bytes is not None:
        raise Unprocessable.for_field("gpu", "give gpu or gpu_memory_bytes, not both")
    if gpu is None:
        return None, gpu_memory_bytes
    view = catalog_gpu(catalog, gpu)
    return view, view.memory_bytes


def catalog_gpu(catalog: CatalogReader, gpu_id: str, *, field: str = "gpu") -> GpuView:
    """The catalog GPU ``gpu_id`` (a 422 on ``field`` naming the known ones when there is none)."""
    view = catalog.gpu(gpu_id)
    if view is None:
        raise Unprocessable.for_field(field, f"unknown GPU {gpu_id!r}; known: {', '.join(catalog.gpu_ids())}")
    return view


DEFAULT_TRAINING_SEQ_LEN = 8192  # pre-training runs at <= 8K and extends the context at the end (Llama 3 §3.4.1-3.4.2)


def training_seq_len(arch: Architecture, seq_len: int | None) -> tuple[int, str]:
    """The training sequence length: given, else the model's context up to 8K tokens."""
    if seq_len is not None:
        return seq_len, "request"
    return min(arch.max_seq_len, DEFAULT_TRAINING_SEQ_LEN), "default: the model's context, at most 8,192 (Llama 3 §3.4)"


def model_training_seq_len(model: ModelShape, seq_len: int | None) -> tuple[int | None, str | None]:
    """:func:`training_seq_len` for an architecture (a memory check or an attention count never takes a
    long-context model's whole window unasked); for a bare parameter count, ``seq_len`` as given (and
    no source when none is)."""
    if isinstance(model, Architecture):
        return training_seq_len(model, seq_len)
    return seq_len, None if seq_len is None else "request"
