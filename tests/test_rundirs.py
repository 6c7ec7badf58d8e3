"""Run directories read where they lie: summaries checked on every read, histories queried in
place by DuckDB on a connection that reads those files and nothing else; hostile run
directories each skipped in one line with the rest analysed; one run never changes another's
numbers; `sql` runs one SELECT and nothing else; the notebook API filters with mappings only."""
import json
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import resnet_ablate as ra
from conftest import assert_usage_error
from resnet_ablate.analysis.evaluations import evaluation_rows
from resnet_ablate.analysis.rundirs import EXIT_SKIPPED, read_runs
from resnet_ablate.errors import InputError
from resnet_ablate.run.rundir import parquet_bytes
from synthetic import history, make_runs, summary, write_run

FIXTURES = Path(__file__).parent / "fixtures"


def _table(**columns):
    """A history table of the harness's columns (missing ones null)."""
    n = len(next(iter(columns.values())))
    cols = {"iteration": pa.array(columns.pop("iteration"), pa.int64())}
    for c in ("lr", "train_loss", "train_err", "val_loss", "val_err", "test_loss", "test_err"):
        cols[c] = pa.array(columns.pop(c, [None] * n), pa.float64())
    assert not columns
    return pa.table(cols)


def _hostile(runs, tmp_path):
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
    os.unlink(sdir("s-loop"))
    (runs / "s-loop" / "summary.json").symlink_to(runs / "s-loop" / "summary.json")
    with open(sdir("s-50mb"), "wb") as f:
        f.write(b'{"run_id": "s-50mb", "pad": "' + b"x" * (50 << 20) + b'"}')
    sdir("s-nan-depth", text=json.dumps(summary("s-nan-depth")).replace('"depth": 20',
                                                                       '"depth": NaN'))
    sdir("s-deep", text='{"run_id": "s-deep", "env": ' + "[" * 100_000 + "]" * 100_000 + "}")
    sdir("s-float-depth", depth=20.5)
    sdir("s-huge-depth", depth=10 ** 30)
    sdir("s-factor-type", shortcut=["A"])
    sdir("s-responses", layer_responses=[{"index": "one", "layer": 3}])
    sdir("s-run-id-slash", run_id="../elsewhere")
    sdir("s-run-id-escape", run_id="x\x1b]0;owned\x07")
    write_run(runs, "h-fifo")
    (runs / "h-fifo" / "history.parquet").unlink()
    os.mkfifo(runs / "h-fifo" / "history.parquet")
    write_run(runs, "h-garbage", history_bytes=b"\x00\xff garbage \x00\n\"unclosed")
    write_run(runs, "h-csv", history_bytes=b"iteration,train_err\n1,2.0\n")
    full = history(30, 10).to_parquet()
    write_run(runs, "h-truncated", history_bytes=full[: len(full) - 20])
    write_run(runs, "h-text-iteration", history_bytes=parquet_bytes(pa.table(
        {"iteration": pa.array(["1"]), **{c: pa.array([1.0]) for c in (
            "lr", "train_loss", "train_err", "val_loss", "val_err", "test_loss", "test_err")}})))
    write_run(runs, "h-negative", history_bytes=parquet_bytes(_table(
        iteration=[-5, 10], train_err=[1.0, 2.0], test_err=[None, 3.0])))
    write_run(runs, "h-beyond", history_bytes=parquet_bytes(_table(
        iteration=[10, 1 << 40], train_err=[1.0, 2.0], test_err=[3.0, None])))
    sink = pa.BufferOutputStream()  # no statistics in its footer: the column itself is read
    pq.write_table(_table(iteration=[-1, 10], train_err=[1.0, 2.0]), sink,
                   write_statistics=False)
    write_run(runs, "h-no-statistics", history_bytes=sink.getvalue().to_pybytes())
    write_run(runs, "h-symlink-out")
    (runs / "h-symlink-out" / "history.parquet").unlink()
    (tmp_path / "outside.parquet").write_bytes(full)
    (runs / "h-symlink-out" / "history.parquet").symlink_to(tmp_path / "outside.parquet")
    write_run(runs, "h-huge")
    with open(runs / "h-huge" / "history.parquet", "r+b") as f:
        f.truncate((1 << 30) + 1)  # sparse: over the 1 GiB a history may have
    return {"s-fifo": "summary.json is a FIFO", "s-dir": "summary.json is a directory",
            "s-symlink-out": "points outside", "s-loop": "cannot be read",
            "s-50mb": "over the 8,388,608", "s-nan-depth": "NaN is not a number JSON allows",
            "s-deep": "nested too deeply",
            "s-float-depth": "depth must be an integer; got 20.5",
            "s-huge-depth": "depth is 1000000000000000000000000000000, out of a 64-bit",
            "s-factor-type": "shortcut must be a string or null",
            "s-responses": "layer_responses must be a list of {index: integer",
            "s-run-id-slash": "run_id must be 1-128 ASCII letters",
            "s-run-id-escape": "run_id must be 1-128 ASCII letters",
            "h-fifo": "history.parquet is a FIFO",
            "h-garbage": "history.parquet is not a Parquet file the harness wrote",
            "h-csv": "history.parquet is not a Parquet file the harness wrote",
            "h-truncated": "history.parquet is not a Parquet file the harness wrote",
            "h-text-iteration": "history.parquet has columns (iteration string",
            "h-negative": "iterations -5..10, outside [0, 30]",
            "h-beyond": "iterations 10..1099511627776, outside [0, 30]",
            "h-no-statistics": "iterations -1..10, outside [0, 30]",
            "h-symlink-out": "history.parquet points outside",
            "h-huge": "history.parquet is 1,073,741,825 bytes"}


