"""The schemas' architecture fields, derived from their one declaration.

:data:`service.core.architecture.ARCHITECTURE_FIELDS` says each field's type, default, bounds,
descriptions and whether presets store it; the functions here turn it into pydantic field
definitions (``{name: (annotation, FieldInfo)}``, as ``pydantic.create_model`` takes them) for the
three places the contract lists architecture fields: a request's ``model`` (:func:`request_fields`),
a preset's body (:func:`preset_fields`) and a preset's PATCH (:func:`patch_fields`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from service.core.architecture import ARCHITECTURE_FIELDS
from service.core.fields import ArchField, Stored

FieldDefinitions = dict[str, tuple[Any, Any]]


def request_fields(fields: tuple[ArchField, ...] = ARCHITECTURE_FIELDS) -> FieldDefinitions:
    """Every field, optional (None: not given), with its bounds and request description."""
    return {f.name: (f.kind | None, Field(None, **f.bounds, **_doc(f.doc))) for f in fields}


def preset_fields(fields: tuple[ArchField, ...] = ARCHITECTURE_FIELDS) -> FieldDefinitions:
    """The fields preset rows store, as a preset's body has them: the five sizes required, a
    derived field or one that may be None optional, the others with the core's default; a field
    stored only where a preset uses it (:attr:`Stored.NULLABLE`) defaults to null."""
    out: FieldDefinitions = {}
    for f in fields:
        if f.stored is Stored.NO:
            continue
        nullable = f.optional or f.derived or f.stored is Stored.NULLABLE
        annotation = f.kind | None if nullable else f.kind
        default: tuple[Any, ...] = () if f.required else (None if f.stored is Stored.NULLABLE else f.default,)
        out[f.name] = (annotation, Field(*default, **f.bounds, **_doc(f.preset_doc)))
    return out


def patch_fields(fields: tuple[ArchField, ...] = ARCHITECTURE_FIELDS) -> FieldDefinitions:
    """The stored fields for a PATCH: each optional; null accepted (to clear it) only where the
    stored value may be null."""
    out: FieldDefinitions = {}
    for f in fields:
        if f.stored is Stored.NO:
            continue
        nullable = f.optional or f.derived or f.stored is Stored.NULLABLE
        out[f.name] = (f.kind | None if nullable else f.kind, Field(None, **f.bounds))
    return out


def _doc(text: str | None) -> dict[str, str]:
    return {} if text is None else {"description": text}
