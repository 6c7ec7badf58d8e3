"""Run files into the store's rows (runs, history, responses, probes), in bounded memory.
history.csv goes through Arrow's CSV reader (never a Python dict per row; two files at a
time on two threads), a batch of files at a time, each opened and checked by us first (a
regular file inside the runs folder, of bounded size, with the harness's header) and read
from that open descriptor, exactly the size checked: nothing can swap it for a FIFO in
between, and a run directory deleted meanwhile is still read whole. A file Arrow refuses
is read again by DuckDB's CSV reader, from the same descriptor: its error names what is
wrong (a row's column count, a value that is not a number), or it reads what Arrow's
stricter reader would not; the broken file is named, the rest kept.

Reads happen on a cursor of their own: an error there never aborts the collect's
transaction. Every file opened is counted in READS (a test checks that an incremental
collect opens only the new run's files).
"""
from __future__ import annotations

import collections
import concurrent.futures
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError
from ..io import MAX_JSON_BYTES, open_regular, read_json
from ..run import record
from ..run.rundir import EVAL_COLUMNS, MAX_HISTORY_BYTES
from .store import (EVALUATION_COLUMNS_SQL, HISTORY_COLUMNS_SQL, HISTORY_TYPES, METRIC_COLUMNS,
                    one_line, q, run_columns)

READS: collections.Counter = collections.Counter()  # files opened, by kind
# CSV bytes DuckDB reads at a time: memory grows with this (about twice), not with the runs
BATCH_BYTES = int(os.environ.get("RESNET_ABLATE_COLLECT_BATCH_BYTES", 64 << 20))
_HEADER_BYTES = 1 << 16
_FD_PATHS = os.path.isdir("/proc/self/fd")  # Linux: DuckDB reads our checked descriptor
THREADS = min(2, os.cpu_count() or 1)  # files parsed at once (Arrow frees the GIL)
# What history.csv writes for a missing value (an empty cell) and NaN (Python's repr):
# NULL in the store. Arrow's default list also takes NA, N/A, NULL ...: not the harness's.
_NULLS = ["", "nan", "NaN", "-nan"]


