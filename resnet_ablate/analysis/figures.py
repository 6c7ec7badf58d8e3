"""The paper's figures from a user's runs, styled as the paper: x in iterations, dashed =
training error, solid = test (or validation) error; one line per condition, the mean over
its seeds, band = its 95% t-interval (none where fewer than 2 runs reach an iteration); bars
and error bars are 95% t-intervals of the mean too: one convention, the tables' own
(inference.mean_ci, within an error rate's [0, 100]). Colours, line styles and their words come
from analysis.style, the same in every figure. `edf_figure`: error EDFs of design spaces
(Radosavovic et al. 2019) with their Kolmogorov-Smirnov statistic.

Each builder returns (figure, caption): the caption says what was drawn (panels, n seeds,
how the conditions differ, which error). A figure whose runs are missing raises
MissingRuns naming what it needs: skipped with a note, never faked.

No pyplot, and the backend is never set: figures are `matplotlib.figure.Figure`s on the
Agg canvas (analysis.style.figure), so importing this leaves a notebook's backend alone,
saving works without a display, and a notebook shows a returned figure as it is.
"""
from __future__ import annotations

from typing import Callable

import matplotlib.figure
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..errors import InputError
from ..run import record
from ..reference import FAIL_ABOVE, MEDIAN, paper_number  # (None unless the condition is
# the paper's)
from . import edf as edfs
from . import inference, names, style
from .inference import ERROR_BOUNDS
from .rundirs import RunSet
from .vocab import (TRAIN_ERR_NOTE, condition_columns, describe, finished, is_paper_net,
                    labels, series_labels)

BAND = ("band = 95% t-interval of the mean over seeds, within [0, 100], as the tables' (none "
        "where n < 2)")
BARS = ("error bars = 95% t-intervals of the mean over seeds, within [0, 100], as the "
        "tables' (none where n < 2)")

Figure = tuple[matplotlib.figure.Figure, str]


class MissingRuns(Exception):
    """The runs a figure needs are not among those read."""


def _done(c: RunSet) -> pd.DataFrame:
    runs = finished(c.runs).copy()
    runs["label"] = _as_drawn(labels(runs))
    return runs


def _as_drawn(text: pd.Series) -> pd.Series:
    """Names a run recorded, drawn as they are: '$' escaped, else "$...$" is parsed as
    mathtext (an unknown command in it: a traceback at savefig)."""
    return text.astype(str).str.replace("$", r"\$", regex=False)


