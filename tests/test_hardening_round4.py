"""Hostile input of issue 28, the classes of round 4 (each a row of docs/reliability.md):
what the terminal prints is text (5), paths users really have (6), values a check admits
never reach a traceback (7), runners say the truth (9)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import assert_usage_error, train_inproc
from synthetic import make_runs

# A title, a screen clear, an OSC 52 clipboard write and a bidi override: what a record or
# a file name may hold, and no terminal may receive.
EVIL = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\u202eevil"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\u202eevil"


def _text_only(*streams: str) -> None:
    for text in streams:
        assert not any(c in text for c in "\x1b\x07\x9b\u202e"), repr(text[-2000:])


def _tree(root: Path) -> list[str]:
    return sorted(os.fsdecode(p.relative_to(root)) for p in root.rglob("*"))


# ----------------------------------------------- 5. what the terminal prints is text
@pytest.fixture(scope="module")
def probed_runs(tmp_path_factory):
    """A finished run (one block per stage: seconds) whose probes folder holds a file
    named with escape sequences, as someone else's copy of a run may."""
    runs = tmp_path_factory.mktemp("esc") / "runs"
    train_inproc("model=resnet20-A", "dataset=digits", "iterations=20", "eval_every=20",
                 "checkpoint_every=0", "log_every=10", "progress=off", "wandb=disabled",
                 "model.layers=[1,1,1]", f"runs_dir={runs}", "run_id=r")
    (runs / "r" / "probes").mkdir()
    (runs / "r" / "probes" / f"lesion-{EVIL}.json").write_text("{}")
    return runs


def test_what_the_terminal_prints_is_text(probed_runs, tmp_path, cli_inproc, capsys):
    """Every line a command prints from what runs recorded, on stdout and stderr: the
    probe command's and the report's lines naming a record that cannot be read (before:
    raw escape sequences on stderr), the sweep runner's lines (its values, its runs'
    output: through the CLI and through the Python API), train's progress label and
    messages."""
    probe = cli_inproc("probe", "lesion", "--runs", probed_runs, "--threads", "1",
                       "--wandb", "disabled")
    assert probe.returncode == 3, probe.stderr  # the unreadable record: skipped, named
    assert f"lesion-{SHOWN}.json" in probe.stderr
    _text_only(probe.stdout, probe.stderr)

    report = cli_inproc("figures", "--runs", probed_runs, "--out", tmp_path / "report",
                        "--figures", "fig1", "--tables", "table6")
    assert report.returncode == 3, report.stderr
    assert f"lesion-{SHOWN}.json" in report.stderr
    _text_only(report.stdout, report.stderr)

    # a sweep whose value and whose run's output carry escapes (the run fails at once)
    sweep = tmp_path / "esc.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "esc", "method": "grid",
        "command": ["${env}", "sh", "-c", r"printf '\033]0;pwned\007 done\n'; exit 3",
                    "${args_no_hyphens}"],
        "parameters": {"model": {"value": "resnet20-A"}, "dataset": {"value": "digits"},
                       "data_dir": {"value": f"/nowhere/{EVIL}"}}}))
    proc = cli_inproc("sweep", sweep, "--runs-dir", tmp_path / "r1")
    assert proc.returncode == 1 and "failed" in proc.stdout, proc.stdout + proc.stderr
    assert f"data_dir=/nowhere/{SHOWN}" in proc.stdout and "\\x1b]0;pwned\\x07 done" in \
        proc.stdout
    _text_only(proc.stdout, proc.stderr)
    from resnet_ablate.sweep import SweepRunner, load_sweep, planned_runs

    said: list[str] = []
    SweepRunner(planned_runs(load_sweep(sweep)), tmp_path / "r2", "esc",
                log=said.append).run()
    assert any("\\x1b]0;pwned\\x07 done" in line for line in said), said
    _text_only(*said)

    from resnet_ablate.train.progress import Progress

    capsys.readouterr()
    bar = Progress("lines", 10, label=EVIL)
    bar.start(2)
    bar.update(3, {"train_loss": 1.0, "train_err": 50.0, "lr": 0.1, "images_per_sec": 9.0})
    bar.message(f"reading {EVIL}")
    err = capsys.readouterr().err
    assert f"[{SHOWN}] iter 3/10" in err and f"reading {SHOWN}" in err
    _text_only(err)


