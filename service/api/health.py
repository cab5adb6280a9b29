"""Operational routes."""

from __future__ import annotations

from fastapi import APIRouter

from service.schemas.base import Schema

router = APIRouter(tags=["ops"])


class Health(Schema):
    status: str


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """200 as soon as the process is up; touches nothing else."""
    return Health(status="ok")
