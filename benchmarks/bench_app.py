"""The service app plus one benchmark-only route: POST /bench/echo parses and validates the same
request body as /v1/memory/training, the same way, and answers a constant, so its throughput is
the framework's floor for that body. Used only by bench_calculators.py."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import parse_body
from service.main import create_app
from service.schemas.calculators import TrainingMemoryRequest

app = create_app()


@app.post("/bench/echo", tags=["bench"], include_in_schema=False)
async def echo(request: Request) -> Response:
    await parse_body(request, TrainingMemoryRequest)
    return Response(b'{"ok":true}', media_type="application/json")
