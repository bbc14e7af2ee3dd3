"""Remote Candor vs local Candor vs the raw vLLM OpenAI server: stage-0 latency (issue 14).

One run, three arms on the same questions at concurrency 1 and 8:

* **raw vLLM server**: ``POST /v1/chat/completions`` (greedy, top-5 logprobs, the request
  Candor's remote engine makes) straight to a ``vllm.entrypoints.openai.api_server``;
* **candor remote**: ``POST /v1/answer`` (``max_stage=0``) to Candor with
  ``CANDOR_ENGINE=remote`` in front of that same server;
* **candor local**: the same request to Candor with its in-process engine, after the server
  is stopped (never two engines at once).

Prints p50/p95 and req/s per arm and the p50 ratios. Target: remote <= 1.10x raw at p50.
Run it alone (it starts two engines, one after the other):

    .venv/bin/python benchmarks/remote_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks._common import Run, serve_in_process, start_engine, timed  # noqa: E402
from service.config import EMBEDDED_MODEL_ID, Settings  # noqa: E402
from service.engine.factory import remote_engine  # noqa: E402
from tests.integration.remote import vllm_server  # noqa: E402

QUESTIONS = [f"What is {a} + {b}?" for a, b in zip(range(1, 17), range(9, 25), strict=True)]
CONC = (1, 8)


def candor_call(client: httpx.AsyncClient, max_tokens: int):  # noqa: ANN201
    async def one(q: str) -> int:
        r = await client.post("/v1/answer", json={"question": q, "max_tokens": max_tokens,
                                                  "policy": {"max_stage": 0}})
        r.raise_for_status()
        return int(r.json()["signals"]["n_tokens"])

    return one


async def sweep(name: str, one, questions: list[str]) -> dict[int, Run]:  # noqa: ANN001
    await one(questions[0])  # warm-up, not timed
    out = {}
    for conc in CONC:
        out[conc] = await timed(f"{name} c={conc}", questions, conc, one)
        print(out[conc].line(), flush=True)
    return out


async def main(max_tokens: int, n: int) -> None:
    qs = QUESTIONS[:n]
    settings = Settings(top_logprobs=5, max_inflight=64, admission="fixed",
                        decision_log_enabled=False, engine_watchdog_s=0)
    results: dict[str, dict[int, Run]] = {}
    server = vllm_server(Path(tempfile.mkdtemp(prefix="candor-bench-")))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as raw_client:
            async def raw(q: str) -> int:
                r = await raw_client.post("/v1/chat/completions", json={
                    "model": EMBEDDED_MODEL_ID, "messages": [{"role": "user", "content": q}],
                    "max_tokens": max_tokens, "temperature": 0.0, "logprobs": True,
                    "top_logprobs": 5})
                r.raise_for_status()
                return int(r.json()["usage"]["completion_tokens"])

            results["raw vLLM server"] = await sweep("raw vLLM server", raw, qs)
        rs = settings.model_copy(update={"engine": "remote", "engine_url": [server.url]})
        engine = remote_engine(rs)
        served = await serve_in_process(rs, engine, port=8766)
        async with httpx.AsyncClient(base_url=served.url, timeout=600) as c:
            results["candor remote"] = await sweep("candor remote", candor_call(c, max_tokens), qs)
        await served.stop()
        await engine.aclose()
    finally:
        server.kill()
    local = await start_engine(settings)
    served = await serve_in_process(settings, local, port=8767)
    async with httpx.AsyncClient(base_url=served.url, timeout=600) as c:
        results["candor local"] = await sweep("candor local", candor_call(c, max_tokens), qs)
    await served.stop()
    await local.aclose()

    print("\np50 ratios:")
    for conc in CONC:
        raw_p50 = results["raw vLLM server"][conc].p50
        rem, loc = results["candor remote"][conc].p50, results["candor local"][conc].p50
        print(f"  c={conc}: remote/raw {rem / raw_p50:.3f} (target <= 1.10)  "
              f"local/raw {loc / raw_p50:.3f}  remote/local {rem / loc:.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--questions", type=int, default=16)
    a = ap.parse_args()
    asyncio.run(main(a.max_tokens, a.questions))
