"""Candor in remote mode (CANDOR_ENGINE=remote) in front of a real vLLM OpenAI server.

Runs last in the session (the ``remote_engine`` marker; tests/integration/conftest.py): the
local answers are taken from the session ``live_server`` first, then the vLLM server starts,
so two engines never generate at the same time on CI's two cores. Questions are short
(max_tokens <= 12).

Tolerance: the greedy answer text and its token count must be identical; the stage-0
signals (mean_nll, token_entropy, min_token_prob) equal within 0.02 absolute (same vLLM
kernels, bf16, one sequence at a time; the server decodes tokens the same way).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from service.config import EMBEDDED_MODEL_ID
from tests.integration import replicas
from tests.integration.conftest import LiveServer, start_server, stop_server
from tests.integration.remote import GENERATED, VllmServer, metric, vllm_server
from tests.integration.replicas import labelled
from tests.pg import postgres_cluster

pytestmark = [pytest.mark.integration, pytest.mark.remote_engine]

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?",
             "What color is the sky on a clear day?"]
STAGE0 = ("mean_nll", "token_entropy", "min_token_prob")
TOL = 0.02


def ask(c: httpx.Client, q: str, **kw: object) -> httpx.Response:
    body = {"question": q, "max_tokens": 12, "policy": {"max_stage": 0}, **kw}
    return c.post("/v1/answer", json=body)


@pytest.fixture(scope="module")
def local_answers(live_server: LiveServer) -> dict[str, dict]:
    with live_server.client() as c:
        out = {}
        for q in QUESTIONS:
            r = ask(c, q)
            assert r.status_code == 200, r.text
            out[q] = r.json()
        return out


@pytest.fixture(scope="module")
def engine(local_answers: dict[str, dict],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    server = vllm_server(tmp_path_factory.mktemp("vllm"))
    yield server
    server.kill()


MAX_NEW = 1024  # the disconnect test's answer: see there


@pytest.fixture(scope="module")
def remote(engine: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("candor-remote"),
                          {"CANDOR_ENGINE": "remote", "CANDOR_ENGINE_URL": engine.url,
                           "CANDOR_ADMISSION": "queue", "CANDOR_MAX_TOKENS_LIMIT": str(MAX_NEW),
                           "CANDOR_ENGINE_CONNECT_TIMEOUT_S": "2", "CANDOR_ENGINE_ATTEMPTS": "2"})
    yield server
    stop_server(server)


def test_same_greedy_answer_and_stage0_signals_as_local(remote: LiveServer,
                                                        local_answers: dict[str, dict]) -> None:
    with remote.client() as c:
        for q, loc in local_answers.items():
            r = ask(c, q)
            assert r.status_code == 200, r.text
            rem = r.json()
            assert rem["answer"] == loc["answer"], q
            assert rem["signals"]["n_tokens"] == loc["signals"]["n_tokens"]
            assert rem["usage"]["prompt_tokens"] == loc["usage"]["prompt_tokens"]
            for key in STAGE0:
                assert rem["signals"][key] == pytest.approx(loc["signals"][key], abs=TOL), key


def test_samples_arrive(remote: LiveServer) -> None:
    with remote.client() as c:
        r = ask(c, QUESTIONS[0], return_samples=True,
                policy={"max_stage": 1, "run_all": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stage_reached"] >= 1 and len(body["samples"]) == 10
    assert body["signals"]["consistency"] is not None


async def _generated(raw: httpx.AsyncClient) -> float | None:
    """vLLM's token counter on a kept-alive connection; None when the poll timed out."""
    try:
        return metric((await raw.get("/metrics")).text, GENERATED)
    except httpx.TimeoutException:
        return None


async def test_client_disconnect_aborts_the_engine_request(remote: LiveServer,
                                                           engine: VllmServer) -> None:
    """A client that goes away mid-generation: Candor closes its HTTP request to vLLM and
    vLLM aborts it. Seen in vLLM's own counters: the request stops generating (token
    growth, not the running gauge, tells that it started: the gauge is sampled per engine
    step and a poll can miss it), and after one more engine step nothing runs.

    The greedy story runs to its length limit (1,024 tokens measured in process, without
    stopping), and ``MAX_NEW`` tokens take 36 s at the fastest CPU seen (28 tok/s), so the
    cancel lands mid-generation on any machine. Twice a shorter window was too short: 64
    tokens finished before the poll saw them start (2.3 s); 256 tokens finished (10.7 s on
    CI) while a poll on a fresh connection got no answer, so the poll now keeps its
    connection alive and a poll that times out is just retried."""
    async with httpx.AsyncClient(base_url=engine.url, timeout=2) as raw, \
            httpx.AsyncClient(base_url=remote.url, timeout=300) as c:
        before = await asyncio.to_thread(engine.generated)
        task = asyncio.create_task(c.post("/v1/answer", json={
            "question": "Write a long story about a dragon.", "max_tokens": MAX_NEW,
            "policy": {"max_stage": 0}}))
        started = 0.0
        deadline = asyncio.get_running_loop().time() + 60  # a cold prefill on 2 busy cores
        while not task.done() and asyncio.get_running_loop().time() < deadline:
            now = await _generated(raw)
            started = started if now is None else now - before
            if started >= 2:
                break
            await asyncio.sleep(0.02)
        if task.done():
            resp = task.result()
            pytest.fail(f"the request ended before it could be cancelled: {resp.status_code} "
                        f"{resp.text[:300]}\ncandor:\n{remote.log_tail(20)}\n"
                        f"vllm:\n{engine.tail(20)}")
        assert started >= 2, (f"vLLM generated nothing for the request\ncandor:\n"
                              f"{remote.log_tail(20)}\nvllm:\n{engine.tail(20)}")
        task.cancel()  # closes the connection mid-request
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(1.0)
    settled = await asyncio.to_thread(engine.generated) - before
    async with httpx.AsyncClient(base_url=engine.url, timeout=60) as raw:  # one engine step
        r = await raw.post("/v1/completions", json={"model": EMBEDDED_MODEL_ID,
                                                    "prompt": "Hi", "max_tokens": 1})
        assert r.status_code == 200, r.text
    assert await asyncio.to_thread(engine.running) == 0, "the request still runs in vLLM"
    assert settled < MAX_NEW // 2, f"{settled:.0f} tokens generated: the abort did not stop it"
    print(f"\nREMOTE_DISCONNECT tokens before cancel {started:.0f}, in all {settled:.0f} "
          f"of {MAX_NEW}")


