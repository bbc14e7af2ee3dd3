"""Which requests get a promise: the scope test through the real cascade (issue 20).

One process, one engine, one in-process Candor serving the shipped profiles (or
``--calibration``) with the embedding model, asked over HTTP exactly as a client would
(no ``task``, no policy, the default ``out_of_scope``):

* **in scope**: each profile's own held-out questions (the artifact's held-out split
  keys, drawn from its dataset with its ``collect`` n and seed): the share that keeps
  the profile's promise, and the realised risk among those answered under it, graded
  by the dataset's grader, with the coverage;
* **out of scope**: GSM8K word problems, TruthfulQA questions, the hand-written
  everyday and long-form requests (``benchmarks/data/scope/``; multi-turn chats send
  their earlier turns as ``context``): the share that gets a promise (target <= 5 %).

Then, from the same answers, the choice of the scope score: each candidate set of
components is fitted on each profile's fit split (its ``--cache`` of the calibration
run, so no engine is needed for it) and scored on the held-out (kept) and the
out-of-scope sets (refused).

    .venv/bin/python benchmarks/scope.py --cache-dir runs/ship [--n 100] [--out runs/scope.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._common import serve_in_process, start_engine  # noqa: E402
from benchmarks.scope_sets import (  # noqa: E402
    Request,
    component_table,
    heldout_sets,
    load_requests,
    summarise,
)
from service.config import Settings  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "scope"


async def ask_all(url: str, requests: list[Request], concurrency: int) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(requests), desc="scope", unit="req")
    async with httpx.AsyncClient(base_url=url, timeout=3600) as client:
        async def one(r: Request) -> dict[str, Any]:
            body: dict[str, Any] = {"question": r.question}
            if r.context:
                body["context"] = r.context
            async with sem:
                resp = await client.post("/v1/answer", json=body)
            bar.update(1)
            resp.raise_for_status()
            out: dict[str, Any] = resp.json()
            return out

        try:
            return await asyncio.gather(*(one(r) for r in requests))
        finally:
            bar.close()


async def main(args: argparse.Namespace) -> None:
    from service.signals.embedder import Embedder

    settings = Settings(calibration=args.calibration, max_inflight=512, admission="fixed",
                        max_budget_ms=3_600_000)
    held = heldout_sets(settings)
    sets = {**held, **load_requests(DATA, args.n)}
    requests = [r for rs in sets.values() for r in rs]
    print(f"{len(requests)} requests: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()),
          flush=True)
    embedder = Embedder(settings.embedding_model)
    engine = await start_engine(settings)
    served = await serve_in_process(settings, engine, embedder)
    try:
        responses = await ask_all(served.url, requests, args.concurrency)
    finally:
        await served.stop()
        await engine.aclose()
    by_set: dict[str, list[tuple[Request, dict[str, Any]]]] = {}
    for r, resp in zip(requests, responses, strict=True):
        by_set.setdefault(r.set, []).append((r, resp))
    report = {"sets": summarise(by_set, settings),
              "components": component_table(by_set, args.cache_dir, embedder.encode_sync,
                                            settings)}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"report": report, "responses": {
            k: [{"id": r.id, "question": r.question, "response": resp} for r, resp in v]
            for k, v in by_set.items()}}, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", default="builtin")
    ap.add_argument("--n", type=int, default=100, help="GSM8K and TruthfulQA questions each")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/ship"),
                    help="the profiles' calibration caches (<dataset>.jsonl), for the "
                    "component table")
    ap.add_argument("--concurrency", type=int, default=128)
    ap.add_argument("--out", type=Path, default=None)
    asyncio.run(main(ap.parse_args()))
