"""Parameter counts: one call into the core per request."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import CatalogDep
from service.api.responses import answer, problem_responses
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1", tags=["params"], responses=problem_responses(422, 503))


@router.post("/params", response_model=s.ParamsResponse, summary="Count parameters")
async def count(req: s.ParamsRequest, catalog: CatalogDep) -> Response:
    """Exact parameter count of an architecture, by part (total and active per token)."""
    return await answer(calculators.params, req, catalog)
