"""The report's "Why it works" section: the probes of the trained runs (lesion, loss
landscape, linear path, gradient paths, Hessian, and any plugin probe), each beside its
paper's claim, as measured findings, figures and tables by condition (mean ± std over
seeds). Read from the runs' probe records (resnet_ablate.run.probefiles).

`why_it_works(run_dirs, out)` writes its figures and tables under `out` and returns
(sections, findings): sections as the report's Section fields (kind, title, body, name,
caption), findings as sentences.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..formatting import render
from ..io import atomic_write_bytes, atomic_write_text
from . import probe_figures as pf
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
def _lesion_row(ps: list[pf.Probed]) -> dict[str, Any]:
    rise = [pf.lesion_increase(p) for p in ps]
    worst = [float(np.nanmax(pf.lesion_single(p)[0]) - 100 * p.result["baseline"]["error"])
             if p.result.get("single") else None for p in ps]
    last_k = [100 * p.result["delete_k_summary"]["error_mean"][-1]
              if p.result.get("delete_k_summary") else None for p in ps]
    ks = ps[0].result.get("delete_k_summary", {}).get("k") or [None]
    return {"intact test err %": _stat([100 * p.result["baseline"]["error"] for p in ps]),
            "delete one unit: mean rise (pp)": _stat(rise),
            "worst single deletion (pp)": _stat(worst),
            f"delete {ks[-1]} units: err %": _stat(last_k)}


def _landscape_row(ps: list[pf.Probed]) -> dict[str, Any]:
    def mean_loss(p):
        loss = p.arrays.get("loss")
        return float(np.nanmean(loss)) if loss is not None else None

    return {"centre loss": _stat([p.result["center"]["loss"] for p in ps], 3),
            "mean loss on the grid": _stat([mean_loss(p) for p in ps], 3),
            "max loss on the grid": _stat([float(np.nanmax(p.arrays["loss"])) for p in ps], 3)}


def _barrier(p: pf.Probed) -> float:
    """How far the path's loss rises above the straight line between its ends."""
    loss = np.asarray(p.arrays["loss"], dtype=float)
    line = np.linspace(loss[0], loss[-1], len(loss))
    return float(np.nanmax(loss - line))


def _path_row(ps: list[pf.Probed]) -> dict[str, Any]:
    return {"initial loss": _stat([p.result["start_loss"] for p in ps], 3),
            "final loss": _stat([p.result["end_loss"] for p in ps], 3),
            "rise above the straight line": _stat([_barrier(p) for p in ps], 3)}


def _peak(p: pf.Probed) -> float | None:
    g = p.result["gradient_by_length"]
    total = [t if t is not None else -1 for t in g["total"]]
    return float(g["length"][int(np.argmax(total))]) if total else None


def _paths_row(ps: list[pf.Probed]) -> dict[str, Any]:
    def ratio(p):
        norms = [u["grad_norm"] for u in p.result["unit_grad_norm"]]
        return norms[0] / norms[-1] if norms and norms[-1] else None

    return {"units (residual)": f"{ps[0].result['units']} ({ps[0].result['residual_units']})",
            "gradient peaks at path length": _stat([_peak(p) for p in ps], 1),
            "grad norm first / last unit": _stat([ratio(p) for p in ps], 3)}


def _hessian_row(ps: list[pf.Probed]) -> dict[str, Any]:
    return {"top eigenvalue": _stat([p.result["top_eigenvalues"][0] if p.result[
        "top_eigenvalues"] else None for p in ps], 3),
            "trace": _stat([p.result["trace"] for p in ps], 2)}


def _plugin_row(ps: list[pf.Probed]) -> dict[str, Any]:
    keys = [k for k, v in ps[0].result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: _stat([p.result.get(k) for p in ps], 4) for k in keys}


ROWS: dict[str, Callable[[list[pf.Probed]], dict[str, Any]]] = {
    "lesion": _lesion_row, "landscape": _landscape_row, "linear_path": _path_row,
    "paths": _paths_row, "hessian": _hessian_row}


def table(items: list[pf.Probed], probe: str) -> pd.DataFrame:
    g = pf.groups(items, probe)
    rows = []
    for name, ps in g.items():
        rows.append({"condition": name, "seeds": len(ps), **ROWS.get(probe, _plugin_row)(ps)})
    return pd.DataFrame(rows)


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
def _save(out: Path, name: str, fig) -> None:
    import matplotlib.pyplot as plt

    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight")
        atomic_write_bytes(out / "figures" / f"{name}.{ext}", buf.getvalue())
    plt.close(fig)


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
        _save(out, name, fig)
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
