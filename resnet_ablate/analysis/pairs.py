"""Which pairs of conditions a comparison tests (`choose`): each depth step of a series
against the next shallower (the default, the paper's depth sweeps); every other condition
against a baseline (`baseline`: a model, a condition id or a label as printed); named pairs
(`pairs`: [(A, B), ...]); or, by a factor (`by`: shortcut, block, ...), within conditions
equal in every other factor, each level against the reference level (`baseline`, else the
first in order). A condition is only ever tested against one of the same data, protocol
and settings (vocab.scope_key). Every table's tests are one family: Holm-adjusted
together, the count in its caption."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import InputError
from .vocab import _short, _text


def _matches(table: pd.DataFrame, name: str) -> list[int]:
    """Rows whose model, condition id or label is `name`."""
    return [i for i in table.index if name in (str(table.at[i, "model"]),
                                               str(table.at[i, "condition"]),
                                               str(table.at[i, "label"]))]


def _resolve(table: pd.DataFrame, name: str, flag: str) -> list[int]:
    rows = _matches(table, name)
    if not rows:
        models = sorted({str(m) for m in table["model"]})
        raise InputError(f"{flag} {name!r} names no condition of these runs; allowed: a "
                         f"model ({', '.join(models)}), a label as printed "
                         f"({', '.join(dict.fromkeys(table['label']))}) or a condition id")
    return rows


def _in_scope(table: pd.DataFrame, rows: list[int], i: int, name: str, flag: str
              ) -> int | None:
    """The one row of `rows` in i's scope (same data, protocol and settings), if any."""
    same = [j for j in rows if table.at[j, "scope"] == table.at[i, "scope"]]
    if len(same) > 1:
        raise InputError(f"{flag} {name!r} names {len(same)} conditions with the same data "
                         f"and protocol ({', '.join(table.loc[same, 'label'])}); name one "
                         "by its label or condition id")
    return same[0] if same else None


def depth_steps(table: pd.DataFrame) -> list[tuple[int, int]]:
    """(row, the next shallower row of its depth series), every series."""
    steps = []
    for _, group in table.groupby("series", sort=False):
        idx = list(group.sort_values("depth").index)
        steps += list(zip(idx[1:], idx[:-1]))
    return steps


def _factor(table: pd.DataFrame, by: str) -> str:
    """`by` as a factor column: itself, or the one column whose last part it is (lr)."""
    columns = list(table["factors"].iloc[0]) if len(table) else []
    if by in columns:
        return by
    short = [c for c in columns if _short(c) == by]
    if len(short) == 1:
        return short[0]
    raise InputError(f"--by {by!r} is not a factor of these runs; allowed: "
                     f"{', '.join(sorted(columns))}")


def choose(table: pd.DataFrame, baseline: str | None = None,
           pairs: Sequence[tuple[str, str]] | None = None, by: str | None = None
           ) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """The (row, reference row) pairs a table tests, and how they were chosen: {"how": in
    words, "ref": the reference in a header's words (None when it differs by row), "a", "b":
    the two sides' names}. See the module's docstring."""
    if pairs and (baseline or by):
        raise InputError("--pairs names its pairs; it does not combine with --baseline or --by")
    if by is not None:
        factor = _factor(table, by)
        return _by_factor(table, factor, baseline)
    if baseline is not None:
        base = _resolve(table, baseline, "--baseline")
        chosen = [(i, j) for i in table.index if i not in base
                  for j in [_in_scope(table, base, i, baseline, "--baseline")] if j is not None]
        labels = dict.fromkeys(table.loc[base, "label"])
        ref = next(iter(labels)) if len(labels) == 1 else baseline
        return chosen, {"how": f"every other condition against {ref} (--baseline), within "
                               "the same data and protocol", "ref": ref, "a": "row", "b": ref}
    if pairs:
        chosen = []
        for a, b in pairs:
            rows_a, rows_b = _resolve(table, a, "--pairs"), _resolve(table, b, "--pairs")
            found = [(i, j) for i in rows_a
                     for j in [_in_scope(table, rows_b, i, b, "--pairs")] if j is not None]
            if not found:
                raise InputError(f"--pairs {a}:{b}: no condition of {b} has the data, "
                                 f"protocol and settings of {a}")
            chosen += found
        named = ", ".join(f"{a} vs {b}" for a, b in pairs)
        return chosen, {"how": f"the pairs named (--pairs): {named}", "ref": None, "a": "A",
                        "b": "B"}
    return depth_steps(table), {"how": "each depth step of a series against the next "
                                       "shallower", "ref": "shallower", "a": "deeper",
                                "b": "shallower"}


def _by_factor(table: pd.DataFrame, factor: str, reference: str | None
               ) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    rest = [c for c in table["factors"].iloc[0] if c != factor]
    key = table["factors"].map(lambda f: "|".join(_text(f.get(c)) for c in rest))
    level = table["factors"].map(lambda f: _text(f.get(factor)))
    if reference is not None and reference not in set(level):
        raise InputError(f"--baseline {reference!r} is no {factor} of these runs; allowed: "
                         f"{', '.join(sorted(set(level)))}")
    chosen, refs = [], set()
    for _, group in table.groupby(key, sort=False):
        levels = sorted(set(level[group.index]))
        ref = reference if reference is not None else levels[0]
        base = [i for i in group.index if level[i] == ref]
        if len(levels) < 2 or not base:
            continue
        refs.add(ref)
        chosen += [(i, base[0]) for i in group.index if level[i] != ref]
    name = _short(factor)
    words = f"{name}={refs.pop()}" if len(refs) == 1 else None
    return chosen, {"how": f"within conditions equal in every other factor, each {name} "
                           f"against {words or 'the first ' + name} (--by {name})",
                    "ref": words, "a": "row", "b": words or "ref"}
