"""The store: one DuckDB file that `collect` fills and figures, tables, `compare`, the report,
`resnet-ablate sql` and notebooks (`ra.runs`, `ra.history`) read, asking for what they
need. DuckDB because it is a real embedded database: SQL, its own CSV reader, transactions,
spilling to disk, one file (benchmarks/collect_scale.py measured it against pyarrow).

Tables (a column with a dot is quoted in SQL: "protocol_fields.lr"):

  meta         key, value: the store's format, the record schema it was written under
  runs         one row per run: every column of the run record (resnet_ablate.run.record),
               typed where the schema gives a scalar type, mappings and lists as canonical
               JSON text, `shortcut` "-" for plain nets; then
                 source   the run directory (its real path) or W&B run it came from
                 counted  false when another run of the same condition and seed counts
                 gone     in an earlier collect, not in the last (its directory deleted,
                          moved out of the folders named, or now unreadable); its history,
                          responses and probes are dropped
  history      a view: run_id, iteration, the metrics wide (lr, train_loss, train_err,
               val_loss, val_err, test_loss, test_err; NaN stored as NULL), granularity:
               "iteration" (history.csv), "window:N" (W&B's training means over N
               iterations) or "evaluation" (W&B's evaluation rows); its rows are Parquet
               files beside the store (<store>.history/, resnet_ablate.analysis.parts),
               made a view by Store.open (a temporary view: the folder may move with the
               store); an in-memory store holds them in a table
  history_parts  bookkeeping: which part file holds which run's rows (rows, last iteration)
  part_files   bookkeeping: each part's bytes, mtime and CRC-32 as written; a part changed
               since (a flipped byte DuckDB would read as a number) is refused in one line
  evaluations  one row per evaluation: run_id, iteration, the split metrics (val_loss,
               val_err, test_loss, test_err) and the training error and loss averaged over
               the interval since the previous evaluation (train_err, train_loss; n_train
               rows): the paper's curves, computed once when the history is collected
  responses    Fig. 7: run_id, index, layer, std
  probes       run_id, probe, settings (a digest), result (JSON text): runs/<id>/probes/
               <name>.json, a probe's result; any probe fits without a schema change
  sources      bookkeeping: every run directory or W&B run the last collect saw, its files'
               identity (inode, size, mtime, ctime), state (collected | duplicate | skipped |
               unfinished), why, and which file was refused (broken: summary | history)

A store of a newer format, or a file that is not a store, is a one-line InputError. Writes
are atomic (resnet_ablate.analysis.collect: a new store is written beside and renamed into
place; an existing one is changed in one transaction, new history parts named in it).
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InputError, MissingInput
from ..io import _fsync_dir, fsync_file
from ..run import record
from ..run.rundir import EVAL_COLUMNS, HISTORY_COLUMNS
from . import parts

# The store's layout (2: evaluations a table, not a view; 3: history in Parquet parts; 4:
# each part's size, mtime and CRC-32 kept); a store of a higher number is refused, a lower
# one rebuilt.
FORMAT = 4
MEMORY_LIMIT = "256MB"  # DuckDB's buffer pool; beyond it spills to <store>.tmp/ (RSS < 1 GB)
CURVE_POINTS = 2000  # a figure's resolution: at most this many points per curve
METRIC_COLUMNS = HISTORY_COLUMNS[1:] + EVAL_COLUMNS  # the history's metrics, by their names
HISTORY_TYPES = {"iteration": "BIGINT", **{c: "DOUBLE" for c in METRIC_COLUMNS}}
STORE_COLUMNS = {"source": "VARCHAR", "counted": "BOOLEAN", "gone": "BOOLEAN"}
_SQL_TYPES = {int: "BIGINT", float: "DOUBLE", str: "VARCHAR", bool: "BOOLEAN"}
# The run columns analyses read as numbers (pandas' nullable Int64, float64).
INT_COLUMNS = ("depth", "seed", "iterations", "params", "macs")
FLOAT_COLUMNS = ("final_train_err", "final_train_err_running", "final_train_err_eval",
                 "final_val_err", "final_test_err", "final_test_top5_err", "best_val_err")
_MAGIC = b"DUCK"  # a DuckDB file says so at byte 8


def q(name: str) -> str:
    """A column name quoted for SQL ("protocol_fields.lr")."""
    return '"' + name.replace('"', '""') + '"'


def sql_type(tp: Any) -> str:
    """The DuckDB type of a record key: its scalar type (None aside), else JSON text."""
    types_ = [t for t in (tp if isinstance(tp, tuple) else (tp,)) if t not in (None, type(None))]
    return _SQL_TYPES.get(types_[0], "VARCHAR") if len(types_) == 1 else "VARCHAR"


def run_columns() -> dict[str, str]:
    """The runs table: every record column by its dotted path, typed, then the store's."""
    return dict(_run_columns(record.keys()))


