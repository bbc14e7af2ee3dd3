"""The versioned calibration artifact (JSON) and the ``CalibratedModel`` the server runs.

``load_artifact`` validates everything up front and raises ``CalibrationError``
with a message naming the problem (unreadable file, corrupt JSON, missing or
malformed fields, wrong format version, fitted for another model): a server
started with a bad artifact fails at startup instead of serving a silent default.
The serving settings the scores depend on are checked against the server's by
``service.calibration.pinning.compare`` (``CandorState.build``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.calibration.claim_spec import ClaimSpec
from service.calibration.maps import StageMap
from service.calibration.pinning import ServingSettings, request_mismatch
from service.calibration.reference import DriftReference
from service.calibration.scope import ScopeSpec, ScopeTest
from service.cascade.policy import Policy, PolicyChoice
from service.claims.assess import ClaimCalibration
from service.errors import BadRequest, CalibrationError
from service.vocab import MAX_STAGE, N_STAGES, STAGE_KEYS, capped_confidence, no_promise

FORMAT = "candor-calibration"
VERSION = 2
Labels = Literal["dataset", "audit", "self-selected"]


class ThresholdEntry(BaseModel):
    """A target risk (alpha) certified by Learn-then-Test and the confidence threshold that
    keeps it (``threshold`` null: not certified)."""

    alpha: float = Field(gt=0, lt=1)
    threshold: float | None = Field(ge=0, le=1)
    answered: int = Field(ge=0, description="Test-split questions answered at this threshold.")
    errors: int = Field(ge=0, description="Wrong ones among them.")
    p_value: float | None = None


class ArtifactSpec(BaseModel):
    """The artifact's JSON schema (``version`` 2: serving settings and split keys pinned)."""

    model_config = ConfigDict(extra="ignore")
    format: Literal["candor-calibration"]
    version: Literal[2]
    id: str = Field(min_length=1)
    created: str
    model: str = Field(min_length=1)
    profile: str = Field(default="default", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    tasks: list[str] = Field(default_factory=list, description="tasks this profile covers")
    dataset: str
    n: int = Field(ge=1)
    split_seed: int
    splits: dict[str, int]
    split_keys: dict[Literal["fit", "test", "heldout"], list[str]] = Field(
        default_factory=dict, description="item keys of each split (eval never re-splits)")
    settings: ServingSettings
    labels: Labels = "dataset"
    guarantee: bool = Field(default=True, description="false: maps only, no promise")
    delta: float = Field(gt=0, lt=1)
    default_alpha: float = Field(gt=0, lt=1, description="fixed before fitting")
    default_alpha_rule: Literal["fixed", "fit-split"] = Field(
        default="fixed", description="fixed: given before fitting; fit-split: the smallest "
        "alpha certified on the fit split, chosen before the test split was looked at")
    default_supported: bool = True
    homogeneous: Literal["fitted", "fallback"] = Field(
        default="fallback", description="fitted: the maps were fitted on single-cluster "
        "(homogeneous) questions too, so the data decide what homogeneity says for this "
        "model; fallback: such a stage keeps the stage-0 confidence (the uncalibrated rule)")
    abstain_threshold: float = Field(ge=0, le=1)
    max_stage: int = Field(default=MAX_STAGE, ge=0, le=MAX_STAGE,
                           description="highest stage in the data")
    maps: list[StageMap | None] = Field(min_length=N_STAGES, max_length=N_STAGES)
    selection: list[dict[str, Any] | None] = Field(
        default_factory=list, description="per stage: which inputs its map got, and why")
    thresholds: dict[str, list[ThresholdEntry]]
    feasibility: dict[str, Any] = Field(default_factory=dict)
    heldout: dict[str, Any] = Field(default_factory=dict)
    collect: dict[str, Any] = Field(default_factory=dict)
    reference: DriftReference | None = Field(
        default=None, description="the calibration set's inputs, for drift (optional)")
    scope: ScopeSpec | None = Field(
        default=None, description="the scope test: which requests the promise covers "
        "(none: no request is known to be like the calibration set, so none gets a promise)")
    claims: ClaimSpec | None = Field(
        default=None, description="the claim-level calibration (claims mode), when the data "
        "were collected with claims labelled per part")

    @field_validator("thresholds")
    @classmethod
    def _stage_keys(cls, v: dict[str, list[ThresholdEntry]]) -> dict[str, list[ThresholdEntry]]:
        bad = sorted(set(v) - set(STAGE_KEYS))
        if bad:
            raise ValueError(f"stage keys must be among {STAGE_KEYS}, got {bad}")
        return v


class CalibratedModel:
    """Per-stage maps + a Learn-then-Test threshold table (see ``thresholds.py``).

    ``fallback`` (answer, abstain) thresholds serve an artifact without a guarantee
    (maps fitted on self-selected labels): its confidences are calibrated, nothing is
    promised.
    """

    calibrated = True

    def __init__(self, spec: ArtifactSpec, fallback: tuple[float, float] = (0.8, 0.2)) -> None:
        self.spec = spec
        self.id: str | None = spec.id
        self.profile: str | None = spec.profile
        self.delta: float | None = spec.delta if spec.guarantee else None
        self.maps = list(spec.maps)
        self.fallback = fallback
        if self.maps[0] is None:
            raise CalibrationError("calibration artifact has no stage-0 map", param="maps")
        self.default_target_risk = spec.default_alpha if spec.guarantee else None
        self.fits_homogeneous = spec.homogeneous == "fitted"
        self.scope: ScopeTest | None = ScopeTest(spec.scope) if spec.scope else None
        self.tasks = tuple(spec.tasks)
        self.claims: ClaimCalibration | None = (
            spec.claims.calibration(spec.id, spec.delta)
            if spec.claims is not None and spec.guarantee else None)

    @property
    def decision_stage(self) -> int:
        """The last stage with a map of its own. Later stages inherit its confidence, so
        running them can never change a decision: the cascade decides here and runs them
        only to record them (audited requests, ``run_all``)."""
        return max(k for k, m in enumerate(self.maps) if m is not None)

    @property
    def answer_max_tokens(self) -> int:
        """The answer ``max_tokens`` the scores were collected with (a request's default)."""
        return self.spec.settings.answer_max_tokens

    def confidence(self, stage: int, features: Mapping[str, float]) -> float:
        """The nearest fitted map at or below ``stage`` (a stage without data inherits)."""
        for k in range(min(stage, MAX_STAGE), -1, -1):
            m = self.maps[k]
            if m is not None:  # a finite sample never justifies certainty: cap below 1
                return capped_confidence(m(features))
        return 0.0

    def supported(self, max_stage: int) -> list[ThresholdEntry]:
        """Entries with a threshold for requests up to ``max_stage``.

        Stages above the data's ``max_stage`` have no map: they inherit the last fitted
        stage's confidence, so the policy of the highest fitted stage applies unchanged.
        """
        if not self.spec.guarantee:
            return []
        rows = self.spec.thresholds.get(str(min(max_stage, self.spec.max_stage)), [])
        return sorted((e for e in rows if e.threshold is not None), key=lambda e: e.alpha)

    def policy(self, target_risk: float | None, max_stage: int) -> PolicyChoice:
        if not self.spec.guarantee:
            hi, lo = self.fallback
            return PolicyChoice(Policy(hi, min(lo, hi), max_stage), None,
                                no_promise("no_guarantee", f"calibration {self.id} was fitted "
                                           f"on {self.spec.labels} labels, not a uniform audit "
                                           "sample; its confidences are calibrated maps and "
                                           "no error rate is promised"))
        table = self.spec.thresholds.get(str(min(max_stage, self.spec.max_stage)), [])
        supported = ", ".join(f"{e.alpha:g}" for e in table if e.threshold is not None)
        if target_risk is None:  # the default alpha, fixed before fitting: its entry only
            entry = next((e for e in table if abs(e.alpha - self.spec.default_alpha) < 1e-9),
                         None)
            if entry is None or entry.threshold is None:  # nothing promised: answer nothing
                return PolicyChoice(Policy(1.0, 1.0, max_stage), None,
                                    no_promise("unsupported", f"the default target risk "
                                               f"{self.spec.default_alpha:g} is not certified "
                                               f"by calibration {self.id} at max_stage="
                                               f"{max_stage}, so every question abstains "
                                               f"(supported: {supported or 'none'})"))
        else:  # the table's largest alpha <= the target: chosen by the target alone
            below = [e for e in table if e.alpha <= target_risk + 1e-12]
            entry = max(below, key=lambda e: e.alpha) if below else None
            if entry is None or entry.threshold is None:
                which = (f"its table entry {entry.alpha:g} is not certified" if entry else
                         f"the lowest target risk in its table is "
                         f"{min((e.alpha for e in table), default=float('nan')):g}")
                raise BadRequest(
                    f"target_risk={target_risk:g} is not supported by calibration {self.id} at "
                    f"max_stage={max_stage}: {which} (supported: {supported or 'none'})",
                    param="policy.target_risk")
        assert entry.threshold is not None
        policy = Policy(entry.threshold, min(self.spec.abstain_threshold, entry.threshold),
                        max_stage)
        return PolicyChoice(policy, entry.alpha, None)

    def request_mismatch(self, max_tokens: int, system: str | None) -> str | None:
        return request_mismatch(self.spec.settings, max_tokens, system)

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/calibration`` reports: the artifact and its promise."""
        s = self.spec
        if not s.guarantee:
            promise = f"none: fitted on {s.labels} labels; confidences are calibrated maps only"
        elif s.scope is None:
            promise = ("none: this artifact has no scope test, so no request is known to be "
                       "drawn like its calibration set (recalibrate with question texts)")
        else:
            promise = (
                f"with probability >= {1 - s.delta:g}, the error rate among answered questions "
                "is <= the target risk, for each target risk listed (each its own statement), "
                "among requests that pass this profile's scope test (p-value >= "
                f"{s.scope.level:g}), for requests drawn like the calibration set and served "
                "with the pinned settings; a request drawn like it fails the scope test with "
                f"probability <= {s.scope.level:g}")
        return {
            "calibrated": True, "id": s.id, "profile": s.profile, "tasks": s.tasks,
            "model": s.model, "dataset": s.dataset, "n": s.n, "created": s.created,
            "labels": s.labels, "guarantee": s.guarantee,
            "delta": s.delta if s.guarantee else None,
            "default_target_risk": s.default_alpha if s.guarantee else None,
            "default_supported": s.default_supported and s.guarantee,
            "abstain_threshold": s.abstain_threshold, "max_stage_calibrated": s.max_stage,
            "promise": promise, "settings": s.settings.model_dump(),
            "supported": {k: [e.model_dump() for e in v if e.threshold is not None]
                          for k, v in s.thresholds.items()} if s.guarantee else {},
            "maps": [None if m is None else {"method": m.method, "n": m.n,
                                             "features": m.features} for m in s.maps],
            "feasibility": s.feasibility, "heldout": s.heldout,
            "scope": None if s.scope is None else {
                "level": s.scope.level, "components": s.scope.components, "k": s.scope.k,
                "bank": s.scope.n_bank,
                "reference": len(s.scope.reference_full), "fitted": s.scope.fitted,
                "heldout": s.heldout.get("scope")},
            "claims": describe_claims(s),
        }


def describe_claims(s: ArtifactSpec) -> dict[str, Any] | None:
    """The claims section as ``GET /v1/calibration`` and ``candor calibrate`` report it: the
    claim-level promise in words and the section's figures (None: no claim calibration)."""
    c = s.claims
    if c is None or not s.guarantee:
        return None
    if c.threshold is None:
        promise = (f"none: no claim threshold is certified at alpha={c.alpha:g} with "
                   f"delta={s.delta:g}; claims mode keeps every claim")
    elif s.scope is None:
        promise = ("none: this artifact has no scope test, so no request is known to be "
                   "drawn like its calibration set")
    else:
        promise = (f"with probability >= {1 - s.delta:g}, at most {c.alpha:g} of answers "
                   "served in claims mode keep a wrong claim (claims at or above the threshold "
                   "are kept), among requests that pass this profile's scope test, asked with "
                   "the pinned settings and allowed to reach stage "
                   f"{c.min_stage if 'support' in c.map['features'] else 0}")
    return {"promise": promise, "target_risk": c.alpha, "threshold": c.threshold,
            "splitter": c.splitter, "features": c.map["features"], "min_stage": c.min_stage,
            "test": c.test, "feasibility": c.feasibility, "heldout": c.heldout}


def parse_artifact(raw: str, source: str, expected_model: str | None = None,
                   fallback: tuple[float, float] = (0.8, 0.2)) -> CalibratedModel:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration artifact {source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError(f"{source} is not a Candor calibration artifact (format != "
                               f"{FORMAT!r})")
    if data.get("version") != VERSION:
        raise CalibrationError(
            f"calibration artifact {source} has version {data.get('version')!r}; this Candor "
            f"reads version {VERSION} (which pins the serving settings): recalibrate with "
            "`candor calibrate`")
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
    return CalibratedModel(spec, fallback)


def load_artifact(path: Path, expected_model: str | None = None,
                  fallback: tuple[float, float] = (0.8, 0.2)) -> CalibratedModel:
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration artifact {path}: {exc}") from exc
    return parse_artifact(raw, str(path), expected_model, fallback)


def save_artifact(spec: ArtifactSpec, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec.model_dump(), indent=1) + "\n", encoding="utf-8")
