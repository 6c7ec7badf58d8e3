"""`train` refuses bad input in one line, exit 2, before anything is written."""
import pytest
import torch

from conftest import assert_usage_error, run_cli


@pytest.mark.parametrize("words, fragments", [
    (["dataset=mnist"], ["dataset: expected one of digits, cifar10, cifar100, imagefolder"]),
    (["protocol=he2016"], ["unknown protocol 'he2016'", "he2015-cifar"]),
    (["model=resnet57-A"], ["unknown model 'resnet57-A'", "closest:"]),
    (["learning_rate=0.1"], ["unknown train key 'learning_rate'"]),
    (["lr=fast"], ["lr: expected a number; got 'fast'"]),
    (["seed=1.5"], ["seed: expected an integer"]),
    (["dataset=imagefolder", "data_dir={tmp}/missing"], ["does not exist", "train/<class>"]),
    (["dataset=cifar10", "data_dir={tmp}/none", "download=false"],
     ["cifar10 not found", "cifar-10-python.tar.gz"]),
    (["run_id=ghost", "resume=true"], ["no run", "ghost", "to resume"]),
    (["model.shortcut=B", "model=plain20"], ["plain nets have no shortcut"]),
    (["batch_size=5000"], ["batch_size 5000 exceeds the 1258 training images"]),
    (["val_size=2000"], ["val_size must be in [0, 1437]"]),
    pytest.param(["device=cuda"], ["no CUDA device"], marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a CUDA device is present")),
])
def test_bad_train_input(tmp_path, cli_inproc, words, fragments):
    runs = tmp_path / "runs"
    words = [w.replace("{tmp}", str(tmp_path)) for w in words]
    assert_usage_error(cli_inproc("train", f"runs_dir={runs}", "wandb=disabled", *words),
                       *fragments)
    assert not runs.exists() or not any(runs.iterdir())  # no run directory left behind
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["runs"])


def test_bad_input_in_a_real_process(tmp_path):
    proc = run_cli("train", "dataset=mnist", f"runs_dir={tmp_path / 'runs'}")
    assert_usage_error(proc, "dataset: expected one of")
    assert not (tmp_path / "runs").exists()
