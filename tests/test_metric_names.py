"""One name per metric, wherever it is read: a real offline W&B run (read back with W&B's own
reader) logs history.parquet's names, its summary holds summary.json's results by their
names, and the analysis's frames use the same; `wandb sync` takes a whole sweep by one glob.

metric                 history.parquet W&B history  summary.json / W&B summary   analysis
training loss, error   train_loss,   the same       final_train_err (the         history.metric;
(mini-batch, train       train_err   (window means)   paper's), final_train_      runs columns as
mode)                                                 err_eval, ...                summary.json
learning rate          lr            lr
held-out, test split   val_loss,     the same       final_val_err, best_val_err,
                         val_err,                     final_test_err, ..._top5_err
                         test_loss,
                         test_err
throughput, epoch      -             images_per_sec, images_per_sec (whole run)
                                       epoch
x axis                 iteration     iteration      iterations
Fig. 7                 -             layer_responses layer_responses (summary.json)
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import history_rows, train_inproc
from resnet_ablate.analysis.rundirs import read_runs
from resnet_ablate.run import record
from resnet_ablate.run.rundir import EVAL_COLUMNS, HISTORY_COLUMNS

WANDB = Path(sys.executable).with_name("wandb")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("names") / "runs"
    train_inproc("model=resnet20-A", "model.layers=[1,1,1]", "iterations=10", "eval_every=5",
                 "log_every=5", "wandb=offline", "progress=off", f"runs_dir={runs}",
                 "run_id=names")
    return runs


def _inspect(run_dir: Path) -> list[dict]:
    offline = next((run_dir / "wandb").glob("offline-run-*"))
    out = subprocess.run([str(WANDB), "leet", "inspect", "--json", str(offline)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_wandb_history_summary_and_analysis_use_the_records_names(offline_run):
    run = offline_run / "names"
    records = _inspect(run)
    history = set()
    for r in records:
        if r["type"] == "history":
            # a logged table arrives as its fields (layer_responses._type, .nrows, ...)
            history |= {k.split(".")[0] for k in r["history"]["item"] if not k.startswith("_")}
    summary = {}
    for r in records:
        if r["type"] == "summary":
            summary.update({k.split(".")[0]: v for k, v in r["summary"]["update"].items()
                            if not k.startswith("_")})
    csv_columns = list(history_rows(run).columns)
    assert csv_columns == [*HISTORY_COLUMNS, *EVAL_COLUMNS]
    # W&B's history: history.parquet's columns (iteration is W&B's x axis too), the window's
    # throughput and epoch, and Fig. 7's table.
    assert history == set(csv_columns) | {"images_per_sec", "epoch", "layer_responses"}
    saved = json.loads((run / "summary.json").read_text())
    results = set(record.results(record.flat(saved)))
    # W&B's summary: the results by summary.json's names, plus W&B's own last value of each
    # history key (its automatic summary), by the history's names.
    assert set(summary) - history <= results
    assert {"final_train_err", "final_test_err", "final_val_err", "best_val_err",
            "images_per_sec", "iterations"} <= set(summary)
    for key in ("final_test_err", "final_train_err", "iterations"):
        assert summary[key] == pytest.approx(saved[key])
    assert not {k for k in history | set(summary) if "/" in k}  # no train/err-style names left
    c = read_runs([offline_run])
    assert set(c.history().columns) - {"run_id", "granularity"} == set(csv_columns)
    assert results <= set(c.runs.columns)
    assert c.runs["final_test_err"].iloc[0] == pytest.approx(saved["final_test_err"])


def test_wandb_sync_takes_a_whole_sweep_by_one_glob(offline_run, tmp_path):
    """`wandb sync runs/*/wandb/offline-run-*` (the README's glob): W&B's CLI finds every
    offline run. Without a server nothing is uploaded; --dry-run lists what it would sync."""
    import shutil

    sweep = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(offline_run / "names", sweep / name)
    proc = subprocess.run(f"{WANDB} sync --dry-run runs/*/wandb/offline-run-*", shell=True,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for name in ("a", "b"):
        assert f"runs/{name}/wandb/offline-run-" in out, out
