"""Parameter counts: one call into the core per request."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.schemas import calculators as s
from service.services import calculators

router = handler_router(prefix="/v1", tags=["params"], responses=problem_responses(422, 503))


@router.post("/params", response_model=s.ParamsResponse, summary="Count parameters", openapi_extra=json_body(s.ParamsRequest))
async def count(request: Request) -> Response:
    """Exact parameter count of an architecture, by part (total and active per token)."""
    return await answer(calculators.params, request, s.ParamsRequest)
