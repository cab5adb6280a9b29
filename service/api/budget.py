"""Budget routes: dollars or FLOPs in, compute-optimal model and predicted loss out.

Operation ids are ``budget-<function name>``: the names read as client methods
(``budget_optimal_model``, ``budget_model_for_loss``, ``budget_lifetime_optimum``)."""

from __future__ import annotations

from fastapi import Response

from service.api.deps import CatalogDep, SessionDep
from service.api.responses import json_response, problem_responses
from service.api.routing import api_router
from service.schemas import cost as s
from service.services import cost

router = api_router(prefix="/v1/budget", tags=["budget"], responses=problem_responses(422, 503))


@router.post("", response_model=s.BudgetResponse, summary="Model for a budget")
def optimal_model(req: s.BudgetRequest, catalog: CatalogDep, session: SessionDep) -> Response:
    """Dollars → FLOPs → the compute-optimal parameters and tokens under a scaling law and the
    loss it predicts; or a fixed size or tokens-per-parameter and the loss that costs."""
    return json_response(cost.budget(req, catalog, session))


@router.post("/for-loss", response_model=s.BudgetResponse, summary="Budget for a loss")
def model_for_loss(req: s.ForLossRequest, catalog: CatalogDep, session: SessionDep) -> Response:
    """The cheapest compute-optimal run that reaches `target_loss`, and its dollars on a GPU."""
    return json_response(cost.for_loss(req, catalog, session))


@router.post("/lifetime", response_model=s.LifetimeResponse, summary="Training plus serving optimum")
def lifetime_optimum(req: s.LifetimeRequest, catalog: CatalogDep, session: SessionDep) -> Response:
    """The model size that minimises training plus lifetime inference compute for a target loss
    (Sardana et al. 2023): heavy serving favours a smaller model trained on more tokens."""
    return json_response(cost.lifetime(req, catalog, session))
