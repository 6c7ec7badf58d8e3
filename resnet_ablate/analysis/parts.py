"""The store's history rows: Parquet files ("parts") in a folder beside the store file
(<store>.history/), each written once and never changed, named in the store's
history_parts table (part, run_id, rows, last_iteration: one row per run a part holds);
the store's `history` is a view over the parts that table names. part_files keeps each
part's size, mtime and CRC-32 as written: a part whose bytes changed afterwards (DuckDB
reads a flipped byte inside a page as a number, without an error) is refused, not read.

Why not a DuckDB table: storing a history row in DuckDB's own tables cost ~0.7 s of CPU
per million rows here (2 cores), Arrow's Parquet writer ~0.2: at 1,000 runs of 64,000
iterations (64 M rows) that is the 60 s budget by itself. A part written beside the store
is never copied either: an incremental collect writes only the new or changed runs' rows
(a changed run's part is rewritten without it, ~20 runs' rows).

Atomicity comes from the table, not the files: a collect writes new parts (unique names),
then names them in history_parts inside its transaction; a run replaced or gone is dropped
from its part by writing a new part without it. Until the commit the old parts stay named
and untouched, so a collect killed at any point leaves the previous store whole; parts no
table names (a killed collect's, or ones replaced) are removed by the next collect once the
process that wrote them is gone (its pid is in the name).
"""
from __future__ import annotations

import functools
import os
import stat
import uuid
import zlib
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from ..io import _fsync_dir, fsync_file

SUFFIX = ".history"  # <store>.history/: the parts folder
ROW_GROUP = 1 << 16  # ~one run a row group: a query for some runs skips the others (stats)
TABLE_DDL = "part VARCHAR, run_id VARCHAR, rows BIGINT, last_iteration BIGINT"
FILES_DDL = "part VARCHAR PRIMARY KEY, bytes BIGINT, mtime_ns BIGINT, crc32 BIGINT"
_CHUNK = 1 << 20


def folder(store: Path) -> Path:
    """The parts folder of the store at `store` (its final path: a new store written beside
    and renamed into place puts its parts here from the start)."""
    return store.with_name(store.name + SUFFIX)


def ensure(path: Path) -> None:
    """The parts folder made; InputError (one line) when something else has its name."""
    try:
        path.mkdir(exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{path} is not a folder; the store keeps its history there "
                         "(move that file away)") from None
    except OSError as exc:
        raise InputError(f"cannot make the store's history folder {path} "
                         f"({exc.strerror or exc})") from None


@functools.lru_cache(maxsize=None)
def schema(columns: tuple[tuple[str, str], ...]):
    """The parts' Arrow schema for the history's SQL columns: run_id and granularity
    dictionary-encoded (few distinct values), numbers as they are."""
    import pyarrow as pa

    kinds = {"BIGINT": pa.int64(), "DOUBLE": pa.float64()}
    return pa.schema([(c, pa.dictionary(pa.int32(), pa.string()) if t == "VARCHAR"
                       else kinds[t]) for c, t in columns])


def conform(table, columns: dict[str, str]):
    """`table` (the history's columns, any order) in the parts' schema."""
    target = schema(tuple(columns.items()))
    table = table.select(list(columns))
    return table.cast(target) if not table.schema.equals(target) else table


def identity(path: Path) -> tuple[int, int, int]:
    """A part's (bytes, mtime_ns, CRC-32) as it is now: the CRC read back in 1 MiB chunks
    (~0.6 s a GB; the pages were just written, so from the page cache)."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, _crc32(path)


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def changed(path: Path, recorded: tuple[int, int, int]) -> str | None:
    """Why the part at `path` is not the one written as `recorded` (bytes, mtime_ns,
    CRC-32), or None. The same size and mtime is taken as unchanged (a stat, microseconds);
    another mtime with the same size (a copy: `cp -r` sets new times) is checked by its
    CRC."""
    size, mtime_ns, crc = recorded
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"  # a FIFO would block the CRC's read
    if st.st_size != size:
        return f"is {st.st_size:,} bytes, written as {size:,}"
    if st.st_mtime_ns == mtime_ns:
        return None
    try:
        now = _crc32(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if now == crc else "has other bytes than were written (its CRC-32 differs)"


def write(path: Path, table, columns: dict[str, str]) -> tuple[str, list[tuple]]:
    """A new part holding `table`'s rows: (its file name, [(run_id, rows, last_iteration)]).
    Not yet durable: `sync` it before naming it in a commit."""
    import pyarrow.parquet as pq

    table = conform(table, columns).unify_dictionaries()
    name = f"part-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
    # snappy, dictionaries only where values repeat: ~0.15 s of CPU a million rows (zstd,
    # or dictionaries tried on every float column, cost 1.5-3x that for 20% less disk)
    pq.write_table(table, path / name, row_group_size=ROW_GROUP, compression="snappy",
                   use_dictionary=["run_id", "granularity", "lr"],
                   write_statistics=["run_id", "iteration"])  # what queries filter on
    stats = table.group_by("run_id").aggregate([("iteration", "count"), ("iteration", "max")])
    return name, [(r["run_id"], r["iteration_count"], r["iteration_max"])
                  for r in stats.to_pylist()]


def without(path: Path, name: str, run_ids: set[str], columns: dict[str, str]
            ) -> tuple[str, list[tuple]] | None:
    """A new part of part `name`'s rows but those of `run_ids` (None when nothing is left),
    read a row group at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    keep = []
    with pq.ParquetFile(path / name) as f:
        for batch in f.iter_batches(batch_size=ROW_GROUP):
            ids = pc.cast(batch.column("run_id"), pa.string())
            kept = batch.filter(pc.invert(pc.is_in(ids, pa.array(sorted(run_ids)))))
            if kept.num_rows:
                keep.append(kept)
    if not keep:
        return None
    return write(path, pa.Table.from_batches(keep).unify_dictionaries(), columns)


def readable(path: Path) -> bool:
    """Whether `path` is a Parquet file whose footer reads (not its pages: a part is written
    once, then only its name can go wrong)."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        return False
    return True


def sync(path: Path, names: Iterable[str]) -> None:
    """The parts' bytes and names on disk (before a commit names them)."""
    names = list(names)
    for name in names:
        fsync_file(path / name)
    if names:
        _fsync_dir(path)


def view_sql(path: Path, names: list[str], columns: dict[str, str]) -> str:
    """The history view over these parts (none: no rows), typed as the history's columns."""
    if not names:
        return "SELECT " + ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items()
                                     ) + " WHERE false"
    cells = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns.items())
    files = ", ".join("'" + str(path / n).replace("'", "''") + "'" for n in sorted(names))
    return f"SELECT {cells} FROM read_parquet([{files}])"


def collect_garbage(path: Path, named: set[str]) -> list[str]:
    """Remove the parts no table names whose writer is this process or gone (a collect
    running beside keeps its own); the names removed."""
    try:
        entries = os.listdir(path)
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not entry.startswith("part-") or entry in named:
            continue
        pid = entry.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and alive(int(pid)):
            continue
        try:
            os.unlink(path / entry)
            removed.append(entry)
        except OSError:
            pass
    return removed


def alive(pid: int) -> bool:
    """Whether a process of this id runs (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
