"""Overhead of Candor's stage 0 over raw vLLM greedy generation (issue 3).

One process, one engine: raw ``AsyncLLM.generate`` (same token ids, same
SamplingParams: greedy, top-5 logprobs) vs ``POST /v1/answer`` with
``max_stage=0`` through uvicorn on loopback, on the same 32 questions, at
concurrency 1 and 8. Each pair is run back to back, raw first then Candor, and
the whole sweep twice (ABAB) so drift hits both sides. Prints p50/p95 latency,
throughput and the Candor/raw ratios. Targets: p50 ratio <= 1.05, throughput
ratio >= 0.95.

    .venv/bin/python benchmarks/overhead.py [--max-tokens 24] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks._common import Run, serve_in_process, start_engine, timed  # noqa: E402
from service.config import Settings  # noqa: E402

QUESTIONS = [f"What is {a} + {b}?" for a, b in zip(range(1, 17), range(9, 1, -1), strict=False)]
QUESTIONS += [f"What is {a} * {b}?" for a, b in zip(range(2, 18), range(3, 19), strict=False)]
QUESTIONS = QUESTIONS[:32]


async def main(max_tokens: int, rounds: int) -> None:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    settings = Settings(top_logprobs=5, max_inflight=64)
    engine = await start_engine(settings)
    served = await serve_in_process(settings, engine)
    sp = SamplingParams(n=1, temperature=0.0, max_tokens=max_tokens, logprobs=5,
                        output_kind=RequestOutputKind.FINAL_ONLY)
    counter = iter(range(10**9))

    async def raw(q: str) -> int:
        # tokenized afresh each call (the engine caches prompt ids; a raw caller has none)
        ids = list(engine._encode_uncached((("user", q),)))
        final = None
        async for out in engine._llm.generate({"prompt_token_ids": ids}, sp,
                                              f"raw-{next(counter)}"):
            final = out
        assert final is not None
        return len(final.outputs[0].token_ids)

    async with httpx.AsyncClient(base_url=served.url, timeout=600) as client:
        async def candor(q: str) -> int:
            r = await client.post("/v1/answer", json={
                "question": q, "max_tokens": max_tokens, "policy": {"max_stage": 0}})
            r.raise_for_status()
            return int(r.json()["signals"]["n_tokens"])

        await raw(QUESTIONS[0])  # warm-up, not timed
        await candor(QUESTIONS[0])
        results: dict[tuple[str, int], list[Run]] = {}
        for rnd in range(rounds):
            for conc in (1, 8):
                for name, fn in (("raw vLLM", raw), ("candor stage 0", candor)):
                    run = await timed(f"{name} c={conc} r{rnd}", QUESTIONS, conc, fn)
                    print(run.line(), flush=True)
                    results.setdefault((name, conc), []).append(run)
    await served.stop()
    await engine.aclose()

    print("\nratios (candor / raw), pooled over rounds:")
    for conc in (1, 8):
        raw_lat = sorted(x for r in results[("raw vLLM", conc)] for x in r.latencies)
        can_lat = sorted(x for r in results[("candor stage 0", conc)] for x in r.latencies)
        raw_rps = sum(len(r.latencies) for r in results[("raw vLLM", conc)]) / sum(
            r.wall for r in results[("raw vLLM", conc)])
        can_rps = sum(len(r.latencies) for r in results[("candor stage 0", conc)]) / sum(
            r.wall for r in results[("candor stage 0", conc)])
        p50 = can_lat[len(can_lat) // 2] / raw_lat[len(raw_lat) // 2]
        p95i = round(0.95 * (len(raw_lat) - 1))
        p95 = can_lat[p95i] / raw_lat[p95i]
        print(f"  c={conc}: p50 ratio {p50:.3f} (target <= 1.05)  p95 ratio {p95:.3f}  "
              f"throughput ratio {can_rps / raw_rps:.3f} (target >= 0.95)  "
              f"[raw {raw_rps:.3f} req/s, candor {can_rps:.3f} req/s]")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    asyncio.run(main(a.max_tokens, a.rounds))