def test_hostile_run_directories_are_each_one_line_and_the_rest_analysed(tmp_path,
                                                                         cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 4)
    expect = _hostile(runs, tmp_path)
    summaries = {k: v for k, v in expect.items() if k.startswith("s-")}
    done = []  # on a thread: a read that would block (a FIFO) must fail, not hang
    reader = threading.Thread(target=lambda: done.append(cli_inproc(
        "figures", "--runs", runs, "--out", tmp_path / "rep", "--figures", "fig1", "fig6",
        "--tables", "table6")), daemon=True)
    reader.start()
    reader.join(timeout=120)
    assert done, "figures blocked on a hostile run directory"
    proc = done[0]
    assert proc.returncode == EXIT_SKIPPED, proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr
    skipped = [ln for ln in proc.stderr.splitlines() if ln.startswith("resnet-ablate: skipped")]
    assert len(skipped) == len(expect), proc.stderr
    for name, fragment in expect.items():
        line = next((ln for ln in skipped if f"/{name}:" in ln), None)
        assert line is not None and fragment in line, (name, line)
    assert (tmp_path / "rep" / "figures" / "fig1.png").stat().st_size > 5000
    # compare reads summaries only: the summaries' skips, the histories' runs compared
    proc = cli_inproc("compare", "--runs", runs, "--format", "csv")
    assert proc.returncode == EXIT_SKIPPED and "Traceback" not in proc.stderr
    assert proc.stderr.count("resnet-ablate: skipped") == len(summaries), proc.stderr
    assert len(proc.stdout.splitlines()) == 1 + 4  # the 4 synthetic conditions


