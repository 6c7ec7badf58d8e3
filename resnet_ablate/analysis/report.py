"""A report folder: every figure (PNG and PDF), every table (Markdown, CSV, LaTeX), the
`compare` table, what was measured in words, and an index (Markdown and HTML) with the
exact commands and versions used. Figures whose runs are missing are listed as skipped."""
from __future__ import annotations

import html
import importlib.metadata
import io
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..formatting import render
from ..io import atomic_write_bytes, atomic_write_text
from .collect import Collected
from .figures import FIGURES, MissingRuns, label, plt  # pyplot on the Agg backend
from .stats import ALPHA, TEST_NAME, by_depth, format_compare, welch
from .tables import TABLES

TABLE_FORMATS = {"md": "markdown", "csv": "csv", "tex": "latex"}


@dataclass
class Report:
    out: Path
    figures: list[tuple[str, str]] = field(default_factory=list)  # (name, caption)
    tables: list[tuple[str, pd.DataFrame, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("resnet-ablate", "torch", "torchvision", "timm", "fvcore", "wandb", "pandas",
                "seaborn", "matplotlib", "scipy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).parent)
        if commit.returncode == 0:
            out["resnet-ablate commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _scopes(c: Collected) -> list[tuple[str, Collected]]:
    """One scope per (data set, protocol): curves of different data never share a plot."""
    done = c.runs[c.runs["status"] == "finished"]
    keys = sorted({(d, p) for d, p in zip(done["dataset"], done["protocol"])})
    scopes = []
    for dataset, protocol in keys:
        runs = c.runs[(c.runs["dataset"] == dataset) & (c.runs["protocol"] == protocol)]
        suffix = "" if len(keys) == 1 else f"-{dataset}-{protocol}"
        scopes.append((suffix, Collected(runs, c.history[c.history["run_id"].isin(runs["run_id"])],
                                         c.responses[c.responses["run_id"].isin(runs["run_id"])])))
    return scopes


def _mean_pm(values: list[float]) -> str:
    s = pd.Series(values, dtype=float)
    return f"{s.mean():.2f}%" + (f" ± {s.std():.2f}" if len(s) > 1 else "")


def _direction(a: list[float], b: list[float]) -> tuple[str, str]:
    """Whether a's mean is "higher", "lower" or "same" as b's (same: the difference is not
    significant), and how that was decided."""
    _, p = welch(a, b)
    diff = sum(a) / len(a) - sum(b) / len(b)
    if p is None and (len(a) < 2 or len(b) < 2):
        how = "single runs: not tested for significance"
    elif p is None:
        how = "no variance"
    else:
        how = f"{TEST_NAME.split(' (')[0]} p = {p:.3g}"
    if diff != 0 and (p is None or p < ALPHA):
        return ("higher" if diff > 0 else "lower"), how
    return "same", how


def degradation_findings(c: Collected) -> list[str]:
    """What the runs show about the degradation problem, measured, in sentences: does the
    deeper plain net train worse than the shallower one, and does the residual net at that
    depth train better than the plain one and no worse than its shallower twin?"""
    findings = []
    runs = c.runs[c.runs["status"] == "finished"]
    for (dataset, protocol), scope in runs.groupby(["dataset", "protocol"]):
        plain = scope[scope["family"] == "plain"]
        res = scope[(scope["family"] == "resnet") & scope["shortcut"].isin(["A", "B"])]
        depths = sorted(set(plain["depth"]) & set(res["depth"]))
        if len(depths) < 2:
            continue
        lo, hi = int(depths[0]), int(depths[-1])

        def errs(frame, depth, col="final_train_err"):
            return frame.loc[frame["depth"] == depth, col].astype(float).tolist()

        p_lo, p_hi, r_lo, r_hi = (errs(plain, lo), errs(plain, hi), errs(res, lo),
                                  errs(res, hi))
        n = min(len(p_lo), len(p_hi), len(r_lo), len(r_hi))
        names = {k: label(f, d, s) for k, (f, d, s) in {
            "plo": ("plain", lo, None), "phi": ("plain", hi, None),
            "rlo": ("resnet", lo, "A"), "rhi": ("resnet", hi, "A")}.items()}
        deeper, how = _direction(p_hi, p_lo)
        plain_word = {
            "higher": "the deeper plain net trains worse: degradation observed",
            "lower": "the deeper plain net trains better: no degradation",
            "same": "no significant difference: no degradation shown by these runs"}[deeper]
        vs_plain, how_plain = _direction(r_hi, p_hi)
        vs_short, how_short = _direction(r_hi, r_lo)
        if vs_plain == "lower" and vs_short != "higher":
            fix = (f"residual learning fixes it: {names['rhi']} trains better than "
                   f"{names['phi']} and no worse than {names['rlo']}")
        elif vs_plain == "lower":
            fix = (f"residual learning helps but does not fully fix it here: {names['rhi']} "
                   f"trains better than {names['phi']} but worse than {names['rlo']}")
        else:
            fix = (f"residual learning does not fix it here: {names['rhi']} does not train "
                   f"better than {names['phi']}")
        findings.append(
            f"**{dataset} / {protocol}** ({n}+ run(s) per model; final training error, "
            "measured in eval mode on the whole training split): "
            f"{names['phi']} {_mean_pm(p_hi)} vs {names['plo']} {_mean_pm(p_lo)} ({how}): "
            f"{plain_word}. {names['rhi']} {_mean_pm(r_hi)} vs {names['phi']} ({how_plain}) "
            f"and vs {names['rlo']} {_mean_pm(r_lo)} ({how_short}): {fix}.")
        findings.append(
            f"Test error: {names['plo']} {_mean_pm(errs(plain, lo, 'final_test_err'))}, "
            f"{names['phi']} {_mean_pm(errs(plain, hi, 'final_test_err'))}, "
            f"{names['rlo']} {_mean_pm(errs(res, lo, 'final_test_err'))}, "
            f"{names['rhi']} {_mean_pm(errs(res, hi, 'final_test_err'))}.")
    return findings


def build(c: Collected, out: Path, figures: list[str] | None = None,
          tables: list[str] | None = None, commands: list[str] | None = None,
          title: str = "resnet-ablate report", notes: list[str] | None = None,
          progress=print) -> Report:
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    report = Report(out)
    wanted_figures = figures or list(FIGURES)
    wanted_tables = tables or list(TABLES)
    for suffix, scope in _scopes(c):
        for name in wanted_figures:
            fname = f"{name}{suffix}"
            try:
                fig = FIGURES[name](scope)
            except MissingRuns as why:
                report.skipped.append((fname, str(why)))
                continue
            for ext in ("png", "pdf"):
                buf = io.BytesIO()
                fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight")
                atomic_write_bytes(out / "figures" / f"{fname}.{ext}", buf.getvalue())
            plt.close(fig)
            report.figures.append((fname, _caption(FIGURES[name])))
            progress(f"figure {fname}")
    for name in wanted_tables:
        try:
            df = TABLES[name](c)
        except MissingRuns as why:
            report.skipped.append((name, str(why)))
            continue
        _write_table(out, name, df)
        report.tables.append((name, df, _caption(TABLES[name])))
        progress(f"table {name}")
    compare = by_depth(c.runs)
    if not compare.empty:
        df = format_compare(compare)
        _write_table(out, "compare", df)
        report.tables.append(("compare", df, f"Error by depth and variant, mean ± std over "
                                             f"seeds; depth steps tested with {TEST_NAME}, "
                                             f"alpha = {ALPHA}."))
    report.findings = degradation_findings(c)
    c.save(out / "data")
    _write_index(report, c, commands or [], title, notes or [])
    return report


def _caption(fn) -> str:
    return " ".join((fn.__doc__ or fn.__name__).split())


def _write_table(out: Path, name: str, df: pd.DataFrame) -> None:
    for ext, fmt in TABLE_FORMATS.items():
        atomic_write_text(out / "tables" / f"{name}.{ext}", render(df, fmt))


def _write_index(report: Report, c: Collected, commands: list[str], title: str,
                 notes: list[str]) -> None:
    v = versions()
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    done = int((c.runs["status"] == "finished").sum())
    md = [f"# {title}", "",
          f"{len(c.runs)} runs collected ({done} finished) on {when}.", ""]
    md += [*notes, ""] if notes else []
    if report.findings:
        md += ["## What was measured", "", *[f"- {f}" for f in report.findings], ""]
    for name, caption in report.figures:
        md += [f"## {caption}", "", f"![{name}](figures/{name}.png)", "",
               f"[PDF](figures/{name}.pdf)", ""]
    for name, df, caption in report.tables:
        md += [f"## {caption}", "", render(df, "markdown"),
               f"[CSV](tables/{name}.csv) · [LaTeX](tables/{name}.tex)", ""]
    if report.skipped:
        md += ["## Skipped (runs missing)", "",
               *[f"- {name}: {why}" for name, why in report.skipped], ""]
    if c.skipped:
        md += ["## Run directories not collected", "",
               *[f"- {where}: {why}" for where, why in c.skipped], ""]
    md += ["## Commands", "", "```", *commands, "```", "",
           "## Versions", "", *[f"- {k}: {val}" for k, val in v.items()], ""]
    atomic_write_text(report.out / "index.md", "\n".join(md))

    h = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
         "padding:3px 6px}img{max-width:100%}</style>",
         f"<h1>{html.escape(title)}</h1><p>{len(c.runs)} runs collected ({done} finished) "
         f"on {html.escape(when)}.</p>"]
    h += [f"<p>{html.escape(n)}</p>" for n in notes]
    if report.findings:
        h.append("<h2>What was measured</h2><ul>" + "".join(
            f"<li>{html.escape(f).replace('**', '')}</li>" for f in report.findings) + "</ul>")
    for name, caption in report.figures:
        h.append(f"<h2>{html.escape(caption)}</h2><img src='figures/{name}.png'>"
                 f"<p><a href='figures/{name}.pdf'>PDF</a></p>")
    for name, df, caption in report.tables:
        h.append(f"<h2>{html.escape(caption)}</h2>{df.to_html(index=False, na_rep='')}"
                 f"<p><a href='tables/{name}.csv'>CSV</a> · <a href='tables/{name}.tex'>"
                 "LaTeX</a></p>")
    if report.skipped:
        h.append("<h2>Skipped (runs missing)</h2><ul>" + "".join(
            f"<li>{html.escape(n)}: {html.escape(w)}</li>" for n, w in report.skipped) + "</ul>")
    h.append("<h2>Commands</h2><pre>" + html.escape("\n".join(commands)) + "</pre>")
    h.append("<h2>Versions</h2><ul>" + "".join(
        f"<li>{html.escape(k)}: {html.escape(val)}</li>" for k, val in v.items()) + "</ul>")
    atomic_write_text(report.out / "index.html", "\n".join(h))
