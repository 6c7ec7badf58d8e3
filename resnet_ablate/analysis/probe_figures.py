"""Figures of the probes of why residual nets train, from the probe records in run
directories (resnet_ablate.run.probefiles; read directly for now, a store later).

One line (or panel) per condition, the mean over its seeds with a band of ±1 std, as the
paper figures are drawn (resnet_ablate.analysis.figures); records of one condition are
pooled only when probed alike (one settings digest), and a condition probed two ways is
two lines. A seed is one sample: of the runs of one (condition, seed), the one `compare`
counts (resnet_ablate.analysis.samples.one_per_seed), and of its records the one drawn with
its own seed. Errors in percent of the probe's split. Every record is checked before it is
used (resnet_ablate.probes.checks; its arrays' headers before they are read): one that
fails is skipped and named, the rest drawn.

    lesion_figure      Veit et al. (2016) Figs. 3, 5a (error vs k) and 5b (vs Kendall tau)
    landscape_figures  Li et al. (2018) Figs. 5 and 7, per depth; Goodfellow et al.'s path
    paths_figure       Veit et al. (2016) Fig. 6; per-unit gradient norms
    hessian_figure     Yao et al. (2020): the Hessian's extreme eigenvalue and trace vs depth
    run_figure         one record's figure (W&B)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import matplotlib.figure
import numpy as np
import pandas as pd

from ..errors import InputError
from ..probes.checks import check_record
from ..run import probefiles
from ..run.rundir import RunDir
from .rundirs import run_row
from . import style
from .samples import one_per_seed
from .vocab import labels

Figure = tuple[matplotlib.figure.Figure, str]


@dataclass
class Probed:
    """One probe record with its arrays and the run it probed."""
    path: Path | None
    rec: dict[str, Any]
    arrays: dict[str, np.ndarray]
    run: dict[str, Any]  # the run's row (resnet_ablate.analysis.rundirs.run_row)
    label: str
    counted: bool = True  # its run is the one sample of its (condition, seed)

    @property
    def result(self) -> dict[str, Any]:
        return self.rec["result"]

    @property
    def key(self) -> tuple[str, str]:
        """What pools seeds: the condition's label and how it was probed."""
        return self.label, self.rec["settings_digest"]


def load(run_dirs: Iterable[str | Path], probe: str | None = None,
         skipped: list[str] | None = None, warnings: list[str] | None = None
         ) -> list[Probed]:
    """Every readable probe record of the finished runs among `run_dirs`, each marked
    counted when its run is the one `compare` counts for its (condition, seed). A record
    that cannot be read or fails its checks is left out and named in `skipped`; a run whose
    records are not counted (a rerun of a seed) is named in `warnings`."""
    skipped = [] if skipped is None else skipped
    rows, found = [], []
    for d in map(Path, run_dirs):
        try:
            summary = RunDir(d.parent, d.name).read_summary()
        except InputError:
            continue
        if summary is None or summary.get("status") != "finished":
            continue
        row = run_row(summary, str(d))
        rows.append(row)
        good = []
        for path, rec in probefiles.records(d, probe, skipped):
            try:
                check_record(rec)
                good.append((path, rec, probefiles.arrays(path, rec)))
            except InputError as exc:
                skipped.append(f"{path}: {exc}")
        if good:
            found.append((row, good))
    if not found:
        return []
    frame = pd.DataFrame(rows)
    counted = set(one_per_seed(frame)[0]["run_id"])
    names = dict(zip(frame["source"], labels(frame)))
    for row in (row for row, _ in found if row["run_id"] not in counted):
        kept = frame[(frame["condition"] == row["condition"]) & (frame["seed"] == row[
            "seed"]) & frame["run_id"].isin(counted)]["run_id"]
        (warnings if warnings is not None else []).append(
            f"the probe records of run {row['run_id']} are not counted: condition "
            f"{row['condition']}, seed {row['seed']} counts once, as {', '.join(kept)} (the "
            "run compare counts)")
    return [Probed(path, rec, arrays, row, names[row["source"]], row["run_id"] in counted)
            for row, good in found for path, rec, arrays in good]


