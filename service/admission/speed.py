"""How fast the engine decodes, measured from Candor's own finished calls.

A batching engine has a roofline: one sequence alone decodes at ``single`` tokens/s, and
``R`` sequences at once run at full speed until together they reach the engine's
``total`` rate, beyond which they share it (each gets ``min(single, total / R)``; a CPU
saturates after a few sequences, a GPU after many). So the time of a pass (``seqs``
sequences of up to ``tokens`` each) started beside ``others`` running sequences is its
tokens over that share. ``single`` is the moving average of calls that ran alone;
``total`` is learnt only from calls that were slowed by sharing (their per-sequence rate
times the sequences running meanwhile); until one is seen the engine is taken not to
saturate, so a quiet start never makes the queue refuse work it has not tried. A pass's
tokens are its ``max_tokens``, capped at two standard deviations above what passes of
its kind (a greedy pass, an escalation) really generated lately, since most stop well
before the cap. Nothing here reads a clock: the caller times each call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ESCALATION, NEW = 0, 1  # priorities and kinds of pass: lower goes first
SHARED = 0.8  # a sequence at under 0.8x the lone speed was slowed by sharing the engine


@dataclass(frozen=True)
class Pass:
    """One engine call a request may make: ``seqs`` sequences of up to ``tokens``."""

    seqs: int
    tokens: int
    kind: int = NEW


@dataclass
class Speed:
    window: int = 20  # calls in the moving averages
    total: float | None = None  # tokens/s of every running sequence together
    single: float | None = None  # tokens/s of one sequence with the engine to itself
    typical: dict[int, float] = field(default_factory=dict)  # tokens per sequence, by kind
    spread: dict[int, float] = field(default_factory=dict)  # their variance, by kind

    def done(self, kind: int, tokens: float, seconds: float, running: float) -> None:
        """A finished call: tokens per sequence, its duration, the sequences running
        meanwhile (its own included)."""
        mean = self.typical.get(kind)
        x = max(tokens, 1.0)
        if mean is not None:
            self.spread[kind] = _ema(self.spread.get(kind), (x - mean) ** 2, self.window)
        self.typical[kind] = _ema(mean, x, self.window)
        per_seq = x / max(seconds, 1e-3)
        if running <= 1.5:
            self.single = _ema(self.single, per_seq, self.window)
        elif self.single is None or per_seq > self.single:
            self.single = per_seq  # a sequence ran at least this fast
        together = per_seq * max(running, 1.0)
        if per_seq < SHARED * self.single:  # slowed by the others: the engine's total rate
            self.total = _ema(self.total, together, self.window)
        elif self.total is not None and together > self.total:
            self.total = together  # unslowed at this many: the total is at least this

    @property
    def knee(self) -> float | None:
        """Sequences at which the engine saturates (``total / single``; None: not seen)."""
        if self.total is None or self.single is None:
            return None
        return self.total / self.single

    @property
    def measured(self) -> bool:
        return self.single is not None

    def share(self, running: int) -> float:
        """Tokens/s each of ``running`` sequences gets (0: unmeasured)."""
        if self.single is None:
            return 0.0
        return self.single if self.total is None else min(
            self.single, self.total / max(1, running))

    def tokens(self, p: Pass) -> float:
        """The tokens per sequence ``p`` may generate: its ``max_tokens``, capped at two
        standard deviations above what passes of its kind generated lately."""
        typical = self.typical.get(p.kind)
        if typical is None:
            return float(p.tokens)
        return min(float(p.tokens), typical + 2.0 * math.sqrt(self.spread.get(p.kind, 0.0)))

    def pass_s(self, p: Pass, others: int) -> float:
        """Seconds ``p`` takes started beside ``others`` running sequences (0: unmeasured)."""
        share = self.share(others + p.seqs)
        return self.tokens(p) / share if share > 0 else 0.0  # rates include the prefill

    def drain_s(self, seqs: int, parallel: int, kind: int = NEW) -> float:
        """Seconds the engine needs for ``seqs`` typical sequences of ``kind``, run
        ``parallel`` at a time (a queue's drain time; 0 while unmeasured)."""
        if self.single is None:
            return 0.0
        rate = self.single * parallel if self.total is None else min(
            self.total, self.single * parallel)
        return seqs * self.typical.get(kind, 1.0) / rate


def _ema(avg: float | None, x: float, window: int) -> float:
    return x if avg is None else avg + (x - avg) * 2.0 / (window + 1)
