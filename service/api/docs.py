"""The docs pages, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with their JS, CSS and
favicon served by the app itself: FastAPI's defaults load them from a CDN, so offline the pages
stay blank. The assets are the ones the ``fastapi-offline`` wheel ships (Swagger UI 5, which
reads OpenAPI 3.1, and ReDoc 2), mounted from its package directory; nothing is fetched at run
time and nothing is vendored here.

The routes are plain Starlette routes outside the OpenAPI document, as FastAPI's own docs
routes are, and :func:`service.api.routing.move_docs_last` puts them and the mount at the end of
the route table.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/static/docs"
ASSETS_NAME = "docs-assets"
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))


def add_docs_pages(app: FastAPI) -> None:
    """Serve ``/docs`` (with ``app.swagger_ui_oauth2_redirect_url``), ``/redoc`` and their
    assets under :data:`ASSETS_URL`. The app must be created with ``docs_url=None,
    redoc_url=None`` (FastAPI's CDN pages) and keep its ``openapi_url``."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None, redoc_url=None: add_docs_pages() serves them")
    if app.openapi_url is None:
        raise ValueError("the docs pages need the app's openapi_url")
    openapi_url = app.openapi_url
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "").rstrip("/")
        assets = root_path + ASSETS_URL
        return get_swagger_ui_html(
            openapi_url=root_path + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            oauth2_redirect_url=root_path + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            # no badge fetched from the public validator
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    async def redoc_html(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "").rstrip("/")
        assets = root_path + ASSETS_URL
        return get_redoc_html(
            openapi_url=root_path + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(DOCS_URL, swagger_ui_html, include_in_schema=False)
    if oauth2_redirect_url:
        app.add_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc_html, include_in_schema=False)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name=ASSETS_NAME)