def curves(c: RunSet, runs: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per run: the training error averaged over each evaluation interval (the paper's
    thin lines), and the split's error at each evaluation; columns run_id, label, depth,
    kind (train|split), iteration, err. Computed in the query, at most CURVE_POINTS points
    per curve (the figure's resolution), each run once."""
    df = c.curves(runs, split)
    info = runs[["run_id", "label", "depth", "family", "shortcut", "condition"]] \
        .drop_duplicates("run_id")
    return df.merge(info, on="run_id")


def _iteration_axis(ax, df: pd.DataFrame) -> None:
    ax.set_xlabel("iter.")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not df.empty and df["iteration"].max() >= 10_000:  # the paper's axis: units of 1e4
        ax.ticklabel_format(axis="x", style="sci", scilimits=(4, 4))


def _draw(ax, df: pd.DataFrame, labels_: list[str], kinds: tuple[str, ...],
          colors: dict[str, tuple]) -> None:
    few = False
    for lab in labels_:
        for kind in kinds:
            d = df[(df["label"] == lab) & (df["kind"] == kind)]
            if d.empty:
                continue
            g = d.groupby("iteration")["err"]
            mean = g.mean()
            low, high = _t_band(g)
            bold = kind != "train"
            ax.plot(mean.index, mean.values, color=colors[lab], **style.line(kind, len(mean)),
                    label=lab if (bold or len(kinds) == 1) else None)
            few = few or len(mean) < style.MIN_LINE_POINTS
            if np.isfinite(low).any():
                ax.fill_between(mean.index, low, high, color=colors[lab], alpha=0.15, lw=0)
    _iteration_axis(ax, df)
    ax.set_ylabel("error (%)")
    style.add_line_legend(ax, kinds, markers=few)


def _t_band(groups) -> tuple[np.ndarray, np.ndarray]:
    """Per group (iteration): the 95% t-interval of the mean over seeds; NaN (no band)
    where fewer than 2 values."""
    cis = [inference.mean_ci(v.tolist(), bounds=ERROR_BOUNDS) for _, v in groups]
    return (np.array([np.nan if c.low is None else c.low for c in cis]),
            np.array([np.nan if c.high is None else c.high for c in cis]))


def _t_yerr(values: list[list[float]], means) -> np.ndarray:
    """Asymmetric error bars (2 x n) of 95% t-intervals; 0 with NaN ends where n < 2
    (matplotlib draws no bar for a NaN)."""
    cis = [inference.mean_ci(v, bounds=ERROR_BOUNDS) for v in values]
    lo = [np.nan if c.low is None else m - c.low for c, m in zip(cis, means)]
    hi = [np.nan if c.high is None else c.high - m for c, m in zip(cis, means)]
    return np.array([lo, hi], dtype=float)


def _order(runs: pd.DataFrame) -> list[str]:
    order = runs.sort_values(["family", "depth", "shortcut", "label"])
    return list(dict.fromkeys(order["label"]))


def _paper_nets(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs.apply(is_paper_net, axis=1)] if not runs.empty else runs


def fig1(c: RunSet) -> Figure:
    runs = _paper_nets(_done(c))
    runs = runs[(runs["family"] == "plain") & runs["depth"].isin([20, 56])]
    if set(runs["depth"]) != {20, 56}:
        raise MissingRuns("needs finished runs of plain20 and plain56")
    df = curves(c, runs)
    fig, axes = style.figure(1, 2, figsize=(9, 3.6))
    colors = style.frame_palette(runs)
    _draw(axes[0], df, _order(runs), ("train",), colors)
    _draw(axes[1], df, _order(runs), ("test",), colors)
    axes[0].set_title("training error")
    axes[1].set_title("test error")
    fig.suptitle("Fig. 1: plain-20 and plain-56")
    return fig, (f"Fig. 1: training error (left) and test error (right) of plain-20 and "
                 f"plain-56; {BAND}. {describe(runs)} {TRAIN_ERR_NOTE}")


def fig4(c: RunSet) -> Figure:
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
    # The paper's bold curve is ImageNet's validation set, the split the harness calls
    # test; the harness's own validation split is training images held out, not drawn.
    fig, axes = style.figure(1, 2, figsize=(9, 3.6), sharey=True)
    colors = style.frame_palette(pd.concat([plain, res]))
    for ax, group, title in ((axes[0], plain, "plain"), (axes[1], res, "ResNet")):
        _draw(ax, curves(c, group, "test"), _order(group), ("train", "test"), colors)
        ax.set_title(title)
    lines = style.line_note(("train", "test"))
    fig.suptitle(f"Fig. 4 analog: {lines} (ImageNet: its val set)")
    both = pd.concat([plain, res])
    return fig, (f"Fig. 4 analog: plain nets (left) and ResNets ({res['shortcut'].iloc[0]}) "
                 f"(right) at {pick[0]} and {pick[1]} layers; {lines} (the test split: for "
                 f"ImageNet its 50k validation images, the split the paper's Fig. 4 shows; "
                 f"the validation images held out of training are not drawn); {BAND}. "
                 f"{describe(both)} {TRAIN_ERR_NOTE}")


def fig6(c: RunSet) -> Figure:
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
    fig, axes = style.figure(1, len(panels), figsize=(4.3 * len(panels), 3.6), squeeze=False)
    colors = style.frame_palette(pd.concat([g for _, g in panels]).drop_duplicates("run_id"))
    for ax, (title, group) in zip(axes[0], panels):
        _draw(ax, curves(c, group), _order(group), ("train", "test"), colors)
        ax.set_title(title)
    lines = style.line_note(("train", "test"))
    fig.suptitle(f"Fig. 6: {lines}")
    drawn = "; ".join(f"{'left' if i == 0 else 'right' if i == len(panels) - 1 else 'middle'}"
                      f": {title} ({', '.join(_order(g))})" for i, (title, g) in
                      enumerate(panels))
    return fig, (f"Fig. 6: {drawn}; {lines}; {BAND}. "
                 f"{describe(pd.concat([g for _, g in panels]).drop_duplicates('run_id'))} "
                 f"{TRAIN_ERR_NOTE}")


def fig7(c: RunSet) -> Figure:
    runs = _paper_nets(_done(c))
    runs = runs[runs["family"].isin(["plain", "resnet"])]
    resp = c.responses.merge(runs[["run_id", "label"]], on="run_id")
    if resp.empty:
        raise MissingRuns("needs runs that recorded layer responses (responses=true)")
    order = _order(runs[runs["run_id"].isin(resp["run_id"])])
    colors = style.frame_palette(runs)
    fig, axes = style.figure(2, 1, figsize=(7, 6.2))
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


def _t_interval(values) -> tuple[float, float]:
    """seaborn's errorbar as a function: the 95% t-interval of the mean (NaN, no bar,
    for fewer than 2 values)."""
    ci = inference.mean_ci(list(values), bounds=ERROR_BOUNDS)
    return (np.nan, np.nan) if not ci.defined else (ci.low, ci.high)


def error_vs_depth(c: RunSet) -> Figure:
    runs = _done(c)
    if runs["depth"].nunique() < 2:
        raise MissingRuns("needs runs at two or more depths")
    long = _points(runs, "depth")
    colors = _series_palette(runs)
    splits = list(dict.fromkeys(long["split"]))
    fig, axes = style.figure(1, len(splits), figsize=(4.1 * len(splits), 3.4), squeeze=False)
    for ax, split in zip(axes[0], splits):
        sns.pointplot(data=long[long["split"] == split], x="depth", y="err",
                      hue="series_label", errorbar=_t_interval, markers="o",
                      dodge=0.25 if long["series_label"].nunique() > 1 else False,  # (seaborn
                      # divides the dodge by the hue levels - 1)
                      capsize=0.1, palette=colors, ax=ax)
        ax.set(xlabel="depth (layers)", ylabel="error (%)", title=split)
        ax.legend(frameon=False, fontsize=8, title="")
    fig.suptitle("Error vs depth (mean, 95% t-interval over seeds)")
    return fig, (f"Final training error (the paper's) and test error against depth, "
                 f"one line per depth series, mean over seeds; {BARS}. {describe(runs)} "
                      f"{TRAIN_ERR_NOTE}")


def _series_palette(runs: pd.DataFrame) -> dict[str, tuple]:
    """One colour per depth series: its family and shortcut's hue (shades when a kind has
    several series: another lr, another block)."""
    series = runs.assign(series_label=series_labels(runs)).drop_duplicates("series_label")
    return style.frame_palette(series.drop(columns="depth"), label="series_label")


def _error_vs(c: RunSet, x: str, xlabel: str, title: str) -> Figure:
    runs = _done(c)
    if runs.empty or runs[x].nunique() < 2:
        raise MissingRuns(f"needs runs of two or more sizes ({x})")
    long = _points(runs, x)
    long = long[long["split"] == "test error"]
    agg = long.groupby(["series_label", "condition", "depth", x], as_index=False)["err"].agg(
        ["mean", list])
    fig, ax = style.figure(figsize=(6, 4))
    colors = _series_palette(runs)
    points = []
    for name, d in agg.groupby("series_label"):
        d = d.sort_values(x)
        ax.errorbar(d[x].astype(float), d["mean"], yerr=_t_yerr(d["list"], d["mean"]), marker="o",
                    color=colors[name], label=name, capsize=3, lw=1.5)
        points += [(float(r[x]), r["mean"], str(int(r["depth"]))) for _, r in d.iterrows()]
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test error (%)")
    ax.legend(frameon=False)
    ax.set_title(title)
    style.place_labels(ax, points)  # depth labels; overlapping ones move up
    return fig, f"{title}: mean over seeds, {BARS}; labels = depth. {describe(runs)}"


def error_vs_macs(c: RunSet) -> Figure:
    return _error_vs(c, "macs", "MACs per image (conv + fc, at the training input size)",
                     "Test error vs compute")


def error_vs_params(c: RunSet) -> Figure:
    return _error_vs(c, "params", "parameters", "Test error vs parameters")


def ablation(c: RunSet) -> Figure:
    """Test error by variant, one panel per depth the runs have (He et al. 2016's Table 2:
    ResNet-110 and ResNet-164), mean with its 95% t-interval over seeds, beside the paper's
    number where it has one (He et al. 2016, Tables 1/2: medians of 5, so our median is
    marked too). A variant whose runs all diverged has its row, saying so."""
    every = c.runs.copy()
    if every.empty:
        raise MissingRuns("needs finished runs")
    every["label"] = _as_drawn(labels(every))
    depths = [d for d, g in every.groupby("depth") if g["condition"].nunique() >= 2]
    if not depths:
        raise MissingRuns("needs two or more variants at one depth")
    panels = []
    for depth in sorted(depths):
        rows = []
        for cond, g in every[every["depth"] == depth].groupby("condition"):
            done = g[(g["status"] == "finished") & g["final_test_err"].notna()]
            values = done["final_test_err"].astype(float).tolist()
            paper = paper_number((done if len(done) else g).iloc[0])
            rows.append({"label": g["label"].iloc[0], "family": g["family"].iloc[0],
                         "shortcut": g["shortcut"].iloc[0], "values": values,
                         "mean": float(np.mean(values)) if values else np.nan,
                         "median": float(np.median(values)) if values else np.nan,
                         "n": len(values), "diverged": int((g["status"] == "diverged").sum()),
                         "failed": int((g["status"] == "failed").sum()),
                         "paper": None if paper is None or paper.fail else paper.headline,
                         "median_kind": paper is not None and paper.kind == MEDIAN,
                         "fail": paper is not None and paper.fail})
        df = pd.DataFrame(rows).sort_values("mean", na_position="last")
        panels.append((depth, df.reset_index(drop=True)))
    heights = [0.45 * len(df) + 1.0 for _, df in panels]
    fig, axes = style.figure(len(panels), 1, figsize=(7, sum(heights) + 0.4), squeeze=False,
                             height_ratios=heights)
    for ax, (depth, df) in zip(axes[:, 0], panels):
        _ablation_panel(ax, df, depth)
    drawn = [c.runs[(c.runs["depth"] == d) & (c.runs["status"] == "finished")] for d, _ in
             panels]
    every_row = pd.concat([df for _, df in panels])
    parts = [f"bars = mean over seeds, {BARS}"]  # the caption names what was drawn
    if (every_row["median_kind"] & (every_row["n"] > 0)).any():
        parts.append("dots = our median, where the paper reports medians (He et al. 2016: "
                     "of 5 runs)")
    if every_row["paper"].notna().any():
        parts.append("diamonds = the paper's number, beside runs under its condition")
    if every_row["fail"].any():
        parts.append(f"'paper: fail' = the paper's test error above {FAIL_ABOVE:g}% (He et "
                     "al. 2016's word)")
    if (every_row["diverged"] + every_row["failed"]).any():
        parts.append("runs that diverged or failed counted beside")
    return fig, (f"Test error of each variant at {', '.join(str(d) for d, _ in panels)} "
                 f"layers: {'; '.join(parts)}; n = finished runs. "
                 f"{describe(pd.concat(drawn))}")


def _ablation_panel(ax, df: pd.DataFrame, depth: int) -> None:
    y = np.arange(len(df))
    has = df["n"] > 0
    colors = style.frame_palette(df)
    ax.barh(y[has], df.loc[has, "mean"], xerr=_t_yerr(list(df.loc[has, "values"]),
                                                      df.loc[has, "mean"]),
            color=[colors[lab] for lab in df.loc[has, "label"]], alpha=0.8, capsize=3,
            label="ours: mean, 95% t-interval")
    med = has & df["median_kind"]
    if med.any():
        ax.scatter(df.loc[med, "median"], y[med.to_numpy()], marker="o", color="black", s=14,
                   zorder=3, label="ours: median")
    paper = df["paper"].notna()
    if paper.any():
        ax.scatter(df.loc[paper, "paper"], y[paper.to_numpy()], marker="D", color=style.PAPER_COLOR,
                   zorder=3, label="paper")
    for yi, row in zip(y, df.itertuples()):
        notes = (["paper: fail"] if row.fail else []) + (
            [f"all {row.diverged} diverged"] if row.n == 0 and row.diverged else
            [f"{row.diverged} diverged"] if row.diverged else []) + (
            [f"{row.failed} failed"] if row.failed else [])
        if notes:
            ax.annotate("; ".join(notes), (0, yi), xytext=(4, -3), textcoords="offset points",
                        fontsize=7, color=style.PAPER_COLOR)
    ax.set_yticks(y, [f"{lab} (n={n})" for lab, n in zip(df["label"], df["n"])], fontsize=8)
    ax.set_xlabel("test error (%)")
    ax.legend(frameon=False, fontsize=7)
    ax.set_title(f"Test error by variant, {depth} layers")


def check_edf_factor(runs: pd.DataFrame | None, factor: str) -> None:
    """A factor a design space can be split by: a factor column of the runs (None: of the
    record's schema, checked before any run is read), or model."""
    columns = record.columns([record.FACTOR]) if runs is None else condition_columns(runs)
    allowed = sorted(set(columns) | {"model"})
    if factor not in allowed:
        raise InputError(f"--edf {factor!r}: not a factor of the runs; allowed: "
                         f"{', '.join(allowed)}")


NORMALIZE = {"params": "parameters", "macs": "MACs"}


def edf_data(c: RunSet, factor: str, column: str = "final_test_err",
             normalize: str | None = None, bins: int = edfs.BINS
             ) -> tuple[dict[str, edfs.EDF], list[tuple[str, str, edfs.KS]]]:
    """The error EDFs of the design spaces a factor splits the finished runs into (each
    run a sampled model, Radosavovic et al. 2019), and the KS test of every pair:
    ({value: EDF}, [(value a, value b, KS)]). `factor`: a column of the runs, e.g. family
    (plain vs resnet), shortcut (A vs B), block. `normalize`: "params" or "macs", the
    complexity-normalised EDFs of Sec. 3.2 over `bins` complexity bins of the spaces'
    common range (edf.normalized_edf), the KS p by permutation within bins."""
    check_edf_factor(c.runs, factor)
    if normalize is not None and normalize not in NORMALIZE:
        raise InputError(f"EDF normalisation {normalize!r}: allowed: {', '.join(NORMALIZE)}")
    runs = finished(c.runs).dropna(subset=[column])
    groups = {str(k): g for k, g in runs.groupby(factor)}
    if len(groups) < 2:
        raise MissingRuns(f"needs finished runs with two or more values of {factor} "
                          f"(found: {', '.join(groups) or 'none'})")
    values = {k: g[column].astype(float).to_numpy() for k, g in groups.items()}
    names_ = list(groups)
    if normalize is None:
        spaces = {k: edfs.edf(v) for k, v in values.items()}
        pairs = [(a, b, edfs.ks(values[a], values[b])) for i, a in enumerate(names_)
                 for b in names_[i + 1:]]
        return spaces, pairs
    try:
        _, idx = edfs.complexity_bins({k: g[normalize].astype(float).to_numpy()
                                       for k, g in groups.items()}, bins)
    except ValueError as why:
        raise MissingRuns(f"a normalised EDF by {normalize}: {why}") from None
    spaces = {k: edfs.normalized_edf(values[k], idx[k], bins) for k in names_}
    pairs = [(a, b, edfs.normalized_ks(values[a], idx[a], values[b], idx[b], bins))
             for i, a in enumerate(names_) for b in names_[i + 1:]]
    return spaces, pairs


def edf_figure(c: RunSet, factor: str, normalize: str | None = None) -> Figure:
    """Error EDFs (Radosavovic et al. 2019, Eq. 1; normalised for complexity, Sec. 3.2,
    with `normalize`) per design space, one step curve each, with the KS statistic and p
    between them in the legend and caption."""
    spaces, pairs = edf_data(c, factor, normalize=normalize)
    colors = style.palette([{"label": name, factor: name} for name in spaces])
    fig, ax = style.figure(figsize=(6, 4))
    for name, e in spaces.items():
        ax.step(np.concatenate([[e.x[0]], e.x]), np.concatenate([[0.0], e.F]), where="post",
                color=colors[name], lw=1.8, label=f"{factor}={name} (n={e.n})")
    ax.set_xlabel("test error (%)" + (f" | {NORMALIZE[normalize]}" if normalize else ""))
    ax.set_ylabel("cumulative prob. (fraction of models with lower error)")
    ax.set_ylim(0, 1.02)
    ks_text = "; ".join(f"{a} vs {b}: {k} ({k.method})" for a, b, k in pairs)
    ax.set_title(f"Error EDFs by {factor}\n{ks_text}", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    what = ("the fraction of its sampled models (finished runs) with test error below e" +
            ("" if normalize is None else f", normalised for {NORMALIZE[normalize]} (Sec. "
             f"3.2): each of {edfs.BINS} equal bins of the spaces' common range weighs the "
             "same; models outside it left out"))
    return fig, (f"Error EDFs by {factor} (Radosavovic et al. 2019, Eq. 1): for each design "
                 f"space, {what}. Kolmogorov-Smirnov two-sample test (two-sided; scipy "
                 "ks_2samp without ties, else a permutation test of D, within complexity "
                 f"bins when normalised): {ks_text}. "
                 f"{describe(finished(c.runs), 'test error')}")


def edf_table(c: RunSet, factor: str, normalize: str | None = None) -> pd.DataFrame:
    """One row per design space (its quartiles: numpy's, or the weighted EDF's when
    normalised), then one per pair (KS D and p)."""
    spaces, pairs = edf_data(c, factor, normalize=normalize)
    done = finished(c.runs).dropna(subset=["final_test_err"])
    raw = {str(k): g["final_test_err"].astype(float) for k, g in done.groupby(factor)}

    def q(name: str, f: float) -> str:
        e = spaces[name]
        return f"{e.quantile(f) if e.weighted else np.percentile(raw[name], 100 * f):.2f}"

    rows = [{"design space": f"{factor}={name}", "models": e.n, "min": f"{e.x[0]:.2f}",
             "25%": q(name, 0.25), "median": q(name, 0.5), "75%": q(name, 0.75),
             "max": f"{e.x[-1]:.2f}", "KS D": "", "KS p": ""} for name, e in spaces.items()]
    rows += [{"design space": f"{a} vs {b}", "models": k.n_a + k.n_b, "min": "", "25%": "",
              "median": "", "75%": "", "max": "", "KS D": f"{k.statistic:.3f}",
              "KS p": f"{k.p:.3g}"} for a, b, k in pairs]
    return pd.DataFrame(rows)


FIGURE_BUILDERS: dict[str, Callable[[RunSet], Figure]] = {
    "fig1": fig1, "fig4": fig4, "fig6": fig6, "fig7": fig7,
    "error_vs_depth": error_vs_depth, "error_vs_macs": error_vs_macs,
    "error_vs_params": error_vs_params, "ablation": ablation,
}
assert list(FIGURE_BUILDERS) == list(names.FIGURE_TITLES), "analysis.names lists every figure"