def test_one_run_never_changes_another_runs_curve(tmp_path):
    """The curves of good runs are the same with hostile histories beside them: rows are
    grouped by the file they came from, never by a key packed from their values."""
    runs = tmp_path / "runs"
    make_runs(runs, 4, iterations=300, eval_every=100)
    alone = read_runs([runs])
    want = alone.curves(alone.runs)
    write_run(runs, "wide", model="resnet56-A", seed=7, iterations=300, eval_every=100,
              history_bytes=parquet_bytes(_table(
                  iteration=[1, 2, 100, 200, 300], train_err=[1e300, -1e300, 5.0, 5.0, 5.0],
                  test_err=[None, None, 1e300, 4.0, 3.0])))
    write_run(runs, "claims-run-00000", model="plain20", seed=9, iterations=300,
              eval_every=100, history_bytes=(runs / "run-00000" / "history.parquet")
              .read_bytes())  # another run's file: its own curve, nobody else's
    both = read_runs([runs])
    got = both.curves(both.runs)
    pd.testing.assert_frame_equal(got[got["run_id"].isin(want["run_id"])].reset_index(
        drop=True), want.reset_index(drop=True))
    assert set(got["run_id"]) == set(want["run_id"]) | {"wide", "claims-run-00000"}


def test_the_same_run_through_two_folders_counts_once(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 8)
    shutil.copytree(runs, tmp_path / "copy")
    (tmp_path / "link").symlink_to(runs)
    c = read_runs([runs, tmp_path / "copy", tmp_path / "link", runs, runs / "run-00003"])
    assert len(c.runs) == 8 and len(c.history()) == 8 * 30
    assert not c.curves(c.runs).duplicated(["run_id", "kind", "iteration"]).any()
    assert sum("the same run as" in w for w in c.warnings) == 8  # the copies, named
    proc = cli_inproc("figures", "--runs", runs, tmp_path / "copy", "--out", tmp_path / "rep",
                      "--figures", "fig1", "fig6", "--tables", "table6")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rep" / "figures" / "fig6.png").stat().st_size > 5000
    assert "n = 2 seed(s) per condition" in (tmp_path / "rep" / "index.md").read_text()


def test_a_copy_with_other_contents_under_a_taken_run_id_is_skipped(tmp_path):
    runs, other = tmp_path / "runs", tmp_path / "other"
    make_runs(runs, 2)
    write_run(other, "run-00000", seed=9, test_err=33.0)
    c = read_runs([runs, other])
    assert c.skipped == [(str(other / "run-00000"), "run_id run-00000 is already "
                          f"{runs / 'run-00000'}'s (another run); kept that one")]


def test_a_summary_under_another_folder_name_is_read_and_reported(tmp_path):
    write_run(tmp_path / "runs", "original")
    (tmp_path / "runs" / "original").rename(tmp_path / "runs" / "renamed")
    c = read_runs([tmp_path / "runs"])
    assert list(c.runs["run_id"]) == ["original"]
    assert any("its summary names run 'original', its folder 'renamed'" in w
               for w in c.warnings)


def test_unfinished_runs_are_named_not_errors(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 3)
    (runs / "pending").mkdir()
    (runs / "pending" / "config.json").write_text("{}")
    proc = cli_inproc("compare", "--runs", runs)
    assert proc.returncode == 0, proc.stderr
    assert f"not read {runs / 'pending'}: no summary.json" in proc.stderr


def test_curves_are_the_papers_thin_and_bold_lines_thinned_in_the_query(tmp_path):
    """The training error averaged over each evaluation interval (prev, this], against the
    same computed with pandas from the file; at most max_points per curve."""
    runs = tmp_path / "runs"
    write_run(runs, "r", iterations=3000, eval_every=7)
    c = read_runs([runs])
    rows = pq.read_table(runs / "r" / "history.parquet").to_pandas()
    evals = rows.dropna(subset=["test_err"])
    edges = np.concatenate([[0], evals["iteration"]])
    want = rows.groupby(pd.cut(rows["iteration"], edges, labels=edges[1:]), observed=True
                        )["train_err"].mean()
    full = c.curves(c.runs, max_points=10_000)
    train = full[full["kind"] == "train"].set_index("iteration")["err"]
    assert len(train) == len(evals) == 429
    np.testing.assert_allclose(train.to_numpy(), want.to_numpy())
    np.testing.assert_allclose(full[full["kind"] == "test"]["err"], evals["test_err"])
    thin = c.curves(c.runs, max_points=100)
    assert thin.groupby("kind").size().max() <= 100
    first = thin[thin["kind"] == "test"].iloc[0]
    five = evals["test_err"].iloc[:5]  # 429 points into 100 buckets: 4 or 5 each
    assert first["err"] in (pytest.approx(five.mean()), pytest.approx(five.iloc[:4].mean()))


