"""Run directories, read where they lie: the harness's only record. `read_runs(dirs)` reads
every summary.json named (checked against the run record's schema on every read: a few ms a
hundred runs) into the runs table, and hands the histories to DuckDB in place
(analysis.histories) when a figure asks for them. Nothing is collected first and nothing can
be stale: each command reads the folders as they are.

A directory named is a run directory (it has summary.json or config.json) or a folder of
them (its dot-folders are bookkeeping). A run directory that cannot be read (a summary that
is not a regular file, too big, not JSON, nested too deep, of the wrong types, a run_id no
folder could have; a history that is not the harness's) is named with why and skipped:
commands then exit EXIT_SKIPPED, the rest analysed. One without a summary yet (running,
interrupted, pending) is unfinished, not an error. The same directory named twice is one
run; a copy of a run elsewhere (an equal summary) counts once, with a note; another run
under a run_id already taken is skipped. The same condition and seed twice (a rerun under
another run_id) counts once, with a warning naming both (the `counted` column).

The runs table: one row per run, every record column by its dotted path ("protocol_fields.lr"),
mappings and lists as canonical JSON text, `shortcut` "-" for plain nets, then `source` (the
run directory's real path), `counted`.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..errors import InputError, MissingInput
from ..io import MAX_JSON_BYTES, atomic_write_bytes, read_json
from ..run import record
from ..run.config import FACTOR, check_run_id
from ..run.rundir import RunDir
from .samples import network_versions, one_per_seed

EXIT_SKIPPED = 3  # analysed, but some run directories were skipped (each named on stderr)
# The run columns analyses read as numbers (pandas' nullable Int64, float64).
INT_COLUMNS = ("depth", "seed", "iterations", "params", "macs")
FLOAT_COLUMNS = ("final_train_err", "final_train_err_running", "final_train_err_eval",
                 "final_val_err", "final_test_err", "final_test_top5_err", "best_val_err")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def run_columns() -> list[str]:
    """The runs table's columns: the record's, flat, then where each run came from."""
    return [*record.columns(), "source", "counted"]


def run_row(summary: dict[str, Any], source: str, warnings: list[str] | None = None,
            values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the runs table: the record flat (`values`, when record.check gave it
    already), values as a table holds them (a number JSON wrote as 3 in a float column:
    3.0). The condition is the one its factors give; a stored id that disagrees (a record
    edited by hand) is replaced, with a warning."""
    values = record.flat(summary) if values is None else values
    canon = {c: record.canonical(values.get(c)) for c in record.columns()}
    computed = record.digest({c: canon[c] for c in _factors()})  # = record.condition_id
    floats = _float_columns()
    row = {}
    for c, v in canon.items():
        if isinstance(v, int) and not isinstance(v, bool):
            if not _INT64[0] <= v <= _INT64[1]:
                raise InputError(f"summary.json: {c} is {v}, out of a 64-bit integer's range")
            if c in floats:
                v = float(v)
        row[c] = v
    if row["condition"] != computed:
        if warnings is not None and row["condition"] is not None:
            warnings.append(f"{source}: its stored condition {row['condition']} is not what "
                            f"its factors give ({computed}); grouped by its factors")
        row["condition"] = computed
    row["shortcut"] = row["shortcut"] or "-"  # plain nets: no shortcut
    row["source"] = source
    return row


@functools.lru_cache(maxsize=1)
def _factors() -> tuple[str, ...]:
    return tuple(record.columns([FACTOR]))


