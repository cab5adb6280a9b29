"""The docs pages work offline: /docs (Swagger UI) and /redoc load their JS, CSS and favicon from
the app itself (service/api/docs.py), never from a CDN, and the OpenAPI document they read is
still served."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class AssetRefs(HTMLParser):
    """Every ``<script src>`` and ``<link href>`` of a page, and any other src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name not in ("src", "href") or value is None:
                continue
            if tag == "script":
                self.scripts.append(value)
            elif tag == "link":
                self.links.append(value)
            else:
                self.other.append(value)


def asset_refs(html: str) -> AssetRefs:
    parser = AssetRefs()
    parser.feed(html)
    parser.close()
    return parser


def assert_local(urls: list[str]) -> None:
    for url in urls:
        assert not url.lower().startswith(("http://", "https://", "//")), f"{url} is fetched from another host"
        assert url.startswith("/"), url


def assert_assets_served(client: TestClient, urls: list[str]) -> None:
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert ASSET_TYPES[suffix] in r.headers["content-type"], (url, r.headers["content-type"])
        assert len(r.content) > 1000, f"{url} is only {len(r.content)} bytes"


@pytest.mark.parametrize(
    ("page", "script", "title"),
    [("/docs", "swagger-ui-bundle.js", "Swagger UI"), ("/redoc", "redoc.standalone.js", "ReDoc")],
)
def test_docs_pages_load_only_local_assets(client: TestClient, page: str, script: str, title: str) -> None:
    r = client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert f"LLM Training Math - {title}" in r.text
    refs = asset_refs(r.text)
    assert refs.scripts and refs.links, "the page names its script and its stylesheet or favicon"
    assert_local(refs.scripts + refs.links + refs.other)
    assert any(src.endswith("/" + script) for src in refs.scripts), refs.scripts
    assert "fonts.googleapis.com" not in r.text and "cdn.jsdelivr.net" not in r.text
    assert_assets_served(client, refs.scripts + refs.links)


def test_swagger_ui_loads_its_stylesheet_and_the_openapi_document(client: TestClient) -> None:
    r = client.get("/docs")
    refs = asset_refs(r.text)
    assert any(href.endswith("/swagger-ui.css") for href in refs.links), refs.links
    assert "url: '/openapi.json'" in r.text
    assert '"validatorUrl": null' in r.text, "no validator badge fetched from the public validator"
    spec = client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "LLM Training Math"


def test_oauth2_redirect_page_is_served(client: TestClient) -> None:
    r = client.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text


def test_docs_pages_and_assets_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/docs", "/redoc", "/static")) for p in paths)


def test_a_missing_asset_is_a_404_problem(client: TestClient) -> None:
    r = client.get("/static/docs/no-such-file.js")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_asset_urls_follow_the_root_path(app) -> None:
    """Behind a proxy that strips a prefix, the page names its assets and document under it."""
    behind_proxy = TestClient(app, root_path="/llm-math")
    refs = asset_refs(behind_proxy.get("/docs").text)
    assert refs.scripts == ["/llm-math/static/docs/swagger-ui-bundle.js"]
    assert "url: '/llm-math/openapi.json'" in behind_proxy.get("/docs").text
    assert '<redoc spec-url="/llm-math/openapi.json">' in behind_proxy.get("/redoc").text
