"""The README's CPU recipe runs as written: its CIFAR-10 JPEG sweep ships (cifar10-jpg-short)
and plans the four runs it describes; on a machine without a GPU, make says how to take
PyTorch's CPU wheels."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO
from resnet_ablate.run.config import parse_train_words
from resnet_ablate.sweep import load_sweep, planned_runs


def test_the_cpu_recipes_sweep_is_bundled_and_plans_its_four_runs(cli_inproc):
    proc = cli_inproc("sweep", "cifar10-jpg-short", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    runs = planned_runs(load_sweep("cifar10-jpg-short"))
    assert [r.params["model"] for r in runs] == ["plain20", "plain56", "resnet20-A",
                                                 "resnet56-A"]
    for r in runs:
        assert r.run_id in proc.stdout
        request = parse_train_words(r.command[3:])
        p, cfg = request.protocol, request.config
        assert (cfg.dataset, cfg.data_dir, cfg.seed, cfg.wandb) == (
            "imagefolder", "../shared/data/cifar10-jpg", 0, "offline")
        assert (p.name, p.iterations, p.milestones, p.eval_every) == (
            "he2015-cifar", 2000, (1000, 1500), 250)
        assert p.schedule_warnings() == []
        # the rest is sweeps/cifar-degradation.yaml's protocol, the paper's
        assert request.protocol_overrides == {"iterations": 2000, "milestones": [1000, 1500],
                                              "eval_every": 250}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_without_a_gpu_says_how_to_take_the_cpu_wheels(tmp_path):
    """A PATH without nvidia-smi: make's first words say how to install PyTorch's CPU
    wheels; with TORCH_INDEX set, or with nvidia-smi, they are not said. (PYTHON=false stops
    make before it installs anything.)"""
    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    (tmp_path / "pyproject.toml").write_text("")
    gpu_bin = tmp_path / "gpu"
    gpu_bin.mkdir()
    (gpu_bin / "nvidia-smi").write_text("#!/bin/sh\n")
    (gpu_bin / "nvidia-smi").chmod(0o755)
    system_path = "/usr/bin:/bin"

    def make(path, *args):
        return subprocess.run(["make", "test", "PYTHON=false", f"VENV={tmp_path / 'v'}",
                               *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**{k: v for k, v in os.environ.items() if not
                                      k.startswith(("MAKE", "MFLAGS"))}, "PATH": path}, timeout=60)

    said = make(system_path).stdout.splitlines()[0]
    assert said.startswith("make: no NVIDIA GPU here (no nvidia-smi)")
    assert "6.3 GB" in said and said.endswith(
        "make test TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    for quiet in (make(system_path, "TORCH_INDEX=https://download.pytorch.org/whl/cpu"),
                  make(f"{gpu_bin}:{system_path}")):
        assert "no NVIDIA GPU" not in quiet.stdout + quiet.stderr