# ------------------------------------------------------ 6. paths users really have
NOT_UTF8 = os.fsdecode(b"n\xffu")  # how Python holds a name with a byte that is not UTF-8


def test_paths_users_really_have(tmp_path, cli_inproc):
    """Runs under folders named with spaces, ?, *, [ ] are analysed; run folders of such
    names (and of bytes that are not UTF-8) are skipped in one line each, the rest
    reported; a folder of runs whose name is not UTF-8, or that leads to one, is one
    line. `--out` through a symlink writes where it points and leaves the link; `--out`
    that is a file, a symlink to nothing or to a file, under a file, a name too long,
    where nothing can be written: one line, exit 2, nothing left behind; `--out` named
    with ?, spaces or bytes that are not UTF-8 works."""
    runs = tmp_path / "my runs ?[1]*"
    make_runs(runs, 4)
    for name in ("a b", "q?x", NOT_UTF8):
        shutil.copytree(runs / "run-00001", runs / name)
    for args in (["sql", runs, "select count(*) as n from runs"], ["compare", "--runs", runs],
                 ["figures", "--runs", runs, "--out", tmp_path / "rep", "--figures", "fig6",
                  "--tables", "table6"]):
        proc = cli_inproc(*args)
        assert proc.returncode == 3, (args, proc.stderr)  # three skipped, the rest read
        skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
        assert len(skipped) == 3 and "Traceback" not in proc.stderr, proc.stderr
        assert "n\\udcffu" in proc.stderr
    index = (tmp_path / "rep" / "index.md").read_text(encoding="utf-8")
    assert "n\\udcffu" in index  # the skipped folder, named as its escape

    odd = tmp_path / NOT_UTF8
    make_runs(odd, 2)
    (tmp_path / "good").symlink_to(odd)
    for args in (["sql", odd, "select 1"], ["compare", "--runs", odd],
                 ["figures", "--runs", tmp_path / "good", "--out", tmp_path / "r2"],
                 ["sweep", "demo", "--dry-run", "--runs-dir", odd / "x"],
                 ["pull", "team/project", "--to", odd]):
        assert_usage_error(cli_inproc(*args), "not UTF-8", "rename the folder")
    assert not (tmp_path / "r2").exists()

    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    proc = cli_inproc("figures", "--runs", runs, "--out", tmp_path / "link", "--figures",
                      "fig6", "--tables", "table6")
    assert proc.returncode == 3, proc.stderr
    assert (tmp_path / "link").is_symlink() and (target / "index.html").is_file()

    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    (tmp_path / "to-file").symlink_to(tmp_path / "file")
    before = _tree(tmp_path)
    for out, fragment in ((tmp_path / "file", "is a file"),
                          (tmp_path / "dangling", "a symlink that leads nowhere"),
                          (tmp_path / "to-file", "a symlink to a file"),
                          (tmp_path / "file" / "sub", "which is not a folder"),
                          (tmp_path / "new" / "sub" / ("d" * 300), "File name too long")):
        for command in (["figures", "--runs", runs], ["reproduce", "demo", "--dry-run"],
                        ["demo", "--dry-run"]):
            assert_usage_error(cli_inproc(*command, "--out", out), f"--out {out}"[:60],
                               fragment)
        assert_usage_error(cli_inproc("sweep", "demo", "--dry-run", "--runs-dir", out),
                           fragment)
    if os.path.isdir("/sys/kernel"):  # sysfs: even root can neither make nor write files
        assert_usage_error(cli_inproc("figures", "--runs", runs, "--out", "/sys/kernel"),
                           "--out /sys/kernel: cannot write there")
        assert_usage_error(cli_inproc("figures", "--runs", runs, "--out",
                                      "/sys/kernel/resnet-ablate/sub"), "cannot write there")
    assert _tree(tmp_path) == before  # nothing made, nothing half-written

    for name in ("out ? [x]", f"out-{NOT_UTF8}"):
        proc = cli_inproc("figures", "--runs", runs, "--out", tmp_path / name, "--figures",
                          "fig6", "--tables", "table6")
        assert proc.returncode == 3, proc.stderr
        assert (tmp_path / name / "index.html").is_file()
        assert (tmp_path / name / "tables" / "table6.csv").is_file()
    assert "out-n\\udcffu/index.md" in proc.stdout


