"""resnet_ablate.analysis.inference (and analysis.edf) against hand computations, the
libraries themselves and simulation.

Each formula is written out here with numpy (the module only calls the libraries), so a
wrong call (a wrong ddof, a pooled where Welch was meant, a one-sided p, a quantile at
0.95 instead of 0.975) fails a test; and every interval the harness prints as 95% is
simulated here (small, seeded: seconds), as is the power seeds_needed plans for.
"""
import inspect
import math
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from conftest import run_python

from resnet_ablate.analysis import inference as inf
from resnet_ablate.analysis.edf import edf, ks
from resnet_ablate.analysis.inference import (
    ALPHA, BOOTSTRAP_NOMINAL_N, ERROR_BOUNDS, Comparison, Interval, adjusted, caption, holm,
    margin_test, mean_ci, prob_improvement, welch)
from resnet_ablate.analysis.power import seeds_needed, welch_power
from resnet_ablate.errors import InputError

# Final test error (%) of two conditions over seeds.
A = [6.2, 6.9, 7.4, 6.5, 7.0]
B = [7.4, 7.9, 7.6, 8.2]
T_975_DF4 = 2.7764451051977987  # t_{0.975, 4} from a t table (not from scipy)


def _seeded(seed):  # scipy >= 1.15 takes rng=, older releases random_state= (same Generator)
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


# --- mean_ci -----------------------------------------------------------------------------

def test_t_interval_is_mean_pm_t_s_over_sqrt_n():
    x = np.array(A)
    n, m, s = len(x), x.mean(), x.std(ddof=1)
    half = T_975_DF4 * s / math.sqrt(n)
    ci = mean_ci(A)
    assert (ci.n, ci.method, ci.level) == (5, "t", 0.95)
    assert ci.mean == pytest.approx(m, abs=1e-12)
    assert ci.low == pytest.approx(m - half, abs=1e-9)
    assert ci.high == pytest.approx(m + half, abs=1e-9)
    assert str(ci) == f"{m:.2f} [{m - half:.2f}, {m + half:.2f}]" == "6.80 [6.22, 7.38]"
    # another level: the quantile moves with it
    ci90 = mean_ci(A, level=0.90)
    half90 = stats.t.ppf(0.95, n - 1) * s / math.sqrt(n)
    assert ci90.high - ci90.mean == pytest.approx(half90, abs=1e-9) and half90 < half


def test_interval_prints_itself():
    assert str(Interval(6.7, 6.2, 7.2, 3, "t")) == "6.70 [6.20, 7.20]"
    assert Interval(6.7, 6.2, 7.2, 3, "t").format(1) == "6.7 [6.2, 7.2]"


def test_fewer_than_two_values_print_na_never_zero_width():
    for method in ("t", "bootstrap"):
        one = mean_ci([6.7], method=method)
        assert (one.mean, one.low, one.high, one.n) == (6.7, None, None, 1)
        assert not one.defined and str(one) == "6.70 [n/a]"
        none = mean_ci([], method=method)
        assert none.mean is None and str(none) == "n/a"
    assert prob_improvement([6.7], [7.0, 7.1]).prob == 1.0
    assert str(prob_improvement([], [7.0, 7.1])) == "n/a"
    assert str(welch([6.7], [7.0, 7.1])) == "-0.35 [n/a], n/a (needs >= 2 runs each)"
    assert str(welch([], [7.0])) == "n/a (needs >= 2 runs each)"


def test_equal_values_give_the_point_not_nan():
    ci = mean_ci([5.0, 5.0, 5.0])
    assert (ci.low, ci.high) == (5.0, 5.0) and str(ci) == "5.00 [5.00, 5.00]"


def test_bootstrap_interval_is_scipys_and_seeded():
    ci = mean_ci(A, method="bootstrap", seed=3, resamples=2000)
    ref = stats.bootstrap((np.array(A),), np.mean, n_resamples=2000, method="percentile",
                          **_seeded(3)).confidence_interval
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert ci.low < ci.mean < ci.high and ci.method == "bootstrap"
    assert not ci.nominal and str(ci).endswith("*")  # 5 runs: below its 95%
    assert ci == mean_ci(A, method="bootstrap", seed=3, resamples=2000)
    assert ci != mean_ci(A, method="bootstrap", seed=4, resamples=2000)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="finite"):
        mean_ci([6.0, float("nan")])
    with pytest.raises(ValueError, match="method"):
        mean_ci(A, method="z")
    with pytest.raises(ValueError, match="level"):
        mean_ci(A, level=95)
    with pytest.raises(ValueError, match="detect"):
        seeds_needed(A)


