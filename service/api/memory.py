"""Training and serving memory routes."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.responses import PROBLEM_422
from service.schemas import calculators as s
from service.services import calculators

router = APIRouter(prefix="/v1/memory", tags=["memory"], responses=PROBLEM_422)


@router.post("/training", response_model=s.TrainingMemoryResponse, summary="Training memory per GPU")
def training(req: s.TrainingMemoryRequest) -> s.TrainingMemoryResponse:
    """Per-GPU weights, gradients, optimizer states and activations under 3D parallelism and ZeRO;
    `fits` when a GPU is given. An infeasible layout is an answer (`fits: false`), not an error."""
    return calculators.training_memory(req)


@router.post("/inference", response_model=s.InferenceMemoryResponse, summary="Serving memory")
def inference(req: s.InferenceMemoryRequest) -> s.InferenceMemoryResponse:
    """Weights by dtype, KV cache, the 20 % overhead rule, and GPUs needed for a given GPU."""
    return calculators.inference_memory(req)
