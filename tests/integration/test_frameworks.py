"""Candor inside LangChain and LiteLLM, on the real engine: ``ChatCandor`` (invoke, ainvoke,
stream, the abstention as a flag and as an exception), LiteLLM's SDK and its proxy with the
fallback callback of ``examples/`` and the examples themselves, as docs/api.md shows them.

Budget: short stage-0 answers (max_tokens 8) on the session server, and one LiteLLM proxy
(about 10 s to start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from candor_client.langchain import CandorAbstained, ChatCandor
from langchain_core.runnables import RunnableLambda

from tests.integration.conftest import LiveServer
from tests.servers import free_port

pytestmark = pytest.mark.integration
# One event loop for the module's async tests: langchain_openai caches its async HTTP
# client per base URL, and a client made on one loop cannot be used on the next.
SAME_LOOP = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
ABSTAIN_MESSAGE = "I am not confident enough to answer this question."
# Confidence lies in (0, 1) for any real generation: these thresholds decide at stage 0.
ANSWER = {"max_stage": 0, "answer_threshold": 0.0, "abstain_threshold": 0.0}
ABSTAIN = {"max_stage": 0, "answer_threshold": 1.0, "abstain_threshold": 1.0}
QUESTION = "What is 3 + 4?"
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no price-list download at import
MASTER_KEY = "sk-candor-test-0123456789"


def chat_candor(server: LiveServer, policy: dict[str, Any], **kw: Any) -> ChatCandor:
    return ChatCandor(base_url=f"{server.url}/v1", policy=policy, max_tokens=8, timeout=120,
                      **kw)


# -- LangChain ---------------------------------------------------------------------------------
def test_langchain_invoke_carries_the_verdict(live_server: LiveServer) -> None:
    msg = chat_candor(live_server, ANSWER, include_response_headers=True).invoke(QUESTION)
    meta = msg.response_metadata
    assert meta["abstained"] is False and meta["uncertainty"]["decision"] == "answer"
    assert msg.content == meta["uncertainty"]["answer"]
    assert msg.additional_kwargs.get("refusal") is None
    headers = meta["headers"]
    assert headers["candor-decision"] == "answer"
    assert headers["candor-id"] == meta["uncertainty"]["id"] == meta["id"]


@SAME_LOOP
async def test_langchain_ainvoke_marks_the_abstention(live_server: LiveServer) -> None:
    msg = await chat_candor(live_server, ABSTAIN).ainvoke(QUESTION)
    assert msg.response_metadata["abstained"] is True
    assert msg.content == msg.additional_kwargs["refusal"] == ABSTAIN_MESSAGE
    assert msg.response_metadata["uncertainty"]["reason"] == "low_confidence"


@pytest.mark.parametrize("mode, policy", [("live", ANSWER), ("guarded", ABSTAIN)])
def test_langchain_stream_ends_with_the_verdict(live_server: LiveServer, mode: str,
                                                policy: dict[str, Any]) -> None:
    chunks = list(chat_candor(live_server, policy, stream_mode=mode).stream(QUESTION))
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    unc = merged.response_metadata["uncertainty"]
    assert merged.response_metadata["abstained"] is unc["abstained"] is (policy is ABSTAIN)
    assert merged.content == (ABSTAIN_MESSAGE if unc["abstained"] else unc["answer"])
    assert not any("uncertainty" in c.response_metadata for c in chunks[:-2])  # at the end


@SAME_LOOP
async def test_langchain_abstention_as_an_exception_feeds_a_fallback(
        live_server: LiveServer) -> None:
    llm = chat_candor(live_server, ABSTAIN, raise_on_abstain=True)
    with pytest.raises(CandorAbstained) as err:
        llm.invoke(QUESTION)
    assert err.value.uncertainty["abstained"] is True and err.value.message == ABSTAIN_MESSAGE
    chain = llm.with_fallbacks([RunnableLambda(lambda _: "escalated")],
                               exceptions_to_handle=(CandorAbstained,))
    assert await chain.ainvoke(QUESTION) == "escalated"


# -- LiteLLM SDK -------------------------------------------------------------------------------
def test_litellm_sdk_keeps_uncertainty_refusal_and_headers(live_server: LiveServer,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    import litellm

    common: dict[str, Any] = {"model": "openai/candor", "api_base": f"{live_server.url}/v1",
                              "api_key": "unused", "max_tokens": 8,
                              "messages": [{"role": "user", "content": QUESTION}]}
    out = litellm.completion(**common, extra_body={"policy": ABSTAIN})
    assert out.uncertainty["abstained"] is True
    assert out.choices[0].message.refusal == out.choices[0].message.content == ABSTAIN_MESSAGE
    headers = out._hidden_params["additional_headers"]
    assert headers["llm_provider-candor-decision"] == "abstain"
    assert headers["llm_provider-candor-id"] == out.uncertainty["id"]
    chunks = list(litellm.completion(**common, stream=True, extra_body={"policy": ANSWER}))
    verdicts = [c.uncertainty for c in chunks if getattr(c, "uncertainty", None)]
    assert len(verdicts) == 1 and verdicts[0]["decision"] == "answer"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == verdicts[0]["answer"]


# -- LiteLLM proxy with the fallback callback --------------------------------------------------
@pytest.fixture
def litellm_proxy(live_server: LiveServer, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``examples/litellm_proxy.yaml`` as docs/api.md starts it, in front of the session
    server; yields its URL and the review queue the callback writes."""
    port, queue = free_port(), tmp_path / "review.jsonl"
    env = {**os.environ, **OFFLINE, "CANDOR_API_BASE": f"{live_server.url}/v1",
           "LITELLM_MASTER_KEY": MASTER_KEY, "CANDOR_REVIEW_QUEUE": str(queue)}
    log = (tmp_path / "proxy.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "litellm"), "--config",
                             "examples/litellm_proxy.yaml", "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            tail = (tmp_path / "proxy.log").read_text()[-3000:]
            pytest.fail(f"the LiteLLM proxy did not start: {tail}")
        yield url, queue
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_litellm_proxy_keeps_uncertainty_and_routes_abstentions(
        litellm_proxy: tuple[str, Path]) -> None:
    url, queue = litellm_proxy
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, timeout=120)
    ask: dict[str, Any] = {"model": "candor", "max_tokens": 8,
                           "messages": [{"role": "user", "content": QUESTION}]}
    raw = sdk.chat.completions.with_raw_response.create(**ask, extra_body={"policy": ANSWER})
    answered = raw.parse()
    unc = (answered.model_extra or {})["uncertainty"]
    assert unc["decision"] == "answer" and answered.choices[0].message.content == unc["answer"]
    assert raw.headers["llm_provider-candor-decision"] == "answer"
    assert not queue.exists()
    escalated = sdk.chat.completions.create(**ask, extra_body={"policy": ABSTAIN})
    extra = escalated.model_extra or {}
    assert extra["candor_fallback"] == "escalation" and extra["uncertainty"]["abstained"] is True
    assert escalated.choices[0].message.content.startswith("A specialist will answer")
    filed = [json.loads(line) for line in queue.read_text().splitlines()]
    assert len(filed) == 1 and filed[0]["candor"]["id"] == extra["uncertainty"]["id"]
    stream = sdk.chat.completions.create(**ask, stream=True, extra_body={"policy": ANSWER})
    verdicts = [(c.model_extra or {}).get("uncertainty") for c in stream]
    assert [v["decision"] for v in verdicts if v] == ["answer"]


# -- the examples, verbatim --------------------------------------------------------------------
def run_example(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_framework_examples_run(live_server: LiveServer) -> None:
    flags = ("--url", live_server.url, "--max-stage", "0", "--max-tokens", "8")
    lc = run_example("examples/langchain_chat.py", *flags, "--stream", QUESTION)
    assert lc.returncode in (0, 3), lc.stderr
    assert lc.stdout.splitlines()[-1].startswith("confidence="), lc.stdout
    fallback = run_example("examples/langchain_chat.py", *flags, "--fallback",
                           "What is 4821 x 3907?")
    assert fallback.returncode in (0, 3), fallback.stderr
    if fallback.returncode == 3:  # abstained: the chain handed the question on
        assert "[to human review] What is 4821 x 3907?" in fallback.stderr
        assert fallback.stdout.startswith("A specialist will answer")
    sdk = run_example("examples/litellm_sdk.py", *flags, QUESTION, env=OFFLINE)
    assert sdk.returncode in (0, 3), sdk.stderr
    verdict = sdk.stdout.splitlines()[-1]
    assert verdict.startswith("confidence=") and verdict.endswith(
        "header=" + ("abstain" if sdk.returncode == 3 else "answer")), sdk.stdout
