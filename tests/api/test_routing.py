"""The route table and the calculators' raw-request routes (service/api/routing.py): the contract
they produce is the one FastAPI would (tests/test_openapi.py), and these tests pin what the fast
path must still do: errors as problem documents, bodies in several chunks, the 405 with Allow."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import Mount

from service.api.deps import get_catalog, require_writer
from service.api.routing import HandlerRoute, attach, handler_router
from service.errors import Unavailable
from service.services.catalog_reader import CatalogCache, CatalogReader


def test_a_handler_route_takes_only_the_request() -> None:
    router = handler_router(tags=["t"])

    with pytest.raises(TypeError, match="exactly one parameter"):

        @router.post("/x")
        async def x(request: Request, n: int) -> Response:  # pragma: no cover - never registered
            return Response()


def test_a_handler_route_is_async_and_runs_no_dependencies() -> None:
    router = handler_router(tags=["t"])
    with pytest.raises(TypeError, match="async def"):

        @router.post("/sync")
        def sync(request: Request) -> Response:  # pragma: no cover - never registered
            return Response()

    guarded = handler_router(tags=["t"], dependencies=[Depends(require_writer)])
    with pytest.raises(TypeError, match="runs no dependencies"):

        @guarded.post("/guarded")
        async def write(request: Request) -> Response:  # pragma: no cover - never registered
            return Response()


def test_dependency_overrides_reach_attached_routes(app, client) -> None:
    """FastAPI's documented way to swap a dependency (tests, integrations) works on the flat
    route table as it did on included routers, for this app only."""

    def no_database() -> None:
        raise Unavailable("override reached the route")

    app.dependency_overrides[get_catalog] = no_database
    try:
        r = client.get("/v1/gpus")
        assert r.status_code == 503 and r.json()["detail"] == "override reached the route"
    finally:
        app.dependency_overrides.clear()
    assert client.get("/v1/gpus").status_code == 200


def test_attach_needs_the_apps_operation_ids(app) -> None:
    router = APIRouter(tags=["t"])

    @router.get("/x")
    async def x() -> dict:  # pragma: no cover - never called
        return {}

    with pytest.raises(ValueError, match="operation_id"):
        attach(app, router)


def test_the_route_table_is_flat_liveness_first_and_docs_last(app) -> None:
    routes = app.router.routes
    paths = [getattr(r, "path", None) for r in routes]
    assert None not in paths, "every route sits on the app's own table (no lazily included routers)"
    assert paths[:6] == ["/healthz", "/v1/params", "/v1/compute/training", "/v1/compute/inference",
                         "/v1/memory/training", "/v1/memory/inference"]  # fmt: skip
    assert paths[-9:-2] == ["/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static/docs"]
    assert isinstance(routes[-3], Mount) and routes[-3].name == "docs-assets"
    # the calculator page and its assets after everything else (service/api/page.py)
    assert paths[-2:] == ["/", "/static/app"]
    assert isinstance(routes[-1], Mount) and routes[-1].name == "page-assets"
    # one style for every computation route (docs/ARCHITECTURE.md): calculators, cost, budget,
    # plans, serving plans and the config.json import are HandlerRoutes; the catalog and the
    # operational routes are FastAPI's own
    computations = (
        "/v1/params",
        "/v1/compute/",
        "/v1/memory/",
        "/v1/cost/",
        "/v1/budget",
        "/v1/plan",
        "/v1/models/from-hf-config",
    )
    for route in routes:
        if isinstance(route, APIRoute):
            assert isinstance(route, HandlerRoute) == route.path.startswith(computations), route.path
    assert sum(isinstance(route, HandlerRoute) for route in routes) == 14


def asgi_post(app, path: str, chunks: list[bytes]) -> tuple[int, dict]:
    """POST ``path`` with the body split into ``chunks`` (as a client streaming it would)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80), "headers": [(b"content-type", b"application/json")],
    }  # fmt: skip

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


@pytest.mark.usefixtures("client")  # the test's database and a started app
def test_a_body_in_several_chunks_is_read_whole(app) -> None:
    body = json.dumps({"model": {"preset": "llama-2-7b"}}).encode()
    status, data = asgi_post(app, "/v1/params", [body[:5], body[5:17], body[17:]])
    assert status == 200 and data["total"] == 6_738_415_616
    status, data = asgi_post(app, "/v1/params", [body[:9]])
    assert status == 422 and data["errors"][0]["loc"][0] == "body"


def test_fast_path_errors_are_problem_documents(client) -> None:
    r = client.post("/v1/memory/training", json={"model": {"preset": "llama-2-7b"}, "parallelism": {"tp": 3}})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["body", "parallelism", "tp"]
    r = client.get("/v1/memory/training")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.post("/v1/params", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["type"] == "json_invalid"


def test_null_architecture_fields_count_as_not_given(client) -> None:
    plain = client.post("/v1/params", json={"model": {"preset": "llama-2-7b"}}).json()
    nulls = client.post("/v1/params", json={"model": {"preset": "llama-2-7b", "n_layers": None, "d_ff": None}}).json()
    assert nulls == plain
    # n_params with a null field is n_params alone: not the "not both" error, but "needs the architecture"
    r = client.post("/v1/params", json={"model": {"n_params": 7e9, "n_layers": None}})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "model"]
    assert "needs the architecture" in r.json()["errors"][0]["msg"]


def test_readers_share_the_cache_and_cached_rows_are_immutable() -> None:
    cache = CatalogCache(60)
    reader = CatalogReader(lambda: None, cache)  # type: ignore[arg-type, return-value]
    assert reader.cached_only() is reader.cached_only()
    assert reader.cached_only().cache is cache
    assert reader.cached_only().cached_only() is reader.cached_only()
