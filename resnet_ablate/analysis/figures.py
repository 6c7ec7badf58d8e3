"""The paper's figures from collected runs, styled as the paper: x in iterations, dashed =
training error, bold = test (or validation) error; one line per condition, the mean over
its seeds, band = ±1 std.

Each builder returns (figure, caption): the caption says what was drawn (panels, n seeds,
how the conditions differ, which error). A figure whose runs are missing raises
MissingRuns naming what it needs: skipped with a note, never faked.
"""
from __future__ import annotations

from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..reference import paper_number  # noqa: E402  (None unless the condition is the paper's)
from . import names  # noqa: E402
from .collect import Collected  # noqa: E402
from .vocab import (TRAIN_ERR_NOTE, describe, finished, is_paper_net, labels,  # noqa: E402
                    series_labels)

Figure = tuple[plt.Figure, str]


class MissingRuns(Exception):
    """The runs a figure needs are not in the collection."""


def _done(c: Collected) -> pd.DataFrame:
    runs = finished(c.runs).copy()
    runs["label"] = _as_drawn(labels(runs))
    return runs


def _as_drawn(text: pd.Series) -> pd.Series:
    """Names a run recorded, drawn as they are: '$' escaped, else "$...$" is parsed as
    mathtext (an unknown command in it: a traceback at savefig)."""
    return text.astype(str).str.replace("$", r"\$", regex=False)


