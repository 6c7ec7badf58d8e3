"""Runs into the store (resnet_ablate.analysis.store): local run directories and, when
online, a W&B project. What figures and tables read back is `Collected` (collected.py).

One collect is one unit: the store afterwards holds exactly the runs it named, written in
one transaction (a new store: written beside, renamed into place), so a collect that dies
leaves the previous store as it was. It is incremental: a run directory whose files are
unchanged (same inode, size, mtime and ctime of summary.json, history.csv and the probe
files) is not read again; a changed one has its rows replaced; one no longer there is
marked gone. Histories stream from CSV into Parquet parts beside the store, a batch at a
time (resnet_ablate.analysis.ingest, .parts): memory grows with the largest run, not with
the number of runs, and an update writes only the runs that changed (nothing is copied).

A run directory that cannot be collected (a summary that is not a regular file, too big,
not JSON, of the wrong types; a history that is not the harness's) is named with why and
skipped, never fatal; `resnet-ablate collect` then exits with EXIT_SKIPPED. A run without
a summary yet (running, interrupted, pending) is listed as unfinished, not an error. The
same directory named twice is one run; a copy of a run elsewhere (equal summary) counts
once, with a note; another run under a run_id already taken is skipped. The same
condition and seed twice (a rerun under another run_id) counts once, with a warning
naming both (the `counted` column).
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import InputError, MissingInput
from ..run import record
from ..run.rundir import EVAL_COLUMNS, RunDir
from . import ingest
from .collected import Collected, network_versions, one_per_seed, open_collected
from .ingest import run_row
from .store import METRIC_COLUMNS, Store, q, schema_digest, writing

EXIT_SKIPPED = 3  # collected, but some run directories were skipped (each named on stderr)
READS = ingest.READS  # files opened by collects in this process, by kind

__all__ = ["Collected", "collect", "open_collected", "one_per_seed", "network_versions",
           "run_row", "EXIT_SKIPPED", "READS", "METRIC_COLUMNS"]


# ---------------------------------------------------------------------------- what was seen
@dataclass
class Seen:
    """One run directory (or W&B run) of this collect, and what became of it."""
    source: str  # its key: the directory's real path, or wandb:ENTITY/PROJECT/ID
    path: str  # as named
    state: str = "collected"  # collected | duplicate | skipped | unfinished
    why: str = ""
    run_id: str | None = None
    digest: str | None = None  # of the summary
    summary_file: str | None = None  # the files' identities (inode:size:mtime:ctime)
    history_file: str | None = None
    probe_files: str | None = None
    summary_note: str | None = None  # warnings about its summary, history, probe files
    history_note: str | None = None
    probe_note: str | None = None
    summary: dict | None = None  # read by this collect (None: unchanged, not read)
    row: dict | None = None  # its runs row, built when the summary was read
    rundir: RunDir | None = None
    wandb: Any = None  # (run, train keys, eval keys, window) of a W&B run
    claimed_out: bool = False  # a duplicate or a taken run_id: not this source's fault
    broken: str | None = None  # the file refused (summary | history): refused again unread

    def skip(self, why: str, broken: str | None = None) -> None:
        self.state, self.why, self.broken = "skipped", why, broken


def _identity(path: Path) -> str | None:
    """A file's identity without opening it: a change of content, a rewrite (rename) or a
    copy all change it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink loop: read (and reported) like a change
        return f"error:{exc.errno}"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _probe_identities(folder: Path) -> str | None:
    try:
        names = sorted(p.name for p in folder.iterdir() if p.suffix == ".json")
    except OSError:  # none, or not a folder
        return None
    return json.dumps([[n, _identity(folder / n)] for n in names]) if names else None


def _local(root: Path, known: set[str]) -> Iterable[Seen]:
    """The run directories of a runs folder, in name order (dot-folders are bookkeeping)."""
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise InputError(f"runs directory {root} cannot be listed ({exc.strerror})") from None
    for name in names:
        path = root / name
        if name.startswith(".") or not path.is_dir():
            continue
        source = os.path.realpath(path)
        if source in known:
            continue  # the same directory, named twice: one run
        known.add(source)
        seen = Seen(source, str(path))
        try:
            seen.rundir = RunDir(root, name)
        except InputError as exc:
            seen.skip(str(exc))
            yield seen
            continue
        seen.summary_file = _identity(seen.rundir.summary_path)
        seen.history_file = _identity(seen.rundir.history_path)
        seen.probe_files = _probe_identities(seen.rundir.path / "probes")
        yield seen


