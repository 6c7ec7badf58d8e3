"""Statistical inference over per-seed values: the functions a reviewer accepts.

Pure functions over lists or arrays of per-seed values (one value per seed, e.g. the final
test error of each run of one condition); lower error is better throughout. Every number
comes from a well-kept library (scipy, statsmodels); the formulas are written out only in
the tests, which check the libraries' answers against them.

- `mean_ci`: the mean with its confidence interval over seeds (t-interval, or a seeded
  bootstrap).
- `welch`: the difference of two means, its Welch (Welch-Satterthwaite) interval and the
  two-sided Welch test.
- `holm`, `adjusted`, `caption`: Holm's correction for a table that runs several tests.
- `prob_improvement`: P(a run of `a` has lower error than a run of `b`), rliable's
  definition, with a seeded bootstrap interval.
- `seeds_needed`: seeds per condition to detect a difference (power analysis).
- `edf`, `ks`: error EDFs over sampled models (Radosavovic et al. 2019) and the
  Kolmogorov-Smirnov test between two of them.

Undefined is never shown as zero: an interval over fewer than two values has no bounds
(printed "n/a"), a test that cannot run has no p.

rliable (Agarwal et al. 2021, https://github.com/google-research/rliable) is not a
dependency: rliable 1.2.0 requires arch < 8, and arch 7.2.0 does not import under pandas 3
(it calls pandas' private `deprecate_kwarg` with the pandas 2 signature), so `import
rliable` fails in this project's environment. `prob_improvement` follows its definition
(`rliable.metrics.probability_of_improvement`, with `rliable.library.get_interval_estimates`
for the interval) with scipy.
"""
from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

ALPHA = 0.05
LEVEL = 0.95
RESAMPLES = 10_000

NEEDS_RUNS = "n/a (needs >= 2 runs each)"
NO_VARIANCE = "undefined (no variance)"
SIGNIFICANT = "significant"
NOT_SIGNIFICANT = "not significant"
CORRECTION = "Holm-adjusted (statsmodels multipletests)"


def _values(values: Iterable[float], name: str = "values") -> np.ndarray:
    """The values as a 1-d float array; NaN or infinite values are refused (a missing run
    is left out by the caller, not averaged in)."""
    x = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a flat list of per-seed values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: every value must be finite, got {x.tolist()}")
    return x


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")


def _num(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _bootstrap(data: tuple[np.ndarray, ...], statistic, level: float, seed: int,
               resamples: int) -> tuple[float, float]:
    """scipy.stats.bootstrap, percentile method, seeded; each sample resampled on its own."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    # scipy >= 1.15 takes `rng`; older releases (the project allows scipy >= 1.11) take
    # `random_state`, which accepts the same Generator.
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    with warnings.catch_warnings():  # a constant sample: scipy warns, the interval is right
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(data, statistic, n_resamples=resamples, vectorized=True,
                              paired=False, confidence_level=level, method="percentile",
                              **{key: rng})
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval.

    `low`/`high` are None when the interval is undefined (fewer than two values): it prints
    as "n/a", never as a zero-width interval. `mean` is None only when there is no value at
    all. `n` is the number of values behind it (for `prob_improvement`, the smaller side).
    `method` is "t", "bootstrap" or (for `Comparison.ci`) "welch"; `level` the coverage,
    e.g. 0.95.

    str(): "6.70 [6.20, 7.20]"; "6.70 [n/a]" with one value; "n/a" with none.
    """

    mean: float | None
    low: float | None
    high: float | None
    n: int
    method: str
    level: float = LEVEL

    @property
    def defined(self) -> bool:
        return self.low is not None and self.high is not None

    def format(self, digits: int = 2) -> str:
        if self.mean is None:
            return "n/a"
        if not self.defined:
            return f"{self.mean:.{digits}f} [n/a]"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.format()


def mean_ci(values: Iterable[float], level: float = LEVEL, method: str = "t", seed: int = 0,
            resamples: int = RESAMPLES) -> Interval:
    """The mean over seeds with its `level` confidence interval.

    method="t": mean ± t_{(1+level)/2, n-1} · s/√n (scipy.stats.t), the interval for a mean
    of a few normal-ish values. method="bootstrap": scipy.stats.bootstrap of the mean,
    percentile method, `resamples` resamples from numpy's Generator seeded with `seed`, so the
    same values and seed give the same interval.

    With n < 2 the interval is undefined (low = high = None, printed "n/a"), never zero
    width. With n >= 2 values that are all equal the t-interval is [mean, mean]: s = 0 is
    what the data say, and the caller shows the spread beside it.

    The bootstrap is degenerate for n = 2..3: a resample of n values takes only a handful
    of distinct means (3 for n = 2, 10 for n = 3), and at 95% its interval is just [min, max]
    of the values (e.g. [6.20, 7.10] for 6.2, 7.1, where the t-interval is [0.93, 12.37]):
    it understates the uncertainty, its coverage well below `level`. Use the t-interval
    for so few seeds.
    """
    from scipy import stats

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
        return Interval(mean, low, high, n, method, level)
    sem = float(stats.sem(x))  # s / sqrt(n), s with ddof = 1
    if sem == 0:  # scipy's t.interval is NaN for scale 0; the interval is the point
        return Interval(mean, mean, mean, n, method, level)
    low, high = stats.t.interval(level, df=n - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high), n, method, level)


