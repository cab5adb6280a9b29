"""Budget routes: dollars or FLOPs in, compute-optimal model and predicted loss out.

Operation ids are ``budget-<function name>``: the names read as client methods
(``budget_optimal_model``, ``budget_model_for_loss``, ``budget_lifetime_optimum``)."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.schemas import budget as s
from service.services import budget, lifetime

router = handler_router(prefix="/v1/budget", tags=["budget"], responses=problem_responses(422, 503))


@router.post("", response_model=s.BudgetResponse, summary="Model for a budget", openapi_extra=json_body(s.BudgetRequest))
async def optimal_model(request: Request) -> Response:
    """Dollars → FLOPs → the compute-optimal parameters and tokens under a scaling law and the
    loss it predicts; or a fixed size or tokens-per-parameter and the loss that costs."""
    return await answer(budget.budget, request, s.BudgetRequest)


@router.post("/for-loss", response_model=s.BudgetResponse, summary="Budget for a loss", openapi_extra=json_body(s.ForLossRequest))
async def model_for_loss(request: Request) -> Response:
    """The cheapest compute-optimal run that reaches `target_loss`, and its dollars on a GPU."""
    return await answer(budget.for_loss, request, s.ForLossRequest)


@router.post(
    "/lifetime",
    response_model=s.LifetimeResponse,
    summary="Training plus serving optimum",
    openapi_extra=json_body(s.LifetimeRequest),
)
async def lifetime_optimum(request: Request) -> Response:
    """The model size that minimises training plus lifetime inference compute for a target loss
    (Sardana et al. 2023): heavy serving favours a smaller model trained on more tokens."""
    return await answer(lifetime.lifetime, request, s.LifetimeRequest)