def _read_summary(seen: Seen) -> None:
    rundir = seen.rundir
    ingest.READS["summary"] += 1
    try:
        summary = rundir.read_summary()
    except InputError as exc:
        return seen.skip(str(exc), "summary")
    if summary is None:
        return _unfinished(seen)
    _summary_read(seen, summary, record.digest(summary))


def _summary_read(seen: Seen, summary: dict[str, Any], digest: str) -> None:
    """A summary read: its runs row built now (a value the table cannot hold skips the run
    before anything of it is written)."""
    notes: list[str] = []
    try:
        seen.row = ingest.typed_row({**run_row(summary, seen.path, notes),
                                     "source": seen.source, "counted": True, "gone": False})
    except InputError as exc:
        return seen.skip(str(exc), "summary")
    seen.summary, seen.run_id, seen.digest = summary, summary["run_id"], digest
    seen.summary_note = "\n".join(notes) or None


def _unfinished(seen: Seen) -> None:
    if not seen.rundir.path.is_dir():
        return seen.skip("disappeared while being collected")
    seen.summary_file = None
    seen.state = "unfinished"
    seen.why = ("unfinished (checkpoints, no summary)" if seen.rundir.checkpoints()
                else "no summary.json")


def _resolve_local(seen: Seen, old: dict | None) -> None:
    """Its summary's outcome: from the store when the file is unchanged, else read."""
    if seen.state != "collected":
        return
    if seen.summary_file is None:
        return _unfinished(seen)
    if old is not None and old["summary_file"] == seen.summary_file:
        if old["broken"] == "summary" or (old["broken"] == "history" and
                                          old["history_file"] == seen.history_file):
            return seen.skip(old["why"], old["broken"])  # the same files: the same answer
        seen.run_id, seen.digest = old["run_id"], old["digest"]
        return
    _read_summary(seen)


def _wandb(path: str, group: str | None, api=None) -> list[Seen]:
    """The runs of a W&B project ("entity/project"), optionally one group: W&B's config and
    summary are projections of the record, read back into it; a run's history is read only
    when its record changed, with only the keys the store keeps. Needs a login. Training
    numbers in W&B are means over log_every iterations; their rows say so."""
    if api is None:
        import wandb

        from ..tracking import logged_in

        if not logged_in():
            raise InputError(f"collect --wandb {path}: no W&B login found (run `wandb login` or "
                             "set WANDB_API_KEY)")
        api = wandb.Api()
    if path.count("/") != 1 or not all(path.split("/")):
        raise InputError(f"--wandb must be ENTITY/PROJECT; got {path!r}")
    filters = {"group": group} if group else None
    try:
        found = list(api.runs(path, filters=filters))
    except Exception as exc:  # noqa: BLE001  a wrong project, no access, no network
        raise InputError(f"collect --wandb {path}: {type(exc).__name__}: "
                         f"{str(exc)[:160]}") from None
    out = []
    for run in found:
        seen = Seen(f"wandb:{path}/{run.id}", f"wandb:{path}/{run.id}")
        try:
            config = dict(run.config)
            logged = dict(run.summary)
            results = {k: v for k, v in logged.items() if not k.startswith("_")}
            summary = record.upgrade({**config, **results})
            summary.setdefault("run_id", run.name or run.id)
            summary.setdefault("status", "finished" if run.state == "finished" else "failed")
            record.check(summary, seen.path)
            window = int(record.flat(summary).get("settings.log_every") or
                         config.get("log_every") or 1)
            seen.wandb = (run, _logged("train", logged), _logged("eval", logged), window)
        except Exception as exc:  # noqa: BLE001  a run W&B holds in another shape
            seen.skip(f"{type(exc).__name__}: {str(exc)[:120]}")
            out.append(seen)
            continue
        _summary_read(seen, summary, record.digest([run.state, config, logged]))
        seen.summary_file = seen.history_file = seen.digest
        out.append(seen)
    return out


