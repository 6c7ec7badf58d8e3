import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR10_JPG = REPO.parent / "shared" / "data" / "cifar10-jpg"
DURATIONS = Path(__file__).with_name("durations.json")
SLOW_SECONDS = 2.0  # a test measured slower than this is marked slow (make test-fast skips it)

# Test processes share the cores instead of oversubscribing them: two xdist workers with
# torch's default of one thread per core each (and their subprocesses) ran 8x slower.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Tests run W&B for real, offline, and never reach for the network or a login.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_CODE", "true")

# A small run of the real harness: resnet20-A on digits, checkpoints every 20 iterations.
SMALL = ["model=resnet20-A", "dataset=digits", "iterations=80", "eval_every=20",
         "checkpoint_every=20", "log_every=5", "progress=lines", "wandb=disabled"]


def pytest_addoption(parser):
    parser.addoption("--store-durations", action="store_true",
                     help="measure every test and write tests/durations.json (which marks "
                          "tests slow by measured time)")


def pytest_collection_modifyitems(config, items):
    """Slow marks come from measured durations (tests/durations.json, written by
    `make durations`), not from hand-kept lists."""
    if not DURATIONS.exists():
        return
    measured = json.loads(DURATIONS.read_text())
    fast_only = "not slow" in (config.getoption("markexpr", default="") or "")
    per_file: dict[str, float] = {}
    for item in items:
        took = measured.get(item.nodeid, 0.0)
        if took > SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)
        if not (fast_only and took > SLOW_SECONDS):  # what this session will run
            per_file[item.location[0]] = per_file.get(item.location[0], 0.0) + took
    # The longest files first: xdist (--dist loadfile) hands out files in this order, so
    # the workers end together instead of one finishing the longest file alone. The sort
    # is stable: a file's tests keep their order.
    items.sort(key=lambda it: -per_file.get(it.location[0], 0.0))


_times: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if report.when in ("setup", "call"):
        _times[report.nodeid] = _times.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    if session.config.getoption("--store-durations", default=False) and _times:
        old = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
        old.update({k: round(v, 2) for k, v in _times.items()})
        DURATIONS.write_text(json.dumps(dict(sorted(old.items())), indent=0) + "\n")


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run the real CLI in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "resnet_ablate", *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def history_rows(run_dir: Path):
    """A run's history.parquet as a DataFrame (one row per iteration)."""
    import pyarrow.parquet as pq

    return pq.read_table(Path(run_dir) / "history.parquet").to_pandas()


def run_python(code: str, *args, cwd=None, env=None, timeout=300):
    """`python -c CODE ARGS` in a fresh interpreter (what a process imports by itself, a
    user's script); env=None inherits this one. Returns CompletedProcess, text output."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def train_inproc(*words) -> None:
    """`resnet-ablate train WORDS` through main() in this process, which must succeed: for
    fixtures whose runs are data, not the process under test (a train subprocess pays ~6
    CPU-s of imports before its first iteration)."""
    from resnet_ablate.cli import main

    assert main(["train", *map(str, words)]) == 0, words


@pytest.fixture
def cli():
    return run_cli


class _Completed:  # the shape of a CompletedProcess, for in-process runs of main()
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


@pytest.fixture
def cli_inproc(capsys):
    """The CLI's main() in this process: for bad input and small runs, where a fresh
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


MINI_SWEEP = """
name: mini
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, plain56, resnet20-A, resnet56-A]}
  seed: {values: [0, 1]}
  iterations: {value: 20}
  batch_size: {value: 32}
  eval_every: {value: 10}
  log_every: {value: 10}
  progress: {value: "off"}
  wandb: {value: disabled}
"""

MINI_EXPERIMENT = """
name: mini
title: "Mini: plain vs residual at 20 and 56 layers"
paper: "He et al. (2015), Fig. 1 and 6 in miniature"
protocol: demo
sweeps:
  - file: {sweep}
figures: [fig1, fig4, fig6, fig7, error_vs_depth, error_vs_macs, error_vs_params, ablation]
tables: [table1, table6, table2]
"""


# The runs of the mini sweep that `reproduce` trains itself, as real subprocesses, two at a
# time (its launch path); the other six are trained first in this process (train_inproc),
# with the words and run ids the sweep gives them, so that `reproduce` finds them finished.
MINI_LAUNCHED = {("plain20", 1), ("resnet20-A", 1)}


@pytest.fixture(scope="session")
def mini(tmp_path_factory):
    """One real experiment shared by the analysis and sweep tests: 8 short runs (4 models
    x 2 seeds) on digits through `reproduce`, then its report."""
    from resnet_ablate.pipeline import load_experiment, plan_experiment

    root = tmp_path_factory.mktemp("mini")
    (root / "mini-sweep.yaml").write_text(MINI_SWEEP)
    (root / "mini.yaml").write_text(MINI_EXPERIMENT.format(sweep=root / "mini-sweep.yaml"))
    planned = plan_experiment(load_experiment(str(root / "mini.yaml")))
    assert len(planned) == 8
    for run in planned:
        if (run.params["model"], run.params["seed"]) not in MINI_LAUNCHED:
            words = run.command[run.command.index("train") + 1:]  # as the runner runs it
            train_inproc(*words, f"run_id={run.run_id}", f"runs_dir={root / 'runs'}")
    proc = run_cli("reproduce", root / "mini.yaml", "--runs-dir", root / "runs", "--out",
                   root / "report", "--jobs", "2", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 runs, 2 to run, 6 already done" in proc.stdout, proc.stdout
    return root, proc


def image_folder(root: Path, side: int, mode: str = "RGB", train: int = 6, test: int = 2,
                 bad: bytes | None = None) -> Path:
    """A small ImageFolder tree of seeded noise PNGs: train/ and test/, classes a and b,
    `train`/`test` images per class, `side` pixels square, grey ("L") or RGB; `bad`: the
    bytes of one more file, train/a/9.jpg."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                shape = (side, side) if mode == "L" else (side, side, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
                    folder / f"{i}.png")
    if bad is not None:
        (root / "train" / "a" / "9.jpg").write_bytes(bad)
    return root
