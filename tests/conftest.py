import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR10_JPG = REPO.parent / "shared" / "data" / "cifar10-jpg"

# Tests run W&B for real, offline, and never reach for the network or a login.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_CODE", "true")


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run the real CLI in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "resnet_ablate", *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


class _Completed:  # the shape of a CompletedProcess, for in-process runs of main()
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture
def cli_inproc(capsys):
    """The CLI's main() in this process: for the many bad-input cases, where a fresh
    interpreter per case would only add seconds of imports."""
    from resnet_ablate.cli import main

    def call(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return _Completed(code, captured.out, captured.err)

    return call


def assert_usage_error(proc, *fragments):
    """Exit 2, exactly one line on stderr, no traceback, naming what was wrong."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
