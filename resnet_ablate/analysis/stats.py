"""Error by condition over seeds, beside the paper, with Welch's t-test.

Run-to-run variance on CIFAR is about ±0.5 pp, so every comparison is mean ± std over
seeds (one sample per seed), and each depth step within a series says whether its
difference is significant.
"""
from __future__ import annotations

import math
import warnings

import pandas as pd

from ..reference import paper_match
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
        match = paper_match(first)
        mean = sum(values) / len(values)
        rows.append({
            "condition": cond, "label": first["_label"], "series": first["_series"],
            "series_label": first["_series_label"], "dataset": first["dataset"],
            "protocol": first["protocol"], "family": first["family"],
            "shortcut": first["shortcut"], "depth": int(first["depth"]),
            "n": group["seed"].nunique(), "mean": mean,
            "std": pd.Series(values).std() if len(values) > 1 else math.nan,
            "best": min(values), "params": first["params"], "macs": first["macs"],
            "trained_on": first.get("trained_on"), "paper": match.paper,
            "paper_why_not": match.why_not, "_values": values})
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


def beside_paper(t: pd.DataFrame, metric: str = "test err %") -> pd.DataFrame:
    """Ours (mean ± std, best) beside the paper's (mean ± std or its single number, best),
    or why the paper has no number for the condition: one row per condition of
    by_condition. A mean is set beside a mean, a best beside a best."""
    def paper_mean(p, why):
        return why if p is None else "fail (> 20%)" if p.fail else pm(p.headline, p.std)

    def delta(ours, theirs):
        return "" if theirs is None else f"{ours - theirs:+.2f}"

    return pd.DataFrame({
        "n (seeds)": t["n"].astype(int),
        f"{metric} (mean ± std)": [pm(m, s) for m, s in zip(t["mean"], t["std"])],
        "best": t["best"].map(num),
        "paper (mean ± std, or as reported)": [paper_mean(p, w) for p, w in
                                               zip(t["paper"], t["paper_why_not"])],
        "paper best": t["paper"].map(lambda p: "" if p is None else num(p.best)),
        "Δ mean": [delta(m, None if p is None else p.headline)
                   for m, p in zip(t["mean"], t["paper"])],
        "Δ best": [delta(b, None if p is None else p.best)
                   for b, p in zip(t["best"], t["paper"])],
    }, index=t.index)


def format_compare(table: pd.DataFrame, metric_label: str) -> pd.DataFrame:
    """The `compare` view: readable strings, one row per condition, ours beside the paper
    (beside_paper), each depth step of a series against the next shallower."""
    head = pd.DataFrame({
        "condition": table["label"], "dataset": table["dataset"],
        "protocol": table["protocol"], "depth": table["depth"].astype(int)},
        index=table.index)
    steps = pd.DataFrame({
        "vs shallower": [("" if d is None or d != d else f"{d:+.2f} (vs {int(f)})")
                         for d, f in zip(table["vs_shallower"], table["from_depth"])],
        "p (Welch)": table["p_value"].map(lambda v: "" if v is None or v != v else f"{v:.3g}"),
        "significant?": table["significance"].fillna(""),
    }, index=table.index)
    return pd.concat([head, beside_paper(table, metric_label), steps], axis=1)
