"""The service app plus one benchmark-only route: POST /bench/echo takes the same request model
as /v1/memory/training and answers a constant, so its throughput is the framework's floor for
parsing and validating that body. Used only by bench_calculators.py."""

from __future__ import annotations

from fastapi import Response

from service.main import create_app
from service.schemas.calculators import TrainingMemoryRequest

app = create_app()


@app.post("/bench/echo", tags=["bench"], include_in_schema=False)
async def echo(req: TrainingMemoryRequest) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")
