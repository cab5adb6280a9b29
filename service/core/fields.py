"""How an architecture field is declared, once, for every layer that needs it.

Each field of :class:`service.core.architecture.Architecture` carries a :class:`Declared` in its
``dataclasses.field`` metadata (:func:`declare`): its request description and bounds, whether preset
rows store it, and the ``config.json`` key it is usually read from. :func:`declared_fields` reads them
back as :class:`ArchField` records, in the dataclass's order. The layers above derive from them
what they need: :func:`service.core.spec.make_architecture` its keyword arguments and defaults,
``service.schemas.architecture`` the request and preset schemas' fields, ``service.db.models`` the
preset columns, ``service.core.hf_config`` the config keys that name a rejected field. Pure Python.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

METADATA_KEY = "architecture"


class Stored(StrEnum):
    """Whether preset rows (the ``model_presets`` table) store a field.

    ``always``: a column every preset fills (NOT NULL unless the field may be None);
    ``nullable``: a nullable column, null where a preset does not use the field (a null reads as the
    field's default); ``no``: only a request, or a mapped ``config.json``, gives it."""

    ALWAYS = "always"
    NULLABLE = "nullable"
    NO = "no"


@dataclass(frozen=True, kw_only=True, slots=True)
class Declared:
    """What :func:`declare` records on a field (see :class:`ArchField`)."""

    doc: str | None = None
    preset_doc: str | None = None
    ge: int | None = None
    le: int | None = None
    stored: Stored = Stored.NO
    derived: bool = False
    hf_key: str | None = None


def declare(
    doc: str | None = None,
    *,
    ge: int | None = None,
    le: int | None = None,
    stored: Stored = Stored.NO,
    preset_doc: str | None = None,
    derived: bool = False,
    hf_key: str | None = None,
) -> dict[str, Declared]:
    """The ``metadata`` of an architecture field: ``field(default=False, metadata=declare("..."))``."""
    declared = Declared(doc=doc, preset_doc=preset_doc, ge=ge, le=le, stored=stored, derived=derived, hf_key=hf_key)
    return {METADATA_KEY: declared}


REQUIRED: Any = object()
"""The :attr:`ArchField.default` of a field every architecture must give (``n_layers``...)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchField:
    """One declared architecture field.

    ``kind``: the value's type (``int``, ``bool``, a ``StrEnum``, or a ``tuple[E, ...]`` of one: a list in
    JSON, ``layer_types``), ``None`` aside; ``optional``: the
    core type admits None (``position_embedding_rows``). ``default``: the value
    :func:`~service.core.spec.make_architecture` takes when the field is not given (:data:`REQUIRED`
    for the five sizes it needs; None for a ``derived`` one, which it computes from others:
    ``n_kv_heads``, ``d_head``). ``doc``: the request schema's description; ``preset_doc``: the preset
    schema's; ``ge``/``le``: the bounds both schemas check. ``stored``: :class:`Stored`. ``hf_key``:
    the ``config.json`` key the field is usually read from (a rejected value is named by it).
    """

    name: str
    kind: type
    optional: bool
    default: Any
    doc: str | None
    preset_doc: str | None
    ge: int | None
    le: int | None
    stored: Stored
    derived: bool
    hf_key: str | None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def is_sequence(self) -> bool:
        """The value is a tuple (a JSON list)."""
        return typing.get_origin(self.kind) is tuple

    @property
    def bounds(self) -> dict[str, int]:
        """``ge``/``le`` where set, as keyword arguments."""
        return {k: v for k, v in (("ge", self.ge), ("le", self.le)) if v is not None}


def declared_fields(cls: type) -> tuple[ArchField, ...]:
    """The fields of the dataclass ``cls`` declared with :func:`declare`, in their order (others,
    such as ``assumptions``, are skipped)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        declared = f.metadata.get(METADATA_KEY)
        if declared is None:
            continue
        kind, optional = _value_type(hints[f.name])
        if declared.derived:
            default = None
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = REQUIRED
        out.append(
            ArchField(
                name=f.name,
                kind=kind,
                optional=optional,
                default=default,
                doc=declared.doc,
                preset_doc=declared.preset_doc,
                ge=declared.ge,
                le=declared.le,
                stored=declared.stored,
                derived=declared.derived,
                hf_key=declared.hf_key,
            )  # fmt: skip
        )
    return tuple(out)


def _value_type(hint: Any) -> tuple[type, bool]:
    """``(T, False)`` for ``T``; ``(T, True)`` for ``T | None``."""
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"an architecture field is one type, or one type or None: {hint}")
        return args[0], True
    return hint, False


def compared_fields_hash(obj: Any) -> int:
    """The hash of a frozen dataclass's compared fields, as the generated ``__hash__`` takes it;
    a class that keeps it (``_hash``, set in ``__post_init__``) hashes once instead of at every
    ``functools.lru_cache`` lookup, where a model's 60-odd fields made hashing a visible share of a
    serving plan's time."""
    return hash(tuple(getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare))


def keep_hash(obj: Any) -> None:
    """``__post_init__`` of a frozen slotted dataclass with a ``_hash`` field (``init=False``,
    ``compare=False``): its compared fields' hash, taken once."""
    object.__setattr__(obj, "_hash", compared_fields_hash(obj))


def kept_hash(obj: Any) -> int:
    """``__hash__`` of such a class: the hash :func:`keep_hash` took (equal objects, equal hashes)."""
    return obj._hash


def restore_hashed(obj: Any, state: list[Any]) -> None:
    """``__setstate__`` for a frozen slotted dataclass that keeps its hash: the fields as pickled,
    the hash taken again (a string's hash differs between processes)."""
    for f, value in zip(dataclasses.fields(obj), state, strict=True):
        object.__setattr__(obj, f.name, value)
    keep_hash(obj)
