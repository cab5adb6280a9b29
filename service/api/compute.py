"""Training and inference FLOPs routes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.responses import PROBLEM_422, json_response
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1/compute", tags=["compute"], responses=PROBLEM_422)


@router.post("/training", response_model=s.TrainingComputeResponse, summary="Training FLOPs")
async def training(req: s.TrainingComputeRequest) -> Response:
    """FLOPs to train `model` on `tokens` tokens: 6PD by default, optionally with the attention
    term, and the hardware FLOPs that recomputation adds."""
    return json_response(calculators.training_compute(req))


@router.post("/inference", response_model=s.InferenceComputeResponse, summary="Inference FLOPs")
async def inference(req: s.InferenceComputeRequest) -> Response:
    """FLOPs of a prompt (prefill) and of generating `output_tokens` tokens (decode)."""
    return json_response(calculators.inference_compute(req))
