"""Error by condition over seeds, beside the paper, with the comparisons a reviewer accepts.

Every condition's mean carries its 95% interval over seeds (a t-interval, or a seeded
bootstrap; "n/a" for fewer than 2 runs), and every row counts its runs, never dropping one:
"n finished of m (k diverged, j failed)". m, the runs planned, is the runs found of the
condition in any status (finished, diverged, failed), plus, in a `reproduce` report, the
experiment's planned runs of it that left no record ("not run").

A table that runs several tests (every depth step of a series, every ablation row against
its original) reports Holm-adjusted p-values and decides by them; each test carries the
difference of means with its Welch interval, the probability of improvement P(X < Y) with
its bootstrap interval and the seeds per condition a Welch test needs to detect the
difference. The statistics are resnet_ablate.analysis.inference's (scipy, statsmodels).

Beside the paper, ours is computed the way its number was (reference.PaperNumber.kind): a
median of ours beside its median of 5, our best of n beside its best of 5 only when the n
agree, our mean beside its mean or single number. Test error above reference.FAIL_ABOVE is
"fail", as the paper writes it; a diverged run counts as one (its error is no number, and
no better than any).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..reference import BEST_MEAN_STD, FAIL_ABOVE, MEDIAN, PaperNumber, paper_match
from . import inference
from .inference import ALPHA, Comparison, Interval
from .vocab import labels, num, series, series_labels

TEST_NAME = "Welch's t-test (two-sided, unequal variances)"
INTERVALS = {"t": "t-interval", "bootstrap": "seeded percentile bootstrap"}
SEEDS_POWER = 0.8


def interval_note(interval: str = "t") -> str:
    """What a table's or figure's intervals are, in words."""
    return (f"Intervals: 95% {INTERVALS[interval]} of the mean over seeds ('n/a' with fewer "
            "than 2 runs)")


# ------------------------------------------------------------------------- counting runs
@dataclass(frozen=True)
class Counts:
    """The runs of one condition by status (one per seed): m planned = all of them."""
    finished: int
    diverged: int
    failed: int
    not_run: int = 0

    @property
    def planned(self) -> int:
        return self.finished + self.diverged + self.failed + self.not_run

    def __str__(self) -> str:
        rest = f", {self.not_run} not run" if self.not_run else ""
        return (f"{self.finished} finished of {self.planned} ({self.diverged} diverged, "
                f"{self.failed} failed{rest})")


def count_runs(group: pd.DataFrame, not_run: int = 0) -> Counts:
    """Counts of one condition's runs (one run per seed counts: analysis.samples)."""
    status = group["status"].value_counts()
    return Counts(int(status.get("finished", 0)), int(status.get("diverged", 0)),
                  int(status.get("failed", 0)), not_run)


def _planned_key(run_id: Any) -> str | None:
    """A sweep's run name, <model>-s<seed>-<digest of its planned condition>, without its
    seed: every seed of one planned condition shares it."""
    if not isinstance(run_id, str):
        return None
    head, sep, digest = run_id.rpartition("-")
    model, sep2, seed = head.rpartition("-s")
    return f"{model}|{digest}" if sep and sep2 and seed.isdigit() else None


def _not_run(runs: pd.DataFrame, planned: pd.DataFrame | None) -> dict[str, int]:
    """Per condition: the planned runs (run_id, state) with no record among `runs`."""
    if planned is None or planned.empty or runs.empty:
        return {}
    have = set(runs["run_id"])
    where = {}
    for run_id, cond in zip(runs["run_id"], runs["condition"]):
        key = _planned_key(run_id)
        if key:
            where.setdefault(key, cond)
    out: dict[str, int] = {}
    for run_id in planned["run_id"]:
        cond = where.get(_planned_key(run_id))
        if run_id not in have and cond is not None:
            out[cond] = out.get(cond, 0) + 1
    return out


# ------------------------------------------------------------------------------ tests
@dataclass(frozen=True)
class PairTest:
    """One comparison of a table: a against b (Welch, Holm-adjusted within its table),
    P(a run of a has lower error than a run of b), and the seeds per condition a Welch
    test needs at alpha 0.05 and power 0.8 to detect `detect` (or the observed
    difference when None)."""
    comparison: Comparison
    improvement: Interval
    seeds: int | None
    detect: float | None = None