def single(rec: dict[str, Any], arrays: dict[str, np.ndarray],
           run: dict[str, Any] | None = None) -> Probed:
    """A record on its own (one run's W&B figure)."""
    return Probed(None, rec, arrays, dict(run or {}), rec.get("model", "?"))


# ---------------------------------------------------------------------------- grouping
def _order(key: tuple[str, str], items: list[Probed]) -> tuple:
    r = items[0].run
    return (str(r.get("family")) != "plain", _num(r.get("depth")), key)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.inf


def groups(items: Iterable[Probed], probe: str, weights: str | None = "final"
           ) -> dict[str, list[Probed]]:
    """Records of `probe` by condition and settings, seeds together, plain before residual,
    shallow before deep; a condition probed two ways gets its settings digest in its name."""
    by: dict[tuple[str, str], list[Probed]] = {}
    for p in items:
        if p.counted and p.rec["probe"] == probe and (
                weights is None or p.rec.get("weights") == weights):
            by.setdefault(p.key, []).append(p)
    ways: dict[str, int] = {}
    for label, _ in by:
        ways[label] = ways.get(label, 0) + 1
    out = {}
    for key in sorted(by, key=lambda k: _order(k, by[k])):
        name = key[0] if ways[key[0]] == 1 else f"{key[0]} [{key[1][:6]}]"
        out[name] = sorted(_one_per_run(by[key]), key=lambda p: p.run.get("seed", p.rec["seed"]))
    return out


def _one_per_run(items: list[Probed]) -> list[Probed]:
    """One record per run (its runs are one per seed: load): a run probed again with
    another probe seed (same settings) keeps the record drawn with its own seed (the
    default), else the one of the lowest probe seed; extra draws are not more seeds."""
    best: dict[str, Probed] = {}
    for p in items:
        run_id = p.rec["run_id"]
        own = lambda q: (q.rec["seed"] != q.run.get("seed"), q.rec["seed"])  # noqa: E731
        if run_id not in best or own(p) < own(best[run_id]):
            best[run_id] = p
    return list(best.values())


def _palette(g: dict[str, list[Probed]]) -> dict[str, Any]:
    """The figures' shared colours (analysis.style): a family and shortcut's hue, shades by
    depth."""
    return style.palette([{"label": name, **{k: ps[0].run.get(k) for k in
                                             ("family", "shortcut", "depth")}}
                          for name, ps in g.items()])


def _band(ax, x, rows: list[np.ndarray], color, label: str, **kw) -> None:
    """Mean over rows (seeds) with a ±1 std band (none for one seed); NaN gaps kept."""
    data = np.asarray(rows, dtype=float)
    with warnings.catch_warnings():  # all-NaN columns (units a plain net cannot lose) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(data, 0) if len(data) else data
        std = np.nanstd(data, 0) if len(data) > 1 else None
    ax.plot(x, mean, color=color, label=f"{label} (n={len(rows)})", **kw)
    if std is not None:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)


def _seeds(g: dict[str, list[Probed]]) -> str:
    counts = sorted({len(v) for v in g.values()})
    return "/".join(map(str, counts)) + " seed(s) per condition"


# ---------------------------------------------------------------------------- lesion
def lesion_single(p: Probed) -> tuple[np.ndarray, np.ndarray]:
    """(test error % per deleted unit, True where the unit keeps its shape) of a record;
    NaN where a unit cannot be deleted."""
    rows = p.result.get("single") or []
    err = np.array([np.nan if r["error"] is None else 100 * r["error"] for r in rows])
    keeps = np.array([not r["how"].startswith("not deletable") and (
        "zero-pad" not in r["how"] and "projection" not in r["how"]) for r in rows])
    return err, keeps


def lesion_increase(p: Probed) -> float | None:
    """Mean rise of test error (pp) when one shape-preserving unit is deleted: the units
    both a plain and a residual net can lose (downsampling units apart, as Veit et al.)."""
    err, keeps = lesion_single(p)
    if not len(err) or not keeps.any():
        return None
    return float(np.nanmean(err[keeps]) - 100 * p.result["baseline"]["error"])


