"""Parameter counts: one call into the core per request."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.responses import PROBLEM_422
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1", tags=["params"], responses=PROBLEM_422)


@router.post("/params", response_model=s.ParamsResponse, summary="Count parameters")
def count(req: s.ParamsRequest) -> s.ParamsResponse:
    """Exact parameter count of an architecture, by part (total and active per token)."""
    return calculators.params(req)
