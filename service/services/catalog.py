"""Catalog use cases: validate → repository → commit once. Optimistic concurrency with ETags."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.errors import InvalidSpecError
from service.core.spec import make_architecture
from service.db.engine import restart_write
from service.db.models import Gpu, ModelPreset, Provider
from service.db.repositories import PriceRepository, VersionedRepository
from service.errors import Conflict, NotFound, PreconditionFailed, Unprocessable, field_error
from service.schemas import catalog as s
from service.schemas.base import Schema
from service.services.catalog_reader import CatalogSnapshot
from service.services.models import merge_architecture
from service.services.writes import WriteAnswer, finish

MAX_RETRIES = 5


@dataclass(frozen=True)
class Resource:
    """What the generic service needs to know about one versioned catalog table."""

    label: str
    path: str  # the collection's path; an item's is ``{path}/{id}``
    model: type[Any]
    fields: type[Schema]  # every stored field except id and version (validates merged patches)
    out: type[Schema]
    normalise: Callable[[dict[str, Any]], dict[str, Any]] = lambda values: values
    referenced_by: Callable[[Session, str], int] | None = None
    merge_patch: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] = lambda current, changes: current | changes


def _architecture(values: dict[str, Any]) -> dict[str, Any]:
    """Check a preset's architecture with the core's rules; store the resolved defaults."""
    names = [f for f in s.ModelArchitecture.model_fields]
    try:
        arch = make_architecture(**{k: values[k] for k in names}, prefix="")
    except InvalidSpecError as exc:
        raise Unprocessable(str(exc), errors=[field_error(exc.field, exc.reason)]) from exc
    return values | {"n_kv_heads": arch.n_kv_heads, "d_head": arch.d_head}


def _merge_gpu_patch(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A GPU's PATCH: ``peak_tflops`` changes the dtypes it names (null clears one) and keeps the
    others, as the GPU's other fields are kept when left out."""
    merged = current | changes
    if isinstance(changes.get("peak_tflops"), dict) and isinstance(current.get("peak_tflops"), dict):
        merged["peak_tflops"] = current["peak_tflops"] | changes["peak_tflops"]
    return merged


GPUS = Resource(
    "GPU", "/v1/gpus", Gpu, s.GpuFields, s.GpuOut,
    referenced_by=lambda session, item_id: PriceRepository(session).count_referencing(gpu_id=item_id),
    merge_patch=_merge_gpu_patch,
)  # fmt: skip
PROVIDERS = Resource(
    "provider", "/v1/providers", Provider, s.ProviderFields, s.ProviderOut,
    referenced_by=lambda session, item_id: PriceRepository(session).count_referencing(provider_id=item_id),
)  # fmt: skip
MODELS = Resource(
    "model preset", "/v1/models", ModelPreset, s.ModelPresetFields, s.ModelPresetOut,
    normalise=_architecture, merge_patch=merge_architecture,
)  # fmt: skip


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> set[int] | None:
    """Versions an ``If-Match`` header accepts; ``None`` for no header or ``*`` (any).

    If-Match uses the strong comparison (RFC 9110 §13.1.1): a weak tag ``W/"3"`` never matches. A
    version is ASCII digits: a header arrives as latin-1 text, whose ``²`` passes ``str.isdigit``."""
    if header is None or header.strip() == "*":
        return None
    versions = set()
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith('"') and tag.endswith('"') and tag[1:-1].isascii() and tag[1:-1].isdigit():
            versions.add(int(tag[1:-1]))
    return versions


def _out(res: Resource, row: Any) -> Schema:
    return res.out.model_validate(row, from_attributes=True)


def _stored_values(res: Resource, row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in res.fields.model_fields}


def _validated(res: Resource, values: Mapping[str, Any]) -> dict[str, Any]:
    try:
        fields = res.fields.model_validate(values)
    except ValidationError as exc:
        errors = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Unprocessable("; ".join(f"{'.'.join(e['loc'][1:])}: {e['msg']}" for e in errors), errors=errors) from exc
    return res.normalise(fields.model_dump())


def list_items(snapshot: CatalogSnapshot, res: Resource, query: s.ListQuery) -> str:
    """A page of the catalog snapshot (:mod:`service.services.catalog_reader`) as JSON, as the
    store would answer it: filtered, ordered by id. Kept with the snapshot per query."""
    table = res.model.__tablename__

    def page() -> str:
        items, total = snapshot.page(table, query.filters(), limit=query.limit, offset=query.offset)
        return s.Page[res.out](items=items, total=total, limit=query.limit, offset=query.offset).model_dump_json()

    return snapshot.derived(("page", table, query.model_dump_json()), page)