def lesion_figure(items: Iterable[Probed]) -> Figure | None:
    g = groups(items, "lesion")
    if not g:
        return None
    has_k = any(p.result.get("delete_k") for v in g.values() for p in v)
    has_swap = any(p.result.get("swap_k") for v in g.values() for p in v)
    ncols = 1 + has_k + has_swap
    fig, axes = style.figure(1, ncols, figsize=(5.2 * ncols, 4), squeeze=False)
    axes = axes[0]
    colors = _palette(g)
    for name, ps in g.items():
        single_rows = [lesion_single(p)[0] for p in ps if p.result.get("single")]
        if single_rows and len({len(r) for r in single_rows}) == 1:
            x = np.arange(1, len(single_rows[0]) + 1)
            _band(axes[0], x, single_rows, colors[name], name, marker=".", linewidth=1)
            base = np.mean([100 * p.result["baseline"]["error"] for p in ps])
            axes[0].axhline(base, color=colors[name], linestyle="--", linewidth=0.8)
        summaries = [s for s in (p.result.get("delete_k_summary") for p in ps) if s]
        if has_k and summaries and len({tuple(s["k"]) for s in summaries}) == 1:
            _band(axes[1], summaries[0]["k"], [100 * np.array(s["error_mean"])
                                               for s in summaries], colors[name], name,
                  marker="o", markersize=3)
        if has_swap:
            _swaps(axes[1 + has_k], ps, colors[name], name)
    axes[0].set(xlabel="deleted unit (depth order)", ylabel="test error (%)",
                title="delete one unit (Veit et al. Fig. 3)")
    titles = [("delete_k", "units deleted, k", "delete k random units (Fig. 5a)"),
              ("swap_k", "Kendall tau of the order (1: as trained)",
               "swap k distinct random pairs in a stage (Fig. 5b)")]
    col = 1
    for part, xlabel, title in titles:
        if has_k if part == "delete_k" else has_swap:
            axes[col].set(xlabel=xlabel, ylabel="test error (%)", title=title)
            col += 1
    if has_swap:
        axes[-1].invert_xaxis()  # as Fig. 5b: from the trained order (tau 1) to shuffled
    axes[0].legend(fontsize=7)
    return fig, (f"Lesion study (Veit et al. 2016): test error when units are deleted at "
                 f"test time; dashed: the intact net. Mean ± std over seeds ({_seeds(g)}); "
                 "gaps: a plain unit that changes shape cannot be deleted"
                 + ("; reordering: each draw's error against the Kendall tau of its order "
                    "(points), and per k the mean over draws and seeds" if has_swap else "")
                 + ".")


def _swaps(ax, ps: list[Probed], color, name: str) -> None:
    """Fig. 5b: error against Kendall tau, every draw a point, the mean per k a line."""
    rows = [r for p in ps for r in p.result.get("swap_k") or []]
    if not rows:
        return
    ax.scatter([r["kendall_tau"] for r in rows], [100 * r["error"] for r in rows], s=6,
               color=color, alpha=0.4, linewidths=0)
    ks = sorted({r["k"] for r in rows})
    tau = [np.mean([r["kendall_tau"] for r in rows if r["k"] == k]) for k in ks]
    err = [np.mean([100 * r["error"] for r in rows if r["k"] == k]) for k in ks]
    ax.plot(tau, err, color=color, marker="o", markersize=3, label=f"{name} (n={len(ps)})")


# ---------------------------------------------------------------------------- landscape
def _slice(p: Probed) -> tuple[list[float], np.ndarray]:
    """The 1D curve through the centre: the 1D landscape, or the 2D grid's y = 0 row."""
    loss, xs = p.arrays["loss"], p.result["x"]
    if loss.ndim == 1:
        return xs, loss
    ys = np.asarray(p.result["y"])
    return xs, loss[int(np.argmin(np.abs(ys)))]


LEVELS = np.arange(0.1, 10, 0.5)  # Li et al.'s plot_2D.py: vmin 0.1, vmax 10, vlevel 0.5


def never_trained(error: float | None, num_classes: Any) -> bool:
    """The rule, stated once: a net whose error is at least half of chance error (1 - 1/K
    for K classes: 45% of 90% for 10) did not train; its centre is no minimiser, its lesion
    no measure of what a trained net relies on."""
    k = _num(num_classes)
    return error is not None and math.isfinite(k) and k >= 2 and error >= (1 - 1 / k) / 2


