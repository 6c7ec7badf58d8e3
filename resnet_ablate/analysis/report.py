"""A report folder: every figure (PNG and PDF), every table (Markdown, CSV, LaTeX), the
`compare` table, what was measured in words, and an index with the exact commands and
versions used. The report is built once, as a list of sections, and rendered to both
Markdown and HTML. Figures whose runs are missing are listed as skipped.

Every value that comes from a run (ids, model, data set and protocol names, captions, table
cells) is escaped for the page it lands on, in text and in attributes, and a file's name is
built only from a slug of such values (letters, digits, '-', '_'), so a summary can neither
inject markup nor write outside the report folder. The report's title and an experiment's
notes are the user's own (notes are Markdown)."""
from __future__ import annotations

import html
import importlib.metadata
import platform
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..formatting import render
from ..io import atomic_write_text
from ..outdir import make_out
from . import names, style
from .rundirs import RunSet
from .compare import compare_caption, format_compare
from .figures import FIGURE_BUILDERS, MissingRuns, edf_figure, edf_table
from .inference import ERROR_BOUNDS, NEEDS_RUNS, mean_ci
from .stats import (SEEDS_POWER, PairTest, by_condition, count_runs, diff_text, holm_caption,
                    pair_tests, verdict)
from .tables import TABLE_BUILDERS
from .vocab import ERROR_METRICS, describe, finished, plain_residual_pairs, scope_key
from .why import why_it_works

TABLE_FORMATS = {"md": "markdown", "csv": "csv", "tex": "latex"}


@dataclass
class Section:
    """One part of the report: kind text | markdown (the user's own) | list | figure | table |
    code. Text, list items, titles and captions are plain text, escaped by each renderer."""
    kind: str
    title: str = ""
    body: Any = None  # text | list of str | figure name | DataFrame | list of lines
    name: str = ""  # file stem of a figure or table
    caption: str = ""  # what a figure or table shows, measured


class Lead(str):
    """A finding: plain text with a bold lead. As a str, its Markdown ("**lead** text", as
    the CLI prints it); the renderers escape `lead` and `text` and set the lead bold."""

    def __new__(cls, lead: str, text: str) -> "Lead":
        self = super().__new__(cls, f"**{lead}** {text}")
        self.lead, self.text = lead, text
        return self


def slug(value: Any, limit: int = 40) -> str:
    """A file-name part from a value a run recorded: ASCII letters, digits, '-' and '_' only
    (no '/', '..', quotes or markup), at most `limit` characters, never empty."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(value)).strip("_-")[:limit] or "x"


_MD = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "`": "\\`",
                     "*": "\\*", "[": "\\[", "]": "\\]", "|": "\\|"})


def md_text(value: Any) -> str:
    """Plain text as Markdown that shows it as it is: one line (no new block can start),
    HTML's and Markdown's special characters escaped (no tag, link, image, emphasis, code
    or table cell can be opened); '_' inside a word stays as it is (never emphasis)."""
    text = " ".join(str(value).split()).translate(_MD)
    text = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)
    return "\\" + text if text.startswith("#") else text


def _md_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A table's text cells and column names as Markdown text (numbers as they are)."""
    out = df.rename(columns=md_text)
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(lambda v: md_text(v) if isinstance(v, str) else v)
    return out


@dataclass
class Report:
    out: Path
    title: str
    sections: list[Section] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
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


def _scopes(c: RunSet) -> list[tuple[str, RunSet]]:
    """One scope per data set, protocol and protocol fields: curves of different data or
    protocols never share a plot. A scope holds its runs that did not finish too (the
    ablation figure counts them)."""
    done = finished(c.runs)
    if done.empty:
        return []
    keys, every = scope_key(done), scope_key(c.runs)
    scopes = []
    for i, (key, runs) in enumerate(sorted(done.groupby(keys), key=lambda kv: kv[0])):
        suffix = "" if keys.nunique() == 1 else f"-{slug(runs['dataset'].iloc[0])}-" \
            f"{slug(runs['protocol'].iloc[0])}-{i + 1}"  # a file name: unique by its number
        scopes.append((suffix, c.subset(c.runs[every == key])))
    return scopes


