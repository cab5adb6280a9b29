"""Turn a request's ``ModelSpec`` (and GPU reference) into core inputs, reading the catalog."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from service.core.architecture import ModelShape
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
    if spec.preset is not None:
        preset = catalog.preset_fields(spec.preset)
        if preset is None:
            raise Unprocessable.for_field(
                f"{field}.preset", f"unknown preset {spec.preset!r}; known: {', '.join(catalog.preset_ids())}"
            )
        fields = dict(preset)
    explicit = spec.explicit_fields()
    if explicit.get("position", "learned") != "learned" and "position_embedding_rows" not in explicit:
        fields.pop("position_embedding_rows", None)  # a preset's learned-table size goes with its positions
    fields.update(explicit)
    return _architecture(tuple(sorted(fields.items())), field)


@lru_cache(maxsize=4096)
def _architecture(fields: tuple[tuple[str, Any], ...], field: str) -> ModelShape:
    """Validated architectures, memoised on their (immutable) field values."""
    return make_architecture(**dict(fields), prefix=field)


def resolve_gpu(
    gpu: str | None, gpu_memory_bytes: int | None, catalog: CatalogReader
) -> tuple[GpuView | None, int | None]:
    """The catalog GPU (if named) and the memory to fit into: a GPU id or an explicit size."""
    if gpu is not None and gpu_memory_bytes is not None:
        raise Unprocessable.for_field("gpu", "give gpu or gpu_memory_bytes, not both")
    if gpu is None:
        return None, gpu_memory_bytes
    view = catalog.gpu(gpu)
    if view is None:
        raise Unprocessable.for_field("gpu", f"unknown GPU {gpu!r}; known: {', '.join(catalog.gpu_ids())}")
    return view, view.memory_bytes