def landscape_figures(items: Iterable[Probed]) -> list[tuple[int, Figure]]:
    """One figure per depth: a row per variant, its 2D contour (the lowest seed: each run
    has its own random directions) at Li et al.'s fixed levels, the same for every panel,
    beside its 1D slices (every seed, one loss axis for all rows), its linear path, and
    Li et al.'s Fig. 7 curvature map where it was probed."""
    items = list(items)
    g = groups(items, "landscape")
    paths = groups(items, "linear_path")
    by_depth: dict[int, list[str]] = {}
    for name, ps in g.items():
        by_depth.setdefault(int(_num(ps[0].run.get("depth", 0)) if math.isfinite(
            _num(ps[0].run.get("depth"))) else 0), []).append(name)
    out = []
    for depth, names in sorted(by_depth.items()):
        has_path = any(n in paths for n in names)
        has_map = any("curvature_ratio" in g[n][0].arrays for n in names)
        ncols = 2 + has_path + has_map
        fig, axes = style.figure(len(names), ncols, figsize=(4.4 * ncols, 3.6 * len(names)),
                                 squeeze=False)
        curves = [c for n in names for p in g[n] for c in [_slice(p)[1]]]
        finite = np.concatenate([c[np.isfinite(c) & (c > 0)] for c in curves] or [[1.0]])
        low, high = float(finite.min()) / 1.5, float(finite.max()) * 1.5
        for row, name in enumerate(names):
            ps = g[name]
            first = ps[0]
            failed = never_trained(first.result["center"]["error"],
                                   first.run.get("num_classes"))
            centre = "centre (did not train)" if failed else "minimiser"
            ax = axes[row][0]
            loss = first.arrays["loss"]
            if loss.ndim == 2:
                x, y = np.meshgrid(first.result["x"], first.result["y"])
                cs = ax.contour(x, y, loss, levels=LEVELS, cmap="viridis", linewidths=0.8)
                if len(cs.levels):
                    ax.clabel(cs, cs.levels[::4], fontsize=6, fmt="%.1f")
                ax.plot(0, 0, "k+")
                ax.set(title=f"{name}: 2D (seed {first.rec['seed']}); +: {centre}",
                       xlabel="d1", ylabel="d2")
            else:
                ax.text(0.5, 0.5, "1D landscape only", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_axis_off()
            ax = axes[row][1]
            for p in ps:
                xs, curve = _slice(p)
                ax.plot(xs, curve, linewidth=1, label=f"seed {p.rec['seed']}")
            ax.set(yscale="log", ylim=(low, high), title=f"{name}: 1D slice",
                   xlabel=f"step along d1 (0: {centre})", ylabel="training loss")
            ax.legend(fontsize=6)
            if has_path:
                ax = axes[row][2]
                for p in paths.get(name, []):
                    ax.plot(p.result["alpha"], p.arrays["loss"], linewidth=1,
                            label=f"seed {p.rec['seed']}")
                ax.set(yscale="log", title=f"{name}: initial -> final", xlabel="alpha",
                       ylabel="training loss")
                if paths.get(name):
                    ax.legend(fontsize=6)
            if has_map:
                _curvature_map(axes[row][-1], first, name)
        s = first.rec["settings"]
        caption = (
            f"Loss landscapes at depth {depth} (Li et al. 2018, Fig. 5): filter-normalised "
            f"directions, BN {s.get('bn')}, {s.get('points')} points per axis on "
            f"{s.get('span')}; training loss on the probe's sample. 2D contours (one seed) "
            "at Li et al.'s fixed levels (plot_2D.py: 0.1 to 9.6 every 0.5) in every panel "
            "(a net whose centre training error is at least half of chance did not train: "
            "its centre is no minimiser); the 1D slice through the centre, every seed, one "
            "loss axis for all rows" + ("; the linear path from the initial to the final "
                                        "weights (Goodfellow et al. 2015)" if has_path else "")
            + ("; |lambda_min / lambda_max| of the Hessian on a coarse grid (Li et al. Fig. "
               "7; 0 to 1 in every panel)" if has_map else "") + ".")
        out.append((depth, (fig, caption)))
    return out


def _curvature_map(ax, p: Probed, name: str) -> None:
    ratio = p.arrays.get("curvature_ratio")
    if ratio is None:
        ax.set_axis_off()
        return
    xs = p.result["curvature"]["x"]  # a 1D map is drawn as a strip
    im = ax.imshow(np.clip(np.atleast_2d(ratio), 0, 1), origin="lower", vmin=0, vmax=1,
                   extent=(xs[0], xs[-1], xs[0], xs[-1]), aspect="auto", cmap="viridis")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    ax.set(xlabel="d1", ylabel="d2" if ratio.ndim == 2 else "",
           title=f"{name}: |lambda_min / lambda_max| (Fig. 7)")


# ---------------------------------------------------------------------------- paths
def paths_figure(items: Iterable[Probed]) -> Figure | None:
    items = list(items)
    g = groups(items, "paths")
    if not g:
        return None
    init = groups(items, "paths", weights="initial")
    fig, axes = style.figure(1, 3, figsize=(15, 4))
    colors = _palette({**init, **g})
    for name, ps in g.items():
        dist = ps[0].result["length_distribution"]
        axes[0].plot(dist["length"], dist["share"], color=colors[name], label=name)
        lengths = [tuple(p.result["gradient_by_length"]["length"]) for p in ps]
        if len(set(lengths)) == 1:
            _band(axes[1], list(lengths[0]),
                  [np.array(p.result["gradient_by_length"]["mean"]) for p in ps],
                  colors[name], name, marker=".")
    for which, gg, dash in (("end", g, "-"), ("initialisation", init, "--")):
        for name, ps in gg.items():
            norms = [np.array([u["grad_norm"] for u in p.result["unit_grad_norm"]]) for p in ps]
            if len({len(n) for n in norms}) == 1:
                _band(axes[2], np.arange(1, len(norms[0]) + 1), norms, colors[name],
                      f"{name}, {which}", linestyle=dash)
    axes[0].set(xlabel="path length", ylabel="share of paths", title="path lengths (Fig. 6a)")
    axes[1].set(xlabel="path length", ylabel="gradient magnitude at the input", yscale="log",
                title="gradient by path length (Fig. 6b)")
    axes[2].set(xlabel="unit (depth order)", ylabel="||dL/dx|| at the unit's input",
                yscale="log", title="per-unit gradient norm")
    for ax in axes:
        ax.legend(fontsize=6)
    return fig, ("Gradient paths (Veit et al. 2016, Sec. 5): the share of paths of each length "
                 "(binomial over the residual units), the gradient magnitude reaching the "
                 "first unit's input through sampled paths of each length, and the gradient "
                 "norm at each unit's input (solid: final weights; dashed: initial). Mean ± "
                 f"std over seeds ({_seeds(g)}).")


# ---------------------------------------------------------------------------- hessian
def hessian_figure(items: Iterable[Probed]) -> Figure | None:
    """The eigenvalue of largest magnitude and the trace vs depth: mean ± std over seeds,
    each seed a point (the trace's with its Monte-Carlo standard error; an eigenvalue that
    did not converge hollow); a log axis only where every value is positive."""
    g = groups(items, "hessian")
    if not g:
        return None
    series: dict[str, list[tuple[float, list[Probed]]]] = {}
    for name, ps in g.items():
        r = ps[0].run
        family = "plain" if r.get("family") == "plain" else f"{r.get('family')} " \
            f"{r.get('shortcut') or ''}".strip()
        series.setdefault(family, []).append((_num(r.get("depth")), ps))
    fig, axes = style.figure(1, 2, figsize=(10, 4))
    colors = _palette({f: pts[0][1] for f, pts in series.items()})
    drawn: list[list[float]] = [[], []]
    for family, points in series.items():
        points.sort(key=lambda t: t[0])
        for k, (ax, key) in enumerate(((axes[0], "top_eigenvalues"), (axes[1], "trace"))):
            def value(p: Probed) -> float | None:
                v = p.result[key]
                return (v[0] if v else None) if key == "top_eigenvalues" else v
            vals = [[value(p) for p in ps if value(p) is not None] for _, ps in points]
            drawn[k] += [v for vs in vals for v in vs]
            ax.errorbar([d for d, _ in points], [np.mean(v) if v else np.nan for v in vals],
                        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals],
                        marker="_", markersize=14, capsize=3, color=colors[family],
                        label=family)
            for d, p in ((d, p) for d, ps in points for p in ps if value(p) is not None):
                done = key == "trace" or all(p.result["eigen_converged"][:1])
                ax.errorbar(d, value(p), yerr=(p.result["trace_stderr"] or 0.0) * (
                    key == "trace"), marker="s", markersize=4, color=colors[family], alpha=0.6,
                    linestyle="none", markerfacecolor=None if done else "none")
    for ax, values, label in ((axes[0], drawn[0], "eigenvalue of largest magnitude"),
                              (axes[1], drawn[1], "trace")):
        ax.set(xlabel="depth", ylabel=label, yscale="log" if values and min(values) > 0
               else "linear")
        ax.legend(fontsize=7)
    axes[0].set_title("Hessian: eigenvalue of largest |lambda| (power iteration)", fontsize=9)
    axes[1].set_title("Hessian trace (Hutchinson)", fontsize=9)
    return fig, ("Hessian of the training loss at the final weights on the probe's sample "
                 f"(Yao et al. 2020): mean (dash) ± std over seeds ({_seeds(g)}); squares: each "
                 "seed, the trace with its Monte-Carlo standard error, an eigenvalue power "
                 "iteration did not converge on hollow (its last estimate); a log axis only "
                 "where every value is positive.")


