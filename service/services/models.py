"""Turn a request's ``ModelSpec`` into the core's model shape, resolving presets."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from service.catalog import loader
from service.core.architecture import ModelShape
from service.core.spec import make_architecture, make_params_only
from service.errors import Unprocessable
from service.schemas.model import ARCHITECTURE_FIELDS, ModelSpec


def preset_architecture(preset: dict[str, Any]) -> dict[str, Any]:
    """The architecture fields of a stored preset."""
    return {name: preset[name] for name in ARCHITECTURE_FIELDS if preset.get(name) is not None}


def resolve_model(spec: ModelSpec, *, field: str = "model") -> ModelShape:
    """Resolve ``spec`` to an architecture (preset fields, overridden by explicit ones) or a bare
    parameter count. Unknown presets are a 422 that lists the known ids.

    Resolution is memoised on the spec's values: the shapes are immutable, and the same few
    presets are asked for again and again."""
    return _resolve(spec.preset, spec.n_params, tuple(spec.explicit_fields().items()), field)


@lru_cache(maxsize=4096)
def _resolve(
    preset: str | None, n_params: float | None, explicit: tuple[tuple[str, Any], ...], field: str
) -> ModelShape:
    if n_params is not None:
        return make_params_only(n_params, prefix=field)
    fields: dict[str, Any] = {}
    if preset is not None:
        presets = loader.model_presets()
        if preset not in presets:
            raise Unprocessable.for_field(
                f"{field}.preset", f"unknown preset {preset!r}; known: {', '.join(sorted(presets))}"
            )
        fields = preset_architecture(presets[preset])
    fields.update(explicit)
    return make_architecture(**fields, prefix=field)


def resolve_gpu_memory(gpu: str | None, gpu_memory_bytes: int | None) -> tuple[str | None, int | None]:
    """The GPU's id and memory in bytes, from a catalog id or an explicit size (not both)."""
    if gpu is not None and gpu_memory_bytes is not None:
        raise Unprocessable.for_field("gpu", "give gpu or gpu_memory_bytes, not both")
    if gpu is None:
        return None, gpu_memory_bytes
    known = loader.gpus()
    if gpu not in known:
        raise Unprocessable.for_field("gpu", f"unknown GPU {gpu!r}; known: {', '.join(sorted(known))}")
    return gpu, int(known[gpu]["memory_bytes"])
