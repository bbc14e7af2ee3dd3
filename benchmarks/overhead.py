"""Overhead of Candor's stage 0 over raw vLLM greedy generation (issue 3), and of the
scope test over stage 0 without it (issue 20).

One process, one engine: raw ``AsyncLLM.generate`` (the same prompt Candor sends, math
instruction included, the same SamplingParams: greedy, top-5 logprobs) vs
``POST /v1/answer`` under the default admission with
``max_stage=0`` through uvicorn on loopback, on the same 32 questions, at
concurrency 1 and 8: once on a server without calibration (no scope test) and once
on one serving the shipped profiles with the embedding model loaded (every request
embedded and tested against each profile's scope). Each triple is run back to back
and the whole sweep twice (ABCABC) so drift hits every side. Prints p50/p95
latency, throughput and the ratios. Targets: p50 ratio <= 1.05 and throughput ratio
>= 0.95 against raw; the scope test adds <= 5 % to the p50.

    .venv/bin/python benchmarks/overhead.py [--max-tokens 24] [--rounds 2] [--questions 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks._common import Run, serve_in_process, start_engine, timed  # noqa: E402
from service.cascade.providers import with_instruction  # noqa: E402
from service.config import Settings  # noqa: E402
from service.signals.normalize import resolve_task  # noqa: E402

QUESTIONS = [f"What is {a} + {b}?" for a, b in zip(range(1, 17), range(9, 1, -1), strict=False)]
QUESTIONS += [f"What is {a} * {b}?" for a, b in zip(range(2, 18), range(3, 19), strict=False)]
QUESTIONS = QUESTIONS[:32]


async def main(max_tokens: int, rounds: int, n_questions: int) -> None:
    questions = QUESTIONS[:n_questions]
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    from service.signals.embedder import Embedder

    settings = Settings(top_logprobs=5, calibration="none")  # the default admission
    engine = await start_engine(settings)
    served = await serve_in_process(settings, engine)
    scoped = await serve_in_process(settings.model_copy(update={"calibration": "builtin"}),
                                    engine, Embedder(settings.embedding_model), port=8766)
    sp = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens, logprobs=5,
                        output_kind=RequestOutputKind.FINAL_ONLY)
    counter = iter(range(10**9))

    async def raw(q: str) -> int:
        # the prompt Candor sends (the math instruction appended), tokenized afresh each
        # call (the engine caches prompt ids; a raw caller has none)
        prompt = with_instruction(q, resolve_task("auto", q), settings.math_instruction)
        ids = list(engine._encode_uncached((("user", prompt),)))
        final = None
        async for out in engine._llm.generate({"prompt_token_ids": ids}, sp,
                                              f"raw-{next(counter)}"):
            final = out
        assert final is not None
        return len(final.outputs[0].token_ids)

    async with httpx.AsyncClient(base_url=served.url, timeout=600) as client, \
            httpx.AsyncClient(base_url=scoped.url, timeout=600) as client_scoped:
        async def ask(c: httpx.AsyncClient, q: str) -> int:
            r = await c.post("/v1/answer", json={
                "question": q, "max_tokens": max_tokens, "policy": {"max_stage": 0}})
            r.raise_for_status()
            return int(r.json()["signals"]["n_tokens"])

        async def candor(q: str) -> int:
            return await ask(client, q)

        async def candor_scope(q: str) -> int:
            return await ask(client_scoped, q)

        await raw(QUESTIONS[0])  # warm-up, not timed
        await candor(QUESTIONS[0])
        await candor_scope(QUESTIONS[0])
        results: dict[tuple[str, int], list[Run]] = {}
        for rnd in range(rounds):
            for conc in (1, 8):
                for name, fn in (("raw vLLM", raw), ("candor stage 0", candor),
                                 ("candor + scope", candor_scope)):
                    run = await timed(f"{name} c={conc} r{rnd}", questions, conc, fn)
                    print(run.line(), flush=True)
                    results.setdefault((name, conc), []).append(run)
    await served.stop()
    await scoped.stop()
    await engine.aclose()

    for name, base, target in (("candor / raw", "raw vLLM", "candor stage 0"),
                               ("candor + scope / candor", "candor stage 0", "candor + scope")):
        print(f"\nratios ({name}), pooled over rounds:")
        for conc in (1, 8):
            print(f"  c={conc}: " + ratio_line(results[(base, conc)], results[(target, conc)]))


def ratio_line(base: list[Run], other: list[Run]) -> str:
    b_lat = sorted(x for r in base for x in r.latencies)
    o_lat = sorted(x for r in other for x in r.latencies)
    b_rps = sum(len(r.latencies) for r in base) / sum(r.wall for r in base)
    o_rps = sum(len(r.latencies) for r in other) / sum(r.wall for r in other)
    p95i = round(0.95 * (len(b_lat) - 1))
    return (f"p50 ratio {o_lat[len(o_lat) // 2] / b_lat[len(b_lat) // 2]:.3f}  "
            f"p95 ratio {o_lat[p95i] / b_lat[p95i]:.3f}  throughput ratio "
            f"{o_rps / b_rps:.3f}  [{b_rps:.3f} vs {o_rps:.3f} req/s]")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS),
                    help="how many of the questions each run asks (a quick check: 8)")
    a = ap.parse_args()
    asyncio.run(main(a.max_tokens, a.rounds, max(1, a.questions)))
