"""The calculator page is served from the app, loads nothing from another host, claims no API
path, ships the Chart.js that web/package-lock.json pins, and labels every input.
(tests/test_page.py drives it in a real browser.)"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from fastapi.testclient import TestClient

from service.api.page import INDEX_HTML, PAGE_DIR

ROOT = Path(__file__).resolve().parents[2]
ASSET_TYPES = {".js": "javascript", ".css": "text/css"}


class PageParts(HTMLParser):
    """Every src/href, every input and select (with its attributes), and every label's `for`."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag in ("input", "select"):
            self.controls.append(attributes)
        if tag == "label" and attributes.get("for"):
            self.labels.add(attributes["for"])


def page_parts() -> PageParts:
    parser = PageParts()
    parser.feed(INDEX_HTML.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_the_page_is_served_at_the_root(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>LLM Training Math" in r.text
    assert r.headers["cache-control"] == "no-cache"
    assert client.head("/").status_code == 200


def test_the_page_loads_only_its_own_assets(client: TestClient) -> None:
    parts = page_parts()
    scripts = [ref for ref in parts.refs if ref.endswith((".js", ".css"))]
    assert {"static/app/app.js", "static/app/page.css", "static/app/vendor/chart.umd.min.js"} <= set(scripts)
    for ref in parts.refs:
        # relative (so a proxy prefix works) and on this host; "data:," is the empty favicon
        assert not re.match(r"^([a-z]+:)?//", ref, re.IGNORECASE), f"{ref} is fetched from another host"
    for ref in scripts:
        r = client.get("/" + ref)
        assert r.status_code == 200, ref
        assert ASSET_TYPES[ref[ref.rindex(".") :]] in r.headers["content-type"], ref
    # the modules import only each other, by relative path
    for module in PAGE_DIR.glob("*.js"):
        for target in re.findall(
            r'^\s*(?:import|export)[^;]*?from\s+"([^"]+)"', module.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL
        ):
            assert target.startswith("./") and (PAGE_DIR / target).is_file(), (module.name, target)
            assert client.get(f"/static/app/{target[2:]}").status_code == 200


def test_the_page_shadows_no_api_path(client: TestClient) -> None:
    r = client.get("/v1/no-such-thing")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/static/app/no-such-file.js").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").json()["info"]["title"] == "LLM Training Math"
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_the_vendored_chart_js_is_the_locked_version_with_its_licence() -> None:
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/chart.js"]["version"]
    assert json.loads((ROOT / "web" / "package.json").read_text(encoding="utf-8"))["dependencies"]["chart.js"] == locked
    vendored = (PAGE_DIR / "vendor" / "chart.umd.min.js").read_text(encoding="utf-8")
    assert vendored.startswith(f"/*!\n * Chart.js v{locked}\n"), "re-run `make web-vendor` after changing web/package.json"
    assert "Released under the MIT License" in vendored[:300]
    assert "MIT License" in (PAGE_DIR / "vendor" / "chart.js.LICENSE.md").read_text(encoding="utf-8")


def test_every_input_has_a_label_and_a_place_for_its_error() -> None:
    parts = page_parts()
    assert len(parts.controls) >= 20
    for attributes in parts.controls:
        assert attributes.get("id") in parts.labels, f"no <label for> names {attributes}"
        if attributes.get("data-api"):
            assert attributes["name"] == attributes["id"], attributes
            assert f"{attributes['id']}-error" in parts.ids, f"no error box beside {attributes['id']}"