@dataclass(frozen=True)
class Comparison:
    """Welch's comparison of `a` against `b`: `diff` = mean(a) - mean(b) (negative: `a` has
    the lower error), its `level` interval [low, high] (Welch-Satterthwaite; None when
    undefined), the two-sided Welch `p` (None when the test cannot run), and the `verdict`:
    "significant" / "not significant" at `alpha`, "n/a (needs >= 2 runs each)", or
    "undefined (no variance)" when neither side varies.

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

    @property
    def ci(self) -> Interval:
        """The difference and its interval as an Interval (n: the smaller side)."""
        return Interval(self.diff, self.low, self.high, min(self.n_a, self.n_b), "welch",
                        self.level)

    def format(self, digits: int = 2) -> str:
        if self.diff is None:
            return self.verdict
        ci = (f"[{_num(self.low, digits, True)}, {_num(self.high, digits, True)}]"
              if self.low is not None else "[n/a]")
        text = f"{self.diff:+.{digits}f} {ci}"
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
    side varies: no interval, no p, verdict "undefined (no variance)": the test has
    nothing to say, whatever the means.
    """
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


def prob_improvement(a: Iterable[float], b: Iterable[float], level: float = LEVEL,
                     seed: int = 0, resamples: int = RESAMPLES) -> Interval:
    """P(X < Y) + ½ P(X = Y), X a run of `a`, Y a run of `b`, over all pairs of runs: the
    probability that a run of `a` has a lower error than a run of `b`, ties counted half.

    This is rliable's probability of improvement (Agarwal et al. 2021, "Deep RL at the Edge
    of the Statistical Precipice"; rliable.metrics.probability_of_improvement, which is
    scipy's Mann-Whitney U of x over y divided by n_x·n_y) with "improvement" meaning lower
    error: U of `b` over `a` / (n_a·n_b). The interval is rliable's default
    (library.get_interval_estimates: percentile bootstrap, each side resampled on its own),
    done with scipy.stats.bootstrap, seeded with `seed`.

    `n` of the result is the smaller side; with fewer than 2 values on either side the
    interval is undefined ("n/a"). The same small-n caveat as for `mean_ci`'s bootstrap
    applies: with 2-3 seeds a side the interval is coarse and too narrow.
    """
    from scipy import stats

    _check_level(level)
    x, y = _values(a, "a"), _values(b, "b")
    n = min(len(x), len(y))

    def p_lower(s, t, axis=-1):
        with warnings.catch_warnings():  # all tied: scipy warns about its p, U is right
            warnings.simplefilter("ignore", RuntimeWarning)
            u = stats.mannwhitneyu(t, s, axis=axis, method="asymptotic").statistic
        return u / (s.shape[axis] * t.shape[axis])

    if n == 0:
        return Interval(None, None, None, 0, "bootstrap", level)
    point = float(p_lower(x, y))
    if n < 2:
        return Interval(point, None, None, n, "bootstrap", level)
    low, high = _bootstrap((x, y), p_lower, level, seed, resamples)
    return Interval(point, low, high, n, "bootstrap", level)


def check_detect(detect: float | None) -> None:
    """A difference to plan seeds for (`--detect`): None (the observed one) or a positive,
    finite number of percentage points."""
    if detect is not None and not (math.isfinite(detect) and detect > 0):
        from ..errors import InputError

        raise InputError(f"--detect must be a positive difference in percentage points "
                         f"(e.g. 0.3); got {detect}")