def pair_tests(pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
              detect: float | None = None) -> list[PairTest]:
    """The tests of one table, their p-values Holm-adjusted together (m = the pairs that
    could be tested)."""
    raw = [inference.welch(a, b) for a, b in pairs]
    adjusted = inference.adjusted(raw)
    out = []
    for (a, b), c in zip(pairs, adjusted):
        seeds = inference.seeds_needed(a, b, detect=detect, power=SEEDS_POWER) \
            if len(a) and len(b) else None
        out.append(PairTest(c, inference.prob_improvement(a, b), seeds, detect))
    return out


def diff_text(c: Comparison) -> str:
    """The difference of means with its Welch interval, signed: "+0.50 [-0.10, +1.10]"."""
    if c.diff is None:
        return "n/a"
    ci = f"[{c.low:+.2f}, {c.high:+.2f}]" if c.low is not None else "[n/a]"
    return f"{c.diff:+.2f} {ci}"


def holm_caption(tests: Sequence[PairTest | None]) -> str:
    """"3 tests, Holm-adjusted (statsmodels multipletests)" for a table's tests."""
    return inference.caption([t.comparison.p if t is not None else None for t in tests])


def pair_columns(tests: Sequence[PairTest | None], against: Sequence[str], a: str, b: str,
                 seeds: bool = True, index=None) -> pd.DataFrame:
    """A table's test columns: the difference with its Welch interval (and what it is
    against), raw and Holm-adjusted p, the verdict by the adjusted p, P(a < b) with its
    bootstrap interval, and the seeds needed."""
    def cell(t: PairTest | None, versus: str, what: str) -> str:
        if t is None:
            return ""
        c = t.comparison
        return {"diff": "" if c.diff is None else f"{diff_text(c)} (vs {versus})",
                "p": "" if c.p is None else f"{c.p:.3g}",
                "holm": "" if c.p_adjusted is None else f"{c.p_adjusted:.3g}",
                "verdict": c.verdict, "pi": t.improvement.format(),
                "seeds": "n/a" if t.seeds is None else str(t.seeds)}[what]

    detect = next((t.detect for t in tests if t is not None), None)
    columns = {f"Δ {a} - {b} [95% Welch CI]": "diff", "p (Welch)": "p",
               "p (Holm)": "holm", f"verdict (Holm, alpha = {ALPHA})": "verdict",
               f"P({a} < {b}) [95% bootstrap]": "pi"}
    if seeds:
        columns["seeds needed" + (f" (Δ = {detect:g})" if detect is not None
                                  else " (observed Δ)")] = "seeds"
    return pd.DataFrame({name: [cell(t, v, what) for t, v in zip(tests, against)]
                         for name, what in columns.items()}, index=index)


def pair_note(seeds: bool = True) -> str:
    text = (f"Tests: {TEST_NAME}, Holm-adjusted within the table, the verdict by the "
            f"adjusted p at alpha = {ALPHA}; Δ with its 95% Welch-Satterthwaite interval; "
            "P(X < Y): the probability that a run of X has the lower error (ties count "
            "half; rliable's probability of improvement), 95% percentile bootstrap")
    if seeds:
        text += (f"; seeds needed: per condition, for a two-sided test at alpha = {ALPHA} "
                 f"and power {SEEDS_POWER} (statsmodels TTestIndPower)")
    return text + "."


