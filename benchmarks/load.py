"""The engine queue under load on the real engine (issue 25): the three loads of
``tests/unit/test_admission_load.py``, with one vLLM engine in this process.

Candor (the default admission: ``CANDOR_ADMISSION=queue``, ``CANDOR_ENGINE_SEQUENCES``
32, ``CANDOR_QUEUE_MAX`` 64, no decision log) is served on loopback next to raw
``AsyncLLM.generate`` on the same engine (the same prompt Candor sends, math instruction
included; greedy, top-5 logprobs). Only ratios within one run mean anything.

1. Below capacity: 8 and 16 closed-loop clients, stage 0, ``max_tokens`` 8: raw vLLM,
   the OpenAI SDK against ``/v1/chat/completions`` with its default retries (its
   ``http_client``'s event hook counts every 429 it received), and httpx without retries
   against ``/v1/answer``. Targets: 0 x 429, 0 x 5xx, throughput >= 0.9x raw.
2. Mixed: 4 closed-loop clients, stage 0 and stage 1 (``run_all``), ``max_tokens`` 8 and
   24; the queue's state sampled every 0.5 s. Target: 0 x 429.
3. Overload: the same mix by one client (its p99: the unloaded p99), then evenly spaced
   arrivals at 4x phase 2's accepted rate, each with ``budget_ms`` = 2x that p99.
   Targets: every rejection a 429 with ``Retry-After``, none a 5xx or dropped connection,
   sent = ok + 429, accepted p99 <= 2x the unloaded p99.

Prints one report per phase and, last, the whole report as one JSON line.

    .venv/bin/python benchmarks/load.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks._common import serve_in_process, start_engine  # noqa: E402
from benchmarks._load import Tally, Trace, closed_loop, open_loop  # noqa: E402
from service.cascade.providers import with_instruction  # noqa: E402
from service.config import Settings  # noqa: E402
from service.signals.normalize import resolve_task  # noqa: E402

QUESTIONS = [f"What is {a} + {b}?" for a in range(2, 10) for b in range(3, 11)]
MIX = [(0, 8), (1, 8), (0, 24), (1, 24)]  # (max_stage, max_tokens), in turn
SIZES = {  # requests per client below capacity and mixed, unloaded, overload seconds
    "quick": {"per_client": 1, "mixed_per_client": 2, "unloaded": 4, "overload_s": 12.0},
    "default": {"per_client": 6, "mixed_per_client": 8, "unloaded": 12, "overload_s": 60.0},
}


def body(i: int, budget_ms: int | None = None) -> dict[str, Any]:
    stage, max_tokens = MIX[i % len(MIX)]
    policy: dict[str, Any] = {"max_stage": stage, **({"run_all": True} if stage else {})}
    if budget_ms is not None:
        policy["budget_ms"] = budget_ms
    return {"question": QUESTIONS[i % len(QUESTIONS)], "max_tokens": max_tokens,
            "policy": policy}


async def below_capacity(engine: Any, settings: Settings, url: str,
                         per_client: int) -> list[dict[str, Any]]:
    """Phase 1: raw vLLM, the OpenAI SDK and httpx at 8 and 16 clients, stage 0."""
    rows = []
    for conc in (8, 16):
        sides = await three_sides(engine, settings, url, conc, per_client)
        raw, sdk, plain = sides
        ratios = {"sdk_over_raw": round(sdk.rps / raw.rps, 3),
                  "httpx_over_raw": round(plain.rps / raw.rps, 3)}
        print(f"  c={conc} throughput ratios: {ratios}", flush=True)
        rows.append({"clients": conc, "sides": [t.summary() for t in sides], **ratios})
    return rows


async def three_sides(engine: Any, settings: Settings, url: str, conc: int,
                      per_client: int) -> tuple[Tally, Tally, Tally]:
    """Raw vLLM, then the OpenAI SDK, then httpx, each ``conc`` clients in a closed loop."""
    import openai
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    sp = SamplingParams(n=1, temperature=0.0, max_tokens=8, logprobs=settings.top_logprobs,
                        output_kind=RequestOutputKind.FINAL_ONLY)
    raw, sdk, plain = (Tally(f"raw vLLM c={conc}"), Tally(f"openai SDK c={conc}"),
                       Tally(f"httpx /v1/answer c={conc}"))

    async def one_raw(i: int) -> None:
        q = QUESTIONS[i % len(QUESTIONS)]
        prompt = with_instruction(q, resolve_task("auto", q), settings.math_instruction)
        ids = list(engine._encode_uncached((("user", prompt),)))
        t0 = time.perf_counter()
        raw.sent += 1
        async for _ in engine._llm.generate({"prompt_token_ids": ids}, sp, f"raw-{conc}-{i}"):
            pass
        raw.ok.append(time.perf_counter() - t0)

    async def hook(r: httpx.Response) -> None:  # every attempt, the retried ones included
        sdk.response(r)

    async with httpx.AsyncClient(timeout=600, event_hooks={"response": [hook]}) as h, \
            httpx.AsyncClient(base_url=url, timeout=600) as c:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="none", http_client=h)

        async def one_sdk(i: int) -> None:
            sdk.sent += 1
            t0 = time.perf_counter()
            try:
                await client.chat.completions.create(
                    model="candor", max_tokens=8, extra_body={"policy": {"max_stage": 0}},
                    messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
            except openai.APIStatusError:
                sdk.failed += 1
                return
            except openai.APIConnectionError as exc:
                sdk.drop(exc)
                return
            sdk.ok.append(time.perf_counter() - t0)

        async def one_plain(i: int) -> None:
            await plain.post(c, "/v1/answer", {**body(i * len(MIX)), "max_tokens": 8})

        for tally, one in ((raw, one_raw), (sdk, one_sdk), (plain, one_plain)):
            await closed_loop(tally, conc, per_client, one)
            print(tally.line(), flush=True)
    return raw, sdk, plain


async def mixed(c: httpx.AsyncClient, trace: Trace, per_client: int) -> dict[str, Any]:
    """Phase 2: 4 clients, the stage-0/stage-1 mix, the queue's state traced."""
    tally = Tally("mixed, 4 clients")
    trace.rows.clear()
    trace.single.clear()
    sampler = asyncio.create_task(trace.run())
    await closed_loop(tally, 4, per_client, lambda i: tally.post(c, "/v1/answer", body(i)))
    sampler.cancel()
    print(tally.line(), flush=True)
    print("  queue every 0.5 s (r running, w waiting sequences, p pending requests, "
          "t total tokens/s once saturated):")
    print("\n".join(trace.lines()), flush=True)
    return {**tally.summary(), "trace": trace.summary()}