@functools.lru_cache(maxsize=1)
def _float_columns() -> frozenset[str]:
    return frozenset(k.column for k in record.keys()
                     if float in (k.type if isinstance(k.type, tuple) else (k.type,)))


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs table of these rows: every column, numbers typed for analysis."""
    out = pd.DataFrame.from_records(rows, columns=run_columns())
    for col in INT_COLUMNS:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    for col in FLOAT_COLUMNS:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out


@dataclass
class _Read:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    unfinished: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dirs: dict[str, RunDir] = field(default_factory=dict)  # run_id -> its directory


def run_directories(dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """The run directories named: each one itself, or the folders inside a runs folder."""
    out = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise MissingInput(f"runs directory {str(d)!r} does not exist")
        if (d / "summary.json").exists() or (d / "config.json").exists():
            out.append(d)
            continue
        try:
            names = sorted(os.listdir(d))
        except OSError as exc:
            raise InputError(f"runs directory {d} cannot be listed ({exc.strerror})") from None
        out += [d / n for n in names if not n.startswith(".") and (d / n).is_dir()]
    return out


def _read(paths: list[Path]) -> _Read:
    got = _Read()
    seen: set[str] = set()
    where: dict[str, str] = {}  # run_id -> the folder that holds it
    for path in paths:
        source = os.path.realpath(path)
        if source in seen:
            continue  # the same directory, named twice: one run
        seen.add(source)
        try:
            rundir = RunDir(path.parent, path.name)
            summary = read_json(rundir.summary_path, MAX_JSON_BYTES, inside=path.parent)
        except FileNotFoundError:
            got.unfinished.append((str(path), "unfinished (checkpoints, no summary)"
                                   if rundir.checkpoints() else "no summary.json"))
            continue
        except InputError as exc:
            got.skipped.append((str(path), str(exc)))
            continue
        notes: list[str] = []
        try:
            values = record.check(summary)
            run_id = check_run_id(summary["run_id"])
            row = run_row(summary, source, notes, values)
        except InputError as exc:
            got.skipped.append((str(path), f"summary.json: {exc}"))
            continue
        except RecursionError:  # a field nested too deeply to serialise
            got.skipped.append((str(path), "summary.json is nested too deeply to be a record"))
            continue
        if run_id in where:  # a copy of a run elsewhere, or another run under its name
            first = got.dirs[run_id]
            if _digest(first) == record.digest(summary):
                broken = _broken_history(first)
                if broken and not _broken_history(rundir):  # the copy's history counts
                    got.skipped.append((where[run_id], broken))
                    got.warnings.append(f"{path}: the same run as {where[run_id]}, whose "
                                        "history is not the harness's; counted once, as "
                                        f"{path}")
                    got.dirs[run_id], where[run_id] = rundir, str(path)
                    i = next(i for i, r in enumerate(got.rows) if r["run_id"] == run_id)
                    got.rows[i] = {**got.rows[i], "source": source}
                    continue
                got.warnings.append(f"{path}: the same run as {where[run_id]}; counted once")
            else:
                got.skipped.append((str(path), f"run_id {run_id} is already {where[run_id]}'s "
                                               "(another run); kept that one"))
            continue
        if run_id != path.name:
            notes.append(f"{path}: its summary names run {run_id!r}, its folder "
                         f"{path.name!r}; read as {run_id}")
        where[run_id], got.dirs[run_id] = str(path), rundir
        got.rows.append(row)
        got.warnings += notes
    return got


def _digest(rundir: RunDir) -> str | None:
    """A run's summary digest, read again (only when a second folder claims its run_id)."""
    try:
        return record.digest(read_json(rundir.summary_path, MAX_JSON_BYTES,
                                       inside=rundir.path.parent))
    except (InputError, OSError):
        return None


def _broken_history(rundir: RunDir) -> str | None:
    """Why a run directory's history is not the harness's (None: it is, or there is none):
    of two copies of a run, the one whose history reads counts."""
    from .histories import check

    try:
        check(rundir.history_path, rundir.path.parent, rundir.run_id, None)
    except InputError as exc:
        return str(exc)
    return None


