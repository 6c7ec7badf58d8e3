"""Sweep files (W&B's schema and semantics), run identity by condition and seed, the local
runner (idempotent, --jobs, --gpus, its time estimate), huge grids, --set and the data
location, and Slurm through submitit (tested with its local executor; the submission
itself as --dry-run shows it, and refused where Slurm's tools are missing)."""
import json
import os
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, assert_usage_error, history_rows
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
    from resnet_ablate.variants.resolve import resolve

    def named(request):
        return planned_run_id(request, resolve(request.config.model, request.model_overrides))

    assert named(a) != named(b)
    assert named(a) == named(parse_train_words(
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


# One run that finishes and one refused at start, on the smallest net: what the runner's
# bookkeeping needs (a train that ran, one that failed).
TWO = """
name: two
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {value: resnet20-A}
  model.layers: {value: [1, 1, 1]}
  batch_size: {values: [64, 5000]}
  iterations: {value: 4}
  eval_every: {value: 4}
  progress: {value: "off"}
  responses: {value: false}
"""


def test_sweep_is_idempotent_and_records_failures(tmp_path, cli_inproc):
    """batch_size 5000 exceeds digits' training set: that run fails at start; the other
    finishes. A rerun launches nothing; --retry-failed tries the failed one again. (With
    --gpus 0,1, each job gets one GPU: CUDA_VISIBLE_DEVICES in its environment; on CPU,
    runs train there.)"""
    path = _write(tmp_path, TWO)
    runs = tmp_path / "runs"
    first = cli_inproc("sweep", path, "--runs-dir", runs, "--gpus", "0,1")
    assert first.returncode == 1, first.stdout + first.stderr  # a run failed
    assert "2 runs, 2 to run" in first.stdout and "2 at a time" in first.stdout
    # a line per event (not a terminal): the counts, the time left, where each log is
    assert "1/2 done, 1 running, 0 failed, 0 waiting; about" in first.stdout \
        or "1/2 done, 1 running, 1 failed, 0 waiting; about" in first.stdout \
        or "1/2 done, 0 running" in first.stdout
    assert "2/2 done, 0 running, 1 failed, 0 waiting" in first.stdout
    assert first.stdout.count(f"; log {runs / '.sweeps' / 'two'}") == 2
    assert first.stdout.count("on GPU 0") + first.stdout.count("on GPU 1") == 2
    finished = sorted(p.name for p in runs.iterdir() if (p / "summary.json").exists())
    assert len(finished) == 1
    config = json.loads((runs / finished[0] / "config.json").read_text())
    assert config["env"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")
    state = json.loads((runs / ".sweeps" / "two.json").read_text())["runs"]
    failed = [r for r in state.values() if r["state"] == "failed"]
    assert len(failed) == 1 and all("exceeds the 1258 training images" in r["detail"]
                                    for r in failed)
    stamps = {f: (runs / f / "summary.json").stat().st_mtime_ns for f in finished}
    for f in finished:  # offline W&B runs without a login, one group per sweep
        assert len(list((runs / f / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    again = cli_inproc("sweep", path, "--runs-dir", runs, "--jobs", "2")
    assert "2 runs, 0 to run" in again.stdout
    assert {f: (runs / f / "summary.json").stat().st_mtime_ns for f in finished} == stamps
    assert sorted(p.name for p in runs.iterdir()) == sorted([*finished, ".sweeps"])
    dry = cli_inproc("sweep", path, "--runs-dir", runs, "--dry-run", "--retry-failed")
    assert dry.returncode == 0 and dry.stdout.count(" run ") == 1  # the failed would rerun
    retry = cli_inproc("sweep", path, "--runs-dir", runs, "--retry-failed")
    assert "2 runs, 1 to run" in retry.stdout and retry.returncode == 1


def test_each_job_gets_its_own_gpu(tmp_path, monkeypatch):
    """--gpus 0,1 --jobs-per-gpu 2: four jobs at a time, CUDA_VISIBLE_DEVICES one GPU each
    and no GPU given to more than two at once (checked through the environment each job
    receives; on CPU, runs train there); the four share the cores, unless the user set
    OMP_NUM_THREADS."""
    spec = load_sweep(_write(tmp_path, TWO))
    runs = planned_runs(spec)
    runner = SweepRunner(runs, tmp_path / "r", "two", gpus=["0", "1"], jobs_per_gpu=2)
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


def test_slurm_launcher_through_submitits_local_executor(tmp_path, cli_inproc):
    """--launcher local: the submitit path a Slurm cluster takes, on this machine; the
    jobs' runs are the sweep's, idempotent as ever."""
    body = TWO.replace("batch_size: {values: [64, 5000]}", "batch_size: {value: 64}\n"
                       "  wandb: {value: disabled}")  # one job: the array's path all the same
    path = _write(tmp_path, body)
    proc = cli_inproc("sweep", path, "--runs-dir", tmp_path / "r", "--launcher", "local",
                   "--timeout-min", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "as local jobs" in proc.stdout
    done = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/summary.json")]
    assert len(done) == 1 and {s["status"] for s in done} == {"finished"}
    assert list((tmp_path / "r" / ".sweeps" / "two" / "submitit").glob("*_result.pkl"))
    again = cli_inproc("sweep", path, "--runs-dir", tmp_path / "r", "--launcher", "local")
    assert "1 runs, 0 to run" in again.stdout


@pytest.mark.parametrize("command", [("sweep", "demo"), ("reproduce", "fig1"), ("demo",)])
def test_launcher_flags_need_a_launcher(tmp_path, cli_inproc, command):
    """Refused the same way by sweep, reproduce and demo, whatever the value (a default
    value given explicitly included)."""
    args = [*command, "--runs-dir", tmp_path / "r", "--dry-run"]
    for flags, fragment in ((["--partition", "gpu"], "--partition needs --launcher slurm"),
                            (["--timeout-min", "1440"], "--timeout-min needs --launcher"),
                            (["--gpus-per-job", "1"], "--gpus-per-job needs --launcher"),
                            (["--mem-gb", "8"], "--mem-gb needs --launcher"),
                            (["--no-wait"], "--no-wait needs --launcher slurm"),
                            (["--array-parallelism", "8"], "--array-parallelism needs"),
                            (["--launcher", "local", "--partition", "gpu"],
                             "--partition needs --launcher slurm"),
                            (["--launcher", "local", "--no-wait"], "--no-wait needs --launcher "
                                                                   "slurm"),
                            (["--launcher", "slurm", "--array-parallelism", "0"],
                             "--array-parallelism must be an integer in [1, "),
                            (["--gpus", "x"], "--gpus takes device numbers")):
        assert_usage_error(cli_inproc(*args, *flags), fragment)
    assert not (tmp_path / "r").exists()


def test_slurm_dry_run_shows_what_would_be_submitted(tmp_path, cli_inproc):
    """The array (size, parallelism), each job's resources, the logs, that it waits: in
    words and as submitit's own #SBATCH lines. No Slurm is needed to see it."""
    runs = tmp_path / "r"
    proc = cli_inproc("sweep", "demo", "--runs-dir", runs, "--dry-run", "--launcher", "slurm",
                      "--partition", "gpu", "--gpus-per-job", "2", "--cpus-per-job", "10",
                      "--mem-gb", "32", "--timeout-min", "90", "--array-parallelism", "5",
                      "--account", "lab")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    logs = runs / ".sweeps" / "demo" / "submitit"
    assert "Slurm job array: 12 job(s), one per run to train, at most 5 running at once " \
           "(--array-parallelism 5)" in out
    assert "each job: partition gpu, 2 GPU(s), 10 CPUs, 32 GB memory, time limit 1:30:00, " \
           "account lab" in out
    assert f"logs: {logs}/<array id>_<index>_0_log.out and .err" in out
    assert "then: waits until every job has ended" in out
    sbatch = [line.strip() for line in out.splitlines() if line.strip().startswith("#SBATCH")]
    for flag in ("--array=0-11%5", "--partition=gpu", "--gpus-per-node=2", "--cpus-per-task=10",
                 "--mem=32GB", "--time=90", "--account=lab", "--signal=USR2@120",
                 f"--output={logs}/%A_%a_0_log.out"):
        assert f"#SBATCH {flag}" in sbatch, flag
    assert not runs.exists()  # a dry run writes nothing
    default = cli_inproc("sweep", "demo", "--runs-dir", runs, "--dry-run", "--launcher", "slurm",
                         "--no-wait", "--only", "seed=0")
    assert "4 job(s), one per run to train, at most 4 running at once (--array-parallelism " \
           "64)" in default.stdout
    assert "partition (the cluster default), 1 GPU(s), the partition's default CPUs" in \
        default.stdout and "time limit 24:00:00" in default.stdout
    assert "returns after submitting (--no-wait) and prints the job ids" in default.stdout
    again = cli_inproc("reproduce", "fig1", "--runs-dir", runs, "--dry-run", "--launcher",
                       "slurm")
    assert "Slurm job array: 6 job(s)" in again.stdout and not runs.exists()


def test_slurm_without_its_tools_is_one_line_before_anything_is_written(tmp_path, cli_inproc,
                                                                        monkeypatch):
    """This machine has no Slurm (and PATH is cut to this Python's folder, so no sbatch is
    found wherever the tests run): one line, exit 2, no runs directory, no sweep record."""
    import sys

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    for args in (("sweep", "demo", "--runs-dir", tmp_path / "r"),
                 ("demo", "--runs-dir", tmp_path / "r", "--out", tmp_path / "rep"),
                 ("reproduce", "fig1", "--runs-dir", tmp_path / "r", "--out", tmp_path / "rep")):
        proc = cli_inproc(*args, "--launcher", "slurm", "--no-wait")
        assert_usage_error(proc, "--launcher slurm needs Slurm's sbatch and srun on PATH")
        assert not (tmp_path / "r").exists() and not (tmp_path / "rep").exists()


def test_set_overrides_or_adds_a_setting_in_every_run(tmp_path, cli_inproc):
    """--set KEY=VALUE: a parameter the sweep has takes that value in every run; a train key
    it lacks joins as a constant; a key train does not know is refused. The runs are named
    by what they train (another data_dir, another run)."""
    base = planned_runs(load_sweep("demo"))
    runs = planned_runs(load_sweep("demo"), settings={"seed": 7, "data_dir": "/data/x"})
    assert len(runs) == 4 and {r.params["seed"] for r in runs} == {7}
    assert all(r.params["data_dir"] == "/data/x" and "data_dir=/data/x" in r.shell
               for r in runs)
    assert not {r.run_id for r in runs} & {r.run_id for r in base}
    proc = cli_inproc("reproduce", "fig1", "--runs-dir", tmp_path / "r", "--dry-run",
                      "--set", "data_dir=/data/cifar", "--set", "milestones=[20,30]")
    assert proc.returncode == 0, proc.stderr
    commands = [li for li in proc.stdout.splitlines() if "resnet-ablate train" in li]
    assert len(commands) == 6 and all("data_dir=/data/cifar" in c and "milestones=" in c
                                      for c in commands)
    replay = next(li.strip() for li in proc.stdout.splitlines()
                  if li.strip().startswith("resnet-ablate sweep"))
    assert replay.endswith("--set data_dir=/data/cifar --set 'milestones=[20, 30]'")
    again = cli_inproc(*shlex.split(replay)[1:], "--dry-run")  # the same six runs
    assert sorted(li.split()[0] for li in again.stdout.splitlines() if "pending" in li) == \
        sorted(li.split()[0] for li in proc.stdout.splitlines() if "pending" in li)
    for bad, fragment in ((["--set", "colour=red"], "--set colour: unknown train key 'colour'"),
                          (["--set", "runs_dir=/x"], "--set runs_dir: the runner"),
                          (["--set", "seed"], "--set needs KEY=VALUE"),
                          (["--set", "lr=fast"], "lr: expected a number")):
        assert_usage_error(cli_inproc("sweep", "demo", "--dry-run", *bad), fragment)


def test_the_data_location_comes_from_the_user(tmp_path, cli_inproc, monkeypatch):
    """RESNET_ABLATE_DATA is data_dir's default for every run, bundled sweeps included
    (they name no data_dir of their own); data_dir= and --set data_dir= win over it."""
    words = ["model=resnet20-A", "dataset=cifar10", "--dry-run"]
    assert json.loads(cli_inproc("train", *words).stdout)["record"]["data"]["data_dir"] == "data"
    before = {r.run_id for r in planned_runs(load_sweep("cifar-degradation"))}
    monkeypatch.setenv("RESNET_ABLATE_DATA", str(tmp_path / "cifar"))
    record = json.loads(cli_inproc("train", *words).stdout)["record"]
    assert record["data"]["data_dir"] == str(tmp_path / "cifar")
    explicit = json.loads(cli_inproc("train", *words, "data_dir=/elsewhere").stdout)
    assert explicit["record"]["data"]["data_dir"] == "/elsewhere"
    for name in ("cifar-degradation", "cifar-deep", "cifar-shortcuts", "he2016-table1",
                 "he2016-table2"):
        assert "data_dir" not in load_sweep(name).parameters, name
    after = planned_runs(load_sweep("cifar-degradation"))
    assert not {r.run_id for r in after} & before  # other data, other runs
    runner = SweepRunner(after[:1], tmp_path / "r", "x")
    assert runner.env(after[0])["RESNET_ABLATE_DATA"] == str(tmp_path / "cifar")  # the job's
    overridden = planned_runs(load_sweep("cifar-degradation"), settings={"data_dir": "data"})
    assert {r.run_id for r in overridden} == before


def test_time_estimate_weighs_each_run_by_its_size(tmp_path):
    """MACs x images per run (counted, not guessed): a 56-layer run is expected to take its
    MACs' ratio to a 20-layer one; the estimate is the ended runs' seconds per unit of work
    times the work still to do, over the jobs at once."""
    import resnet_ablate as ra
    from resnet_ablate.sweep.scheduler import planned_work

    spec = load_sweep("demo")
    runs = planned_runs(spec, only={"seed": [0]})
    by_model = {r.params["model"]: r for r in runs}
    work = {m: planned_work(r) for m, r in by_model.items()}
    macs = {m: ra.complexity(ra.create_model(m, in_chans=3), input_size=8,
                             with_fvcore=False)["macs"] for m in by_model}
    protocol = parse_train_words(["protocol=demo"]).protocol
    for m in by_model:
        assert work[m] == macs[m] * protocol.iterations * protocol.batch_size, m
    assert 3.0 < work["resnet56-A"] / work["resnet20-A"] < 3.2  # 27 units vs 9
    runner = SweepRunner(runs, tmp_path / "r", "demo", jobs=2)
    runner.todo_at_start = runs
    runner._work = {r.run_id: work[m] for m, r in by_model.items()}
    first = by_model["resnet20-A"]
    first.state, first.seconds = "finished", 30.0
    left = runner.seconds_left([first])
    rest = sum(work[m] for m in by_model if m != "resnet20-A")
    assert left == pytest.approx(30.0 / work["resnet20-A"] * rest / 2)
    # unknown sizes (a plugin's part): the mean time of the ended runs, as before
    runner._work = {}
    assert runner.seconds_left([first]) == pytest.approx(30.0 * 3 / 2)


def test_milestones_beyond_the_end_warn_in_one_line_and_the_summary_says_so(tmp_path, cli_inproc):
    """iterations=4 under the demo protocol (milestones 600, 900): the step schedule never
    divides the lr; one warning line, and summary.json's schedule_warnings."""
    proc = cli_inproc("train", "model=plain20", "model.layers=[1,1,1]", "protocol=demo",
                      "iterations=4", "eval_every=4", "progress=lines", "wandb=disabled",
                      "responses=false", f"runs_dir={tmp_path}", "run_id=w")
    assert proc.returncode == 0, proc.stderr
    warnings = [li for li in proc.stderr.splitlines() if "warning:" in li]
    assert warnings == ["[w] warning: milestones 600, 900 are at or beyond the last iteration "
                        "(4): the step schedule never divides the lr there"]
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["schedule_warnings"] == [warnings[0].split("warning: ", 1)[1]]
    assert set(history_rows(tmp_path / "w")["lr"]) == {0.1}  # the lr never stepped


def test_a_preempted_slurm_job_checkpoints_and_its_requeue_resumes(tmp_path):
    """What submitit does on preemption or at the time limit: it calls the job's
    checkpoint(); ours asks the run to save (SIGTERM) and requeues the same command, which
    continues the run from its checkpoint (resume=auto)."""
    import threading

    from resnet_ablate.sweep.launch import RunJob

    spec = load_sweep(_write(tmp_path, TWO.replace("batch_size: {values: [64, 5000]}",
                                                   "batch_size: {value: 64}").replace(
        "iterations: {value: 4}", "iterations: {value: 50}").replace(
        "eval_every: {value: 4}", "eval_every: {value: 50}").replace(
        "progress: {value: \"off\"}", "progress: {value: lines}\n  wandb: {value: disabled}\n"
        "  checkpoint_every: {value: 10}")))
    run = planned_runs(spec)[0]
    runner = SweepRunner([run], tmp_path / "r", "tiny")
    job = RunJob(run.command, runner.env(run))
    result = {}
    thread = threading.Thread(target=lambda: result.update(out=job()))
    thread.start()
    log = tmp_path / "r" / run.run_id / "history.parquet"
    for _ in range(3000):  # until it trains (stop signals are deferred from then on): the
        if log.exists():  # first evaluation (10) has passed; the checkpoint at 10
            break
        time.sleep(0.1)
    requeued = job.checkpoint()
    thread.join(timeout=300)
    code, out = result["out"]
    assert code == 143 and "SIGTERM received" in out
    assert not (tmp_path / "r" / run.run_id / "summary.json").exists()
    code, out = requeued.function(*requeued.args, **requeued.kwargs)
    assert code == 0, out
    assert "resuming at iteration" in out
    s = json.loads((tmp_path / "r" / run.run_id / "summary.json").read_text())
    assert s["status"] == "finished" and s["iterations"] == 50


def test_a_signal_to_the_runner_reaches_its_runs_and_starts_no_more(tmp_path):
    """SIGTERM to the sweep runner alone (a scheduler's preemption, `kill PID`): the run in
    flight gets it, checkpoints and stops; the next run never starts; the runner exits 143
    and leaves no train process behind (before: the runner died, its children trained on)."""
    import signal
    import subprocess
    import sys

    sweep = _write(tmp_path, """
name: stop
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [resnet20-A, plain20]}
  model.layers: {value: [1, 1, 1]}
  iterations: {value: 1000000}
  eval_every: {value: 1000000}
  log_every: {value: 2}
  progress: {value: lines}
  wandb: {value: disabled}
""")
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "resnet_ablate", "sweep", str(sweep),
                             "--runs-dir", str(runs)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    first = None
    while time.time() < deadline and first is None:  # the first run is training
        first = next((d for d in runs.glob("resnet20-A-*") if (d / "config.json").exists()),
                     None)
        time.sleep(0.5)
    assert first is not None, proc.stdout.read() if proc.poll() is not None else "no run"
    log = runs / ".sweeps" / "stop" / f"{first.name}.log"  # the run's output, by the runner
    while time.time() < deadline and not (  # it trains: stop signals are deferred from then
            log.exists() and f"[{first.name}] iter " in log.read_text()):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 143, out
    assert "stopped by SIGTERM" in out, out
    assert list((first / "checkpoints").glob("ckpt-*.pt")), out  # it checkpointed
    assert not list(runs.glob("plain20-*")), "the second run started"
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit()
            and first.name.encode() in _cmdline(p)]
    assert not left, "a train process outlived the runner"


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_sweep_on_a_terminal_redraws_its_runs_in_place(tmp_path):
    """On a terminal: a block under the runner's lines, redrawn in place (cursor up, clear),
    with the counts, each running run's iteration, its own time left and its log; an event
    line clears the block first. Off a terminal: no escape at all."""
    import io

    from resnet_ablate.sweep.display import UP_CLEAR, Display, last_iteration

    log = tmp_path / "r.log"
    log.write_text("[r] iter 10/100 loss 1.0\n[r] iter 40/100 loss 0.5\n")
    assert last_iteration(log) == (40, 100)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    header = "sweep s: 1/3 done, 1 running, 0 failed, 1 waiting"
    d = Display(lambda: header, Tty(), 0.05)
    d.add("r", log)
    first = d.lines(now=100.0)
    log.write_text("[r] iter 70/100 loss 0.2\n")
    later = d.lines(now=130.0)  # 30 iterations in 30 s: 30 left, 30 s
    assert first == [header, f"  r: iter 40/100; log {log}"]
    assert later[1] == f"  r: iter 70/100, about 30 s left; log {log}"
    out, said = Tty(), []
    with Display(lambda: header, out, 0.05) as d:
        d.add("r", log)
        d.say("start", said.append)
        time.sleep(0.2)
        d.say("finished", said.append)
    assert said == ["start", "finished"]
    text = out.getvalue()
    assert "  r: iter 70/100" in text and UP_CLEAR.format(n=2) in text
    plain = io.StringIO()
    with Display(lambda: "x", plain, 0.05) as d:
        d.add("r", log)
        time.sleep(0.2)
        d.say("an event", print)
    assert plain.getvalue() == ""  # a pipe gets the runner's lines only


def test_a_sweeps_milestones_past_its_last_iteration_warn_once_in_the_dry_run(tmp_path,
                                                                             cli_inproc):
    path = tmp_path / "ms.yaml"
    path.write_text("name: ms\nmethod: grid\ncommand: [\"${env}\", resnet-ablate, train, "
                    "\"${args_no_hyphens}\"]\nparameters:\n  model: {values: [plain20, "
                    "resnet20-A]}\n  iterations: {value: 200}\n  milestones: {value: [300, "
                    "450]}\n")
    proc = cli_inproc("sweep", path, "--dry-run", "--runs-dir", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and "milestones 300, 450 are at or beyond the last iteration " \
        "(200)" in warned[0]
