"""The store collect fills (DuckDB): its tables and types, incremental collects that read
only what changed (counted), a full re-collect equal to the incremental store, a collect
killed mid-write (SIGKILL) or out of disk that leaves the previous store, hostile run
directories named and skipped in one line each, the SQL command and the notebook API."""
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import resnet_ablate as ra
from conftest import assert_usage_error, run_python
from resnet_ablate.analysis import collect as C
from resnet_ablate.analysis import parts
from resnet_ablate.analysis.collect import EXIT_SKIPPED, collect
from resnet_ablate.analysis.store import FORMAT, Store
from resnet_ablate.errors import InputError
from synthetic import history, make_runs, summary, write_run


@pytest.fixture
def reads():
    C.READS.clear()
    yield C.READS
    C.READS.clear()


def _named_parts(store):
    db = Store.open(store)
    try:
        return set(db.named_parts())
    finally:
        db.close()


def _parts_on_disk(store):
    return set(os.listdir(parts.folder(Path(store))))


def _history_sum(store):
    """(rows, sum of train_err, sum of test_err), the sums exactly rounded (math.fsum):
    DuckDB's own sum adds in the order its threads read the parts, so its last digits vary
    from one query to the next."""
    db = Store.open(store)
    try:
        rows = db.conn.execute("SELECT train_err, test_err FROM history").fetchall()
    finally:
        db.close()
    return (len(rows), math.fsum(r[0] for r in rows if r[0] is not None),
            math.fsum(r[1] for r in rows if r[1] is not None))


def test_tables_columns_and_types(tmp_path):
    runs = tmp_path / "runs"
    make_runs(runs, 4)
    c = collect([runs], store=tmp_path / "s.duckdb")
    db = Store.open(tmp_path / "s.duckdb")
    types = dict(db.conn.execute("SELECT column_name, data_type FROM information_schema.columns"
                                 " WHERE table_name = 'runs'").fetchall())
    assert types["depth"] == "BIGINT" and types["protocol_fields.lr"] == "DOUBLE"
    assert types["run.amp"] == "VARCHAR" and types["run.channels_last"] == "BOOLEAN"
    assert types["final_test_err"] == "DOUBLE" and types["gone"] == "BOOLEAN"
    assert types["data.split_sizes"] == "VARCHAR"  # a mapping: canonical JSON text
    row = db.conn.execute('SELECT "data.split_sizes", "protocol_fields.lr", shortcut FROM runs '
                          "WHERE model = 'plain20'").fetchone()
    assert json.loads(row[0]) == {"test": 10000, "train": 50000} and row[1] == 0.1
    assert row[2] == "-"  # a plain net has no shortcut
    htypes = dict(db.conn.execute("SELECT column_name, data_type FROM information_schema.columns"
                                  " WHERE table_name = 'history'").fetchall())
    assert htypes["iteration"] == "BIGINT" and htypes["test_err"] == "DOUBLE"
    # 30 iterations a run, evaluations at 10, 20, 30: the evaluations table holds those
    assert db.conn.execute("SELECT count(*) FROM history").fetchone()[0] == 4 * 30
    assert db.conn.execute("SELECT count(*) FROM evaluations").fetchone()[0] == 4 * 3
    assert db.meta("format") == str(FORMAT)
    assert db.conn.execute("SELECT count(*) FROM responses").fetchone()[0] == 4 * 3
    db.close()
    assert len(c.runs) == 4 and c.runs["depth"].dtype == "Int64"


def test_nan_in_a_history_is_null_and_a_nan_loss_run_is_collected(tmp_path):
    runs = tmp_path / "runs"
    h = history(30, 10)
    h.train_loss[5] = float("nan")
    write_run(runs, "r", history_text=h.to_csv())
    assert "nan" in (runs / "r" / "history.csv").read_text()
    collect([runs], store=tmp_path / "s.duckdb")
    frame = ra.history(tmp_path / "s.duckdb", columns=["train_loss"])
    assert frame["train_loss"].isna().sum() == 1 and len(frame) == 30


def test_incremental_collect_reads_only_the_new_run(tmp_path, reads):
    """250 runs in the store; one more: its two files are the only ones opened. (The count
    is not the point: 1,000 x 64,000 is benchmarks/collect_scale.py's.)"""
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 250, iterations=5, eval_every=5)
    collect([runs], store=store)
    assert reads == {"summary": 250, "history": 250}
    reads.clear()
    make_runs(runs, 1, start=250, iterations=5, eval_every=5)
    c = collect([runs], store=store)
    assert dict(reads) == {"summary": 1, "history": 1}
    assert len(c.runs) == 251 and "run-00250" in set(c.runs["run_id"])
    reads.clear()
    collect([runs], store=store)  # nothing changed: nothing read
    assert dict(reads) == {}