@functools.lru_cache(maxsize=4)
def _run_columns(keys: tuple) -> tuple[tuple[str, str], ...]:
    cols = {k.column: sql_type(k.type) for k in keys}
    assert not set(cols) & set(STORE_COLUMNS), "the store's columns are not record columns"
    return tuple({**cols, **STORE_COLUMNS}.items())


def schema_digest() -> str:
    """Changes when the record schema does: the runs table is then rebuilt from the
    summaries (histories are kept)."""
    return record.digest(list(run_columns().items()))


HISTORY_COLUMNS_SQL = {"run_id": "VARCHAR", **HISTORY_TYPES, "granularity": "VARCHAR"}
EVALUATION_COLUMNS_SQL = {"run_id": "VARCHAR", "iteration": "BIGINT",
                          **{c: "DOUBLE" for c in EVAL_COLUMNS}, "train_err": "DOUBLE",
                          "train_loss": "DOUBLE", "n_train": "BIGINT"}
_TABLES = {
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR",
    "history_parts": parts.TABLE_DDL,
    "part_files": parts.FILES_DDL,
    "evaluations": ", ".join(f"{q(c)} {t}" for c, t in EVALUATION_COLUMNS_SQL.items()),
    "responses": 'run_id VARCHAR, "index" BIGINT, layer VARCHAR, std DOUBLE',
    "probes": "run_id VARCHAR, probe VARCHAR, settings VARCHAR, result VARCHAR",
    "sources": ("source VARCHAR PRIMARY KEY, path VARCHAR, run_id VARCHAR, state VARCHAR, "
                "why VARCHAR, digest VARCHAR, summary_file VARCHAR, history_file VARCHAR, "
                "probe_files VARCHAR, summary_note VARCHAR, history_note VARCHAR, "
                "probe_note VARCHAR, broken VARCHAR"),
}


def _runs_ddl() -> str:
    cols = ", ".join(f"{q(c)} {t}" for c, t in run_columns().items())
    return f"CREATE TABLE runs ({cols}, PRIMARY KEY (run_id))"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A DuckDB (or any) error as one printable line: its first line and the line that says
    what was expected (DuckDB's CSV errors), never the offending bytes."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    keep = lines[:1] + [ln for ln in lines[1:] if ln.startswith(("Expected Number",
                                                                 "Error when converting"))]
    text = "; ".join(keep) or type(exc).__name__
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _connect(path: str, read_only: bool):
    import duckdb

    config = {"memory_limit": MEMORY_LIMIT}
    try:
        conn = duckdb.connect(path, read_only=read_only, config=config)
        conn.execute("SET enable_progress_bar = false")  # its bar would garble our output
        return conn
    except duckdb.Error as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise InputError(f"store {path} is in use by another process (a collect still "
                             "running?); try again when it ends") from None
        raise InputError(f"{path} is not a readable resnet-ablate store "
                         f"({one_line(exc, 120)})") from None


