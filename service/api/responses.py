"""Error responses every route documents."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


PROBLEM_422: dict[int | str, dict[str, Any]] = {
    422: {
        "model": Problem,
        "description": "Invalid request: `errors` lists each field and the reason.",
        "content": {"application/problem+json": {}},
    }
}


def json_response(body: BaseModel) -> Response:
    """Serialise a response model once, with pydantic's own JSON encoder.

    The service layer has already built (and validated) the model, so FastAPI's second
    validation and its ``jsonable_encoder`` pass are skipped; the route still declares its
    ``response_model`` for the OpenAPI contract."""
    return Response(body.model_dump_json(), media_type="application/json")
