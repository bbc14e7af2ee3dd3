"""Synthetic labelled records for calibration unit tests (no engine involved)."""

from __future__ import annotations

import numpy as np

from service.calibration.records import Record

WORDS = ("alpha", "river", "stone", "what", "is", "the", "of", "capital", "seven", "blue")


def text_of_length(rng: np.random.Generator, lo: int, hi: int) -> str:
    """Words up to a length drawn log-uniformly in [lo, hi] characters."""
    n = int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    words: list[str] = []
    while len(" ".join(words)) < n:
        words.append(str(rng.choice(WORDS)))
    return " ".join(words)[:n].strip() or "x"


def synthetic_records(n: int, seed: int = 0, homogeneous_rate: float = 0.2,
                      question_chars: tuple[int, int] = (1, 400),
                      answer_chars: tuple[int, int] = (1, 200)) -> list[Record]:
    """Records whose signals carry a noisy view of a latent P(correct); their questions
    and answers have log-uniform lengths in the given ranges (what a length-only scope
    test is fitted on: the fake embedder's vectors carry no meaning)."""
    rng = np.random.default_rng(seed)
    texts = np.random.default_rng(seed + 10_000)  # its own stream: the signals are unchanged
    out = []
    for i in range(n):
        q = float(rng.uniform())
        correct = bool(rng.uniform() < q)
        homog = bool(rng.uniform() < homogeneous_rate)
        noise = rng.normal(0, 0.15, 6)
        signals = {
            "token_entropy": max(0.0, 1.5 * (1 - q) + noise[0]),
            "mean_nll": max(0.0, 1.0 - q + noise[1]),
            "min_token_prob": float(np.clip(q + noise[2], 0, 1)),
            "n_tokens": float(rng.integers(2, 12)),
            "consistency": 1.0 if homog else float(np.clip(q + noise[3], 0, 1)),
            "n_clusters": 1.0 if homog else float(rng.integers(2, 6)),
            "homogeneous": float(homog),
            "semantic_entropy": 0.0 if homog else max(0.0, 1.2 * (1 - q) + noise[4]),
            "mean_similarity": float(np.clip(0.5 + 0.5 * q + noise[5], 0, 1)),
            "p_true": float(np.clip(0.3 + 0.4 * q + rng.normal(0, 0.2), 0, 1)),
        }
        out.append(Record(f"s{i}", correct, text_of_length(texts, *answer_chars), signals,
                          [True] * 4, [True, not homog, not homog, True], [5, 50, 0, 1],
                          [10.0, 100.0, 5.0, 20.0],
                          question=text_of_length(texts, *question_chars)))
    return out


def with_claims(records: list[Record], seed: int = 0, support: bool = True) -> list[Record]:
    """The records in claims mode: 1-4 claims each, whose signals carry a noisy view of
    each claim's latent P(correct) (the answer is correct when every claim is)."""
    from service.calibration.records import ClaimRecord

    rng = np.random.default_rng(seed + 20_000)
    for r in records:
        claims = []
        for _ in range(int(rng.integers(1, 5))):
            q = float(rng.beta(2.0, 1.0))
            noise = rng.normal(0, 0.15, 3)
            feats = {"claim_mean_nll": max(0.0, 1.0 - q + noise[0]),
                     "claim_min_token_prob": float(np.clip(q + noise[1], 0, 1)),
                     "claim_token_entropy": max(0.0, 1.2 * (1 - q) + noise[2]),
                     "claim_n_tokens": float(rng.integers(3, 9))}
            if support:
                feats["support"] = float(np.clip(q + rng.normal(0, 0.2), 0, 1))
            claims.append(ClaimRecord(feats, bool(rng.uniform() < q)))
        r.claims = claims
        r.correct = all(c.correct for c in claims)
    return records
