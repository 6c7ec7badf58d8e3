"""The wheel, as a user gets it: built from the checkout, installed outside it, run from an
empty directory. It carries the paper's experiments, sweeps and report definition and its
LICENSE; `demo --dry-run`, `reproduce EXP`, `sweep NAME` and `train` work there."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, run_python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, built without network (the venv's setuptools) and installed with
    --target into a folder of its own, dependencies from this environment."""
    root = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--quiet", "-w", str(root / "dist"),
                           str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((root / "dist").glob("resnet_ablate-*.whl"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                           "--target", str(root / "site"), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    empty = root / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(root / "site")}
    return wheel, root / "site", empty, env


def _run(installed, *args, timeout=300):
    _, site, empty, env = installed
    return subprocess.run([str(site / "bin" / "resnet-ablate"), *map(str, args)], cwd=empty,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_papers_files_and_its_license(installed):
    wheel = installed[0]
    names = zipfile.ZipFile(wheel).namelist()
    for kind, stem in (("experiments", "fig6-table6"), ("experiments", "he2016-table1"),
                       ("sweeps", "demo"), ("sweeps", "he2016-table2"), ("reports", "paper")):
        assert f"resnet_ablate/bundled/{kind}/{stem}.yaml" in names, (kind, stem)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("experiments/", "sweeps/", "analysis/", "tests/"))
                   for n in names)  # one package in site-packages, no generic names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Requires-Dist: wandb>=0.30" in text and "jinja2" not in text
    assert "Requires-Dist: submitit" in text


def test_the_installed_package_is_the_one_that_runs(installed):
    _, site, empty, env = installed
    proc = run_python("import resnet_ablate; print(resnet_ablate.__file__)", cwd=empty,
                      env=env, timeout=60)
    assert proc.stdout.strip().startswith(str(site)), proc.stdout


def test_demo_reproduce_and_sweep_from_an_empty_directory(installed):
    demo = _run(installed, "demo", "--dry-run")
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.count("pending") == 12 and "resnet-ablate sweep demo" in demo.stdout
    fig = _run(installed, "reproduce", "he2016-table1", "--dry-run")
    assert fig.returncode == 0, fig.stderr
    assert fig.stdout.count("pending") == 48  # Table 1's 16 rows x 3 seeds
    sweep = _run(installed, "sweep", "cifar-degradation", "--dry-run", "--only", "seed=0")
    assert sweep.returncode == 0, sweep.stderr
    assert sweep.stdout.count("resnet-ablate train model=") == 9
    _, _, empty, _ = installed
    assert sorted(p.name for p in empty.iterdir()) == []  # a dry run writes nothing


def test_a_run_from_the_wheel(installed):
    _, _, empty, _ = installed
    proc = _run(installed, "train", "model=resnet20-A", "model.layers=[1,1,1]",
                "iterations=10", "eval_every=10", "responses=false", "wandb=offline",
                "runs_dir=runs", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summaries = list((empty / "runs").glob("*/summary.json"))
    assert len(summaries) == 1
    s = json.loads(summaries[0].read_text())
    assert s["status"] == "finished" and s["model"] == "resnet20-A"
