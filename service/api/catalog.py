"""Catalog routes: GPUs, providers and model presets (CRUD with ETags), prices (append-only).

No ``from __future__ import annotations`` here: the router factory builds endpoints whose
annotations FastAPI must resolve at definition time.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from starlette.convertors import StringConvertor, register_url_convertor

from service.api.deps import IfMatch, SnapshotDep, Writer, WriteSessionDep
from service.api.responses import problem_responses
from service.api.routing import api_router
from service.schemas import catalog as s
from service.services import catalog
from service.services.catalog import Resource
from service.services.writes import WriteAnswer

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again (1 when the write lane is full, 5 when the database is down).",
        "required": True,
        "schema": {"type": "integer"},
    }
}
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when the answer is the stored one of an earlier write with the same `Idempotency-Key`.",
        "required": False,
        "schema": {"type": "string"},
    }
}


def write_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Problem responses of a write; its 503 carries ``Retry-After``."""
    errors = problem_responses(*codes, 503)
    errors[503] = errors[503] | {"headers": RETRY_AFTER}
    return errors


LIST_ERRORS = problem_responses(422, 503)
GET_ERRORS = problem_responses(404, 422, 503)
CREATE_ERRORS = write_errors(401, 403, 409, 422)
WRITE_ERRORS = write_errors(401, 403, 404, 409, 412, 422)  # writes to an existing item, with If-Match
DELETE_PRICE_ERRORS = write_errors(401, 403, 404, 422)
BATCH_ERRORS = write_errors(401, 403, 409, 422)


def write_response(answer: WriteAnswer) -> Response:
    """A write's answer, byte for byte as it is stored for replays."""
    media_type = "application/json" if answer.body is not None else None
    return Response(answer.body, status_code=answer.status_code, headers=dict(answer.headers), media_type=media_type)


ETAG = {
    "ETag": {
        "description": 'The item\'s version as a strong entity tag (`"3"`); send it back in `If-Match`.',
        "required": True,
        "schema": {"type": "string"},
    }
}
LOCATION = {
    "Location": {
        "description": "The created item's path, e.g. `/v1/gpus/h100-sxm`.",
        "required": True,
        "schema": {"type": "string"},
    }
}


def with_headers(
    status_code: int, errors: dict[int | str, dict[str, Any]], headers: dict[str, Any]
) -> dict[int | str, dict[str, Any]]:
    """``responses``: ``errors`` and the headers the success response ``status_code`` carries."""
    return {status_code: {"headers": headers}, **errors}


class PresetId(StringConvertor):
    """A model preset id in a path: any segment but the names of the ``/v1/models`` actions
    (``POST /v1/models/from-hf-config``), so those paths belong to their action alone."""

    regex = "(?!from-hf-config$)[^/]+"


class PriceId(StringConvertor):
    """A price id in a path: any segment but ``batch`` (``POST /v1/prices/batch``), so that path
    belongs to the batch alone (its ``Allow`` is POST); ids are validated as integers after."""

    regex = "(?!batch$)[^/]+"


register_url_convertor("preset_id", PresetId())
register_url_convertor("price_id", PriceId())


def versioned_router(
    *, res: Resource, tag: str, id_name: str, item_in: type, patch: type, out: type, filters: type, id_type: str = ""
) -> APIRouter:
    """list / get / create / replace / update / delete for one versioned resource (``id_type``: a
    path convertor for the id, e.g. ``:preset_id``)."""
    router = api_router(prefix=f"/v1/{tag}", tags=[tag])
    ItemId = Annotated[str, Path(alias=id_name, max_length=64)]
    label = res.label
    item = f"/{{{id_name}{id_type}}}"

    @router.get("", response_model=s.Page[out], summary=f"List {tag}", responses=LIST_ERRORS, name="list")
    async def list_(snapshot: SnapshotDep, query: Annotated[filters, Query()]) -> Any:
        """A page of items (`limit`, `offset`), filtered by the key fields given, ordered by id."""
        return Response(catalog.list_items(snapshot, res, query), media_type="application/json")

    @router.get(item, response_model=out, summary=f"Get a {label}", responses=with_headers(200, GET_ERRORS, ETAG))
    async def get(item_id: ItemId, snapshot: SnapshotDep) -> Any:
        """The `ETag` header holds the version to send back in `If-Match`."""
        item, etag = catalog.get_item(snapshot, res, item_id)  # serialised once, as FastAPI would (same bytes)
        return Response(item, media_type="application/json", headers={"ETag": etag})

    @router.post(
        "", response_model=out, status_code=status.HTTP_201_CREATED, summary=f"Create a {label}",
        responses=with_headers(201, CREATE_ERRORS, LOCATION | ETAG | REPLAYED), dependencies=[Writer],
    )  # fmt: skip
    def create(body: item_in, session: WriteSessionDep) -> Any:
        """Creates the item under its `id` (409 when taken); answers its `Location` and `ETag`."""
        return write_response(catalog.create_item(session, res, body))

    @router.put(
        item,
        response_model=out,
        summary=f"Replace a {label}",
        responses=with_headers(200, WRITE_ERRORS, ETAG | REPLAYED),
        dependencies=[Writer],
    )
    def replace(item_id: ItemId, body: item_in, session: WriteSessionDep, if_match: IfMatch = None) -> Any:
        """Replaces every field; with `If-Match` only if the stored version still matches (412 otherwise). A
        replacement equal to the stored item writes nothing: the same version and `ETag`."""
        return write_response(catalog.replace_item(session, res, item_id, body, if_match))

    @router.patch(
        item,
        response_model=out,
        summary=f"Update a {label}",
        responses=with_headers(200, WRITE_ERRORS, ETAG | REPLAYED),
        dependencies=[Writer],
    )
    def update(item_id: ItemId, body: patch, session: WriteSessionDep, if_match: IfMatch = None) -> Any:
        """Changes the fields given; with `If-Match` only if the stored version still matches (412 otherwise). A
        patch that changes no value (`{}`, or every value as stored) writes nothing: the same version and `ETag`."""
        return write_response(catalog.patch_item(session, res, item_id, body, if_match))

    @router.delete(
        item, status_code=status.HTTP_204_NO_CONTENT, summary=f"Delete a {label}",
        responses=WRITE_ERRORS, dependencies=[Writer],
    )  # fmt: skip
    def delete(item_id: ItemId, session: WriteSessionDep, if_match: IfMatch = None) -> Response:
        """409 while prices reference it."""
        return write_response(catalog.delete_item(session, res, item_id, if_match))

    for route in router.routes:
        route.name = route.name.rstrip("_")  # operation ids: gpus-list, gpus-get, ...
    return router


