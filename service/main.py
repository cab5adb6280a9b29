"""The ASGI application: ``service.main:app``, built by :func:`create_app`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from service.api import compute, health, memory, params
from service.errors import install_error_handlers
from service.settings import Settings, get_settings

API_VERSION = "1.0.0"
DESCRIPTION = """
Answers the questions teams ask before they train or serve a large language model: parameters,
training and inference FLOPs, training and serving memory. Every estimate names its formulas and
sources and the assumptions it filled in. Errors are `application/problem+json` (RFC 9457).
"""


def operation_id(route: APIRoute) -> str:
    """Stable operation ids for generated clients: ``<tag>-<function name>``."""
    return f"{route.tags[0]}-{route.name}"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; nothing is created at import time beyond this function."""
    settings = settings or get_settings()
    app = FastAPI(
        title="LLM Training Math",
        version=API_VERSION,
        description=DESCRIPTION,
        generate_unique_id_function=operation_id,
        openapi_tags=[
            {"name": "ops", "description": "Liveness and readiness."},
            {"name": "params", "description": "Parameter counts of architectures."},
            {"name": "compute", "description": "Training and inference FLOPs."},
            {"name": "memory", "description": "Training and serving memory."},
        ],
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (params, compute, memory):
        app.include_router(module.router)
    return app


app = create_app()
