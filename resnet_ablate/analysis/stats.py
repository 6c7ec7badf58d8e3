"""Error by condition over seeds, beside the paper, with the comparisons a reviewer accepts.

Every condition's mean carries its 95% interval over seeds (a t-interval, clipped to an
error rate's [0, 100]; or a seeded bootstrap marked "*" where it covers less than 95%;
"n/a" for fewer than 2 runs), and every row counts its runs, never dropping one: "n
finished of m (k diverged, j failed)". m, the runs planned, is the runs found of the
condition in any status, plus, in a `reproduce` report, the experiment's planned runs of it
that left no record ("not run").

A table that runs several tests (every depth step of a series, every condition against a
baseline, every ablation row against its original) reports Holm-adjusted p-values and
decides by them; each test carries the difference of means with its Welch interval, the
probability of improvement P(X < Y) with its exact rank-test p and, asked for, the seeds
per condition Welch's test needs to detect a difference. Which pairs are tested is
analysis.compare's. "No worse" is said only from a non-inferiority test against a stated
margin; without one, a difference not shown is "not shown different".

Beside the paper, ours is computed the way its number was (reference.PaperNumber.kind): a
median of ours beside its median of 5, our best of n beside its best of 5 only when the n
agree, our mean beside its mean or single number. "fail" (test error above
reference.FAIL_ABOVE) is He et al. (2016)'s word and is written only beside runs under that
paper's condition; a diverged run counts there as one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..reference import BEST_MEAN_STD, FAIL_ABOVE, MEAN_STD, MEDIAN, PaperNumber, paper_match
from . import inference, power
from .inference import (ALPHA, ERROR_BOUNDS, MANN_WHITNEY, NEEDS_RUNS, NO_VARIANCE,
                        SIGNIFICANT, Comparison, MarginTest, RankTest)
from .vocab import condition_columns, labels, num, scope_key, series, series_labels

TEST_NAME = "Welch's t-test (two-sided, unequal variances)"
INTERVALS = {"t": "t-interval", "bootstrap": "seeded percentile bootstrap"}
SEEDS_POWER = 0.8


def interval_note(interval: str = "t") -> str:
    """What a table's or figure's intervals are, in words."""
    text = (f"Intervals: 95% {INTERVALS[interval]} of the mean over seeds, within [0, 100] "
            "('n/a' with fewer than 2 runs)")
    return text + (f"; {inference.bootstrap_note()}" if interval == "bootstrap" else "")


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
    """One comparison of a table, a against b: Welch's (or, for tables of medians, the rank
    test's) Comparison, Holm-adjusted within its table; P(a run of a has lower error than a
    run of b) with its exact p; the seeds per condition Welch's test needs at alpha 0.05
    and power 0.8 to detect `detect` (the observed difference, post hoc, when None); and,
    with a stated `margin`, the Holm-adjusted p's of "no worse" and "equivalent"."""
    comparison: Comparison
    rank: RankTest
    seeds: int | None
    detect: float | None = None
    margin: MarginTest | None = None


def pair_tests(pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
               detect: float | None = None, margin: float | None = None,
               rank: bool = False) -> list[PairTest]:
    """The tests of one table, their p-values Holm-adjusted together (m = the pairs that
    could be tested). rank=True: the rank test of tables that show medians, values may hold
    +inf for a diverged run (He et al. 2016's tables); else Welch's test. With `margin`,
    the non-inferiority and TOST p's are Holm-adjusted as two families of their own."""
    if rank:
        both = [inference.rank_comparison(a, b) for a, b in pairs]
        raw, ranks = [c for c, _ in both], [r for _, r in both]
    else:
        raw = [inference.welch(a, b) for a, b in pairs]
        ranks = [inference.prob_improvement(a, b) for a, b in pairs]
    comparisons = inference.adjusted(raw)
    margins: list[MarginTest | None] = [None] * len(pairs)
    if margin is not None and not rank:
        tests = [inference.margin_test(a, b, margin) for a, b in pairs]
        no_worse, _ = inference.holm([m.p_no_worse for m in tests])
        equivalent, _ = inference.holm([m.p_equivalent for m in tests])
        margins = [MarginTest(margin, w, e) for w, e in zip(no_worse, equivalent)]
    out = []
    for (a, b), c, r, m in zip(pairs, comparisons, ranks, margins):
        seeds = None if rank or not (len(a) and len(b)) else power.seeds_needed(
            a, b, detect=detect, power=SEEDS_POWER)
        out.append(PairTest(c, r, seeds, detect, m))
    return out


