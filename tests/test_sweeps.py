"""Sweep files (W&B's schema and semantics) and the local runner (idempotent, --jobs)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, assert_usage_error, run_cli
from resnet_ablate.config import parse_train_words
from resnet_ablate.sweep import SweepError, expand_command, load_sweep, plan
from resnet_ablate.sweep.spec import schema_errors, wandb_schema

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def test_every_sweep_file_is_valid_for_wandb():
    schema = wandb_schema()
    assert schema is not None, "W&B's sweep schema: `make install` adds the sweeps package"
    assert len(SWEEPS) >= 6
    for path in SWEEPS:
        raw = yaml.safe_load(path.read_text())
        assert schema_errors(raw, schema) == [], path.name
        assert any("${args_no_hyphens}" == c for c in raw["command"]), path.name


def test_schema_check_catches_what_wandb_would_refuse():
    schema = wandb_schema()
    errors = schema_errors({"method": "grd", "parameters": {"a": {"values": [1]}}}, schema)
    assert errors and errors[0].startswith("method:")


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_planned_run_is_a_valid_train_command(path):
    spec = load_sweep(path)
    configs = plan(spec)
    assert configs
    for params in configs:
        cmd = expand_command(spec, params)
        assert cmd[:3] == ["/usr/bin/env", "resnet-ablate", "train"]
        request = parse_train_words(cmd[3:])
        assert request.config.model == params["model"]


def test_paper_sweeps_cover_the_paper():
    def models(name):
        return {c["model"] for c in plan(load_sweep(REPO / "sweeps" / f"{name}.yaml"))}
    assert models("cifar-degradation") == {f"plain{d}" for d in (20, 32, 44, 56)} | {
        f"resnet{d}-A" for d in (20, 32, 44, 56, 110)}
    assert {"resnet110-A", "resnet1202-A"} <= models("cifar-deep")
    assert models("imagenet-table2") == {"plain18", "plain34", "resnet18-A", "resnet34-A"}
    assert models("imagenet-table3") == {"resnet34-A", "resnet34-B", "resnet34-C",
                                         "resnet50-B", "resnet101-B", "resnet152-B"}
    seeds = {c["seed"] for c in plan(load_sweep(REPO / "sweeps" / "cifar-degradation.yaml"))}
    assert len(seeds) >= 3


def test_command_expansion_is_wandb_agents():
    spec = load_sweep(REPO / "sweeps" / "demo.yaml")
    assert expand_command(spec, {"model": "plain20", "seed": 0, "flip": False,
                                 "milestones": [5, 10]}) == [
        "/usr/bin/env", "resnet-ablate", "train", "model=plain20", "seed=0", "flip=False",
        "milestones=[5, 10]"]
    req = parse_train_words(["flip=False", "milestones=[5, 10]"])  # W&B's renderings parse
    assert req.protocol.flip is False and req.protocol.milestones == (5, 10)


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
    (GOOD.replace("plain20", "plain21"), "unknown model 'plain21'"),
    (GOOD.replace('"${args_no_hyphens}"', "x"), "command passes no parameters"),
    (GOOD.replace("seed: {value: 0}", "seed: [0, 1]"), "parameters.seed must be a mapping"),
    ("method: grid\nparameters: [\n", "not valid YAML"),
    (GOOD.replace("{value: 0}", "{distribution: uniform, min: 0, max: 1}"),
     "grid sweeps need value, values"),
    (GOOD.replace("method: grid", "method: random"), "give run_cap"),
    (GOOD.replace("method: grid", "method: bayes"), "needs W&B's server-side controller"),
])
def test_malformed_sweep_is_refused_before_launching(tmp_path, cli_inproc, body, fragment):
    path = _write(tmp_path, body)
    assert_usage_error(cli_inproc("sweep", path, "--runs-dir", tmp_path / "runs"), fragment)
    assert not (tmp_path / "runs").exists()


def test_malformed_sweep_in_a_real_process(tmp_path):
    path = _write(tmp_path, GOOD.replace("method: grid", "method: hyperband"))
    assert_usage_error(run_cli("sweep", path, "--runs-dir", tmp_path / "runs"),
                       "method 'hyperband' is unknown")
    assert not (tmp_path / "runs").exists()


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
    assert "4 runs, 4 to run" in first.stdout
    finished = sorted(p.name for p in runs.iterdir() if (p / "summary.json").exists())
    assert len(finished) == 2 and all("batch_size64" in f for f in finished)
    state = json.loads((runs / ".sweeps" / "tiny.json").read_text())["runs"]
    failed = [r for r in state.values() if r["state"] == "failed"]
    assert len(failed) == 2 and all("exceeds the 1258 training images" in r["detail"]
                                    for r in failed)
    stamps = {f: (runs / f / "summary.json").stat().st_mtime_ns for f in finished}
    for f in finished:  # offline W&B runs without a login, one group per sweep
        offline = list((runs / f / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(offline) == 1
    records = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect",
                              "--json", str(offline[0])], capture_output=True, text=True,
                             timeout=120).stdout
    run_record = next(json.loads(line) for line in records.splitlines()
                      if '"type":"run"' in line)["run"]
    assert run_record["run_group"] == "tiny" and run_record["run_id"] == finished[-1]

    again = cli_inproc("sweep", path, "--runs-dir", runs, "--jobs", "2")
    assert "4 runs, 0 to run" in again.stdout
    assert {f: (runs / f / "summary.json").stat().st_mtime_ns for f in finished} == stamps
    assert sorted(p.name for p in runs.iterdir()) == sorted([*finished, ".sweeps"])

    dry = cli_inproc("sweep", path, "--runs-dir", runs, "--dry-run", "--retry-failed")
    assert dry.returncode == 0 and dry.stdout.count(" run ") == 2  # the 2 failed would rerun
    retry = cli_inproc("sweep", path, "--runs-dir", runs, "--retry-failed")
    assert "4 runs, 2 to run" in retry.stdout and retry.returncode == 1


def test_dry_run_launches_nothing(tmp_path, cli_inproc):
    proc = cli_inproc("sweep", REPO / "sweeps" / "demo.yaml", "--runs-dir", tmp_path / "r",
                   "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("resnet-ablate train model=") == 12
    assert not (tmp_path / "r").exists()


def test_experiment_subset_uses_the_sweeps_run_ids(tmp_path, cli_inproc):
    proc = cli_inproc("reproduce", "fig1", "--dry-run", "--runs-dir", tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "cifar-degradation-" in line]
    assert len(lines) == 6 and all("plain20" in line or "plain56" in line for line in lines)


def test_sweep_errors_are_value_errors():
    assert issubclass(SweepError, ValueError)