# ---------------------------------------------------------------------------- one run
def _linear_path_figure(items: Iterable[Probed]) -> Figure | None:
    g = groups(items, "linear_path")
    if not g:
        return None
    fig, ax = style.figure(figsize=(5, 4))
    for p in (p for ps in g.values() for p in ps):
        ax.plot(p.result["alpha"], p.arrays["loss"], label=f"{p.label}, seed {p.rec['seed']}")
    ax.set(yscale="log", xlabel="alpha (0: initial, 1: final)", ylabel="training loss",
           title="linear path (Goodfellow et al. 2015)")
    ax.legend(fontsize=7)
    return fig, "The training loss on the straight line from the initial to the final weights."


def _first_landscape(items: Iterable[Probed]) -> Figure | None:
    figs = landscape_figures(items)
    return figs[0][1] if figs else None


def _hessian_samples(items: Iterable[Probed]) -> Figure | None:
    items = [p for p in items if p.rec["probe"] == "hessian"]
    if not items or "trace_samples" not in items[0].arrays:
        return None
    fig, ax = style.figure(figsize=(5, 4))
    for p in items:
        ax.hist(p.arrays["trace_samples"], bins=20, alpha=0.6, label=p.label)
    ax.set(xlabel="v.Hv (Hutchinson samples)", ylabel="count", title="Hessian trace samples")
    ax.legend(fontsize=7)
    return fig, "Hutchinson's samples of the trace."


ONE_RUN: dict[str, Callable[[list[Probed]], Figure | None]] = {
    "lesion": lesion_figure, "landscape": _first_landscape, "linear_path": _linear_path_figure,
    "paths": paths_figure, "hessian": _hessian_samples}


def record_png(rec: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes | None:
    """One record's figure as PNG bytes (what W&B is handed: probes.wandb_log takes this
    function from its caller), None for a probe with no figure."""
    fig = run_figure(rec, arrays)
    return None if fig is None else style.image_bytes(fig, "png", dpi=100)


def run_figure(rec: dict[str, Any], arrays: dict[str, np.ndarray],
               run: dict[str, Any] | None = None) -> matplotlib.figure.Figure | None:
    """The figure of one record (None for a probe with no figure, e.g. a plugin's)."""
    builder = ONE_RUN.get(rec.get("probe"))
    if builder is None:
        return None
    made = builder([single({**rec, "weights": "final"}, arrays, run)])  # drawn as probed
    return made[0] if made else None