def _how(t: PairTest, a: str, b: str) -> str:
    """How a test of the findings was decided, in words."""
    c = t.comparison
    if c.verdict == NEEDS_RUNS:
        return "single runs: no test, no verdict"
    if c.p is None:
        return "no variance on either side: Welch's test undefined"
    how = (f"Δ {diff_text(c)}, Welch p = {c.p:.3g}, Holm-adjusted p = {c.p_adjusted:.3g}; "
           f"P({a} < {b}) = {t.rank}")
    if t.margin is not None and t.margin.p_no_worse is not None:
        how += (f"; non-inferiority at margin {t.margin.margin:g}: Holm-adjusted p = "
                f"{t.margin.p_no_worse:.3g}")
    if verdict(t) == "not shown different" and t.seeds is not None:
        how += (f"; post hoc, from the observed Δ: {t.seeds} seeds per condition would give "
                f"Welch's test power {SEEDS_POWER} for a true difference this size")
    return how


def _not_shown(t: PairTest) -> str:
    c = t.comparison
    return f"not shown different with {c.n_a} and {c.n_b} seeds (Δ {diff_text(c)})"


def _fix(v_plain: str, v_short: str, t_short: PairTest, n: dict[str, str],
         margin: float | None) -> str:
    """Does residual learning fix it? Only what the tests show: "no worse" only from the
    non-inferiority test at a stated margin, one run a side no verdict at all."""
    rhi, phi, rlo = n["rhi"], n["phi"], n["rlo"]
    if v_plain.startswith("no verdict") or v_plain.startswith("undefined"):
        return f"no verdict on residual learning: {rhi} vs {phi} could not be tested"
    if v_plain == "worse":
        return f"residual learning does not fix it here: {rhi} trains worse than {phi}"
    if v_plain != "better":
        return (f"residual learning is not shown to help here: {rhi} is "
                f"{_not_shown_words(v_plain)} {phi}")
    if v_short == "better":
        return (f"residual learning fixes it: {rhi} trains better than {phi} and better "
                f"than {rlo}")
    if v_short.startswith(("no worse", "equivalent")):
        return (f"residual learning fixes it: {rhi} trains better than {phi} and no worse "
                f"than {rlo} (non-inferiority at the stated margin of {margin:g})")
    if v_short == "worse":
        return (f"residual learning helps but does not fully fix it here: {rhi} trains "
                f"better than {phi} but worse than {rlo}")
    if v_short.startswith(("no verdict", "undefined")):
        return f"residual learning helps: {rhi} trains better than {phi}; vs {rlo}: {v_short}"
    missing = ("no margin stated, so no claim of 'no worse'" if margin is None else
               f"not shown no worse than it by the stated margin of {margin:g}")
    return (f"residual learning helps: {rhi} trains better than {phi}; vs {rlo} "
            f"{_not_shown(t_short)}, {missing}")


def _not_shown_words(v: str) -> str:
    return {"not shown different": "not shown different from"}.get(v, f"{v} vs")


def _mean_ci(values: list[float]) -> str:
    """8.13% [7.33, 8.93] (the 95% t-interval of the mean, within [0, 100]; "[n/a]" for
    one run)."""
    ci = mean_ci(values, bounds=ERROR_BOUNDS)
    if ci.mean is None:
        return "n/a"
    return f"{ci.mean:.2f}% " + (f"[{ci.low:.2f}, {ci.high:.2f}]" if ci.defined else "[n/a]")


