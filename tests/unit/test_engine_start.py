"""The local engine starts off the event loop, and a failed start leaks no engine."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

import service.bootstrap as bootstrap
import service.engine.model_store as model_store
import service.engine.vllm_local as vllm_local
import service.main as main
from service.config import Settings
from tests.fakes import FakeEmbedder

LOAD_S = 1.5


class FakeLLM:
    """Stands in for ``AsyncLLM``: what ``VllmLocalEngine`` calls on it."""

    errored = False

    def __init__(self) -> None:
        self.shut = False

    def get_tokenizer(self) -> object:
        return type("Tok", (), {"chat_template": "{{ x }}"})()

    async def check_health(self) -> None:
        return None

    def shutdown(self) -> None:
        self.shut = True


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[FakeLLM]:
    made: list[FakeLLM] = []

    def blocking_build(settings: Settings, path: str) -> FakeLLM:
        time.sleep(LOAD_S)  # what AsyncLLM.from_engine_args does to its caller's thread
        made.append(FakeLLM())
        return made[-1]

    monkeypatch.setattr(vllm_local, "build_llm", blocking_build)
    monkeypatch.setattr(model_store, "resolve_model", lambda s: "/models/x")
    return made


def _settings() -> Settings:
    return Settings(engine_watchdog_s=0, decision_log_enabled=False)


async def test_healthz_answers_while_the_model_loads(built, monkeypatch) -> None:
    monkeypatch.setattr(bootstrap, "load_side_models", lambda s: (FakeEmbedder(), None))
    app = main.create_app(_settings())
    state = app.state.candor
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://t") as c:
            t0 = time.perf_counter()
            r = await c.get("/healthz")
            assert r.status_code == 200 and time.perf_counter() - t0 < LOAD_S / 3
            assert (await c.get("/readyz")).status_code == 503
            assert state.cascade is None  # still loading when healthz answered
            for _ in range(100):
                if state.cascade is not None:
                    break
                await asyncio.sleep(0.05)
            assert (await c.get("/readyz")).status_code == 200
    assert built[0].shut  # closed at shutdown


async def test_side_model_failure_closes_the_started_engine(built, monkeypatch) -> None:
    def broken(s: Settings) -> tuple[object, object]:
        raise OSError("embedder weights missing")

    monkeypatch.setattr(bootstrap, "load_side_models", broken)
    app = main.create_app(_settings())
    state = app.state.candor
    async with app.router.lifespan_context(app):
        for _ in range(100):
            if state.load_error:
                break
            await asyncio.sleep(0.05)
        assert "embedder weights missing" in state.load_error
        assert built and built[0].shut  # the started engine was shut down, not leaked
        assert state.engine is None
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://t") as c:
            r = await c.get("/readyz")
            assert r.status_code == 503 and "embedder" in r.json()["error"]["message"]