def test_a_changed_run_replaces_its_rows_and_a_deleted_one_is_gone(tmp_path, reads):
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 6)
    collect([runs], store=store)
    reads.clear()
    new = history(30, 10, seed=99)
    (runs / "run-00002" / "history.csv").write_text(new.to_csv())  # a rerun's history
    shutil.rmtree(runs / "run-00004")
    c = collect([runs], store=store)
    assert dict(reads) == {"history": 1}  # its summary is the same file: not read
    h = ra.history(store, where={"run_id": "run-00002"}, columns=["train_err"])
    assert h["train_err"].tolist() == pytest.approx(new.train_err)
    every = ra.runs(store, all=True).set_index("run_id")
    assert bool(every.loc["run-00004", "gone"]) and not bool(every.loc["run-00004", "counted"])
    assert "run-00004" not in set(c.runs["run_id"]) and len(c.runs) == 5
    assert ra.history(store, where={"run_id": "run-00004"}).empty  # its rows dropped


def test_history_parts_are_written_once_and_replaced_whole(tmp_path):
    """A changed or deleted run's part is replaced by a new part without it (the others'
    rows carried over), never changed in place; the folder holds what the store names."""
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 6)
    collect([runs], store=store)
    (first,) = _named_parts(store)  # one batch: one part
    stat = os.stat(parts.folder(store) / first)
    make_runs(runs, 2, start=6)
    collect([runs], store=store)  # new runs: a part of their own, the first one as it was
    assert first in _named_parts(store) and len(_named_parts(store)) == 2
    assert os.stat(parts.folder(store) / first).st_mtime_ns == stat.st_mtime_ns
    new = history(30, 10, seed=7)
    (runs / "run-00001" / "history.csv").write_text(new.to_csv())
    shutil.rmtree(runs / "run-00002")
    collect([runs], store=store)
    assert first not in _named_parts(store) and _parts_on_disk(store) == _named_parts(store)
    db = Store.open(store)
    counts = dict(db.conn.execute("SELECT run_id, sum(rows) FROM history_parts GROUP BY run_id"
                                  ).fetchall())
    db.close()
    assert counts == {f"run-{i:05d}": 30 for i in (0, 1, 3, 4, 5, 6, 7)}
    h = ra.history(store, where={"run_id": "run-00001"}, columns=["train_err"])
    assert h["train_err"].tolist() == pytest.approx(new.train_err)
    old = pd.read_csv(runs / "run-00003" / "history.csv")["train_err"]
    assert ra.history(store, where={"run_id": "run-00003"})["train_err"].tolist() == \
        pytest.approx(old.tolist())


def test_a_store_moved_without_its_history_folder_or_a_part_cut_short(tmp_path, cli_inproc,
                                                                       reads):
    """Each one line when read; the next collect rebuilds the store whole."""
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 3)
    collect([runs], store=store)
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "s.duckdb"
    store.rename(moved)
    assert_usage_error(cli_inproc("sql", moved, "select count(*) from runs"),
                       "s.duckdb.history", "cannot be read")
    reads.clear()
    c = collect([runs], store=moved)  # collect rebuilds it whole
    assert dict(reads) == {"summary": 3, "history": 3} and len(c.history()) == 3 * 30
    (part,) = parts.folder(moved).iterdir()
    part.write_bytes(part.read_bytes()[:1000])
    assert_usage_error(cli_inproc("sql", moved, "select count(*) from history"),
                       f"history part {part.name} is 1,000 bytes, written as", "collect again")
    reads.clear()
    c = collect([runs], store=moved)
    assert dict(reads) == {"summary": 3, "history": 3} and len(c.history()) == 3 * 30