def degradation_findings(c: RunSet, metric: str = "train", margin: float | None = None
                         ) -> list[str]:
    """What the runs show about the degradation problem, in sentences: does the deeper
    plain net train worse than the shallower one, and does the residual net at that depth
    (one shortcut option at a time) train better than the plain one, and no worse than its
    shallower twin? The paper's training error unless `metric` says otherwise.

    Means carry their 95% t-interval; the three tests of each scope, over every scope,
    are one table: Holm-adjusted together, the verdicts by the adjusted p. A difference not
    shown is said so, with its n and interval: "no worse" only from a non-inferiority test
    against a stated `margin` (percentage points), and single runs get no verdict. Runs
    that did not finish are counted."""
    column, text = ERROR_METRICS[metric]
    scopes = []
    for plain, res, shortcut in plain_residual_pairs(c.runs):
        lo, hi = int(plain["depth"].min()), int(plain["depth"].max())

        def errs(frame, depth, col=column):
            return frame.loc[frame["depth"] == depth, col].astype(float).dropna().tolist()

        e = {"plo": errs(plain, lo), "phi": errs(plain, hi), "rlo": errs(res, lo),
             "rhi": errs(res, hi)}
        if all(e.values()):
            scopes.append((plain, res, shortcut, lo, hi, e, errs))
    pairs = [pair for *_, e, _ in scopes
             for pair in ((e["phi"], e["plo"]), (e["rhi"], e["phi"]), (e["rhi"], e["rlo"]))]
    tests = pair_tests(pairs, margin=margin)
    how_many = holm_caption(tests)
    findings = []
    for k, (plain, res, shortcut, lo, hi, e, errs) in enumerate(scopes):
        deep_plain, vs_plain, vs_short = tests[3 * k: 3 * k + 3]
        suffix = "" if shortcut == "A" else f" ({shortcut})"
        names = {"plo": f"plain-{lo}", "phi": f"plain-{hi}", "rlo": f"ResNet-{lo}{suffix}",
                 "rhi": f"ResNet-{hi}{suffix}"}
        deeper = verdict(deep_plain)
        plain_word = {
            "worse": "the deeper plain net trains worse: degradation observed",
            "better": "the deeper plain net trains better: no degradation"}.get(
            deeper, f"{_not_shown(deep_plain)}: no degradation shown by these runs"
            if deeper in ("not shown different",) or deeper.startswith(("no worse",
                                                                         "equivalent"))
            else f"{deeper}: no verdict on degradation")
        fix = _fix(verdict(vs_plain), verdict(vs_short), vs_short, names, margin)
        scope = plain.iloc[0]
        n = min(len(v) for v in e.values())
        findings.append(Lead(
            f"{scope['dataset']} / {scope['protocol']}, option {shortcut}", f"({n}+ seed(s) "
            f"per condition; {text}; means with their 95% t-interval over seeds, within "
            f"[0, 100]; {how_many}): {names['phi']} {_mean_ci(e['phi'])} vs {names['plo']} "
            f"{_mean_ci(e['plo'])} ({_how(deep_plain, names['phi'], names['plo'])}): "
            f"{plain_word}. {names['rhi']} {_mean_ci(e['rhi'])} vs {names['phi']} "
            f"({_how(vs_plain, names['rhi'], names['phi'])}) and vs {names['rlo']} "
            f"{_mean_ci(e['rlo'])} ({_how(vs_short, names['rhi'], names['rlo'])}): {fix}."))
        test_err = [f"{names[key]} {_mean_ci(errs(frame, depth, 'final_test_err'))}"
                    for key, frame, depth in (("plo", plain, lo), ("phi", plain, hi),
                                              ("rlo", res, lo), ("rhi", res, hi))]
        findings.append("Test error: " + ", ".join(test_err) + ".")
        unfinished = _unfinished(c.runs, [plain, res], names, lo, hi)
        if unfinished:
            findings.append(f"Runs not finished, counted here (the means above are over "
                            f"finished runs): {unfinished}.")
    return findings


def _unfinished(runs: pd.DataFrame, frames: list[pd.DataFrame], names: dict[str, str],
                lo: int, hi: int) -> str:
    """"plain-56 2 finished of 3 (1 diverged, 0 failed)" for the finding's conditions
    with runs that did not finish."""
    out = []
    for frame, keys in zip(frames, (("plo", "phi"), ("rlo", "rhi"))):
        for key, depth in zip(keys, (lo, hi)):
            conds = set(frame.loc[frame["depth"] == depth, "condition"])
            counts = count_runs(runs[runs["condition"].isin(conds)])
            if counts.diverged or counts.failed:
                out.append(f"{names[key]} {counts}")
    return "; ".join(out)