# ------------------------------------- 7. values a check admits never reach a traceback
BIG = str(10 ** 30)
FLAGS = [  # (command, flag words, the range the one line gives)
    (["sweep", "demo"], ["--count", BIG], "--count must be an integer in [1, 10,000]"),
    (["sweep", "demo"], ["--jobs", BIG], "--jobs must be an integer in [1, 1,024]"),
    (["sweep", "demo"], ["--jobs", "0"], "--jobs must be an integer in [1, 1,024]"),
    (["sweep", "demo"], ["--gpus", "0", "--jobs-per-gpu", "100000"],
     "--jobs-per-gpu must be an integer in [1, 1,024]"),
    (["sweep", "demo"], ["--gpus", "0,1,2,3", "--jobs-per-gpu", "1000"],
     "--gpus x --jobs-per-gpu must be at most 1,024"),
    (["sweep", "demo"], ["--gpus", "99999"], "--gpus takes device numbers in [0, 1023]"),
    (["sweep", "demo"], ["--seed", "-1"], "--seed must be an integer in [0, "),
    (["sweep", "demo"], ["--seed", BIG], "--seed must be an integer in [0, "),
    (["sweep", "demo"], ["--launcher", "slurm", "--timeout-min", BIG],
     "--timeout-min must be an integer in [1, 527,040]"),
    (["sweep", "demo"], ["--launcher", "slurm", "--array-parallelism", BIG],
     "--array-parallelism must be an integer in [1, 1,000,000]"),
    (["sweep", "demo"], ["--launcher", "slurm", "--gpus-per-job", "1000"],
     "--gpus-per-job must be an integer in [1, 64]"),
    (["sweep", "demo"], ["--launcher", "local", "--gpus-per-job", "-1"],
     "--gpus-per-job must be an integer in [0, 64]"),
    (["sweep", "demo"], ["--launcher", "slurm", "--mem-gb", BIG],
     "--mem-gb must be an integer in [1, 65,536]"),
    (["sweep", "demo"], ["--launcher", "slurm", "--cpus-per-job", "0"],
     "--cpus-per-job must be an integer in [1, 4,096]"),
    (["reproduce", "demo"], ["--jobs", BIG], "--jobs must be an integer in [1, 1,024]"),
    (["demo"], ["--gpus", "0", "--jobs-per-gpu", "100000"],
     "--jobs-per-gpu must be an integer in [1, 1,024]"),
    (["demo"], ["--launcher", "slurm", "--timeout-min", "0"],
     "--timeout-min must be an integer in [1, 527,040]"),
]


@pytest.mark.parametrize("command, words, fragment", FLAGS,
                         ids=[" ".join(c + w)[:50] for c, w, _ in FLAGS])
def test_numeric_flags_are_checked_where_read_with_their_range(tmp_path, cli_inproc, command,
                                                               words, fragment):
    """Every sweep/reproduce/demo number out of range: one line with the allowed range,
    exit 2, nothing written (before: tracebacks, a hang filling a queue of 10^30 GPU
    slots, or values Slurm would refuse after submission)."""
    runs = tmp_path / "r"
    assert_usage_error(cli_inproc(*command, "--runs-dir", runs, "--dry-run", *words), fragment)
    assert not runs.exists()


