"""The final evaluation costs what it is worth: the eval-mode pass over the training split is
a setting (a seeded subset by default, the whole split, or none), and the test split is not
scored again when the last evaluation point scored it at the last iteration in its view."""
import json

import pytest

from conftest import history_rows
from resnet_ablate.data.tensor import TensorData

TINY = ["model=plain20", "model.layers=[1,1,1]", "iterations=8", "eval_every=4",
        "batch_size=32", "progress=off", "wandb=disabled", "responses=false"]


@pytest.fixture
def passes(monkeypatch):
    """Every evaluation pass over a split, as (split, indices or None), counted where the
    data hands out its batches."""
    seen = []
    original = TensorData.eval_batches

    def counted(self, split, *args, **kwargs):
        indices = kwargs.get("indices")
        seen.append((split, None if indices is None else indices.tolist()))
        return original(self, split, *args, **kwargs)

    monkeypatch.setattr(TensorData, "eval_batches", counted)
    return seen


def _summary(runs, run_id):
    return json.loads((runs / run_id / "summary.json").read_text())


def test_the_test_split_is_scored_once_at_the_last_iteration(tmp_path, cli_inproc, passes):
    proc = cli_inproc("train", *TINY, f"runs_dir={tmp_path}", "run_id=r")
    assert proc.returncode == 0, proc.stderr
    # evaluation points at 4 and 8; the final evaluation reuses iteration 8's test score
    assert [s for s, _ in passes].count("test") == 2
    assert [s for s, _ in passes].count("val") == 2
    s = _summary(tmp_path, "r")
    last = history_rows(tmp_path / "r").iloc[-1]
    assert s["final_test_err"] == pytest.approx(last["test_err"])
    assert s["final_test_top5_err"] is not None and s["final_test_view"] == "single"


def test_the_training_split_pass_is_a_seeded_subset_full_or_off(tmp_path, cli_inproc, passes):
    runs = {}
    for run_id, extra in (("s0", ["train_eval_size=100"]),
                          ("s1", ["train_eval_size=100", "seed=1"]),
                          ("other_split", ["train_eval_size=100", "split_seed=1"]),
                          ("default", []), ("full", ["train_eval=full"]),
                          ("off", ["train_eval=off"])):
        passes.clear()
        proc = cli_inproc("train", *TINY, *extra, f"runs_dir={tmp_path}", f"run_id={run_id}")
        assert proc.returncode == 0, proc.stderr
        runs[run_id] = ([idx for split, idx in passes if split == "train"],
                        _summary(tmp_path, run_id))
    (subset,), s = runs["s0"]
    assert len(subset) == 100 == len(set(subset)) and subset == sorted(subset)
    assert s["final_train_eval_images"] == 100 and s["final_train_err_eval"] is not None
    assert runs["s1"][0] == [subset]  # the run's seed does not choose the images
    assert runs["other_split"][0] != [subset]  # split_seed does (fixed across a study)
    # digits under demo: 1,258 training images, fewer than the default subset's 10,000
    assert runs["default"][0] == [None] == runs["full"][0]
    assert runs["default"][1]["final_train_eval_images"] == 1258
    assert runs["default"][1]["final_train_err_eval"] == runs["full"][1]["final_train_err_eval"]
    assert runs["off"][0] == []
    off = runs["off"][1]
    assert (off["final_train_err_eval"], off["final_train_eval_images"]) == (None, None)
    assert off["final_test_err"] is not None
