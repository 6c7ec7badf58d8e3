"""The report's "Why it works" section: the probes of the trained runs (lesion, loss
landscape, linear path, gradient paths, Hessian, and any plugin probe), each beside its
paper's claim, as measured findings, figures and tables by condition (mean ± std over
seeds). Read from the runs' probe records (resnet_ablate.run.probefiles).

`why_it_works(run_dirs, out)` writes its figures and tables under `out` and returns
(sections, findings): sections as the report's Section fields (kind, title, body, name,
caption), findings as sentences. `frame(items)` is the probes as a tidy table (one row per
record and number, `sample` marking one record per run), `mean_by_condition(frame)` the
numbers over seeds per condition: what a store takes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..formatting import render
from ..io import atomic_write_text
from . import probe_figures as pf
from . import style
from .vocab import pm

TITLE = "Why it works"
BUILTIN = ("lesion", "landscape", "linear_path", "paths", "hessian")


def _stat(values: list[float | None], digits: int = 2) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return ""
    return pm(float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None, digits)


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


# ---------------------------------------------------------------------------- per probe
# Each probe's numbers per record (one run's sample), then mean ± std over a condition's
# seeds: the report's tables and the store's probe_metrics rows are the same numbers.
def _lesion_metrics(p: pf.Probed) -> dict[str, float | None]:
    r = p.result
    base = 100 * r["baseline"]["error"]
    err = pf.lesion_single(p)[0]
    last = r.get("delete_k_summary") or {}
    out = {"intact test err %": base,
           "delete one unit: mean rise (pp)": pf.lesion_increase(p),
           "worst single deletion (pp)": float(np.nanmax(err) - base)
           if len(err) and not np.isnan(err).all() else None}
    if last.get("k"):
        out[f"delete {last['k'][-1]} units: err %"] = 100 * last["error_mean"][-1]
    return out


def _landscape_metrics(p: pf.Probed) -> dict[str, float | None]:
    loss = p.arrays.get("loss")
    return {"centre loss": p.result["center"]["loss"],
            "mean loss on the grid": float(np.nanmean(loss)) if loss is not None else None,
            "max loss on the grid": float(np.nanmax(loss)) if loss is not None else None}


def _barrier(p: pf.Probed) -> float:
    """How far the path's loss rises above the straight line between its ends."""
    loss = np.asarray(p.arrays["loss"], dtype=float)
    line = np.linspace(loss[0], loss[-1], len(loss))
    return float(np.nanmax(loss - line))


def _path_metrics(p: pf.Probed) -> dict[str, float | None]:
    return {"initial loss": p.result["start_loss"], "final loss": p.result["end_loss"],
            "rise above the straight line": _barrier(p)}


def _peak(p: pf.Probed) -> float | None:
    g = p.result["gradient_by_length"]
    total = [t if t is not None else -1 for t in g["total"]]
    return float(g["length"][int(np.argmax(total))]) if total else None


def _paths_metrics(p: pf.Probed) -> dict[str, float | None]:
    norms = [u["grad_norm"] for u in p.result["unit_grad_norm"]]
    return {"gradient peaks at path length": _peak(p),
            "grad norm first / last unit": norms[0] / norms[-1] if norms and norms[-1]
            else None}


def _hessian_metrics(p: pf.Probed) -> dict[str, float | None]:
    top = p.result["top_eigenvalues"]
    return {"top eigenvalue": top[0] if top else None, "trace": p.result["trace"]}


