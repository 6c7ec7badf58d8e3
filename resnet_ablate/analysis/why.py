"""The report's "Why it works" section: the probes of the trained runs (lesion, loss
landscape, linear path, gradient paths, Hessian, and any plugin probe), each beside its
paper's claim, as measured findings, figures and tables by condition (mean ± std over
seeds). Read from the runs' probe records (resnet_ablate.run.probefiles), each checked
first (resnet_ablate.probes.checks): one that fails is skipped and named in one line.

A seed is one sample on every path (this section, `probe`'s printed findings, the Python
API): of the runs of a (condition, seed), the one `compare` counts, and of its records the
one drawn with its own seed (probe_figures.load and groups). A sentence compares only
records probed with the same settings (one settings digest: the probe's settings, batch
size, sample, weights, split); records probed differently get sentences of their own, each
naming its settings.

The rules the sentences follow, stated once:
  - never trained: error at least half of chance, (1 - 1/K)/2 (probe_figures.
    never_trained); such a net is named so: its landscape centre is no minimiser, its
    lesion not what a trained net relies on (Veit et al. compare trained nets of similar
    accuracy; intact errors DISSIMILAR_PP apart are said to differ);
  - landscape sharpness: the rise of the training loss above the centre's at filter-
    normalised radius r, mean (and max) over +-r along each direction, in absolute loss,
    printed beside the centre loss (never a ratio to it: that measures the fit);
  - Hessian: "the eigenvalue of largest magnitude" (power iteration), with how many did
    not converge; the trace with its Monte-Carlo standard error;
  - linear path: the loss barrier of Entezari et al. (2022), the largest rise of the loss
    above the straight line between the path's ends.

`why_it_works(run_dirs, out)` writes its figures and tables under `out` and returns
(sections, findings); `probe_findings(run_dirs)` the findings alone with what was skipped;
`frame(items)` the probes as a tidy table, `mean_by_condition(frame)` over seeds.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..formatting import render
from ..io import atomic_write_text
from . import probe_figures as pf
from . import style
from .probe_figures import never_trained
from .vocab import pm

TITLE = "Why it works"
BUILTIN = ("lesion", "landscape", "linear_path", "paths", "hessian")
DISSIMILAR_PP = 10.0  # intact test errors further apart: not "similar accuracy"
ENTEZARI = "Entezari et al. 2022"


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(x) for x in values if x is not None and np.isfinite(x)]


def _stat(values: list[float | None], digits: int = 2) -> str:
    v = _finite(values)
    if not v:
        return ""
    return pm(float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None, digits)


def _sig(values: list[float | None]) -> str:
    """mean ± std (ddof 1) in 3 significant digits: losses span 1e-3 to 1e7."""
    v = _finite(values)
    if not v:
        return "n/a"
    text = f"{np.mean(v):.3g}"
    return text + (f" ± {np.std(v, ddof=1):.2g}" if len(v) > 1 else "")


def _mean(values: list[float | None]) -> float | None:
    v = _finite(values)
    return float(np.mean(v)) if v else None


def settings_words(rec: dict[str, Any]) -> str:
    """How a record was probed, as `--set` words: the settings off their defaults, the
    batch size, the sample and the weights."""
    from ..probes.registry import get_probe

    try:
        defaults = get_probe(rec["probe"]).defaults
    except InputError:
        defaults = {}
    words = [f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in rec["settings"].items()
             if k not in defaults or defaults[k] != v]
    words.append(f"batch_size={rec['data']['batch_size']}")
    if rec["data"].get("num_images"):
        words.append(f"num_images={rec['data']['num_images']}")
    if rec.get("weights") == "initial":
        words.append("weights=initial")
    return " ".join(words)


# ---------------------------------------------------------------------------- per probe
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


def sharpness(p: pf.Probed) -> tuple[float, float, float] | None:
    """(radius r, mean rise, max rise) of the training loss above the centre's at +-r along
    each direction: the record's own, or for a record from before it, the grid's points
    nearest the centre on each axis (r the smallest step; None without a centre point)."""
    sh = p.result.get("sharpness")
    if sh and sh.get("rise_mean") is not None and sh.get("rise_max") is not None:
        return sh["radius"], sh["rise_mean"], sh["rise_max"]
    xs, loss = np.asarray(p.result["x"], dtype=float), p.arrays.get("loss")
    at = lambda v: np.flatnonzero(np.isclose(xs, v, atol=1e-9))  # noqa: E731
    steps = [x for x in xs if x > 0 and len(at(-x))]
    if loss is None or not len(at(0.0)) or not steps:
        return None
    r = min(steps)
    c, lo, hi = int(at(0.0)[0]), int(at(-r)[0]), int(at(r)[0])
    rim = [loss[lo], loss[hi]] if loss.ndim == 1 else [loss[c, lo], loss[c, hi],
                                                       loss[lo, c], loss[hi, c]]
    centre = loss[c] if loss.ndim == 1 else loss[c, c]
    return float(r), float(np.mean(rim) - centre), float(np.max(rim) - centre)


def _landscape_metrics(p: pf.Probed) -> dict[str, float | None]:
    loss = p.arrays.get("loss")
    sh = sharpness(p) or (None, None, None)
    out = {"centre loss": p.result["center"]["loss"],
           "centre train err %": 100 * p.result["center"]["error"],
           "radius r": sh[0], "loss rise at r: mean": sh[1], "loss rise at r: max": sh[2],
           "mean loss on the grid": float(np.nanmean(loss)) if loss is not None else None,
           "max loss on the grid": float(np.nanmax(loss)) if loss is not None else None}
    if "curvature_ratio" in p.arrays:
        out["|lambda_min / lambda_max|: grid mean"] = float(np.nanmean(
            p.arrays["curvature_ratio"]))
    return out


def barrier(p: pf.Probed) -> float:
    """The loss barrier of Entezari et al. (2022, Sec. 2): sup over alpha of the loss minus
    the straight line between the ends, (1 - alpha) L(start) + alpha L(end)."""
    loss = np.asarray(p.arrays["loss"], dtype=float)
    alpha = np.asarray(p.result["alpha"], dtype=float)
    t = (alpha - alpha[0]) / (alpha[-1] - alpha[0])
    return float(np.nanmax(loss - ((1 - t) * loss[0] + t * loss[-1])))


def _path_metrics(p: pf.Probed) -> dict[str, float | None]:
    return {"initial loss": p.result["start_loss"], "final loss": p.result["end_loss"],
            f"loss barrier ({ENTEZARI})": barrier(p)}


def _peak(p: pf.Probed) -> float | None:
    g = p.result["gradient_by_length"]
    total = [t if t is not None else -1 for t in g["total"]]
    return float(g["length"][int(np.argmax(total))]) if total else None


def _paths_metrics(p: pf.Probed) -> dict[str, float | None]:
    norms = [u["grad_norm"] for u in p.result["unit_grad_norm"]]
    return {"gradient peaks at path length": _peak(p),
            "grad norm first / last unit": norms[0] / norms[-1] if norms and norms[-1]
            and norms[0] is not None else None}


def _hessian_metrics(p: pf.Probed) -> dict[str, float | None]:
    top = p.result["top_eigenvalues"]
    return {"eigenvalue of largest magnitude": top[0] if top else None,
            "trace": p.result["trace"], "trace MC s.e.": p.result["trace_stderr"]}


def _plugin_metrics(p: pf.Probed) -> dict[str, float | None]:
    return {k: float(v) for k, v in p.result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


METRICS: dict[str, Callable[[pf.Probed], dict[str, float | None]]] = {
    "lesion": _lesion_metrics, "landscape": _landscape_metrics, "linear_path": _path_metrics,
    "paths": _paths_metrics, "hessian": _hessian_metrics}
SIGNIFICANT = {"centre loss", "loss rise at r: mean", "loss rise at r: max",
               "mean loss on the grid", "max loss on the grid", "initial loss", "final loss",
               f"loss barrier ({ENTEZARI})", "eigenvalue of largest magnitude", "trace",
               "trace MC s.e.", "grad norm first / last unit"}


def metrics(p: pf.Probed) -> dict[str, float | None]:
    """A record's numbers (a plugin probe's: its numeric result fields)."""
    return METRICS.get(p.rec["probe"], _plugin_metrics)(p)


def _converged(ps: list[pf.Probed]) -> str:
    done = [bool(p.result["eigen_converged"][0]) for p in ps if p.result["eigen_converged"]]
    return f"{sum(done)} of {len(done)}" if done else ""


def table(items: list[pf.Probed], probe: str) -> pd.DataFrame:
    """One row per condition and settings: mean ± std of each number over its seeds."""
    rows = []
    for name, ps in pf.groups(items, probe).items():
        values = [metrics(p) for p in ps]
        row: dict[str, Any] = {"condition": name, "seeds": len(ps),
                               "settings": settings_words(ps[0].rec)}
        if probe == "paths":
            row["units (residual)"] = f"{ps[0].result['units']} ({ps[0].result['residual_units']})"
        for key in dict.fromkeys(k for v in values for k in v):
            column = [v.get(key) for v in values]
            row[key] = _sig(column).replace("n/a", "") if key in SIGNIFICANT else _stat(
                column, 1 if key == "gradient peaks at path length" else
                4 if probe not in METRICS else 2)
        if probe == "hessian":
            row["power iteration converged"] = _converged(ps)
        rows.append(row)
    return pd.DataFrame(rows)


COLUMNS = ["run_id", "condition", "label", "seed", "probe", "digest", "settings_digest",
           "probe_seed", "weights", "split", "sample", "metric", "value"]


def frame(items: list[pf.Probed]) -> pd.DataFrame:
    """The probes as a tidy table, one row per record and number (join on run_id).
    `sample` marks the record that is its seed's one sample of its condition (pf.groups);
    mean_by_condition pools those."""
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
Pair = tuple[str, list[pf.Probed], str, list[pf.Probed]]


def pairs(items: list[pf.Probed], probe: str) -> tuple[list[Pair], list[Pair]]:
    """(plain, residual) of equal depth, data and block: those probed alike (one settings
    digest), and those probed only differently (never compared in one sentence)."""
    same, other = [], []
    g = pf.groups(items, probe)
    for pn, pp in g.items():
        for rn, rp in g.items():
            r, q = rp[0].run, pp[0].run
            if q.get("family") == "plain" and r.get("family") != "plain" and \
                    r.get("depth") == q.get("depth") and r.get("dataset") == q.get(
                    "dataset") and r.get("block") == q.get("block"):
                alike = pp[0].rec["settings_digest"] == rp[0].rec["settings_digest"]
                (same if alike else other).append((pn, pp, rn, rp))
    compared = {(pp[0].label, rp[0].label) for _, pp, _, rp in same}
    return same, [t for t in other if (t[1][0].label, t[3][0].label) not in compared]


def _head(what: str, ps: list[pf.Probed]) -> str:
    return f"{what}, {ps[0].run.get('dataset')}, probed with `{settings_words(ps[0].rec)}`: "


def _did_not_train(name: str, errors: list[float], k: Any, what: str) -> str:
    chance = 100 * (1 - 1 / float(k))
    return (f"{name} did not train ({what} {_stat(errors)}%, at least half of chance error, "
            f"{chance:.0f}%)")


def lesion_sentence(pn: str, pp: list[pf.Probed], rn: str, rp: list[pf.Probed]) -> str | None:
    """The lesion finding for one plain/residual pair probed alike: a comparison only when
    both trained (Veit et al. compare trained nets of similar accuracy)."""
    rise_r, rise_p = [pf.lesion_increase(p) for p in rp], [pf.lesion_increase(p) for p in pp]
    if _mean(rise_r) is None or _mean(rise_p) is None:
        return None
    base_r = [100 * p.result["baseline"]["error"] for p in rp]
    base_p = [100 * p.result["baseline"]["error"] for p in pp]
    k = rp[0].run.get("num_classes")
    head = _head("Lesion (Veit et al. 2016)", rp)
    failed = [(n, b) for n, b in ((pn, base_p), (rn, base_r))
              if never_trained(_mean(b) / 100, k)]
    if failed:
        return head + "; ".join(_did_not_train(n, b, k, "intact test error")
                                for n, b in failed) + (
            f": deleting one of {'its' if len(failed) == 1 else 'their'} units measures a net "
            "that failed to train, not one that relies on every layer, so the two are not "
            "compared (Veit et al. compare trained nets of similar accuracy). Mean rise when "
            f"one unit is deleted: {rn} {_stat(rise_r)} pp (intact {_stat(base_r)}%), {pn} "
            f"{_stat(rise_p)} pp (intact {_stat(base_p)}%).")
    units = sum(pf.lesion_single(rp[0])[1])
    apart = abs(_mean(base_r) - _mean(base_p)) > DISSIMILAR_PP
    return head + (
        f"deleting one unit of {rn} raises test error by {_stat(rise_r)} pp on average, of "
        f"{pn} by {_stat(rise_p)} pp (mean over its {units} shape-preserving units, then mean "
        f"± std over {len(rp)} and {len(pp)} seed(s); intact: {_stat(base_r)}% and "
        f"{_stat(base_p)}%" + (f"; their intact errors differ by more than {DISSIMILAR_PP:g} "
                               "pp, where Veit et al. compare nets of similar accuracy"
                               if apart else "") + ").")


def landscape_sentence(pn: str, pp: list[pf.Probed], rn: str, rp: list[pf.Probed]) -> str:
    """The sharpness at a stated radius beside the absolute centre loss, per net; a net
    that never trained is named so."""
    parts, radius = [], None
    for name, ps in ((rn, rp), (pn, pp)):
        sh = [sharpness(p) for p in ps]
        radius = radius or next((s[0] for s in sh if s), None)
        err = [100 * p.result["center"]["error"] for p in ps]
        text = (f"by {_sig([s[1] if s else None for s in sh])} (max "
                f"{_sig([s[2] if s else None for s in sh])}) for {name}, above a centre loss "
                f"of {_sig([p.result['center']['loss'] for p in ps])}")
        if never_trained(_mean(err) / 100 if _mean(err) is not None else None,
                         ps[0].run.get("num_classes")):
            text += ", which is no minimiser: " + _did_not_train(
                name, err, ps[0].run.get("num_classes"), "centre training error")
        parts.append(text)
    where = f"at filter-normalised radius r = {radius:g}" if radius else "near the centre"
    return (_head("Loss landscape (Li et al. 2018)", rp) + f"{where} the training loss "
            f"rises {parts[0]}, and {parts[1]} (mean over ±r along each direction, then mean "
            f"± std over {len(rp)} and {len(pp)} seed(s); rises in absolute loss).")


def hessian_sentence(pn: str, pp: list[pf.Probed], rn: str, rp: list[pf.Probed]) -> str:
    def top(ps):
        return _sig([p.result["top_eigenvalues"][0] if p.result["top_eigenvalues"] else None
                     for p in ps])

    def flags(ps):
        bad = [p for p in ps if p.result["eigen_converged"] and
               not p.result["eigen_converged"][0]]
        return (f" ({len(bad)} of {len(ps)} did not converge in "
                f"{bad[0].rec['settings'].get('max_iter')} iterations: last estimates)"
                if bad else "")

    def trace(ps):
        return (f"{_sig([p.result['trace'] for p in ps])} (Monte-Carlo s.e. "
                f"{_sig([p.result['trace_stderr'] for p in ps])})")
    return (_head("Hessian (Yao et al. 2020)", rp) + "the eigenvalue of largest magnitude "
            f"(power iteration) of the training loss is {top(rp)} for {rn}{flags(rp)} and "
            f"{top(pp)} for {pn}{flags(pp)}; the trace (Hutchinson) {trace(rp)} and "
            f"{trace(pp)}.")


def path_sentence(pn: str, pp: list[pf.Probed], rn: str, rp: list[pf.Probed]) -> str:
    return (_head("Linear path (Goodfellow et al. 2015)", rp) + f"the loss barrier ("
            f"{ENTEZARI}: the largest rise of the training loss above the straight line "
            f"between the path's ends) is {_sig([barrier(p) for p in rp])} for {rn} and "
            f"{_sig([barrier(p) for p in pp])} for {pn}, from initial losses of "
            f"{_sig([p.result['start_loss'] for p in rp])} and "
            f"{_sig([p.result['start_loss'] for p in pp])}.")


SENTENCES: dict[str, tuple[str, Callable[..., str | None]]] = {
    "lesion": ("Lesion (Veit et al. 2016)", lesion_sentence),
    "landscape": ("Loss landscape (Li et al. 2018)", landscape_sentence),
    "linear_path": ("Linear path (Goodfellow et al. 2015)", path_sentence),
    "hessian": ("Hessian (Yao et al. 2020)", hessian_sentence)}


def _compare(items: list[pf.Probed], probe: str) -> list[str]:
    title, sentence = SENTENCES[probe]
    same, apart = pairs(items, probe)
    out = [s for s in (sentence(*pair) for pair in same) if s]
    out += [f"{title}: {pn} and {rn} were probed differently (`{settings_words(pp[0].rec)}` "
            f"and `{settings_words(rp[0].rec)}`), so they are not compared."
            for pn, pp, rn, rp in apart]
    return out


def lesion_findings(items: list[pf.Probed]) -> list[str]:
    """The demo's sentence, per plain/residual pair probed alike (lesion_sentence)."""
    return _compare(items, "lesion")