def verdict(t: PairTest) -> str:
    """The reader's word for a test, a against b (lower error is better): "better" /
    "worse" (Holm-adjusted p < alpha), "equivalent (±m)" / "no worse (margin m)" (from the
    margin tests, Holm-adjusted), "not shown different", or why there is none. One run on
    a side gives no direction at all."""
    c = t.comparison
    if c.verdict == NEEDS_RUNS:
        return "no verdict (needs >= 2 runs each)"
    if c.verdict == NO_VARIANCE:
        return "undefined (no variance)"
    if c.verdict == SIGNIFICANT:
        lower = c.diff < 0 if c.diff is not None and c.diff != 0 else t.rank.prob > 0.5
        return "better" if lower else "worse"
    m = t.margin
    if m is not None and m.p_equivalent is not None and m.p_equivalent < c.alpha:
        return f"equivalent (±{m.margin:g})"
    if m is not None and m.p_no_worse is not None and m.p_no_worse < c.alpha:
        return f"no worse (margin {m.margin:g})"
    return "not shown different"


def diff_text(c: Comparison) -> str:
    """The difference with its Welch interval, signed: "+0.50 [-0.10, +1.10]" (a rank
    test's difference of medians has no interval: "+0.50")."""
    if c.diff is None:
        return "n/a"
    if c.test == MANN_WHITNEY:
        return f"{c.diff:+.2f}"
    ci = f"[{c.low:+.2f}, {c.high:+.2f}]" if c.low is not None else "[n/a]"
    return f"{c.diff:+.2f} {ci}"


def holm_caption(tests: Sequence[PairTest | None]) -> str:
    """"3 tests, Holm-adjusted (statsmodels multipletests)" for a table's tests."""
    return inference.caption([t.comparison.p if t is not None else None for t in tests])


def seeds_header(detect: float | None) -> str:
    return "seeds needed " + (f"(Δ = {detect:g})" if detect is not None
                              else "(post hoc: the observed Δ)")


def pair_columns(tests: Sequence[PairTest | None], against: Sequence[str], a: str, b: str,
                 seeds: bool = True, index=None, rank: bool = False) -> pd.DataFrame:
    """A table's test columns: what each row is tested against, the difference with its
    Welch interval (a rank test: the difference of medians), raw and Holm-adjusted p, the
    verdict by the adjusted p, P(a < b) with its exact p, the seeds needed, and the margin
    tests when there are any."""
    detect = next((t.detect for t in tests if t is not None), None)
    margin = next((t.margin.margin for t in tests if t is not None and t.margin), None)
    test = "Mann-Whitney, exact" if rank else "Welch"
    columns = {"vs": lambda t, v: v,
               (f"Δ median {a} - {b}" if rank else f"Δ {a} - {b} [95% Welch CI]"):
                   lambda t, v: diff_text(t.comparison),
               f"p ({test})": lambda t, v: _p(t.comparison.p),
               "p (Holm)": lambda t, v: _p(t.comparison.p_adjusted),
               f"verdict (Holm, alpha = {ALPHA})": lambda t, v: verdict(t),
               f"P({a} < {b}) (exact rank p)": lambda t, v: t.rank.format()}
    if seeds and not rank:
        columns[seeds_header(detect)] = lambda t, v: "n/a" if t.seeds is None else \
            f"{t.seeds:,}"
    if margin is not None:
        columns[f"p no worse (margin {margin:g}, Holm)"] = \
            lambda t, v: _p(t.margin.p_no_worse if t.margin else None)
        columns[f"p equivalent (±{margin:g}, TOST, Holm)"] = \
            lambda t, v: _p(t.margin.p_equivalent if t.margin else None)
    return pd.DataFrame({name: ["" if t is None else f(t, v) for t, v in zip(tests, against)]
                         for name, f in columns.items()}, index=index)


def _p(p: float | None) -> str:
    return "" if p is None else f"{p:.3g}"


