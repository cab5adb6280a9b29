"""The ASGI application: ``service.main:app``, built by :func:`create_app`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from service.api import budget, catalog, compute, cost, health, hf_config, memory, params, plan
from service.api.docs import add_docs_pages
from service.api.json_body import add_body_schemas
from service.api.middleware import REQUEST_ID_HEADER, BodyGuardMiddleware, RequestMiddleware
from service.api.page import add_page
from service.api.routing import attach, move_docs_last, operation_id
from service.api.write_lane import WriteLane
from service.db.engine import build_engine, session_factory
from service.errors import install_error_handlers
from service.metrics import Metrics
from service.services.answers import AnswerCache
from service.services.catalog_reader import CatalogCache, CatalogReader
from service.services.writes import Replayed
from service.settings import Settings, get_settings

API_VERSION = "1.0.0"
DESCRIPTION = """
Answers the questions teams ask before they train or serve a large language model: parameters,
training and inference FLOPs, training and serving memory, over a catalog of GPUs, cloud prices
and model presets. Every estimate names its formulas and sources and the assumptions it filled
in. Errors are `application/problem+json` (RFC 9457). Catalog writes need
`Authorization: Bearer <API_TOKEN>`.
"""
logger = logging.getLogger(__name__)


def prepare_database(app: FastAPI) -> None:
    """Migrate to head and seed an empty catalog, when the settings ask for it (the SQLite
    default does; Postgres deployments run ``python -m service migrate`` once instead)."""
    from service.db.migrate import upgrade
    from service.db.seed import seed_catalog

    upgrade(app.state.engine)
    with app.state.sessionmaker() as session:
        if seed_catalog(session):
            session.commit()
            logger.info("seeded the empty catalog")


def check_database(app: FastAPI) -> None:
    """Log why the database cannot serve the catalog yet (AUTO_MIGRATE off: Postgres by
    default), when it answers but is not at the code's newest migration. ``python -m service
    serve`` refuses to start then; an app started another way answers ``/readyz`` and every
    catalog request with 503 naming the fix, and its calculators that need no catalog still answer."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.db.migrate import schema_problem

    try:
        problem = schema_problem(app.state.engine)
    except SQLAlchemyError as exc:
        logger.warning("database not reachable at start-up (%s); /readyz answers 503 until it is", type(exc).__name__)
        return
    if problem is not None:
        logger.error("catalog not served: %s", problem)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if app.state.settings.migrate_on_start:
        prepare_database(app)
    else:
        check_database(app)
    # what start-up built (modules, schemas, the app, the routes) lives as long as the process:
    # collected once, then moved out of the collector's generations (gc.freeze, Python docs), a full
    # collection no longer walks it, and its pauses of 80-100 ms under load (every request waits
    # for them) are gone
    gc.collect()
    gc.freeze()
    yield
    app.state.engine.dispose()


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Pure ASGI middleware, outermost first: request id, access log and metrics; CORS (only
    when ``CORS_ORIGINS`` is set); the body limit and JSON-only check, so that their 413/415
    answers carry the request id and the CORS headers too."""
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", REQUEST_ID_HEADER],
            expose_headers=["ETag", "Location", REQUEST_ID_HEADER],
        )
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)  # added last: the outermost


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application; the engine is created here, never at import time."""
    settings = settings or get_settings()
    app = FastAPI(
        title="LLM Training Math",
        version=API_VERSION,
        description=DESCRIPTION,
        license_info={"name": "MIT", "identifier": "MIT"},
        servers=[{"url": "http://127.0.0.1:8000", "description": "make run"}],
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
        # FastAPI's pages load their JS/CSS from a CDN; add_docs_pages serves local copies
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "ops", "description": "Liveness, readiness and metrics."},
            {"name": "params", "description": "Parameter counts of architectures."},
            {"name": "compute", "description": "Training and inference FLOPs."},
            {"name": "memory", "description": "Training and serving memory."},
            {"name": "cost", "description": "Time and dollars of training and serving."},
            {"name": "budget", "description": "Dollars to compute-optimal model size and predicted loss."},
            {"name": "plan", "description": "Parallel layouts ranked by a step-time model."},
            {"name": "gpus", "description": "Accelerator catalog."},
            {"name": "providers", "description": "Cloud providers."},
            {"name": "prices", "description": "Prices per GPU-hour, with history."},
            {"name": "models", "description": "Model presets with exact architectures."},
        ],
    )
    app.state.settings = settings
    app.state.engine = build_engine(settings.database_url)
    app.state.sessionmaker = session_factory(app.state.engine)
    app.state.catalog_cache = CatalogCache(settings.catalog_cache_seconds)
    # one shared reader; it opens sessions through app.state, so a swapped sessionmaker is used
    app.state.catalog = CatalogReader(lambda: app.state.sessionmaker(), app.state.catalog_cache)
    app.state.answers = AnswerCache()  # priced answers, kept while their catalog snapshot is current
    # catalog writes wait here, bounded, never in the thread pool (service/api/write_lane.py)
    app.state.write_lane = WriteLane(settings.write_lane_slots, settings.write_queue, settings.write_wait_seconds)
    app.state.metrics = Metrics()
    add_middleware(app, settings)
    install_error_handlers(app)
    app.add_exception_handler(Replayed, lambda _request, exc: catalog.write_response(exc.answer))
    add_docs_pages(app)
    # one flat route table, matched in this order: liveness, the calculators, the rest of the API,
    # readiness and metrics, the docs pages and their assets last (see service/api/routing.py)
    for router in (
        health.liveness, params.router, compute.router, memory.router, cost.router, budget.router, plan.router, hf_config.router,
        *catalog.ROUTERS,
        health.router,
    ):  # fmt: skip
        attach(app, router)
    move_docs_last(app)
    add_page(app)  # the calculator page at / and its assets, after everything else
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_body_schemas(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def __getattr__(name: str) -> FastAPI:
    """``service.main:app`` for uvicorn, built on first access (no engine at import time)."""
    if name == "app":
        globals()["app"] = application = create_app()
        return application
    raise AttributeError(name)
