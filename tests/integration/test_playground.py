"""The playground in a real browser, on the real engine (the session server).

Debian's Chromium (``make chromium``; path from ``CANDOR_CHROMIUM``, default
``/usr/bin/chromium``) driven by Playwright for Python with ``executable_path``:
Playwright's own browser download is never used. A missing browser fails with one line.

One short question (max_tokens 8, stages 0-1, run_all so both stage bars and the sample
clusters show, claims mode so the claims show): type, submit, read the rendered answer,
stage bars and claims against the JSON the page received, check the key is sent as a
bearer token, and that nothing overflows a phone-width screen.
``CANDOR_PLAYGROUND_SCREENSHOTS=docs/img`` also writes the screenshots the README shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("CANDOR_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make chromium` (Debian's chromium) "
                    "or set CANDOR_CHROMIUM", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `.venv/bin/pip install playwright` (the dev "
                    "extra declares it)", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    page.screenshot(path=str(out), full_page=True)
    target = os.environ.get("CANDOR_PLAYGROUND_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name), full_page=True)
    return out


def test_playground_answers_in_a_browser(browser: Any, live_server: LiveServer,
                                         tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(f"{live_server.url}/")  # redirects to /playground
    assert page.url.endswith("/playground") and page.title() == "Candor playground"
    page.fill("#question", "What is the capital of France?")
    page.click("#more summary")
    page.select_option("#max_stage", "1")
    page.fill("#max_tokens", "8")
    page.check("#run_all")
    page.check("#claims")
    page.click("#auth summary")
    page.fill("#api_key", "sk-playground")
    with page.expect_response("**/v1/answer", timeout=120_000) as got:
        page.click("#submit")
    resp = got.value
    sent = resp.request
    assert sent.headers["authorization"] == "Bearer sk-playground"
    sent_body = json.loads(sent.post_data or "{}")
    assert sent_body["policy"] == {"max_stage": 1, "run_all": True} and sent_body["claims"]
    body = resp.json()
    page.wait_for_selector("#result:not([hidden])")

    assert page.text_content("#answer") == (body["answer"] or "(empty answer)")
    assert page.text_content("#decision") == body["decision"]
    assert page.text_content("#confidence") == f"{100 * body['confidence']:.1f}%"
    bars = page.query_selector_all("#stages .stage")
    assert [b.get_attribute("data-stage") for b in bars] == ["0", "1"]
    assert [s["name"] for s in body["stages"]] == ["token", "consistency"]
    assert "ms" in bars[0].inner_text() and "tok" in bars[1].inner_text()
    clusters = page.query_selector_all("#samples .cluster")
    assert len(clusters) == len({s["cluster"] for s in body["samples"]}) >= 1
    assert f"homogeneous: {str(body['signals']['homogeneous']).lower()}" in page.text_content(
        "#flags")
    promise = page.text_content("#promise") or ""  # the session server has no artifact
    assert "No promise" in promise and body["calibration"]["reason"].lower() in promise.lower()
    scope = body["scope"]  # the scope verdict beside it (none shown without a calibration)
    if scope["tested"]:
        verdict = "in scope of" if scope["in_scope"] else "out of scope: nearest"
        assert f"{verdict} {scope['profile']} (p = " in (page.text_content("#scope") or "")
    else:
        assert page.is_hidden("#scope-row") == (not body["calibrated"])
    claims = page.query_selector_all("#claims-list .claim")  # claims mode: kept or dropped
    assert [c.query_selector(".text").inner_text() for c in claims] == [
        c["text"] for c in body["claims"]["items"]]
    assert [c.query_selector(".tag").inner_text() for c in claims] == [
        "kept" if c["kept"] else "dropped" for c in body["claims"]["items"]]
    assert "No claim-level promise. Uncalibrated:" in (page.text_content("#claims-promise")
                                                       or "")
    shot = screenshot(page, tmp_path, "playground.png")
    assert shot.stat().st_size > 10_000

    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, tmp_path, "playground-phone.png")
    page.reload()
    assert page.input_value("#api_key") == "sk-playground"  # kept in localStorage
    page.close()


def test_playground_shows_api_errors(browser: Any, live_server: LiveServer) -> None:
    page = browser.new_page(viewport={"width": 600, "height": 700})
    page.goto(f"{live_server.url}/playground")
    page.fill("#question", "What is 1 + 1?")
    page.click("#more summary")
    page.fill("#max_tokens", "100000")  # over the server's limit: a 400 naming the field
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    text = page.text_content("#error") or ""
    assert "HTTP 400" in text and "field: max_tokens" in text
    page.close()
