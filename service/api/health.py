"""Operational routes: liveness, readiness, metrics."""

from __future__ import annotations

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from service.api.responses import problem_responses
from service.api.routing import api_router
from service.db.migrate import schema_problem
from service.errors import Unavailable
from service.schemas.base import Schema

liveness = api_router(tags=["ops"])  # the cheapest route, first in the table
router = api_router(tags=["ops"])  # readiness and metrics: probes and scrapes, after the API routes


class Health(Schema):
    status: str


@liveness.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 as soon as the process is up; touches nothing else."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="Readiness", responses=problem_responses(503))
def readyz(request: Request) -> Health:
    """200 when the catalog database answers and its schema is at this service's newest
    migration; 503 with the reason (and the fix: `python -m service migrate`) when it does not."""
    try:
        problem = schema_problem(request.app.state.engine)
    except SQLAlchemyError as exc:
        raise Unavailable(f"database unreachable: {type(exc).__name__}") from exc
    if problem is not None:
        raise Unavailable(problem)
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Request counts and latencies by route, in the Prometheus text format."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
