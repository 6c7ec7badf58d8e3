"""The lowest wandb pyproject.toml admits (wandb>=0.30) runs everything we pass it: its
own login check, wandb.init's reinit="finish_previous", an offline run read back. Installed
beside the project's newer wandb for this test alone (needs PyPI; skipped without it)."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, run_python


def _floor() -> str:
    text = (REPO / "pyproject.toml").read_text()
    return re.search(r'"wandb>=([0-9.]+)"', text).group(1)


@pytest.fixture(scope="module")
def floor_wandb(tmp_path_factory):
    target = tmp_path_factory.mktemp("wandb-floor")
    version = _floor()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--target", str(target), f"wandb=={version}"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"wandb=={version} could not be installed here: {proc.stderr[-200:]}")
    return target, version


def test_the_declared_wandb_floor_runs_a_training(floor_wandb, tmp_path):
    """One interpreter with the floor's wandb first on the path: its version, our login
    check without a key, then a short offline training through the CLI's main()."""
    target, version = floor_wandb
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    env.update(PYTHONPATH=os.pathsep.join([str(target), *filter(None, [os.environ.get(
        "PYTHONPATH")])]), WANDB_API_KEY="")
    train = ["train", "iterations=2", "eval_every=2", "model.layers=[1,1,1]", "wandb=offline",
             "progress=off", f"runs_dir={tmp_path}", "run_id=floor"]
    code = ("import sys, wandb; print(wandb.__version__); "
            "from resnet_ablate.tracking import logged_in; print(logged_in(), flush=True); "
            "from resnet_ablate.cli import main; sys.exit(main(%r))" % train)
    proc = run_python(code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] in (version, version + ".0")
    assert proc.stdout.split()[1] == "False"
    assert "warning: W&B" not in proc.stderr  # it started, logged and finished
    s = json.loads((tmp_path / "floor" / "summary.json").read_text())
    assert s["wandb"]["mode"] == "offline" and "failed" not in s["wandb"]
    assert list((tmp_path / "floor" / "wandb").glob("offline-run-*/run-*.wandb"))
