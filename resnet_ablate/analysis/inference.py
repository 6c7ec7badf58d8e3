"""Statistical inference over per-seed values: the functions a reviewer accepts.

Pure functions over lists or arrays of per-seed values (one value per seed, e.g. the final
test error of each run of one condition); lower error is better throughout. Every number
comes from a well-kept library (scipy, statsmodels); the formulas are written out only in
the tests, which check the libraries' answers against them, and every interval printed as
95% has a coverage simulation there.

- `mean_ci`: the mean with its interval over seeds (t-interval, or a seeded bootstrap that
  says when it falls short of its level), clipped to an error rate's [0, 100].
- `welch`: the difference of two means, its Welch interval and the two-sided Welch test.
- `holm`, `adjusted`, `caption`: Holm's correction for a table that runs several tests.
- `prob_improvement`: P(a run of `a` has lower error than a run of `b`) with the exact
  two-sided Mann-Whitney p of that same statistic; `rank_comparison`, the rank test as a
  table's comparison (He et al. 2016's medians, diverged runs counted as worst).
- `margin_test`: "no worse than" and "equivalent" only against a stated margin
  (statsmodels' TOST, Welch's variances).
- `check_detect`: the range of a difference to plan for (analysis.power plans the seeds).

Undefined is never shown as zero: an interval over fewer than two values has no bounds
(printed "n/a"), a test that cannot run has no p, and one run on either side gets no
directional verdict.

rliable (Agarwal et al. 2021) is not a dependency: rliable 1.2.0 requires arch < 8, which
does not import under pandas 3. `prob_improvement` follows its definition with scipy; its
bootstrap interval is not given: with the 2-5 seeds a side this harness sees it is
degenerate (fully separated 3 v 3 samples give [1.00, 1.00] where the exact rank test's p is
0.10), so the exact p stands beside the estimate instead.
"""
from __future__ import annotations

import functools
import inspect
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

ALPHA = 0.05
LEVEL = 0.95
RESAMPLES = 10_000
EXACT_PAIRS = 2_500  # Mann-Whitney's exact null up to 50 x 50 runs; beyond: normal approx.
ERROR_BOUNDS = (0.0, 100.0)  # an error rate in percent: its interval stays inside
# The seeds from which the percentile bootstrap of a mean covers within 1.5 points of its
# 95% (tests/test_inference.py simulates it: about 76% at n = 3, 91% at 10, 94% at 40).
BOOTSTRAP_NOMINAL_N = 40
# --detect, in percentage points of error: above 0 (0.001 is below one image of a 50,000
# image test set) and at most the whole scale.
DETECT_RANGE = (0.001, 100.0)

NEEDS_RUNS = "n/a (needs >= 2 runs each)"
NO_VARIANCE = "undefined (no variance)"
SIGNIFICANT = "significant"
NOT_SIGNIFICANT = "not significant"
CORRECTION = "Holm-adjusted (statsmodels multipletests)"
WELCH = "Welch"
MANN_WHITNEY = "Mann-Whitney"


def _values(values: Iterable[float], name: str = "values", inf: bool = False) -> np.ndarray:
    """The values as a 1-d float array; NaN (or, unless `inf`, infinite) values are refused
    (a missing run is left out by the caller, not averaged in)."""
    x = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a flat list of per-seed values, got shape {x.shape}")
    if not np.all(np.isfinite(x) | (inf & np.isposinf(x))):
        raise ValueError(f"{name}: every value must be finite, got {x.tolist()}")
    return x


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")


