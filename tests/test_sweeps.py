"""Sweep files (W&B's schema and semantics), run identity by condition and seed, the local
runner (idempotent, --jobs, --gpus), huge grids, and Slurm through submitit (tested with
its local executor)."""
import json
import os
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, assert_usage_error
from resnet_ablate.bundled import folder, names
from resnet_ablate.run.config import parse_train_words
from resnet_ablate.sweep import (SweepRunner, expand_command, grid_size,
                                 load_sweep, plan, planned_runs)
from resnet_ablate.sweep.sweepfile import schema_errors, wandb_schema

SWEEPS = names("sweeps")


def test_every_sweep_file_is_valid_for_wandb():
    schema = wandb_schema()
    assert schema is not None, "W&B's sweep schema: `make install` adds the sweeps package"
    for name in SWEEPS:
        raw = yaml.safe_load((folder("sweeps") / f"{name}.yaml").read_text())
        assert schema_errors(raw, schema) == [], name
        assert any("${args_no_hyphens}" == c for c in raw["command"]), name
    # the checkout's top-level sweeps/ is the bundled folder (what `wandb sweep` reads)
    assert sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml")) == SWEEPS


def test_schema_check_catches_what_wandb_would_refuse():
    schema = wandb_schema()
    errors = schema_errors({"method": "grd", "parameters": {"a": {"values": [1]}}}, schema)
    assert errors and errors[0].startswith("method:")


@pytest.mark.parametrize("name", SWEEPS)
def test_every_planned_run_is_a_valid_train_command(name):
    spec = load_sweep(name)
    runs = planned_runs(spec)
    assert runs
    for run in runs:
        assert run.command[:3] == ["/usr/bin/env", "resnet-ablate", "train"]
        request = parse_train_words(run.command[3:])
        assert request.config.model == run.params["model"]
        assert run.run_id.startswith(f"{run.params['model']}-s{run.params.get('seed', 0)}-")


def test_paper_sweeps_cover_the_papers():
    def models(name):
        return {c["model"] for c in plan(load_sweep(name))}
    assert models("cifar-degradation") == {f"plain{d}" for d in (20, 32, 44, 56)} | {
        f"resnet{d}-A" for d in (20, 32, 44, 56, 110)}
    assert {"resnet110-A", "resnet1202-A"} <= models("cifar-deep")
    assert models("imagenet-table2") == {"plain18", "plain34", "resnet18-A", "resnet34-A"}
    assert models("imagenet-table3") == {"resnet34-A", "resnet34-B", "resnet34-C",
                                         "resnet50-B", "resnet101-B", "resnet152-B"}
    from resnet_ablate.reference import HE2016_TABLE1, HE2016_TABLE2

    assert models("he2016-table1") == set(HE2016_TABLE1)
    assert models("he2016-table2") == set(HE2016_TABLE2)
    seeds = {c["seed"] for c in plan(load_sweep("cifar-degradation"))}
    assert len(seeds) >= 3


def test_command_expansion_is_wandb_agents():
    spec = load_sweep("demo")
    assert expand_command(spec, {"model": "plain20", "seed": 0, "flip": False,
                                 "milestones": [5, 10]}) == [
        "/usr/bin/env", "resnet-ablate", "train", "model=plain20", "seed=0", "flip=False",
        "milestones=[5, 10]"]
    req = parse_train_words(["flip=False", "milestones=[5, 10]"])  # W&B's renderings parse
    assert req.protocol.flip is False and req.protocol.milestones == (5, 10)


def test_a_run_is_its_condition_and_seed_not_its_sweep():
    """fig6-table6 lists resnet110-A in two sweeps: planned once per seed. The same
    condition planned by another sweep gets the same run id; another lr, another id."""
    from resnet_ablate.pipeline import load_experiment, plan_experiment

    runs = plan_experiment(load_experiment("fig6-table6"))
    r110 = [r for r in runs if r.params["model"] == "resnet110-A"]
    assert len(r110) == 3 and len({r.run_id for r in runs}) == len(runs)
    deg = {r.run_id for r in planned_runs(load_sweep("cifar-degradation"))}
    deep = {r.run_id for r in planned_runs(load_sweep("cifar-deep"))}
    assert len(deg & deep) == 3  # resnet110-A x 3 seeds: shared
    a = parse_train_words(["model=resnet56-A", "dataset=cifar10", "lr=0.1"])
    b = parse_train_words(["model=resnet56-A", "dataset=cifar10", "lr=0.05"])
    from resnet_ablate.run.record import planned_run_id

    assert planned_run_id(a) != planned_run_id(b)
    assert planned_run_id(a) == planned_run_id(parse_train_words(
        ["model=ResNet56_A", "dataset=cifar10", "protocol=he2015-cifar"]))