def _logged(kind: str, logged: dict[str, Any]) -> list[str]:
    """The history keys of one kind (train | eval) a W&B run logged, as it spelled them
    (its summary holds the last value of each; runs before 0.3 wrote train/err ...)."""
    legacy = {v: k for k, v in record.LEGACY_METRICS.items()}
    names = [c for c in METRIC_COLUMNS if (c in EVAL_COLUMNS) == (kind == "eval")]
    return [n if n in logged else legacy[n] for n in names
            if n in logged or legacy.get(n) in logged]


# ---------------------------------------------------------------------------- one collect
def collect(runs_dirs: list[Path], wandb_path: str | None = None, group: str | None = None,
            api=None, store: str | os.PathLike | None = None,
            progress: Callable[[str], None] | None = None) -> "Collected":
    """Every local runs folder and, if given, a W&B project, into `store` (a DuckDB file:
    created, or brought up to date reading only what changed; None: a temporary store,
    removed with the result). It reads data only: no plugin a record names is imported."""
    for d in runs_dirs:
        if not Path(d).is_dir():
            raise MissingInput(f"runs directory {str(d)!r} does not exist")
    temp = None
    if store is None:
        temp = Path(tempfile.mkdtemp(prefix="resnet-ablate-store-"))
        store = temp / "store.duckdb"
    try:
        with writing(store) as (db, stale):
            _update(db, [Path(d) for d in runs_dirs], wandb_path, group, api, stale,
                    progress or (lambda _: None))
        c = open_collected(store)
    except BaseException:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        raise
    if temp is not None:
        c._remove_on_close(temp)
    return c


def _update(db: Store, roots: list[Path], wandb_path, group, api, stale: bool,
            progress: Callable[[str], None]) -> list[Seen]:
    conn = db.conn
    cur = conn.execute("SELECT * FROM sources")
    names = [d[0] for d in cur.description]
    olds = {r[0]: dict(zip(names, r)) for r in cur.fetchall()}
    stored = dict(conn.execute("SELECT run_id, source FROM runs WHERE NOT gone").fetchall())
    seens: list[Seen] = []
    known: set[str] = set()
    for root in roots:
        for seen in _local(root, known):
            _resolve_local(seen, olds.get(seen.source))
            seens.append(seen)
    if wandb_path:
        seens += _wandb(wandb_path, group, api)

    # What must be (re)written: the rows the store holds from this very source stay, and
    # so do their notes.
    def intact(seen: Seen, part: str) -> bool:
        old = olds.get(seen.source)
        if not (old is not None and old["state"] == "collected" and old["run_id"] == seen.run_id
                and old[part] == getattr(seen, part)):
            return False
        note = {"digest": "summary_note", "history_file": "history_note",
                "probe_files": "probe_note"}[part]
        setattr(seen, note, old[note])
        return True

    def row_new(seen: Seen) -> bool:
        return stale or stored.get(seen.run_id) != seen.source or not intact(seen, "digest")

    # Each run_id to its first readable source: an owner whose summary or history turns out
    # broken hands it to the next source that has it (a copy), whose files are read then.
    history_new: list[Seen] = []
    while True:
        owners = _claim(seens)
        for seen in owners.values():
            if seen.summary is None and row_new(seen):  # unchanged file, new owner: read now
                _read_summary(seen)
        done = {s.source for s in history_new}
        todo = [s for s in owners.values() if s.state == "collected" and s.source not in done
                and not intact(s, "history_file")]
        _write_histories(db, todo, progress)
        history_new += todo
        if all(s.state == "collected" for s in owners.values()):
            break
    rows_new = [s for s in owners.values() if row_new(s)]
    probes_new = [s for s in owners.values() if s.rundir is not None
                  and not intact(s, "probe_files")]
    _write_runs(db, rows_new)
    _write_probes(db, probes_new)
    present = {s.run_id for s in owners.values() if s.state == "collected"}
    had = set(stored) | {o["run_id"] for o in olds.values() if o["state"] == "collected"}
    gone = sorted(had - present)
    if gone:  # rows of runs no longer there (or no longer readable): marked, data dropped
        conn.execute("UPDATE runs SET gone = true, counted = false WHERE run_id IN "
                     "(SELECT unnest($ids::VARCHAR[]))", {"ids": gone})
        for table in ("history", "evaluations", "responses", "probes"):
            db.replace(table, gone, None)
    changed = {s.run_id for s in rows_new} | {s.run_id for s in history_new
                                              if s.state == "collected"}
    _derive(db, [s for s in owners.values() if s.run_id in changed and s.state == "collected"
                 and s.rundir is not None])
    if rows_new or gone:
        _count(db)
    _write_sources(db, seens)
    db.set_meta(record_schema=schema_digest(), collected_from=json.dumps(
        [str(r) for r in roots] + ([f"wandb:{wandb_path}"] if wandb_path else [])))
    return seens