def landscape_findings(items: list[pf.Probed]) -> list[str]:
    return _compare(items, "landscape")


def hessian_findings(items: list[pf.Probed]) -> list[str]:
    return _compare(items, "hessian")


def paths_findings(items: list[pf.Probed]) -> list[str]:
    return [_head("Gradient paths (Veit et al. 2016)", ps) + f"in {name} the gradient "
            f"reaching the input peaks at paths of length {_stat([_peak(p) for p in ps], 1)} "
            f"of {ps[0].result['units']} units."
            for name, ps in pf.groups(items, "paths").items()
            if ps[0].run.get("family") != "plain"]


def findings(items: list[pf.Probed]) -> list[str]:
    return (lesion_findings(items) + landscape_findings(items) + _compare(items, "linear_path")
            + paths_findings(items) + hessian_findings(items))


def _sample_warnings(items: list[pf.Probed]) -> list[str]:
    return [f"{p.path}: {p.rec['data']['warning']}" for p in items
            if p.counted and p.rec["data"].get("warning")]


def probe_findings(run_dirs: Iterable[str | Path], probe: str | None = None
                   ) -> tuple[list[str], list[str], list[str]]:
    """(findings, skipped records, warnings) of the runs' probe records: what `probe`
    prints after probing."""
    skipped: list[str] = []
    warnings: list[str] = []
    items = pf.load(run_dirs, probe, skipped, warnings)
    return findings(items), skipped, warnings + _sample_warnings(items)


