"""The request sets and the summaries of ``benchmarks/scope.py``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.calibration.artifact import CalibratedModel, load_artifact
from service.calibration.profiles import artifact_files, parse_sources
from service.calibration.scope import (
    Component,
    Embed,
    ScopeTest,
    fit_scope,
    p_values,
    scope_text,
)
from service.config import Settings
from service.labelled.datasets import load_dataset
from service.labelled.grading import grade, make_encoder
from service.labelled.items import Item

VARIANTS: tuple[tuple[Component, ...], ...] = (
    ("similarity",), ("question_length", "answer_length"),
    ("similarity", "question_length"), ("similarity", "question_length", "answer_length"),
)


@dataclass(frozen=True)
class Request:
    set: str
    id: str
    question: str
    context: str | None = None
    item: Item | None = None  # labelled (held-out) requests only


def profiles_of(settings: Settings) -> list[CalibratedModel]:
    sources, _ = parse_sources(settings.calibration)
    return [load_artifact(p) for src in sources for p in artifact_files(src)]


def profile_items(model: CalibratedModel) -> list[Item]:
    """The questions a profile was calibrated on, as its calibrate command drew them."""
    c = model.spec.collect
    return load_dataset(model.spec.dataset, n=c.get("n"), seed=int(c.get("seed", 0)))


def heldout_sets(settings: Settings) -> dict[str, list[Request]]:
    out = {}
    for m in profiles_of(settings):
        keys = set(m.spec.split_keys.get("heldout", []))
        out[f"heldout:{m.spec.profile}"] = [
            Request(f"heldout:{m.spec.profile}", it.id, it.question, None, it)
            for it in profile_items(m) if it.key in keys]
    return out


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def load_requests(data: Path, n: int) -> dict[str, list[Request]]:
    """GSM8K and TruthfulQA (``n`` each, seed 0) and the hand-written sets."""
    sets: dict[str, list[Request]] = {}
    for name in ("gsm8k", "truthfulqa"):
        sets[name] = [Request(name, it.id, it.question) for it in load_dataset(name, n=n, seed=0)]
    for name in ("everyday", "longform"):
        rows = _jsonl(data / f"{name}.jsonl")
        sets[name] = [Request(name, r["id"], r["question"], _transcript(r.get("turns")))
                      for r in rows]
    return sets


def _transcript(turns: list[dict[str, str]] | None) -> str | None:
    """A chat's earlier turns, as the context Candor reads (chat completions are one-turn)."""
    if not turns:
        return None
    return "\n".join(f"{t['role']}: {t['content']}" for t in turns)


def summarise(by_set: dict[str, list[tuple[Request, dict[str, Any]]]],
              settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rows in by_set.items():
        resps = [resp for _, resp in rows]
        promised = [r["calibration"]["target_risk"] is not None for r in resps]
        s: dict[str, Any] = {
            "n": len(rows), "promised": round(float(np.mean(promised)), 3),
            "in_scope": round(float(np.mean([bool(r["scope"]["in_scope"]) for r in resps])), 3),
            "routed": dict(Counter(r["scope"]["profile"] for r in resps)),
            "reasons": dict(Counter((r["calibration"]["reason"] or "").split(":")[0]
                                    for r in resps)),
        }
        if name.startswith("heldout:"):
            s.update(_kept(name.split(":", 1)[1], rows))
        out[name] = s
    return out


def _kept(profile: str, rows: list[tuple[Request, dict[str, Any]]]) -> dict[str, Any]:
    """Own-promise share, and the realised risk among those answered under it."""
    items = [r.item for r, _ in rows if r.item is not None]
    encode = make_encoder(items)
    own = [(r, resp) for r, resp in rows
           if resp["calibration"]["profile"] == profile
           and resp["calibration"]["target_risk"] is not None]
    answered = [(r, resp) for r, resp in own if resp["decision"] == "answer"]
    wrong = sum(1 for r, resp in answered
                if r.item is not None and not grade(r.item, resp["answer"], encode))
    alphas = sorted({resp["calibration"]["target_risk"] for _, resp in own})
    return {"own_promise": round(len(own) / max(1, len(rows)), 3), "alpha": alphas,
            "answered": len(answered), "coverage": round(len(answered) / max(1, len(rows)), 3),
            "realised_risk": round(wrong / len(answered), 3) if answered else None}


def _fit_records(model: CalibratedModel, cache: Path) -> tuple[list[str], list[str]]:
    """The fit split's questions and greedy answers, from the calibration run's cache."""
    by_id = {row["id"]: row["response"] for row in _jsonl(cache)}
    fit = set(model.spec.split_keys.get("fit", []))
    items = [it for it in profile_items(model) if it.key in fit and it.id in by_id]
    return [it.question for it in items], [str(by_id[it.id]["answer"]) for it in items]


def component_table(by_set: dict[str, list[tuple[Request, dict[str, Any]]]], cache_dir: Path,
                    embed: Embed, settings: Settings) -> dict[str, Any]:
    """Share kept (held-out of the profile) and let through (the out-of-scope sets) per
    profile and candidate component set, each fitted on the profile's fit split."""
    table: dict[str, Any] = {}
    for model in profiles_of(settings):
        cache = cache_dir / f"{model.spec.dataset}.jsonl"
        if not cache.exists() or model.spec.scope is None:
            continue
        questions, answers = _fit_records(model, cache)
        level = model.spec.scope.level
        instruction = model.spec.scope.instruction
        rows: dict[str, Any] = {}
        for variant in VARIANTS:
            spec = fit_scope([scope_text(q, None, instruction) for q in questions], answers,
                             embed, level=level, seed=model.spec.split_seed,
                             components=variant, instruction=instruction)
            test = ScopeTest(spec)
            rows["+".join(variant)] = {
                name: round(_share_in(test, pairs, embed), 3) for name, pairs in by_set.items()
                if not name.startswith("heldout:") or name == f"heldout:{model.spec.profile}"}
        table[model.spec.profile] = rows
    return table


def _share_in(test: ScopeTest, pairs: Sequence[tuple[Request, dict[str, Any]]],
              embed: Embed) -> float:
    texts = [test.text(r.question, r.context) for r, _ in pairs]
    p = p_values(test, texts, [str(resp["answer"]) for _, resp in pairs], embed)
    return float(np.mean(p >= test.level))