def _claim(seens: list[Seen]) -> dict[str, Seen]:
    """Each run_id to its first source in the order named (local folders, then W&B): a copy
    of it elsewhere (an equal summary) or its W&B record is a duplicate, counted once;
    another run under that run_id is skipped."""
    owners: dict[str, Seen] = {}
    for seen in seens:
        if seen.claimed_out:  # claimed again from scratch
            seen.state, seen.why, seen.claimed_out = "collected", "", False
        if seen.state != "collected":
            continue
        first = owners.get(seen.run_id)
        if first is None:
            owners[seen.run_id] = seen
            continue
        seen.claimed_out = True
        if first.digest == seen.digest or (first.wandb is None) != (seen.wandb is None):
            # a copy, or the run and its W&B record: the one named first counts
            seen.state, seen.why = "duplicate", f"the same run as {first.path}; counted once"
        else:
            seen.skip(f"run_id {seen.run_id} is already {first.path}'s (another run); kept "
                      "that one")
    return owners


# ---------------------------------------------------------------------------- writing rows
def _write_histories(db: Store, seens: list[Seen], progress: Callable[[str], None]) -> None:
    """Each run's history replaced by its file's (or W&B's) rows: a batch of files at a
    time opened and checked, parsed on threads (the next batch while this one is
    written), written here as a part of the store's history."""
    cursor = db.conn.cursor()  # DuckDB's reads (a file Arrow refused): apart from the writes
    total, done = len(seens), 0
    inflight: list[tuple[list[Seen], list, list]] = []  # (batch, open files, their parses)

    def size(seen: Seen) -> int:
        parts = (seen.history_file or "").split(":")
        return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else 0

    def write(batch: list[Seen], files: list, parses: list) -> None:
        table, failed = ingest.finish(cursor, files, [p.result() for p in parses])
        for seen in batch:
            if seen.run_id in failed:
                seen.skip(failed[seen.run_id], "history")
        ids = [s.run_id for s in batch]
        db.replace("history", ids, table)
        db.replace("evaluations", ids, ingest.evaluation_rows(table))
        db.step()

    def settle() -> None:  # the oldest batch in flight: written, its files closed
        batch, files, parses = inflight[0]
        try:
            write(batch, files, parses)
        finally:
            _close(inflight.pop(0))
        nonlocal done
        done += len(batch)
        progress(f"collect: {done}/{total} histories read")

    try:
        with ingest.pool() as threads:
            for batch in ingest.batches([s for s in seens if s.rundir is not None], size):
                files, parses = [], []
                inflight.append((batch, files, parses))
                for seen in batch:
                    try:
                        f = ingest.open_history(seen.rundir.history_path, seen.run_id,
                                                seen.rundir.path.parent)
                    except InputError as exc:
                        seen.skip(str(exc), "history")
                        continue
                    if f is not None:
                        files.append(f)
                        parses.append(threads.submit(ingest.parse, f))
                if len(inflight) > 1:  # this batch parses while the one before is written
                    settle()
            while inflight:
                settle()
    finally:
        while inflight:
            _close(inflight.pop(0))
        cursor.close()
    for seen in (s for s in seens if s.wandb is not None):
        run, train, evals, window = seen.wandb
        try:
            table = ingest.wandb_rows(seen.run_id, run, train, evals, window,
                                      record.LEGACY_METRICS)
        except Exception as exc:  # noqa: BLE001  the API failed for this run
            seen.skip(f"W&B history: {type(exc).__name__}: {str(exc)[:120]}")
            table = None
        db.replace("history", [seen.run_id], table)
        db.replace("evaluations", [seen.run_id], ingest.evaluation_rows(table))
        db.step()
        done += 1
        progress(f"collect: {done}/{total} histories read")


def _close(item: tuple[list[Seen], list, list]) -> None:
    """A batch's files closed once no thread reads them."""
    _, files, parses = item
    for p in parses:
        p.cancel()
    concurrent.futures.wait(parses)
    for f in files:
        f.close()


