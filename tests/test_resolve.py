"""One path from a request to the spec a run trains (variants/resolve.py): the dry run prints
the spec `train` trains, a sweep parses each run's words and resolves its spec once, and a
run's record gives back the spec it trained (timm, the probes)."""
import json

import pytest

from conftest import assert_usage_error
from resnet_ablate.errors import InputError

WORDS = ["model=resnet20-A", "model.shortcut=B", "model.layers=[1,1,1]", "dataset=digits",
         "iterations=4", "eval_every=4", "log_every=2", "responses=false", "progress=off",
         "wandb=disabled"]


def test_the_dry_run_prints_the_spec_the_run_trains(tmp_path, cli_inproc):
    """On the data's classes and channels (digits: 10 and 1), not the variant's CIFAR
    defaults: the spec, the planned condition and the record the run writes agree."""
    dry = cli_inproc("train", *WORDS, f"runs_dir={tmp_path}", "run_id=r", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert not (tmp_path / "r").exists()
    trained = cli_inproc("train", *WORDS, f"runs_dir={tmp_path}", "run_id=r")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    spec = planned["spec"]
    assert (spec["num_classes"], spec["in_chans"], spec["shortcut"], spec["layers"]) == \
        (10, 1, "B", [1, 1, 1])
    for key, value in spec.items():
        if key != "name":
            assert summary[key] == value, key
    assert planned["record"]["num_classes"] == summary["num_classes"] == 10
    assert planned["record"]["in_chans"] == summary["in_chans"] == 1


def test_a_sweep_parses_each_runs_words_and_resolves_its_spec_once(tmp_path, monkeypatch,
                                                                     cli_inproc):
    """Planning, naming, the time estimate and the dry run's listing of a 4-run sweep: one
    parse of each run's words and one spec resolved for each run."""
    import resnet_ablate.run.config as config
    import resnet_ablate.variants.resolve as resolve

    counts = {"parsed": 0, "resolved": 0}
    parse, build = config.parse_train_words, resolve.resolve

    def counted_parse(*a, **k):
        counts["parsed"] += 1
        return parse(*a, **k)

    def counted_resolve(*a, **k):
        counts["resolved"] += 1
        return build(*a, **k)

    monkeypatch.setattr(config, "parse_train_words", counted_parse)
    monkeypatch.setattr(resolve, "resolve", counted_resolve)
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nmethod: grid\ncommand: [\"${env}\", resnet-ablate, train, "
                     "\"${args_no_hyphens}\"]\nparameters:\n  model: {values: [plain20, "
                     "resnet20-A]}\n  seed: {values: [0, 1]}\n  dataset: {value: digits}\n"
                     "  iterations: {value: 4}\n")
    proc = cli_inproc("sweep", sweep, "--runs-dir", tmp_path / "runs", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("resnet-ablate train model=") == 4
    assert counts == {"parsed": 4, "resolved": 4}


def test_a_runs_record_gives_back_the_spec_it_trained(tmp_path, cli_inproc):
    from resnet_ablate.run import record
    from resnet_ablate.variants.resolve import from_record, resolve

    assert cli_inproc("train", *WORDS, f"runs_dir={tmp_path}", "run_id=r").returncode == 0
    values = record.flat(json.loads((tmp_path / "r" / "summary.json").read_text()))
    spec = from_record(values)
    assert spec == resolve("resnet20-A", {"shortcut": "B", "layers": [1, 1, 1]}, (10, 1))
    changed = {**values, "depth": 56}  # factors no override of resnet20-A gives
    with pytest.raises(InputError, match="its record's depth are not what resnet20-A"):
        from_record(changed)


def test_unknown_model_keys_are_refused_in_one_place(cli_inproc):
    assert_usage_error(cli_inproc("train", "model=resnet20-A", "model.depth=20", "--dry-run"),
                       "unknown model override 'model.depth'")
    with pytest.raises(InputError, match="unknown model override 'colour'"):
        from resnet_ablate.variants.resolve import resolve

        resolve("resnet20-A", {"colour": "red"})


def test_the_planned_condition_is_recorded_and_read_never_parsed_from_a_name(tmp_path,
                                                                              cli_inproc):
    """A sweep names a run <model>-s<seed>-<digest>; the run records the digest as its
    planned_condition, and --seeds-for finds a condition's finished seeds by that record,
    whatever their folders are called."""
    from resnet_ablate.sweep import load_sweep, planned_runs
    from resnet_ablate.sweep.scheduler import _finished_errors

    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nmethod: grid\ncommand: [\"${env}\", resnet-ablate, train, "
                     "\"${args_no_hyphens}\"]\nparameters:\n  model: {value: resnet20-A}\n"
                     "  seed: {values: [0, 1]}\n  dataset: {value: digits}\n"
                     "  iterations: {value: 2}\n  eval_every: {value: 2}\n"
                     "  responses: {value: false}\n  progress: {value: \"off\"}\n"
                     "  wandb: {value: disabled}\n")
    runs = planned_runs(load_sweep(str(sweep)))
    assert {r.run_id.rpartition("-")[2] for r in runs} == {runs[0].planned_condition}
    for run, folder in zip(runs, ("renamed-by-hand", runs[1].run_id)):
        words = run.command[run.command.index("train") + 1:]
        proc = cli_inproc("train", *words, f"runs_dir={tmp_path / 'r'}", f"run_id={folder}")
        assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "r" / "renamed-by-hand" / "summary.json").read_text())
    assert summary["planned_condition"] == runs[0].planned_condition
    assert len(_finished_errors(tmp_path / "r", runs[0].planned_condition)) == 2