def test_a_part_whose_bytes_changed_is_refused_and_a_copied_store_reads(tmp_path, cli_inproc,
                                                                        reads):
    """DuckDB reads bytes flipped inside a page as numbers, without an error: a part whose
    bytes changed since collect wrote it (same size) is refused in one line by every
    reader, nothing written; the next collect rebuilds the store. A copy of the store with
    new times (`cp -r`) reads the same (its CRC-32 checked), and a collect of the copy
    records its times without reading a run again."""
    import duckdb
    import pyarrow.parquet as pq

    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 3)
    collect([runs], store=store)
    good = _history_sum(store)
    (part,) = parts.folder(store).iterdir()

    copy = tmp_path / "copy" / "s.duckdb"
    copy.parent.mkdir()
    shutil.copy(store, copy)
    shutil.copytree(parts.folder(store), parts.folder(copy), copy_function=shutil.copy)
    copied = parts.folder(copy) / part.name
    os.utime(copied, ns=(10**18, 10**18))  # other times, the same bytes
    assert _history_sum(copy) == good
    reads.clear()
    collect([runs], store=copy)
    assert dict(reads) == {}  # nothing re-read: the copy's parts are the ones written
    db = Store.open(copy)
    try:
        assert db._part_files()[part.name][1] == 10**18  # the copy's time, recorded
    finally:
        db.close()

    column = pq.read_metadata(part).row_group(0).column(4)  # train_err
    assert column.path_in_schema == "train_err"
    data = bytearray(part.read_bytes())
    start = column.data_page_offset + column.total_compressed_size // 3
    for i in range(start, start + 64, 7):
        data[i] ^= 0x55
    part.write_bytes(bytes(data))  # the same size
    garbage = duckdb.sql(f"SELECT sum(train_err) FROM '{part}'").fetchall()[0][0]
    assert garbage != pytest.approx(good[1])  # what a reader would have drawn, silently
    for args in (("sql", store, "select count(*) from history"),
                 ("compare", "--store", store),
                 ("figures", "--store", store, "--out", tmp_path / "f", "--figures", "fig6")):
        assert_usage_error(cli_inproc(*args), f"history part {part.name} has other bytes",
                           "CRC-32 differs", "collect again")
    assert not (tmp_path / "f").exists()
    with pytest.raises(InputError, match="CRC-32 differs"):
        ra.history(store)
    reads.clear()
    collect([runs], store=store)  # rebuilt whole, from the runs
    assert dict(reads) == {"summary": 3, "history": 3} and _history_sum(store) == good


def test_a_history_arrows_reader_refuses_is_read_by_duckdb(tmp_path):
    """Iterations written as 1.0 (a pandas CSV): not an int64 to Arrow's reader, a BIGINT
    to DuckDB's, which then reads the file: the same rows as the harness's own CSV."""
    runs = tmp_path / "runs"
    text = history(30, 10).to_csv()
    floats = "\n".join(ln if i == 0 else ln.replace(",", ".0,", 1)
                       for i, ln in enumerate(text.splitlines())) + "\n"
    write_run(runs, "floats", history_text=floats)
    write_run(runs, "plain", seed=1, history_text=text)
    c = collect([runs], store=tmp_path / "s.duckdb")
    assert not c.skipped
    h = c.history()
    a, b = (h[h["run_id"] == r].drop(columns="run_id").reset_index(drop=True)
            for r in ("floats", "plain"))
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 30


def test_the_parts_of_a_collect_still_running_are_kept(tmp_path):
    """Unnamed parts are removed when their writer is this process or gone, kept while it
    runs (a collect beside this one)."""
    child = run_python("import os; print(os.getpid())")
    assert child.returncode == 0 and child.stdout.strip().isdigit(), child.stderr
    dead = child.stdout.strip()
    names = {"named": "part-1-aa.parquet", "live": f"part-{os.getppid()}-bb.parquet",
             "dead": f"part-{dead}-cc.parquet", "ours": f"part-{os.getpid()}-dd.parquet"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"")
    removed = parts.collect_garbage(tmp_path, {names["named"]})
    assert sorted(removed) == sorted([names["dead"], names["ours"]])
    assert sorted(os.listdir(tmp_path)) == sorted([names["named"], names["live"]])


def _content(store):
    runs = ra.runs(store).drop(columns=["source"]).reset_index(drop=True)
    hist = ra.history(store).sort_values(["run_id", "iteration"]).reset_index(drop=True)
    db = Store.open(store)
    resp = db.frame("SELECT * FROM responses ORDER BY run_id, \"index\"")
    probes = db.frame("SELECT * FROM probes ORDER BY run_id, probe")
    evals = db.frame("SELECT * FROM evaluations ORDER BY run_id, iteration")
    db.close()
    return runs, hist, resp, probes, evals