def test_evaluations_off_the_interval_are_binned_exactly(tmp_path):
    """A run whose evaluations are not every eval_every (W&B's rows, a hand-made file) is
    binned from its own rows, as evaluation_rows bins any history."""
    runs = tmp_path / "runs"
    h = history(300, 100, seed=3)
    h.evals = [{"iteration": i, "test_err": 30 - i / 20, "test_loss": 1.0} for i in (50, 120, 300)]
    write_run(runs, "odd", iterations=300, eval_every=100, history_bytes=h.to_parquet())
    c = read_runs([runs])
    got = c.histories().intervals(["odd"])
    table = pq.read_table(runs / "odd" / "history.parquet")
    table = table.add_column(0, "run_id", pa.array(["odd"] * table.num_rows))
    want = evaluation_rows(table).to_pandas()
    assert list(got["iteration"]) == [50, 120, 300]
    np.testing.assert_allclose(got["train_err"], want["train_err"])
    assert list(got["n_train"]) == [50, 70, 180]


def test_evaluation_intervals_in_any_row_order():
    """evaluation_rows bins training rows into (previous evaluation, this one]: the same
    whatever order the rows come in, W&B's separate training and evaluation rows included
    (a training row at an evaluation's iteration belongs to that evaluation); an iteration
    evaluated twice (a resumed W&B run) is one evaluation, their mean."""
    rows = [("b", 0, 9.0, None), ("a", 1, 4.0, None), ("a", 2, 2.0, None), ("a", 2, None, 50.0),
            ("a", 3, 6.0, None), ("a", 4, 8.0, None), ("a", 4, None, 40.0),
            ("a", 4, None, 41.0), ("a", 5, 1.0, None), ("b", 1, 3.0, 30.0), ("b", 2, 5.0, None)]
    cols = {"run_id": pa.array([r[0] for r in rows]),
            "iteration": pa.array([r[1] for r in rows], pa.int64()),
            "train_err": pa.array([r[2] for r in rows], pa.float64()),
            "test_err": pa.array([r[3] for r in rows], pa.float64())}
    for c in ("lr", "train_loss", "val_loss", "val_err", "test_loss"):
        cols[c] = pa.nulls(len(rows), pa.float64())
    table = pa.table(cols)
    want = [("a", 2, 50.0, 3.0, 2), ("a", 4, 40.5, 7.0, 2), ("b", 1, 30.0, 3.0, 1)]
    for order in (list(range(len(rows))), list(reversed(range(len(rows))))):
        got = evaluation_rows(table.take(pa.array(order))).sort_by("run_id").to_pylist()
        assert [(r["run_id"], r["iteration"], r["test_err"], r["train_err"], r["n_train"])
                for r in got] == want