# --- welch -------------------------------------------------------------------------------

def test_welch_interval_and_p_by_hand():
    x, y = np.array(A), np.array(B)
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))  # Satterthwaite
    diff = x.mean() - y.mean()
    q = stats.t.ppf(0.975, df)
    p = 2 * stats.t.sf(abs(diff / se), df)
    c = welch(A, B)
    assert c.diff == pytest.approx(diff, abs=1e-12)
    assert (c.low, c.high) == pytest.approx((diff - q * se, diff + q * se), abs=1e-9)
    assert c.p == pytest.approx(p, rel=1e-9)
    assert 3 < df < 7 and c.p < ALPHA and c.verdict == "significant"
    assert (c.n_a, c.n_b) == (5, 4)
    assert str(c) == f"{diff:+.2f} [{diff - q * se:+.2f}, {diff + q * se:+.2f}], p = {p:.3g}, significant"
    assert str(c.ci) == f"{diff:.2f} [{diff - q * se:.2f}, {diff + q * se:.2f}]"


def test_welch_verdicts_keep_the_project_semantics():
    assert welch([6.0], [7.0, 7.2]).verdict == "n/a (needs >= 2 runs each)"
    assert welch([6.0], [7.0, 7.2]).p is None
    flat = welch([6.0, 6.0], [7.0, 7.0])
    assert (flat.verdict, flat.p, flat.low, flat.diff) == ("undefined (no variance)", None,
                                                           None, -1.0)
    close = welch([6.0, 6.4, 6.8], [6.1, 6.5, 6.9])
    assert close.verdict == "not significant" and close.p > ALPHA
    assert close.low < close.diff < close.high
    # one side constant: still a test (the other side's variance carries it)
    assert welch([6.0, 6.0, 6.0], [7.0, 7.5, 8.0]).p is not None


# --- holm --------------------------------------------------------------------------------

def test_holm_matches_statsmodels_and_passes_none_through():
    ps = [0.01, None, 0.04, 0.03, 0.005, float("nan")]
    adj, rej = holm(ps)
    real = [0.01, 0.04, 0.03, 0.005]
    ref_rej, ref_adj, _, _ = multipletests(real, alpha=0.05, method="holm")
    got = [q for q in adj if q is not None]
    assert got == pytest.approx(list(ref_adj), abs=1e-15)
    # by hand, m = 4 (None and NaN are not tests): sorted p times (m - rank), running max
    assert adj == pytest.approx([0.03, None, 0.06, 0.06, 0.02, None], abs=1e-12)
    assert rej == [True, None, False, False, True, None]
    assert [r for r in rej if r is not None] == list(ref_rej)
    assert caption(ps) == "4 tests, Holm-adjusted (statsmodels multipletests)"
    assert caption(1) == "1 test, Holm-adjusted (statsmodels multipletests)"
    assert caption([None]) == "no tests" and holm([None]) == ([None], [None])
    assert holm([]) == ([], [])


def test_a_table_uses_the_adjusted_p_for_its_verdicts():
    raw = [Comparison(-0.4, -0.7, -0.1, 0.04, "significant", 5, 5),
           Comparison(-0.5, -0.8, -0.2, 0.01, "significant", 5, 5),
           welch([6.0], [7.0, 7.1])]
    out = adjusted(raw)
    assert [c.p for c in out] == [0.04, 0.01, None]  # the raw p is kept
    assert out[0].p_adjusted == pytest.approx(0.04) and out[0].verdict == "significant"
    assert out[1].p_adjusted == pytest.approx(0.02)
    assert out[2] == raw[2]  # untestable: unchanged, not counted
    three = adjusted(raw[:2] + [Comparison(0.1, -0.2, 0.4, 0.03, "significant", 5, 5)])
    assert [c.verdict for c in three] == ["not significant", "significant", "not significant"]
    assert three[0].p_adjusted == pytest.approx(0.06) and three[0].correction == "Holm over 3 tests"
    assert str(three[0]) == "-0.40 [-0.70, -0.10], p = 0.04 (Holm: 0.06), not significant"


# --- prob_improvement: P(X < Y) with its exact rank p ------------------------------------

def _p_lower(a, b):  # the definition, over all pairs
    a, b = np.asarray(a, float)[:, None], np.asarray(b, float)[None, :]
    return float(np.mean(a < b) + 0.5 * np.mean(a == b))


