"""Cost routes: training runs, a comparison across the catalog, and serving."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.responses import answer_model, problem_responses
from service.api.routing import api_router
from service.schemas import cost as s
from service.services import cost

router = api_router(prefix="/v1/cost", tags=["cost"], responses=problem_responses(422, 503))


@router.post("/training", response_model=s.TrainingCostResponse, summary="Training time and cost")
async def training(req: s.TrainingCostRequest, request: Request) -> Response:
    """FLOPs, GPU-hours, wall-clock time and dollars of a training run on `n_gpus` catalog GPUs,
    priced explicitly, at a provider's current price, or at the cheapest current price."""
    return await answer_model(cost.training_cost, req, request, keep=True)


@router.post("/compare", response_model=s.CompareResponse, summary="Compare GPUs and providers")
async def compare(req: s.CompareRequest, request: Request) -> Response:
    """The same run priced on every GPU × provider with a current price, sorted by cost or time;
    GPUs that cannot hold the job at any sensible layout are marked `fits: false` and sorted last."""
    return await answer_model(cost.compare, req, request, keep=True)


@router.post("/inference", response_model=s.InferenceCostResponse, summary="Serving cost")
async def inference(req: s.InferenceCostRequest, request: Request) -> Response:
    """Dollars per million output (and input) tokens from the decode/prefill roofline, with the
    memory check."""
    return await answer_model(cost.inference_cost, req, request, keep=True)
