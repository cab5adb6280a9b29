"""Budget routes: dollars or FLOPs in, compute-optimal model and predicted loss out.

Operation ids are ``budget-<function name>``: the names read as client methods
(``budget_optimal_model``, ``budget_model_for_loss``, ``budget_lifetime_optimum``)."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.responses import answer_model, problem_responses
from service.api.routing import api_router
from service.schemas import cost as s
from service.services import cost

router = api_router(prefix="/v1/budget", tags=["budget"], responses=problem_responses(422, 503))


@router.post("", response_model=s.BudgetResponse, summary="Model for a budget")
async def optimal_model(req: s.BudgetRequest, request: Request) -> Response:
    """Dollars → FLOPs → the compute-optimal parameters and tokens under a scaling law and the
    loss it predicts; or a fixed size or tokens-per-parameter and the loss that costs."""
    return await answer_model(cost.budget, req, request, keep=True)


@router.post("/for-loss", response_model=s.BudgetResponse, summary="Budget for a loss")
async def model_for_loss(req: s.ForLossRequest, request: Request) -> Response:
    """The cheapest compute-optimal run that reaches `target_loss`, and its dollars on a GPU."""
    return await answer_model(cost.for_loss, req, request, keep=True)


@router.post("/lifetime", response_model=s.LifetimeResponse, summary="Training plus serving optimum")
async def lifetime_optimum(req: s.LifetimeRequest, request: Request) -> Response:
    """The model size that minimises training plus lifetime inference compute for a target loss
    (Sardana et al. 2023): heavy serving favours a smaller model trained on more tokens."""
    return await answer_model(cost.lifetime, req, request, keep=True)