def test_notebook_api_runs_and_history_filter_with_mappings_only(tmp_path):
    runs = tmp_path / "runs"
    make_runs(runs, 8, iterations=400, eval_every=100)
    frame = ra.runs(runs)
    assert len(frame) == 8 and frame["final_test_err"].dtype == float
    assert sorted(ra.runs(runs, where={"model": "plain56"})["seed"]) == [0, 1]
    assert len(ra.runs(str(runs), where={"depth": 56, "protocol_fields.lr": 0.1})) == 4
    assert len(ra.runs([runs], where={"depth": ("<", 56)})) == 4
    h = ra.history(runs, where={"model": ["plain20", "resnet20-A"], "seed": 0},
                   columns=["train_err"], max_points=50)
    assert list(h.columns) == ["run_id", "iteration", "granularity", "train_err"]
    assert set(h["run_id"]) == {"run-00000", "run-00002"}
    assert h.groupby("run_id").size().tolist() == [50, 50]
    raw = pq.read_table(runs / "run-00000" / "history.parquet")["train_err"].to_pandas()
    assert h[h["run_id"] == "run-00000"]["train_err"].iloc[0] == pytest.approx(raw[:8].mean())
    late = ra.history(runs, where={"family": "plain", "iteration": (">", 390)},
                      columns=["lr"])
    assert len(late) == 4 * 10
    with pytest.raises(InputError, match="unknown history column 'acc'"):
        ra.history(runs, columns=["acc"])
    for bad in ("depth = 56", "1; COPY (SELECT 1) TO 'x.csv'"):  # SQL text is never run
        with pytest.raises(InputError, match="where= takes a mapping"):
            ra.runs(runs, where=bad)
        with pytest.raises(InputError, match="where= takes a mapping"):
            ra.history(runs, where=bad)
    with pytest.raises(InputError, match="unknown column 'depth; drop'"):
        ra.runs(runs, where={"depth; drop": 1})
    for bad in (0, -1, True, 2.5):  # the notebook API and a RunSet's own
        with pytest.raises(InputError, match=r"max_points must be an integer in \[1, "):
            ra.history(runs, max_points=bad)
        with pytest.raises(InputError, match=r"max_points must be an integer in \[1, "):
            ra.read_runs([runs]).curves(ra.read_runs([runs]).runs, max_points=bad)
    assert sorted(os.listdir(tmp_path)) == ["runs"]  # nothing written beside the runs


def test_sql_prints_a_table_of_one_select(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 8)
    proc = cli_inproc("sql", runs, 'select model, count(*) as n, avg(final_test_err) as err '
                                   'from runs where counted group by model order by model')
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["model", "n", "err"] and len(lines) == 6
    assert lines[2].split()[:2] == ["plain20", "2"]
    csv = cli_inproc("sql", runs, 'select "protocol_fields.lr" from runs limit 1',
                     "--format", "csv")
    assert csv.stdout == "protocol_fields.lr\n0.1\n"
    many = cli_inproc("sql", runs, "select * from history", "--max-rows", "5")
    assert len(many.stdout.splitlines()) == 7 and "more rows not shown" in many.stderr
    both = cli_inproc("sql", runs / "run-00000", runs / "run-00001",
                      "select count(*) from history")
    assert both.stdout.split()[-1] == "60"
    assert_usage_error(cli_inproc("sql", runs, "selec nothing"), "sql: Parser Error")


@pytest.mark.parametrize("query", [
    "COPY (SELECT 1) TO 'RUN/history.parquet' (FORMAT csv, USE_TMP_FILE false)",
    "DELETE FROM runs", "CREATE TABLE t AS SELECT 1", "ATTACH 'x.db'", "INSTALL httpfs",
    "LOAD httpfs", "SET enable_external_access = true", "SELECT 1; SELECT 2",
    "PRAGMA version", "CALL pragma_version()"])
def test_sql_runs_one_select_and_writes_nothing(tmp_path, cli_inproc, query):
    runs = tmp_path / "runs"
    make_runs(runs, 1)
    before = (runs / "run-00000" / "history.parquet").read_bytes()
    query = query.replace("RUN", str(runs / "run-00000"))
    assert_usage_error(cli_inproc("sql", runs, query), "sql: one SELECT statement is allowed")
    assert (runs / "run-00000" / "history.parquet").read_bytes() == before


