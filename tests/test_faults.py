"""Faults, and nothing lost: two processes on one run (or one runs dir) never train a run
twice at once; a disk that fills at the final save leaves a failed run that resumes; a
killed process leaves no stale lock."""
import importlib
import json
import resource
import subprocess
import sys
import time

from conftest import SMALL, history_rows


def _train(*words, **kw):
    return subprocess.Popen([sys.executable, "-m", "resnet_ablate", "train", *words],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_two_trains_of_one_run_never_run_at_once(tmp_path, cli_inproc):
    words = [*SMALL, "iterations=100", "model.layers=[1,1,1]", f"runs_dir={tmp_path}",
             "run_id=r"]
    from resnet_ablate.run.rundir import RunDir

    importlib.import_module("resnet_ablate.train.session")  # imported before the race, not in it

    first = _train(*words)
    deadline = time.time() + 300
    while not RunDir(tmp_path, "r").locked_by_other() and time.time() < deadline:
        time.sleep(0.05)  # until it holds the lock (from before data: its whole run)
    assert first.poll() is None, first.communicate()[0]
    second = cli_inproc("train", *words, "resume=auto")
    assert second.returncode == 75, second.stderr
    assert "skipped" in second.stderr and "being trained by another process" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["status"] == "finished" and s["iterations"] == 100
    assert len(history_rows(tmp_path / "r")) == 100


SWEEP = """
name: race
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, resnet20-A]}
  model.layers: {value: [1, 1, 1]}
  seed: {value: 0}
  iterations: {value: 20}
  eval_every: {value: 20}
  progress: {value: "off"}
  responses: {value: false}
  wandb: {value: disabled}
"""


def test_two_sweep_runners_on_one_runs_dir_train_each_run_once(tmp_path):
    path = tmp_path / "race.yaml"
    path.write_text(SWEEP)
    runs = tmp_path / "runs"
    procs = [subprocess.Popen([sys.executable, "-m", "resnet_ablate", "sweep", str(path),
                               "--runs-dir", str(runs)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    text = "\n".join(outs)
    run_ids = sorted(p.name for p in runs.iterdir() if not p.name.startswith("."))
    assert len(run_ids) == 2
    for rid in run_ids:
        s = json.loads((runs / rid / "summary.json").read_text())
        assert s["status"] == "finished", rid
        trained = sum(f"finished {rid}" in line for line in text.splitlines())
        skipped = sum(rid in line and ("skip" in line or "running" in line)
                      for line in text.splitlines())
        assert trained == 1, (rid, text)  # trained by exactly one of the two runners
        assert trained + skipped >= 1


def test_a_run_another_runner_ended_is_skipped_and_said_so(tmp_path, cli_inproc,
                                                           monkeypatch):
    """A race between runners made certain: the run ends (by the runner's own command, as
    another runner would run it; here in this process, as the runner reads only the run's
    files) after this runner planned it and before it launches: trained once, one line that
    says another process ended it, no failure. (The later window, the run ending while this
    runner's train starts, is the two-runner test's.)"""
    from resnet_ablate.sweep import SweepRunner, load_sweep, planned_runs

    path = tmp_path / "race.yaml"
    path.write_text(SWEEP.replace("model: {values: [plain20, resnet20-A]}",
                                  "model: {value: resnet20-A}"))
    run = planned_runs(load_sweep(path))[0]
    said: list[str] = []
    runner = SweepRunner([run], tmp_path / "runs", "race", log=said.append)
    assert run.state == "pending"
    assert run.command[:3] == ["/usr/bin/env", "resnet-ablate", "train"]
    for key, value in runner.env(run).items():  # the environment the runner gives it
        if key.startswith(("WANDB_RUN_", "RESNET_ABLATE_")):
            monkeypatch.setenv(key, value)
    other = cli_inproc(*run.command[2:])  # another runner trains it meanwhile
    assert other.returncode == 0, other.stderr
    summary = tmp_path / "runs" / run.run_id / "summary.json"
    stamp = summary.stat().st_mtime_ns
    runner.run()
    assert any(f"skip {run.run_id}: another process ended it (finished)" in line
               for line in said), said
    assert not any("] start " in line or "] failed " in line for line in said), said
    assert summary.stat().st_mtime_ns == stamp and run.state == "finished"


def _limit(size: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def test_a_disk_full_at_the_final_save_is_a_failed_run_that_resumes(tmp_path, cli_inproc):
    """The last checkpoint cannot be written (files over 1 MB fail, as on a full disk):
    status failed, with the resume hint; resume=true then ends the run from the previous
    checkpoint, as if nothing happened."""
    words = [*SMALL, "iterations=40", f"runs_dir={tmp_path}", "run_id=full"]
    first = _train(*words)
    for line in first.stdout:
        if "iter 25/40" in line:  # the checkpoint at 20 exists
            break
    first.kill()
    first.wait()
    full = subprocess.run([sys.executable, "-m", "resnet_ablate", "train", *words,
                           "resume=true", "checkpoint_every=0"], capture_output=True, text=True,
                          timeout=300, preexec_fn=_limit(1_000_000))
    assert full.returncode == 1, full.stderr
    assert "could not save the final weights (File too large)" in full.stderr
    s = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert s["status"] == "failed" and "resume=true run_id=full" in s["error"]
    assert not list((tmp_path / "full").rglob("*.tmp"))  # the failed save left nothing
    resumed = cli_inproc("train", *words, "resume=true")  # (no limit: no process of its own)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration 20" in resumed.stderr
    s = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert s["status"] == "finished" and s["iterations"] == 40