def seeds_needed(a: Iterable[float], b: Iterable[float] | None = None,
                 detect: float | None = None, alpha: float = ALPHA,
                 power: float = 0.8) -> int | None:
    """Seeds per condition for a two-sided test at `alpha` to detect a difference with
    probability `power`.

    The difference is `detect` (in the values' units, e.g. percentage points of error:
    detect=0.3) when given, else the observed |mean(a) - mean(b)|. Cohen's d is that
    difference over the pooled standard deviation of the two samples (of `a` alone when
    `b` is None, which then needs `detect`); n is statsmodels
    TTestIndPower().solve_power(effect_size=d, alpha, power, ratio=1,
    alternative="two-sided"), rounded up, and at least 2 (Welch needs 2 runs a side).

    This is the power of the pooled-variance t-test, the standard approximation for
    Welch's test with equal n a side (their power nearly agrees then; the test file checks
    it by simulation). Planning from an observed difference over a few seeds inherits that
    difference's noise: the answer is a guide, not a guarantee.

    None when undefined: no spread to scale by (fewer than 2 values in all, or none of them
    varies; a `detect` does not help then, as d would be infinite), or a zero difference.
    """
    from statsmodels.stats.power import TTestIndPower

    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be between 0 and 1, got {alpha!r}, {power!r}")
    x = _values(a, "a")
    y = _values(b, "b") if b is not None else np.empty(0)
    if detect is None:
        if b is None:
            raise ValueError("seeds_needed: give `b` to plan from the observed difference, "
                             "or `detect` (the difference to detect)")
        if len(x) == 0 or len(y) == 0:
            return None
        diff = abs(float(np.mean(x) - np.mean(y)))
    else:
        diff = abs(float(detect))
    dof = max(len(x) - 1, 0) + max(len(y) - 1, 0)
    if dof < 1 or diff == 0:
        return None
    ss = sum(float(np.sum((s - np.mean(s)) ** 2)) for s in (x, y) if len(s))
    pooled_sd = math.sqrt(ss / dof)
    if pooled_sd == 0:
        return None
    d = diff / pooled_sd
    analysis = TTestIndPower()
    # statsmodels' exceptions module adds an "always" filter for ConvergenceWarning when
    # first imported: imported here, before the filter below, so that it cannot undo it.
    import statsmodels.tools.sm_exceptions  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning for huge d: handled below
        nobs = analysis.solve_power(effect_size=d, alpha=alpha, power=power, ratio=1.0,
                                    alternative="two-sided")
        nobs = float(np.asarray(nobs).reshape(-1)[0])
        if math.isfinite(nobs):
            return max(2, math.ceil(round(nobs, 6)))
        # The root finder fails when 2 a side is already plenty (d of about 8 and more),
        # and statsmodels' noncentral t can be NaN there too (d of about 9 and more): the
        # power at n = 2 grows with d, so the power at the largest smaller d where it is
        # finite (d x 0.9^k) is a lower bound, and settles it when it reaches `power`.
        at_two = math.nan
        for smaller in (d * 0.9 ** k for k in range(80)):
            at_two = float(analysis.power(effect_size=smaller, nobs1=2, alpha=alpha,
                                          ratio=1.0, alternative="two-sided"))
            if math.isfinite(at_two):
                break
    if at_two >= power:
        return 2
    raise RuntimeError(f"seeds_needed: statsmodels found no n for d = {d:.3g}")


@dataclass(frozen=True, eq=False)
class EDF:
    """An empirical distribution function: F(x[i]) = fraction of the values <= x[i], at the
    sorted distinct values x. Unpacks as (x, F). str(): "EDF of 100 values, 5.10..9.80"."""

    x: np.ndarray
    F: np.ndarray
    n: int

    def __iter__(self):
        return iter((self.x, self.F))

    def at(self, e: float | np.ndarray) -> np.ndarray | float:
        """F(e), the fraction of values <= e (right-continuous, as scipy's ecdf)."""
        out = np.concatenate([[0.0], self.F])[np.searchsorted(self.x, e, side="right")]
        return float(out) if np.ndim(out) == 0 else out

    def __str__(self) -> str:
        if self.n == 0:
            return "EDF of no values"
        return f"EDF of {self.n} values, {self.x[0]:.2f}..{self.x[-1]:.2f}"


def edf(values: Iterable[float]) -> EDF:
    """The error EDF of a design space (Radosavovic et al. 2019, "On Network Design Spaces
    for Visual Recognition", arXiv 1905.13214, Eq. 1): over n sampled models with errors
    e_i, F(e) = (1/n) Σ 1[e_i < e], the fraction of models with error below e.

    Computed with scipy.stats.ecdf: x are the distinct errors in increasing order and
    F[i] the fraction of models with error <= x[i]. Eq. 1's strict "<" is the same step
    function taken from the left: it differs only at the jump points themselves (there it is
    F[i-1]), so a step plot drawn with where="post" is Eq. 1's curve."""
    from scipy import stats

    v = _values(values)
    if len(v) == 0:
        return EDF(np.empty(0), np.empty(0), 0)
    cdf = stats.ecdf(v).cdf
    return EDF(np.asarray(cdf.quantiles, float), np.asarray(cdf.probabilities, float), len(v))


@dataclass(frozen=True)
class KS:
    """The two-sample Kolmogorov-Smirnov test between two EDFs: `statistic` = sup |F_a - F_b|,
    its two-sided `p`. Unpacks as (statistic, p). str(): "KS D = 0.40, p = 0.012"."""

    statistic: float
    p: float
    n_a: int
    n_b: int

    def __iter__(self):
        return iter((self.statistic, self.p))

    def __str__(self) -> str:
        return f"KS D = {self.statistic:.2f}, p = {self.p:.3g}"


def ks(a: Iterable[float], b: Iterable[float]) -> KS | None:
    """Kolmogorov-Smirnov statistic and two-sided p between the EDFs of `a` and `b`
    (scipy.stats.ks_2samp, method="auto": exact for small samples). None when either side
    is empty."""
    from scipy import stats

    x, y = _values(a, "a"), _values(b, "b")
    if len(x) == 0 or len(y) == 0:
        return None
    res = stats.ks_2samp(x, y)
    return KS(float(res.statistic), float(res.pvalue), len(x), len(y))
