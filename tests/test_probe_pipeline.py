"""The probes through the harness: `train probes=...` at the end of a run, `resnet-ablate
probe` on finished runs (records and arrays checked against the run's own numbers), a
plugin's probe, an experiment's `probes:` and the report's "Why it works" section, W&B
(offline, real), and each bad input: one line, exit 2, nothing written."""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_usage_error, run_cli

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # shared CPUs: one thread is the fastest here
SWEEP = """
name: why-mini
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, resnet20-A]}
  model.layers: {value: "[1,1,1]"}
  dataset: {value: digits}
  iterations: {value: 30}
  eval_every: {value: 15}
  log_every: {value: 15}
  progress: {value: "off"}
  wandb: {value: offline}
  probes: {value: lesion}
"""
EXPERIMENT = """
name: why-mini
title: "Why mini"
protocol: demo
sweeps:
  - file: {sweep}
figures: []
tables: []
probes:
  - name: landscape
    only: {{model: [resnet20-A]}}
    settings: {{dims: 2, points: 3, num_batches: 1, batch_size: 64}}
"""


@pytest.fixture(scope="module")
def why(tmp_path_factory):
    """Two tiny runs (plain and residual, 8 layers) through `reproduce`: each probed with
    the lesion study at the end of its training (`probes: {value: lesion}` in the sweep),
    the residual one with a coarse landscape by the experiment, then the report."""
    root = tmp_path_factory.mktemp("why")
    (root / "sweep.yaml").write_text(SWEEP)
    (root / "why.yaml").write_text(EXPERIMENT.format(sweep=root / "sweep.yaml"))
    proc = run_cli("reproduce", root / "why.yaml", "--runs-dir", root / "runs", "--out",
                   root / "report", "--jobs", "2", cwd=root, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {json.loads((d / "summary.json").read_text())["model"]: d
            for d in (root / "runs").iterdir() if (d / "summary.json").exists()}
    return root, runs, proc


def _records(run: Path, probe: str) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted((run / "probes").glob(f"{probe}-*.json"))]


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and "wandb" not in p.parts}


