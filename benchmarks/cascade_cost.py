"""What early exit saves (issue 4): the cascade vs always running every stage.

On the arithmetic ladder (labelled, seeded), every question is asked twice of
the same in-process server (one real engine, the real embedder): once with the
server's policy (early exit: answer when confident, abstain when hopeless), once
with ``policy.run_all`` (every stage, the decision on the final confidence).
Prints the mean generated tokens and wall time per question for both, their
ratio (target: cascade <= 0.35x always-all), and the AURC of each run's
confidence against the graded greedy answer (target: within 2%).

Thresholds: what the server runs (the shipped profiles unless ``CANDOR_CALIBRATION``
says otherwise).

``--replay ARTIFACT --cache CACHE --dataset D --n N``: no engine. The questions the
artifact held out, from the full-cascade runs its ``candor calibrate`` cached: the
cascade's tokens are the stages it would have run (its own policy, replayed exactly
as the runner decides), against every stage's; AURC of the confidence each one
decides on.

    .venv/bin/python benchmarks/cascade_cost.py [--n 60] [--max-tokens 16] [--concurrency 4]
    .venv/bin/python benchmarks/cascade_cost.py --replay service/calibration/profiles/math.json \
        --cache runs/ship/ladder-mix.jsonl --dataset ladder-mix --n 450 --max-tokens 24
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._common import serve_in_process, start_engine  # noqa: E402
from service.config import Settings  # noqa: E402
from service.labelled.grading import grade_numeric  # noqa: E402
from service.labelled.ladder import arithmetic_ladder  # noqa: E402
from service.labelled.quality import aurc  # noqa: E402
from service.signals.embedder import Embedder  # noqa: E402


async def run_pass(client: httpx.AsyncClient, items: list, policy: dict, max_tokens: int,
                   concurrency: int, label: str) -> list[dict]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: object) -> dict:
        async with sem:
            t0 = time.perf_counter()
            r = await client.post("/v1/answer", json={
                "question": item.question, "task": "math", "max_tokens": max_tokens,  # type: ignore[attr-defined]
                "policy": policy})
            r.raise_for_status()
            body = r.json()
            body["_seconds"] = time.perf_counter() - t0
            return body

    tasks = [asyncio.ensure_future(one(it)) for it in items]
    for f in tqdm(asyncio.as_completed(tasks), total=len(tasks), desc=label):
        await f
    return [t.result() for t in tasks]


def summary(name: str, rows: list[dict], correct: np.ndarray) -> tuple[float, float, float]:
    toks = float(np.mean([r["usage"]["completion_tokens"] for r in rows]))
    secs = float(np.mean([r["_seconds"] for r in rows]))
    conf = np.array([r["confidence"] for r in rows])
    a = aurc(conf, correct)
    mix = np.bincount([r["stage_reached"] for r in rows], minlength=4)
    print(f"  {name:<12} tokens/q {toks:7.1f}  s/q {secs:6.2f}  AURC {a:.4f}  "
          f"stage mix {mix.tolist()}  abstained {np.mean([r['abstained'] for r in rows]):.2f}")
    return toks, secs, a


async def main(n: int, max_tokens: int, concurrency: int, seed: int, max_digits: int) -> None:
    settings = Settings()
    items = arithmetic_ladder(n, seed=seed, max_digits=max_digits)
    engine = await start_engine(settings)
    embedder = await asyncio.to_thread(Embedder, settings.embedding_model)
    served = await serve_in_process(settings, engine, embedder)
    async with httpx.AsyncClient(base_url=served.url, timeout=900) as client:
        await client.post("/v1/answer", json={"question": "Warm up: 1 + 1?", "max_tokens": 4})
        cascade = await run_pass(client, items, {}, max_tokens, concurrency, "cascade")
        full = await run_pass(client, items, {"run_all": True, "max_stage": 3}, max_tokens,
                              concurrency, "always-all")
        cal = (await client.get("/v1/calibration")).json() if settings.calibration else None
    await served.stop()
    await engine.aclose()

    correct = np.array([grade_numeric(r["answer"], it.answer) for r, it in zip(full, items,
                                                                              strict=True)])
    print(f"n={n} ladder (seed {seed}, 1-{max_digits} digits), max_tokens={max_tokens}, "
          f"concurrency={concurrency}, greedy accuracy {correct.mean():.3f}, "
          f"calibration={'artifact ' + str(cal.get('id')) if cal else 'none (defaults)'}")
    t_c, s_c, a_c = summary("cascade", cascade, correct)
    t_f, s_f, a_f = summary("always-all", full, correct)
    print(f"cost ratio cascade/always-all: tokens {t_c / t_f:.3f}, time {s_c / s_f:.3f} "
          f"(target <= 0.35); AURC ratio {a_c / a_f:.3f} (target within 2%: <= 1.02)")


def replayed(artifact: Path, cache: Path, dataset: str, n: int, max_tokens: int) -> None:
    from service.calibration.artifact import load_artifact
    from service.calibration.collect import CollectSettings, read_cache
    from service.calibration.pinning import ServingSettings
    from service.calibration.records import to_records
    from service.calibration.simulate import decide, replay
    from service.eval.report import eval_set
    from service.labelled.datasets import load_dataset
    from service.labelled.grading import make_encoder
    from service.offline.collection import load_serving

    model = load_artifact(artifact)
    pinned = ServingSettings.model_validate(load_serving(cache))
    cfg = CollectSettings(max_tokens=max_tokens, serving=pinned.fingerprint(),
                          instruction=pinned.math_instruction)
    items = load_dataset(dataset, n=n)
    cached = read_cache(cache)
    missing = [it.id for it in items if cfg.key(it) not in cached]
    if missing:
        raise SystemExit(f"{len(missing)} questions are not in {cache} (e.g. {missing[0]})")
    records = eval_set(to_records(items, [cached[cfg.key(it)] for it in items],
                                  make_encoder(items)), model)
    rp, y = replay(records, model), np.array([r.correct for r in records])
    choice = model.policy(None, 3)
    pol = choice.policy
    out = decide(rp, pol.answer_threshold, pol.abstain_threshold, model.decision_stage)
    tok = np.array([r.tokens for r in records], dtype=float)
    spent = np.array([row[: s + 1].sum() for row, s in zip(tok, out.stage, strict=True)])
    at_stop = rp.conf[np.arange(len(records)), out.stage]
    a_c, a_f = aurc(at_stop, y), aurc(rp.final(), y)
    mix = np.bincount(out.stage, minlength=4).tolist()
    print(f"n={len(records)} held-out questions of {model.id} ({dataset}), accuracy "
          f"{y.mean():.3f}; default policy: alpha {choice.target_risk}, threshold "
          f"{pol.answer_threshold}, decides at stage <= {model.decision_stage}")
    print(f"  cascade      tokens/q {spent.mean():7.1f}  AURC {a_c:.4f}  stage mix {mix}  "
          f"answered {out.answered.mean():.2f}  realised risk {out.risk(y):.3f}")
    print(f"  always-all   tokens/q {tok.sum(1).mean():7.1f}  AURC {a_f:.4f}")
    print(f"cost ratio cascade/always-all: tokens {spent.mean() / tok.sum(1).mean():.3f} "
          f"(target <= 0.35); AURC ratio {a_c / a_f:.3f} (target <= 1.02)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-digits", type=int, default=3)
    ap.add_argument("--replay", type=Path, default=None, help="artifact: replay, no engine")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--dataset", default="ladder-mix")
    a = ap.parse_args()
    if a.replay is not None:
        if a.cache is None:
            raise SystemExit("--replay needs --cache (the artifact's calibrate cache)")
        replayed(a.replay, a.cache, a.dataset, a.n, a.max_tokens)
    else:
        asyncio.run(main(a.n, a.max_tokens, a.concurrency, a.seed, a.max_digits))