def curves(c: Collected, runs: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per run: the training error averaged over each evaluation interval (the paper's
    thin lines), and the split's error at each evaluation; columns run_id, label, depth,
    kind (train|split), iteration, err."""
    hist = c.history[c.history["run_id"].isin(runs["run_id"])]
    out = []
    for run_id, h in hist.groupby("run_id"):
        # one row per (metric, iteration): a history read twice (one run reached through
        # two folders) or an evaluation at iteration 0 would repeat a bin edge
        h = h.dropna(subset=["iteration", "value"]).drop_duplicates(["metric", "iteration"])
        evals = h[h["metric"] == f"{split}_err"].sort_values("iteration")
        train = h[h["metric"] == "train_err"].sort_values("iteration")
        if evals.empty or train.empty:
            continue
        edges = np.unique(np.concatenate([[0], evals["iteration"].to_numpy()]))
        if len(edges) < 2:  # evaluated at iteration 0 only: no interval to average over
            continue
        bins = pd.cut(train["iteration"], edges, labels=edges[1:], right=True)
        binned = train.groupby(bins, observed=True)["value"].mean()
        for it, err in binned.items():
            out.append({"run_id": run_id, "kind": "train", "iteration": int(it), "err": err})
        for it, err in zip(evals["iteration"], evals["value"]):
            out.append({"run_id": run_id, "kind": split, "iteration": int(it), "err": err})
    df = pd.DataFrame(out, columns=["run_id", "kind", "iteration", "err"])
    return df.merge(runs[["run_id", "label", "depth", "family", "condition"]], on="run_id")


def _palette(labels_: list[str]) -> dict[str, tuple]:
    return dict(zip(labels_, sns.color_palette("tab10", max(len(labels_), 1))))


def _iteration_axis(ax, df: pd.DataFrame) -> None:
    ax.set_xlabel("iter.")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not df.empty and df["iteration"].max() >= 10_000:  # the paper's axis: units of 1e4
        ax.ticklabel_format(axis="x", style="sci", scilimits=(4, 4))


def _draw(ax, df: pd.DataFrame, labels_: list[str], kinds: tuple[str, ...]) -> None:
    colors = _palette(labels_)
    for lab in labels_:
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
    _iteration_axis(ax, df)
    ax.set_ylabel("error (%)")
    ax.legend(frameon=False, fontsize=8)


def _order(runs: pd.DataFrame) -> list[str]:
    order = runs.sort_values(["family", "depth", "shortcut", "label"])
    return list(dict.fromkeys(order["label"]))


def _paper_nets(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs.apply(is_paper_net, axis=1)] if not runs.empty else runs


def fig1(c: Collected) -> Figure:
    runs = _paper_nets(_done(c))
    runs = runs[(runs["family"] == "plain") & runs["depth"].isin([20, 56])]
    if set(runs["depth"]) != {20, 56}:
        raise MissingRuns("needs finished runs of plain20 and plain56")
    df = curves(c, runs)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    _draw(axes[0], df, _order(runs), ("train",))
    _draw(axes[1], df, _order(runs), ("test",))
    axes[0].set_title("training error")
    axes[1].set_title("test error")
    fig.suptitle("Fig. 1: plain-20 and plain-56")
    return fig, (f"Fig. 1: training error (left) and test error (right) of plain-20 and "
                 f"plain-56. {describe(runs)} {TRAIN_ERR_NOTE}")


def fig4(c: Collected) -> Figure:
    runs = _paper_nets(_done(c))
    plain = runs[runs["family"] == "plain"]
    res = runs[runs["family"] == "resnet"]
    if res["shortcut"].nunique() > 1:  # one shortcut option per figure: A, else the first
        res = res[res["shortcut"] == ("A" if "A" in set(res["shortcut"]) else
                                      sorted(res["shortcut"])[0])]
    depths = sorted(set(plain["depth"]) & set(res["depth"]))
    if len(depths) < 2:
        raise MissingRuns("needs plain and residual runs at two common depths")
    pick = [depths[0], depths[-1]]
    plain, res = plain[plain["depth"].isin(pick)], res[res["depth"].isin(pick)]
    split = "val" if (c.history["metric"] == "val_err").any() else "test"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True, layout="constrained")
    for ax, group, title in ((axes[0], plain, "plain"), (axes[1], res, "ResNet")):
        _draw(ax, curves(c, group, split), _order(group), ("train", split))
        ax.set_title(title)
    word = "validation" if split == "val" else "test"
    fig.suptitle(f"Fig. 4 analog: thin = training, bold = {word} error")
    both = pd.concat([plain, res])
    return fig, (f"Fig. 4 analog: plain nets (left) and ResNets ({res['shortcut'].iloc[0]}) "
                 f"(right) at {pick[0]} and {pick[1]} layers; dashed = training error, bold = "
                 f"{word} error. {describe(both)} {TRAIN_ERR_NOTE}")


def fig6(c: Collected) -> Figure:
    runs = _paper_nets(_done(c))
    res = runs[(runs["family"] == "resnet") & (runs["shortcut"] == "A")]
    panels = [("plain", runs[runs["family"] == "plain"]),
              ("ResNet", res[res["depth"] <= 110]),
              ("ResNet, deep", res[res["depth"].isin([110, 1202])])]
    panels = [(t, r) for t, r in panels if not r.empty]
    if len(panels) == 3 and set(panels[2][1]["depth"]) == {110}:
        panels = panels[:2]  # the right panel is for 1202 layers
    if not panels or all(t == "ResNet, deep" for t, _ in panels):
        raise MissingRuns("needs plain or option-A residual runs")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.6), squeeze=False,
                             layout="constrained")
    for ax, (title, group) in zip(axes[0], panels):
        _draw(ax, curves(c, group), _order(group), ("train", "test"))
        ax.set_title(title)
    fig.suptitle("Fig. 6: dashed = training error, bold = test error")
    drawn = "; ".join(f"{'left' if i == 0 else 'right' if i == len(panels) - 1 else 'middle'}"
                      f": {title} ({', '.join(_order(g))})" for i, (title, g) in
                      enumerate(panels))
    return fig, (f"Fig. 6: {drawn}; dashed = training error, bold = test error. "
                 f"{describe(pd.concat([g for _, g in panels]).drop_duplicates('run_id'))} "
                 f"{TRAIN_ERR_NOTE}")


def fig7(c: Collected) -> Figure:
    runs = _paper_nets(_done(c))
    runs = runs[runs["family"].isin(["plain", "resnet"])]
    resp = c.responses.merge(runs[["run_id", "label"]], on="run_id")
    if resp.empty:
        raise MissingRuns("needs runs that recorded layer responses (responses=true)")
    order = _order(runs[runs["run_id"].isin(resp["run_id"])])
    colors = _palette(order)
    fig, axes = plt.subplots(2, 1, figsize=(7, 6.2), layout="constrained")
    for lab in order:
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
        ax.set_ylabel("std (log scale)")
        ax.set_yscale("log")  # one exploding net must not flatten the others
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=8, ncol=2)
    fig.suptitle("Fig. 7: std of layer responses (after BN, before addition and ReLU)")
    used = runs[runs["run_id"].isin(resp["run_id"])]
    return fig, (f"Fig. 7: std of each 3x3 layer's response on held-out images (after BN, "
                 f"before addition and ReLU), by layer index (top) and sorted by magnitude "
                 f"(bottom), log scale. {describe(used)}")


def _points(runs: pd.DataFrame, x: str) -> pd.DataFrame:
    runs = runs.assign(series_label=_as_drawn(series_labels(runs)))
    long = runs.melt(id_vars=["run_id", "condition", "series_label", "depth", "params",
                              "macs", "label"],
                     value_vars=["final_train_err", "final_test_err"], var_name="split",
                     value_name="err")
    long["split"] = long["split"].map({"final_train_err": "training error (the paper's)",
                                       "final_test_err": "test error"})
    return long.dropna(subset=["err", x])


def error_vs_depth(c: Collected) -> Figure:
    runs = _done(c)
    if runs["depth"].nunique() < 2:
        raise MissingRuns("needs runs at two or more depths")
    long = _points(runs, "depth")
    g = sns.catplot(data=long, x="depth", y="err", hue="series_label", col="split",
                    kind="point", errorbar="sd", dodge=0.25, height=3.4, aspect=1.2,
                    sharey=False, markers="o", capsize=0.1, palette="colorblind")
    g.set_axis_labels("depth (layers)", "error (%)")
    g.set_titles("{col_name}")
    g.legend.set_title("")
    g.figure.suptitle("Error vs depth (mean ± std over seeds)", y=1.03)
    return g.figure, (f"Final training error (the paper's) and test error against depth, "
                      f"one line per depth series, mean ± std over seeds. {describe(runs)} "
                      f"{TRAIN_ERR_NOTE}")


def _error_vs(c: Collected, x: str, xlabel: str, title: str) -> Figure:
    runs = _done(c)
    if runs.empty or runs[x].nunique() < 2:
        raise MissingRuns(f"needs runs of two or more sizes ({x})")
    long = _points(runs, x)
    long = long[long["split"] == "test error"]
    agg = long.groupby(["series_label", "condition", "depth", x], as_index=False)["err"].agg(
        ["mean", "std"])
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    colors = dict(zip(sorted(agg["series_label"].unique()),
                      sns.color_palette("colorblind", agg["series_label"].nunique())))
    for name, d in agg.groupby("series_label"):
        d = d.sort_values(x)
        ax.errorbar(d[x].astype(float), d["mean"], yerr=d["std"].fillna(0), marker="o",
                    color=colors[name], label=name, capsize=3, lw=1.5)
        for _, r in d.iterrows():
            ax.annotate(str(int(r["depth"])), (float(r[x]), r["mean"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test error (%)")
    ax.legend(frameon=False)
    ax.set_title(title)
    return fig, f"{title}: mean ± std over seeds, labels = depth. {describe(runs)}"


def error_vs_macs(c: Collected) -> Figure:
    return _error_vs(c, "macs", "MACs per image (conv + fc, at the training input size)",
                     "Test error vs compute")


def error_vs_params(c: Collected) -> Figure:
    return _error_vs(c, "params", "parameters", "Test error vs parameters")


def ablation(c: Collected) -> Figure:
    """Test error by variant at one depth (the most populated one), mean ± std over seeds,
    with the paper's number where it has one (He et al. 2016, Tables 1/2)."""
    runs = _done(c)
    if runs.empty:
        raise MissingRuns("needs finished runs")
    depth = runs.groupby("depth")["condition"].nunique().idxmax()
    at = runs[runs["depth"] == depth]
    if at["condition"].nunique() < 2:
        raise MissingRuns("needs two or more variants at one depth")
    rows = []
    for cond, g in at.groupby("condition"):
        paper = paper_number(g.iloc[0])
        rows.append({"label": g["label"].iloc[0], "mean": g["final_test_err"].mean(),
                     "std": g["final_test_err"].std(), "n": g["seed"].nunique(),
                     "paper": None if paper is None else (paper.headline if not paper.fail
                                                          else None),
                     "fail": paper is not None and paper.fail})
    df = pd.DataFrame(rows).sort_values("mean")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(df) + 1.2), layout="constrained")
    y = np.arange(len(df))
    ax.barh(y, df["mean"], xerr=df["std"].fillna(0), color="#4c72b0", alpha=0.8,
            capsize=3, label="ours (mean ± std)")
    has = df["paper"].notna()
    ax.scatter(df.loc[has, "paper"], y[has.to_numpy()], marker="D", color="#c44e52",
               zorder=3, label="paper")
    for yi, fail in zip(y, df["fail"]):
        if fail:
            ax.annotate("paper: fail", (0, yi), xytext=(4, -3), textcoords="offset points",
                        fontsize=7, color="#c44e52")
    ax.set_yticks(y, [f"{lab} (n={n})" for lab, n in zip(df["label"], df["n"])], fontsize=8)
    ax.set_xlabel("test error (%)")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"Test error by variant, {depth} layers")
    return fig, (f"Test error of each variant at {depth} layers, mean ± std over seeds "
                 f"(bars), beside the paper's number (diamonds; 'fail' = above 20%). "
                 f"{describe(at)}")


FIGURE_BUILDERS: dict[str, Callable[[Collected], Figure]] = {
    "fig1": fig1, "fig4": fig4, "fig6": fig6, "fig7": fig7,
    "error_vs_depth": error_vs_depth, "error_vs_macs": error_vs_macs,
    "error_vs_params": error_vs_params, "ablation": ablation,
}
assert list(FIGURE_BUILDERS) == list(names.FIGURE_TITLES), "analysis.names lists every figure"
