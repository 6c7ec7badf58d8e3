"""Run histories queried where they lie: each run's history.parquet, checked, then read by
DuckDB in place (no copy, no step before), on a connection that can read those files and
nothing else.

    check(path, ...)     one file's footer against the harness's schema (before any query)
    Histories(files)     the checked files of a set of runs and the questions analyses ask:
                         curves (the paper's thin and bold lines), rows (thinned), has
    Histories.query      a user's SQL (one SELECT) over the views runs, history, responses

The connection is locked once its views exist: external access off except the history files
named (DuckDB's allowed_paths), no extension installed or loaded, Python objects not visible
by name, configuration locked; a user's statement must be a single SELECT (a COPY could write
to an allowed path) and is interrupted after a time limit. DuckDB globs `?`, `*` and `[` in a
path, and reads paths as UTF-8: it is handed symlinks of plain names in a private folder.

Rows are grouped by the file they came from, never by a key packed from values: one run's
rows cannot reach another's numbers. A history whose iterations leave [0, the run's
iterations] is not the harness's and is skipped in one line.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InputError
from ..io import open_regular
from ..run.rundir import EVAL_COLUMNS, HISTORY_FILE_COLUMNS, MAX_HISTORY_BYTES

METRIC_COLUMNS = HISTORY_FILE_COLUMNS[1:]  # the history's metrics, by their names
CURVE_POINTS = 2000  # a figure's resolution: at most this many points per curve
MEMORY_LIMIT = "512MB"  # DuckDB's buffers (peak RSS of a whole Fig. 6 stays under 500 MB)
QUERY_SECONDS = 120.0  # a user's query that runs longer is interrupted (one line)
_TYPES = {"iteration": "int64", **{c: "double" for c in METRIC_COLUMNS}}
MAX_ITERATIONS = 1_000_000_000  # the protocol's bound, where a run's own is unknown


@dataclass(frozen=True)
class HistoryFile:
    """A history.parquet that passed `check`: where it really is, and what it claims."""
    run_id: str
    path: str  # its real path
    rows: int
    last: int  # the last iteration (by its footer's statistics, else read)
    every: int | None  # the run's evaluation interval (its protocol's eval_every)
    granularity: str  # iteration | window:N (W&B's means over N iterations)
    most: int  # the iterations the run can have: what a row beyond is not the harness's


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A DuckDB (or any) error as one printable line: its first line, never the bytes that
    caused it."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check(path: Path, inside: Path, run_id: str, iterations: int | None,
          every: int | None = None, granularity: str | None = None) -> HistoryFile | None:
    """A run's history.parquet checked before anything reads its rows: a regular file inside
    `inside` (no symlink out), at most MAX_HISTORY_BYTES, a Parquet footer with exactly the
    harness's columns and types, iterations (by the footer's statistics) within
    [0, iterations]. None when there is none; InputError (one line) for the rest."""
    import pyarrow.parquet as pq

    try:
        fd, _ = open_regular(path, MAX_HISTORY_BYTES, inside)
    except FileNotFoundError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            parquet = pq.ParquetFile(f)
            meta = parquet.metadata
            got = [(c.name, str(c.type)) for c in meta.schema.to_arrow_schema()]
            if got != list(_TYPES.items()):
                shown = ", ".join(f"{n} {t}" for n, t in got)[:120]
                raise InputError(f"history.parquet has columns ({shown}); the harness writes "
                                 f"{', '.join(HISTORY_FILE_COLUMNS)} (iteration int64, the "
                                 "rest double)")
            lo, hi = _iteration_range(meta)
            if lo is None and meta.num_rows:  # no statistics: the column itself
                import pyarrow.compute as pc

                lo, hi = pc.min_max(parquet.read(columns=["iteration"])["iteration"]).values()
                lo, hi = lo.as_py(), hi.as_py()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001  pyarrow's errors: the file's fault
        raise InputError(f"history.parquet is not a Parquet file the harness wrote "
                         f"({one_line(exc, 100)})") from None
    most = iterations if iterations is not None else MAX_ITERATIONS
    if (lo is not None and lo < 0) or (hi is not None and hi > most):
        raise InputError(f"history.parquet has iterations {lo}..{hi}, outside [0, {most}] "
                         "(the run's iterations): not a history the harness wrote")
    return HistoryFile(run_id, os.path.realpath(path), meta.num_rows, hi or 0, every,
                       granularity or "iteration", most)


def _iteration_range(meta) -> tuple[int | None, int | None]:
    """The iteration column's min and max over its row groups' statistics (None: unstated)."""
    lo = hi = None
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(0).statistics
        if st is None or not st.has_min_max:
            return None, None
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
    return lo, hi


INTERVAL_METRICS = (*EVAL_COLUMNS, "train_err", "train_loss")  # what intervals() averages


_UNSAFE = re.compile(r"[*?\[\]{}'\\]")  # what DuckDB globs, and quotes


def _surrogates(text: str) -> bool:
    """Whether a path holds bytes that are not UTF-8 (os.fsdecode's surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _valid(col: str) -> str:
    """A metric with NaN read as NULL (not measured: a diverged run's loss)."""
    return f"CASE WHEN isnan({col}) THEN NULL ELSE {col} END"


class Histories:
    """The checked history files of a set of runs, read in place on a locked connection.
    Close it (or let it go) to remove its folder of links."""

    def __init__(self, files: Iterable[HistoryFile], tables=None) -> None:
        """`tables`: a callable giving {name: DataFrame} of the tables a user's SQL may read
        beside the histories (runs, responses), made on the first query."""
        import duckdb

        self.files = {f.run_id: f for f in files}
        self.rejected: dict[str, str] = {}  # run_id -> why: rows its footer did not declare
        self._tables = tables
        self._folder = Path(tempfile.mkdtemp(prefix="resnet-ablate-histories-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self.links: dict[str, str] = {}  # run_id -> the path DuckDB is handed
        for i, f in enumerate(self.files.values()):
            link = f.path
            if _UNSAFE.search(f.path) or not f.path.isprintable() or _surrogates(f.path):
                link = str(self._folder / f"{i:06d}.parquet")  # a name DuckDB reads as it is
                os.symlink(f.path, link)
            self.links[f.run_id] = link
        self.conn = duckdb.connect(":memory:", config={
            "memory_limit": MEMORY_LIMIT, "autoinstall_known_extensions": False,
            "autoload_known_extensions": False, "python_enable_replacements": False,
            "threads": max(1, os.cpu_count() or 1)})
        self.conn.execute("SET enable_progress_bar = false")  # its bar would garble ours
        self._views()
        allowed = "[" + ", ".join(_quote(p) for p in self.links.values()) + "]"
        self.conn.execute(f"SET allowed_paths = {allowed}")
        self.conn.execute("SET enable_external_access = false")
        self.conn.execute("SET lock_configuration = true")

    def _views(self) -> None:
        import pyarrow as pa

        files = pa.table({
            "run_id": pa.array(list(self.links), pa.string()),
            "link": pa.array(list(self.links.values()), pa.string()),
            "every": pa.array([self.files[r].every for r in self.links], pa.int64()),
            "last": pa.array([self.files[r].last for r in self.links], pa.int64()),
            "granularity": pa.array([self.files[r].granularity for r in self.links],
                                    pa.string())})
        self.conn.register("_files", files)
        self.conn.execute("CREATE TEMP TABLE files AS SELECT * FROM _files")
        self.conn.unregister("_files")
        if self.links:
            paths = "[" + ", ".join(_quote(p) for p in self.links.values()) + "]"
            metrics = ", ".join(f"{_valid('h.' + c)} AS {c}" for c in METRIC_COLUMNS)
            self.conn.execute(
                f"CREATE TEMP VIEW history AS SELECT f.run_id, h.iteration, {metrics}, "
                f"f.granularity FROM read_parquet({paths}, filename = true) h "
                "JOIN files f ON h.filename = f.link")
        else:
            cols = ", ".join(f"NULL::DOUBLE AS {c}" for c in METRIC_COLUMNS)
            self.conn.execute("CREATE TEMP VIEW history AS SELECT NULL::VARCHAR AS run_id, "
                              f"NULL::BIGINT AS iteration, {cols}, NULL::VARCHAR AS "
                              "granularity WHERE false")

    def _user_tables(self) -> None:
        """The tables beside the histories a user's SQL reads (made once, on first use)."""
        tables, self._tables = (self._tables() if self._tables else {}), None
        for name, frame in tables.items():
            self.conn.register(f"_{name}", frame)
            self.conn.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _{name}")
            self.conn.unregister(f"_{name}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self._finalizer()

    # -- the analyses' questions -----------------------------------------------------
    def _ids(self, run_ids: Iterable[str]) -> list[str]:
        return [r for r in dict.fromkeys(run_ids) if r in self.links]

    def _frame(self, sql: str, params: Mapping | None = None):
        import duckdb
        import pandas as pd

        try:
            cur = self.conn.execute(sql, params or {})
            names = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(cur.fetchall(), columns=names)
        except duckdb.Error as exc:
            raise InputError(f"a history could not be read ({one_line(exc, 160)})") from None

    def intervals(self, run_ids: Iterable[str], metrics: Sequence[str] = INTERVAL_METRICS):
        """Per run and evaluation: the split metrics and the training error (and loss)
        averaged over the interval since the previous evaluation (iteration in (previous,
        this], above 0): the paper's curves; `metrics` of INTERVAL_METRICS, the rest NULL.
        One pass over the files, each row binned by its run's evaluation interval (the harness
        evaluates every eval_every iterations and at the end: bin = ceil(iteration /
        eval_every)), one query per interval length; a run whose evaluations are elsewhere
        (W&B's, a hand-made file), that holds a NaN or whose footer states no iteration range
        is binned exactly from its own rows (evaluation_rows)."""
        import pandas as pd

        bad = sorted(set(metrics) - set(INTERVAL_METRICS))
        if bad:
            raise ValueError(f"not an interval metric: {bad[0]!r}")
        ids = self._ids(run_ids)
        by_every: dict[int, list[str]] = {}
        exact = []
        for r in ids:
            f = self.files[r]
            regular = (f.every or 0) > 0
            (by_every.setdefault(f.every, []) if regular else exact).append(r)
        frames = []
        for every, group in by_every.items():
            binned, odd = self._binned(group, every, metrics)
            frames.append(binned)
            exact += odd
        frames += [self._exact(r) for r in exact]
        cols = ["run_id", "iteration", *INTERVAL_METRICS, "n_train"]
        frames = [f.reindex(columns=cols) for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame(columns=cols)
        out = pd.concat(frames, ignore_index=True)
        out["n_train"] = out["n_train"].astype("int64")
        out.loc[:, [m for m in INTERVAL_METRICS if m not in metrics]] = float("nan")
        return out.sort_values(["run_id", "iteration"], ignore_index=True)

    def _binned(self, run_ids: list[str], every: int, metrics: Sequence[str]):
        """(evaluation rows of the runs binned regularly, [runs to bin exactly])."""
        import duckdb
        import numpy as np
        import pyarrow.compute as pc

        paths = "[" + ", ".join(_quote(self.links[r]) for r in run_ids) + "]"
        ev = " OR ".join(f"{c} IS NOT NULL" for c in EVAL_COLUMNS)
        means = [m for m in metrics if m != "train_err"]
        cols = "".join(f", {m}" for m in means)
        aggs = "".join(f", avg({m}) AS {m}" for m in means)
        try:  # (FILTER clauses cost DuckDB twice the time of CASE: what bin 0 holds is fixed after)
            table = self.conn.sql(f"""
                SELECT filename, bin, max(iteration) AS hi, min(eit) AS eval_lo,
                       max(eit) AS eval_hi, avg(train_err) AS train_err,
                       count(train_err) AS n_train{aggs}
                FROM (SELECT filename, iteration, train_err{cols},
                             CASE WHEN {ev} THEN iteration END AS eit,
                             (iteration + {int(every)} - 1) // {int(every)} AS bin
                      FROM read_parquet({paths}, filename = true))
                GROUP BY filename, bin""").to_arrow_table()
        except duckdb.Error as exc:
            raise InputError(f"a history could not be read ({one_line(exc, 160)})") from None
        nan = np.zeros(table.num_rows, dtype=bool)  # NaN is a measured value, not NULL:
        for c in ("train_err", *means):  # such runs are binned exactly (it is not counted)
            nan |= pc.fill_null(pc.is_nan(table[c]), False).to_numpy(zero_copy_only=False)
        g = table.to_pandas()
        g["run_id"] = g["filename"].map({self.links[r]: r for r in run_ids})
        zero = g["bin"] == 0  # iteration 0 (an evaluation before training): no training rows
        g.loc[zero, "n_train"] = 0
        g.loc[zero, [c for c in ("train_err", "train_loss") if c in g]] = float("nan")
        last = g["bin"].where(g["eval_hi"].notna()).groupby(g["run_id"]).transform("max")
        upto = g["bin"] <= last
        off = upto & ~((g["eval_lo"] == g["hi"]) & (g["eval_hi"] == g["hi"]))
        odd = set(g.loc[off | nan, "run_id"])
        most = g["run_id"].map({r: self.files[r].most for r in run_ids})
        for run_id in set(g.loc[(g["bin"] < 0) | (g["hi"] > most), "run_id"]):
            self.rejected[run_id] = (  # rows its footer's statistics hid
                f"history.parquet holds iterations outside [0, {self.files[run_id].most}] "
                "(its footer says otherwise): not a history the harness wrote")
        odd -= set(self.rejected)
        evals = g[g["eval_hi"].notna() & ~g["run_id"].isin(odd | set(self.rejected))]
        return evals.assign(iteration=evals["eval_hi"].astype("int64")), sorted(odd)

    def _exact(self, run_id: str):
        from .evaluations import evaluation_rows

        metrics = ", ".join(f"{_valid(c)} AS {c}" for c in METRIC_COLUMNS)
        table = self.conn.sql(
            f"SELECT {_quote(run_id)} AS run_id, iteration, {metrics} FROM "
            f"read_parquet({_quote(self.links[run_id])})").to_arrow_table()
        rows = evaluation_rows(table)
        return None if rows is None else rows.to_pandas()

    def curves(self, run_ids: Iterable[str], split: str = "test",
               max_points: int = CURVE_POINTS):
        """The paper's curves of each run (Fig. 1, 4, 6): the training error averaged over
        each evaluation interval (the thin lines) and the split's error at each evaluation
        (the bold ones), at evaluations that have the split's error, at most `max_points` per
        curve (means of consecutive points). Columns run_id, kind (train | split), iteration,
        err."""
        import pandas as pd

        if f"{split}_err" not in EVAL_COLUMNS:
            raise ValueError(f"split must be one of val, test; got {split!r}")
        e = self.intervals(run_ids, ("train_err", f"{split}_err"))
        e = e[e[f"{split}_err"].notna()]
        e = e[e["run_id"].isin(set(e.loc[e["n_train"] > 0, "run_id"]))]
        train = e[e["n_train"] > 0]
        out = pd.concat([
            pd.DataFrame({"run_id": train["run_id"], "kind": "train",
                          "iteration": train["iteration"], "err": train["train_err"]}),
            pd.DataFrame({"run_id": e["run_id"], "kind": split, "iteration": e["iteration"],
                          "err": e[f"{split}_err"]})], ignore_index=True)
        return thin(out, ["run_id", "kind"], max_points, {"err": "mean"})

    def rows(self, run_ids: Iterable[str], columns: Sequence[str] | None = None,
             where: Mapping[str, Any] | None = None, max_points: int | None = None):
        """History rows, wide: run_id, iteration, granularity and the metric columns asked
        (default all) of `run_ids`, those `where` selects (resnet_ablate.analysis.where);
        max_points: at most that many rows per run, each the mean of consecutive rows (its
        iteration the last one's)."""
        from .where import clause

        cols = list(columns) if columns is not None else list(METRIC_COLUMNS)
        bad = [c for c in cols if c not in METRIC_COLUMNS]
        if bad:
            raise InputError(f"unknown history column {bad[0]!r}; allowed: "
                             f"{', '.join(METRIC_COLUMNS)}")
        sql, params = clause(where, {"iteration": "BIGINT", **{c: "DOUBLE" for c in
                                                              METRIC_COLUMNS}})
        params["ids"] = self._ids(run_ids)
        picked = "".join(f", {c}" for c in cols)
        frame = self._frame(
            f"SELECT run_id, iteration, granularity{picked} FROM history WHERE run_id IN "
            f"(SELECT unnest($ids::VARCHAR[])){' AND ' + sql if sql else ''} "
            "ORDER BY run_id, iteration", params)
        if max_points:
            frame = thin(frame, ["run_id"], max_points,
                         {"granularity": "first", **{c: "mean" for c in cols}})
        return frame

    def has(self, column: str, run_ids: Iterable[str]) -> bool:
        """Whether any of these runs' history has a value in `column`."""
        if column not in METRIC_COLUMNS:
            raise ValueError(f"not a history column: {column!r}")
        ids = self._ids(run_ids)
        return bool(ids) and bool(self.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM history WHERE {column} IS NOT NULL AND run_id IN "
            "(SELECT unnest($ids::VARCHAR[])))", {"ids": ids}).fetchone()[0])

    # -- a user's SQL ----------------------------------------------------------------
    def query(self, sql: str, max_rows: int | None = None,
              seconds: float = QUERY_SECONDS) -> tuple[list[str], list[tuple], bool]:
        """A user's SQL, one SELECT over the views runs, history and responses: (columns,
        rows, whether rows were left out past max_rows). InputError (one line) for anything
        else, for what DuckDB refuses, and for a query that runs past `seconds`."""
        import duckdb

        try:
            statements = self.conn.extract_statements(sql)
        except duckdb.Error as exc:
            raise InputError(f"sql: {one_line(exc)}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            kinds = ", ".join(s.type.name for s in statements) or "nothing"
            raise InputError(f"sql: one SELECT statement is allowed (the runs are read, never "
                             f"written); got {kinds}")
        self._user_tables()
        timer = threading.Timer(seconds, self.conn.interrupt)
        timer.start()
        try:
            cur = self.conn.execute(sql)
            names = [d[0] for d in cur.description]
            rows = cur.fetchmany(max_rows + 1) if max_rows else cur.fetchall()
        except duckdb.InterruptException:
            raise InputError(f"sql: stopped after {seconds:g} s (a query may run at most that "
                             "long)") from None
        except duckdb.Error as exc:
            raise InputError(f"sql: {one_line(exc)}") from None
        finally:
            timer.cancel()
        more = bool(max_rows) and len(rows) > max_rows
        return names, rows[:max_rows] if max_rows else rows, more


def thin(frame, keys: list[str], max_points: int, how: dict[str, str]):
    """At most `max_points` rows per group of `keys` (rows ordered by iteration): consecutive
    rows averaged into buckets, each at its last iteration."""
    if frame.empty or max_points <= 0:
        return frame
    frame = frame.sort_values([*keys, "iteration"], ignore_index=True)
    group = frame.groupby(keys, sort=False)
    n = group["iteration"].transform("size")
    if (n <= max_points).all():
        return frame
    bucket = group.cumcount() * max_points // n
    out = frame.assign(_bucket=bucket).groupby([*keys, "_bucket"], sort=False).agg(
        {"iteration": "max", **how}).reset_index()
    return out.drop(columns="_bucket")[frame.columns].sort_values(
        [*keys, "iteration"], ignore_index=True)
