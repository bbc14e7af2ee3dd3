"""The scope test: is a request drawn like a profile's calibration questions?

A calibration promise holds for requests drawn like its calibration set. This module
tests that per request, with a conformal p-value (Vovk et al. 2005; Bates et al. 2023,
"Testing for outliers with conformal p-values"):

* **Components.** Each is a statistic of the request, standardised against a *bank* of
  calibration questions (robust z: distance from the bank's median in units of its
  scaled MAD): ``similarity`` (mean cosine similarity of the request's embedding to its
  ``k`` nearest bank questions; strange when low, one-sided), ``question_length`` and
  ``answer_length`` (log characters of the text as the model sees it and of the greedy
  answer; strange at either end). The request components are known before generation
  (routing uses them), the answer component once the greedy answer is.
* **Score.** The largest z over the components: a request is as strange as its
  strangest part. (Continuous, so a request far outside the bank is stranger than every
  reference question, and gets the smallest p-value, ``1 / (n_ref + 1)``.)
* **p-value.** Against a *reference* set of calibration questions disjoint from the bank
  (so the scorer never saw them): ``p = (1 + #{ref >= s}) / (n_ref + 1)``. For a request
  exchangeable with the calibration questions, ``P(p <= level) <= level``: at most
  ``level`` of such traffic is turned away.

Bank and reference both come from the artifact's *fit* split, so the test is a fixed
function before the *test* split is looked at: the Learn-then-Test thresholds fitted on
the test split's in-scope questions then hold exactly for the in-scope requests served
(``build.py``). What it cannot see is in docs/calibration.md.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Component = Literal["similarity", "question_length", "answer_length"]
COMPONENTS: tuple[Component, ...] = ("similarity", "question_length", "answer_length")
REQUEST_COMPONENTS: tuple[Component, ...] = ("similarity", "question_length")
DEFAULT_LEVEL = 0.05
DEFAULT_K = 5
Embed = Callable[[list[str]], np.ndarray]


def scope_text(question: str, context: str | None = None, instruction: str | None = None) -> str:
    """The request as the scope test reads it: the question without a trailing fixed
    instruction (the profile's math instruction), after its context when it has one."""
    q = question.strip()
    if instruction and q.endswith(instruction):
        q = q[: -len(instruction)].rstrip()
    return f"{context.strip()}\n\n{q}" if context and context.strip() else q


def log_length(text: str) -> float:
    return float(np.log1p(len(text.strip())))


class ScopeSpec(BaseModel):
    """What an artifact stores of its scope test (the bank is float16, base64)."""

    model_config = ConfigDict(extra="forbid")
    level: float = Field(gt=0, lt=1, description="p-value below which a request is out of "
                         "scope; fixed before fitting")
    components: list[Component] = Field(min_length=1)
    k: int = Field(ge=1)
    dim: int = Field(ge=0)
    bank: str = Field(description="bank embeddings, float16 little-endian, base64")
    n_bank: int = Field(ge=1)
    center: dict[Component, float] = Field(description="each component's bank median")
    scale: dict[Component, float] = Field(description="each component's bank scale (1.4826 "
                                          "MAD, floored)")
    reference_request: list[float] = Field(description="request-side scores (max z) of the "
                                           "reference questions, sorted")
    reference_full: list[float] = Field(description="full scores of the reference, sorted")
    instruction: str | None = None
    fitted: str = ""


FLOOR: dict[Component, float] = {  # a bank of identical lengths still has a scale
    "similarity": 0.01, "question_length": 0.1, "answer_length": 0.1}


def _center_scale(values: np.ndarray, component: Component) -> tuple[float, float]:
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * 1.4826
    return med, max(mad, FLOOR[component])


def _knn_similarity(emb: np.ndarray, bank: np.ndarray, k: int,
                    exclude_self: bool = False) -> np.ndarray:
    sims = emb @ bank.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    k = max(1, min(k, bank.shape[0] - (1 if exclude_self else 0)))
    top = -np.sort(-sims, axis=1)[:, :k]
    return np.asarray(top.mean(axis=1), dtype=float)


def _p(sorted_ref: np.ndarray, s: float) -> float:
    """(1 + #{ref >= s}) / (n + 1): small when s is larger than nearly every reference."""
    at_least = len(sorted_ref) - np.searchsorted(sorted_ref, s, side="left")
    return float((1 + at_least) / (len(sorted_ref) + 1))


class ScopeTest:
    """The runtime scope test of one profile (built from its ``ScopeSpec``)."""

    def __init__(self, spec: ScopeSpec) -> None:
        self.spec = spec
        self.level = spec.level
        self.uses = set(spec.components)
        raw = base64.b64decode(spec.bank) if spec.bank else b""
        vecs = np.frombuffer(raw, dtype="<f2").astype(float)
        self.bank = vecs.reshape(-1, spec.dim) if spec.dim else np.zeros((0, 0))
        self._ref_req = np.asarray(spec.reference_request, dtype=float)
        self._ref_full = np.asarray(spec.reference_full, dtype=float)

    @property
    def needs_embedding(self) -> bool:
        return "similarity" in self.uses

    def text(self, question: str, context: str | None) -> str:
        return scope_text(question, context, self.spec.instruction)

    def _z(self, component: Component, x: float) -> float:
        z = (x - self.spec.center[component]) / self.spec.scale[component]
        return -z if component == "similarity" else abs(z)  # low similarity is strange

    def request_stat(self, text: str, embedding: np.ndarray | None) -> float:
        """The request's score before generation: max z over the request components (0.0
        when it uses none: every request ties, so the request-side p-value is 1)."""
        z: list[float] = []
        if "similarity" in self.uses:
            if embedding is None:
                raise ValueError("the scope test needs the request's embedding")
            vec = np.asarray(embedding, dtype="<f2").astype(float).reshape(1, -1)  # as stored
            if vec.shape[1] != self.spec.dim:
                raise ValueError(f"the scope test was fitted on {self.spec.dim}-dimensional "
                                 f"embeddings, this server's have {vec.shape[1]}")
            z.append(self._z("similarity", _knn_similarity(vec, self.bank, self.spec.k)[0]))
        if "question_length" in self.uses:
            z.append(self._z("question_length", log_length(text)))
        return float(max(z)) if z else 0.0

    def full_stat(self, request_stat: float, answer: str) -> float:
        if "answer_length" not in self.uses:
            return request_stat
        return max(request_stat, self._z("answer_length", log_length(answer)))

    def p_request(self, request_stat: float) -> float:
        return _p(self._ref_req, request_stat)

    def p_full(self, request_stat: float, answer: str) -> float:
        return _p(self._ref_full, self.full_stat(request_stat, answer))


def _encode_bank(emb: np.ndarray) -> str:
    return base64.b64encode(np.asarray(emb, dtype="<f2").tobytes()).decode("ascii")


def fit_scope(texts: Sequence[str], answers: Sequence[str], embed: Embed | None, *,
              level: float = DEFAULT_LEVEL, seed: int = 0,
              components: Sequence[Component] = COMPONENTS, k: int = DEFAULT_K,
              instruction: str | None = None) -> ScopeSpec:
    """Fit a scope test on calibration questions (``texts`` as ``scope_text`` gives them,
    with their greedy ``answers``): half of them, drawn with ``seed``, are the bank, the
    other half the reference the p-values are taken against."""
    n = len(texts)
    n_ref = n - n // 2
    if n < 4 or (n_ref + 1) * level <= 1:  # p >= 1 / (n_ref + 1): it could never reject
        raise ValueError(
            f"a scope test at level {level:g} needs at least {int(np.floor(1 / level))} "
            f"reference questions (half the fit split), and has {n_ref}: label more "
            "questions, or set a larger --scope-level")
    if "similarity" in components and embed is None:
        raise ValueError("the similarity component needs an embedder")
    idx = np.random.default_rng(seed).permutation(n)
    bank_i, ref_i = idx[: n // 2], idx[n // 2:]
    qlen = np.array([log_length(t) for t in texts])
    alen = np.array([log_length(a) for a in answers])
    dim, bank_b64 = 0, ""
    values: dict[Component, np.ndarray] = {"question_length": qlen[bank_i],
                                           "answer_length": alen[bank_i]}
    if "similarity" in components:
        assert embed is not None
        emb = np.asarray(embed(list(texts)), dtype=float)
        # what is stored (float16) is what scores: fit on the stored values
        emb = np.frombuffer(base64.b64decode(_encode_bank(emb)), dtype="<f2").astype(float)
        emb = emb.reshape(n, -1)
        dim, bank_b64 = emb.shape[1], _encode_bank(emb[bank_i])
        values["similarity"] = _knn_similarity(emb[bank_i], emb[bank_i], k, exclude_self=True)
    stats = {c: _center_scale(values[c], c) for c in components}
    spec = ScopeSpec(
        level=level, components=list(components), k=k, dim=dim, bank=bank_b64,
        n_bank=len(bank_i), center={c: v[0] for c, v in stats.items()},
        scale={c: v[1] for c, v in stats.items()},
        reference_request=[], reference_full=[], instruction=instruction,
        fitted=f"fit split: bank {len(bank_i)}, reference {len(ref_i)} (seed {seed})")
    test = ScopeTest(spec)
    ref_emb = emb[ref_i] if "similarity" in components else None
    req = [test.request_stat(texts[i], None if ref_emb is None else ref_emb[j])
           for j, i in enumerate(ref_i)]
    full = [test.full_stat(r, answers[i]) for r, i in zip(req, ref_i, strict=True)]
    return spec.model_copy(update={"reference_request": sorted(req),
                                   "reference_full": sorted(full)})


def p_values(test: ScopeTest, texts: Sequence[str], answers: Sequence[str],
             embed: Embed | None) -> np.ndarray:
    """The full p-value of each (text, answer): batch form, for calibration and benchmarks."""
    emb = (np.asarray(embed(list(texts)), dtype=float)
           if test.needs_embedding and embed is not None and texts else None)
    return np.array([test.p_full(test.request_stat(t, None if emb is None else emb[i]), a)
                     for i, (t, a) in enumerate(zip(texts, answers, strict=True))])
