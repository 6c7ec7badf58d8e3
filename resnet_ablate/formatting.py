"""Render rows (a list of dicts, or a DataFrame) as a terminal table, CSV, JSON, Markdown or
LaTeX, without needing pandas for the plain cases (`resnet-ablate models` starts fast)."""
from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from typing import Any

from .errors import InputError

FORMATS = ("table", "csv", "json", "markdown", "latex")


# Characters a terminal acts on instead of showing: C0 controls (ESC starts screen clears,
# titles and OSC 52 clipboard writes), DEL, C1 controls (0x9b is a one-byte CSI), and the
# bidirectional overrides that make text read other than it is.
_BIDI = frozenset([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _escaped(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def printable(text: str, keep: str = "") -> str:
    """`text` as a terminal shows it, as text: every control character (but those in `keep`),
    DEL, C1 controls and bidi overrides written as escapes (\\x1b, \\u202e)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escaped(ch) if (ord(ch) < 0x20 and ch not in keep) or 0x7f <= ord(ch)
                   <= 0x9f or ord(ch) in _BIDI else ch for ch in text)


def raw(stream):
    """The stream under a TextOnly (where our own progress bars write their escapes)."""
    return getattr(stream, "raw_stream", stream)


class TextOnly:
    """A text stream (the CLI's stdout) that writes what it is given as text: tables, lines
    and messages built from records can never act on the terminal (printable; newlines and
    tabs kept)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep="\n\t"))
        return len(text)

    @property
    def raw_stream(self):
        """The stream itself, for the escapes of our own displays (sweep/display.py)."""
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def human(n: float | int | None) -> str:
    """12_345_678 -> '12.35M'; None/NaN -> ''."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def _records(rows: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if hasattr(rows, "to_dict"):  # a DataFrame
        return [str(c) for c in rows.columns], [
            {str(k): _plain(v) for k, v in r.items()} for r in rows.to_dict("records")]
    rows = list(rows)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, [{k: _plain(r.get(k)) for k in columns} for r in rows]


def _plain(value: Any) -> Any:
    """numpy / pandas scalars and missing values as plain Python."""
    pd = sys.modules.get("pandas")  # only if the caller already uses it
    if value is None or (pd is not None and value is pd.NA):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_cell(value: Any) -> str:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @, tab or CR first:
    a run id or label from someone's record) gets a leading ', as OWASP advises. Left as
    they are: numbers; text that is a plain number ("-0.31"); and a signed statistic the
    harness wrote ("-1.33 [-6.05, +3.39] (vs 20)", "+0.4%"): a sign, a digit, and no
    function call or DDE link (`name(`, `|`, `!`), the only ways a formula reaches code or
    the network. A CR becomes a newline: the writer quotes only the characters of its line
    end, so a bare CR would split the row."""
    text = _cell(value).replace("\r\n", "\n").replace("\r", "\n")
    if not isinstance(value, str) or value[:1] not in _FORMULA_START or _is_number(text):
        return text
    if text[0] in "+-" and text[1:2].isdigit() and not _CALL.search(text):
        return text
    return "'" + text


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CALL = re.compile(r"[A-Za-z_][\w.]*\s*\(|[|!]")


def render(rows: Any, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    columns, records = _records(rows)
    if fmt == "json":
        return json.dumps(records, indent=2, default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([_csv_cell(c) for c in columns])
        writer.writerows([[_csv_cell(r[c]) for c in columns] for r in records])
        return out.getvalue()
    from tabulate import tabulate

    table = [[_cell(r[c]) for c in columns] for r in records]
    style = {"table": "simple", "markdown": "github", "latex": "latex_booktabs"}[fmt]
    return tabulate(table, headers=columns, tablefmt=style, disable_numparse=True) + "\n"
