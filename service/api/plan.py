"""Planner routes: the fastest parallel layouts of a model on a cluster."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.schemas import plan as s
from service.schemas.serving import ServingPlanRequest, ServingPlanResponse
from service.services import procure
from service.services import serving as serving_service

router = handler_router(prefix="/v1/plan", tags=["plan"], responses=problem_responses(422, 503))


@router.post("", response_model=s.PlanResponse, summary="Parallelism plans", openapi_extra=json_body(s.PlanRequest))
async def training(request: Request) -> Response:
    """Every layout of `model` on `n_gpus` GPUs — data, tensor, pipeline, context and expert
    parallel sizes, ZeRO 0-3, offload, micro-batch, recompute, sequence parallelism, interleaving —
    pruned by per-GPU memory and ranked by the step-time model: the fastest `top_k`, each with
    its memory and step-time breakdown, MFU and HFU, and with `tokens` its hours and dollars. A
    list of GPUs compares their best plans; `tokens` + `deadline_days` instead of `n_gpus` finds
    the cluster size that meets the deadline at the least cost. `pools` of several GPU types
    instead of `gpu` and `n_gpus` adds pipelines across the pools (each stage on one type, its
    layers sized to the type's speed and memory), ranked with each pool's own plans, and the best
    single-pool plan as `best_homogeneous`. Pools with `max_n_gpus` (and a price: owned at $0, a
    sunk price, else the catalog's) with `tokens` + `deadline_days` or `budget_usd` choose the fleet
    to rent: how many of each type, the cheapest that meets the deadline or the soonest within the
    budget. No plan that fits is a 200 with `plans: []` and the reason."""
    return await answer(procure.plan, request, s.PlanRequest)


@router.post("/serving", response_model=ServingPlanResponse, summary="Serving plans", openapi_extra=json_body(ServingPlanRequest))
async def serving(request: Request) -> Response:
    """For each GPU type: the smallest tensor-parallel replica that holds the model and a
    sequence's KV cache in usable memory (and meets the latency bounds), the batch its KV cache
    admits, time to first token and per output token, tokens per second per user and per
    replica, the replicas the target needs, and dollars per million input and output tokens. A
    GPU that cannot serve the target is listed with `fits: false` and the reason."""
    return await answer(serving_service.plan_serving, request, ServingPlanRequest)
