"""The playground page: served from the package, open without a key, no CDN, no schema entry,
and the scope verdict rendered beside the promise (the page's own script, run by Node.js
against a stub DOM on the server's responses; skipped without ``node``).

(The page itself is exercised in a real browser on the real engine:
tests/integration/test_playground.py.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service import schemas
from service.api.playground import ASSETS
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine

REPO = Path(__file__).resolve().parents[2]

# Runs playground.js in Node.js with just enough of a DOM for render(), then prints what
# the scope badge and the promise line show for each response read from stdin.
STUB_DOM = r"""
const vm = require("vm");
class El {
  constructor() { Object.assign(this, { hidden: false, className: "", textContent: "",
    title: "", value: "", checked: false, disabled: false, style: {}, children: [] }); }
  append(...c) { this.children.push(...c); }
  replaceChildren(...c) { this.children = c; }
  setAttribute() {}
  addEventListener() {}
}
const els = {};
const ctx = vm.createContext({
  document: { getElementById: (id) => (els[id] ??= new El()),
              createElement: () => new El(), addEventListener() {} },
  localStorage: { getItem: () => null }, performance: { now: () => 0 },
});
vm.runInContext(process.argv[1], ctx);
const shown = JSON.parse(require("fs").readFileSync(0, "utf8")).map((d) => {
  vm.runInContext("render", ctx)(d);
  const g = (id) => els[id];
  return { hidden: g("scope-row").hidden, text: g("scope").textContent,
           cls: g("scope").className, title: g("scope").title,
           promise: g("promise").textContent };
});
process.stdout.write(JSON.stringify(shown));
"""


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
        assert any(Path(ASSETS.name, f.name).match(p) for p in patterns), f.name


def test_page_is_not_in_the_openapi_schema() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    assert "/" not in paths and "/playground" not in paths


def test_the_scope_badge_sits_beside_the_promise() -> None:
    with client() as c:
        page = c.get("/playground").text
        js = c.get("/playground/static/playground.js").text
    # in the result card, between the confidence gauge and the promise line
    card = page[page.index('id="gauge-fill"'):page.index('id="stages"')]
    assert re.search(r'<p id="scope-row" class="scope-row" hidden>\s*<span id="scope" '
                     r'class="badge scope"></span></p>\s*<p id="promise"', card), card
    assert "renderScope(d.scope, d.calibration);" in js
    assert "`in scope of ${s.profile} (p = ${fmtP(s.p_value)})`" in js
    assert "`out of scope: nearest ${s.profile} `" in js and ") — no promise`" in js


def render(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node missing: the playground's script is checked in Node.js (Debian's "
                    "nodejs); tests/integration/test_playground.py runs it in Chromium")
    js = ASSETS.joinpath("playground.js").read_text(encoding="utf-8")
    out = subprocess.run([node, "-e", STUB_DOM, js], input=json.dumps(bodies),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    shown: list[dict[str, Any]] = json.loads(out.stdout)
    return shown


def test_the_page_renders_the_scope_verdict() -> None:
    with client() as c:
        r = c.post("/v1/answer", json={"question": "x", "return_samples": True})
    assert r.status_code == 200, r.text
    plain = r.json()  # uncalibrated: no scope test, no badge
    assert plain["scope"]["tested"] is False and not plain["calibrated"]
    cal = {"calibrated": True, "id": "factual-2", "profile": "factual", "delta": 0.1,
           "threshold": 0.8}
    inside = {**plain, "calibrated": True,
              "calibration": {**cal, "target_risk": 0.2},
              "scope": {"tested": True, "profile": "factual", "p_value": 0.4213,
                        "level": 0.05, "in_scope": True,
                        "candidates": {"factual": 0.4213, "math": 0.0189}}}
    reason = ("out_of_scope: the request is outside the scope of every calibration profile; "
              "the nearest is factual (p = 0.0094 < level 0.05); it is not drawn like the "
              "questions the promise was calibrated on, so no error rate is promised")
    outside = {**inside, "abstained": True, "decision": "abstain", "reason": "out_of_scope",
               "calibration": {**cal, "target_risk": None, "reason": reason},
               "scope": {**inside["scope"], "p_value": 0.0094, "in_scope": False,
                         "candidates": {"factual": 0.0094, "math": 0.0094}}}
    untested = {**plain, "calibrated": True, "calibration": {
        **cal, "target_risk": None, "reason": "no_scope: calibration factual-2 has no scope "
        "test"}, "scope": {"tested": False, "profile": "factual", "candidates": {}}}
    bodies = [plain, inside, outside, untested]
    for b in bodies:  # each is a response the server could send
        schemas.AnswerResponse.model_validate(b)
    none, ok, out, unt = render(bodies)
    assert none["hidden"] and "Uncalibrated" in none["promise"]
    assert not ok["hidden"] and ok["text"] == "in scope of factual (p = 0.42)"
    assert ok["cls"] == "badge scope in" and ok["promise"].startswith("Calibrated promise")
    assert ok["title"] == "p-value per profile considered: factual 0.4213, math 0.0189"
    assert not out["hidden"] and out["cls"] == "badge scope out"
    assert out["text"] == "out of scope: nearest factual (p = 0.0094 < 0.05) — no promise"
    assert out["promise"].startswith("No promise for this answer. Out_of_scope: ")
    assert not unt["hidden"] and unt["text"] == "scope not tested — no promise"