def test_a_full_recollect_equals_the_incremental_store(tmp_path):
    runs, inc, full = tmp_path / "runs", tmp_path / "inc.duckdb", tmp_path / "full.duckdb"
    make_runs(runs, 8)
    collect([runs], store=inc)
    make_runs(runs, 3, start=8)  # new runs
    (runs / "run-00001" / "history.csv").write_text(history(30, 10, seed=5).to_csv())
    s = json.loads((runs / "run-00003" / "summary.json").read_text())
    s["final_test_err"] = 42.0  # an edited summary
    (runs / "run-00003" / "summary.json").write_text(json.dumps(s))
    shutil.rmtree(runs / "run-00006")
    (runs / "run-00000" / "probes").mkdir()
    (runs / "run-00000" / "probes" / "lesion.json").write_text(json.dumps(
        {"settings": {"units": "all"}, "errors": [1.0, 2.0]}))
    collect([runs], store=inc)
    collect([runs], store=full)
    for a, b in zip(_content(inc), _content(full)):
        pd.testing.assert_frame_equal(a, b)
    runs_inc = _content(inc)[0].set_index("run_id")
    assert runs_inc.loc["run-00003", "final_test_err"] == 42.0
    assert len(runs_inc) == 10 and "run-00006" not in runs_inc.index
    assert len(_content(inc)[4]) == 10 * 3  # each run's three evaluations, none of the gone
    probes = _content(inc)[3]
    assert probes["probe"].tolist() == ["lesion"]
    assert json.loads(probes["result"][0])["errors"] == [1.0, 2.0]


def test_a_new_record_schema_rereads_summaries_only(tmp_path, reads):
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 5)
    collect([runs], store=store)
    db = Store.open(store, write=True)
    db.set_meta(record_schema="an older one")
    db.close()
    reads.clear()
    c = collect([runs], store=store)
    assert dict(reads) == {"summary": 5}  # histories kept
    assert len(c.runs) == 5 and len(c.history()) == 5 * 30


def test_a_store_of_an_older_format_is_rebuilt_whole(tmp_path, reads):
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 3)
    collect([runs], store=store)
    db = Store.open(store, write=True)
    db.set_meta(format=str(FORMAT - 1))
    db.close()
    reads.clear()
    c = collect([runs], store=store)
    assert dict(reads) == {"summary": 3, "history": 3}  # nothing of the old layout trusted
    db = Store.open(store)
    assert len(c.runs) == 3 and db.meta("format") == str(FORMAT)
    db.close()


def _kill_after_first_batch(cmd, env):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stderr:
        if "histories read" in line:
            break
    alive = proc.poll() is None
    proc.kill()
    proc.wait(timeout=60)
    return alive, proc.returncode


def test_sigkill_mid_collect_leaves_the_previous_store(tmp_path):
    """A real collect in a subprocess, killed after its first batch of histories went into
    the store's transaction: the store is the previous one, readable; a new store killed
    mid-write never appears."""
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 60, iterations=2000, eval_every=500, templates=3)
    env = {**os.environ, "RESNET_ABLATE_COLLECT_BATCH_BYTES": str(200_000)}
    cmd = [sys.executable, "-m", "resnet_ablate", "collect", "--runs", str(runs), "--out",
           str(store)]
    alive, code = _kill_after_first_batch(cmd, env)  # the first collect: a new store
    assert alive and code == -signal.SIGKILL
    assert not store.exists()  # only its temporary file, which the next collect removes
    collect([runs], store=store)
    before, before_sum = ra.runs(store), _history_sum(store)
    texts = [history(2000, 500, seed=100 + k).to_csv() for k in range(3)]
    for i in range(60):  # every history changes, and 30 runs are new
        (runs / f"run-{i:05d}" / "history.csv").write_text(texts[i % 3])
    make_runs(runs, 30, start=60, iterations=2000, eval_every=500, templates=2)
    named = _named_parts(store)
    alive, code = _kill_after_first_batch(cmd, env)
    assert alive and code == -signal.SIGKILL
    pd.testing.assert_frame_equal(ra.runs(store), before)  # readable, and as it was
    assert _history_sum(store) == before_sum
    # its history parts: the old ones named and untouched, the killed collect's named by none
    assert _named_parts(store) == named and _parts_on_disk(store) > named
    c = collect([runs], store=store)  # and the next collect completes
    assert len(c.runs) == 90 and _history_sum(store)[0] == 90 * 2000
    assert not list(tmp_path.glob(".s.duckdb.*.tmp"))
    assert _parts_on_disk(store) == _named_parts(store)  # the stray and the replaced removed


def test_a_full_disk_mid_collect_is_one_line_and_leaves_the_store(tmp_path):
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 10, iterations=2000, eval_every=500, templates=2)
    collect([runs], store=store)
    before = _history_sum(store)
    make_runs(runs, 40, start=10, iterations=8000, eval_every=500, templates=2)
    limit = store.stat().st_size + 256 * 1024  # the disk fills while the new runs go in
    # (their history part, ~5 MB, is the biggest file written)

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "resnet_ablate", "collect", "--runs",
                           str(runs), "--out", str(store)], preexec_fn=small_disk,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "histories read" not in ln]
    assert len(lines) == 1 and "cannot write the store" in lines[0], proc.stderr
    assert "previous store is as it was" in lines[0] and "Traceback" not in proc.stderr
    assert _history_sum(store) == before


