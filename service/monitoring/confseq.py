"""An anytime-valid confidence sequence for the mean of [0, 1] observations (pure numpy).

The two-sided normal-mixture uniform boundary of Howard, Ramdas, McAuliffe and Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
2021 (arXiv:1810.08240, the normal mixture of section 3; closed form as in confseq's
``uniform_boundaries.h``, ``normal_mixture_bound(..., is_one_sided=False)``):

    u(v) = sqrt((v + rho) * (log(1 + v / rho) + 2 * log(1 / a)))

bounds |S_t| for every t at once with probability >= 1 - a, where S_t is the centred sum
of t observations and v is the intrinsic time. Observations in [0, 1] are 1/2-sub-Gaussian,
so v = t / 4 (Hoeffding's case; confseq's ``conjmix_hoeffding_twosided_cs``), and

    mu in [ S_t / t - u(t / 4) / t,  S_t / t + u(t / 4) / t ]   for all t, w.p. >= 1 - a.

``rho`` tunes where the boundary is tightest: ``best_rho(v_opt, a) = v_opt / (2 log(1/a) +
log(1 + 2 log(1/a)))`` (confseq) with ``v_opt = t_opt / 4``. The bound depends only on the
running sum and the count, so a monitor updates in O(1) per label; looking after every
label, for ever, keeps the coverage (that is what "anytime-valid" buys over a fixed-n
interval recomputed after each label).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_T_OPT = 500  # labels at which the boundary is tightest (it is valid at every t)


def best_rho(v_opt: float, level: float) -> float:
    """The mixture variance that minimises the boundary at intrinsic time ``v_opt``."""
    ell = 2.0 * np.log(1.0 / level)
    return float(v_opt / (ell + np.log1p(ell)))


def normal_mixture_bound(v: ArrayLike, level: float, rho: float) -> NDArray[np.float64]:
    """The two-sided normal-mixture boundary u(v) (crossing probability ``level``)."""
    v = np.asarray(v, dtype=float)
    return np.asarray(np.sqrt((v + rho) * (np.log1p(v / rho) + 2.0 * np.log(1.0 / level))),
                      dtype=np.float64)


def bernoulli_cs(successes: ArrayLike, n: ArrayLike, level: float = 0.05,
                 t_opt: float = DEFAULT_T_OPT) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower and upper bounds of the confidence sequence after ``n`` observations summing to
    ``successes`` (vectorised; n = 0 gives [0, 1]). Valid for all n simultaneously with
    probability >= 1 - ``level``."""
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    s = np.asarray(successes, dtype=float)
    t = np.asarray(n, dtype=float)
    rho = best_rho(t_opt / 4.0, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(t > 0, s / t, 0.5)
        half = np.where(t > 0, normal_mixture_bound(t / 4.0, level, rho) / t, np.inf)
    return np.clip(mean - half, 0.0, 1.0), np.clip(mean + half, 0.0, 1.0)


def half_width(n: int, level: float = 0.05, t_opt: float = DEFAULT_T_OPT) -> float:
    """The sequence's half-width after ``n`` labels (it depends on n only)."""
    rho = best_rho(t_opt / 4.0, level)
    return float(normal_mixture_bound(n / 4.0, level, rho) / n) if n > 0 else float("inf")