def check_path(path: Path, must_exist: bool) -> bool:
    """Whether `path` holds a store; InputError (one line) when it names something else
    (a folder, a FIFO, a file that is not a DuckDB database): nothing there is touched."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if must_exist:
            raise MissingInput(f"store {str(path)!r} does not exist (make one with "
                               "`resnet-ablate collect --out FILE`)") from None
        if path.parent.exists() and not path.parent.is_dir():
            raise InputError(f"{path.parent} is not a folder; cannot put a store in it")
        return False
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a folder; a store is one file (e.g. "
                         f"{path / 'store.duckdb'})")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file; a store is a DuckDB file")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise InputError(f"store {path} cannot be read ({exc.strerror or exc})") from None
    if head[8:12] != _MAGIC:
        raise InputError(f"{path} is not a resnet-ablate store (not a DuckDB database); "
                         "name a new file or a store `collect` wrote")
    return True


class Store:
    """An open store: a DuckDB connection and the queries analyses ask. `home`: where the
    store is (or will be, once renamed into place): its history parts are beside it."""

    def __init__(self, conn, path: Path | None, home: Path | None = None) -> None:
        self.conn, self.path = conn, path
        self.fresh = False  # a new store not yet renamed into place (see `writing`)
        home = home or path
        self.parts_dir = parts.folder(home) if home is not None else None
        self.written: list[str] = []  # parts this connection wrote (removed if it fails)
        self.checked: set[str] = set()  # parts found as written (or written) by this one
        self.retimed: list[tuple[int, str]] = []  # (mtime_ns, part): a copy's new times

    def step(self) -> None:
        """A point where a fresh store commits what it has so far: no one sees it before
        it is renamed into place, so its one transaction is not needed for atomicity, and
        committing bounds DuckDB's memory (an open transaction holds its rows: ~2x RSS at
        100 runs of 64,000 iterations). An existing store keeps its one transaction."""
        if self.fresh:
            self.conn.execute("COMMIT")
            self.conn.execute("BEGIN TRANSACTION")

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, write: bool = False, view: bool = True) -> "Store":
        """An existing store; InputError when it is not one, or of a newer format.
        view=False: without the history view (a collect checks its parts first)."""
        path = Path(path)
        check_path(path, must_exist=True)
        store = cls(_connect(str(path), read_only=not write), path)
        try:
            if store.format() >= 3 and view:  # older layouts hold a history table
                store.refresh_history()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(cls, path: str | os.PathLike | None, home: Path | None = None) -> "Store":
        """A new, empty store (None: in memory, its history a table); `home`: the path it
        will be renamed to (its parts go beside that)."""
        conn = _connect(str(path) if path is not None else ":memory:", read_only=False)
        store = cls(conn, Path(path) if path is not None else None, home)
        for name, cols in _TABLES.items():
            conn.execute(f"CREATE TABLE {name} ({cols})")
        conn.execute(_runs_ddl())
        if store.parts_dir is None:
            conn.execute("CREATE TABLE history (" + ", ".join(
                f"{q(c)} {t}" for c, t in HISTORY_COLUMNS_SQL.items()) + ")")
        else:
            parts.ensure(store.parts_dir)
            store.refresh_history()
        store.set_meta(format=str(FORMAT), record_schema=schema_digest())
        return store

    def format(self) -> int:
        """The store's format number, checked: a newer one, or no meta table, refused."""
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except Exception:  # noqa: BLE001  duckdb.CatalogException: a DuckDB file, not ours
            raise InputError(f"{self.path} is a DuckDB database but not a resnet-ablate store "
                             "(no meta table)") from None
        fmt = int(row[0]) if row and str(row[0]).isdigit() else None
        if fmt is None:
            raise InputError(f"{self.path}: the store's format is unreadable")
        if fmt > FORMAT:
            raise InputError(f"{self.path} was written by a newer resnet-ablate (store format "
                             f"{fmt}; this one reads up to {FORMAT}): upgrade, or collect "
                             "into a new file")
        return fmt

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, **values: str) -> None:
        for key, value in values.items():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def rebuild_runs(self) -> None:
        """The runs table under this version's record schema (its rows are re-read)."""
        self.conn.execute("DROP TABLE runs")
        self.conn.execute(_runs_ddl())
        self.set_meta(record_schema=schema_digest())

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- writing rows --------------------------------------------------------------
    def replace(self, table: str, run_ids: list[str], rows) -> None:
        """`table`'s rows of these runs replaced by `rows` (an Arrow table, or None)."""
        if table == "history" and self.parts_dir is not None:
            return self.replace_history(run_ids, rows)
        if run_ids:
            self.conn.execute(f"DELETE FROM {table} WHERE run_id IN "
                              "(SELECT unnest($ids::VARCHAR[]))", {"ids": list(run_ids)})
        if rows is not None and rows.num_rows:
            self.conn.register("_rows", rows)
            try:
                self.conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
            finally:
                self.conn.unregister("_rows")

    # -- history parts (resnet_ablate.analysis.parts) --------------------------------
    def named_parts(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT part FROM history_parts ORDER BY part").fetchall()]

    def parts_unreadable(self) -> list[str]:
        """The parts the store names that are not in its folder, not Parquet files (their
        footers are read: ~1 ms a part) or changed since written. The new times of parts
        whose CRC still matches (a copied store) go to `retimed`, for the collect's
        transaction to record (the next check is a stat again)."""
        recorded = self._part_files()
        bad, self.retimed = [], []
        for n in self.named_parts():
            path = self.parts_dir / n
            why = parts.changed(path, recorded[n]) if n in recorded else None
            if why is not None or not parts.readable(path):
                bad.append(n)
                continue
            self.checked.add(n)
            if n in recorded and (now := os.stat(path).st_mtime_ns) != recorded[n][1]:
                self.retimed.append((now, n))
        return bad

    def record_times(self) -> None:
        """The `retimed` parts' new times, in the open transaction (a full disk fails the
        collect in one line, like any of its writes)."""
        if self.retimed:
            self.conn.executemany("UPDATE part_files SET mtime_ns = ? WHERE part = ?",
                                  self.retimed)

    def _part_files(self, names: list[str] | None = None) -> dict[str, tuple[int, int, int]]:
        """Each part's (bytes, mtime_ns, CRC-32) as written (of `names`, or all); {} for a
        store of format 3, which kept none (read as it is; a collect rebuilds it)."""
        if self.format() < 4:
            return {}
        sql = "SELECT part, bytes, mtime_ns, crc32 FROM part_files"
        rows = (self.conn.execute(sql + " WHERE part IN (SELECT unnest($n::VARCHAR[]))",
                                  {"n": names}) if names is not None else self.conn.execute(sql))
        return {r[0]: tuple(r[1:]) for r in rows.fetchall()}

    def refresh_history(self) -> None:
        """This connection's history view over the parts the store names now; InputError
        (one line) when they are not there (a store moved without its folder) or one was
        changed since it was written (its bytes would be read as numbers)."""
        import duckdb

        named = self.named_parts()
        new = [n for n in named if n not in self.checked]
        recorded = self._part_files(new) if new else {}
        for n in new:  # each part once per connection: parts never change once written
            path = self.parts_dir / n
            why = parts.changed(path, recorded[n]) if n in recorded else None
            if why is not None and os.path.lexists(path):  # missing: the view names the folder
                raise InputError(f"{self.path}: history part {n} {why}; collect again (it "
                                 "rebuilds the store)")
            if why is None:
                self.checked.add(n)
        try:
            self.conn.execute("CREATE OR REPLACE TEMP VIEW history AS " + parts.view_sql(
                self.parts_dir, named, HISTORY_COLUMNS_SQL))
        except duckdb.Error as exc:
            raise InputError(f"{self.path}: its history ({self.parts_dir}) cannot be read "
                             f"({one_line(exc, 120)}); keep the folder beside the store, "
                             "or collect again") from None

    def replace_history(self, run_ids: list[str], rows) -> None:
        """These runs' history rows replaced by `rows` (an Arrow table of the history's
        columns, or None): dropped from the parts that hold them, written as a new part."""
        self.drop_history(run_ids, refresh=False)
        if rows is not None and rows.num_rows:
            self._name(*parts.write(self.parts_dir, rows, HISTORY_COLUMNS_SQL))
        self.refresh_history()

    def drop_history(self, run_ids: list[str], refresh: bool = True) -> None:
        """These runs' rows out of the history: each part holding one is replaced by a part
        without them (or by none); the old files stay until the commit names the new."""
        if self.parts_dir is None:
            return self.replace("history", run_ids, None)
        if not run_ids:
            return
        hit = self.conn.execute(
            "SELECT part, bool_and(run_id IN (SELECT unnest($ids::VARCHAR[]))) FROM "
            "history_parts WHERE part IN (SELECT part FROM history_parts WHERE run_id IN "
            "(SELECT unnest($ids::VARCHAR[]))) GROUP BY part ORDER BY part",
            {"ids": list(run_ids)}).fetchall()
        for part, all_dropped in hit:
            left = None if all_dropped else parts.without(self.parts_dir, part, set(run_ids),
                                                          HISTORY_COLUMNS_SQL)
            self.conn.execute("DELETE FROM history_parts WHERE part = ?", [part])
            self.conn.execute("DELETE FROM part_files WHERE part = ?", [part])
            if left is not None:
                self._name(*left)
        if hit and refresh:
            self.refresh_history()

    def _name(self, part: str, runs: list[tuple]) -> None:
        self.written.append(part)
        self.conn.executemany("INSERT INTO history_parts VALUES (?, ?, ?, ?)",
                              [(part, *r) for r in runs])
        self.conn.execute("INSERT INTO part_files VALUES (?, ?, ?, ?)",
                          [part, *parts.identity(self.parts_dir / part)])
        self.checked.add(part)

    # -- reading -------------------------------------------------------------------
    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall()]

    def frame(self, sql: str, params: Sequence | Mapping | None = None):
        """A query's rows as a DataFrame built from Python values, as pandas infers them."""
        import pandas as pd

        import duckdb

        try:
            cur = self.conn.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        except duckdb.Error as exc:
            if self.parts_dir is None or str(self.parts_dir) not in str(exc):
                raise
            raise InputError(f"{self.path}: a history part cannot be read ({one_line(exc, 160)})"
                             "; collect again (it rebuilds the store)") from None
        return pd.DataFrame.from_records(rows, columns=names)

    def runs(self, all: bool = False, where: str | Mapping | None = None):  # noqa: A002
        """The runs table: by default the runs that count (present, one per condition and
        seed); all=True: every row, gone and duplicates included (see `counted`, `gone`)."""
        import pandas as pd

        clause, params = _where(where, set(self.columns("runs")))
        filters = ([] if all else ["counted", "NOT gone"]) + ([clause] if clause else [])
        sql = "SELECT * FROM runs r" + (" WHERE " + " AND ".join(f"({f})" for f in filters)
                                      if filters else "") + " ORDER BY run_id"
        frame = self.frame(sql, params)
        for col in run_columns():  # a store of an older record schema lacks new columns
            if col not in frame.columns:
                frame[col] = None
        for col in INT_COLUMNS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
        for col in FLOAT_COLUMNS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        return frame

    def history(self, run_ids: Iterable[str] | None = None, columns: Sequence[str] | None = None,
                where: str | Mapping | None = None, max_points: int | None = None):
        """History rows, wide: run_id, iteration, granularity and the metric columns asked
        (default all) of the runs that count, optionally only `run_ids` and those `where`
        selects (SQL on the runs and history columns, or a mapping column -> value or list);
        max_points: at most that many rows per run, each the mean of consecutive rows (its
        iteration the last one's), computed in the database."""
        cols = list(columns) if columns is not None else list(METRIC_COLUMNS)
        bad = [c for c in cols if c not in METRIC_COLUMNS]
        if bad:
            raise InputError(f"unknown history column {bad[0]!r}; allowed: "
                             f"{', '.join(METRIC_COLUMNS)}")
        clause, params = _where(where, set(self.columns("runs")) | set(HISTORY_COLUMNS_SQL))
        join = run_ids is None or bool(clause)  # the runs table: which count, what `where` asks
        filters = (["r.counted", "NOT r.gone"] if join else []) + ([clause] if clause else [])
        if run_ids is not None:
            filters.append("h.run_id IN (SELECT unnest($ids::VARCHAR[]))")
            params["ids"] = list(run_ids)
        picked = ", ".join(f"h.{q(c)}" for c in cols)
        base = (f"SELECT h.run_id, h.iteration, h.granularity{', ' if cols else ''}{picked} "
                f"FROM history h{' JOIN runs r USING (run_id)' if join else ''}"
                + (" WHERE " + " AND ".join(f"({f})" for f in filters) if filters else ""))
        if max_points:
            means = "".join(f", avg({q(c)}) AS {q(c)}" for c in cols)
            base = (f"SELECT run_id, max(iteration) AS iteration, any_value(granularity) AS "
                    f"granularity{means} FROM ({_bucketed(base, 'run_id', max_points)}) "
                    "GROUP BY run_id, _bucket")
        return self.frame(f"SELECT * FROM ({base}) ORDER BY run_id, iteration", params)

    def curves(self, run_ids: Iterable[str], split: str = "test",
               max_points: int = CURVE_POINTS):
        """The paper's curves of each run (Fig. 1, 4, 6), from the evaluations table: the
        training error averaged over each evaluation interval (iteration in (previous
        evaluation, this one]; the thin lines) and the split's error at each evaluation (the
        bold ones), at most `max_points` per curve (means of consecutive points, in the
        database). Columns run_id, kind (train | split), iteration, err."""
        if f"{split}_err" not in EVAL_COLUMNS:
            raise ValueError(f"split must be one of val, test; got {split!r}")
        sql = f"""
            WITH e AS (SELECT * FROM evaluations WHERE {split}_err IS NOT NULL
                       AND run_id IN (SELECT unnest($ids::VARCHAR[]))
                       AND run_id IN (SELECT run_id FROM evaluations WHERE n_train > 0)),
            curve AS (SELECT run_id, 'train' AS kind, iteration, train_err AS err FROM e
                      WHERE n_train > 0
                      UNION ALL SELECT run_id, $split AS kind, iteration, {split}_err FROM e)
            SELECT run_id, kind, max(iteration) AS iteration, avg(err) AS err
            FROM ({_bucketed('SELECT * FROM curve', 'run_id, kind', max_points)})
            GROUP BY run_id, kind, _bucket ORDER BY run_id, kind, iteration"""
        return self.frame(sql, {"ids": list(run_ids), "split": split})

    def responses(self, run_ids: Iterable[str]):
        return self.frame('SELECT run_id, "index", layer, std FROM responses WHERE run_id IN '
                          '(SELECT unnest($ids::VARCHAR[])) ORDER BY run_id, "index"',
                          {"ids": list(run_ids)})

    def probes(self, run_ids: Iterable[str]):
        return self.frame("SELECT * FROM probes WHERE run_id IN (SELECT unnest($ids::VARCHAR[]))"
                          " ORDER BY run_id, probe", {"ids": list(run_ids)})

    def has(self, column: str, run_ids: Iterable[str]) -> bool:
        """Whether any of these runs' history has a value in `column` (a split's: asked of
        the evaluations table, the rows that have one)."""
        if column not in METRIC_COLUMNS:
            raise ValueError(f"not a history column: {column!r}")
        table = "evaluations" if column in EVAL_COLUMNS else "history"
        return self.conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {q(column)} IS NOT NULL AND run_id "
            "IN (SELECT unnest($ids::VARCHAR[])))", {"ids": list(run_ids)}).fetchone()[0]

    def sources(self):
        return self.frame("SELECT * FROM sources ORDER BY path")

    def query(self, sql: str, max_rows: int | None = None) -> tuple[list[str], list[tuple], int]:
        """A user's SQL: (columns, rows, rows left out past max_rows); InputError in one
        line for what DuckDB refuses."""
        import duckdb

        try:
            cur = self.conn.execute(sql)
            if cur.description is None:
                return [], [], 0
            names = [d[0] for d in cur.description]
            rows = cur.fetchmany(max_rows + 1) if max_rows else cur.fetchall()
        except duckdb.Error as exc:
            raise InputError(f"sql: {one_line(exc)}") from None
        more = 0
        if max_rows and len(rows) > max_rows:
            rows = rows[:max_rows]
            more = sum(len(b) for b in iter(lambda: cur.fetchmany(100_000), [])) + 1
        return names, rows, more


