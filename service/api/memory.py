"""Training and serving memory routes."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.schemas import calculators as s
from service.services import calculators

router = handler_router(prefix="/v1/memory", tags=["memory"], responses=problem_responses(422, 503))


@router.post(
    "/training",
    response_model=s.TrainingMemoryResponse,
    summary="Training memory per GPU",
    openapi_extra=json_body(s.TrainingMemoryRequest),
)
async def training(request: Request) -> Response:
    """Per-GPU weights, gradients, optimizer states and activations under 3D parallelism and ZeRO;
    `fits` when a GPU is given. An infeasible layout is an answer (`fits: false`), not an error."""
    return await answer(calculators.training_memory, request, s.TrainingMemoryRequest)


@router.post(
    "/inference",
    response_model=s.InferenceMemoryResponse,
    summary="Serving memory",
    openapi_extra=json_body(s.InferenceMemoryRequest),
)
async def inference(request: Request) -> Response:
    """Weights by dtype, KV cache, the 20 % overhead rule, and GPUs needed for a given GPU."""
    return await answer(calculators.inference_memory, request, s.InferenceMemoryRequest)
