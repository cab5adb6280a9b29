"""Training and inference FLOPs routes."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.schemas import calculators as s
from service.services import calculators

router = handler_router(prefix="/v1/compute", tags=["compute"], responses=problem_responses(422, 503))


@router.post(
    "/training",
    response_model=s.TrainingComputeResponse,
    summary="Training FLOPs",
    openapi_extra=json_body(s.TrainingComputeRequest),
)
async def training(request: Request) -> Response:
    """FLOPs to train `model` on `tokens` tokens: 6PD by default, optionally with the attention
    term, and the hardware FLOPs that recomputation adds."""
    return await answer(calculators.training_compute, request, s.TrainingComputeRequest)


@router.post(
    "/inference",
    response_model=s.InferenceComputeResponse,
    summary="Inference FLOPs",
    openapi_extra=json_body(s.InferenceComputeRequest),
)
async def inference(request: Request) -> Response:
    """FLOPs of a prompt (prefill) and of generating `output_tokens` tokens (decode)."""
    return await answer(calculators.inference_compute, request, s.InferenceComputeRequest)