@pytest.mark.parametrize("query, says", [
    ("select * from read_csv('/etc/passwd')", "file system operations are disabled"),
    ("select * from read_text('~/.netrc')", "file system operations are disabled"),
    ("select * from glob('/etc/*')", "file system operations are disabled"),
    ("select * from read_parquet('https://example.com/x.parquet')", "sql:"),
    ("select * from query('COPY (SELECT 1) TO ''x.csv''')", "Expected a single SELECT"),
    ("select * from sys_modules", "does not exist"),  # a Python object, by name
])
def test_sql_reads_the_runs_and_nothing_else(tmp_path, cli_inproc, monkeypatch, query, says):
    runs = tmp_path / "runs"
    make_runs(runs, 1)
    monkeypatch.chdir(tmp_path)
    assert_usage_error(cli_inproc("sql", runs, query), says)
    assert sorted(os.listdir(tmp_path)) == ["runs"]


def test_a_query_that_never_ends_is_stopped_in_one_line(tmp_path, cli_inproc):
    runs = tmp_path / "runs"
    make_runs(runs, 1)
    proc = cli_inproc("sql", runs, "select count(*) from range(100000) a, range(100000) b, "
                                   "range(100000) c", "--timeout", "0.5")
    assert_usage_error(proc, "sql: stopped after 0.5 s")


def test_escape_sequences_in_records_print_as_text(tmp_path, cli_inproc):
    """A title, screen clear or OSC 52 clipboard write in a record is printed escaped in the
    tables the CLI prints (stdout), as in its one-line messages (stderr)."""
    runs = tmp_path / "runs"
    make_runs(runs, 2)
    s = json.loads((runs / "run-00000" / "summary.json").read_text())
    s["error"] = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\u202eevil"
    (runs / "run-00000" / "summary.json").write_text(json.dumps(s))
    proc = cli_inproc("sql", runs, "select run_id, error from runs order by run_id")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\u202e" not in proc.stdout
    assert "\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\u202eevil" in proc.stdout


def _same(before, now, where=""):
    """Equal, floats to 12 significant digits (a sum's last digits follow its order)."""
    if isinstance(before, float) and isinstance(now, (int, float)):
        assert now == pytest.approx(before, rel=1e-12, abs=1e-12), where
    elif isinstance(before, dict):
        assert sorted(before) == sorted(now), where
        for k in before:
            _same(before[k], now[k], f"{where}.{k}")
    elif isinstance(before, list):
        assert len(before) == len(now), where
        for i, (b, n) in enumerate(zip(before, now)):
            _same(b, n, f"{where}[{i}]")
    elif isinstance(before, str):  # a condition's id: a digest of factors added since
        ids = re.compile(r"\([0-9a-f]{10}\)")
        assert ids.sub("(ID)", before) == ids.sub("(ID)", now), where
    else:
        assert before == now, where


def test_run_directories_give_what_the_store_gave(tmp_path):
    """Every output of the analysis on a fixed set of runs (tests/analysis_outputs.py) as
    the DuckDB store gave it before run directories were read directly (b7b6498), number
    for number. Differences by design: the history file's name, and `compare`, which reads
    no history now, no longer warns about histories cut short; and what the statistics say
    of the data (compare's table, the tables, the captions, the findings), rewritten since
    by #31/#32 and tested in test_inference, test_comparisons and test_own_ablation: here
    the data read (curves, responses, runs, warnings) and compare's exit code and lines on
    stderr."""
    from analysis_outputs import outputs

    before = json.loads((FIXTURES / "analysis_before.json").read_text())
    for key in ("table table1", "report table table1", "report skipped", "report figures",
                "report tables"):  # no run in them; the report here draws Fig. 6 alone
        del before[key]
    now = outputs(tmp_path / "runs")
    for key in [k for k in before if k.startswith(("table ", "figure ", "report table "))
                or k == "findings"]:
        del before[key], now[key]
    for key, value in before.items():
        if key.startswith("compare"):
            value["err"] = [e for e in value["err"] if "history.csv ends" not in e]
            del value["out"], now[key]["out"]
        if key == "warnings":
            before[key] = [w.replace("history.csv", "history.parquet") for w in value]
    _same(before, now)
