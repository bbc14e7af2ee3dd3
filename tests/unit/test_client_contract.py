"""candor-client and the OpenAI SDK against the real app (fake engine): the client's typed
models parse what the server really sends, and API keys work the way both clients send them.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from candor_client import BadRequestError, CandorClient, UnauthorizedError

from tests.fakes import FakeEngine, Script
from tests.unit.test_api import make_client

# TestClient warns about the per-request timeout every real client sends; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout'")


def engine() -> FakeEngine:
    return FakeEngine(scripts={
        "sure": Script(greedy="Paris", logprob=-0.01),
        "doubt": Script(greedy="maybe 7", logprob=-1.5, samples=["7", "8", "7", "9"]),
    })


def test_client_parses_every_endpoint(tmp_path: Path) -> None:
    with make_client(engine(), decision_log=tmp_path / "d.sqlite") as app:
        c = CandorClient("http://testserver", http_client=app, max_retries=0)
        sure = c.answer("sure: capital of France?", return_logprobs=True)
        doubt = c.answer("doubt: 3+4?", return_samples=True)
        sc = c.score("sure: capital?", "Paris", samples=["Paris", "Paris", "Lyon"])
        fb = c.feedback(sure.id, True)
        cal = c.calibration()
        h = c.health()
        with pytest.raises(BadRequestError) as info:
            c.answer("sure: x", max_tokens=10**6)
    assert sure.decision == "answer" and sure.logprobs and sure.signals.mean_nll is not None
    assert doubt.abstained and doubt.samples and doubt.samples[0].normalized == "7"
    assert sc.signals.consistency is not None and sc.confidence is not None
    assert fb.id == sure.id and fb.stored
    assert cal.calibrated is False and h.ready and h.model == "SmolLM2-135M-Instruct"
    assert info.value.status_code == 400 and info.value.param == "max_tokens"


def test_api_keys_for_candor_client_and_openai_sdk() -> None:
    with make_client(engine(), api_keys="k-1,k-2") as app:
        with pytest.raises(UnauthorizedError):
            CandorClient("http://testserver", http_client=app, api_key="wrong").answer("sure")
        ok = CandorClient("http://testserver", http_client=app, api_key="k-2").answer("sure: x")
        assert ok.answer == "Paris"
        bad = openai.OpenAI(base_url="http://testserver/v1", api_key="nope", http_client=app)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        good = openai.OpenAI(base_url="http://testserver/v1", api_key="k-1", http_client=app)
        out = good.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "sure: capital?"}])
        assert out.choices[0].message.content == "Paris"
