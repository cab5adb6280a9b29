"""Parameter counts: one call into the core per request."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import SessionDep
from service.api.responses import json_response, problem_responses
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1", tags=["params"], responses=problem_responses(422, 503))


@router.post("/params", response_model=s.ParamsResponse, summary="Count parameters")
def count(req: s.ParamsRequest, session: SessionDep) -> Response:
    """Exact parameter count of an architecture, by part (total and active per token)."""
    return json_response(calculators.params(req, session))