@dataclass
class HistoryFile:
    """An open, checked history.csv: close() when done."""
    run_id: str
    fd: int
    header: tuple[str, ...]
    size: int
    path: Path

    @property
    def name(self) -> str:
        return f"/proc/self/fd/{self.fd}" if _FD_PATHS else str(self.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_history(path: Path, run_id: str, inside: Path) -> HistoryFile | None:
    """history.csv opened and checked, or None if there is none; InputError (one line) if it
    is not a regular file inside `inside`, is too big, or lacks the harness's header."""
    try:
        fd, st = open_regular(path, MAX_HISTORY_BYTES, inside)
    except FileNotFoundError:
        return None
    READS["history"] += 1
    try:
        head = os.pread(fd, _HEADER_BYTES, 0)
        line, newline, _ = head.partition(b"\n")
        if not newline and len(head) == _HEADER_BYTES:
            raise InputError("history.csv has no header line in its first 64 kB")
        try:
            names = tuple(n.strip() for n in line.decode("utf-8").rstrip("\r").split(","))
        except UnicodeDecodeError:
            raise InputError("history.csv is not UTF-8 text (not a history the harness "
                             "wrote)") from None
        if "iteration" not in names:
            raise InputError("history.csv has no iteration column (its header: "
                             f"{', '.join(names)[:60]!r})")
        twice = sorted({n for n in names if n in HISTORY_TYPES and names.count(n) > 1})
        if twice:
            raise InputError(f"history.csv names column {twice[0]!r} twice")
    except BaseException:
        os.close(fd)
        raise
    return HistoryFile(run_id, fd, names, st.st_size, path)


def _select(header: tuple[str, ...], granularity: str) -> tuple[dict[str, str], str]:
    """read_csv's columns for a header (unknown ones read as text, then dropped) and the
    select that gives the history table's columns (NaN as NULL)."""
    columns = {(n if n in HISTORY_TYPES else f"_extra{i}"): HISTORY_TYPES.get(n, "VARCHAR")
               for i, n in enumerate(header)}
    cells = []
    for col in HISTORY_COLUMNS_SQL:
        if col == "run_id":
            cells.append("NULL::VARCHAR AS run_id")  # set after: the file's run
        elif col == "granularity":
            cells.append(f"'{granularity}' AS granularity")
        elif col not in columns:
            cells.append(f"NULL::{HISTORY_TYPES[col]} AS {q(col)}")
        elif col == "iteration":
            cells.append("c.iteration")
        else:
            cells.append(f"CASE WHEN isnan(c.{q(col)}) THEN NULL ELSE c.{q(col)} END AS {q(col)}")
    return columns, ", ".join(cells)


def pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads to parse on: Arrow's reader frees the GIL, so THREADS files parse at once
    (and the next batch while this one is written: resnet_ablate.analysis.collect)."""
    return concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="history")


def parse(f: HistoryFile, granularity: str = "iteration"):
    """One file's rows through Arrow (an Arrow table), or None where Arrow refused it or
    the read failed (`finish` reads it again with DuckDB, whose error then names it)."""
    import pyarrow as pa

    try:
        return _arrow_read(f, granularity)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None


def finish(cursor, files: list[HistoryFile], parsed: list, granularity: str = "iteration"):
    """(table, {run_id: why}) of files `parse` read (None: read here by DuckDB, whose
    error names what is wrong)."""
    import pyarrow as pa

    tables, failed = [], {}
    for f, table in zip(files, parsed):
        if table is None:
            try:
                table = _duckdb_read(cursor, f, granularity)
            except Exception as exc:  # noqa: BLE001  duckdb.Error: the file's fault
                failed[f.run_id] = f"history.csv: {one_line(exc)}"
                continue
        if table["iteration"].null_count:  # the file is not the harness's
            failed[f.run_id] = "history.csv has rows without an iteration"
            continue
        tables.append(table)
    return (pa.concat_tables(tables).unify_dictionaries() if tables else None), failed


def _arrow_read(f: HistoryFile, granularity: str):
    """One history.csv through Arrow's CSV reader: the store's columns (a known one the
    header lacks: NULL; unknown ones parsed as text and dropped), NaN as NULL; ArrowInvalid
    when a row does not parse."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [n if n in HISTORY_TYPES else f"_extra{i}" for i, n in enumerate(f.header)]
    known = [n for n in names if n in HISTORY_TYPES]
    types = {"BIGINT": pa.int64(), "DOUBLE": pa.float64()}
    table = pcsv.read_csv(
        pa.py_buffer(_pread(f.fd, f.size)),
        read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
        convert_options=pcsv.ConvertOptions(
            column_types={n: types[HISTORY_TYPES[n]] for n in known}, include_columns=known,
            null_values=_NULLS, quoted_strings_can_be_null=False))
    n = table.num_rows
    same = pa.repeat(pa.scalar(0, pa.int32()), n)  # one value a file: a dictionary of one
    cols = {}
    for col, tp in HISTORY_COLUMNS_SQL.items():
        if col in ("run_id", "granularity"):
            value = f.run_id if col == "run_id" else granularity
            cols[col] = pa.DictionaryArray.from_arrays(same, pa.array([value]))
        elif col in known:
            cols[col] = table[col]
        else:
            cols[col] = pa.nulls(n, types[tp])
    return pa.table(cols, schema=history_schema())


def _pread(fd: int, size: int) -> bytes:
    """Exactly the `size` bytes checked (a file grown since is read as it was then)."""
    chunks, at = [], 0
    while at < size:
        chunk = os.pread(fd, min(size - at, 1 << 30), at)
        if not chunk:
            break
        chunks.append(chunk)
        at += len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _duckdb_read(cursor, f: HistoryFile, granularity: str):
    """One history.csv through DuckDB's CSV reader (its typed columns: a DuckDB error says
    which row or value is wrong), in the same Arrow schema as _arrow_read's."""
    import pyarrow as pa

    columns, select = _select(f.header, granularity)
    sql = (f"SELECT {select} FROM read_csv($files, header = true, columns = $columns, "
           "auto_detect = false) c")
    table = cursor.sql(sql, params={"files": [f.name], "columns": columns}).to_arrow_table()
    table = table.set_column(0, "run_id", pa.repeat(f.run_id, table.num_rows))
    return table.cast(history_schema())


def history_schema():
    """The Arrow schema of history rows (a part's: resnet_ablate.analysis.parts)."""
    from .parts import schema

    return schema(tuple(HISTORY_COLUMNS_SQL.items()))


def batches(items: Iterable[Any], size_of, limit: int = BATCH_BYTES) -> Iterable[list[Any]]:
    """Consecutive items grouped up to `limit` bytes (a bigger item alone)."""
    batch, total = [], 0
    for item in items:
        if batch and total + size_of(item) > limit:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size_of(item)
    if batch:
        yield batch


def wandb_rows(run_id: str, run, train_keys: list[str], eval_keys: list[str],
               window: int, rename: dict[str, str]):
    """A W&B run's history as an Arrow table of the store's columns, read with only the
    keys it needs (scan_history(keys=...) returns the rows that have all of them): the
    training numbers (means over `window` iterations) and the evaluations, each one scan."""
    import pyarrow as pa

    data: dict[str, list] = {c: [] for c in HISTORY_COLUMNS_SQL}
    for keys, granularity in ((train_keys, f"window:{window}"), (eval_keys, "evaluation")):
        if not keys:
            continue
        for row in run.scan_history(keys=["iteration", *keys]):
            if row.get("iteration") is None:
                continue
            values = {rename.get(k, k): v for k, v in row.items()}
            data["run_id"].append(run_id)
            data["granularity"].append(granularity)
            data["iteration"].append(int(values["iteration"]))
            for col in METRIC_COLUMNS:
                v = values.get(col)
                data[col].append(None if v is None or v != v else float(v))
    types = {c: pa.int64() if t == "BIGINT" else pa.float64() if t == "DOUBLE" else pa.string()
             for c, t in HISTORY_COLUMNS_SQL.items()}
    return pa.table({c: pa.array(v, type=types[c]) for c, v in data.items()})


def evaluation_rows(history):
    """The evaluations table's rows of a batch of history rows (an Arrow table): per
    evaluation (a row with any split metric; a repeated iteration once), its metrics and
    the mean training error and loss of the rows in (previous evaluation, this one]: the
    paper's training curve, binned once here, vectorised, so that a figure reads 64 rows a
    run, not 64,000."""
    import numpy as np
    import pyarrow as pa

    if history is None or not history.num_rows:
        return None
    names = history["run_id"].combine_chunks()
    names = names if pa.types.is_dictionary(names.type) else names.dictionary_encode()
    run = names.indices.to_numpy().astype(np.int64)
    it = history["iteration"].to_numpy()
    is_eval = _any_valid(history, EVAL_COLUMNS)
    # Rows in (run, iteration) order, a training-only row before an evaluation at its
    # iteration (files come in order: usually nothing to sort).
    key = run << 40
    key += it << 1
    key += is_eval
    order = None if np.all(key[1:] >= key[:-1]) else np.argsort(key, kind="stable")
    if order is not None:
        run, it, is_eval, key = run[order], it[order], is_eval[order], key[order]
    pos = np.flatnonzero(is_eval)
    if not len(pos):
        return None
    new = np.concatenate([[True], (run[pos[1:]] != run[pos[:-1]]) | (it[pos[1:]] != it[pos[:-1]])])
    evals, group = pos[new], np.cumsum(new) - 1  # an iteration evaluated twice: its mean
    m = len(evals)
    # Each row's evaluation, the first at or after it: the evaluations that start before
    # it (rows are in order; an evaluation row counts its own)
    starts = np.zeros(len(it), dtype=np.int64)
    starts[evals] = 1
    nxt = np.minimum(np.cumsum(starts) - is_eval, m - 1)
    # binned: a row at or before its run's last evaluation (and after iteration 0)
    last = np.full(int(run.max()) + 1, -1)
    last[run[pos]] = pos  # pos ascending: each run's last evaluation row wins
    binned = (np.arange(len(it)) <= last[run]) & (it > 0)
    out = {"run_id": names.dictionary.take(pa.array(run[evals])).cast(pa.string()),
           "iteration": pa.array(it[evals])}
    at = pos if order is None else order[pos]  # the evaluation rows, as the table holds them
    for col in EVAL_COLUMNS:
        v = _floats(history[col].take(pa.array(at)))
        out[col] = _mean(np.bincount(group[~np.isnan(v)], minlength=m),
                         np.bincount(group, weights=np.nan_to_num(v), minlength=m))
    bounds = np.searchsorted(nxt, np.arange(m))  # nxt ascends: each evaluation's rows a run
    for col in ("train_err", "train_loss"):
        v = _floats(history[col])
        v = v if order is None else v[order]
        use = binned & ~np.isnan(v)
        n = np.add.reduceat(use, bounds, dtype=np.int64)
        out[col] = _mean(n, np.add.reduceat(np.where(use, v, 0.0), bounds))
        if col == "train_err":
            out["n_train"] = pa.array(n, type=pa.int64())
    return pa.table({c: out[c] for c in EVALUATION_COLUMNS_SQL})


def _mean(n, total):
    """Means of groups as an Arrow array (NULL where a group is empty)."""
    import numpy as np
    import pyarrow as pa

    with np.errstate(invalid="ignore", divide="ignore"):
        return pa.array(total / np.maximum(n, 1), mask=n == 0)


def _floats(column):
    """An Arrow float column as numpy, NULL as NaN."""
    import numpy as np

    return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _any_valid(table, columns):
    """Whether each row has a value in any of these columns (a numpy bool array)."""
    import numpy as np
    import pyarrow.compute as pc

    marked = np.zeros(table.num_rows, dtype=bool)
    for col in columns:
        if table[col].null_count < table.num_rows:  # a split never evaluated: nothing
            marked |= pc.is_valid(table[col]).to_numpy(zero_copy_only=False)
    return marked


# ---------------------------------------------------------------------------- summaries
def run_row(summary: dict[str, Any], source: str, warnings: list[str] | None = None
            ) -> dict[str, Any]:
    """One row of the runs table: the record flat, values as a table holds them. The
    condition is the one its factors give; a stored id that disagrees (a record edited by
    hand) is replaced, with a warning."""
    values = record.flat(summary)
    row = {c: record.canonical(values.get(c)) for c in record.columns()}
    computed = record.condition_id(values)
    if row["condition"] != computed:
        if warnings is not None and row["condition"] is not None:
            warnings.append(f"{source}: its stored condition {row['condition']} is not what "
                            f"its factors give ({computed}); grouped by its factors")
        row["condition"] = computed
    row["shortcut"] = row["shortcut"] or "-"  # plain nets: no shortcut
    row["source"] = source
    return row


_INT64 = (-(1 << 63), (1 << 63) - 1)


def typed_row(row: dict[str, Any]) -> dict[str, Any]:
    """A runs row in the table's types (a number JSON wrote as 3 in a float column: 3.0);
    InputError for an integer a 64-bit column cannot hold."""
    out = {}
    for col, tp in run_columns().items():
        v = row.get(col)
        if v is not None and tp == "BIGINT" and not _INT64[0] <= v <= _INT64[1]:
            raise InputError(f"summary.json: {col} is {v}, out of a 64-bit integer's range")
        out[col] = float(v) if v is not None and tp == "DOUBLE" else v
    return out


def _arrow(rows: list[dict[str, Any]], types: dict[str, str]):
    import pyarrow as pa

    kinds = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
             "VARCHAR": pa.string()}
    return pa.table({c: pa.array([r.get(c) for r in rows], type=kinds[t])
                     for c, t in types.items()}) if rows else None