def test_a_full_disk_while_a_copied_store_records_its_times_is_one_line(tmp_path):
    """The collect of a copied store (its parts' new times, CRC unchanged) records those
    times in its own transaction: a disk that is full then fails it in one line, exit 2,
    and the copy reads as before (the times were once written outside it: a traceback)."""
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 3)
    collect([runs], store=store)
    good = _history_sum(store)
    for part in parts.folder(store).iterdir():
        os.utime(part, ns=(10**18, 10**18))  # as a copy leaves them: other times
    limit = 1  # no log can be written: the first write of the collect fails

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as a full disk's ENOSPC

    proc = subprocess.run([sys.executable, "-m", "resnet_ablate", "collect", "--runs",
                           str(runs), "--out", str(store)], preexec_fn=small_disk,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "cannot write the store" in lines[0] and "Traceback" not in proc.stderr
    assert _history_sum(store) == good


def test_a_store_that_is_not_one_is_one_line_and_untouched(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 2)
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n")
    assert_usage_error(cli_inproc("collect", "--runs", runs, "--out", text),
                       "is not a resnet-ablate store")
    assert text.read_text() == "my notes\n"
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    assert_usage_error(cli_inproc("sql", empty, "select 1"), "is not a resnet-ablate store")
    assert empty.read_bytes() == b""
    assert_usage_error(cli_inproc("collect", "--runs", runs, "--out", tmp_path),
                       "is a folder; a store is one file")
    fifo = tmp_path / "fifo.duckdb"
    os.mkfifo(fifo)
    assert_usage_error(cli_inproc("collect", "--runs", runs, "--out", fifo),
                       "not a regular file")
    (tmp_path / "taken.duckdb.history").write_text("my notes\n")  # where its parts would go
    assert_usage_error(cli_inproc("collect", "--runs", runs, "--out", tmp_path / "taken.duckdb"),
                       "taken.duckdb.history is not a folder")
    assert [p.name for p in tmp_path.glob("*taken*")] == ["taken.duckdb.history"]  # no store
    store = tmp_path / "s.duckdb"
    assert cli_inproc("collect", "--runs", runs, "--out", store).returncode == 0
    good = store.read_bytes()
    corrupt = tmp_path / "corrupt.duckdb"  # a DuckDB header, then garbage
    corrupt.write_bytes(good[:4096] + os.urandom(len(good) - 4096))
    proc = cli_inproc("sql", corrupt, "select count(*) from runs")
    assert_usage_error(proc)
    assert "corrupt.duckdb" in proc.stderr
    truncated = tmp_path / "truncated.duckdb"
    truncated.write_bytes(good[: len(good) // 3])
    assert_usage_error(cli_inproc("compare", "--store", truncated), "truncated.duckdb")
    db = Store.open(store, write=True)
    db.set_meta(format=str(FORMAT + 1))
    db.close()
    assert_usage_error(cli_inproc("sql", store, "select 1"), "written by a newer resnet-ablate",
                       f"store format {FORMAT + 1}")
    assert_usage_error(cli_inproc("collect", "--runs", runs, "--out", store),
                       "written by a newer resnet-ablate")
    assert_usage_error(cli_inproc("sql", tmp_path / "nope.duckdb", "select 1"),
                       "does not exist")


def _hostile(runs: Path, tmp_path: Path) -> dict[str, str]:
    """A run directory per hostile input; what its skip line must say."""
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(summary("outside")))

    def sdir(name, text=None, **changes):
        write_run(runs, name)
        if changes or text is not None:
            s = json.loads((runs / name / "summary.json").read_text())
            for key, value in changes.items():
                node = s
                *head, last = key.split(".")
                for part in head:
                    node = node[part]
                node[last] = value
            (runs / name / "summary.json").write_text(text if text is not None
                                                       else json.dumps(s))
        return runs / name / "summary.json"

    os.unlink(sdir("s-fifo"))
    os.mkfifo(runs / "s-fifo" / "summary.json")
    os.unlink(sdir("s-dir"))
    (runs / "s-dir" / "summary.json").mkdir()
    os.unlink(sdir("s-symlink-out"))
    (runs / "s-symlink-out" / "summary.json").symlink_to(outside)
    os.unlink(sdir("s-loop"))  # unreadable whoever we are (root reads a chmod 000 file)
    (runs / "s-loop" / "summary.json").symlink_to(runs / "s-loop" / "summary.json")
    big = sdir("s-50mb")
    with open(big, "wb") as f:
        f.write(b'{"run_id": "s-50mb", "pad": "' + b"x" * (50 << 20) + b'"}')
    sdir("s-nan-depth", text=json.dumps(summary("s-nan-depth")).replace('"depth": 20',
                                                                       '"depth": NaN'))
    sdir("s-inf-seed", text=json.dumps(summary("s-inf-seed")).replace('"seed": 0',
                                                                     '"seed": Infinity'))
    sdir("s-float-depth", depth=20.5)
    sdir("s-huge-depth", depth=10 ** 30)
    sdir("s-factor-type", shortcut=["A"])
    sdir("s-trained-on", trained_on={"train": 50000})
    sdir("s-responses", layer_responses=[{"index": "one", "layer": 3}])
    write_run(runs, "h-fifo")
    (runs / "h-fifo" / "history.csv").unlink()
    os.mkfifo(runs / "h-fifo" / "history.csv")
    write_run(runs, "h-garbage")
    (runs / "h-garbage" / "history.csv").write_bytes(b"\x00\xff garbage \x00\n\"unclosed")
    write_run(runs, "h-other-csv", history_text="a,b\n1,2\n")
    full = history(30, 10).to_csv()
    write_run(runs, "h-truncated", history_text=full[: len(full) - 20])  # cut mid-row
    write_run(runs, "h-text-iteration", history_text=full.replace("\n7,", "\nseven,"))
    write_run(runs, "h-symlink-out")
    (runs / "h-symlink-out" / "history.csv").unlink()
    (tmp_path / "outside.csv").write_text(full)
    (runs / "h-symlink-out" / "history.csv").symlink_to(tmp_path / "outside.csv")
    write_run(runs, "h-huge")
    with open(runs / "h-huge" / "history.csv", "r+b") as f:
        f.truncate((1 << 30) + 1)  # sparse: over the 1 GiB a history may have
    return {"s-fifo": "summary.json is a FIFO", "s-dir": "summary.json is a directory",
            "s-symlink-out": "points outside", "s-loop": "cannot be read",
            "s-50mb": "over the 8,388,608", "s-nan-depth": "NaN is not a number JSON allows",
            "s-inf-seed": "Infinity is not a number JSON allows",
            "s-float-depth": "depth must be an integer; got 20.5",
            "s-huge-depth": "depth is 1000000000000000000000000000000, out of a 64-bit",
            "s-factor-type": "shortcut must be a string or null",
            "s-trained-on": "trained_on must be a string",
            "s-responses": "layer_responses must be a list of {index: integer",
            "h-fifo": "history.csv is a FIFO", "h-garbage": "history.csv is not UTF-8",
            "h-other-csv": "history.csv has no iteration column (its header: 'a, b')",
            "h-truncated": "Expected Number of Columns: 8 Found",
            "h-text-iteration": "history.csv: Conversion Error",
            "h-symlink-out": "history.csv points outside",
            "h-huge": "history.csv is 1,073,741,825 bytes"}


def test_hostile_run_directories_are_each_one_line_and_the_rest_collected(tmp_path,
                                                                           cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 2)
    expect = _hostile(runs, tmp_path)
    done = []  # in this process, on a thread: a read that blocks (a FIFO) fails, not hangs
    reader = threading.Thread(target=lambda: done.append(cli_inproc(
        "collect", "--runs", runs, "--out", tmp_path / "s.duckdb")), daemon=True)
    reader.start()
    reader.join(timeout=120)
    assert done, "collect blocked on a hostile run directory"
    proc = done[0]
    assert proc.returncode == EXIT_SKIPPED, proc.stderr
    assert "Traceback" not in proc.stderr
    skipped = [ln for ln in proc.stderr.splitlines() if ln.startswith("resnet-ablate: skipped")]
    assert len(skipped) == len(expect), proc.stderr
    for name, fragment in expect.items():
        line = next((ln for ln in skipped if f"/{name}:" in ln), None)
        assert line is not None and fragment in line, (name, line)
    assert "2 runs (2 conditions), 19 skipped" in proc.stdout
    assert sorted(ra.runs(tmp_path / "s.duckdb")["run_id"]) == ["run-00000", "run-00001"]
    C.READS.clear()  # again: the same lines, and no file read again
    again = cli_inproc("collect", "--runs", runs, "--out", tmp_path / "s.duckdb")
    assert again.returncode == EXIT_SKIPPED and again.stderr.count("skipped") == len(expect)
    assert sorted(again.stderr.splitlines()) == sorted(
        ln for ln in proc.stderr.splitlines() if "histories read" not in ln)
    assert dict(C.READS) == {}
    for cmd in (["compare", "--store", tmp_path / "s.duckdb"],  # the store remembers them
                ["figures", "--runs", runs, "--out", tmp_path / "rep", "--figures", "fig6",
                 "--tables", "table6"]):  # in this process: the collect above did not block
        proc = cli_inproc(*cmd)
        assert proc.returncode == EXIT_SKIPPED and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("resnet-ablate: skipped") == len(expect)


def test_a_run_directory_that_disappears_mid_collect(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    make_runs(runs, 3)
    from resnet_ablate.run.rundir import RunDir

    read = RunDir.read_summary

    def vanishing(self):
        if self.run_id == "run-00001":
            shutil.rmtree(self.path)
        return read(self)

    monkeypatch.setattr(RunDir, "read_summary", vanishing)
    c = collect([runs], store=tmp_path / "s.duckdb")
    assert c.skipped == [(str(runs / "run-00001"), "disappeared while being collected")]
    assert sorted(c.runs["run_id"]) == ["run-00000", "run-00002"]


def test_the_same_run_through_two_folders_counts_once_history_too(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 8)
    shutil.copytree(runs, tmp_path / "copy")
    (tmp_path / "link").symlink_to(runs)
    c = collect([runs, tmp_path / "copy", tmp_path / "link", runs], store=tmp_path / "s.duckdb")
    assert len(c.runs) == 8 and len(c.history()) == 8 * 30
    curves = c.curves(c.runs)
    assert not curves.duplicated(["run_id", "kind", "iteration"]).any()
    assert sum("the same run as" in w for w in c.warnings) == 8  # the copies, named
    proc = cli_inproc("figures", "--runs", runs, tmp_path / "copy", runs, "--out",
                      tmp_path / "rep", "--figures", "fig1", "fig6", "--tables", "table6")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rep" / "figures" / "fig6.png").stat().st_size > 5000
    assert (tmp_path / "rep" / "data" / "store.duckdb").exists()
    index = (tmp_path / "rep" / "index.md").read_text()
    assert "n = 2 seed(s) per condition" in index


def test_a_copy_with_other_contents_under_a_taken_run_id_is_skipped(tmp_path):
    runs, other = tmp_path / "runs", tmp_path / "other"
    make_runs(runs, 2)
    write_run(other, "run-00000", seed=9, test_err=33.0)
    c = collect([runs, other], store=tmp_path / "s.duckdb")
    assert c.skipped == [(str(other / "run-00000"), "run_id run-00000 is already "
                          f"{runs / 'run-00000'}'s (another run); kept that one")]


def test_curves_are_the_papers_thin_and_bold_lines_thinned_in_the_database(tmp_path):
    """The training error averaged over each evaluation interval (prev, this], against
    the same computed with pandas from the CSV; at most max_points per curve."""
    runs = tmp_path / "runs"
    write_run(runs, "r", iterations=3000, eval_every=7)
    c = collect([runs], store=tmp_path / "s.duckdb")
    csv = pd.read_csv(runs / "r" / "history.csv")
    evals = csv.dropna(subset=["test_err"])
    edges = np.concatenate([[0], evals["iteration"]])
    want = csv.groupby(pd.cut(csv["iteration"], edges, labels=edges[1:]), observed=True
                       )["train_err"].mean()
    full = c.curves(c.runs, max_points=10_000)
    train = full[full["kind"] == "train"].set_index("iteration")["err"]
    assert len(train) == len(evals) == 429
    np.testing.assert_allclose(train.to_numpy(), want.to_numpy())
    test = full[full["kind"] == "test"]
    np.testing.assert_allclose(test["err"], evals["test_err"])
    thin = c.curves(c.runs, max_points=100)
    assert thin.groupby("kind").size().max() <= 100
    first = thin[thin["kind"] == "test"].iloc[0]
    five = evals["test_err"].iloc[:5]  # 429 points into 100 buckets: 4 or 5 each
    assert first["err"] in (pytest.approx(five.mean()), pytest.approx(five.iloc[:4].mean()))


def test_notebook_api_runs_and_history(tmp_path):
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 8, iterations=400, eval_every=100)
    collect([runs], store=store)
    frame = ra.runs(store)
    assert len(frame) == 8 and frame["final_test_err"].dtype == float
    assert sorted(ra.runs(store, where={"model": "plain56"})["seed"]) == [0, 1]
    assert len(ra.runs(store, where='depth = 56 AND "protocol_fields.lr" = 0.1')) == 4
    h = ra.history(store, where={"model": ["plain20", "resnet20-A"], "seed": 0},
                   columns=["train_err"], max_points=50)
    assert list(h.columns) == ["run_id", "iteration", "granularity", "train_err"]
    assert set(h["run_id"]) == {"run-00000", "run-00002"}
    assert h.groupby("run_id").size().tolist() == [50, 50]
    raw = pd.read_csv(runs / "run-00000" / "history.csv")["train_err"]
    assert h[h["run_id"] == "run-00000"]["train_err"].iloc[0] == pytest.approx(raw[:8].mean())
    late = ra.history(store, where="family = 'plain' AND iteration > 390", columns=["lr"])
    assert len(late) == 4 * 10
    with pytest.raises(ValueError, match="unknown history column 'acc'"):
        ra.history(store, columns=["acc"])


def test_sql_command_prints_a_table(tmp_path, cli_inproc):
    runs, store = tmp_path / "runs", tmp_path / "s.duckdb"
    make_runs(runs, 8)
    assert cli_inproc("collect", "--runs", runs, "--out", store).returncode == 0
    proc = cli_inproc("sql", store, 'select model, count(*) as n, avg(final_test_err) as err '
                                    'from runs where counted group by model order by model')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["model", "n", "err"] and len(lines) == 6
    assert lines[2].split()[:2] == ["plain20", "2"]
    csv = cli_inproc("sql", store, 'select "protocol_fields.lr" from runs limit 1',
                     "--format", "csv")
    assert csv.stdout == "protocol_fields.lr\n0.1\n"
    many = cli_inproc("sql", store, "select * from history", "--max-rows", "5")
    assert len(many.stdout.splitlines()) == 7 and "235 more rows" in many.stderr
    assert_usage_error(cli_inproc("sql", store, "selec nothing"), "sql: Parser Error")
    assert_usage_error(cli_inproc("sql", store, "delete from runs"), "sql:", "read-only")
    assert len(ra.runs(store)) == 8


def test_collect_prints_a_line_per_run_and_what_was_skipped(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 3)
    (runs / "pending").mkdir()
    proc = cli_inproc("collect", "--runs", runs, "--out", tmp_path / "s.duckdb")
    assert proc.returncode == 0, proc.stderr  # a run not finished yet is not an error
    assert "3 runs (3 conditions), 0 skipped, 1 unfinished" in proc.stdout
    assert f"not collected {runs / 'pending'}: no summary.json" in proc.stderr


def test_evaluation_intervals_in_any_row_order():
    """The evaluations table bins training rows into (previous evaluation, this one]: the
    same whatever order the rows come in, W&B's separate training and evaluation rows
    included (a training row at an evaluation's iteration belongs to that evaluation); an
    iteration evaluated twice (a resumed W&B run) is one evaluation, their mean."""
    import pyarrow as pa

    from resnet_ablate.analysis.ingest import evaluation_rows
    from resnet_ablate.analysis.store import HISTORY_COLUMNS_SQL

    rows = [("b", 0, 9.0, None), ("a", 1, 4.0, None), ("a", 2, 2.0, None), ("a", 2, None, 50.0),
            ("a", 3, 6.0, None), ("a", 4, 8.0, None), ("a", 4, None, 40.0),
            ("a", 4, None, 41.0), ("a", 5, 1.0, None), ("b", 1, 3.0, 30.0), ("b", 2, 5.0, None)]
    cols = {c: [None] * len(rows) for c in HISTORY_COLUMNS_SQL}
    for i, (run, it, train, test) in enumerate(rows):
        cols["run_id"][i], cols["iteration"][i] = run, it
        cols["train_err"][i], cols["test_err"][i], cols["granularity"][i] = train, test, "x"
    types = {"run_id": pa.string(), "iteration": pa.int64(), "granularity": pa.string()}
    table = pa.table({c: pa.array(v, type=types.get(c, pa.float64())) for c, v in cols.items()})
    want = [("a", 2, 50.0, 3.0, 2), ("a", 4, 40.5, 7.0, 2), ("b", 1, 30.0, 3.0, 1)]
    for order in (list(range(len(rows))), list(reversed(range(len(rows))))):
        got = evaluation_rows(table.take(pa.array(order))).sort_by("run_id").to_pylist()
        assert [(r["run_id"], r["iteration"], r["test_err"], r["train_err"], r["n_train"])
                for r in got] == want
