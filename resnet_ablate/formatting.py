"""Render a DataFrame as a terminal table, CSV, JSON, Markdown or LaTeX."""
from __future__ import annotations

import json
import math

import pandas as pd

FORMATS = ("table", "csv", "json", "markdown", "latex")


def human(n: float | int | None) -> str:
    """12_345_678 -> '12.35M'; None/NaN -> ''."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def render(df: pd.DataFrame, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        records = json.loads(df.to_json(orient="records"))
        return json.dumps(records, indent=2) + "\n"
    if fmt == "markdown":
        return df.to_markdown(index=False) + "\n"
    if fmt == "latex":
        return df.to_latex(index=False, na_rep="") + "\n"
    from tabulate import tabulate

    return tabulate(df.fillna("").values.tolist(), headers=list(df.columns), tablefmt="simple",
                    disable_numparse=True) + "\n"