def _write_runs(db: Store, seens: list[Seen]) -> None:
    """The runs rows (and Fig. 7's responses) of runs whose summary is new or changed."""
    ids = [s.run_id for s in seens]
    responses = [r for s in seens for r in ingest.response_rows(s.summary)]
    db.replace("runs", ids, ingest.runs_table([s.row for s in seens]))
    db.replace("responses", ids, ingest.responses_table(responses))


def _write_probes(db: Store, seens: list[Seen]) -> None:
    """Each run's probe results (runs/<id>/probes/<name>.json); an unreadable probe file is
    a note, the run is collected without it."""
    rows = []
    for seen in seens:
        names = [n for n, _ in json.loads(seen.probe_files)] if seen.probe_files else []
        found, notes = ingest.probe_rows(seen.run_id, seen.rundir.path, names)
        rows += found
        seen.probe_note = "\n".join(f"{seen.path}: {n}" for n in notes) or None
    db.replace("probes", [s.run_id for s in seens], ingest.probes_table(rows))


def _derive(db: Store, seens: list[Seen]) -> None:
    """What a run's summary leaves to its history: the paper's training error of records
    before 0.2 (the mean train_err of the last evaluation interval), and a warning when
    the history ends before the run did."""
    if not seens:
        return
    conn = db.conn
    ids = [s.run_id for s in seens]
    old = conn.execute("SELECT count(*) FROM runs WHERE run_id IN (SELECT unnest($ids::VARCHAR[]))"
                       " AND status = 'finished' AND final_train_err_running IS NULL",
                       {"ids": ids}).fetchone()[0]
    if old:  # records before 0.2 (a scan of the history: only then)
        conn.execute(f"""
        UPDATE runs SET final_train_err = d.err, final_train_err_running = d.err FROM (
            SELECT h.run_id, avg(h.train_err) AS err FROM history h JOIN runs r USING (run_id)
            WHERE r.run_id IN (SELECT unnest($ids::VARCHAR[])) AND r.status = 'finished'
              AND r.final_train_err_running IS NULL AND h.granularity = 'iteration'
              AND h.iteration > r.iterations - r.{q('protocol_fields.eval_every')}
              AND h.iteration <= r.iterations AND h.train_err IS NOT NULL
            GROUP BY h.run_id) d WHERE runs.run_id = d.run_id""", {"ids": ids})
    last = dict(conn.execute(
        "SELECT r.run_id, coalesce(max(h.last_iteration), 0) FROM runs r LEFT JOIN "
        "history_parts h USING (run_id) WHERE r.run_id IN (SELECT unnest($ids::VARCHAR[])) "
        "GROUP BY r.run_id HAVING coalesce(max(h.last_iteration), 0) < "
        "any_value(r.iterations)", {"ids": ids}).fetchall())
    iterations = dict(conn.execute("SELECT run_id, iterations FROM runs WHERE run_id IN "
                                   "(SELECT unnest($ids::VARCHAR[]))", {"ids": ids}).fetchall())
    for seen in seens:
        seen.history_note = (f"{seen.path}: history.csv ends at iteration {last[seen.run_id]}, "
                             f"the summary says {iterations[seen.run_id]} (curves are cut "
                             "short)") if seen.run_id in last else None


def _count(db: Store) -> None:
    """`counted`: one run per condition and seed (one_per_seed) among those present."""
    runs = db.frame("SELECT run_id, condition, seed, status, finished_at FROM runs "
                    "WHERE NOT gone")
    kept = list(one_per_seed(runs)[0]["run_id"]) if len(runs) else []
    db.conn.execute("UPDATE runs SET counted = (NOT gone AND run_id IN "
                    "(SELECT unnest($ids::VARCHAR[])))", {"ids": kept})


def _write_sources(db: Store, seens: list[Seen]) -> None:
    import pyarrow as pa

    cols = db.columns("sources")
    rows = [{c: getattr(s, c) for c in cols} for s in seens]
    db.conn.execute("DELETE FROM sources")
    if rows:
        db.conn.register("_rows", pa.Table.from_pylist(rows, schema=pa.schema(
            [(c, pa.string()) for c in cols])))
        try:
            db.conn.execute("INSERT INTO sources BY NAME SELECT * FROM _rows")
        finally:
            db.conn.unregister("_rows")
