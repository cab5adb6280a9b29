"""Parameter counts: one call into the core per request."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.responses import PROBLEM_422, json_response
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1", tags=["params"], responses=PROBLEM_422)


@router.post("/params", response_model=s.ParamsResponse, summary="Count parameters")
async def count(req: s.ParamsRequest) -> Response:
    """Exact parameter count of an architecture, by part (total and active per token)."""
    return json_response(calculators.params(req))