def _enumerated_p(x, y):
    """Two-sided p of U = #(x < y) + ½ #(x = y) over every split of the pooled values."""
    from itertools import combinations

    pooled = np.r_[x, y]
    n = len(x)
    null = np.array([_p_lower(pooled[list(i)], np.delete(pooled, list(i)))
                     for i in combinations(range(len(pooled)), n)])
    seen = _p_lower(x, y)
    return min(1.0, 2 * min(np.mean(null <= seen + 1e-12), np.mean(null >= seen - 1e-12)))


def test_prob_improvement_reports_the_exact_rank_p_not_a_degenerate_bootstrap():
    """Fully separated 3 v 3: P(X < Y) = 1, and the exact two-sided Mann-Whitney p is
    2 / C(6, 3) = 0.10, not the [1.00, 1.00] a bootstrap gives."""
    pi = prob_improvement([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert (pi.prob, pi.method) == (1.0, "exact")
    assert pi.p == pytest.approx(2 / math.comb(6, 3)) == pytest.approx(
        stats.mannwhitneyu([1, 2, 3], [4, 5, 6], method="exact").pvalue)
    assert str(pi) == "1.00 (exact p = 0.1)"
    assert prob_improvement([3, 4], [1, 2]).prob == 0.0
    assert prob_improvement([1, 2, 3], [1, 2, 3]).prob == 0.5


def test_prob_improvement_with_ties_and_diverged_runs_is_the_permutation_p():
    a, b = [1.0, 2.0, 2.0, 4.0], [2.0, 3.0, 5.0]
    # pairs with a < b: 1<2,1<3,1<5, 2<3,2<5 (twice), 4<5 = 8; ties 2=2 (twice) = 2 x 1/2
    pi = prob_improvement(a, b)
    assert pi.prob == 9 / 12 == _p_lower(a, b) and pi.method == "permutation"
    assert pi.p == pytest.approx(_enumerated_p(a, b))
    inf_ = float("inf")  # diverged runs rank as the worst, tied among themselves
    d = prob_improvement([6.5, 6.9, 6.7], [inf_, inf_, 7.0])
    assert d.prob == 1.0 and d.p == pytest.approx(_enumerated_p([6.5, 6.9, 6.7],
                                                                [inf_, inf_, 7.0]))
    assert prob_improvement([0.0, 0.0], [0.0, 0.0]).p == 1.0


def test_rank_comparison_is_the_median_and_needs_two_runs_a_side():
    c, r = inf.rank_comparison([9.0, 9.4, 8.8], [6.5, 6.9, 6.7, 7.3, 6.6])
    assert c.test == "Mann-Whitney" and c.diff == pytest.approx(9.0 - 6.7)
    assert c.p == r.p == pytest.approx(2 / math.comb(8, 3)) and c.low is None
    one, _ = inf.rank_comparison([9.0], [6.5, 6.9])
    assert one.p is None and one.verdict == "n/a (needs >= 2 runs each)"


# --- every interval printed as 95%, simulated ----------------------------------------------

def test_the_t_interval_covers_95_percent_and_an_error_rate_stays_in_0_100():
    """4,000 normal samples of 3 and of 5 values: the t-interval covers the mean 95% of the
    time (within simulation error); clipped to [0, 100] (a mean near 0, as ResNet-20's
    0.00% training error) it never leaves the range and covers at least as often."""
    rng = np.random.default_rng(0)
    for n, mu in ((3, 5.0), (5, 5.0), (3, 0.3)):
        x = rng.normal(mu, 1.0, (4000, n))
        half = stats.t.ppf(0.975, n - 1) * x.std(axis=1, ddof=1) / math.sqrt(n)
        m = x.mean(axis=1)
        assert 0.935 <= np.mean((m - half <= mu) & (mu <= m + half)) <= 0.965
        cis = [mean_ci(row, bounds=ERROR_BOUNDS) for row in x[:300]]
        assert all(0 <= c.low <= c.high <= 100 for c in cis)
        assert [c.low for c in cis] == pytest.approx(np.maximum(0.0, m - half)[:300])
    assert mean_ci([0.0, 0.0, 0.7], bounds=ERROR_BOUNDS).low == 0.0  # not -1.0
    assert str(mean_ci([0.0, 0.0, 0.7], bounds=ERROR_BOUNDS)) == "0.23 [0.00, 1.24]"


def test_the_welch_interval_covers_95_percent():
    """Unequal variances and sizes (3 v 5, 1 v 3 sd): Welch's interval of the difference
    covers the true difference about 95% of the time."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(2000):
        a, b = rng.normal(1.0, 1.0, 3), rng.normal(0.0, 3.0, 5)
        c = welch(a, b)
        hits += c.low <= 1.0 <= c.high
    assert 0.935 <= hits / 2000 <= 0.965
    low, high = CompareMeans(DescrStatsW(np.array(A)), DescrStatsW(np.array(B))) \
        .tconfint_diff(usevar="unequal")
    assert (welch(A, B).low, welch(A, B).high) == pytest.approx((low, high))


def test_the_bootstrap_is_marked_below_its_level_until_a_simulation_shows_it():
    """scipy's percentile bootstrap of a mean, 1,500 normal samples: about 76% at 3 runs
    (so mean_ci marks it, "*"), at BOOTSTRAP_NOMINAL_N runs within 1.5 points of 95%."""
    rng = np.random.default_rng(2)
    cover = {}
    for n in (3, BOOTSTRAP_NOMINAL_N):
        x = rng.normal(0.0, 1.0, (1500, n))
        res = stats.bootstrap((x,), np.mean, axis=-1, n_resamples=500, method="percentile",
                              **_seeded(0)).confidence_interval
        cover[n] = float(np.mean((res.low <= 0) & (0 <= res.high)))
    assert 0.70 <= cover[3] <= 0.82
    assert cover[BOOTSTRAP_NOMINAL_N] >= 0.935
    assert not mean_ci([6.2, 7.1, 6.5], method="bootstrap", resamples=500).nominal
    many = mean_ci(rng.normal(6, 1, BOOTSTRAP_NOMINAL_N), method="bootstrap", resamples=500)
    assert many.nominal and not str(many).endswith("*")
    assert mean_ci([6.2, 7.1, 6.5]).nominal  # the t-interval: exact for normal values


# --- a stated margin: TOST -----------------------------------------------------------------

def test_no_worse_only_from_a_non_inferiority_test_at_a_stated_margin():
    """margin_test is statsmodels' TOST with Welch's variances; its upper one-sided test,
    written out, is the non-inferiority p: H0 mean(a) - mean(b) >= margin."""
    from statsmodels.stats.weightstats import ttost_ind

    x, y = np.array([6.6, 6.8, 6.7, 6.9]), np.array([6.7, 6.8, 6.6, 6.8, 6.7])
    m = margin_test(x, y, 0.3)
    ref = ttost_ind(x, y, -0.3, 0.3, usevar="unequal")
    assert m.p_equivalent == pytest.approx(ref[0]) and m.p_no_worse == pytest.approx(ref[2][1])
    va, vb = x.var(ddof=1) / 4, y.var(ddof=1) / 5
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 4)
    t = (x.mean() - y.mean() - 0.3) / math.sqrt(va + vb)
    assert m.p_no_worse == pytest.approx(stats.t.cdf(t, df), rel=1e-9)
    assert m.p_no_worse < 0.05 and m.p_equivalent < 0.05
    # the demo's ResNet-56 vs ResNet-20 (every ResNet-56 seed worse): not shown different,
    # and at a small margin not shown no worse either
    demo = margin_test([0.0, 0.0, 0.7], [0.0, 0.0, 0.0], 0.1)
    assert demo.p_no_worse > 0.05
    assert margin_test([6.0], [6.1, 6.2], 0.3) == inf.MarginTest(0.3, None, None)
    with pytest.raises(ValueError, match="margin"):
        margin_test(x, y, -1)


# --- seeds_needed: Welch's power -----------------------------------------------------------

def _welch_rate(n, sd_a, sd_b, diff, draws=20_000, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(diff, sd_a, (draws, n)), rng.normal(0.0, sd_b, (draws, n))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a constant side: scipy warns
        return float(np.mean(stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05))


def test_welch_power_is_checked_by_simulation_where_the_noncentral_t_is_not():
    """welch_power against 20,000 simulated experiments per case (scipy's Welch test), with
    few seeds, equal and unequal spreads, one side constant. The noncentral t at Welch's
    df for the true variances overstates the power with equal spreads and few seeds (0.78
    where Welch rejects in 0.68 of experiments at 3 a side), which is why it is not used."""
    def nct_power(n, sd_a, sd_b, diff):
        va, vb = sd_a ** 2 / n, sd_b ** 2 / n
        df = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))
        q, ncp = stats.t.ppf(0.975, df), diff / math.sqrt(va + vb)
        return stats.nct.sf(q, df, ncp) + stats.nct.cdf(-q, df, ncp)

    for n, sd_a, sd_b, diff in ((3, 1.0, 1.0, 3.0), (2, 1.0, 1.0, 4.0), (5, 1.0, 0.3, 1.5),
                                (3, 0.0, 1.0, 2.0), (9, 0.5, 0.0, 0.5), (17, 0.5, 0.5, 0.5)):
        assert welch_power(n, sd_a, sd_b, diff) == pytest.approx(
            _welch_rate(n, sd_a, sd_b, diff), abs=0.012), (n, sd_a, sd_b, diff)
    assert nct_power(3, 1.0, 1.0, 3.0) - _welch_rate(3, 1.0, 1.0, 3.0) > 0.08
    assert welch_power(10 ** 9, 1.0, 1.0, 1e-4) == pytest.approx(
        nct_power(10 ** 9, 1.0, 1.0, 1e-4), abs=1e-3)  # many seeds: the two agree


def test_seeds_needed_plans_for_welch_not_the_pooled_t():
    """One side without spread (ResNet-20's 0.00% training error in the demo): the
    pooled-t formula (TTestIndPower over the pooled sd) plans 9 seeds a side, and Welch's
    test then rejects in about 74% of experiments where 80% was claimed; seeds_needed plans
    for Welch and reaches 80%, and one seed fewer does not."""
    pilot_a, pilot_b = [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]  # sd 0.5 and 0
    pooled = math.sqrt(0.25 * 2 / 4)
    n_pooled = math.ceil(TTestIndPower().solve_power(effect_size=0.5 / pooled, alpha=0.05,
                                                     power=0.8))
    assert n_pooled == 9 and _welch_rate(n_pooled, 0.5, 0.0, 0.5) < 0.77
    n = seeds_needed(pilot_a, pilot_b, detect=0.5)
    assert n > n_pooled
    assert _welch_rate(n, 0.5, 0.0, 0.5) >= 0.79 and welch_power(n, 0.5, 0.0, 0.5) >= 0.8
    assert welch_power(n - 1, 0.5, 0.0, 0.5) < 0.8
    # equal spreads: the planned n gives about 80% under Welch too
    pilot = [-0.5, 0.0, 0.5]
    n = seeds_needed(pilot, [v + 0.5 for v in pilot])  # the observed Δ = 0.5, sd 0.5
    assert 0.785 <= _welch_rate(n, 0.5, 0.5, 0.5) <= 0.83


def test_seeds_needed_detect_range_and_undefined():
    assert seeds_needed(A, B, detect=100) == 2
    assert seeds_needed(A, B, detect=0.3) > seeds_needed(A, B, detect=0.6)
    assert seeds_needed(A, detect=0.3) == seeds_needed(A, A, detect=0.3)
    assert seeds_needed([6.0, 6.0], [7.0, 7.0]) is None  # no variance
    assert seeds_needed([6.0, 6.0], [7.0, 7.0], detect=0.3) is None
    assert seeds_needed([6.0, 6.5], [6.0, 6.5]) is None  # zero difference
    assert seeds_needed([6.0], [7.0]) is None  # no spread to estimate
    assert seeds_needed([6.0], [7.0, 7.4], detect=0.3) == seeds_needed([7.0, 7.4], [7.0, 7.4],
                                                                       detect=0.3)
    assert seeds_needed(A, B, detect=0.001) > 100_000  # a huge n, computed, not refused
    for bad in (1e300, 1e-30, 0, -1, float("nan"), float("inf")):
        with pytest.raises(InputError, match=r"in \[0\.001, 100\]"):
            seeds_needed(A, B, detect=bad)
        with pytest.raises(InputError, match=r"--detect must be a difference .* \[0\.001, 100\]"):
            inf.check_detect(bad)


# --- edf, ks -----------------------------------------------------------------------------

def test_edf_against_scipy_and_eq1():
    v = [7.2, 6.8, 7.2, 9.1, 6.5, 7.0, 6.8]
    e = edf(v)
    x, F = e
    ref = stats.ecdf(v).cdf
    np.testing.assert_allclose(x, ref.quantiles)
    np.testing.assert_allclose(F, ref.probabilities)
    arr = np.array(v)
    np.testing.assert_allclose(F, [np.mean(arr <= t) for t in x])
    # Eq. 1's strict "<": the same steps taken from the left
    np.testing.assert_allclose([np.mean(arr < t) for t in x], np.r_[0, F[:-1]])
    assert e.at(6.0) == 0.0 and e.at(6.8) == pytest.approx(3 / 7) and e.at(10) == 1.0
    assert e.n == 7 and str(e) == "EDF of 7 values, 6.50..9.10"
    assert edf([]).n == 0


def test_ks_against_scipy_and_the_edfs():
    rng = np.random.default_rng(2)
    a, b = rng.normal(7.0, 0.5, 30), rng.normal(7.4, 0.6, 25)
    res = ks(a, b)
    ref = stats.ks_2samp(a, b)
    assert (res.statistic, res.p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    stat, p = res
    grid = np.sort(np.r_[a, b])
    assert stat == pytest.approx(np.max(np.abs(edf(a).at(grid) - edf(b).at(grid))))
    assert str(res) == f"KS D = {stat:.2f}, p = {p:.3g}" and (res.n_a, res.n_b) == (30, 25)
    assert ks([], b) is None


def test_ks_with_ties_is_the_permutation_p_of_d():
    """Errors that tie (digits' test errors come in steps of one image): scipy's ks_2samp
    assumes continuous values and its p is wrong there; ks uses the permutation
    distribution of the same D, here enumerated by hand over all C(10, 5) splits."""
    from itertools import combinations

    a, b = [1.0, 1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 3.0, 3.0]
    pooled = np.r_[a, b]

    def d(x, y):
        grid = np.r_[x, y]
        return np.max(np.abs(edf(x).at(grid) - edf(y).at(grid)))

    seen = d(a, b)
    null = [d(pooled[list(i)], np.delete(pooled, list(i))) for i in combinations(range(10), 5)]
    want = float(np.mean(np.array(null) >= seen - 1e-12))
    res = ks(a, b)
    assert res.method == "permutation" and res.statistic == pytest.approx(seen)
    assert res.p == pytest.approx(want)
    assert abs(stats.ks_2samp(a, b).pvalue - want) > 0.05  # scipy's exact p is off here


def test_normalized_edf_weights_each_complexity_bin_alike():
    """Radosavovic et al. (2019), Sec. 3.2, as its code computes the weights: linear bins
    over the spaces' common complexity range, weight 1 / (models in the bin x bins), so
    each bin weighs 1/bins within a design space; models outside the range weigh 0."""
    from resnet_ablate.analysis.edf import complexity_bins, normalized_edf, normalized_ks

    err_a, cx_a = np.array([5.0, 6.0, 7.0, 9.0, 20.0]), np.array([1.0, 1.2, 1.4, 3.0, 9.0])
    err_b, cx_b = np.array([4.0, 8.0, 8.5, 3.0]), np.array([1.0, 2.2, 2.9, 3.0])
    (lo, hi), idx = complexity_bins({"a": cx_a, "b": cx_b}, bins=2)
    assert (lo, hi) == (1.0, 3.0)  # the overlap; a's 9.0 is outside it
    assert list(idx["a"]) == [0, 0, 0, 1, -1] and list(idx["b"]) == [0, 1, 1, 1]
    e = normalized_edf(err_a, idx["a"], bins=2)
    # a: three models in bin 0 (1/6 each), one in bin 1 (1/2); 20.0 left out
    assert list(e.x) == [5.0, 6.0, 7.0, 9.0] and e.n == 4 and e.weighted
    assert list(e.F) == pytest.approx([1 / 6, 2 / 6, 3 / 6, 1.0])
    assert e.quantile(0.5) == 7.0
    k = normalized_ks(err_a, idx["a"], err_b, idx["b"], bins=2, resamples=2000)
    grid = np.r_[err_a[:4], err_b]
    eb = normalized_edf(err_b, idx["b"], bins=2)
    assert k.statistic == pytest.approx(np.max(np.abs(e.at(grid) - eb.at(grid))))
    assert 0 < k.p <= 1 and k.method == "permutation within bins"
    with pytest.raises(ValueError, match="no model with complexity in"):
        complexity_bins({"a": cx_a, "b": cx_b}, bins=8)


def test_importing_the_module_is_cheap():
    code = ("import sys, resnet_ablate.analysis.inference, resnet_ablate.analysis.edf, "
            "resnet_ablate.analysis.power; "
            "print(sorted(m for m in ('torch', 'pandas', 'scipy', 'statsmodels') "
            "if m in sys.modules))")
    proc = run_python(code)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    assert inf.RESAMPLES == 10_000
