"""The paper's figures from collected runs, styled as the paper: x in iterations, dashed =
training error, bold = test (or validation) error; mean over seeds, band = +- 1 std.

Each builder returns a matplotlib Figure, or raises MissingRuns naming what it needs: a
figure whose runs are missing is skipped with a note, never faked.
"""
from __future__ import annotations

from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .collect import Collected  # noqa: E402


class MissingRuns(Exception):
    """The runs a figure needs are not in the collection."""


def label(family: str, depth: int, shortcut: str | None) -> str:
    """The paper's legend names: plain-20, ResNet-56, ResNet-34 (B), PreResNet-110."""
    if family == "plain":
        return f"plain-{depth}"
    name = {"resnet": "ResNet", "preresnet": "PreResNet"}[family]
    option = "" if shortcut in (None, "-", "A") or family == "preresnet" else f" ({shortcut})"
    return f"{name}-{depth}{option}"


def _finished(c: Collected) -> pd.DataFrame:
    runs = c.runs[c.runs["status"] == "finished"].copy()
    runs["label"] = [label(f, int(d), s) for f, d, s in
                     zip(runs["family"], runs["depth"], runs["shortcut"])]
    return runs


def curves(c: Collected, runs: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per run: training error averaged over each evaluation interval, and the split's
    error at each evaluation; columns run_id, label, depth, kind (train|split), iteration, err."""
    hist = c.history[c.history["run_id"].isin(runs["run_id"])]
    out = []
    for run_id, h in hist.groupby("run_id"):
        evals = h[h["metric"] == f"{split}_err"].sort_values("iteration")
        train = h[h["metric"] == "train_err"].sort_values("iteration")
        if evals.empty or train.empty:
            continue
        edges = np.concatenate([[0], evals["iteration"].to_numpy()])
        bins = pd.cut(train["iteration"], edges, labels=edges[1:], right=True)
        binned = train.groupby(bins, observed=True)["value"].mean()
        for it, err in binned.items():
            out.append({"run_id": run_id, "kind": "train", "iteration": int(it), "err": err})
        for it, err in zip(evals["iteration"], evals["value"]):
            out.append({"run_id": run_id, "kind": split, "iteration": int(it), "err": err})
    df = pd.DataFrame(out, columns=["run_id", "kind", "iteration", "err"])
    return df.merge(runs[["run_id", "label", "depth", "family", "variant"]], on="run_id")


def _palette(labels: list[str]) -> dict[str, tuple]:
    return dict(zip(labels, sns.color_palette("tab10", len(labels))))


def _draw(ax, df: pd.DataFrame, labels: list[str], kinds: tuple[str, ...]) -> None:
    colors = _palette(labels)
    for lab in labels:
        for kind in kinds:
            d = df[(df["label"] == lab) & (df["kind"] == kind)]
            if d.empty:
                continue
            g = d.groupby("iteration")["err"]
            mean, std = g.mean(), g.std().fillna(0)
            bold = kind != "train"
            ax.plot(mean.index, mean.values, color=colors[lab], lw=2.2 if bold else 1.0,
                    ls="-" if bold else "--", label=lab if (bold or len(kinds) == 1) else None)
            if (g.count() > 1).any():
                ax.fill_between(mean.index, mean - std, mean + std, color=colors[lab],
                                alpha=0.15, lw=0)
    ax.set_xlabel("iter.")
    ax.set_ylabel("error (%)")
    if df["iteration"].max() >= 10_000:  # the paper's axis: iterations in units of 1e4
        ax.ticklabel_format(axis="x", style="sci", scilimits=(4, 4))
    ax.legend(frameon=False, fontsize=8)


def _labels(runs: pd.DataFrame) -> list[str]:
    order = runs.sort_values(["family", "depth", "shortcut"])
    return list(dict.fromkeys(order["label"]))


def _need(runs: pd.DataFrame, what: str) -> pd.DataFrame:
    if runs.empty:
        raise MissingRuns(f"needs finished runs of {what}")
    return runs


def fig1(c: Collected) -> plt.Figure:
    """Fig. 1: plain-20 vs plain-56; training error (left), test error (right)."""
    runs = _finished(c)
    runs = _need(runs[(runs["family"] == "plain") & runs["depth"].isin([20, 56])],
                 "plain20 and plain56")
    if set(runs["depth"]) != {20, 56}:
        raise MissingRuns(f"needs both plain20 and plain56 (found plain{int(runs.depth.iloc[0])})")
    df = curves(c, runs)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    _draw(axes[0], df, _labels(runs), ("train",))
    _draw(axes[1], df, _labels(runs), ("test",))
    axes[0].set_title("training error")
    axes[1].set_title("test error")
    fig.suptitle("Fig. 1: the deeper plain net has higher training and test error")
    return fig


def fig4(c: Collected) -> plt.Figure:
    """Fig. 4 analog: plain (left) vs residual (right) nets at two depths; thin = training,
    bold = validation error."""
    runs = _finished(c)
    plain = runs[runs["family"] == "plain"]
    res = runs[(runs["family"] == "resnet") & runs["shortcut"].isin(["A", "B"])]
    depths = sorted(set(plain["depth"]) & set(res["depth"]))
    if len(depths) < 2:
        raise MissingRuns("needs plain and residual runs at two common depths")
    pick = [depths[0], depths[-1]]
    plain, res = plain[plain["depth"].isin(pick)], res[res["depth"].isin(pick)]
    split = "val" if (c.history["metric"] == "val_err").any() else "test"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True, layout="constrained")
    for ax, group, title in ((axes[0], plain, "plain"), (axes[1], res, "ResNet")):
        _draw(ax, curves(c, group, split), _labels(group), ("train", split))
        ax.set_title(title)
    fig.suptitle(f"Fig. 4 analog: thin = training, bold = {'validation' if split == 'val' else 'test'}"
                 " error")
    return fig


def fig6(c: Collected) -> plt.Figure:
    """Fig. 6: plain nets (left), ResNets up to 110 (middle), ResNet-110 and 1202 (right);
    dashed = training, bold = test error."""
    runs = _finished(c)
    panels = [("plain", runs[runs["family"] == "plain"]),
              ("ResNet", runs[(runs["family"] == "resnet") & (runs["shortcut"] == "A")
                              & (runs["depth"] <= 110)]),
              ("ResNet, deep", runs[(runs["family"] == "resnet") & (runs["shortcut"] == "A")
                                    & runs["depth"].isin([110, 1202])])]
    panels = [(t, r) for t, r in panels if not r.empty]
    if not panels or all(t == "ResNet, deep" for t, _ in panels):
        raise MissingRuns("needs plain or option-A residual runs")
    if len(panels) == 3 and set(panels[2][1]["depth"]) == {110}:
        panels = panels[:2]  # the right panel is for 1202 layers
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.6), squeeze=False,
                             layout="constrained")
    for ax, (title, group) in zip(axes[0], panels):
        _draw(ax, curves(c, group), _labels(group), ("train", "test"))
        ax.set_title(title)
    fig.suptitle("Fig. 6: dashed = training error, bold = test error")
    return fig


def fig7(c: Collected) -> plt.Figure:
    """Fig. 7: std of each 3x3 layer's response, by layer index (top) and sorted (bottom)."""
    runs = _finished(c)
    runs = runs[runs["family"].isin(["plain", "resnet"])]
    resp = c.responses.merge(runs[["run_id", "label", "family", "depth", "shortcut"]],
                             on="run_id")
    if resp.empty:
        raise MissingRuns("needs runs that recorded layer responses (responses=true)")
    labels = _labels(runs[runs["run_id"].isin(resp["run_id"])])
    colors = _palette(labels)
    fig, axes = plt.subplots(2, 1, figsize=(7, 6.2), layout="constrained")
    for lab in labels:
        d = resp[resp["label"] == lab]
        by_index = d.groupby("index")["std"].mean()
        axes[0].plot(by_index.index, by_index.values, color=colors[lab], lw=1.5, label=lab)
        ranked = d.assign(rank=d.groupby("run_id")["std"].rank(ascending=False,
                                                                method="first"))
        by_rank = ranked.groupby("rank")["std"].mean()
        axes[1].plot(by_rank.index, by_rank.values, color=colors[lab], lw=1.5, label=lab)
    axes[0].set_xlabel("layer index (original)")
    axes[1].set_xlabel("layer index (sorted by magnitude)")
    for ax in axes:
        ax.set_ylabel("std")
        ax.legend(frameon=False, fontsize=8, ncol=2)
    fig.suptitle("Fig. 7: std of layer responses (after BN, before addition and ReLU)")
    return fig


def _summary_points(runs: pd.DataFrame, x: str) -> pd.DataFrame:
    long = runs.melt(id_vars=["run_id", "variant", "depth", "params", "macs", "label"],
                     value_vars=["final_train_err", "final_test_err"], var_name="split",
                     value_name="err")
    long["split"] = long["split"].map({"final_train_err": "training error",
                                       "final_test_err": "test error"})
    return long.dropna(subset=["err", x])


def error_vs_depth(c: Collected) -> plt.Figure:
    """Final error against depth, mean +- std over seeds; hue = family/shortcut."""
    runs = _finished(c)
    if runs["depth"].nunique() < 2:
        raise MissingRuns("needs runs at two or more depths")
    long = _summary_points(runs, "depth")
    g = sns.catplot(data=long, x="depth", y="err", hue="variant", col="split", kind="point",
                    errorbar="sd", dodge=0.25, height=3.4, aspect=1.2, sharey=False,
                    markers="o", capsize=0.1, palette="colorblind")
    g.set_axis_labels("depth (layers)", "error (%)")
    g.set_titles("{col_name}")
    g.figure.suptitle("Error vs depth (mean +- std over seeds)", y=1.03)
    return g.figure


def _error_vs(c: Collected, x: str, xlabel: str, title: str) -> plt.Figure:
    runs = _finished(c)
    if runs.empty or runs[x].nunique() < 2:
        raise MissingRuns(f"needs runs of two or more sizes ({x})")
    long = _summary_points(runs, x)
    long = long[long["split"] == "test error"]
    agg = long.groupby(["variant", "depth", x], as_index=False)["err"].agg(["mean", "std"])
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    colors = dict(zip(sorted(agg["variant"].unique()),
                      sns.color_palette("colorblind", agg["variant"].nunique())))
    for variant, d in agg.groupby("variant"):
        d = d.sort_values(x)
        ax.errorbar(d[x].astype(float), d["mean"], yerr=d["std"].fillna(0), marker="o",
                    color=colors[variant], label=variant, capsize=3, lw=1.5)
        for _, r in d.iterrows():
            ax.annotate(str(int(r["depth"])), (float(r[x]), r["mean"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test error (%)")
    ax.legend(frameon=False)
    ax.set_title(title)
    return fig


def error_vs_macs(c: Collected) -> plt.Figure:
    """Test error against MACs per image (log scale), mean +- std over seeds."""
    return _error_vs(c, "macs", "MACs per image (conv + fc, at the training input size)",
                     "Test error vs compute (labels: depth)")


def error_vs_params(c: Collected) -> plt.Figure:
    """Test error against parameters (log scale), mean +- std over seeds."""
    return _error_vs(c, "params", "parameters", "Test error vs parameters (labels: depth)")


FIGURES: dict[str, Callable[[Collected], plt.Figure]] = {
    "fig1": fig1, "fig4": fig4, "fig6": fig6, "fig7": fig7,
    "error_vs_depth": error_vs_depth, "error_vs_macs": error_vs_macs,
    "error_vs_params": error_vs_params,
}
