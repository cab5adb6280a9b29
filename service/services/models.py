"""Turn a request's ``ModelSpec`` (and GPU reference) into core inputs, reading the catalog."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from service.core.architecture import ModelShape
from service.core.spec import make_architecture, make_params_only
from service.db.models import Gpu, ModelPreset
from service.db.repositories import VersionedRepository
from service.errors import Unprocessable
from service.schemas.model import ARCHITECTURE_FIELDS, ModelSpec


def preset_architecture(preset: Any) -> dict[str, Any]:
    """The architecture fields of a stored preset (an ORM row or a seed-file dict)."""
    get = preset.get if isinstance(preset, dict) else lambda name: getattr(preset, name)
    return {name: get(name) for name in ARCHITECTURE_FIELDS if get(name) is not None}


def resolve_model(spec: ModelSpec, session: Session, *, field: str = "model") -> ModelShape:
    """Resolve ``spec`` to an architecture (preset fields, overridden by explicit ones) or a bare
    parameter count. Only a preset reads the store; an unknown preset is a 422 listing the known
    ids."""
    if spec.n_params is not None:
        return make_params_only(spec.n_params, prefix=field)
    fields: dict[str, Any] = {}
    if spec.preset is not None:
        repo = VersionedRepository(session, ModelPreset)
        row = repo.get(spec.preset)
        if row is None:
            raise Unprocessable.for_field(
                f"{field}.preset", f"unknown preset {spec.preset!r}; known: {', '.join(repo.ids())}"
            )
        fields = preset_architecture(row)
    fields.update(spec.explicit_fields())
    return _architecture(tuple(sorted(fields.items())), field)


@lru_cache(maxsize=4096)
def _architecture(fields: tuple[tuple[str, Any], ...], field: str) -> ModelShape:
    """Validated architectures, memoised on their (immutable) field values."""
    return make_architecture(**dict(fields), prefix=field)


def resolve_gpu(
    gpu: str | None, gpu_memory_bytes: int | None, session: Session
) -> tuple[Gpu | None, int | None]:
    """The catalog GPU (if named) and the memory to fit into: a GPU id or an explicit size."""
    if gpu is not None and gpu_memory_bytes is not None:
        raise Unprocessable.for_field("gpu", "give gpu or gpu_memory_bytes, not both")
    if gpu is None:
        return None, gpu_memory_bytes
    repo = VersionedRepository(session, Gpu)
    row = repo.get(gpu)
    if row is None:
        raise Unprocessable.for_field("gpu", f"unknown GPU {gpu!r}; known: {', '.join(repo.ids())}")
    return row, row.memory_bytes
