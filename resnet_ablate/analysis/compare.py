"""Your own ablation, compared: the `compare` table, from the CLI and from Python
(`ra.compare`) alike; which pairs it tests is analysis.pairs's.

The table (`format_compare`): every column, as CSV and JSON keep it; `narrow` picks the
six a terminal shows within 100 columns (condition, n, mean [interval], Δ vs the reference
[interval], adjusted p, verdict); `COLUMN_KEYS` names the columns for `--columns`.
"""
from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

import pandas as pd

from ..errors import InputError
from .stats import (beside_paper, holm_caption, interval_note, pair_columns, pair_note,
                    paper_note)
from .vocab import describe, finished

WIDTH = 100  # a terminal's columns: the default table fits
NARROW = ("condition", "n", "mean", "diff", "p_holm", "verdict")


# ------------------------------------------------------------------------------ table
def format_compare(table: pd.DataFrame, metric_label: str, interval: str = "t",
                   seeds: bool = True, test_error: bool = True) -> pd.DataFrame:
    """The `compare` table, every column: readable strings, one row per condition (and
    reference) of stats.by_condition, ours beside the paper, and each row's test against
    its reference. attrs["keys"] maps COLUMN_KEYS to its column names."""
    how = table.attrs.get("pairs", {})
    head = pd.DataFrame({
        "condition": table["label"], "dataset": table["dataset"],
        "protocol": table["protocol"], "trained on": table["trained_on"].fillna(""),
        "depth": table["depth"].astype(int)}, index=table.index)
    against = ["" if v is None else v for v in table["vs"]]
    tests = pair_columns(list(table["test"]), against, how.get("a", "deeper"),
                         how.get("b", "shallower"), seeds=seeds, index=table.index)
    out = pd.concat([head, beside_paper(table, metric_label, interval, test_error), tests],
                    axis=1)
    names = list(out.columns)
    keys = dict(zip(("condition", "dataset", "protocol", "trained_on", "depth", "runs", "n",
                     "mean", "std", "as_paper", "paper", "like_with_like", "best_same_n",
                     "vs", "diff", "p", "p_holm", "verdict", "prob"), names))
    refs = set(table["vs"].dropna())  # a row others are tested against, itself untested
    out.loc[[t is None and lab in refs for t, lab in zip(table["test"], table["label"])],
            keys["verdict"]] = "reference"
    for name in names[len(keys):]:
        keys["seeds" if name.startswith("seeds needed") else
             "no_worse" if name.startswith("p no worse") else "equivalent"] = name
    out.attrs["keys"] = keys
    return out


COLUMN_KEYS = ("condition", "dataset", "protocol", "trained_on", "depth", "runs", "n", "mean",
               "std", "as_paper", "paper", "like_with_like", "best_same_n", "vs", "diff", "p",
               "p_holm", "verdict", "prob", "seeds", "no_worse", "equivalent")


def check_columns(keys: Sequence[str] | None) -> None:
    unknown = [k for k in keys or [] if k not in COLUMN_KEYS]
    if unknown:
        raise InputError(f"--columns {unknown[0]!r} is not a column; allowed: "
                         f"{', '.join(COLUMN_KEYS)}")


