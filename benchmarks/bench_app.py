"""The service app plus one benchmark-only route: POST /bench/echo reads and validates the same
request body as /v1/memory/training, the same way (a :class:`HandlerRoute` placed right after it
in the route table), and answers a constant, so its throughput is the framework's floor for that
body. Used only by bench_calculators.py."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import parse_body
from service.api.routing import handler_router
from service.main import create_app
from service.schemas.calculators import TrainingMemoryRequest

app = create_app()
bench = handler_router(tags=["bench"], include_in_schema=False)


@bench.post("/bench/echo")
async def echo(request: Request) -> Response:
    await parse_body(request, TrainingMemoryRequest)
    return Response(b'{"ok":true}', media_type="application/json")


_routes = app.router.routes
_after = next(i for i, r in enumerate(_routes) if getattr(r, "path", "") == "/v1/memory/training") + 1
_routes[_after:_after] = bench.routes  # right after the calculator: the same matching cost