def _write(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


GOOD = """
method: grid
command: [ "${env}", resnet-ablate, train, "${args_no_hyphens}" ]
parameters:
  model: {values: [plain20, resnet20-A]}
  seed: {value: 0}
"""


@pytest.mark.parametrize("body, fragment", [
    (GOOD.replace("method: grid", "method: hyperband"), "method 'hyperband' is unknown; "
                                                        "allowed: grid, random, bayes"),
    (GOOD.replace("method: grid\n", ""), "method is missing"),
    ("method: grid\ncommand: [a, '${args_no_hyphens}']\n", "parameters are missing"),
    (GOOD.replace("seed: {value: 0}", "learning_rate: {value: 0.1}"),
     "parameters.learning_rate: unknown train key 'learning_rate'"),
    (GOOD.replace("seed: {value: 0}", "lr: {values: [fast]}"), "lr: expected a number"),
    (GOOD.replace("seed: {value: 0}", "lr: {values: [.nan]}"), "lr must be a finite number"),
    (GOOD.replace("plain20", "plain21"), "unknown model 'plain21'"),
    (GOOD.replace('"${args_no_hyphens}"', "x"), "command passes no parameters"),
    (GOOD.replace("seed: {value: 0}", "seed: [0, 1]"), "parameters.seed must be a mapping"),
    (GOOD.replace("seed: {value: 0}", "run_id: {value: x}"), "parameters.run_id: the runner"),
    (GOOD.replace("seed: {value: 0}", "runs_dir: {value: /tmp}"), "parameters.runs_dir"),
    ("method: grid\nparameters: [\n", "not valid YAML"),
    ("- a\n- b\n", "a sweep file is a mapping"),
    (GOOD.replace("{value: 0}", "{distribution: uniform, min: 0, max: 1}"),
     "grid sweeps need value, values"),
    (GOOD.replace("method: grid", "method: random"), "give run_cap"),
    (GOOD.replace("method: grid", "method: bayes"), "needs W&B's server-side controller"),
])
def test_malformed_sweep_is_refused_before_launching(tmp_path, cli_inproc, body, fragment):
    path = _write(tmp_path, body)
    assert_usage_error(cli_inproc("sweep", path, "--runs-dir", tmp_path / "runs"), fragment)
    assert not (tmp_path / "runs").exists()


def test_unknown_sweep_names_the_bundled_ones(cli_inproc):
    assert_usage_error(cli_inproc("sweep", "cifar-degradaton"),
                       "unknown sweep 'cifar-degradaton'", "cifar-degradation")


def test_grid_follows_wandb_semantics(tmp_path):
    spec = load_sweep(_write(tmp_path, """
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, plain20, resnet20-A]}
  seed: {distribution: int_uniform, min: 0, max: 2}
  lr: {distribution: q_uniform, min: 0.1, max: 0.3, q: 0.1}
  dataset: {value: digits}
"""))
    configs = plan(spec)
    lrs = np.arange(0.1, 0.3, 0.1).tolist()  # W&B's q_uniform grid, float steps included
    assert len(configs) == 2 * 3 * len(lrs)  # duplicates dropped; int_uniform inclusive
    assert configs[0] == {"model": "plain20", "seed": 0, "lr": 0.1, "dataset": "digits"}
    assert sorted({c["lr"] for c in configs}) == lrs


def test_a_huge_grid_is_sized_from_its_axes_and_taken_lazily(tmp_path, cli_inproc):
    """10^10 configurations: refused without --count; --dry-run --count 3 answers at once."""
    body = GOOD.replace("seed: {value: 0}", "seed: {distribution: int_uniform, min: 0, "
                        "max: 99999}\n  iterations: {distribution: int_uniform, min: 1, "
                        "max: 50000}\n  eval_every: {values: [1, 2]}")
    path = _write(tmp_path, body)
    spec = load_sweep(path)
    assert grid_size(spec) == 2 * 100_000 * 50_000 * 2
    assert_usage_error(cli_inproc("sweep", path, "--dry-run"), "the grid has 20,000,000,000 "
                       "configurations", "--count N")
    start = time.perf_counter()
    proc = cli_inproc("sweep", path, "--dry-run", "--count", "3", "--runs-dir",
                      tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - start < 60  # built eagerly, 10^10 configurations: hours
    assert proc.stdout.count("resnet-ablate train model=") == 3
    assert not (tmp_path / "r").exists()


def test_random_sweep_is_seeded_and_capped(tmp_path):
    spec = load_sweep(_write(tmp_path, """
method: random
run_cap: 7
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, resnet20-A]}
  lr: {distribution: log_uniform_values, min: 0.01, max: 0.5}
  weight_decay: {distribution: uniform, min: 0.0, max: 0.001}
  seed: {min: 0, max: 9}
"""))
    a, b = plan(spec), plan(spec)
    assert a == b and len(a) == 7
    assert all(0.01 <= c["lr"] <= 0.5 and 0 <= c["weight_decay"] <= 0.001 for c in a)
    assert all(isinstance(c["seed"], int) and 0 <= c["seed"] <= 9 for c in a)
    assert len(plan(spec, count=3)) == 3 and plan(spec, seed=1) != a


def test_dry_run_commands_are_quoted_for_a_shell(tmp_path, cli_inproc):
    """A value that looks like shell code is one quoted word when pasted."""
    path = _write(tmp_path, GOOD.replace("seed: {value: 0}",
                                         "wandb_project: {value: 'x; touch PWNED'}"))
    proc = cli_inproc("sweep", path, "--dry-run", "--runs-dir", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    line = next(li for li in proc.stdout.splitlines() if "resnet-ablate train" in li)
    command = line[line.index("/usr/bin/env"):].strip()
    assert shlex.split(command)[-1] == "wandb_project=x; touch PWNED"
    assert "'wandb_project=x; touch PWNED'" in command


def test_dry_run_launches_nothing(tmp_path, cli_inproc):
    proc = cli_inproc("sweep", "demo", "--runs-dir", tmp_path / "r", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("resnet-ablate train model=") == 12
    assert not (tmp_path / "r").exists()
    only = cli_inproc("sweep", "demo", "--runs-dir", tmp_path / "r", "--dry-run", "--only",
                      "model=plain20,plain56", "--only", "seed=0")
    assert only.stdout.count("resnet-ablate train model=") == 2


def test_reproduce_dry_run_prints_replayable_sweep_commands(tmp_path, cli_inproc):
    proc = cli_inproc("reproduce", "fig1", "--dry-run", "--runs-dir", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    runs = [line for line in proc.stdout.splitlines() if "pending" in line]
    assert len(runs) == 6 and all("plain20" in r or "plain56" in r for r in runs)
    replay = next(line.strip() for line in proc.stdout.splitlines()
                  if line.strip().startswith("resnet-ablate sweep"))
    assert replay == (f"resnet-ablate sweep cifar-degradation --runs-dir {tmp_path / 'r'} "
                      "--jobs 1 --only model=plain20,plain56")
    again = cli_inproc(*shlex.split(replay)[1:], "--dry-run")  # the same six runs
    assert sorted(li.split()[0] for li in again.stdout.splitlines() if "pending" in li) == \
        sorted(r.split()[0] for r in runs)


TINY = """
name: tiny
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, resnet20-A]}
  batch_size: {values: [64, 5000]}
  iterations: {value: 20}
  eval_every: {value: 10}
  progress: {value: "off"}
  responses: {value: false}
"""


def test_sweep_is_idempotent_and_records_failures(tmp_path, cli_inproc):
    """batch_size 5000 exceeds digits' training set: those runs fail at start; the others
    finish. A rerun launches nothing; --retry-failed tries the failed ones again."""
    path = _write(tmp_path, TINY)
    runs = tmp_path / "runs"
    first = cli_inproc("sweep", path, "--runs-dir", runs, "--jobs", "2")
    assert first.returncode == 1, first.stdout + first.stderr  # some runs failed
    assert "4 runs, 4 to run" in first.stdout and "done; about" in first.stdout  # an ETA
    finished = sorted(p.name for p in runs.iterdir() if (p / "summary.json").exists())
    assert len(finished) == 2
    state = json.loads((runs / ".sweeps" / "tiny.json").read_text())["runs"]
    failed = [r for r in state.values() if r["state"] == "failed"]
    assert len(failed) == 2 and all("exceeds the 1258 training images" in r["detail"]
                                    for r in failed)
    stamps = {f: (runs / f / "summary.json").stat().st_mtime_ns for f in finished}
    for f in finished:  # offline W&B runs without a login, one group per sweep
        assert len(list((runs / f / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    again = cli_inproc("sweep", path, "--runs-dir", runs, "--jobs", "2")
    assert "4 runs, 0 to run" in again.stdout
    assert {f: (runs / f / "summary.json").stat().st_mtime_ns for f in finished} == stamps
    assert sorted(p.name for p in runs.iterdir()) == sorted([*finished, ".sweeps"])
    dry = cli_inproc("sweep", path, "--runs-dir", runs, "--dry-run", "--retry-failed")
    assert dry.returncode == 0 and dry.stdout.count(" run ") == 2  # the 2 failed would rerun
    retry = cli_inproc("sweep", path, "--runs-dir", runs, "--retry-failed")
    assert "4 runs, 2 to run" in retry.stdout and retry.returncode == 1


def test_each_job_gets_its_own_gpu(tmp_path, monkeypatch):
    """--gpus 0,1 --jobs-per-gpu 2: four jobs at a time, CUDA_VISIBLE_DEVICES one GPU each
    and no GPU given to more than two at once (checked through the environment each job
    receives; on CPU, runs train there); the four share the cores, unless the user set
    OMP_NUM_THREADS."""
    spec = load_sweep(_write(tmp_path, TINY))
    runs = planned_runs(spec)
    runner = SweepRunner(runs, tmp_path / "r", "tiny", gpus=["0", "1"], jobs_per_gpu=2)
    assert runner.jobs == 4
    taken = [runner.slots.get() for _ in range(4)]
    assert sorted(taken) == ["0", "0", "1", "1"] and runner.slots.empty()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the test workers set their own
    env = runner.env(runs[0], gpu="1")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 4))
    assert env["WANDB_RUN_ID"] == runs[0].run_id and env["RESNET_ABLATE_RESUME"] == "auto"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's value is kept
    assert runner.env(runs[0], gpu="1")["OMP_NUM_THREADS"] == "3"


def test_sweep_on_gpus_runs_every_job_with_one(tmp_path, cli_inproc):
    body = TINY.replace("batch_size: {values: [64, 5000]}", "batch_size: {value: 64}\n"
                        "  wandb: {value: disabled}")
    path = _write(tmp_path, body)
    proc = cli_inproc("sweep", path, "--runs-dir", tmp_path / "r", "--gpus", "0,1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("on GPU 0") + proc.stdout.count("on GPU 1") == 2
    for config in (tmp_path / "r").glob("*/config.json"):
        assert json.loads(config.read_text())["env"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")


def test_slurm_launcher_through_submitits_local_executor(tmp_path, cli_inproc):
    """--launcher local: the submitit path a Slurm cluster takes, on this machine; the
    jobs' runs are the sweep's, idempotent as ever."""
    body = TINY.replace("batch_size: {values: [64, 5000]}", "batch_size: {value: 64}\n"
                        "  wandb: {value: disabled}")
    path = _write(tmp_path, body)
    proc = cli_inproc("sweep", path, "--runs-dir", tmp_path / "r", "--launcher", "local",
                   "--timeout-min", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "as local jobs" in proc.stdout
    done = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/summary.json")]
    assert len(done) == 2 and {s["status"] for s in done} == {"finished"}
    assert list((tmp_path / "r" / ".sweeps" / "tiny" / "submitit").glob("*_result.pkl"))
    again = cli_inproc("sweep", path, "--runs-dir", tmp_path / "r", "--launcher", "local")
    assert "2 runs, 0 to run" in again.stdout


def test_launcher_flags_need_a_launcher(tmp_path, cli_inproc):
    assert_usage_error(cli_inproc("sweep", "demo", "--partition", "gpu", "--dry-run"),
                       "--partition needs --launcher slurm")
    assert_usage_error(cli_inproc("sweep", "demo", "--gpus", "x", "--dry-run"),
                       "--gpus takes device numbers")


def test_a_preempted_slurm_job_checkpoints_and_its_requeue_resumes(tmp_path):
    """What submitit does on preemption or at the time limit: it calls the job's
    checkpoint(); ours asks the run to save (SIGTERM) and requeues the same command, which
    continues the run from its checkpoint (resume=auto)."""
    import threading

    from resnet_ablate.sweep.launch import RunJob

    spec = load_sweep(_write(tmp_path, TINY.replace("batch_size: {values: [64, 5000]}",
                                                    "batch_size: {value: 64}").replace(
        "iterations: {value: 20}", "iterations: {value: 60}").replace(
        "progress: {value: \"off\"}", "progress: {value: lines}\n  wandb: {value: disabled}\n"
        "  checkpoint_every: {value: 20}")))
    run = planned_runs(spec)[0]
    runner = SweepRunner([run], tmp_path / "r", "tiny")
    job = RunJob(run.command, runner.env(run))
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=job()))
    thread.start()
    log = tmp_path / "r" / run.run_id / "history.csv"
    for _ in range(600):  # until it has trained a while
        if log.exists() and len(log.read_text().splitlines()) > 25:
            break
        time.sleep(0.5)
    requeued = job.checkpoint()
    thread.join(timeout=300)
    code, out = result["out"]
    assert code == 143 and "SIGTERM received" in out
    assert not (tmp_path / "r" / run.run_id / "summary.json").exists()
    code, out = requeued.function(*requeued.args, **requeued.kwargs)
    assert code == 0, out
    assert "resuming at iteration" in out
    s = json.loads((tmp_path / "r" / run.run_id / "summary.json").read_text())
    assert s["status"] == "finished" and s["iterations"] == 60