def build(c: RunSet, out: Path, figures: list[str] | None = None,
          tables: list[str] | None = None, commands: list[str] | None = None,
          title: str = "resnet-ablate report", notes: list[str] | None = None,
          metric: str = "train", progress=print, planned: pd.DataFrame | None = None,
          edf: str | None = None, margin: float | None = None,
          edf_normalize: str | None = None) -> Report:
    """The report folder of the runs `c`: the findings (`metric`'s error; "no worse" only
    against a stated `margin`, percentage points), the figures and tables that have their
    data (the rest listed as skipped, with why), the compare table, the probes' section,
    the commands and versions. `edf`: a factor to draw design-space EDFs by
    (`edf_normalize`: "params" or "macs" for the complexity-normalised EDF)."""
    out = make_out(out)  # a folder files can be written in, or one line before any is
    (out / "figures").mkdir(exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    report = Report(out, title)
    planned_words = (", and the experiment's planned runs without a record ('not run')"
                     if planned is not None else "")
    done = int((c.runs["status"] == "finished").sum()) if len(c.runs) else 0
    report.sections.append(Section("text", body=f"{len(c.runs)} runs read ({done} "
                                   f"finished) on {time.strftime('%Y-%m-%d %H:%M %Z')}."))
    report.sections += [Section("markdown", body=n) for n in notes or []]
    report.findings = degradation_findings(c, metric, margin)
    if report.findings:
        report.sections.append(Section("list", "What was measured", report.findings))
    for suffix, scope in _scopes(c):
        for name in figures if figures is not None else list(FIGURE_BUILDERS):
            fname = f"{name}{suffix}"
            try:
                fig, caption = FIGURE_BUILDERS[name](scope)
            except MissingRuns as why:
                report.skipped.append((fname, str(why)))
                continue
            style.save(fig, out / "figures", fname)
            report.figures.append(fname)
            report.sections.append(Section("figure", f"{names.FIGURE_TITLES[name]}{suffix}", fname,
                                           fname, caption))
            progress(f"figure {fname}")
    if edf:
        _edf_section(report, c, edf, progress, edf_normalize)
    for name in tables if tables is not None else list(TABLE_BUILDERS):
        try:
            df, caption = TABLE_BUILDERS[name](c)
        except MissingRuns as why:
            report.skipped.append((name, str(why)))
            continue
        _write_table(out, name, df)
        report.tables.append(name)
        report.sections.append(Section("table", names.TABLE_TITLES[name], df, name, caption))
        progress(f"table {name}")
    column, text = ERROR_METRICS["test"]
    compare = by_condition(c.runs, column, planned=planned, margin=margin)
    if not compare.empty:
        df = format_compare(compare, "test err %")
        _write_table(out, "compare", df)
        report.tables.append("compare")
        report.sections.append(Section(
            "table", "Test error by condition", df, "compare",
            f"Test error by condition over seeds; 'runs': the runs found of each condition "
            f"in any status{planned_words}. {compare_caption(compare, margin=margin)} "
            f"{describe(finished(c.runs))}"))
    local = [Path(s) for s in c.runs.get("source", []) if not str(s).startswith("wandb:")]
    notes: list[str] = []  # probe records that could not be read: skipped like runs
    why, found = why_it_works(local, out, progress, notes)  # the probes' section (why.py)
    for line in notes:
        where, _, why_not = line.partition(": ")
        if (where, why_not) not in c.skipped:
            c.skipped.append((where, why_not))  # (a view's list is its set's)
    report.sections += [Section(**s) for s in why]
    report.findings += found
    if report.skipped:
        report.sections.append(Section("list", "Skipped (runs missing, or not for this data)",
                                       [f"{n}: {w}" for n, w in report.skipped]))
    if c.skipped or c.warnings:
        report.sections.append(Section("list", "Run directories skipped, and warnings",
                                       [f"{w}: {y}" for w, y in c.skipped] + c.warnings))
    report.sections.append(Section("code", "Commands", commands or []))
    report.sections.append(Section("list", "Versions",
                                   [f"{k}: {v}" for k, v in versions().items()]))
    c.save(out / "data")
    atomic_write_text(out / "index.md", to_markdown(report))
    atomic_write_text(out / "index.html", to_html(report))
    return report


def _edf_section(report: Report, c: RunSet, factor: str, progress,
                 normalize: str | None = None) -> None:
    """`figures --edf FACTOR`: the design spaces' error EDFs, a figure and a table."""
    name = f"edf-{factor}" + (f"-per-{normalize}" if normalize else "")
    try:
        fig, caption = edf_figure(c, factor, normalize)
    except MissingRuns as why:
        report.skipped.append((name, str(why)))
        return
    style.save(fig, report.out / "figures", name)
    report.figures.append(name)
    report.sections.append(Section("figure", f"{names.EDF_TITLE}: {factor}", name, name,
                                   caption))
    df = edf_table(c, factor, normalize)
    _write_table(report.out, name, df)
    report.tables.append(name)
    report.sections.append(Section("table", f"{names.EDF_TITLE}: {factor}, KS tests", df, name,
                                   caption))
    progress(f"figure and table {name}")


def _write_table(out: Path, name: str, df: pd.DataFrame) -> None:
    for ext, fmt in TABLE_FORMATS.items():  # LaTeX: tabulate escapes its specials
        atomic_write_text(out / "tables" / f"{name}.{ext}",
                          render(_md_frame(df) if fmt == "markdown" else df, fmt))


def _md_item(item: str) -> str:
    if isinstance(item, Lead):
        return f"**{md_text(item.lead)}** {md_text(item.text)}"
    return md_text(item)


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks inside (which would end it early)."""
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(report: Report) -> str:
    md = [f"# {md_text(report.title)}", ""]
    for s in report.sections:
        if s.title:
            md += [f"## {md_text(s.title)}", ""]
        if s.caption:
            md += [md_text(s.caption), ""]
        if s.kind == "text":
            md += [md_text(s.body), ""]
        elif s.kind == "markdown":
            md += [s.body, ""]
        elif s.kind == "list":
            md += [*[f"- {_md_item(item)}" for item in s.body], ""]
        elif s.kind == "figure":  # s.name: a slug (letters, digits, '-', '_')
            md += [f"![{s.name}](figures/{s.name}.png)", "", f"[PDF](figures/{s.name}.pdf)",
                   ""]
        elif s.kind == "table":
            md += [render(_md_frame(s.body), "markdown"),
                   f"[CSV](tables/{s.name}.csv) · [LaTeX](tables/{s.name}.tex)", ""]
        elif s.kind == "code":
            fence = _fence(s.body)
            md += [fence, *s.body, fence, ""]
    return "\n".join(md)


def _html_item(item: str) -> str:
    e = html.escape
    if isinstance(item, Lead):
        return f"<strong>{e(item.lead)}</strong> {e(item.text)}"
    return e(item)


# No script runs in the page, whatever a value escaped wrongly would carry.
CSP = "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'"


def to_html(report: Report) -> str:
    e = html.escape  # quote=True: safe in double-quoted attributes too
    h = [f'<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
         f'content="{CSP}"><title>{e(report.title)}</title>',
         "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
         "padding:3px 6px}img{max-width:100%}</style>", f"<h1>{e(report.title)}</h1>"]
    for s in report.sections:
        if s.title:
            h.append(f"<h2>{e(s.title)}</h2>")
        if s.caption:
            h.append(f"<p>{e(s.caption)}</p>")
        if s.kind in ("text", "markdown"):
            h.append(f"<p>{e(s.body)}</p>")
        elif s.kind == "list":
            h.append("<ul>" + "".join(f"<li>{_html_item(i)}</li>" for i in s.body) + "</ul>")
        elif s.kind == "figure":
            h.append(f'<img src="figures/{e(s.name)}.png" alt="{e(s.title)}"><p>'
                     f'<a href="figures/{e(s.name)}.pdf">PDF</a></p>')
        elif s.kind == "table":
            h.append(s.body.to_html(index=False, na_rep="", escape=True)
                     + f'<p><a href="tables/{e(s.name)}.csv">CSV</a> · '
                       f'<a href="tables/{e(s.name)}.tex">LaTeX</a></p>')
        elif s.kind == "code":
            h.append("<pre>" + e("\n".join(s.body)) + "</pre>")
    return "\n".join(h)