def _plugin_metrics(p: pf.Probed) -> dict[str, float | None]:
    return {k: float(v) for k, v in p.result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


METRICS: dict[str, Callable[[pf.Probed], dict[str, float | None]]] = {
    "lesion": _lesion_metrics, "landscape": _landscape_metrics, "linear_path": _path_metrics,
    "paths": _paths_metrics, "hessian": _hessian_metrics}
DIGITS = {"centre loss": 3, "mean loss on the grid": 3, "max loss on the grid": 3,
          "initial loss": 3, "final loss": 3, "rise above the straight line": 3,
          "gradient peaks at path length": 1, "grad norm first / last unit": 3,
          "top eigenvalue": 3}


def metrics(p: pf.Probed) -> dict[str, float | None]:
    """A record's numbers (a plugin probe's: its numeric result fields)."""
    return METRICS.get(p.rec["probe"], _plugin_metrics)(p)


def table(items: list[pf.Probed], probe: str) -> pd.DataFrame:
    """One row per condition (probed alike): mean ± std of each number over its seeds."""
    rows = []
    for name, ps in pf.groups(items, probe).items():
        values = [metrics(p) for p in ps]
        row: dict[str, Any] = {"condition": name, "seeds": len(ps)}
        if probe == "paths":
            row["units (residual)"] = f"{ps[0].result['units']} ({ps[0].result['residual_units']})"
        for key in dict.fromkeys(k for v in values for k in v):
            digits = DIGITS.get(key, 4 if probe not in METRICS else 2)
            row[key] = _stat([v.get(key) for v in values], digits)
        rows.append(row)
    return pd.DataFrame(rows)


COLUMNS = ["run_id", "condition", "label", "seed", "probe", "digest", "settings_digest",
           "probe_seed", "weights", "split", "sample", "metric", "value"]


def frame(items: list[pf.Probed]) -> pd.DataFrame:
    """The probes as a tidy table, one row per record and number: what a store keeps
    beside the runs (join on run_id). `sample` marks the record that is its run's one
    sample of its condition (pf.groups); mean_by_condition pools those."""
    counted = {id(p) for probe in dict.fromkeys(p.rec["probe"] for p in items)
               for ps in pf.groups(items, probe, weights=None).values() for p in ps}
    rows = []
    for p in items:
        for metric, value in metrics(p).items():
            rows.append({"run_id": p.rec["run_id"], "condition": p.rec["condition"],
                         "label": p.label, "seed": p.run.get("seed"), "probe": p.rec["probe"],
                         "digest": p.rec["digest"], "settings_digest": p.rec["settings_digest"],
                         "probe_seed": p.rec["seed"], "weights": p.rec["weights"],
                         "split": p.rec["data"]["split"], "sample": id(p) in counted,
                         "metric": metric,
                         "value": np.nan if value is None else float(value)})
    return pd.DataFrame(rows, columns=COLUMNS)


def mean_by_condition(df: pd.DataFrame) -> pd.DataFrame:
    """Each number by condition, probe and settings: seeds (n), mean, std (ddof 1), over
    one sample per seed."""
    keys = ["condition", "label", "probe", "settings_digest", "weights", "metric"]
    g = df[df["sample"]].groupby(keys, sort=False)["value"]
    return g.agg(seeds="count", mean="mean", std="std").reset_index()


# ---------------------------------------------------------------------------- findings
def _pairs(g: dict[str, list[pf.Probed]]) -> list[tuple[str, list[pf.Probed], str,
                                                         list[pf.Probed]]]:
    """(plain name, plain records, residual name, residual records) of equal depth and data."""
    out = []
    for pn, pp in g.items():
        if pp[0].run.get("family") != "plain":
            continue
        for rn, rp in g.items():
            r, q = rp[0].run, pp[0].run
            if r.get("family") != "plain" and r.get("depth") == q.get("depth") and \
                    r.get("dataset") == q.get("dataset") and r.get("block") == q.get("block"):
                out.append((pn, pp, rn, rp))
    return out


def lesion_findings(items: list[pf.Probed]) -> list[str]:
    """The demo's sentence: deleting one unit of ResNet-N raises test error by X ± Y pp on
    average, of plain-N by Z pp."""
    out = []
    for pn, pp, rn, rp in _pairs(pf.groups(items, "lesion")):
        rise_r, rise_p = [pf.lesion_increase(p) for p in rp], [pf.lesion_increase(p) for p in pp]
        if _mean(rise_r) is None or _mean(rise_p) is None:
            continue
        units = sum(pf.lesion_single(rp[0])[1])
        out.append(
            f"Lesion (Veit et al. 2016), {rp[0].run.get('dataset')}: deleting one unit of "
            f"{rn} raises test error by {_stat(rise_r)} pp on average, of {pn} by "
            f"{_stat(rise_p)} pp (mean over its {units} shape-preserving units, then mean ± "
            f"std over {len(rp)} and {len(pp)} seed(s); intact: "
            f"{_stat([100 * p.result['baseline']['error'] for p in rp])}% and "
            f"{_stat([100 * p.result['baseline']['error'] for p in pp])}%).")
    return out


def _compare(items: list[pf.Probed], probe: str,
             sentence: Callable[[str, list[pf.Probed], str, list[pf.Probed]], str]
             ) -> list[str]:
    return [sentence(*pair) for pair in _pairs(pf.groups(items, probe))]


def _top(ps: list[pf.Probed]) -> list[float]:
    return [p.result["top_eigenvalues"][0] for p in ps if p.result["top_eigenvalues"]]


def _relative_loss(ps: list[pf.Probed]) -> list[float]:
    """The mean loss over the grid, in units of the minimiser's."""
    return [float(np.nanmean(p.arrays["loss"]) / p.result["center"]["loss"]) for p in ps
            if p.result["center"]["loss"]]


def hessian_findings(items: list[pf.Probed]) -> list[str]:
    return _compare(items, "hessian", lambda pn, pp, rn, rp: (
        f"Hessian (Yao et al. 2020): top eigenvalue of the training loss {rn} "
        f"{_stat(_top(rp), 3)}, {pn} {_stat(_top(pp), 3)}; trace "
        f"{_stat([p.result['trace'] for p in rp])} vs "
        f"{_stat([p.result['trace'] for p in pp])}."))


def landscape_findings(items: list[pf.Probed]) -> list[str]:
    return _compare(items, "landscape", lambda pn, pp, rn, rp: (
        f"Loss landscape (Li et al. 2018): the mean training loss over the grid is "
        f"{_stat(_relative_loss(rp))} x the minimiser's for {rn}, "
        f"{_stat(_relative_loss(pp))} x for {pn}."))


def paths_findings(items: list[pf.Probed]) -> list[str]:
    out = []
    for name, ps in pf.groups(items, "paths").items():
        if ps[0].run.get("family") == "plain":
            continue
        out.append(f"Gradient paths (Veit et al. 2016): in {name} the gradient reaching the "
                   f"input peaks at paths of length {_stat([_peak(p) for p in ps], 1)} of "
                   f"{ps[0].result['units']} units.")
    return out


# ---------------------------------------------------------------------------- the section
def _section(kind: str, title: str = "", body: Any = None, name: str = "",
             caption: str = "") -> dict[str, Any]:
    return {"kind": kind, "title": title, "body": body, "name": name, "caption": caption}


def why_it_works(run_dirs: Iterable[str | Path], out: Path,
                 progress: Callable[[str], None] = print) -> tuple[list[dict], list[str]]:
    """The section's parts (figures and tables written under out/), and its findings; empty
    when no run has a probe record."""
    items = pf.load(run_dirs)
    if not items:
        return [], []
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    probes = list(dict.fromkeys(p.rec["probe"] for p in items))
    findings = (lesion_findings(items) + landscape_findings(items) + paths_findings(items)
                + hessian_findings(items))
    claims = {p.rec["probe"]: (p.rec["paper"], p.rec["claim"]) for p in items}
    sections = [_section("text", TITLE, (
        f"Probes of the trained networks ({sum(1 for _ in {p.run['run_id'] for p in items})} "
        "runs; `resnet-ablate probe NAME --runs DIR`), each beside the claim of the paper "
        "that introduced it. Errors are percentages of the probe's split (the lesion study: "
        "the test split; the others: a fixed subset of the training split, no "
        "augmentation)."))]
    sections.append(_section("list", "The papers' claims", [
        f"{name}: {paper}. Claim: {claim}" for name, (paper, claim) in claims.items()]))
    if findings:
        sections.append(_section("list", "What the probes measured", findings))
    figures: list[tuple[str, str, Any]] = []
    made = pf.lesion_figure(items)
    if made:
        figures.append(("why-lesion", "Lesion study", made))
    for depth, made in pf.landscape_figures(items):
        figures.append((f"why-landscape-{depth}", f"Loss landscapes, depth {depth}", made))
    for name, title, builder in (("why-paths", "Gradient paths", pf.paths_figure),
                                 ("why-hessian", "Hessian vs depth", pf.hessian_figure)):
        made = builder(items)
        if made:
            figures.append((name, title, made))
    for name, title, (fig, caption) in figures:
        style.save(fig, out / "figures", name)
        sections.append(_section("figure", title, name, name, caption))
        progress(f"figure {name}")
    for probe in probes:
        df = table(items, probe)
        if df.empty:
            continue
        name = f"why-{probe}"
        for ext, fmt in (("md", "markdown"), ("csv", "csv"), ("tex", "latex")):
            atomic_write_text(out / "tables" / f"{name}.{ext}", render(df, fmt))
        sections.append(_section("table", f"Probe {probe} by condition", df, name,
                                 f"{claims[probe][0]}: mean ± std over seeds; "
                                 + ("plugin probe: its numeric fields." if probe not in
                                    BUILTIN else "errors in percent, rises in pp.")))
        progress(f"table {name}")
    return sections, findings