def _bucketed(sql: str, partition: str, n: int) -> str:
    """`sql`'s rows numbered into at most n consecutive buckets per partition (by iteration):
    a curve thinned to a figure's resolution in the database."""
    return (f"SELECT *, (row_number() OVER (PARTITION BY {partition} ORDER BY iteration) - 1)"
            f" * {int(n)} // count(*) OVER (PARTITION BY {partition}) AS _bucket FROM ({sql})")


def _where(where: str | Mapping | None, known: set[str]) -> tuple[str, dict[str, Any]]:
    """A filter as SQL and its parameters: SQL text as it is (the caller's own store, opened
    read-only), or a mapping column -> value (or list of values) over known columns."""
    if where is None or where == "":
        return "", {}
    if isinstance(where, str):
        return where, {}
    parts, params = [], {}
    for i, (column, value) in enumerate(where.items()):
        if column not in known:
            raise InputError(f"unknown column {column!r} in where")
        ref = f"r.{q(column)}" if column in run_columns() else f"h.{q(column)}"
        if isinstance(value, (list, tuple, set)):
            parts.append(f"{ref} IN (SELECT unnest(${'w%d' % i}))")
            params[f"w{i}"] = list(value)
        elif value is None:
            parts.append(f"{ref} IS NULL")
        else:
            parts.append(f"{ref} = ${'w%d' % i}")
            params[f"w{i}"] = value
    return " AND ".join(parts), params