def test_train_probes_lesion_writes_its_record_at_the_end(why):
    root, runs, _ = why
    for model, run in runs.items():
        summary = json.loads((run / "summary.json").read_text())
        assert summary["settings"]["probes"] == "lesion"
        (path, rec), = _records(run, "lesion")
        assert rec["format"] == 1 and rec["probe"] == "lesion" and rec["run_id"] == run.name
        assert rec["seed"] == summary["seed"] == 0 and rec["weights"] == "final"
        assert rec["settings"] == {"parts": ["single", "delete_k", "swap_k"], "draws": 5,
                                   "delete_ks": None, "swap_ks": None, "num_batches": None}
        counts = rec["data"].pop("class_counts")
        assert rec["data"] == {"split": "test", "batch_size": 128, "split_images": 359,
                               "view": "single", "fingerprint": summary["data"]["fingerprint"],
                               "num_images": None, "sample": None, "images": 359,
                               "warning": None}
        assert sum(counts) == 359 and len(counts) == 10  # the whole split: no warning
        assert rec["condition"] == summary["condition"] and rec["model"] == model
        # the intact net's test error is the run's own, recorded at its end
        assert 100 * rec["result"]["baseline"]["error"] == pytest.approx(
            summary["final_test_err"], abs=1e-9)
        assert rec["result"]["baseline"]["loss"] == pytest.approx(summary["final_test_loss"],
                                                                  rel=1e-5)
        blob = (path.parent / rec["arrays"]["file"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == rec["arrays"]["sha256"]
        with np.load(path.parent / rec["arrays"]["file"]) as z:
            err = z["delete_k_error"]
        assert list(err.shape) == rec["arrays"]["shapes"]["delete_k_error"]
        assert err.tolist() == [[r["error"] for r in rec["result"]["delete_k"] if r["k"] == k]
                                for k in rec["result"]["delete_k_summary"]["k"]]
        assert path.name == f"lesion-{rec['digest']}.json"
        # logged in the run's own W&B run (offline), table and figure
        tables = list((run / "wandb").glob(f"offline-run-*-{run.name}/files/media/table/probe/"
                                           f"lesion-{rec['digest']}/*.table.json"))
        assert len(tables) == 1, list((run / "wandb").rglob("*.table.json"))
        table = json.loads(tables[0].read_text())
        assert table["columns"] == ["part", "units", "how", "k", "draw", "error", "loss"]
        assert table["data"][0][-2] == rec["result"]["baseline"]["error"]
        assert list((run / "wandb").glob(f"offline-run-*-{run.name}/files/media/images/probe/"
                                         f"lesion-{rec['digest']}/*.png"))
    plain = {r["unit"]: r for r in _records(runs["plain20"], "lesion")[0][1]["result"]["single"]}
    assert plain["stages.1.0"]["how"] == "not deletable (changes shape, no shortcut)"


def test_experiment_probes_and_the_why_section(why):
    root, runs, proc = why
    (path, rec), = _records(runs["resnet20-A"], "landscape")
    assert not _records(runs["plain20"], "landscape")  # only: {model: [resnet20-A]}
    assert rec["settings"]["points"] == 3 and rec["data"]["batch_size"] == 64
    with np.load(path.parent / rec["arrays"]["file"]) as z:
        loss = z["loss"]
    assert loss.shape == (3, 3) and loss[1, 1] == rec["result"]["center"]["loss"]
    # the finding, recomputed from the records
    rise = {}
    for model, run in runs.items():
        (_, lesion), = _records(run, "lesion")
        r = lesion["result"]
        keep = [u["error"] for u in r["single"] if u["how"] in (
            "shortcut only (identity)", "identity (plain: no shortcut)")]
        rise[model] = 100 * (np.mean(keep) - r["baseline"]["error"])
    finding = (f"deleting one unit of ResNet-8 raises test error by {rise['resnet20-A']:.2f} "
               f"pp on average, of plain-8 by {rise['plain20']:.2f} pp")
    assert finding in proc.stdout
    index = (root / "report" / "index.md").read_text()
    assert "## Why it works" in index and finding in index
    assert "![why-lesion](figures/why-lesion.png)" in index
    assert (root / "report" / "figures" / "why-landscape-8.png").stat().st_size > 1000
    assert "resnet-ablate probe landscape" in index  # the command log
    table = (root / "report" / "tables" / "why-lesion.csv").read_text().splitlines()
    assert table[0].startswith("condition,seeds,settings,intact test err %")
    assert "ResNet-8,1," in (root / "report" / "tables" / "why-landscape.csv").read_text()


def _copy(run: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run, dest / run.name, ignore=shutil.ignore_patterns(
        "wandb", "probes", "checkpoints")))


def test_probe_cli_writes_json_npz_once_per_settings(why, tmp_path, cli_inproc):
    _, runs, _ = why
    run = _copy(runs["resnet20-A"], tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    # the whole training split in eval mode: the landscape's centre is the run's own
    # recorded training loss
    words = ["probe", "landscape", "--runs", run, "--set", "dims=1", "points=3",
             "span=-0.5,0.5", "bn=eval", "batch_size=1000", "--wandb", "disabled"]
    first = cli_inproc(*words)
    assert first.returncode == 0, first.stderr
    (path, rec), = _records(run, "landscape")
    assert f"-> {path}" in first.stdout and "1 record(s) written" in first.stdout
    assert rec["settings"] == {"dims": 1, "points": 3, "span": [-0.5, 0.5], "ignore": "biasbn",
                               "bn": "eval", "num_batches": None, "radius": 0.1,
                               "curvature": 0}
    assert rec["result"]["x"] == [-0.5, 0.0, 0.5]
    assert rec["result"]["center"]["loss"] == pytest.approx(summary["final_train_loss_eval"],
                                                            rel=1e-6)
    assert 100 * rec["result"]["center"]["error"] == pytest.approx(
        summary["final_train_err_eval"], abs=1e-9)
    with np.load(path.parent / rec["arrays"]["file"]) as z:
        assert z["loss"][1] == rec["result"]["center"]["loss"]
        assert z["loss"].min() == rec["result"]["min_loss"]
    before = _files(run)
    again = cli_inproc(*words)  # the same settings: nothing to do
    assert again.returncode == 0 and "already there, nothing to do" in again.stdout
    assert _files(run) == before
    other = cli_inproc(*words[:-2], "--seed", "7", "--wandb", "disabled")
    assert other.returncode == 0, other.stderr
    records = _records(run, "landscape")
    assert len(records) == 2 and {r["seed"] for _, r in records} == {0, 7}
    assert len({r["settings_digest"] for _, r in records}) == 1  # probed alike: one pool


PLUGIN = '''
from dataclasses import dataclass

import numpy as np
import torch

import resnet_ablate as ra


@dataclass(frozen=True)
class NormSettings:
    scale: float = 1.0


@ra.register_probe("weight_norm", settings=NormSettings, split="train",
                   paper="A user (2026)", claim="The weights have a norm.")
def weight_norm(model, batches, *, seed, scale):
    norms = [float(p.detach().norm()) for p in model.parameters()]
    x, y = next(iter(batches))
    return {"probe": "weight_norm", "total": scale * float(np.sqrt(np.sum(np.square(norms)))),
            "first_batch": int(len(y)), "arrays": {"norms": np.array(norms)}}
'''


def test_a_plugin_probe_runs_through_the_cli(why, tmp_path, monkeypatch, cli_inproc):
    _, runs, _ = why
    run = _copy(runs["plain20"], tmp_path)
    (tmp_path / "my_probe.py").write_text(PLUGIN)
    with monkeypatch.context() as m:  # not named: not loaded (here, in this process)
        m.chdir(tmp_path)
        unknown = cli_inproc("probe", "weight_norm", "--runs", run)
    assert_usage_error(unknown, "unknown probe 'weight_norm'", "ra.register_probe")
    assert "my_probe" not in sys.modules
    # named: loaded, in a process of its own (a registered probe stays registered)
    proc = run_cli("probe", "weight_norm", "--runs", run, "--plugins", "my_probe.py",
                   "--set", "scale=2", "--wandb", "offline", cwd=tmp_path, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr
    (path, rec), = _records(run, "weight_norm")
    weights = torch.load(run / "model.pt", weights_only=True)
    norms = [float(v.float().norm()) for k, v in weights.items() if "running" not in k
             and "num_batches" not in k]
    assert rec["result"]["total"] == pytest.approx(2 * np.sqrt(np.sum(np.square(norms))),
                                                   rel=1e-6)
    assert rec["result"]["first_batch"] == 128  # the run's protocol batch
    assert rec["settings"] == {"scale": 2.0} and rec["paper"] == "A user (2026)"
    with np.load(path.parent / rec["arrays"]["file"]) as z:
        assert z["norms"] == pytest.approx(norms, rel=1e-6)
    # its own W&B run: job_type probe, grouped with the run, the probe's table in it (the
    # offline run's record, RunRecord protobuf: group (field 6) then job_type (field 7))
    data = next((run / "wandb").glob("offline-run-*-probe-*/run-*.wandb")).read_bytes()
    group = run.name.encode()
    assert b"2" + bytes([len(group)]) + group + b":\x05probe" in data
    assert b"probed_run" in data
    table, = (run / "wandb").glob("offline-run-*-probe-*/files/media/table/probe/"
                                  f"weight_norm-{rec['digest']}/*.table.json")
    rows = dict(json.loads(table.read_text())["data"])
    assert rows["total"] == rec["result"]["total"]


def test_train_refuses_an_unknown_probe_before_writing(tmp_path, cli_inproc):
    proc = cli_inproc("train", "model=resnet20-A", "dataset=digits", "iterations=2",
                      "probes=lesion,lesions", f"runs_dir={tmp_path / 'runs'}", "run_id=x",
                      "wandb=disabled")
    assert_usage_error(proc, "unknown probe 'lesions'; closest: lesion")
    assert not (tmp_path / "runs" / "x").exists()


def _edit_summary(run: Path, **changes) -> None:
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(changes)
    path.write_text(json.dumps(summary))


BAD = {
    "not finished": (lambda run: (run / "summary.json").unlink(),
                     ["lesion"], "is not finished (it is pending); only a finished run"),
    "diverged": (lambda run: _edit_summary(run, status="diverged", diverged_at=3),
                 ["lesion"], "ended diverged; only a finished run can be probed"),
    "weights missing": (lambda run: (run / "model.pt").unlink(),
                        ["lesion"], "has no model.pt (its final weights)"),
    "weights truncated": (lambda run: (run / "model.pt").write_bytes(
        (run / "model.pt").read_bytes()[:5000]), ["lesion"], "model.pt is truncated or corrupt"),
    "initial weights missing": (lambda run: (run / "model_init.pt").unlink(),
                                ["linear_path"], "has no model_init.pt"),
    "plugin not loaded": (lambda run: _edit_summary(run, plugins=["/nowhere/my_blocks.py"]),
                          ["lesion"], "was trained with plugin(s) /nowhere/my_blocks.py, not "
                                      "loaded now; name them with --plugins"),
    "unknown probe": (None, ["lesions"], "unknown probe 'lesions'; closest: lesion"),
    "grid of 10^6 points": (None, ["landscape", "--set", "points=1000"],
                            "landscape: points must be an integer 2..201; got 1000"),
    "unknown setting": (None, ["landscape", "--set", "resolution=21"],
                        "unknown landscape setting 'resolution'"),
    "bad weights choice": (None, ["lesion", "--set", "weights=best"],
                           "weights must be one of final, initial"),
    # every range where it is read, the allowed range in the message
    "span of 1e300": (None, ["landscape", "--set", "span=[0,1e300]"],
                      "landscape: span must be a finite number in [-10, 10]; got 1e+300"),
    "span of one number": (None, ["landscape", "--set", "span=-1"],
                           "span must be [low, high] with -10 <= low < high <= 10"),
    "no points": (None, ["landscape", "--set", "points=0"], "points must be an integer 2..201"),
    "1e9 points": (None, ["landscape", "--set", "points=1e9"],
                   "points must be an integer 2..201; got 1000000000"),
    "radius 0": (None, ["landscape", "--set", "radius=0"],
                 "radius must be a finite number in (0, 10]"),
    "radius 1e300": (None, ["landscape", "--set", "radius=1e300"],
                     "radius must be a finite number in (0, 10]"),
    "a path span of 1e300": (None, ["linear_path", "--set", "span=[0,1e300]"],
                             "linear_path: span must be a finite number in [-10, 10]"),
    "no images": (None, ["lesion", "--set", "num_images=0"],
                  "num_images must be an integer 1..200000"),
    "more images than the split": (None, ["lesion", "--set", "num_images=360"],
                                   "num_images must be 1..359 (the test split of run"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(why, tmp_path, cli_inproc, case):
    _, runs, _ = why
    run = _copy(runs["resnet20-A"], tmp_path)
    spoil, words, message = BAD[case]
    if spoil:
        spoil(run)
    before = _files(tmp_path)
    proc = cli_inproc("probe", words[0], "--runs", run, *words[1:], "--wandb", "offline")
    assert_usage_error(proc, message)
    assert _files(tmp_path) == before and not (run / "probes").exists()
    assert not (run / "wandb").exists()


def test_one_bad_run_stops_all_before_anything_is_written(why, tmp_path, cli_inproc):
    _, runs, _ = why
    good = _copy(runs["plain20"], tmp_path)
    bad = _copy(runs["resnet20-A"], tmp_path)
    (bad / "model.pt").unlink()
    proc = cli_inproc("probe", "lesion", "--runs", good, bad, "--set", "parts=single")
    assert_usage_error(proc, f"run {bad.name} has no model.pt")
    assert not (good / "probes").exists()


def test_landscape_at_the_origin_of_the_2d_grid_is_the_recorded_training_loss(why, tmp_path,
                                                                                 cli_inproc):
    _, runs, _ = why
    run = _copy(runs["plain20"], tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    # the default 2D grid, coarse; the whole training split in one batch (BN in eval mode,
    # the default, as the run's own final train loss was measured)
    proc = cli_inproc("probe", "landscape", "--runs", run, "--set", "points=3",
                      "batch_size=1258", "--wandb", "disabled")
    assert proc.returncode == 0, proc.stderr
    (path, rec), = _records(run, "landscape")
    assert rec["settings"]["dims"] == 2 and rec["settings"]["bn"] == "eval"
    with np.load(path.parent / rec["arrays"]["file"]) as z:
        loss, err = z["loss"], z["error"]
    assert loss.shape == (3, 3) and rec["result"]["x"] == rec["result"]["y"] == [-1.0, 0.0, 1.0]
    assert loss[1, 1] == pytest.approx(summary["final_train_loss_eval"], rel=1e-6)
    assert 100 * err[1, 1] == pytest.approx(summary["final_train_err_eval"], abs=1e-9)
    assert (np.delete(loss.ravel(), 4) > loss[1, 1]).all()  # a minimiser: every step is uphill


def test_probes_pool_one_sample_per_seed_of_a_condition(why, tmp_path, cli_inproc):
    from resnet_ablate.analysis import probe_figures as pf
    from resnet_ablate.analysis import why as why_mod
    from resnet_ablate.analysis.vocab import pm

    _, runs, _ = why
    first = _copy(runs["resnet20-A"], tmp_path)  # seed 0, its probes left behind
    trained = cli_inproc("train", "model=resnet20-A", "model.layers=[1,1,1]", "dataset=digits",
                         "protocol=demo", "iterations=30", "eval_every=15", "log_every=15",
                         "progress=off", "wandb=disabled", "seed=1", f"runs_dir={tmp_path}",
                         "run_id=second")
    assert trained.returncode == 0, trained.stderr
    second = tmp_path / "second"
    s0, s1 = (json.loads((d / "summary.json").read_text()) for d in (first, second))
    assert s0["condition"] == s1["condition"] and (s0["seed"], s1["seed"]) == (0, 1)
    both = cli_inproc("probe", "lesion", "--runs", first, second, "--set", "parts=single",
                      "--wandb", "disabled")
    assert both.returncode == 0, both.stderr
    # the first run again with another probe seed: a third record, not a third seed
    again = cli_inproc("probe", "lesion", "--runs", first, "--set", "parts=single", "--seed",
                       "7", "--wandb", "disabled")
    assert again.returncode == 0, again.stderr
    assert len(_records(first, "lesion")) == 2
    rises = []
    for run in (first, second):
        rec = next(r for _, r in _records(run, "lesion") if r["seed"] != 7)["result"]
        keep = [u["error"] for u in rec["single"] if u["how"] == "shortcut only (identity)"]
        assert len(keep) == 1  # one unit a stage: only the first stage's keeps its shape
        rises.append(100 * (np.mean(keep) - rec["baseline"]["error"]))
    items = pf.load([first, second])
    assert len(items) == 3
    row = why_mod.table(items, "lesion").iloc[0]
    assert row["seeds"] == 2
    assert row["delete one unit: mean rise (pp)"] == pm(float(np.mean(rises)),
                                                        float(np.std(rises, ddof=1)), 2)
    tidy = why_mod.frame(items)
    assert list(tidy.columns) == why_mod.COLUMNS
    assert sorted(tidy.drop_duplicates("digest")["probe_seed"]) == [0, 1, 7]
    assert not tidy[tidy["probe_seed"] == 7]["sample"].any()
    means = why_mod.mean_by_condition(tidy).set_index("metric")
    rise = means.loc["delete one unit: mean rise (pp)"]
    assert rise["seeds"] == 2 and rise["condition"] == s0["condition"]
    assert rise["mean"] == pytest.approx(np.mean(rises), abs=1e-9)
    assert rise["std"] == pytest.approx(np.std(rises, ddof=1), abs=1e-9)
    assert means.loc["intact test err %", "mean"] == pytest.approx(
        np.mean([s0["final_test_err"], s1["final_test_err"]]), abs=1e-9)


def test_a_plugin_that_cannot_be_loaded_is_one_line_and_writes_nothing(why, tmp_path,
                                                                       cli_inproc):
    _, runs, _ = why
    run = _copy(runs["resnet20-A"], tmp_path)
    (tmp_path / "broken_probe.py").write_text("import resnet_ablate as ra\n"
                                              "raise RuntimeError('not today')\n")
    before = _files(tmp_path)
    for spec, message in ((tmp_path / "broken_probe.py",
                           "could not be loaded: RuntimeError: not today"),
                          (tmp_path / "absent.py", "does not exist"),
                          ("no_such_module_xyz", "could not be loaded: ModuleNotFoundError")):
        proc = cli_inproc("probe", "lesion", "--runs", run, "--plugins", spec)
        assert_usage_error(proc, f"plugin '{spec}'", message)
    assert _files(tmp_path) == before and not (run / "probes").exists()


def test_a_probe_records_figure_reaches_wandb_drawn_by_the_analysis(why, tmp_path):
    """The probes import no analysis: the W&B payload's figure is the PNG of the function
    the caller hands down (analysis.probe_figures.record_png), beside the probe's table."""
    import wandb

    from resnet_ablate.analysis.probe_figures import record_png
    from resnet_ablate.probes.probing import parse_request, probe_runs

    _, runs, _ = why
    run = _copy(next(iter(runs.values())), tmp_path)

    class Collected:  # the tracker's two calls, as resnet_ablate.tracking.Tracker takes them
        def __init__(self):
            self.payloads, self.summaries = [], []

        def log(self, payload, step):
            self.payloads.append(payload)

        def update_summary(self, values):
            self.summaries.append(values)

    for figure, drawn in ((record_png, True), (None, False)):
        tracker = Collected()
        request = parse_request("lesion", words=["parts=single", "num_images=64"],
                                seed=1 if drawn else 2)  # a new record each time
        probe_runs([request], [run], tracker=tracker, figure=figure, log=lambda m: None)
        [payload] = tracker.payloads
        keys = sorted(payload)
        assert any(k.endswith("/table") and isinstance(payload[k], wandb.Table) for k in keys)
        figures = [payload[k] for k in keys if k.endswith("/figure")]
        assert len(figures) == int(drawn) and all(isinstance(f, wandb.Image) for f in figures)