# ---------------------------------------------------------------------------- the section
def _section(kind: str, title: str = "", body: Any = None, name: str = "",
             caption: str = "") -> dict[str, Any]:
    return {"kind": kind, "title": title, "body": body, "name": name, "caption": caption}


def why_it_works(run_dirs: Iterable[str | Path], out: Path,
                 progress: Callable[[str], None] = print, notes: list[str] | None = None
                 ) -> tuple[list[dict], list[str]]:
    """The section's parts (figures and tables written under out/), and its findings; empty
    when no run has a probe record. A record that cannot be read is skipped, named through
    `progress` and in the section, and added to `notes` (the caller's exit status)."""
    skipped: list[str] = []
    warnings: list[str] = []
    items = pf.load(run_dirs, None, skipped, warnings)
    for line in skipped:
        progress(f"skipped {line}")
    if notes is not None:
        notes += skipped
    warnings += _sample_warnings(items)
    if not items:
        return ([_section("list", "Probe records skipped", skipped)] if skipped else []), []
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    probes = list(dict.fromkeys(p.rec["probe"] for p in items if p.counted))
    found = findings(items)
    claims = {p.rec["probe"]: (p.rec.get("paper", ""), p.rec.get("claim", "")) for p in items}
    sections = [_section("text", TITLE, (
        f"Probes of the trained networks ({len({p.run['run_id'] for p in items if p.counted})}"
        " runs, one per condition and seed as `compare` counts them; `resnet-ablate probe "
        "NAME --runs DIR`), each beside the claim of the paper that introduced it. Errors "
        "are percentages of the probe's images (the lesion study: the test split; the "
        "others: the training split, no augmentation), all of the split or the sample the "
        "record names (num_images: seeded, class-stratified). A sentence compares only nets "
        "probed with the same settings, and names them."))]
    sections.append(_section("list", "The papers' claims", [
        f"{name}: {paper}. Claim: {claim}" for name, (paper, claim) in claims.items()]))
    if found:
        sections.append(_section("list", "What the probes measured", found))
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
    if skipped or warnings:
        sections.append(_section("list", "Probe records skipped, and warnings",
                                 [f"skipped {s}" for s in skipped] + warnings))
    return sections, found