def pair_note(seeds: bool = True, rank: bool = False, margin: float | None = None) -> str:
    test = ("the exact Mann-Whitney rank test (He et al. 2016's tables show medians; a "
            "diverged run counts as the worst)" if rank else TEST_NAME)
    text = (f"Tests: {test}, Holm-adjusted within the table, the verdict by the adjusted p "
            f"at alpha = {ALPHA} ('better'/'worse': lower/higher error; a difference not "
            "shown is 'not shown different', never 'no worse')")
    if not rank:
        text += "; Δ with its 95% Welch-Satterthwaite interval"
    text += ("; P(X < Y): the probability that a run of X has the lower error (ties count "
             "half; rliable's probability of improvement), with the exact two-sided p of "
             "the Mann-Whitney test of it")
    if margin is not None:
        text += (f"; 'no worse' and 'equivalent' only from a non-inferiority test and TOST "
                 f"against the stated margin of {margin:g} (statsmodels ttost_ind, Welch "
                 "variances), each Holm-adjusted over the table")
    if seeds and not rank:
        text += (f"; seeds needed: per condition, for Welch's two-sided test at alpha = "
                 f"{ALPHA} and power {SEEDS_POWER} (its exact power over the sample variances), "
                 "each side's own spread")
    return text + "."


# ----------------------------------------------------------------------- by condition
def conditions(runs: pd.DataFrame, column: str = "final_test_err", interval: str = "t",
               planned: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per condition: its label, depth series, its runs counted by status, the
    mean over finished runs with its interval (`interval`: t | bootstrap, within [0, 100]),
    std (ddof 1), best and median, the paper's number where it has one.

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
                       _series_label=series_labels(runs), _scope=scope_key(runs))
    not_run = _not_run(runs, planned)
    factor_columns = condition_columns(runs)
    rows = []
    for cond, group in runs.groupby("condition", sort=False):
        done = group[(group["status"] == "finished") & group[column].notna()]
        values = done[column].astype(float).tolist()
        first = (done if len(done) else group).iloc[0]
        match = paper_match(first)
        counts = count_runs(group, not_run.get(cond, 0))
        rows.append({
            "condition": cond, "label": first["_label"], "series": first["_series"],
            "series_label": first["_series_label"], "scope": first["_scope"],
            "dataset": first["dataset"], "protocol": first["protocol"],
            "family": first["family"], "model": first.get("model"),
            "shortcut": first["shortcut"], "depth": int(first["depth"]), "counts": counts,
            "n": len(values),
            "ci": inference.mean_ci(values, method=interval, bounds=ERROR_BOUNDS),
            "mean": float(np.mean(values)) if values else math.nan,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "best": min(values) if values else math.nan,
            "median": float(np.median(values)) if values else math.nan,
            "params": first["params"], "macs": first["macs"],
            "trained_on": first.get("trained_on"), "paper": match.paper,
            "paper_why_not": match.why_not, "values": values,
            "factors": {c: first.get(c) for c in factor_columns}})
    table = pd.DataFrame(rows).sort_values(["dataset", "protocol", "series_label", "depth"])
    return table.reset_index(drop=True)


def by_condition(runs: pd.DataFrame, column: str = "final_test_err", interval: str = "t",
                 planned: pd.DataFrame | None = None, detect: float | None = None,
                 margin: float | None = None, baseline: str | None = None,
                 pairs: Sequence[tuple[str, str]] | None = None, by: str | None = None
                 ) -> pd.DataFrame:
    """`conditions`, each row tested against its reference (analysis.pairs.choose: each
    depth step against the next shallower by default; `baseline`, `pairs` or `by` as
    `compare` takes them), Holm-adjusted over the table. A condition tested against several
    references has a row for each; columns "test" (PairTest or None), "vs" (the reference's
    label) and "vs_depth"; the table's attrs["pairs"] says how the pairs were chosen."""
    from .pairs import choose

    table = conditions(runs, column, interval, planned)
    if table.empty:
        return table
    chosen, how = choose(table, baseline=baseline, pairs=pairs, by=by)
    tests = pair_tests([(table.at[i, "values"], table.at[j, "values"]) for i, j in chosen],
                       detect, margin)
    refs: dict[int, list[tuple[int, PairTest]]] = {}
    for (i, j), t in zip(chosen, tests):
        refs.setdefault(i, []).append((j, t))
    rows = []
    for i in table.index:
        for j, t in refs.get(i, [(None, None)]):
            rows.append({**table.loc[i].to_dict(), "test": t,
                         "vs": None if j is None else table.at[j, "label"],
                         "vs_depth": None if j is None else int(table.at[j, "depth"])})
    out = pd.DataFrame(rows)
    out.attrs["pairs"] = how
    return out


# ------------------------------------------------------------------- beside the paper
def _fails(value: float | None, paper: PaperNumber | None, test_error: bool) -> bool:
    """He et al. (2016)'s 'fail', only beside a run under its condition (its number drawn)."""
    return (test_error and paper is not None and paper.fail_rule and value is not None
            and value > FAIL_ABOVE)