def runs_table(rows: list[dict[str, Any]]):
    return _arrow(rows, run_columns())


def response_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Fig. 7: the summary's layer responses (their shape checked by record.check)."""
    return [{"run_id": summary["run_id"], "index": r["index"], "layer": r["layer"],
             "std": float(r["std"])} for r in summary.get("layer_responses") or []]


def responses_table(rows: list[dict[str, Any]]):
    return _arrow(rows, {"run_id": "VARCHAR", "index": "BIGINT", "layer": "VARCHAR",
                         "std": "DOUBLE"})


def probe_rows(run_id: str, run_dir: Path, names: list[str]
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, notes) of a run's probe files (probes/<name>.json, each a JSON object; its
    `settings` mapping keys the row), read as every run file is (bounded, contained)."""
    rows, notes = [], []
    for name in names:
        READS["probe"] += 1
        try:
            result = read_json(run_dir / "probes" / name, MAX_JSON_BYTES, inside=run_dir)
            if not isinstance(result, dict):
                raise InputError(f"{name} is not a JSON object")
        except (InputError, FileNotFoundError) as exc:
            notes.append(f"probe {name} not collected: {exc}")
            continue
        rows.append({"run_id": run_id, "probe": name[:-len(".json")],
                     "settings": record.digest(result.get("settings") or {}),
                     "result": record.canonical(result)})
    return rows, notes


def probes_table(rows: list[dict[str, Any]]):
    return _arrow(rows, {"run_id": "VARCHAR", "probe": "VARCHAR", "settings": "VARCHAR",
                         "result": "VARCHAR"})
