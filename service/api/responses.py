"""Error responses every route documents."""

from __future__ import annotations

from typing import Any

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