def get_item(snapshot: CatalogSnapshot, res: Resource, item_id: str) -> tuple[str, str]:
    """The item from the catalog snapshot as JSON, and its ETag."""
    table = res.model.__tablename__
    found = snapshot.item(table, item_id)
    if found is None:
        raise NotFound(f"{res.label} {item_id!r} not found")
    item, row = found
    return snapshot.derived(("item", table, item_id), item.model_dump_json), etag(row.version)


def _item_answer(res: Resource, row: Any, status_code: int = 200, *, created: bool = False) -> WriteAnswer:
    """The written item as JSON with its ``ETag`` (and ``Location`` when created)."""
    headers = {"ETag": etag(row.version)}
    if created:
        headers = {"Location": f"{res.path}/{row.id}"} | headers
    return WriteAnswer(status_code, _out(res, row).model_dump_json(), headers)


def _stored_item(session: Session, res: Resource, item_id: str) -> WriteAnswer:
    """The item as the write's own transaction reads it back from the store (the values the
    database filled in included), with its ETag."""
    row = VersionedRepository(session, res.model).get(item_id)
    if row is None:
        raise NotFound(f"{res.label} {item_id!r} not found")
    return _item_answer(res, row)


def create_item(session: Session, res: Resource, body: Schema) -> WriteAnswer:
    data = body.model_dump(exclude={"id"})
    item_id = getattr(body, "id", None)
    if item_id is None:
        raise Unprocessable.for_field("id", "required when creating")
    repo = VersionedRepository(session, res.model)
    if repo.exists(item_id):
        raise Conflict(f"{res.label} {item_id!r} already exists; PUT /{item_id} replaces it")
    values = _validated(res, data)
    try:
        row = repo.add({"id": item_id, **values})
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"{res.label} {item_id!r} already exists") from exc
    return finish(session, _item_answer(res, row, 201, created=True))


def _write(
    session: Session, res: Resource, item_id: str, if_match: str | None, merge: Callable[[dict[str, Any]], dict[str, Any]]
) -> WriteAnswer:
    """Read, merge, validate, and write with ``UPDATE ... WHERE version = :read_version``.

    With ``If-Match`` the read version must be one it names (412 otherwise) and a concurrent
    write in between is a 412 too; without it a concurrent write makes us re-read and merge
    again, so no field another writer changed is silently put back. A write that changes no value
    (an empty PATCH, or every value as stored) writes nothing: the item keeps its version and ETag,
    and the catalog its version, so no other client's If-Match fails for it."""
    repo = VersionedRepository(session, res.model)
    accepted = parse_if_match(if_match)
    for _ in range(MAX_RETRIES):
        row = repo.get(item_id)
        if row is None:
            raise NotFound(f"{res.label} {item_id!r} not found")
        if accepted is not None and row.version not in accepted:
            raise PreconditionFailed(f"{res.label} {item_id!r} is at version {row.version}; If-Match was {if_match}")
        stored = _stored_values(res, row)
        values = _validated(res, merge(stored))
        if values == _validated(res, stored):  # nothing changes: no write, the same version and ETag
            return finish(session, _item_answer(res, row))
        if repo.update_if_version(item_id, values, row.version):
            return finish(session, _stored_item(session, res, item_id))
        session.rollback()
        if if_match is not None:
            raise PreconditionFailed(f"{res.label} {item_id!r} changed while this request was applied")
        restart_write(session)  # the retry waits for locks as long as the first try, no longer
    raise Conflict(f"{res.label} {item_id!r} is being changed by other writers; try again")


def replace_item(session: Session, res: Resource, item_id: str, body: Schema, if_match: str | None) -> WriteAnswer:
    body_id = getattr(body, "id", None)
    if body_id is not None and body_id != item_id:
        raise Unprocessable.for_field("id", f"does not match the path ({item_id!r})")
    replacement = body.model_dump(exclude={"id"})
    return _write(session, res, item_id, if_match, lambda _current: replacement)


def patch_item(session: Session, res: Resource, item_id: str, patch: Schema, if_match: str | None) -> WriteAnswer:
    changes = patch.model_dump(exclude_unset=True)
    return _write(session, res, item_id, if_match, lambda current: res.merge_patch(current, changes))


