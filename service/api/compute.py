"""Training and inference FLOPs routes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import SessionDep
from service.api.responses import json_response, problem_responses
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1/compute", tags=["compute"], responses=problem_responses(422, 503))


@router.post("/training", response_model=s.TrainingComputeResponse, summary="Training FLOPs")
def training(req: s.TrainingComputeRequest, session: SessionDep) -> Response:
    """FLOPs to train `model` on `tokens` tokens: 6PD by default, optionally with the attention
    term, and the hardware FLOPs that recomputation adds."""
    return json_response(calculators.training_compute(req, session))


@router.post("/inference", response_model=s.InferenceComputeResponse, summary="Inference FLOPs")
def inference(req: s.InferenceComputeRequest, session: SessionDep) -> Response:
    """FLOPs of a prompt (prefill) and of generating `output_tokens` tokens (decode)."""
    return json_response(calculators.inference_compute(req, session))
