"""Training and serving memory routes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import SessionDep
from service.api.responses import json_response, problem_responses
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1/memory", tags=["memory"], responses=problem_responses(422, 503))


@router.post("/training", response_model=s.TrainingMemoryResponse, summary="Training memory per GPU")
def training(req: s.TrainingMemoryRequest, session: SessionDep) -> Response:
    """Per-GPU weights, gradients, optimizer states and activations under 3D parallelism and ZeRO;
    `fits` when a GPU is given. An infeasible layout is an answer (`fits: false`), not an error."""
    return json_response(calculators.training_memory(req, session))


@router.post("/inference", response_model=s.InferenceMemoryResponse, summary="Serving memory")
def inference(req: s.InferenceMemoryRequest, session: SessionDep) -> Response:
    """Weights by dtype, KV cache, the 20 % overhead rule, and GPUs needed for a given GPU."""
    return json_response(calculators.inference_memory(req, session))
