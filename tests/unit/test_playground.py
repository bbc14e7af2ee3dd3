"""The playground page: served from the package, open without a key, no CDN, no schema entry.

(The page itself is exercised in a real browser on the real engine:
tests/integration/test_playground.py.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient

from service.api.playground import ASSETS
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine

REPO = Path(__file__).resolve().parents[2]


def client(**settings: object) -> TestClient:
    app = create_app(Settings(**settings), engine=FakeEngine(),  # type: ignore[arg-type]
                     embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False)


def test_page_and_assets_are_served_without_a_key_while_the_api_needs_one() -> None:
    with client(api_keys="k-1") as c:
        assert c.get("/", follow_redirects=False).headers["location"] == "/playground"
        page = c.get("/playground")
        js = c.get("/playground/static/playground.js")
        css = c.get("/playground/static/playground.css")
        assert c.post("/v1/answer", json={"question": "x"}).status_code == 401
        assert c.get("/playground/static/missing.js").status_code == 404
        ok = c.post("/v1/answer", json={"question": "x"},
                    headers={"authorization": "Bearer k-1"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/playground/static/playground.js" in page.text
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ok.status_code == 200
    assert "authorization = `Bearer ${key}`" in js.text  # the page sends the same key


def test_nothing_is_loaded_from_elsewhere() -> None:
    for f in ASSETS.iterdir():
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f.name
        assert "@import" not in text and "fetch(\"http" not in text, f.name
    js = ASSETS.joinpath("playground.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js  # server values are set as text, never parsed as HTML


def test_assets_ship_as_package_data() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["service.api"]
    for f in ASSETS.iterdir():
        assert any(Path("playground", f.name).match(p) for p in patterns), f.name


def test_page_is_not_in_the_openapi_schema() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert "/" not in paths and "/playground" not in paths
