"""Early-stopping stage 1 (CANDOR_SAMPLES_ADAPTIVE): draw samples in rounds, stop once decided.

After each round the agreement of the samples with the greedy answer (``a`` of ``k``
agree) is a Beta(a + 1, k - a + 1) posterior over the agreement rate (uniform prior).
Sampling stops as soon as the posterior puts at least ``confidence`` on one side of
1/2 (the greedy answer is the samples' majority, or it is not), or at ``n_max``: the
Beta stopping rule of Adaptive-Consistency (Aggarwal et al. 2023, arXiv 2305.11860),
on the agreement with the greedy answer instead of the majority answer.
"""

from __future__ import annotations

from scipy.special import betainc


def majority_posterior(agree: int, drawn: int) -> float:
    """P(agreement rate > 1/2 | a of k samples agree), uniform prior."""
    return float(1.0 - betainc(agree + 1, drawn - agree + 1, 0.5))


def decided(agree: int, drawn: int, confidence: float) -> bool:
    p = majority_posterior(agree, drawn)
    return p >= confidence or p <= 1.0 - confidence


def rounds(n_max: int, round_size: int) -> list[int]:
    """Sample counts per round: ``round_size`` each, the last one cut to reach ``n_max``."""
    out, left = [], n_max
    while left > 0:
        out.append(min(round_size, left))
        left -= out[-1]
    return out