def as_paper(values: Sequence[float], diverged: int, paper: PaperNumber | None,
             test_error: bool = True) -> tuple[float | None, str]:
    """Our runs summarised as the paper summarised its own (its kind), and in words:
    (median, "median of 3: 6.70"), (best, "best of 3: 6.50 (6.70 ± 0.20)"), or the mean
    ("mean of 3: 6.70") beside a mean, a single number or no paper number. A diverged run
    counts in a median as an error worse than any; "fail" only under He et al. (2016)'s
    condition (its test error above FAIL_ABOVE)."""
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
        if kind == MEAN_STD and n > 1:
            spread = f" (± {num(np.std(values, ddof=1))})"
    if math.isinf(value):
        return value, f"fail ({text}: the median run diverged)"
    if _fails(value, paper, test_error):
        return value, f"fail ({text}: {value:.2f} > {FAIL_ABOVE:g}%)"
    return value, f"{text}: {value:.2f}{spread}"


def like_with_like(values: Sequence[float], diverged: int, paper: PaperNumber | None,
                   ours: float | None, test_error: bool = True) -> tuple[str, str]:
    """(Δ as the paper computed its number, Δ best): medians with medians, means with the
    paper's mean or single number, a best of n with a best of the same n (else it says
    the n differ)."""
    if paper is None or ours is None:
        return "", ""
    if paper.fail:
        return ("both fail" if _fails(ours, paper, test_error) or math.isinf(ours) else
                f"paper: fail; ours {ours:.2f}"), ""
    if _fails(ours, paper, test_error) or math.isinf(ours):
        return "ours: fail", ""
    if paper.kind == MEDIAN:
        return f"{ours - paper.reported:+.2f} (medians)", ""
    mean = float(np.mean(values))
    if paper.kind == BEST_MEAN_STD:
        best = (f"{min(values) - paper.best:+.2f}" if len(values) == paper.n else
                f"n differ: best of {len(values)} vs best of {paper.n}")
        return f"{mean - paper.mean:+.2f} (means)", best
    if paper.kind == MEAN_STD:
        return f"{mean - paper.mean:+.2f} (means)", ""
    return f"{mean - paper.reported:+.2f} (mean vs its number)", ""


def mean_cell(row: pd.Series) -> str:
    """The mean with its interval, or why there is none (every run diverged, failed)."""
    c = row["counts"]
    if row["n"] == 0:
        if c.diverged and c.diverged == c.planned - c.not_run:
            return f"all {c.diverged} diverged"
        return f"no finished run ({c.diverged} diverged, {c.failed} failed)"
    return row["ci"].format()


def mean_header(metric: str, interval: str) -> str:
    return f"{metric} mean [95% {interval} CI]"


def beside_paper(t: pd.DataFrame, metric: str = "test err %", interval: str = "t",
                 test_error: bool = True) -> pd.DataFrame:
    """Ours beside the paper's, one row per condition of by_condition: the runs counted,
    the mean with its interval and the std, ours computed as the paper computed its
    number, the paper's number with its kind (or why it has none), and the differences
    like with like."""
    ours = [as_paper(v, c.diverged, p, test_error) for v, c, p in
            zip(t["values"], t["counts"], t["paper"])]
    deltas = [like_with_like(v, c.diverged, p, o[0], test_error) for v, c, p, o in
              zip(t["values"], t["counts"], t["paper"], ours)]
    return pd.DataFrame({
        "runs": t["counts"].map(str),
        "n": t["n"].astype(int),
        mean_header(metric, interval): t.apply(mean_cell, axis=1),
        "std": t["std"].map(num),
        "ours, as the paper reports": [o[1] for o in ours],
        "paper (how it was computed)": [why if p is None else p.format() for p, why in
                                        zip(t["paper"], t["paper_why_not"])],
        "Δ (like with like)": [d[0] for d in deltas],
        "Δ best (same n)": [d[1] for d in deltas],
    }, index=t.index)


def paper_note(t: pd.DataFrame | None = None) -> str:
    """How ours is set beside the paper's; 'fail' explained only where it can be written
    (a row under He et al. 2016's condition)."""
    text = ("'ours, as the paper reports': our runs summarised as the paper summarised its "
            "own (our median beside its median of 5, our best beside its best, our mean "
            "beside its mean or single number), with our own n.")
    rule = t is None or any(p is not None and p.fail_rule for p in t["paper"])
    if rule:
        text += (f" 'fail' = test error above {FAIL_ABOVE:g}%, He et al. (2016)'s word, "
                 "written only beside runs under its condition; a diverged run counts as one.")
    return text
