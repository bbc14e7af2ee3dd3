"""The versioned calibration artifact (JSON) and the ``CalibratedModel`` the server runs.

``load_artifact`` validates everything up front and raises ``CalibrationError``
with a message naming the problem (unreadable file, corrupt JSON, missing or
malformed fields, wrong format version, fitted for another model): a server
started with a bad artifact fails at startup instead of serving a silent default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.calibration.fit import StageMap
from service.cascade.policy import Policy
from service.errors import BadRequest, CalibrationError

FORMAT = "candor-calibration"
VERSION = 1
MAX_CONFIDENCE = 0.999


class ThresholdEntry(BaseModel):
    alpha: float = Field(gt=0, lt=1)
    threshold: float | None = Field(ge=0, le=1)
    answered: int = Field(ge=0)
    errors: int = Field(ge=0)
    p_value: float | None = None


class ArtifactSpec(BaseModel):
    """The artifact's JSON schema (``version`` 1)."""

    model_config = ConfigDict(extra="ignore")
    format: Literal["candor-calibration"]
    version: Literal[1]
    id: str = Field(min_length=1)
    created: str
    model: str = Field(min_length=1)
    dataset: str
    n: int = Field(ge=1)
    split_seed: int
    splits: dict[str, int]
    delta: float = Field(gt=0, lt=1)
    default_alpha: float = Field(gt=0, lt=1)
    abstain_threshold: float = Field(ge=0, le=1)
    max_stage: int = Field(default=3, ge=0, le=3, description="highest stage in the data")
    maps: list[StageMap | None] = Field(min_length=4, max_length=4)  # validated as JSON
    thresholds: dict[Literal["0", "1", "2", "3"], list[ThresholdEntry]]
    heldout: dict[str, Any] = Field(default_factory=dict)
    collect: dict[str, Any] = Field(default_factory=dict)


class CalibratedModel:
    """Per-stage maps + a Learn-then-Test threshold table (see ``thresholds.py``)."""

    calibrated = True

    def __init__(self, spec: ArtifactSpec) -> None:
        self.spec = spec
        self.id: str | None = spec.id
        self.delta: float | None = spec.delta
        self.maps = list(spec.maps)
        if self.maps[0] is None:
            raise CalibrationError("calibration artifact has no stage-0 map", param="maps")
        self.default_target_risk = spec.default_alpha

    def confidence(self, stage: int, features: Mapping[str, float]) -> float:
        """The nearest fitted map at or below ``stage`` (a stage without data inherits)."""
        for k in range(min(stage, 3), -1, -1):
            m = self.maps[k]
            if m is not None:  # a finite sample never justifies certainty: cap below 1
                return min(MAX_CONFIDENCE, max(0.0, m(features)))
        return 0.0

    def supported(self, max_stage: int) -> list[ThresholdEntry]:
        """Entries with a threshold for requests up to ``max_stage``.

        Stages above the data's ``max_stage`` have no map: they inherit the last fitted
        stage's confidence, so the policy of the highest fitted stage applies unchanged.
        """
        key = str(min(max_stage, self.spec.max_stage))
        rows = self.spec.thresholds.get(key, [])  # type: ignore[call-overload]
        return sorted((e for e in rows if e.threshold is not None), key=lambda e: e.alpha)

    def policy(self, target_risk: float | None, max_stage: int) -> tuple[Policy, float | None]:
        rows = self.supported(max_stage)
        want = self.default_target_risk if target_risk is None else target_risk
        ok = [e for e in rows if e.alpha <= want + 1e-12]
        if not ok:
            if target_risk is None:  # nothing is promised at the default: answer nothing
                return Policy(1.0, 1.0, max_stage), None
            lowest = f"{rows[0].alpha:g}" if rows else "none"
            raise BadRequest(
                f"target_risk={target_risk:g} is below what calibration {self.id} supports at "
                f"max_stage={max_stage} (lowest supported: {lowest})",
                param="policy.target_risk",
            )
        e = ok[-1]
        assert e.threshold is not None
        return Policy(e.threshold, min(self.spec.abstain_threshold, e.threshold), max_stage), \
            e.alpha

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/calibration`` reports: the artifact and its promise."""
        s = self.spec
        return {
            "calibrated": True, "id": s.id, "model": s.model, "dataset": s.dataset, "n": s.n,
            "created": s.created, "delta": s.delta, "default_target_risk": s.default_alpha,
            "abstain_threshold": s.abstain_threshold, "max_stage_calibrated": s.max_stage,
            "promise": f"with probability >= {1 - s.delta:g}, the error rate among answered "
                       "questions is <= the target risk (for questions like the calibration set)",
            "supported": {k: [e.model_dump() for e in v if e.threshold is not None]
                          for k, v in s.thresholds.items()},
            "maps": [None if m is None else {"method": m.method, "n": m.n,
                                             "features": m.features} for m in s.maps],
            "heldout": s.heldout,
        }


def parse_artifact(raw: str, source: str, expected_model: str | None = None) -> CalibratedModel:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration artifact {source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError(f"{source} is not a Candor calibration artifact (format != "
                               f"{FORMAT!r})")
    try:
        spec = ArtifactSpec.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                           for e in exc.errors()[:6])
        raise CalibrationError(f"calibration artifact {source} is invalid: {fields}") from exc
    if expected_model is not None and spec.model != expected_model:
        raise CalibrationError(
            f"calibration artifact {source} was fitted for model {spec.model!r}, but this "
            f"server runs {expected_model!r}; recalibrate with `candor calibrate`")
    return CalibratedModel(spec)


def load_artifact(path: Path, expected_model: str | None = None) -> CalibratedModel:
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration artifact {path}: {exc}") from exc
    return parse_artifact(raw, str(path), expected_model)


def save_artifact(spec: ArtifactSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec.model_dump(), indent=1) + "\n", encoding="utf-8")
