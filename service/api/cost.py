"""Cost routes: training runs, a comparison across the catalog, and serving."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.schemas import cost as s
from service.services import serving, training_cost

router = handler_router(prefix="/v1/cost", tags=["cost"], responses=problem_responses(422, 503))


@router.post(
    "/training",
    response_model=s.TrainingCostResponse,
    summary="Training time and cost",
    openapi_extra=json_body(s.TrainingCostRequest),
)
async def training(request: Request) -> Response:
    """FLOPs, GPU-hours, wall-clock time and dollars of a training run on `n_gpus` catalog GPUs,
    priced explicitly, at a provider's current price, or at the cheapest current price."""
    return await answer(training_cost.training_cost, request, s.TrainingCostRequest)


@router.post(
    "/compare", response_model=s.CompareResponse, summary="Compare GPUs and providers", openapi_extra=json_body(s.CompareRequest)
)
async def compare(request: Request) -> Response:
    """The same run priced on every GPU × provider with a current price, sorted by cost or time;
    GPUs that cannot hold the job at any sensible layout are marked `fits: false` and sorted last."""
    return await answer(training_cost.compare, request, s.CompareRequest)


@router.post(
    "/inference", response_model=s.InferenceCostResponse, summary="Serving cost", openapi_extra=json_body(s.InferenceCostRequest)
)
async def inference(request: Request) -> Response:
    """Dollars per million output (and input) tokens from the decode/prefill roofline, with the
    memory check."""
    return await answer(serving.inference_cost, request, s.InferenceCostRequest)
