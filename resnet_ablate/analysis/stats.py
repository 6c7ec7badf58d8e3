"""Error by condition over seeds, beside the paper, with Welch's t-test.

Run-to-run variance on CIFAR is about ±0.5 pp, so every comparison is mean ± std over
seeds (one sample per seed), and each depth step within a series says whether its
difference is significant.
"""
from __future__ import annotations

import math
import warnings

import pandas as pd

from ..reference import paper_number
from .vocab import finished, labels, num, pm, series, series_labels

ALPHA = 0.05
TEST_NAME = "Welch's t-test (two-sided, unequal variances)"


def welch(a: list[float], b: list[float]) -> tuple[float | None, str]:
    """(p, verdict) of Welch's two-sided t-test. verdict: "significant", "not significant",
    "n/a (needs >= 2 runs each)", or "undefined (no variance)" when neither side varies:
    then the test has nothing to say, whatever the means."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None, "n/a (needs >= 2 runs each)"
    if pd.Series(a).std() == 0 and pd.Series(b).std() == 0:
        return None, "undefined (no variance)"
    with warnings.catch_warnings():  # nearly equal samples: scipy warns, the p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return p, "significant" if p < ALPHA else "not significant"


def by_condition(runs: pd.DataFrame, column: str = "final_test_err") -> pd.DataFrame:
    """One row per condition: its label, depth series, n (distinct seeds), mean, std and
    best of a metric over finished runs, the paper's number where it has one, and Welch's
    test against the next shallower condition of the same series."""
    done = finished(runs).dropna(subset=[column])
    if done.empty:
        return pd.DataFrame()
    done = done.assign(_label=labels(done), _series=series(done),
                       _series_label=series_labels(done))
    rows = []
    for cond, group in done.groupby("condition", sort=False):
        values = group[column].astype(float).tolist()
        first = group.iloc[0]
        paper = paper_number(first)
        mean = sum(values) / len(values)
        rows.append({
            "condition": cond, "label": first["_label"], "series": first["_series"],
            "series_label": first["_series_label"], "dataset": first["dataset"],
            "protocol": first["protocol"], "family": first["family"],
            "shortcut": first["shortcut"], "depth": int(first["depth"]),
            "n": group["seed"].nunique(), "mean": mean,
            "std": pd.Series(values).std() if len(values) > 1 else math.nan,
            "best": min(values), "params": first["params"], "macs": first["macs"],
            "trained_on": first.get("trained_on"), "paper": paper, "_values": values})
    table = pd.DataFrame(rows).sort_values(["dataset", "protocol", "series_label", "depth"])
    table = table.reset_index(drop=True)
    for col in ("vs_shallower", "from_depth", "p_value"):
        table[col] = None
    table["significance"] = ""
    for _, group in table.groupby("series", sort=False):
        prev = None
        for idx, row in group.iterrows():
            if prev is not None:
                p, verdict = welch(prev["_values"], row["_values"])
                table.at[idx, "vs_shallower"] = row["mean"] - prev["mean"]
                table.at[idx, "from_depth"] = int(prev["depth"])
                table.at[idx, "p_value"] = p
                table.at[idx, "significance"] = verdict
            prev = row
    return table.drop(columns=["_values"])


def format_compare(table: pd.DataFrame, metric_label: str) -> pd.DataFrame:
    """The `compare` view: readable strings, one row per condition, the paper's mean and
    best beside ours (a mean is compared with a mean, a best with a best)."""
    def paper_mean(p):
        return "" if p is None else "fail (> 20%)" if p.fail else pm(p.headline, p.std)
    return pd.DataFrame({
        "condition": table["label"], "dataset": table["dataset"],
        "protocol": table["protocol"], "depth": table["depth"].astype(int),
        "n (seeds)": table["n"],
        f"{metric_label} (mean ± std)": [pm(m, s) for m, s in zip(table["mean"], table["std"])],
        "best": table["best"].map(num),
        "paper (mean ± std)": table["paper"].map(paper_mean),
        "paper best": table["paper"].map(lambda p: "" if p is None else num(p.best)),
        "vs paper": [("" if p is None or p.headline is None else f"{m - p.headline:+.2f}")
                     for m, p in zip(table["mean"], table["paper"])],
        "vs shallower": [("" if d is None or d != d else f"{d:+.2f} (vs {int(f)})")
                         for d, f in zip(table["vs_shallower"], table["from_depth"])],
        "p (Welch)": table["p_value"].map(lambda v: "" if v is None or v != v else f"{v:.3g}"),
        "significant?": table["significance"].fillna(""),
    })
