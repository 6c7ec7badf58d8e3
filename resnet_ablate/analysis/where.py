"""`where=` of the notebook API (ra.runs, ra.history): a mapping of column to what it must
be, never SQL text. Each value is

    a scalar                 column = value (None: column IS NULL)
    a list, tuple or set     column IN values
    (op, value)              op one of == != < <= > >=  (a 2-tuple whose first item is an op)

Columns are checked against the table's own names and quoted; values are passed as query
parameters (or compared in pandas): nothing a filter holds is ever read as SQL.
"""
from __future__ import annotations

import operator
from typing import Any, Mapping

from ..errors import InputError

OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}
_SQL = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def check(where: Any) -> dict[str, Any]:
    """A filter as a dict; InputError for anything but a mapping (SQL text above all)."""
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise InputError(f"where= takes a mapping of column to value, list of values or (op, "
                         f"value), e.g. {{'depth': 56, 'iteration': ('>', 32000)}}; got a "
                         f"{type(where).__name__} (SQL text is not accepted: use "
                         "`resnet-ablate sql` for SQL)")
    return dict(where)


def _terms(where: Mapping[str, Any] | None, known) -> list[tuple[str, str, Any]]:
    """(column, op, value) of a filter, checked: op is one of OPS or 'in'."""
    out = []
    where = check(where)
    for column, value in where.items():
        if column not in known:
            raise InputError(f"unknown column {column!r} in where=; e.g. "
                             f"{', '.join(sorted(known)[:8])}")
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) \
                and value[0] in OPS:
            out.append((column, value[0], value[1]))
        elif isinstance(value, (list, tuple, set, frozenset)):
            out.append((column, "in", list(value)))
        else:
            out.append((column, "==" if value is not None else "is null", value))
    return out


def clause(where: Mapping[str, Any] | None, types: Mapping[str, str]) -> tuple[str, dict]:
    """A filter over columns of these SQL types as (SQL with $parameters, parameters)."""
    parts, params = [], {}
    for i, (column, op, value) in enumerate(_terms(where, types)):
        ref = '"' + column.replace('"', '""') + '"'
        name = f"w{i}"
        if op == "is null":
            parts.append(f"{ref} IS NULL")
            continue
        if op == "in":
            parts.append(f"{ref} IN (SELECT unnest(${name}::{types[column]}[]))")
        else:
            parts.append(f"{ref} {_SQL[op]} ${name}::{types[column]}")
        params[name] = value
    return " AND ".join(parts), params


def mask(frame, where: Mapping[str, Any] | None):
    """The rows of a DataFrame a filter selects (a boolean Series)."""
    import pandas as pd

    keep = pd.Series(True, index=frame.index)
    for column, op, value in _terms(where, set(frame.columns)):
        col = frame[column]
        if op == "is null":
            keep &= col.isna()
        elif op == "in":
            keep &= col.isin(value)
        else:
            keep &= OPS[op](col, value).fillna(False).astype(bool)
    return keep