class RunSet:
    """Runs read from their directories: `runs`, the runs that count (one row per condition
    and seed), `every` (every run read; `counted` says which count), what was skipped or
    unfinished, the warnings; and, asked for by each figure, their curves, history rows and
    layer responses, read in place (never all histories in memory).

    RunSet(runs, histories) also wraps a runs table in memory (tests, notebooks)."""

    def __init__(self, runs: pd.DataFrame, dirs: Mapping[str, RunDir] | None = None,
                 skipped=None, unfinished=None, warnings=None, every=None) -> None:
        self.runs = runs
        self.every = runs if every is None else every
        self.dirs = dict(dirs or {})
        self.skipped: list[tuple[str, str]] = list(skipped or [])
        self.unfinished: list[tuple[str, str]] = list(unfinished or [])
        self.warnings: list[str] = list(warnings or [])
        self._histories = None
        self._parent: RunSet | None = None

    # -- histories, checked once per set ----------------------------------------------
    def histories(self):
        """The Histories of every run read (their files checked on first use: a history that
        is not the harness's is skipped, with its run's other numbers kept)."""
        if self._parent is not None:
            return self._parent.histories()
        if self._histories is None:
            from .histories import Histories, check

            files = []
            cols = ("protocol_fields.eval_every", "iterations", "iterations_planned",
                    "history_granularity")
            rows = {r[0]: r[1:] for r in zip(self.every["run_id"], *(
                self.every[c] for c in cols))} if len(self.every) else {}
            for run_id, rundir in self.dirs.items():
                every, its, planned, granularity = rows.get(run_id, (None,) * 4)
                most = max(_int(its) or 0, _int(planned) or 0) or None
                try:
                    f = check(rundir.history_path, rundir.path.parent, run_id, most,
                              _int(every), granularity if isinstance(granularity, str)
                              else None)
                except InputError as exc:
                    self.skipped.append((str(rundir.path), str(exc)))
                    continue
                if f is None:
                    continue
                files.append(f)
                if _int(its) and f.last < _int(its):
                    self.warnings.append(
                        f"{rundir.path}: history.parquet ends at iteration {f.last}, the "
                        f"summary says {_int(its)} (curves are cut short)")
            every = self.every
            self._histories = Histories(files, lambda: {
                "runs": _sql_frame(every), "responses": responses_frame(every)})
        return self._histories

    def check_histories(self) -> None:
        """Read every history's footer now (figures do, before drawing), so that what is
        skipped is known before anything is written."""
        self.histories()

    def close(self) -> None:
        if self._histories is not None:
            self._histories.close()
            self._histories = None

    def __enter__(self) -> "RunSet":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _ids(self, runs: pd.DataFrame | None = None) -> list[str]:
        runs = self.runs if runs is None else runs
        return [] if runs.empty else list(dict.fromkeys(runs["run_id"]))

    # -- what figures ask ----------------------------------------------------------------
    @property
    def responses(self) -> pd.DataFrame:
        """Fig. 7's layer responses of these runs: run_id, index, layer, std."""
        return responses_frame(self.runs)

    def curves(self, runs: pd.DataFrame, split: str = "test", max_points: int | None = None
               ) -> pd.DataFrame:
        """The paper's curves of `runs` (Histories.curves), thinned in the query."""
        from .histories import CURVE_POINTS

        _check_points(max_points)
        h = self.histories()
        out = h.curves(self._ids(runs), split, max_points or CURVE_POINTS)
        self._rejected(h)
        return out

    def _rejected(self, h) -> None:
        """Histories a query found not to be the harness's: skipped, in one line each."""
        root = self._parent or self
        for run_id, why in h.rejected.items():
            entry = (str(root.dirs[run_id].path), why)
            if entry not in root.skipped:
                root.skipped.append(entry)

    def history(self, columns: Sequence[str] | None = None, max_points: int | None = None,
                where: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """These runs' history rows, wide (Histories.rows)."""
        _check_points(max_points)
        return self.histories().rows(self._ids(), columns, where, max_points)

    def has(self, column: str) -> bool:
        """Whether any of these runs' history has `column` (val_err: a held-out split)."""
        return self.histories().has(column, self._ids())

    def subset(self, runs: pd.DataFrame) -> "RunSet":
        """A view of some of these runs: the same histories, skipped runs and warnings."""
        c = RunSet(runs, self.dirs, every=self.every)
        c.skipped, c.unfinished, c.warnings = self.skipped, self.unfinished, self.warnings
        c._parent = self._parent or self  # one set of histories for every view
        return c

    def save(self, folder: Path) -> list[Path]:
        """The runs a report used (runs.parquet) and their responses (responses.parquet),
        each written atomically; their histories stay in the run directories."""
        written = []
        for name, table in (("runs", self.runs), ("responses", self.responses)):
            path = Path(folder) / f"{name}.parquet"
            atomic_write_bytes(path, table.to_parquet(index=False))
            written.append(path)
        return written


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return None


def responses_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Fig. 7: the runs' layer responses (their shape checked by record.check)."""
    rows = []
    if len(runs) and "layer_responses" in runs:
        for run_id, text in zip(runs["run_id"], runs["layer_responses"]):
            for r in json.loads(text) if isinstance(text, str) else []:
                rows.append((run_id, r["index"], r["layer"], float(r["std"])))
    return pd.DataFrame(rows, columns=["run_id", "index", "layer", "std"]).astype(
        {"index": "int64", "std": "float64"})


def _sql_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as SQL sees it: nullable numbers as DuckDB reads them."""
    return runs.astype({c: "float64" for c in INT_COLUMNS if c in runs}).astype(
        {c: "Int64" for c in INT_COLUMNS if c in runs}) if len(runs) else runs


def read_runs(dirs: Iterable[str | os.PathLike]) -> RunSet:
    """Every run directory named (a run directory, or a folder of them), read as it is now.
    It reads data only: no plugin a record names is imported."""
    got = _read(run_directories(dirs))
    every = frame(got.rows)
    if len(every):
        counted, twice = one_per_seed(every[["run_id", "condition", "seed", "status",
                                             "finished_at"]])
        every["counted"] = every["run_id"].isin(set(counted["run_id"]))
        got.warnings += twice + network_versions(every)
    runs = every[every["counted"].astype(bool)].reset_index(drop=True) if len(every) else every
    return RunSet(runs, got.dirs, got.skipped, got.unfinished, got.warnings, every)


# ---------------------------------------------------------------------------- notebooks
def runs(dirs: str | os.PathLike | Iterable[str | os.PathLike], all: bool = False,  # noqa: A002
         where: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """`ra.runs(dirs)`: the runs table as a DataFrame, the runs that count (one per
    condition and seed); all=True: every run read. `where`: {column: value, [values] or
    (op, value)} (analysis.where), e.g. {"depth": 56, "protocol_fields.lr": 0.1}."""
    from .where import mask

    c = read_runs(_dirs(dirs))
    table = c.every if all else c.runs
    return table[mask(table, where)].reset_index(drop=True)


def history(dirs: str | os.PathLike | Iterable[str | os.PathLike],
            where: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None,
            max_points: int | None = None) -> pd.DataFrame:
    """`ra.history(dirs, where=..., columns=..., max_points=...)`: the history rows of the
    runs that count, wide (run_id, iteration, granularity, the metrics asked), of the runs
    and rows `where` selects ({column: value, [values] or (op, value)} over the runs' and
    the history's columns, e.g. {"model": "resnet56-A", "iteration": (">", 32000)}), each
    run thinned in the query to at most `max_points` rows (means of consecutive rows)."""
    from .histories import METRIC_COLUMNS
    from .where import check, mask

    _check_points(max_points)
    where = check(where)
    rows_where = {k: where.pop(k) for k in list(where)
                  if k == "iteration" or k in METRIC_COLUMNS}
    with read_runs(_dirs(dirs)) as c:
        picked = c.runs[mask(c.runs, where)]
        return c.histories().rows(c._ids(picked), columns, rows_where, max_points)


def _check_points(max_points: Any) -> None:
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(
            max_points, int) or not 1 <= max_points <= 10_000_000):
        raise InputError(f"max_points must be an integer in [1, 10,000,000] or None; got "
                         f"{max_points!r}")


def _dirs(dirs) -> list:
    return [dirs] if isinstance(dirs, (str, os.PathLike)) else list(dirs)
