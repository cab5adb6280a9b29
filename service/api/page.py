"""The calculator page: ``GET /`` serves ``service/static/index.html``, and its scripts, stylesheet
and the vendored charting library are served under :data:`PAGE_ASSETS_URL`.

The page is static: no server-side templating. It calls the public API only (``/v1/models``,
``/v1/gpus``, ``/v1/prices``, ``/v1/memory/training``, ``/v1/cost/compare``, ``/v1/budget``,
``/v1/plan``), so it shows nothing a client could not get itself. Nothing is fetched from another
host: Chart.js is vendored into ``service/static/vendor/`` by ``make web-vendor`` and committed.

Only two paths are claimed, ``/`` and the assets' prefix, so no API, docs or operations path is
shadowed and an unknown ``/v1/...`` path keeps its problem+json 404. :func:`add_page` is called
after :func:`service.api.routing.move_docs_last`: the page's routes sit at the end of the table.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

PAGE_URL = "/"
PAGE_ASSETS_URL = "/static/app"
PAGE_ASSETS_NAME = "page-assets"
PAGE_DIR = Path(__file__).resolve().parent.parent / "static"
INDEX_HTML = PAGE_DIR / "index.html"


def add_page(app: FastAPI) -> None:
    """Serve the page at :data:`PAGE_URL` and its assets under :data:`PAGE_ASSETS_URL`."""

    async def page(request: Request) -> FileResponse:
        # revalidated on every load (ETag / Last-Modified), so a new release is seen at once
        return FileResponse(INDEX_HTML, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    app.add_route(PAGE_URL, page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(PAGE_ASSETS_URL, StaticFiles(directory=PAGE_DIR), name=PAGE_ASSETS_NAME)