def columns(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The columns `keys` (COLUMN_KEYS) of a format_compare table, in that order."""
    have = df.attrs["keys"]
    check_columns(keys)
    missing = [k for k in keys if k not in have]
    if missing:
        raise InputError(f"--columns {missing[0]!r} is not in this table (seeds: with "
                         "--power or --detect; no_worse, equivalent: with --margin)")
    return df[[have[k] for k in keys]]


def _shorten(text: str, most: int) -> str:
    """`text` in at most `most` characters, its middle elided: labels that share a prefix
    (ResNet-20 (...)) keep the end that tells them apart."""
    if len(text) <= most:
        return text
    head = (most - 1) // 2
    return text[:head] + "…" + text[len(text) - (most - 1 - head):]


def narrow(df: pd.DataFrame, ref: str | None, width: int = WIDTH) -> pd.DataFrame:
    """The terminal's table: condition, n, mean [interval], Δ vs the reference [its Welch
    interval], adjusted p and verdict (and the reference, where it differs by row), short
    headers (the caption says what the intervals are), labels shortened in the middle
    ("…") until it fits `width` columns."""
    keys = list(NARROW) if ref is not None else ["condition", "vs", *NARROW[1:]]
    out = columns(df, keys).copy()
    out.columns = [{"mean": "mean [95% CI]", "diff": f"Δ vs {ref}" if ref else "Δ",
                    "p_holm": "p (Holm)"}.get(k, k) for k in keys]
    from ..formatting import render

    labels = [k for k in ("condition", "vs") if k in out.columns]
    while max(map(len, render(out, "table").splitlines())) > width:
        longest = max(labels, key=lambda k: out[k].str.len().max())
        most = int(out[longest].str.len().max()) - 1
        if most < 12:
            break
        out[longest] = out[longest].map(lambda text: _shorten(text, most))
    return out


def compare_caption(table: pd.DataFrame, interval: str = "t", seeds: bool = True,
                    margin: float | None = None) -> str:
    """What the compare table shows, measured: its intervals, its tests and their count."""
    how = table.attrs.get("pairs", {}).get("how", "each depth step of a series against "
                                                  "the next shallower")
    return (f"{interval_note(interval)}. Tested: {how}: {holm_caption(list(table['test']))}. "
            f"{pair_note(seeds, margin=margin)} {paper_note(table)}")


# ------------------------------------------------------------------------------ Python
def compare(runs: Any, baseline: str | None = None,
            pairs: Sequence[tuple[str, str]] | str | None = None, by: str | None = None,
            metric: str = "test", interval: str = "t", detect: float | None = None,
            margin: float | None = None, power: bool = False) -> tuple[pd.DataFrame, str]:
    """`resnet-ablate compare` from Python: (the table with every column, as CSV and JSON
    have it; its caption). `runs`: a RunSet (ra.read_runs), a runs DataFrame, or run
    directories. `pairs`: [(A, B), ...] or "A:B,C:D"; the other arguments as the CLI's
    flags (`power`: the seeds column for the observed Δ, post hoc; `detect` implies it)."""
    from .inference import check_detect
    from .stats import by_condition
    from .vocab import metric as metric_column

    column, text = metric_column(metric)
    check_detect(detect)
    check_margin(margin)
    frame = _frame(runs)
    table = by_condition(frame, column, interval=interval, detect=detect, margin=margin,
                         baseline=baseline, pairs=parse_pairs(pairs), by=by)
    if table.empty:
        raise InputError(f"no finished runs with {column}")
    seeds = power or detect is not None
    df = format_compare(table, f"{metric} err %", interval, seeds=seeds,
                        test_error=metric == "test")
    return df, (f"{text}, one row per condition; 'runs': the runs found of each condition in "
                f"any status. {compare_caption(table, interval, seeds, margin)} "
                f"{describe(finished(frame))}")


def _frame(runs: Any) -> pd.DataFrame:
    if isinstance(runs, pd.DataFrame):
        return runs
    if hasattr(runs, "runs"):
        return runs.runs
    from .rundirs import read_runs

    dirs = [runs] if isinstance(runs, (str, PathLike)) else list(runs)
    return read_runs(dirs).runs


def parse_pairs(pairs: Sequence[tuple[str, str]] | str | None) -> list[tuple[str, str]] | None:
    """"A:B,C:D" (or a list of (A, B)) as pairs; one line naming the form otherwise."""
    if pairs is None or not isinstance(pairs, str):
        return [tuple(p) for p in pairs] if pairs else None
    out = []
    for item in pairs.split(","):
        a, sep, b = item.strip().partition(":")
        if not (sep and a and b and a != b and ":" not in b):
            raise InputError(f"--pairs takes A:B pairs of two different conditions, comma "
                             f"separated (e.g. se20:resnet20-A); got {item.strip()!r}")
        out.append((a, b))
    return out


def check_margin(margin: float | None) -> None:
    """--margin: a difference in percentage points of error, as --detect's range."""
    from .inference import check_detect

    check_detect(margin, "--margin")

