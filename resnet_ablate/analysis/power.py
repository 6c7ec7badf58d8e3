"""Seeds per condition for Welch's test: its power, and the n that reaches a planned power.

Planned for a difference the user names (`detect`, percentage points: compare --detect,
sweep --seeds-for --detect), or else the observed one, which callers label post hoc: a
plan from an observed difference over a few seeds inherits that difference's noise.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .inference import ALPHA, _values, check_detect


def welch_power(n: int, sd_a: float, sd_b: float, diff: float, alpha: float = ALPHA,
                grid: int = 128) -> float:
    """The power of Welch's two-sided test at `alpha` with n runs a side, true standard
    deviations sd_a, sd_b and true difference `diff`.

    Given the two sample variances (s² = sd² · χ²_{n-1}/(n-1), independent of the means for
    normal values), Welch's statistic is a normal numerator over a fixed se, tested against
    t at the df Welch computes from those variances: the power is the mean over the two
    χ² distributions (a grid of their quantiles, `grid` a side) of P(|Z + δ| > t_{1-α/2,
    ν̂} · ŝe / se). The noncentral t at Welch's df for the true variances is not used: with
    equal spreads and few seeds it overstates the power (0.78 where a simulation gives
    0.68 at 3 runs a side); the tests check this one against simulation."""
    from scipy import stats

    k = n - 1
    u = stats.chi2.ppf((np.arange(grid) + 0.5) / grid, k) / k
    va, vb = sd_a ** 2 / n, sd_b ** 2 / n
    var_a, var_b = va * u[:, None], vb * u[None, :]  # every pair of the two grids
    se_hat = np.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / ((var_a ** 2 + var_b ** 2) / k)
    q = stats.t.ppf(1 - alpha / 2, df)
    se = math.sqrt(va + vb)
    c, delta = q * se_hat / se, abs(diff) / se
    return float(np.mean(stats.norm.cdf(delta - c) + stats.norm.cdf(-delta - c)))


def seeds_needed(a: Iterable[float], b: Iterable[float] | None = None,
                 detect: float | None = None, alpha: float = ALPHA,
                 power: float = 0.8) -> int | None:
    """Seeds per condition for Welch's two-sided test at `alpha` to detect a difference
    with probability `power` (welch_power, the smallest n that reaches it).

    The difference is `detect` (percentage points, DETECT_RANGE) when given, else the
    observed |mean(a) - mean(b)|: post-hoc planning, which inherits that difference's noise
    (callers say so). Each side's spread is its own sample standard deviation (ddof 1; a
    side with fewer than 2 values takes the other's, and with `b` None both are `a`'s).

    None when undefined: no spread (fewer than 2 values on both sides, or none varies), or
    a zero difference."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be between 0 and 1, got {alpha!r}, {power!r}")
    check_detect(detect, "detect")
    x = _values(a, "a")
    y = _values(b, "b") if b is not None else x
    if detect is None:
        if b is None:
            raise ValueError("seeds_needed: give `b` to plan from the observed difference, "
                             "or `detect` (the difference to detect)")
        if len(x) == 0 or len(y) == 0:
            return None
        diff = abs(float(np.mean(x) - np.mean(y)))
    else:
        diff = float(detect)
    sds = [float(np.std(v, ddof=1)) if len(v) > 1 else None for v in (x, y)]
    if sds == [None, None] or diff == 0:
        return None
    sd_a, sd_b = (s if s is not None else sds[1 - i] for i, s in enumerate(sds))
    if sd_a == 0 and sd_b == 0:
        return None
    if welch_power(2, sd_a, sd_b, diff, alpha) >= power:
        return 2
    hi = 4
    while welch_power(hi, sd_a, sd_b, diff, alpha) < power:
        hi *= 2
    lo = hi // 2  # power(lo) < power <= power(hi): bisect to the smallest n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if welch_power(mid, sd_a, sd_b, diff, alpha) >= power else (mid, hi)
    return hi
