"""resnet_ablate.analysis.inference against hand computations and the libraries themselves.

Each formula is written out here with numpy (the module only calls the libraries), so a
wrong call (a wrong ddof, a pooled where Welch was meant, a one-sided p, a quantile at
0.95 instead of 0.975) fails a test.
"""
import inspect
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from conftest import run_python

from resnet_ablate.analysis import inference as inf
from resnet_ablate.analysis.inference import (
    ALPHA, Comparison, Interval, adjusted, caption, edf, holm, ks, mean_ci, prob_improvement,
    seeds_needed, welch)

# Final test error (%) of two conditions over seeds.
A = [6.2, 6.9, 7.4, 6.5, 7.0]
B = [7.4, 7.9, 7.6, 8.2]
T_975_DF4 = 2.7764451051977987  # t_{0.975, 4} from a t table (not from scipy)


def _seeded(seed):  # scipy >= 1.15 takes rng=, older releases random_state= (same Generator)
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def test_alpha_is_005():
    assert ALPHA == 0.05


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
    assert str(prob_improvement([6.7], [7.0, 7.1])) == "1.00 [n/a]"
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


# --- prob_improvement --------------------------------------------------------------------

def _p_lower(a, b):  # the definition, over all pairs
    a, b = np.asarray(a, float)[:, None], np.asarray(b, float)[None, :]
    return float(np.mean(a < b) + 0.5 * np.mean(a == b))


def test_prob_improvement_exact_with_ties():
    a, b = [1.0, 2.0, 2.0, 4.0], [2.0, 3.0, 5.0]
    # pairs with a < b: 1<2,1<3,1<5, 2<3,2<5 (twice), 4<5 = 8; ties 2=2 (twice) = 2 x 1/2
    pi = prob_improvement(a, b, seed=0, resamples=2000)
    assert pi.mean == 9 / 12 == _p_lower(a, b)
    assert pi.low <= pi.mean <= pi.high and (pi.n, pi.method) == (3, "bootstrap")
    assert pi == prob_improvement(a, b, seed=0, resamples=2000)  # seeded: reproducible
    # lower error is the improvement: the better side is `a`
    assert prob_improvement([1, 2], [3, 4]).mean == 1.0
    assert prob_improvement([3, 4], [1, 2]).mean == 0.0
    assert prob_improvement([1, 2, 3], [1, 2, 3]).mean == 0.5


def test_prob_improvement_bootstrap_against_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(6.8, 0.3, 6).round(1), rng.normal(7.1, 0.3, 5).round(1)
    pi = prob_improvement(a, b, seed=7, resamples=3000)
    assert pi.mean == pytest.approx(_p_lower(a, b), abs=1e-12)
    assert pi.mean + prob_improvement(b, a).mean == pytest.approx(1.0)
    ref = stats.bootstrap((a, b), _p_lower, n_resamples=3000, vectorized=False,
                          paired=False, method="percentile",
                          **_seeded(7)).confidence_interval
    assert (pi.low, pi.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert pi.low <= pi.mean <= pi.high


# --- seeds_needed ------------------------------------------------------------------------

def test_seeds_needed_is_statsmodels_solve_power_rounded_up():
    x, y = np.array(A), np.array(B)
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1))
                       / (len(x) + len(y) - 2))
    d = abs(x.mean() - y.mean()) / pooled
    ref = TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=0.8, ratio=1,
                                      alternative="two-sided")
    assert seeds_needed(A, B) == math.ceil(ref) == 5
    ref03 = TTestIndPower().solve_power(effect_size=0.3 / pooled, alpha=0.05, power=0.8)
    assert seeds_needed(A, B, detect=0.3) == math.ceil(ref03) == 32
    ref_a = TTestIndPower().solve_power(effect_size=0.3 / x.std(ddof=1), alpha=0.05, power=0.8)
    assert seeds_needed(A, detect=0.3) == math.ceil(ref_a)
    assert seeds_needed(A, B, detect=0.3, power=0.9) > 32
    assert seeds_needed(A, B, detect=100) == 2  # statsmodels finds no root: 2 a side is plenty


def test_seeds_needed_undefined_is_none():
    assert seeds_needed([6.0, 6.0], [7.0, 7.0]) is None  # no variance
    assert seeds_needed([6.0, 6.0], [7.0, 7.0], detect=0.3) is None  # d would be infinite
    assert seeds_needed([6.0, 6.5], [6.0, 6.5]) is None  # zero difference
    assert seeds_needed([6.0], [7.0]) is None  # no spread to estimate
    assert seeds_needed(A, B, detect=0) is None


def test_planned_seeds_give_the_planned_power_under_welch():
    """Simulate 2,000 experiments with the planned n per side; Welch's test should reject
    in about 80% of them."""
    sd, diff = 0.5, 0.5
    pilot = [-0.5, 0.0, 0.5]  # sd exactly 0.5
    n = seeds_needed(pilot, [v + diff for v in pilot])  # d = 1
    assert n == 17
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, sd, (2000, n))
    b = rng.normal(diff, sd, (2000, n))
    rate = float(np.mean(stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05))
    assert 0.76 <= rate <= 0.85, rate


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


def test_importing_the_module_is_cheap():
    code = ("import sys, resnet_ablate.analysis.inference; "
            "print(sorted(m for m in ('torch', 'pandas', 'scipy', 'statsmodels') "
            "if m in sys.modules))")
    proc = run_python(code)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
    assert inf.RESAMPLES == 10_000
