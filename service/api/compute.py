"""Training and inference FLOPs routes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.deps import CatalogDep
from service.api.json_body import json_body, parse_body
from service.api.responses import answer, problem_responses
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1/compute", tags=["compute"], responses=problem_responses(422, 503))


@router.post(
    "/training",
    response_model=s.TrainingComputeResponse,
    summary="Training FLOPs",
    openapi_extra=json_body(s.TrainingComputeRequest),
)
async def training(request: Request, catalog: CatalogDep) -> Response:
    """FLOPs to train `model` on `tokens` tokens: 6PD by default, optionally with the attention
    term, and the hardware FLOPs that recomputation adds."""
    return await answer(calculators.training_compute, await parse_body(request, s.TrainingComputeRequest), catalog)


@router.post(
    "/inference",
    response_model=s.InferenceComputeResponse,
    summary="Inference FLOPs",
    openapi_extra=json_body(s.InferenceComputeRequest),
)
async def inference(request: Request, catalog: CatalogDep) -> Response:
    """FLOPs of a prompt (prefill) and of generating `output_tokens` tokens (decode)."""
    return await answer(calculators.inference_compute, await parse_body(request, s.InferenceComputeRequest), catalog)
