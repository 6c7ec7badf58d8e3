"""Error by depth and variant over seeds, beside the paper, with Welch's t-test.

Run-to-run variance on CIFAR is about +-0.5 pp, so every comparison is mean +- std over
seeds, and each depth-to-depth step says whether its difference is significant.
"""
from __future__ import annotations

import math

import pandas as pd

from ..reference import CIFAR_TABLE6, IMAGENET_ERRORS

ALPHA = 0.05
TEST_NAME = "Welch's t-test (two-sided, unequal variances)"


def paper_error(row: pd.Series | dict) -> float | None:
    """The paper's test error (%) for a run's architecture and data set, where it has one:
    Table 6 (CIFAR-10, option-A ResNets) and Tables 2/3 (ImageNet, top-1, 10-crop)."""
    family, depth, shortcut = row["family"], int(row["depth"]), row["shortcut"]
    dataset = row.get("dataset")
    if dataset == "cifar10" and family == "resnet" and shortcut == "A" and depth in CIFAR_TABLE6:
        return CIFAR_TABLE6[depth]["test_err"]
    if dataset == "imagefolder" and row.get("protocol") == "he2015-imagenet":
        name = f"plain{depth}" if family == "plain" else f"{family}{depth}-{shortcut}"
        if name in IMAGENET_ERRORS:
            return IMAGENET_ERRORS[name]["top1"]
    return None


def welch(a: list[float], b: list[float]) -> tuple[float | None, float | None]:
    """(t, p) of Welch's two-sided t-test; None where either side has < 2 runs or no
    variance at all."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None, None
    if pd.Series(a).std() == 0 and pd.Series(b).std() == 0:
        return None, (0.0 if pd.Series(a).mean() != pd.Series(b).mean() else 1.0)
    import warnings

    with warnings.catch_warnings():  # nearly equal samples: scipy warns, the p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        t, p = stats.ttest_ind(a, b, equal_var=False)
    return float(t), float(p)


def by_depth(runs: pd.DataFrame, metric: str = "final_test_err") -> pd.DataFrame:
    """One row per (dataset, protocol, variant, depth): n, mean, std, min of a metric over
    finished runs, the paper's number and our difference to it, and Welch's test against
    the next shallower depth of the same variant."""
    done = runs[runs["status"] == "finished"].dropna(subset=[metric])
    rows = []
    keys = ["dataset", "protocol", "variant", "depth"]
    for key, group in done.groupby(keys, sort=True, dropna=False):
        values = group[metric].astype(float).tolist()
        first = group.iloc[0]
        paper = paper_error(first)
        mean = sum(values) / len(values)
        std = pd.Series(values).std() if len(values) > 1 else math.nan
        rows.append({**dict(zip(keys, key)), "family": first["family"],
                     "shortcut": first["shortcut"], "n": len(values), "mean": mean,
                     "std": std, "best": min(values),
                     "train_err_mean": group["final_train_err"].astype(float).mean(),
                     "params": first["params"], "macs": first["macs"],
                     "paper": paper, "vs_paper": None if paper is None else mean - paper,
                     "_values": values})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["dataset", "protocol", "variant", "depth"]).reset_index(drop=True)
    steps = []
    for _, group in table.groupby(["dataset", "protocol", "variant"], sort=False):
        prev = None
        for idx, row in group.iterrows():
            if prev is None:
                steps.append((idx, None, None, None, ""))
            else:
                _, p = welch(prev["_values"], row["_values"])
                verdict = ("n/a (needs >= 2 runs each)" if p is None else
                           ("significant" if p < ALPHA else "not significant"))
                steps.append((idx, int(prev["depth"]), row["mean"] - prev["mean"], p, verdict))
            prev = row
    for idx, from_depth, delta, p, verdict in steps:
        table.loc[idx, "vs_shallower"] = delta
        table.loc[idx, "from_depth"] = from_depth
        table.loc[idx, "p_value"] = p
        table.loc[idx, "significance"] = verdict
    return table.drop(columns=["_values"])


def format_compare(table: pd.DataFrame, metric_label: str = "test err %") -> pd.DataFrame:
    """The `compare` view: readable strings, one row per variant and depth."""
    def pm(mean, std):
        return f"{mean:.2f}" + ("" if std != std else f" +- {std:.2f}")

    out = pd.DataFrame({
        "dataset": table["dataset"], "variant": table["variant"],
        "depth": table["depth"].astype(int), "n": table["n"],
        metric_label: [pm(m, s) for m, s in zip(table["mean"], table["std"])],
        "final train err %": table["train_err_mean"].map(lambda v: f"{v:.2f}"),
        "paper": table["paper"].map(lambda v: "" if v is None or v != v else f"{v:.2f}"),
        "vs paper": table["vs_paper"].map(lambda v: "" if v is None or v != v else f"{v:+.2f}"),
        "vs shallower": [("" if d != d or d is None else f"{d:+.2f} (vs {int(f)})")
                         for d, f in zip(table["vs_shallower"], table["from_depth"])],
        "p (Welch)": table["p_value"].map(lambda v: "" if v is None or v != v else f"{v:.3g}"),
        "significant?": table["significance"].fillna(""),
    })
    if metric_label.startswith("train"):
        out = out.drop(columns=["final train err %"])  # the metric column says it already
    return out
