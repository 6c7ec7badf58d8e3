"""Error EDFs of design spaces (Radosavovic et al. 2019, "On Network Design Spaces for
Visual Recognition", arXiv 1905.13214) and the Kolmogorov-Smirnov test between two.

- `edf`: Eq. 1, the fraction of a design space's sampled models with error below e.
- `normalized_edf`: Sec. 3.2's complexity-normalised EDF: each model weighted so that every
  complexity bin holds the same share of its design space, as the paper's published code
  computes it (facebookresearch/nds, notebooks/complexity.ipynb: linear bins over a
  common range, weight 1 / (models in the bin x bins)).
- `ks`: the two-sample KS test; with ties (equal errors) a permutation test of the same
  statistic, as scipy's exact and asymptotic KS p-values assume no ties; with complexity
  weights, a permutation within complexity bins.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .inference import RESAMPLES, _seeded, _values

BINS = 4  # complexity bins of a normalised EDF: few, as a design space here is tens of models


@dataclass(frozen=True, eq=False)
class EDF:
    """An empirical distribution function: F(x[i]) = (weighted) fraction of the values <=
    x[i], at the sorted distinct values x. Unpacks as (x, F). `n`: the models behind it;
    `weighted`: a normalised EDF. str(): "EDF of 100 values, 5.10..9.80"."""

    x: np.ndarray
    F: np.ndarray
    n: int
    weighted: bool = False

    def __iter__(self):
        return iter((self.x, self.F))

    def at(self, e: float | np.ndarray) -> np.ndarray | float:
        """F(e), the fraction of values <= e (right-continuous, as scipy's ecdf)."""
        out = np.concatenate([[0.0], self.F])[np.searchsorted(self.x, e, side="right")]
        return float(out) if np.ndim(out) == 0 else out

    def quantile(self, q: float) -> float:
        """The smallest value with F >= q."""
        return float(self.x[min(np.searchsorted(self.F, q - 1e-12), len(self.x) - 1)])

    def __str__(self) -> str:
        if self.n == 0:
            return "EDF of no values"
        return f"EDF of {self.n} values, {self.x[0]:.2f}..{self.x[-1]:.2f}"


def edf(values: Iterable[float]) -> EDF:
    """The error EDF of a design space (Eq. 1): over n sampled models with errors e_i,
    F(e) = (1/n) Σ 1[e_i < e]. Computed with scipy.stats.ecdf: x are the distinct errors in
    increasing order and F[i] the fraction of models with error <= x[i]. Eq. 1's strict "<"
    is the same step function taken from the left (a step plot drawn with where="post")."""
    from scipy import stats

    v = _values(values)
    if len(v) == 0:
        return EDF(np.empty(0), np.empty(0), 0)
    cdf = stats.ecdf(v).cdf
    return EDF(np.asarray(cdf.quantiles, float), np.asarray(cdf.probabilities, float), len(v))


def _weighted(values: np.ndarray, weights: np.ndarray) -> EDF:
    order = np.argsort(values, kind="stable")
    v, w = values[order], np.cumsum(weights[order])
    last = np.r_[v[1:] != v[:-1], True]  # the last of each run of equal values
    return EDF(v[last], w[last] / w[-1], len(values))


def complexity_bins(complexity: dict[str, np.ndarray], bins: int = BINS
                    ) -> tuple[tuple[float, float], dict[str, np.ndarray]]:
    """The common complexity range of the design spaces (the largest minimum to the
    smallest maximum) and each model's bin in it (-1: outside, left out). Every bin must
    hold a model of every space: a ValueError names the first empty one."""
    lo = max(float(np.min(c)) for c in complexity.values())
    hi = min(float(np.max(c)) for c in complexity.values())
    if not lo < hi:
        raise ValueError(f"the design spaces' complexities do not overlap "
                         f"({lo:g} is above {hi:g}): no common range to normalise over")
    edges = np.linspace(lo, hi, bins + 1)
    out = {}
    for name, c in complexity.items():
        inside = (c >= lo) & (c <= hi)
        idx = np.where(inside, np.clip(np.searchsorted(edges, c, side="right") - 1, 0,
                                       bins - 1), -1)
        empty = [k for k in range(bins) if not np.any(idx == k)]
        if empty:
            k = empty[0]
            raise ValueError(f"design space {name} has no model with complexity in "
                             f"[{edges[k]:g}, {edges[k + 1]:g}] (bin {k + 1} of {bins}): "
                             "use fewer bins or sample more models")
        out[name] = idx
    return (lo, hi), out


def normalized_weights(idx: np.ndarray, bins: int) -> np.ndarray:
    """1 / (models of the space in the model's bin x bins); 0 outside the range."""
    counts = np.bincount(idx[idx >= 0], minlength=bins)
    return np.where(idx >= 0, 1.0 / (counts[np.maximum(idx, 0)] * bins), 0.0)


def normalized_edf(values: Iterable[float], idx: np.ndarray, bins: int = BINS) -> EDF:
    """Sec. 3.2's normalised error EDF, F(e) = Σ w_i 1[e_i < e], with `idx` each model's
    complexity bin (complexity_bins) and w_i = normalized_weights: every bin weighs 1/bins,
    so spaces of different complexity are compared at the same complexity. Models outside
    the common range weigh 0 (n counts those inside)."""
    v = _values(values)
    keep = idx >= 0
    e = _weighted(v[keep], normalized_weights(idx, bins)[keep])
    return EDF(e.x, e.F, int(keep.sum()), weighted=True)


@dataclass(frozen=True)
class KS:
    """The two-sample Kolmogorov-Smirnov test between two EDFs: `statistic` = sup |F_a -
    F_b|, its two-sided `p`, and how p was found (`method`). Unpacks as (statistic, p).
    str(): "KS D = 0.40, p = 0.012"."""

    statistic: float
    p: float
    n_a: int
    n_b: int
    method: str = "exact"

    def __iter__(self):
        return iter((self.statistic, self.p))

    def __str__(self) -> str:
        return f"KS D = {self.statistic:.2f}, p = {self.p:.3g}"


def _sup_distance(values: np.ndarray, in_a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sup_e |F_a(e) - F_b(e)| for each row of `in_a` (permuted labels), the EDFs weighted
    by `weights` (a row per permutation, or one for all) and evaluated where the sorted
    values change (so tied values move together)."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    a, w = in_a[..., order], np.broadcast_to(weights, in_a.shape)[..., order]
    fa = np.cumsum(np.where(a, w, 0.0), axis=-1)
    fb = np.cumsum(np.where(a, 0.0, w), axis=-1)
    fa, fb = fa / fa[..., -1:], fb / fb[..., -1:]
    last = np.r_[v[1:] != v[:-1], True]
    return np.max(np.abs(fa - fb)[..., last], axis=-1)


def ks(a: Iterable[float], b: Iterable[float], seed: int = 0,
       resamples: int = RESAMPLES) -> KS | None:
    """Kolmogorov-Smirnov statistic and two-sided p between the EDFs of `a` and `b`.

    No ties: scipy.stats.ks_2samp (method "auto": exact for small samples). Ties: the
    permutation distribution of the same D (scipy.stats.permutation_test, exact when the
    splits number at most `resamples`, else `resamples` seeded permutations): ks_2samp's
    p assumes continuous values and is wrong with ties. None when either side is empty."""
    from scipy import stats

    x, y = _values(a, "a"), _values(b, "b")
    if len(x) == 0 or len(y) == 0:
        return None
    pooled = np.r_[x, y]
    if len(np.unique(pooled)) == len(pooled):
        res = stats.ks_2samp(x, y)
        return KS(float(res.statistic), float(res.pvalue), len(x), len(y), "exact")

    def statistic(s, t, axis=-1):
        s, t = np.moveaxis(s, axis, -1), np.moveaxis(t, axis, -1)
        both = np.concatenate([s, t], axis=-1)
        grid = both[..., None, :]
        fs = (s[..., :, None] <= grid).mean(axis=-2)
        ft = (t[..., :, None] <= grid).mean(axis=-2)
        return np.max(np.abs(fs - ft), axis=-1)

    res = stats.permutation_test((x, y), statistic, permutation_type="independent",
                                 vectorized=True, n_resamples=resamples,
                                 alternative="greater", **_seeded(stats.permutation_test, seed))
    return KS(float(res.statistic), float(res.pvalue), len(x), len(y), "permutation")


def normalized_ks(a: Iterable[float], idx_a: np.ndarray, b: Iterable[float],
                  idx_b: np.ndarray, bins: int = BINS, seed: int = 0,
                  resamples: int = RESAMPLES) -> KS:
    """KS between two normalised EDFs: D = sup |F_a - F_b| of the weighted EDFs, p from
    `resamples` seeded permutations of the design-space labels within each complexity bin
    (which keep every weight: H0, error independent of the space given the bin), counted
    with the observed D as (1 + #{D* >= D}) / (1 + resamples)."""
    x, y = _values(a, "a"), _values(b, "b")
    keep_a, keep_b = idx_a >= 0, idx_b >= 0
    values = np.r_[x[keep_a], y[keep_b]]
    bin_of = np.r_[idx_a[keep_a], idx_b[keep_b]]
    in_a = np.r_[np.ones(keep_a.sum(), bool), np.zeros(keep_b.sum(), bool)]
    w_a, w_b = normalized_weights(idx_a, bins)[keep_a], normalized_weights(idx_b, bins)[keep_b]
    by_bin_a = {k: w_a[idx_a[keep_a] == k][0] for k in range(bins)}
    by_bin_b = {k: w_b[idx_b[keep_b] == k][0] for k in range(bins)}

    def weights(labels: np.ndarray) -> np.ndarray:
        wa = np.array([by_bin_a[k] for k in bin_of])
        wb = np.array([by_bin_b[k] for k in bin_of])
        return np.where(labels, wa, wb)

    d = float(_sup_distance(values, in_a, weights(in_a)))
    rng = np.random.default_rng(seed)
    perm = np.tile(in_a, (resamples, 1))
    for k in range(bins):
        cols = np.flatnonzero(bin_of == k)
        perm[:, cols] = rng.permuted(perm[:, cols], axis=1)
    d_star = _sup_distance(values, perm, weights(perm))
    p = (1 + int(np.sum(d_star >= d - 1e-12))) / (1 + resamples)
    return KS(d, p, int(keep_a.sum()), int(keep_b.sum()), "permutation within bins")
