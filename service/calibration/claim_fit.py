"""The claim-level calibration: a per-claim map and the conformal-factuality threshold.

Fitted by ``build.py`` from records collected in claims mode (multi-part questions, each
claim labelled against its part, ``records.py``), on the same three splits as the answer
maps:

* *fit*: the claim map, a ``StageMap`` over the claim signals (``ClaimSignals.features``)
  whose inputs ``select.choose_inputs`` picks out of fold, so the map never ranks claims
  worse than the best single signal; Platt-scaled at any n (strictly monotone, no ties);
* *test* (its in-scope answers): the threshold, ``conformal.claim_threshold`` at the claim
  target risk ``alpha`` fixed before fitting and the artifact's ``delta``;
* *held-out* (in scope): the realised share of answers keeping a wrong claim, the share of
  correct claims kept, against keeping every claim and against the whole-answer decision,
  and the per-claim AUROC of the map and of each single signal.

``ClaimSpec`` (``claim_spec.py``) is the artifact's ``claims`` section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.calibration.claim_spec import ClaimSpec
from service.calibration.conformal import breaking_scores, claim_threshold, feasibility
from service.calibration.features import vectorise
from service.calibration.fit import fit_stage_map
from service.calibration.maps import StageMap
from service.calibration.records import Record
from service.calibration.select import choose_inputs
from service.labelled import quality
from service.vocab import DIRECTIONS, capped_confidence

CLAIM_FEATURES = ("claim_mean_nll", "claim_min_token_prob", "claim_token_entropy",
                  "claim_n_tokens", "support")


def labelled(records: Sequence[Record]) -> list[Record]:
    """The records collected in claims mode with at least one claim."""
    return [r for r in records if r.claims]


def fit_claim_map(records: Sequence[Record], seed: int,
                  ) -> tuple[StageMap | None, dict[str, Any] | None]:
    """The claim map over the inputs ``choose_inputs`` picks on these records' claims."""
    rows = [c for r in records for c in r.claims or ()]
    names = [f for f in CLAIM_FEATURES if any(f in c.features for c in rows)]
    if not rows or not names:
        return None, None
    x = np.array([vectorise(c.features, names) for c in rows], dtype=float)
    y = np.array([c.correct for c in rows], dtype=int)
    pick = choose_inputs(x, y, names, None, seed)
    inputs = pick.features or names
    cols = [names.index(f) for f in inputs]
    # Platt at any n: isotonic steps tie many claims at one confidence, so the threshold's
    # fixed-sequence test could only move in big jumps (on ladder-parts it kept 8% of the
    # correct claims at alpha 0.1 where the strictly monotone map keeps 33%, docs/claims.md)
    return (fit_stage_map(x[:, cols], y, inputs, seed, isotonic=False),
            {"choice": pick.choice, "auroc_oof": pick.scores})


def confidences(m: StageMap, records: Sequence[Record]) -> list[np.ndarray]:
    """Each record's claim confidences, capped as served."""
    return [np.array([capped_confidence(m(c.features)) for c in r.claims or ()])
            for r in records]


def labels(records: Sequence[Record]) -> list[np.ndarray]:
    return [np.array([c.correct for c in r.claims or ()], dtype=bool) for r in records]


def heldout(m: StageMap, records: Sequence[Record], threshold: float | None,
            answered: Sequence[bool] | None) -> dict[str, Any]:
    """Held-out figures (module docstring); ``answered``: the whole-answer decision."""
    if not records:
        return {"answers": 0}
    conf, y = confidences(m, records), labels(records)
    wrong = [bool((~yy).any()) for yy in y]
    n_correct = sum(int(yy.sum()) for yy in y)

    def rates(keep: Sequence[np.ndarray]) -> dict[str, float | None]:
        viol = [bool((k & ~yy).any()) for k, yy in zip(keep, y, strict=True)]
        kept_ok = sum(int((k & yy).sum()) for k, yy in zip(keep, y, strict=True))
        return {"violation_rate": float(np.mean(viol)),
                "correct_kept": kept_ok / n_correct if n_correct else None}

    out: dict[str, Any] = {"answers": len(records), "claims": sum(len(c) for c in conf),
                           "answers_with_wrong_claim": float(np.mean(wrong)),
                           "keep_all": rates([np.ones(len(c), bool) for c in conf])}
    if threshold is not None:
        out["served"] = rates([c >= threshold for c in conf])
    if answered is not None:
        out["whole_answer"] = rates([np.full(len(c), bool(a), bool)
                                     for c, a in zip(conf, answered, strict=True)])
    out["auroc"] = per_claim_auroc(m, records)
    return out


def per_claim_auroc(m: StageMap, records: Sequence[Record]) -> dict[str, float | None]:
    """AUROC over claims: the map, and each single signal in its known direction."""
    rows = [c for r in records for c in r.claims or ()]
    y = np.array([c.correct for c in rows], dtype=bool)
    out = {"map": quality.auroc(np.array([m(c.features) for c in rows]), y)}
    for name in CLAIM_FEATURES:
        have = [(DIRECTIONS[name] * c.features[name], c.correct) for c in rows
                if name in c.features]
        if have and len(have) == len(rows):
            s, yy = map(np.array, zip(*have, strict=True))
            out[name] = quality.auroc(s, yy.astype(bool))
    return out


def fit_claims(parts: dict[str, list[Record]], test_in: Sequence[Record],
               held_in: Sequence[Record], *, alpha: float, delta: float, seed: int,
               min_stage: int, splitter: str, answered: Sequence[bool] | None = None,
               ) -> ClaimSpec | None:
    """The ``claims`` section, or None when no record was collected in claims mode (a
    dataset mixing multi-part rows with single questions is refused: its scope test would
    admit single questions the threshold never saw)."""
    every = [r for part in parts.values() for r in part]
    plain = sum(r.claims is None for r in every)
    if plain == len(every):
        return None
    if plain:
        raise ValueError(
            f"{plain} of {len(every)} questions are not multi-part (no 'parts'): a claim "
            "calibration needs every question collected in claims mode, so the requests its "
            "scope test admits are like those its threshold was tested on; calibrate the "
            "multi-part rows apart from the single questions")
    fit = labelled(parts["fit"])
    m, selection = fit_claim_map(fit, seed)
    if m is None:
        raise ValueError(f"too few claims ({sum(len(r.claims or ()) for r in fit)}) on the "
                         "fit split for a claim map")
    test, held = labelled(test_in), labelled(held_in)
    conf, y = confidences(m, test), labels(test)
    chosen = claim_threshold(breaking_scores(conf, y), alpha, delta)
    feas = feasibility(conf, y, chosen.threshold)
    return ClaimSpec(
        splitter=splitter, map=m.to_json(), selection=selection, alpha=alpha,
        threshold=chosen.threshold, min_stage=min_stage if "support" in m.features else 0,
        test={"answers": chosen.answers, "violations": chosen.violations,
              "p_value": chosen.p_value},
        feasibility={"claims": feas.claims, "wrong_share": feas.wrong_share,
                     "correct_kept": feas.correct_kept, "answers_whole": feas.answers_whole},
        heldout=heldout(m, held, chosen.threshold,
                        None if answered is None else [a for r, a in zip(
                            held_in, answered, strict=True) if r.claims]))