gpus = versioned_router(
    res=catalog.GPUS, tag="gpus", id_name="gpu_id", item_in=s.GpuIn, patch=s.GpuPatch, out=s.GpuOut, filters=s.GpuFilters
)
providers = versioned_router(
    res=catalog.PROVIDERS, tag="providers", id_name="provider_id", item_in=s.ProviderIn,
    patch=s.ProviderPatch, out=s.ProviderOut, filters=s.ProviderFilters,
)  # fmt: skip
models = versioned_router(
    res=catalog.MODELS, tag="models", id_name="model_id", item_in=s.ModelPresetIn,
    patch=s.ModelPresetPatch, out=s.ModelPresetOut, filters=s.ModelPresetFilters, id_type=":preset_id",
)  # fmt: skip

prices = api_router(prefix="/v1/prices", tags=["prices"])


@prices.get("", response_model=s.Page[s.PriceOut], summary="List prices", responses=LIST_ERRORS, name="list")
async def list_prices(snapshot: SnapshotDep, query: Annotated[s.PriceFilters, Query()]) -> Any:
    """Price history, newest first per GPU, provider and pricing kind; `latest=true` keeps only
    the current price of each."""
    return Response(catalog.list_prices(snapshot, query), media_type="application/json")


@prices.get("/{price_id:price_id}", response_model=s.PriceOut, summary="Get a price", responses=GET_ERRORS, name="get")
async def get_price(price_id: Annotated[int, Path(ge=1, le=2**62)], snapshot: SnapshotDep) -> Any:
    """One recorded price."""
    return Response(catalog.get_price(snapshot, price_id), media_type="application/json")


@prices.post(
    "", response_model=s.PriceOut, status_code=status.HTTP_201_CREATED, summary="Record a price",
    responses=with_headers(201, CREATE_ERRORS, LOCATION | REPLAYED), dependencies=[Writer], name="create",
)  # fmt: skip
def create_price(body: s.PriceIn, session: WriteSessionDep) -> Any:
    """Appends a price; older prices stay as history (a price is never overwritten)."""
    return write_response(catalog.create_price(session, body))


@prices.post(
    "/batch", response_model=s.PriceBatchOut, status_code=status.HTTP_201_CREATED, summary="Record prices in one batch",
    responses=with_headers(201, BATCH_ERRORS, REPLAYED), dependencies=[Writer], name="create_batch",
)  # fmt: skip
def create_prices(body: s.PriceBatchIn, session: WriteSessionDep) -> Any:
    """Appends up to 1,000 prices (a price feed's update) in one transaction: all are stored or
    none; a row naming an unknown GPU or provider refuses the batch, each such row named in
    `errors`. Every reader sees the whole batch at once (one catalog version)."""
    return write_response(catalog.create_prices(session, body))


@prices.delete(
    "/{price_id:price_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an erroneous price",
    responses=DELETE_PRICE_ERRORS, dependencies=[Writer], name="delete",
)  # fmt: skip
def delete_price(price_id: Annotated[int, Path(ge=1, le=2**62)], session: WriteSessionDep) -> Response:
    """Removes a price recorded by mistake (history is otherwise append-only)."""
    return write_response(catalog.delete_price(session, price_id))


ROUTERS = (gpus, providers, prices, models)