def _num(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _seeded(func, seed: int) -> dict:
    """scipy >= 1.15 takes `rng`; older releases (the project allows scipy >= 1.11) take
    `random_state`, which accepts the same Generator."""
    key = "rng" if "rng" in inspect.signature(func).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def _bootstrap(data: tuple[np.ndarray, ...], statistic, level: float, seed: int,
               resamples: int) -> tuple[float, float]:
    """scipy.stats.bootstrap, percentile method, seeded; each sample resampled on its own."""
    from scipy import stats

    with warnings.catch_warnings():  # a constant sample: scipy warns, the interval is right
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(data, statistic, n_resamples=resamples, vectorized=True,
                              paired=False, confidence_level=level, method="percentile",
                              **_seeded(stats.bootstrap, seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval.

    `low`/`high` are None when the interval is undefined (fewer than two values): it prints
    as "n/a", never as a zero-width interval. `mean` is None only when there is no value at
    all. `n` is the number of values behind it. `method` is "t", "bootstrap" or (for
    `Comparison.ci`) "welch"; `level` the coverage it is built for, e.g. 0.95; `nominal`
    False when a simulation shows it covers less at this n (a bootstrap over few seeds):
    it then prints with a "*" and its label says so.

    str(): "6.70 [6.20, 7.20]"; "6.70 [n/a]" with one value; "n/a" with none.
    """

    mean: float | None
    low: float | None
    high: float | None
    n: int
    method: str
    level: float = LEVEL
    nominal: bool = True

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def format(self, digits: int = 2) -> str:
        if self.mean is None:
            return "n/a"
        if not self.defined:
            return f"{self.mean:.{digits}f} [n/a]"
        mark = "" if self.nominal else "*"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]{mark}"

    def __str__(self) -> str:
        return self.format()


def bootstrap_note(level: float = LEVEL) -> str:
    """What a '*' beside a bootstrap interval means."""
    return (f"* percentile bootstrap over fewer than {BOOTSTRAP_NOMINAL_N} runs: it covers "
            f"less than its {level:.0%} (about 76% at 3 runs, in simulation)")


@functools.lru_cache(maxsize=256)
def _t_quantile(q: float, df: int) -> float:
    """scipy.stats.t.ppf, once per (q, df): a figure's bands ask it at every iteration."""
    from scipy import stats

    return float(stats.t.ppf(q, df))


def mean_ci(values: Iterable[float], level: float = LEVEL, method: str = "t", seed: int = 0,
            resamples: int = RESAMPLES, bounds: tuple[float, float] | None = None
            ) -> Interval:
    """The mean over seeds with its `level` confidence interval.

    method="t": mean ± t_{(1+level)/2, n-1} · s/√n (scipy.stats.t), the interval for a mean
    of a few normal-ish values (exact coverage for normal values). method="bootstrap":
    scipy.stats.bootstrap of the mean, percentile method, `resamples` resamples seeded with
    `seed`. The bootstrap covers well below `level` over few values (about 76% at n = 3,
    where it is [min, max] of the values); below BOOTSTRAP_NOMINAL_N values its Interval
    has nominal=False and prints a "*".

    `bounds`: the range the quantity lives in (ERROR_BOUNDS for an error rate in percent):
    the interval is clipped to it, which can only raise its coverage.

    With n < 2 the interval is undefined (low = high = None, printed "n/a"), never zero
    width. With n >= 2 values that are all equal the t-interval is [mean, mean]: s = 0 is
    what the data say, and the caller shows the spread beside it.
    """
    _check_level(level)
    if method not in ("t", "bootstrap"):
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    x = _values(values)
    n = len(x)
    if n == 0:
        return Interval(None, None, None, 0, method, level)
    mean = float(np.mean(x))
    if n < 2:
        return Interval(mean, None, None, n, method, level)
    if method == "bootstrap":
        low, high = _bootstrap((x,), lambda s, axis: np.mean(s, axis=axis), level, seed,
                               resamples)
    else:
        sem = float(np.std(x, ddof=1)) / math.sqrt(n)  # s / sqrt(n)
        half = sem * _t_quantile((1 + level) / 2, n - 1)  # s = 0: the interval is the point
        low, high = mean - half, mean + half
    if bounds is not None:
        low, high = min(max(low, bounds[0]), bounds[1]), min(max(high, bounds[0]), bounds[1])
    return Interval(mean, low, high, n, method, level,
                    nominal=method == "t" or n >= BOOTSTRAP_NOMINAL_N)


@dataclass(frozen=True)
class Comparison:
    """One test of `a` against `b`: `diff` = mean(a) - mean(b) for Welch's test (median(a) -
    median(b) for the rank test; negative: `a` has the lower error), its `level` interval
    [low, high] (Welch-Satterthwaite; None when undefined or for the rank test), the
    two-sided `p` (None when the test cannot run), and the `verdict`: "significant" / "not
    significant" at `alpha`, "n/a (needs >= 2 runs each)", or "undefined (no variance)".
    `test`: "Welch" or "Mann-Whitney".

    After `adjusted()`, `p_adjusted` holds the Holm-adjusted p, `correction` says so, and
    the verdict follows the adjusted p.

    str(): "+0.50 [-0.10, +1.10], p = 0.089, not significant";
    with a correction: "+0.50 [-0.10, +1.10], p = 0.089 (Holm: 0.27), not significant".
    """

    diff: float | None
    low: float | None
    high: float | None
    p: float | None
    verdict: str
    n_a: int
    n_b: int
    level: float = LEVEL
    alpha: float = ALPHA
    p_adjusted: float | None = None
    correction: str | None = None
    test: str = WELCH

    @property
    def ci(self) -> Interval:
        """The difference and its interval as an Interval (n: the smaller side)."""
        return Interval(self.diff, self.low, self.high, min(self.n_a, self.n_b), "welch",
                        self.level)

    @property
    def tested(self) -> bool:
        return self.p is not None

    def format(self, digits: int = 2) -> str:
        if self.diff is None and self.p is None:
            return self.verdict
        ci = (f"[{_num(self.low, digits, True)}, {_num(self.high, digits, True)}]"
              if self.low is not None else "[n/a]")
        text = f"{_num(self.diff, digits, True)} {ci}"
        if self.p is not None:
            text += f", p = {self.p:.3g}"
            if self.p_adjusted is not None:
                text += f" (Holm: {self.p_adjusted:.3g})"
        return f"{text}, {self.verdict}"

    def __str__(self) -> str:
        return self.format()


def _verdict(p: float, alpha: float) -> str:
    return SIGNIFICANT if p < alpha else NOT_SIGNIFICANT


def welch(a: Iterable[float], b: Iterable[float], alpha: float = ALPHA,
          level: float = LEVEL) -> Comparison:
    """Welch's two-sided t-test of `a` against `b` with the interval of mean(a) - mean(b).

    p: scipy.stats.ttest_ind(a, b, equal_var=False). Interval: statsmodels
    CompareMeans.tconfint_diff(usevar="unequal"), i.e. diff ± t_{(1+level)/2, ν} · se with
    se² = s_a²/n_a + s_b²/n_b and the Welch-Satterthwaite ν.

    Either side with fewer than 2 values: no interval, no p, verdict
    "n/a (needs >= 2 runs each)" (diff still given when both sides have a value). Neither
    side varies: no interval, no p, verdict "undefined (no variance)"."""
    from scipy import stats
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    _check_level(level)
    x, y = _values(a, "a"), _values(b, "b")
    diff = float(np.mean(x) - np.mean(y)) if len(x) and len(y) else None
    kw = dict(n_a=len(x), n_b=len(y), level=level, alpha=alpha)
    if len(x) < 2 or len(y) < 2:
        return Comparison(diff, None, None, None, NEEDS_RUNS, **kw)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Comparison(diff, None, None, None, NO_VARIANCE, **kw)
    with warnings.catch_warnings():  # nearly equal samples: scipy warns, the p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    low, high = CompareMeans(DescrStatsW(x), DescrStatsW(y)).tconfint_diff(
        alpha=1 - level, alternative="two-sided", usevar="unequal")
    return Comparison(diff, float(low), float(high), p, _verdict(p, alpha), **kw)


def _untested(p: float | None) -> bool:
    return p is None or (isinstance(p, float) and math.isnan(p))


def holm(pvalues: Sequence[float | None], alpha: float = ALPHA
         ) -> tuple[list[float | None], list[bool | None]]:
    """Holm's step-down correction (statsmodels.stats.multitest.multipletests,
    method="holm") of the p-values of one table.

    Returns (adjusted p-values, rejections), in the order given. A None (or NaN) entry, a
    pair that could not be tested, stays None in both lists and is not counted as a test:
    m is the number of real p-values."""
    from statsmodels.stats.multitest import multipletests

    tested = [i for i, p in enumerate(pvalues) if not _untested(p)]
    adjusted: list[float | None] = [None] * len(pvalues)
    reject: list[bool | None] = [None] * len(pvalues)
    if tested:
        rej, p_adj, _, _ = multipletests([float(pvalues[i]) for i in tested], alpha=alpha,
                                         method="holm")
        for i, r, q in zip(tested, rej, p_adj):
            adjusted[i], reject[i] = float(q), bool(r)
    return adjusted, reject


def tests_counted(pvalues: Sequence[float | None]) -> int:
    """How many of `pvalues` are tests (None and NaN are not)."""
    return sum(not _untested(p) for p in pvalues)


def caption(tests: int | Sequence[float | None]) -> str:
    """The caption's account of the correction: "3 tests, Holm-adjusted (statsmodels
    multipletests)". `tests` is the number of tests or the table's p-values (None entries
    are not tests)."""
    m = tests if isinstance(tests, int) else tests_counted(tests)
    if m == 0:
        return "no tests"
    return f"{m} test{'s' if m != 1 else ''}, {CORRECTION}"


def adjusted(comparisons: Sequence[Comparison], alpha: float = ALPHA) -> list[Comparison]:
    """The comparisons of one table with Holm-adjusted p-values (`holm` over their p's):
    each keeps its raw `p`, gains `p_adjusted` and `correction`, and its verdict follows
    the adjusted p at `alpha`. Comparisons without a p keep their verdict."""
    adj, _ = holm([c.p for c in comparisons], alpha)
    m = tests_counted([c.p for c in comparisons])
    out = []
    for c, q in zip(comparisons, adj):
        if q is None:
            out.append(c)
        else:
            out.append(replace(c, p_adjusted=q, alpha=alpha, verdict=_verdict(q, alpha),
                               correction=f"Holm over {m} tests"))
    return out


# ------------------------------------------------------------------------- rank tests
@dataclass(frozen=True)
class RankTest:
    """P(X < Y) + ½ P(X = Y) over the pairs of runs (`prob`) and the two-sided p of the
    Mann-Whitney test of that same statistic (`p`; None with no run on a side). `method`:
    "exact" (scipy's exact null distribution, no ties), "permutation" (every split
    enumerated; ties handled) or, with many runs, "asymptotic" (the normal approximation
    with its tie correction). str(): "1.00 (exact p = 0.1)"."""
    prob: float | None
    p: float | None
    n_a: int
    n_b: int
    method: str = "exact"

    def format(self, digits: int = 2) -> str:
        if self.prob is None:
            return "n/a"
        exact = "" if self.method == "asymptotic" else "exact "
        return f"{self.prob:.{digits}f}" + ("" if self.p is None else
                                           f" ({exact}p = {self.p:.2g})")

    def __str__(self) -> str:
        return self.format()


def _u_lower(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pairs with x < y, ties counted half, along `axis` (vectorised for scipy)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    lt = (x[..., :, None] < y[..., None, :]).sum(axis=(-1, -2))
    eq = (x[..., :, None] == y[..., None, :]).sum(axis=(-1, -2))
    return lt + 0.5 * eq


def prob_improvement(a: Iterable[float], b: Iterable[float], seed: int = 0,
                     resamples: int = RESAMPLES) -> RankTest:
    """The probability that a run of `a` has a lower error than a run of `b` (ties count
    half): rliable's probability of improvement (Agarwal et al. 2021; scipy's Mann-Whitney
    U of `b` over `a` / (n_a·n_b)), with the two-sided p of the exact rank test of it.

    Without ties: scipy.stats.mannwhitneyu(method="exact"). With ties (equal errors, or
    diverged runs given as +inf, which tie as the worst): scipy.stats.permutation_test of
    the same U, exact when the splits number at most `resamples` (10 runs: 252), else
    `resamples` seeded permutations. Infinite values (a diverged run) are allowed here."""
    from scipy import stats

    x, y = _values(a, "a", inf=True), _values(b, "b", inf=True)
    if len(x) == 0 or len(y) == 0:
        return RankTest(None, None, len(x), len(y))
    # U of y over x by ranks (ties half; n log n: thousands of seeds a side are cheap)
    prob = float(stats.mannwhitneyu(y, x, method="asymptotic").statistic) / (len(x) * len(y))
    pooled = np.concatenate([x, y])
    if np.all(pooled == pooled[0]):
        return RankTest(prob, 1.0, len(x), len(y), "permutation")
    ties = len(np.unique(pooled)) < len(pooled)
    if not ties and len(x) * len(y) <= EXACT_PAIRS:
        p = float(stats.mannwhitneyu(x, y, method="exact").pvalue)
        return RankTest(prob, p, len(x), len(y), "exact")
    if ties and math.comb(len(x) + len(y), len(x)) <= resamples:  # every split: exact
        res = stats.permutation_test((x, y), _u_lower, permutation_type="independent",
                                     vectorized=True, n_resamples=resamples,
                                     alternative="two-sided",
                                     **_seeded(stats.permutation_test, seed))
        return RankTest(prob, min(1.0, float(res.pvalue)), len(x), len(y), "permutation")
    # many runs: the normal approximation with its tie correction (and diverged runs, +inf,
    # ranked worst), where enumerating splits would cost minutes and gigabytes
    p = float(stats.mannwhitneyu(x, y, method="asymptotic").pvalue)
    return RankTest(prob, p, len(x), len(y), "asymptotic")


def rank_comparison(a: Iterable[float], b: Iterable[float], alpha: float = ALPHA
                    ) -> tuple[Comparison, RankTest]:
    """The rank test as a table's comparison, for tables that show medians (He et al.
    2016): diff = median(a) - median(b) (None when a median is a diverged run, +inf), no
    interval, p = the exact Mann-Whitney p of `prob_improvement`. Fewer than 2 runs on a
    side: no p, no verdict."""
    x, y = _values(a, "a", inf=True), _values(b, "b", inf=True)
    med = [float(np.median(v)) if len(v) else math.inf for v in (x, y)]
    diff = med[0] - med[1] if all(map(math.isfinite, med)) else None
    rank = prob_improvement(x, y)
    kw = dict(n_a=len(x), n_b=len(y), alpha=alpha, test=MANN_WHITNEY)
    if len(x) < 2 or len(y) < 2:
        return Comparison(diff, None, None, None, NEEDS_RUNS, **kw), rank
    return Comparison(diff, None, None, rank.p, _verdict(rank.p, alpha), **kw), rank


# ------------------------------------------------------------------ a stated margin
@dataclass(frozen=True)
class MarginTest:
    """`a` against `b` with a stated margin m (values' units): `p_no_worse` tests
    H0: mean(a) - mean(b) >= m (non-inferiority: a is no worse than b by m or more),
    `p_equivalent` is TOST's p for |mean(a) - mean(b)| < m; None when untestable."""
    margin: float
    p_no_worse: float | None
    p_equivalent: float | None


def margin_test(a: Iterable[float], b: Iterable[float], margin: float) -> MarginTest:
    """statsmodels.stats.weightstats.ttost_ind(a, b, -margin, margin, usevar="unequal"):
    two one-sided Welch tests; the upper one alone is the non-inferiority test. Either
    side under 2 values, or neither varying: no p."""
    from statsmodels.stats.weightstats import ttost_ind

    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    x, y = _values(a, "a"), _values(b, "b")
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return MarginTest(margin, None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p, _, upper = ttost_ind(x, y, -margin, margin, usevar="unequal")
    return MarginTest(margin, float(upper[1]), float(p))


# ------------------------------------------------------------------------------ power
def check_detect(detect: float | None, flag: str = "--detect") -> None:
    """A difference to plan seeds for: None, or percentage points of error in
    DETECT_RANGE (an InputError, one line, otherwise)."""
    lo, hi = DETECT_RANGE
    if detect is not None and not (isinstance(detect, (int, float)) and lo <= detect <= hi):
        from ..errors import InputError

        raise InputError(f"{flag} must be a difference in percentage points of error in "
                         f"[{lo:g}, {hi:g}] (e.g. 0.3); got {detect!r}")