# ---------------------------------------------------------------------------- notebooks
def runs(store: str | os.PathLike, all: bool = False,  # noqa: A002
         where: str | Mapping | None = None):
    """`ra.runs(store)`: the runs table as a pandas DataFrame, the runs that count (one per
    condition and seed, none gone); all=True: every row. `where`: SQL over its columns
    ('depth = 56 AND "protocol_fields.lr" = 0.1') or {column: value or [values]}."""
    store = Store.open(store)
    try:
        return store.runs(all=all, where=where)
    finally:
        store.close()


def history(store: str | os.PathLike, where: str | Mapping | None = None,
            columns: Sequence[str] | None = None, max_points: int | None = None):
    """`ra.history(store, where=..., columns=..., max_points=...)`: the history rows of the
    runs that count, wide (run_id, iteration, granularity, the metrics asked), those `where`
    selects (SQL over the runs' and history's columns, e.g. "model = 'resnet56-A' AND
    iteration > 32000", or {column: value or [values]}), each run thinned in the database to
    at most `max_points` rows (means of consecutive rows)."""
    store = Store.open(store)
    try:
        return store.history(columns=columns, where=where, max_points=max_points)
    finally:
        store.close()



# ---------------------------------------------------------------------------- writing
@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """A store to change as one unit: yields (store, stale) inside an open transaction,
    committed when the block ends; when it raises, or the process is killed, nothing of it
    is kept. stale: the runs table was rebuilt for a new record schema (re-read every
    summary). An existing store is changed in place in one DuckDB transaction (DuckDB's
    write-ahead log makes the commit atomic: a killed collect leaves the previous store;
    the history parts it wrote are named only by that commit, the ones it replaced are
    removed after it); a new one, or one of an older format, is written beside `path`
    (committed batch by batch, Store.step: bounded memory) and renamed into place (a
    half-written store never appears there). Nothing is copied: an update writes only what
    changed."""
    path = Path(path)
    exists = check_path(path, must_exist=False)
    store = Store.open(path, write=True, view=False) if exists else None
    if store is not None and (store.format() < FORMAT or store.parts_unreadable()):
        store.close()  # an older layout, or its history folder gone or broken: rebuilt whole
        store = None
    if store is not None:
        try:
            parts.ensure(store.parts_dir)
            store.refresh_history()
            store.conn.execute("BEGIN TRANSACTION")
            store.record_times()
            stale = store.meta("record_schema") != schema_digest()
            if stale:
                store.rebuild_runs()
            yield store, stale
            parts.sync(store.parts_dir, store.written)
            store.conn.execute("COMMIT")
        except BaseException as exc:
            _rollback(store)
            _forget_written(store)
            store.close()
            _cannot_write(exc, path, "the previous store is as it was")
            raise
        else:
            if _checkpoint(store):
                parts.collect_garbage(store.parts_dir, set(store.named_parts()))
            store.close()
        return
    folder, name = path.parent, path.name
    folder.mkdir(parents=True, exist_ok=True)
    parts.ensure(parts.folder(path))  # before anything is written
    _clean_stale(folder, name)
    tmp = folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    store = Store.create(tmp, home=path)
    store.fresh = True
    try:
        store.conn.execute("BEGIN TRANSACTION")
        yield store, False
        store.conn.execute("COMMIT")
        store.conn.execute("CHECKPOINT")
        named = set(store.named_parts())
        store.close()
        if Path(f"{tmp}.wal").exists():  # CHECKPOINT folds the log into the file
            raise RuntimeError(f"{tmp}.wal left after a checkpoint")
        parts.sync(store.parts_dir, store.written)
        fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException as exc:
        _rollback(store)
        store.close()
        remove(tmp)
        _forget_written(store)
        _cannot_write(exc, path, "nothing was written")
        raise
    parts.collect_garbage(store.parts_dir, named)  # an older store's, killed collects'


