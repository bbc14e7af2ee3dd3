"""The greedy pass starts while routing embeds the request (the scope test's embedding
then costs no latency), on the prompt the arithmetic regex guesses; when routing chooses
another prompt, that pass is dropped and the routed prompt is generated instead."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.calibration.artifact import save_artifact
from service.calibration.build import build_artifact
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEngine
from tests.unit.calib_synth import synthetic_records
from tests.unit.test_calibration import SERVING

TEMPLATE = "Complete the sentence with a short answer:"


class TopicEmbedder:
    """Completions near one direction, everything else near another (plus a little
    per-text noise); ``seen`` records how many greedy passes had started at each call."""

    def __init__(self, engine: FakeEngine | None = None) -> None:
        self.engine, self.seen = engine, []

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            v = np.zeros(8)
            v[0 if TEMPLATE.lower() in t.lower() else 1] = 1.0
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v += np.random.default_rng(seed).normal(0, 0.05, 8)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out)

    async def encode(self, texts: list[str]) -> np.ndarray:
        await asyncio.sleep(0.05)  # an embedding takes a while
        if self.engine is not None:
            self.seen.append(sum(1 for rid, _ in self.engine.calls if rid.endswith("greedy")))
        return self.encode_sync(texts)


def profile(tmp: Path, name: str, seed: int, prefix: str, q: tuple[int, int]) -> None:
    records = synthetic_records(400, seed, question_chars=q, answer_chars=(2, 40))
    for r in records:
        r.question = f"{prefix} {r.question}".strip()
    spec = build_artifact(records, dataset="synthetic", settings=SERVING, seed=seed, delta=0.1,
                          holdout=0.3, profile=name, tasks=[name], default_alpha=0.3,
                          embed=TopicEmbedder().encode_sync,
                          scope_components=("similarity", "question_length"))
    save_artifact(spec.model_copy(update={"id": f"{name}-{seed}"}), tmp / f"{name}.json")


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("spec")
    profile(d, "math", 1, "What is", (4, 12))
    profile(d, "factual", 2, TEMPLATE, (30, 80))
    return d


@pytest.fixture
def served(profiles: Path) -> Iterator[tuple[TestClient, FakeEngine, TopicEmbedder]]:
    engine = FakeEngine()
    embedder = TopicEmbedder(engine)
    app = create_app(Settings(samples_n=4, calibration=profiles, max_stage=0), engine=engine,
                     embedder=embedder)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, engine, embedder


def greedy_calls(engine: FakeEngine) -> list[str]:
    return [rid for rid, p in engine.calls if rid.endswith("greedy")]


def test_the_greedy_pass_runs_while_the_request_is_embedded(served: tuple) -> None:
    c, engine, embedder = served
    b = c.post("/v1/answer", json={"question": "What is 3 + 4?"}).json()
    assert b["scope"]["profile"] == "math" and b["scope"]["in_scope"], b["scope"]
    assert embedder.seen[-1] == 1  # started before the embedding came back
    assert greedy_calls(engine) == [f"{b['id']}-greedy"]  # once: the guess was right


def test_a_wrong_guess_is_regenerated_on_the_routed_prompt(served: tuple) -> None:
    c, engine, _ = served
    q = f"{TEMPLATE} the sum 3 + 4 of the two numbers on the old stone is ..."  # mathy
    b = c.post("/v1/answer", json={"question": q}).json()
    assert b["scope"]["profile"] == "factual" and b["scope"]["in_scope"], b["scope"]
    assert greedy_calls(engine) == [f"{b['id']}-greedy", f"{b['id']}-r-greedy"]
    assert b["calibration"]["target_risk"] is not None  # the routed prompt answered


def test_live_streaming_never_guesses(served: tuple) -> None:
    c, engine, _ = served
    with c.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "What is 3 + 4?"}], "stream": True,
            "stream_mode": "live"}) as r:
        assert r.status_code == 200
        body = "".join(r.iter_text())
    assert '"uncertainty"' in body
    streamed = [rid for rid, _ in engine.calls if rid.endswith("greedy")]
    assert len(streamed) == 1 and not streamed[0].endswith("-r-greedy")