def test_other_numbers_are_checked_where_read(tmp_path, cli_inproc):
    """sql --max-rows, probe --threads, a sweep's run_cap, and the Python API's launcher
    and runner: one line with the range (before: DuckDB's and torch's overflow
    tracebacks)."""
    runs = tmp_path / "runs"
    make_runs(runs, 2)
    for args, fragment in (
            (["sql", runs, "select 1", "--max-rows", BIG],
             "--max-rows must be an integer in [0, 1,000,000,000] (0: all)"),
            (["sql", runs, "select 1", "--max-rows", "-1"], "--max-rows must be an integer"),
            (["probe", "lesion", "--runs", runs, "--threads", BIG],
             "--threads must be an integer in [0, 1,024]")):
        assert_usage_error(cli_inproc(*args), fragment)
    sweep = tmp_path / "capped.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "capped", "method": "grid", "run_cap": 10 ** 12,
        "command": ["${env}", "resnet-ablate", "train", "${args_no_hyphens}"],
        "parameters": {"model": {"value": "resnet20-A"}, "dataset": {"value": "digits"}}}))
    assert_usage_error(cli_inproc("sweep", sweep, "--dry-run"),
                       "run_cap must be an integer in [1, 10,000]")
    from resnet_ablate.errors import InputError
    from resnet_ablate.sweep import SweepRunner
    from resnet_ablate.sweep.launch import SubmititLauncher

    with pytest.raises(InputError, match=r"--timeout-min must be an integer in \[1, "):
        SubmititLauncher("slurm", timeout_min=10 ** 30)
    with pytest.raises(InputError, match=r"--jobs-per-gpu must be an integer in \[1, "):
        SweepRunner([], tmp_path / "r", "x", gpus=["0"], jobs_per_gpu=10 ** 30)


# ------------------------------------------------------------ 9. runners say the truth
RACE = """
name: race
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {value: resnet20-A}
  model.layers: {value: [1, 1, 1]}
  seed: {value: 0}
  iterations: {value: 20}
  eval_every: {value: 20}
  progress: {value: "off"}
  responses: {value: false}
  wandb: {value: disabled}
"""


def test_two_runners_never_share_a_log_nor_report_the_others_run(tmp_path):
    """Runner A (a process) starts a run; runner B (here) reaches the same run while A's
    train is still starting, before it locks the run: B finds the run's log held by A and
    skips the run, saying so. Before, B started a second train into A's log and reported
    that train's "running" (or A's failure) as its own outcome. A's log holds A's attempt
    alone; the run is trained once."""
    from resnet_ablate.sweep import SweepRunner, load_sweep, planned_runs

    path = tmp_path / "race.yaml"
    path.write_text(RACE)
    runs = tmp_path / "runs"
    planned = planned_runs(load_sweep(path))  # B's plan, made before A starts
    said: list[str] = []
    b = SweepRunner(planned, runs, "race", log=said.append)
    (run,) = planned
    log = runs / ".sweeps" / "race" / f"{run.run_id}.log"
    a = subprocess.Popen([sys.executable, "-m", "resnet_ablate", "sweep", str(path),
                          "--runs-dir", str(runs)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (log.exists() and "runner pid" in log.read_text()) and time.time() < deadline:
        time.sleep(0.02)  # A has started its train (which imports for seconds before it
    assert a.poll() is None  # locks the run)
    b.run()
    out = a.communicate(timeout=300)[0]
    assert a.returncode == 0, out
    assert f"finished {run.run_id}" in out
    (line,) = [line for line in said if run.run_id in line]  # no start, no outcome
    assert re.fullmatch(rf"\[1/1\] skip {run.run_id}: another (sweep runner|process) is "
                        "training it", line), said
    text = log.read_text()
    assert text.count("runner pid") == 1 and f"runner pid {a.pid}:" in text, text
    summary = json.loads((runs / run.run_id / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 20


def test_a_train_that_finds_its_run_locked_is_a_skip_not_an_outcome(tmp_path):
    """The runner's train exits 75 (train's code for a run another process holds: here a
    process that answers as train does): the runner says another process is training
    the run, and does not report it as its own run's outcome."""
    from resnet_ablate.sweep import SweepRunner, load_sweep, planned_runs

    path = tmp_path / "locked.yaml"
    path.write_text(yaml.safe_dump({
        "name": "locked", "method": "grid",
        "command": ["${env}", "sh", "-c", "echo 'resnet-ablate: skipped: run is being "
                    "trained by another process'; exit 75", "${args_no_hyphens}"],
        "parameters": {"model": {"value": "resnet20-A"}, "dataset": {"value": "digits"}}}))
    said: list[str] = []
    (run,) = runs = planned_runs(load_sweep(path))
    SweepRunner(runs, tmp_path / "runs", "locked", log=said.append).run()
    start, skip = [line for line in said if run.run_id in line]
    assert start.startswith(f"[1/1] start {run.run_id}: "), said
    assert skip == f"[1/1] skip {run.run_id}: another process is training it", said