def _forget_written(store: Store) -> None:
    """The parts a failed write made: no committed store names them."""
    for name in store.written:
        with contextlib.suppress(OSError):
            os.unlink(store.parts_dir / name)
    store.written.clear()


def _cannot_write(exc: BaseException, path: Path, outcome: str) -> None:
    """A write that failed for want of space or rights: one line (InputError), not a
    traceback."""
    import duckdb

    if isinstance(exc, (OSError, duckdb.IOException)) or "No space" in str(exc) or \
            "File too large" in str(exc):
        raise InputError(f"cannot write the store {path} ({one_line(exc, 120)}); "
                         f"{outcome}") from None


def _checkpoint(store: Store) -> bool:
    """The log folded into the file; if that fails (a full disk), the committed collect is
    safe in the log and the next open folds it in (and the next collect removes the parts
    this one replaced)."""
    import duckdb

    try:
        store.conn.execute("CHECKPOINT")
    except duckdb.Error:
        return False
    return True


def _rollback(store: Store) -> None:
    try:
        if store.conn is not None:
            store.conn.execute("ROLLBACK")
    except Exception:  # noqa: BLE001  no transaction left to roll back
        pass


def remove(path: Path) -> None:
    """A store file and what DuckDB keeps beside it (its log, its spill folder)."""
    for p in (Path(path), Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(f"{path}.tmp", ignore_errors=True)


def _clean_stale(folder: Path, name: str) -> None:
    """Temporary stores of collects that were killed (their process is gone)."""
    for p in folder.glob(f".{name}.*.tmp"):
        if p.name.endswith(".tmp.tmp"):
            continue  # DuckDB's spill folder of one: removed with it
        pid = p.name[len(name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not parts.alive(int(pid)):
            remove(p)
