"""Error responses every route documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service.api.json_body import component, parse_body
from service.errors import PROBLEM_JSON
from service.services.answers import AnswerCache, traced
from service.services.catalog_reader import CacheMiss, CatalogReader, on_event_loop

Req = TypeVar("Req", bound=BaseModel)


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description='Where: `["body", "model", "n_heads"]`, `["query", "limit"]`, ...')
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str
    title: str
    status: int = Field(ge=100, le=599)
    detail: str
    errors: list[FieldProblem] = Field(None, description="422 only: each bad field and the reason (absent otherwise).")


PROBLEM_REF = component(Problem)

PROBLEM_DESCRIPTIONS = {
    401: "Missing or wrong bearer token.",
    403: "Catalog writes are disabled (no API_TOKEN configured).",
    404: "No such resource.",
    409: "Duplicate id, or the resource is still referenced.",
    412: "If-Match does not match the current ETag.",
    422: "Invalid request: `errors` lists each field and the reason.",
    503: "The catalog database is unavailable, not migrated, or busy with other writes (writes: see `Retry-After`).",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json errors: the ``Problem`` schema under the
    media type the error handlers send (``service.errors.problem``), and nothing else."""
    return {
        code: {"description": PROBLEM_DESCRIPTIONS[code], "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}}
        for code in codes
    }


def json_response(body: BaseModel) -> Response:
    """Serialise a response model once, with pydantic's own JSON encoder.

    The service layer has already built (and validated) the model, so FastAPI's second
    validation and its ``jsonable_encoder`` pass are skipped; the route still declares its
    ``response_model`` for the OpenAPI contract."""
    return Response(body.model_dump_json(), media_type="application/json")


async def answer(compute: Callable[[Req, CatalogReader], BaseModel], request: Request, body: type[Req]) -> Response:
    """Run a calculator on the request's JSON body (see :func:`answer_model`)."""
    return await answer_model(compute, await parse_body(request, body), request)


async def answer_model(
    compute: Callable[[Req, CatalogReader], BaseModel], req: Req, request: Request, *, keep: bool = False
) -> Response:
    """Answer ``req``: on the event loop when every catalog row it needs is in the fresh snapshot
    and it needs no heavy work (a plan search not yet cached), else in the thread pool, where it
    may read the store and compute without holding up the loop's other requests. With ``keep``
    the answer's JSON is kept while the snapshot it read is current
    (:mod:`service.services.answers`) and served again for the same request."""
    catalog: CatalogReader = request.app.state.catalog
    # the fields as sent: a service may treat a field given explicitly differently from its default
    key = (compute.__module__, compute.__qualname__, req.model_dump_json(exclude_unset=True)) if keep else None
    answers: AnswerCache = request.app.state.answers
    try:
        if key is not None:
            kept = answers.get(key, catalog.cached_only().snapshot().serial)
            if kept is not None:
                return Response(kept, media_type="application/json")
        result, trace = on_event_loop(traced, compute, req, catalog.cached_only())
    except CacheMiss:
        result, trace = await run_in_threadpool(traced, compute, req, catalog)
    body = result.model_dump_json()
    if key is not None:
        answers.put(key, trace, body)
    return Response(body, media_type="application/json")
