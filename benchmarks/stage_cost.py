"""Cost of stage 1 (N samples) against the free greedy pass (issue 4).

One process, one real engine, the same questions:
- greedy: one request, temperature 0, top-5 logprobs (stage 0);
- stage 1: one request with n=N (vLLM parallel sampling; the prompt's KV blocks
  are shared through the prefix cache, and the greedy pass already filled them);
- naive: N independent n=1 requests for the same prompt, sent concurrently.

Questions run one after another (no cross-question batching), so each figure is
the latency one caller sees. Prints mean latency per question and the ratios
stage1/greedy (target <= 2.0) and naive/greedy.

    .venv/bin/python benchmarks/stage_cost.py [--n 10] [--max-tokens 32] [--temperature 0.7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import start_engine  # noqa: E402
from service.config import Settings  # noqa: E402
from service.engine.protocol import ChatMessage, GenParams  # noqa: E402

QUESTIONS = [
    "What is 7 + 5?", "What is 23 + 48?", "What is 9 * 8?", "What is 64 - 29?",
    "What is the capital of Spain?", "Who wrote Romeo and Juliet?",
    "What colour is the sky on a clear day?", "How many legs does a spider have?",
]


async def main(n: int, max_tokens: int, temperature: float, rounds: int) -> None:
    settings = Settings(samples_n=n, sample_temperature=temperature)
    engine = await start_engine(settings)
    rid = iter(range(10**9))

    async def greedy(msgs: list[ChatMessage]) -> int:
        g = await engine.generate(msgs, GenParams(1, 0.0, max_tokens, 5), f"g{next(rid)}")
        return g.completion_tokens

    async def stage1(msgs: list[ChatMessage]) -> int:
        g = await engine.generate(msgs, GenParams(n, temperature, max_tokens), f"s{next(rid)}")
        return g.completion_tokens

    async def naive(msgs: list[ChatMessage]) -> int:
        gens = await asyncio.gather(*(
            engine.generate(msgs, GenParams(1, temperature, max_tokens), f"n{next(rid)}")
            for _ in range(n)))
        return sum(g.completion_tokens for g in gens)

    await greedy([ChatMessage("user", "Warm up.")])
    times: dict[str, list[float]] = {"greedy": [], "stage1": [], "naive": []}
    tokens: dict[str, int] = dict.fromkeys(times, 0)
    for _ in range(rounds):
        for q in QUESTIONS:
            msgs = [ChatMessage("user", q)]
            for name, fn in (("greedy", greedy), ("stage1", stage1), ("naive", naive)):
                t0 = time.perf_counter()
                tokens[name] += await fn(msgs)
                times[name].append(time.perf_counter() - t0)
    await engine.aclose()

    g = statistics.mean(times["greedy"])
    print(f"questions {len(QUESTIONS)} x {rounds} rounds, N={n}, max_tokens={max_tokens}, "
          f"T={temperature}")
    for name in times:
        m = statistics.mean(times[name])
        print(f"  {name:<7} mean {m * 1000:8.0f} ms  tokens {tokens[name]:6d}  "
              f"{tokens[name] / sum(times[name]):6.1f} tok/s  ratio to greedy {m / g:5.2f}")
    s1 = statistics.mean(times["stage1"]) / g
    nv = statistics.mean(times["naive"]) / g
    print(f"stage1/greedy = {s1:.2f} (target <= 2.0); naive/greedy = {nv:.2f}; "
          f"naive/stage1 = {nv / s1:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.max_tokens, a.temperature, a.rounds))