def delete_item(session: Session, res: Resource, item_id: str, if_match: str | None) -> WriteAnswer:
    repo = VersionedRepository(session, res.model)
    row = repo.get(item_id)
    if row is None:
        raise NotFound(f"{res.label} {item_id!r} not found")
    accepted = parse_if_match(if_match)
    if accepted is not None and row.version not in accepted:
        raise PreconditionFailed(f"{res.label} {item_id!r} is at version {row.version}; If-Match was {if_match}")
    if res.referenced_by is not None and (n := res.referenced_by(session, item_id)):
        raise Conflict(f"{res.label} {item_id!r} is referenced by {n} price(s); delete those first")
    try:
        # with If-Match, only the version it accepted: a write committed since the read keeps the row
        deleted = repo.delete(item_id, version=None if accepted is None else row.version)
    except IntegrityError as exc:  # a price was added concurrently
        session.rollback()
        raise Conflict(f"{res.label} {item_id!r} is referenced by prices") from exc
    if not deleted:
        session.rollback()
        if accepted is not None and repo.exists(item_id):
            raise PreconditionFailed(f"{res.label} {item_id!r} changed while this request was applied")
        raise NotFound(f"{res.label} {item_id!r} not found")
    return finish(session, WriteAnswer(204))


# --- prices -------------------------------------------------------------------------------------


def list_prices(snapshot: CatalogSnapshot, query: s.PriceFilters) -> str:
    """A page of price history from the catalog snapshot as JSON; ``latest`` keeps the current
    prices. Kept with the snapshot per query."""

    def page() -> str:
        items, total = snapshot.page("prices", query.filters(), latest=query.latest, limit=query.limit, offset=query.offset)
        return s.Page[s.PriceOut](items=items, total=total, limit=query.limit, offset=query.offset).model_dump_json()

    return snapshot.derived(("page", "prices", query.model_dump_json()), page)


def get_price(snapshot: CatalogSnapshot, price_id: int) -> str:
    found = snapshot.item("prices", price_id)
    if found is None:
        raise NotFound(f"price {price_id} not found")
    return snapshot.derived(("item", "prices", price_id), found[0].model_dump_json)


def _unknown_references(session: Session, rows: list[s.PriceIn], *, batch: bool) -> list[dict[str, Any]]:
    """422 entries for the rows whose GPU or provider is not in the catalog."""
    errors = []
    for field_name, res in (("gpu_id", GPUS), ("provider_id", PROVIDERS)):
        ids = VersionedRepository(session, res.model).ids()  # in the store's order
        known = set(ids)
        for i, row in enumerate(rows):
            value = getattr(row, field_name)
            if value not in known:
                error = field_error(field_name, f"unknown {res.label} {value!r}; known: {', '.join(ids)}")
                if batch:  # the row's index, an integer as in FastAPI's own errors
                    error["loc"] = ["body", "prices", i, field_name]
                errors.append(error)
    return errors


def create_price(session: Session, body: s.PriceIn) -> WriteAnswer:
    if errors := _unknown_references(session, [body], batch=False):
        first = errors[0]
        raise Unprocessable.for_field(first["loc"][-1], first["msg"])
    try:
        row = PriceRepository(session).add(body.model_dump())
    except IntegrityError as exc:  # the GPU or provider was deleted concurrently
        session.rollback()
        raise Conflict("the GPU or provider of this price was just deleted") from exc
    item = s.PriceOut.model_validate(row, from_attributes=True)
    return finish(session, WriteAnswer(201, item.model_dump_json(), {"Location": f"/v1/prices/{row.id}"}))


def create_prices(session: Session, body: s.PriceBatchIn) -> WriteAnswer:
    """Every row of the batch or none, in one transaction with one catalog version bump; rows
    naming an unknown GPU or provider refuse the whole batch, each named in ``errors``."""
    if errors := _unknown_references(session, body.prices, batch=True):
        rows = sorted({int(e["loc"][2]) for e in errors})
        named = ", ".join(map(str, rows[:20])) + (f" and {len(rows) - 20} more" if len(rows) > 20 else "")
        raise Unprocessable(f"prices: rows {named} reference an unknown GPU or provider; nothing was stored", errors=errors)
    try:
        rows = PriceRepository(session).add_many([row.model_dump() for row in body.prices])
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("a GPU or provider of this batch was just deleted; nothing was stored") from exc
    items = [s.PriceOut.model_validate(row, from_attributes=True) for row in rows]
    out = s.PriceBatchOut(items=items, count=len(items))
    return finish(session, WriteAnswer(201, out.model_dump_json()))


def delete_price(session: Session, price_id: int) -> WriteAnswer:
    if not PriceRepository(session).delete(price_id):
        raise NotFound(f"price {price_id} not found")
    return finish(session, WriteAnswer(204))
