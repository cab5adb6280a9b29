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


async def answer(compute: Callable[[Req, CatalogReader], BaseModel], request: Request, body: type[Req]) -> Response:
    """The one way a computation route answers (calculators, cost, budget, plans, serving plans,
    ``config.json`` import; docs/ARCHITECTURE.md, "A request's path"):

    1. the JSON body is validated in one step by pydantic (:func:`service.api.json_body.parse_body`);
    2. an answer kept for the same request (its fields as sent) is served again while the catalog
       snapshot it read is current (:mod:`service.services.answers`);
    3. otherwise ``compute`` runs on the event loop with a cache-only catalog reader, and if it
       needs a row that is not in the fresh snapshot (:class:`CacheMiss`) or work too slow for the
       loop (:class:`~service.services.catalog_reader.HeavyWork`: a plan search not yet cached), it
       runs again in the thread pool, where it may read the store and compute without holding up
       the loop's other requests;
    4. the answer is serialised once, with pydantic's encoder, and kept (unless a time-bounded
       search was cut); the route still declares its ``response_model`` for the contract."""
    req = await parse_body(request, body)
    catalog: CatalogReader = request.app.state.catalog
    # the fields as sent: a service may treat a field given explicitly differently from its default
    key = (compute.__module__, compute.__qualname__, req.model_dump_json(exclude_unset=True))
    answers: AnswerCache = request.app.state.answers
    try:
        kept = answers.get(key, catalog.cached_only().snapshot().serial)
        if kept is not None:
            return Response(kept, media_type="application/json")
        result, trace = on_event_loop(traced, compute, req, catalog.cached_only())
    except CacheMiss:
        result, trace = await run_in_threadpool(traced, compute, req, catalog)
    text = result.model_dump_json()
    answers.put(key, trace, text)
    return Response(text, media_type="application/json")
