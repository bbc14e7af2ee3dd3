"""Claims mode for one answer: split it, score each claim, keep what the promise covers.

``assess`` is what the cascade calls after its stage loop (``cascade/runner.py``). It
reads only its inputs (the greedy completion, the samples if any, an embedder) and a
``ClaimCalibration`` when the profile has one, so it is tested without an engine.

Without a claim calibration every claim is kept, its confidence is the uncalibrated rule
of ``signals.py``, and no claim-level risk is promised (``reason`` says so). With one, a
claim's confidence is the calibrated map's, the claims at or above the certified
threshold are kept, and the promise is the threshold's (``service/calibration/conformal.py``) unless
``void`` names why it does not apply to this request (out of scope, other settings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from service import schemas
from service.claims.signals import ClaimSignals, Embed, claim_token_signals, support, token_offsets
from service.claims.split import Claim, Splitter, kept_answer
from service.engine.protocol import TokenInfo
from service.vocab import capped_confidence, no_promise

UNCALIBRATED = no_promise(
    "uncalibrated", "no claim calibration is served for this profile: every claim is kept, "
    "each confidence is a raw score, and no claim-level error rate is promised")


@dataclass(frozen=True)
class ClaimCalibration:
    """A profile's fitted claim map and the threshold certified for it."""

    id: str
    map: Callable[[Mapping[str, float]], float]  # features -> P(correct) (a StageMap)
    features: tuple[str, ...]  # the map's inputs
    threshold: float | None  # None: no threshold certified at (alpha, delta)
    alpha: float
    delta: float
    # the stage whose samples (1) or embeddings (2) the map's ``support`` was collected
    # with: a request that may not reach it reads another support, so no promise (0: none)
    min_stage: int = 0
    splitter: str = "rules"  # the splitter the claims were calibrated as split by

    @property
    def needs_samples(self) -> bool:
        return "support" in self.features


@dataclass(frozen=True)
class ClaimInputs:
    """What claims mode reads about one request."""

    question: str
    answer: str
    tokens: Sequence[TokenInfo]
    task: str
    samples: Sequence[str] | None = None  # the stage-1 samples (None: none drawn)
    embed: Embed | None = None
    similarity: float = 0.85


async def claim_signals(inputs: ClaimInputs, splitter: Splitter,
                        ) -> tuple[list[Claim], list[ClaimSignals]]:
    """The answer's claims and each claim's signals (``signals.py``)."""
    claims = await splitter.split(inputs.question, inputs.answer)
    offsets = token_offsets(inputs.answer, [t.token for t in inputs.tokens])
    sigs = [claim_token_signals(c, inputs.tokens, offsets) for c in claims]
    if inputs.samples and claims:
        split = [await splitter.split(inputs.question, s) for s in inputs.samples]
        shares = await support(claims, split, inputs.task, inputs.embed, inputs.similarity)
        sigs = [replace(s, support=v) for s, v in zip(sigs, shares, strict=True)]
    return claims, sigs


def _confidence(sig: ClaimSignals, calibration: ClaimCalibration | None) -> float:
    if calibration is None:
        return sig.uncalibrated
    return capped_confidence(calibration.map(sig.features()))  # a threshold of 1.0 keeps none


def _promise(calibration: ClaimCalibration | None,
             void: str | None) -> tuple[float | None, str | None]:
    if calibration is None:
        return None, UNCALIBRATED
    if calibration.threshold is None:
        return None, no_promise(
            "unsupported", f"no claim threshold is certified at alpha={calibration.alpha} "
            f"with delta={calibration.delta} on the calibration data: every claim is kept")
    if void is not None:
        return None, void
    return calibration.alpha, None


async def assess(inputs: ClaimInputs, splitter: Splitter,
                 calibration: ClaimCalibration | None = None,
                 void: str | None = None) -> schemas.ClaimsReport:
    """The claims report of one answer (module docstring)."""
    claims, sigs = await claim_signals(inputs, splitter)
    conf = [_confidence(s, calibration) for s in sigs]
    threshold = calibration.threshold if calibration is not None else None
    kept = [threshold is None or c >= threshold for c in conf]
    risk, reason = _promise(calibration, void)
    items = [
        schemas.Claim(text=c.text, span=(c.start, c.end), part=c.part, confidence=p, kept=k,
                      signals=schemas.ClaimSignals.model_validate(s.features()))
        for c, s, p, k in zip(claims, sigs, conf, kept, strict=True)
    ]
    return schemas.ClaimsReport(
        items=items, answer=kept_answer(inputs.answer, claims, kept) if claims else "",
        splitter=splitter.name, calibrated=calibration is not None,
        id=calibration.id if calibration else None, threshold=threshold, target_risk=risk,
        delta=calibration.delta if calibration else None, reason=reason)