# ----------------------------------------------------------------------- by condition
def by_condition(runs: pd.DataFrame, column: str = "final_test_err", interval: str = "t",
                 planned: pd.DataFrame | None = None, detect: float | None = None
                 ) -> pd.DataFrame:
    """One row per condition: its label, depth series, its runs counted by status, the
    mean over finished runs with its interval (`interval`: t | bootstrap), std, best and
    median, the paper's number where it has one, and the test of each depth step against
    the next shallower condition of its series, Holm-adjusted over the table.

    A condition with runs but no finished value (all diverged or failed) has a row that
    says so. `planned`: run_id of planned runs (an experiment's) whose missing records
    count as "not run"."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}; got {interval!r}")
    if runs.empty:
        return pd.DataFrame()
    by = runs["condition"]
    has_value = ((runs["status"] == "finished") & runs[column].notna()).groupby(by)
    unfinished = (runs["status"] != "finished").groupby(by)
    # Conditions with a value, and those whose runs all diverged or failed (their row says
    # so); a finished run without the metric (val error, no validation split) shows nothing.
    runs = runs[has_value.transform("any") | unfinished.transform("all")]
    if runs.empty:
        return pd.DataFrame()
    runs = runs.assign(_label=labels(runs), _series=series(runs),
                       _series_label=series_labels(runs))
    not_run = _not_run(runs, planned)
    rows = []
    for cond, group in runs.groupby("condition", sort=False):
        done = group[(group["status"] == "finished") & group[column].notna()]
        values = done[column].astype(float).tolist()
        first = (done if len(done) else group).iloc[0]
        match = paper_match(first)
        counts = count_runs(group, not_run.get(cond, 0))
        rows.append({
            "condition": cond, "label": first["_label"], "series": first["_series"],
            "series_label": first["_series_label"], "dataset": first["dataset"],
            "protocol": first["protocol"], "family": first["family"],
            "model": first.get("model"), "shortcut": first["shortcut"],
            "depth": int(first["depth"]), "counts": counts, "n": len(values),
            "ci": inference.mean_ci(values, method=interval),
            "mean": float(np.mean(values)) if values else math.nan,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "best": min(values) if values else math.nan,
            "median": float(np.median(values)) if values else math.nan,
            "params": first["params"], "macs": first["macs"],
            "trained_on": first.get("trained_on"), "paper": match.paper,
            "paper_why_not": match.why_not, "values": values})
    table = pd.DataFrame(rows).sort_values(["dataset", "protocol", "series_label", "depth"])
    table = table.reset_index(drop=True)
    steps: list[tuple[int, int]] = []  # (row, the next shallower row of its series)
    for _, group in table.groupby("series", sort=False):
        idx = list(group.index)
        steps += list(zip(idx[1:], idx[:-1]))
    tests = pair_tests([(table.at[i, "values"], table.at[j, "values"]) for i, j in steps],
                      detect)
    table["step"] = None
    table["from_depth"] = None
    for (i, j), t in zip(steps, tests):
        table.at[i, "step"] = t
        table.at[i, "from_depth"] = int(table.at[j, "depth"])
    return table


# ------------------------------------------------------------------- beside the paper
def _fails(value: float | None) -> bool:
    return value is not None and value > FAIL_ABOVE


def as_paper(values: Sequence[float], diverged: int, paper: PaperNumber | None,
             test_error: bool = True) -> tuple[float | None, str]:
    """Our runs summarised as the paper summarised its own (its kind), and in words:
    (median, "median of 5: 6.70"), (best, "best of 3: 6.50 (6.70 ± 0.20)"), or the mean
    ("mean of 3: 6.70") for a single number or no paper number. A diverged run counts in a
    median as an error worse than any; a value above FAIL_ABOVE (test error) is "fail"."""
    kind = paper.kind if paper is not None else None
    n = len(values) + (diverged if kind == MEDIAN else 0)
    if n == 0:
        return None, ("no finished run" + (f" ({diverged} diverged)" if diverged else ""))
    spread = ""
    if kind == MEDIAN:
        value = float(np.median(sorted(values) + [math.inf] * diverged))
        text = f"median of {n}" + (f", {diverged} diverged" if diverged else "")
    elif kind == BEST_MEAN_STD:
        value, text = min(values), f"best of {n}"
        if n > 1:
            spread = f" ({num(np.mean(values))} ± {num(np.std(values, ddof=1))})"
    else:
        value, text = float(np.mean(values)), f"mean of {n}"
    if math.isinf(value):
        return value, f"fail ({text}: the median run diverged)"
    if test_error and _fails(value):
        return value, f"fail ({text}: {value:.2f} > {FAIL_ABOVE:g}%)"
    return value, f"{text}: {value:.2f}{spread}"


def like_with_like(values: Sequence[float], diverged: int, paper: PaperNumber | None,
                   ours: float | None) -> tuple[str, str]:
    """(Δ as the paper computed its number, Δ best): medians with medians, means with the
    paper's mean or single number, a best of n with a best of the same n (else it says
    the n differ)."""
    if paper is None or ours is None:
        return "", ""
    if paper.fail:
        return ("both fail" if _fails(ours) else f"paper: fail; ours {ours:.2f}"), ""
    if _fails(ours):
        return "ours: fail", ""
    if paper.kind == MEDIAN:
        return f"{ours - paper.reported:+.2f} (medians)", ""
    mean = float(np.mean(values))
    if paper.kind == BEST_MEAN_STD:
        best = (f"{min(values) - paper.best:+.2f}" if len(values) == paper.n else
                f"n differ: best of {len(values)} vs best of {paper.n}")
        return f"{mean - paper.mean:+.2f} (means)", best
    return f"{mean - paper.reported:+.2f} (mean vs its number)", ""


def mean_cell(row: pd.Series) -> str:
    """The mean with its interval, or why there is none (every run diverged, failed)."""
    c = row["counts"]
    if row["n"] == 0:
        if c.diverged and c.diverged == c.planned - c.not_run:
            return f"all {c.diverged} diverged"
        return f"no finished run ({c.diverged} diverged, {c.failed} failed)"
    return row["ci"].format()


def beside_paper(t: pd.DataFrame, metric: str = "test err %", interval: str = "t",
                 test_error: bool = True) -> pd.DataFrame:
    """Ours beside the paper's, one row per condition of by_condition: the runs counted,
    the mean with its interval and the std, ours computed as the paper computed its
    number, the paper's number with its kind (or why it has none), and the differences
    like with like."""
    ours = [as_paper(v, c.diverged, p, test_error) for v, c, p in
            zip(t["values"], t["counts"], t["paper"])]
    deltas = [like_with_like(v, c.diverged, p, o[0]) for v, c, p, o in
              zip(t["values"], t["counts"], t["paper"], ours)]
    return pd.DataFrame({
        "runs": t["counts"].map(str),
        f"{metric} mean [95% {interval} CI]": t.apply(mean_cell, axis=1),
        "std": t["std"].map(num),
        "ours, as the paper reports": [o[1] for o in ours],
        "paper (how it was computed)": [why if p is None else p.format() for p, why in
                                        zip(t["paper"], t["paper_why_not"])],
        "Δ (like with like)": [d[0] for d in deltas],
        "Δ best (same n)": [d[1] for d in deltas],
    }, index=t.index)


def paper_note() -> str:
    return ("'ours, as the paper reports': our runs summarised as the paper summarised its "
            "own (a median beside its median of 5, our best beside its best, our mean beside "
            f"its mean or single number); 'fail' = test error above {FAIL_ABOVE:g}%, as "
            "He et al. (2016) write it, a diverged run counted as one.")


def format_compare(table: pd.DataFrame, metric_label: str, interval: str = "t",
                   seeds: bool = True, test_error: bool = True) -> pd.DataFrame:
    """The `compare` view: readable strings, one row per condition, ours beside the paper
    (beside_paper), each depth step of a series tested against the next shallower."""
    head = pd.DataFrame({
        "condition": table["label"], "dataset": table["dataset"],
        "protocol": table["protocol"], "trained on": table["trained_on"].fillna(""),
        "depth": table["depth"].astype(int)}, index=table.index)
    steps = pair_columns(list(table["step"]), [("" if f is None else str(f)) for f in
                                               table["from_depth"]],
                         "deeper", "shallower", seeds=seeds, index=table.index)
    return pd.concat([head, beside_paper(table, metric_label, interval, test_error), steps],
                     axis=1)


def compare_caption(table: pd.DataFrame, interval: str = "t", seeds: bool = True) -> str:
    """What the compare table shows, measured: its intervals, its tests and their count."""
    return (f"{interval_note(interval)}. Each depth step of a series is tested against the "
            f"next shallower: {holm_caption(list(table['step']))}. "
            f"{pair_note(seeds)} {paper_note()}")