async def overload(c: httpx.AsyncClient, trace: Trace, accepted_rps: float,
                   sizes: dict[str, Any]) -> dict[str, Any]:
    """Phase 3: the unloaded p99 of the mix, then 4x the accepted rate, open loop."""
    unloaded = Tally("unloaded, 1 client")
    await closed_loop(unloaded, 1, sizes["unloaded"],
                      lambda i: unloaded.post(c, "/v1/answer", body(i)))
    print(unloaded.line(), flush=True)
    p99_ms = round(unloaded.pct(0.99) * 1000)
    rate = 4 * accepted_rps
    sent = max(8, round(rate * sizes["overload_s"]))
    tally = Tally(f"open loop {rate:.2f}/s")
    trace.rows.clear()
    trace.single.clear()
    sampler = asyncio.create_task(trace.run())
    await open_loop(tally, rate, sent,
                    lambda i: tally.post(c, "/v1/answer", body(i, budget_ms=2 * p99_ms)))
    sampler.cancel()
    print(tally.line(), flush=True)
    rep = {**tally.summary(), "unloaded": unloaded.summary(), "unloaded_p99_ms": p99_ms,
           "budget_ms": 2 * p99_ms, "rate_per_s": round(rate, 3), "trace": trace.summary(),
           "accepted_p99_over_unloaded": round(tally.pct(0.99) * 1000 / p99_ms, 3),
           "in_time_p99_over_unloaded": round(tally.pct(0.99, tally.in_time) * 1000 / p99_ms,
                                              3)}
    print(f"  budget {2 * p99_ms} ms (2x the unloaded p99); accepted p99 / unloaded p99 = "
          f"{rep['accepted_p99_over_unloaded']} ({tally.reasons['deadline']} abstained at "
          f"their deadline; p99 without them {rep['p99_ms_in_time']} ms)", flush=True)
    print(f"  5xx and deadline abstentions: {rep['missed']}\n  queue: {rep['trace']}",
          flush=True)
    return rep


async def main(quick: bool) -> dict[str, Any]:
    sizes = SIZES["quick" if quick else "default"]
    settings = Settings(top_logprobs=5, calibration="none", decision_log_enabled=False)
    engine = await start_engine(settings)
    served = await serve_in_process(settings, engine)
    state = served.server.config.app.state.candor  # type: ignore[attr-defined]
    trace = Trace(state.queue)
    report: dict[str, Any] = {"quick": quick, "sizes": sizes,
                              "engine_sequences": settings.engine_sequences,
                              "queue_max": settings.queue_max, "samples_n": settings.samples_n}
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=served.url, timeout=600) as c:
        await c.post("/v1/answer", json=body(0))  # warm-up, not counted
        await c.post("/v1/answer", json=body(1))
        print("phase 1: below capacity (stage 0, max_tokens 8)", flush=True)
        report["below"] = await below_capacity(engine, settings, served.url,
                                               sizes["per_client"])
        print("phase 2: mixed (stage 0 and 1, max_tokens 8 and 24)", flush=True)
        report["mixed"] = await mixed(c, trace, sizes["mixed_per_client"])
        print("phase 3: overload at 4x the mixed phase's accepted rate", flush=True)
        report["overload"] = await overload(c, trace, report["mixed"]["rps"], sizes)
    q = state.queue
    report["left"] = [q.running, q.waiting, q.pending, state.inflight]
    report["seconds_after_engine_up"] = round(time.perf_counter() - t0, 1)
    await served.stop()
    await engine.aclose()
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small phases (a CI test): well under 2 minutes once the engine is up")
    print(json.dumps(asyncio.run(main(ap.parse_args().quick))), flush=True)
