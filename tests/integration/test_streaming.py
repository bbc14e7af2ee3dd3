"""Real token streaming on the real engine, read with the real ``openai`` package.

``live``: tokens arrive while vLLM generates them (the first content chunk comes well
before the verdict), then the last chunk carries ``uncertainty``; ``guarded``: the text
comes with the verdict. A client that closes a live stream after two tokens aborts the
engine request (vLLM's generation counter stops, nothing left running).

Budget: three short requests (max_tokens 12, stage 0) and one abandoned at 2 tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_reliability import LONG, engine_goes_idle, vllm_sample

pytestmark = pytest.mark.integration

ABSTAIN_MESSAGE = "I am not confident enough to answer this question."
QUESTION = [{"role": "user", "content": "Name a primary colour."}]


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=300)


def read(stream: openai.Stream) -> tuple[list[tuple[float, str]], dict]:  # type: ignore[type-arg]
    """(arrival time, content) per chunk with content, and the final uncertainty."""
    pieces, last = [], None
    for c in stream:
        if c.choices and c.choices[0].delta.content:
            pieces.append((time.perf_counter(), c.choices[0].delta.content))
        last = c
    assert last is not None and last.choices[0].finish_reason in ("stop", "length")
    return pieces, (last.model_extra or {})["uncertainty"]


def test_live_streams_tokens_as_generated(live_server: LiveServer, api: httpx.Client) -> None:
    api.post("/v1/answer", json={"question": "Say hi.", "max_tokens": 2,
                                 "policy": {"max_stage": 0}})  # warm: the first step is slow
    t0 = time.perf_counter()
    pieces, unc = read(sdk(live_server).chat.completions.create(
        model="m", max_tokens=12, stream=True, messages=QUESTION,
        extra_body={"stream_mode": "live", "policy": {"max_stage": 0}}))
    done = time.perf_counter()
    text = "".join(p for _, p in pieces)
    expected = unc["answer"] + (f"\n\n{ABSTAIN_MESSAGE}" if unc["abstained"] else "")
    assert text == expected and unc["stage_reached"] == 0
    n = len(pieces) - unc["abstained"]  # the answer's chunks (without the verdict's message)
    assert n >= 3, pieces  # token by token, not one finished block
    # arrivals spread over the generation (a buffered stream delivers them all at once):
    # even at 50 tokens/s the answer's chunks span over (n - 1) / 50 s
    span = pieces[n - 1][0] - pieces[0][0]
    assert span >= (n - 1) / 50, [round(t - t0, 3) for t, _ in pieces]
    print("STREAM_REPORT", json.dumps({
        "mode": "live", "chunks": n, "first_token_s": round(pieces[0][0] - t0, 2),
        "chunk_span_s": round(span, 2), "total_s": round(done - t0, 2),
        "tokens": unc["signals"]["n_tokens"]}))


def test_live_abstention_and_guarded_mode(live_server: LiveServer) -> None:
    force = {"max_stage": 0, "answer_threshold": 1.0, "abstain_threshold": 1.0}
    client = sdk(live_server)
    live, unc = read(client.chat.completions.create(
        model="m", max_tokens=12, stream=True, messages=QUESTION,
        extra_body={"stream_mode": "live", "policy": force}))
    assert unc["abstained"] is True and live[-1][1].endswith(ABSTAIN_MESSAGE)
    assert "".join(p for _, p in live) == f"{unc['answer']}\n\n{ABSTAIN_MESSAGE}"
    guarded, unc = read(client.chat.completions.create(
        model="m", max_tokens=12, stream=True, messages=QUESTION,
        extra_body={"policy": force}))  # guarded is the default
    assert unc["abstained"] is True and [p for _, p in guarded] == [ABSTAIN_MESSAGE]


def test_closing_a_live_stream_aborts_the_engine_request(live_server: LiveServer,
                                                         api: httpx.Client) -> None:
    g0 = vllm_sample(api, "vllm:generation_tokens_total")
    stream = sdk(live_server).chat.completions.create(
        model="m", max_tokens=64, stream=True, messages=[{"role": "user", "content": LONG}],
        extra_body={"stream_mode": "live", "policy": {"max_stage": 1}})
    got = 0
    for c in stream:
        got += bool(c.choices and c.choices[0].delta.content)
        if got == 2:
            break
    stream.close()  # the SDK's way to end a stream early
    t_close = time.perf_counter()
    after = engine_goes_idle(api, settle_s=1.5, watch_s=2.0)
    used = after - g0
    assert got == 2 and used < 20, f"{used} tokens generated: the request was not aborted"
    assert "client disconnected" in live_server.log_tail(200)
    print("STREAM_REPORT", json.dumps({"mode": "live-disconnect", "tokens_after_open": used,
                                       "idle_check_s": round(time.perf_counter() - t_close,
                                                             1)}))


def test_the_documented_live_example_runs(live_server: LiveServer) -> None:
    """docs/api.md's live-streaming snippet, verbatim but for the server's address."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    code = next(b.removeprefix("python\n") for b in doc.split("```")[1::2]
                if '"stream_mode": "live"' in b)
    out = subprocess.run([sys.executable, "-c", code.replace("http://127.0.0.1:8000",
                                                             live_server.url)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    decision = out.stdout.split()[-2]
    assert decision in ("answer", "abstain"), out.stdout
