"""What the cascade did for one request, stage by stage (the response is built from it).

Stage 1 and 2 evidence that is uninformative (homogeneous samples) never raises the
confidence: the stage keeps the confidence it inherited (the stage-0 fallback) and the
response says so; unless the calibration fitted its maps on such questions too, and so
measured what a single cluster says for this model (``fits_homogeneous``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service import schemas
from service.cascade.policy import Action, ConfidenceModel
from service.cascade.stages import Stage
from service.signals.base import SignalResult
from service.vocab import STAGE_CONF_KEYS, AbstainReason


@dataclass
class Trace:
    """The stages' reports, the features and signals seen so far, and the confidence."""

    reports: list[schemas.StageReport] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    signals: dict[str, object] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    clusters: list[int] | None = None  # each sample's cluster, by the last stage to say
    confidence: float = 0.0
    fallback: str | None = None

    @property
    def last_stage(self) -> int:
        return self.reports[-1].stage if self.reports else 0

    def add(self, stage: Stage, res: SignalResult, ms: float, tokens: int,
            model: ConfidenceModel) -> None:
        """Fold one stage's result in (pure bookkeeping, shared with /v1/score)."""
        self.signals.update({k: v for k, v in res.values.items() if v is not None})
        for k, v in res.values.items():
            if isinstance(v, bool | int | float):
                self.features[k] = float(v)
        if res.clusters is not None:
            self.clusters = res.clusters
        note = res.note
        weighed = not res.informative and stage.spec.sampling and model.fits_homogeneous
        if (res.informative or weighed) and res.confidence is not None:
            self.features[STAGE_CONF_KEYS[stage.index]] = float(res.confidence)
            self.confidence = model.confidence(stage.index, self.features)
            if weighed:  # the calibration measured what a single cluster says for this model
                note = (note or "uninformative") + "; the calibrated map weighs it"
        elif stage.spec.sampling:
            self.fallback = "token"
            note = (note or "uninformative") + "; confidence falls back on stage 0"
        self.reports.append(schemas.StageReport(
            name=stage.name, stage=stage.index, confidence=self.confidence, ms=round(ms, 2),
            tokens=tokens, informative=res.informative, note=note))

    def annotate(self, extra: str) -> None:
        """Add ``extra`` to the last stage's note."""
        last = self.reports[-1]
        last.note = f"{last.note}; {extra}" if last.note else extra


@dataclass(frozen=True)
class Decided:
    """The sequential policy's decision: fixed at the first stage that did not escalate."""

    action: Action
    reason: AbstainReason | None
    stage: int
    confidence: float