async def test_stream_matches_generate_on_the_real_server(engine: VllmServer) -> None:
    from service.engine.openai_remote import OpenAIRemoteEngine
    from service.engine.protocol import ChatMessage, GenParams

    eng = OpenAIRemoteEngine([engine.url], "SmolLM2-135M-Instruct")
    msgs = [ChatMessage("user", QUESTIONS[0])]
    params = GenParams(max_tokens=12, top_logprobs=5)
    try:
        gen = await eng.generate(msgs, params, "gen-1")
        deltas = [d async for d in eng.stream(msgs, params, "stream-1")]
    finally:
        await eng.aclose()
    final = deltas[-1].final
    assert final is not None and all(d.final is None for d in deltas[:-1])
    assert "".join(d.text for d in deltas) == final.text == gen.completions[0].text
    assert final.n_tokens == gen.completions[0].n_tokens == len(final.tokens)
    for a, b in zip(final.tokens, gen.completions[0].tokens, strict=True):
        assert a.token == b.token and a.logprob == pytest.approx(b.logprob, abs=TOL)
    assert deltas[-1].prompt_tokens == gen.prompt_tokens > 0


def test_two_replicas_agree_and_a_drained_one_loses_nothing(
        engine: VllmServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 25: replicas on one PostgreSQL log report the same promises within one refresh
    interval; SIGTERM to one mid-load loses no admitted request (tests/integration/
    replicas.py). Replica A runs 2 engine sequences, so part of the load waits in its
    queue when the signal comes."""
    with postgres_cluster() as pg_url:
        tmp = tmp_path_factory.mktemp("replicas")
        with ThreadPoolExecutor(2) as pool:  # both start at once (each loads the embedder)
            fa = pool.submit(start_server, tmp, replicas.env(
                engine.url, pg_url, CANDOR_ENGINE_SEQUENCES="2", CANDOR_DRAIN_TIMEOUT_S="60"),
                replicas.PINNED)
            fb = pool.submit(start_server, tmp, replicas.env(engine.url, pg_url),
                             replicas.PINNED)
            a, b = fa.result(), fb.result()
        try:
            before, _ = replicas.promises(b)
            acked = replicas.ask_and_label(a, 8)
            view_b, lag = replicas.refreshed_after(b, acked, replicas.REFRESH_S + 5)
            view_a, _ = replicas.refreshed_after(a, acked, replicas.REFRESH_S + 5)
            assert labelled(view_b) - labelled(before) > 0, (before, view_b)
            assert view_b == view_a  # one verdict per promise, whichever replica says it
            report = replicas.drain_under_load(a, b, n=16, clients=8, after_s=1.5)
            ids = [rid for _, status, rid in report["outcomes"] if status == 200]
            with psycopg.connect(pg_url) as conn:
                logged = {r[0] for r in conn.execute(
                    "SELECT id FROM decisions WHERE id = ANY(%s)", (ids,))}
        finally:
            stop_server(b)
            stop_server(a)
    where = Counter(w for w, _, _ in report["outcomes"])
    print("\nREPLICAS_REPORT " + json.dumps({
        "labelled_seen_by_b": labelled(view_b) - labelled(before), "b_lag_s": round(lag, 2),
        "refresh_s": replicas.REFRESH_S, "drain": dict(where), "a_exit": report["exit"],
        "a_exit_after_sigterm_s": report["exit_s"]}))
    assert [s for _, s, _ in report["outcomes"]] == [200] * 16, report  # none lost
    assert where["a"] > 0 and where["b_after_draining"] > 0, where  # some finished on A
    assert report["exit"] == 0
    # within one refresh interval (plus the read, on two busy cores) of the last label
    assert lag < replicas.REFRESH_S + 3, lag
    assert logged == set(ids), set(ids) - logged  # every answer's row is in the shared log


def test_engine_killed_503_then_recovers_without_restart(remote: LiveServer,
                                                         engine: VllmServer) -> None:
    engine.kill()
    with remote.client(timeout=60) as c:
        r = ask(c, QUESTIONS[1])
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["type"] == "engine_unavailable" and "unreachable" in err["message"]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "health" in ready.json()["error"]["message"]
        assert c.get("/healthz").status_code == 200
        engine.start()  # same port; Candor keeps running
        assert c.get("/readyz").status_code == 200
        r = ask(c, QUESTIONS[1])
        assert r.status_code == 200, r.text
    assert remote.proc.poll() is None
