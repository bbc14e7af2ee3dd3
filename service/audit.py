"""The audit sample: which decisions are audited, and which audited labels a monitor counts.

**The draw is the server's alone.** A decision is audited when ``draw(id) < rate``, where
``id`` is the response id the server made (a random UUID, never chosen by a client) and
``rate`` is ``CANDOR_AUDIT_RATE``. No request field changes either, so no client can
choose which of its decisions enter the sample (docs/calibration.md, "Audit sampling").
The draw is a hash of the id, so anything that reads the log can recompute it.

**Mixed rates.** The rate is fixed for a server's life but may differ between restarts,
so a log can hold decisions audited at several rates; an unweighted mean of their labels
would over-represent the periods audited more. Inverse-probability weighting would fix
the mean but not the anytime-valid bound around it, so Candor thins instead: an audited
decision drawn at ``rate`` is kept with probability ``common / rate`` (a second,
independent hash of its id), where ``common`` is the lowest positive rate among the
decisions counted. Every kept decision then had the same inclusion probability,
``common``, so the kept labels are a uniform random sample of all decisions served while
auditing was on: equal weights, an unbiased mean, and exact confidence sequences.
With one rate (the usual case) nothing is thinned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SCALE = float(16**13)


def _uniform(rid: str, salt: str) -> float:
    """A uniform number in [0, 1) from ``rid`` (52 bits of SHA-256)."""
    return int(hashlib.sha256(f"{salt}:{rid}".encode()).hexdigest()[:13], 16) / _SCALE


def draw(rid: str) -> float:
    """The audit draw of the decision ``rid``."""
    return _uniform(rid, "audit")


def audited(rid: str, rate: float) -> bool:
    """Whether the decision ``rid`` is in the audit sample drawn at ``rate``."""
    return draw(rid) < rate


def common_rate(rates: Iterable[float | None]) -> float | None:
    """The lowest positive audit rate among ``rates`` (None: none was positive)."""
    positive = [float(r) for r in rates if r is not None and r > 0]
    return min(positive) if positive else None


def kept(rid: str, rate: float | None, common: float | None) -> bool:
    """Whether the audited decision ``rid``, drawn at ``rate``, counts in the sample thinned
    to ``common`` (inclusion probability ``common`` for every decision kept). A rate not
    recorded (an older log) is taken as the common one when no rate is known at all."""
    if rate is None or rate <= 0 or common is None:
        return rate is None and common is None
    return rate <= common or _uniform(rid, "thin") < common / rate
