"""Run directories without training: a summary.json built through the run record's schema
(resnet_ablate.run.record, checked as the harness checks what it writes) and a
history.parquet written by the harness's own History, for tests and
benchmarks/analysis_scale.py that need hundreds of runs (or runs of 64,000 iterations) in
seconds."""
from __future__ import annotations

import copy
import functools
import json
import math
import random
from pathlib import Path

from resnet_ablate.run import record
from resnet_ablate.run.config import parse_train_words
from resnet_ablate.run.rundir import History, RunDir
from resnet_ablate.variants.registry import get_spec

MODELS = ("plain20", "plain56", "resnet20-A", "resnet56-A")
PARAMS = {"plain20": 269_722, "plain56": 853_018, "resnet20-A": 269_722,
          "resnet56-A": 853_018}  # CIFAR-10 sizes (the runs' own counts are not the point)


@functools.lru_cache(maxsize=None)
def _base(model: str, iterations: int, eval_every: int) -> dict:
    """The flat record of a run before its seed and results: parsed and resolved as `train`
    does, for CIFAR-10 under he2015-cifar (shortened to `iterations`)."""
    words = [f"model={model}", "dataset=cifar10", "protocol=he2015-cifar",
             f"iterations={iterations}", f"eval_every={eval_every}", "wandb=disabled"]
    request = parse_train_words(words)
    spec = get_spec(model).with_overrides(num_classes=10, in_chans=3)
    return record.resolved(
        request, spec, run_id=None, params=PARAMS.get(model, 1), macs=40 * PARAMS.get(model, 1),
        data={"data.mode": "tensor", "data.fingerprint": None,
              "data.split_sizes": {"train": 50_000, "test": 10_000},
              "data.val_source": "none", "data.input_size": 32},
        run={"run.world_size": 1, "run.device": "cpu", "run.threads": 1}, plugins=[],
        versions={"resnet_ablate": "0.3.0", "network": "0.2.0", "torch": "2.14.1",
                  "python": "3.11"}, env={})


def summary(run_id: str, model: str = "resnet20-A", seed: int = 0, iterations: int = 30,
            eval_every: int = 10, test_err: float = 10.0, **results) -> dict:
    """A finished run's summary.json, nested as the harness writes it (and checked)."""
    nested = copy.deepcopy(_finished(model, iterations, eval_every))
    changes = {"run_id": run_id, "seed": seed, "final_train_err": test_err / 2,
               "final_train_err_running": test_err / 2, "final_train_err_eval": test_err / 2,
               "final_test_err": test_err,
               "finished_at": f"2025-01-01T00:00:{seed % 60:02d}+0000", **results}
    if not changes.keys() <= {"run_id", "seed", *_RESULTS}:  # a factor changes the condition
        values = {**record.flat(nested), **changes}
        values["condition"] = record.condition_id(values)
        nested = record.nest(values)
    else:
        nested.update(changes)  # results and the seed: top-level keys of the record
    record.check(nested)
    return nested


_RESULTS = {k.column for k in record.keys() if k.kind == "result"}


@functools.lru_cache(maxsize=None)
def _finished(model: str, iterations: int, eval_every: int) -> dict:
    values = {**_base(model, iterations, eval_every), "run_id": "x", "seed": 0}
    values["condition"] = record.condition_id(values)
    values.update({
        "status": "finished", "iterations": iterations, "iterations_planned": iterations,
        "final_train_err": 5.0, "final_train_err_running": 5.0, "final_train_err_eval": 5.0,
        "final_train_loss_eval": 0.1, "final_val_err": None, "final_val_loss": None,
        "final_test_err": 10.0,
        "final_test_loss": 0.3, "final_test_top5_err": 1.0, "final_test_view": "single",
        "best_val_err": None, "best_val_iteration": None, "test_err_at_best_val": None,
        "diverged_at": None, "warmup_end": None, "warmup_capped": False,
        "images_per_sec": 1000.0, "images_seen": 128 * iterations, "replicas_in_sync": None,
        "train_time_s": 1.0, "error": None,
        "layer_responses": [{"index": i + 1, "layer": f"stages.{i}.bn", "std": 1.0 + i / 10}
                            for i in range(3)],
        "layer_responses_split": "test", "schedule_warnings": [], "resumed_with": [],
        "train_err_definition": "train mode, augmented mini-batches",
        "trained_on": "50000 training images; validation: none", "errors_in": "percent",
        "wandb": {}, "finished_at": "2025-01-01T00:00:00+0000"})
    return record.nest(values)


def history(iterations: int = 30, eval_every: int = 10, seed: int = 0) -> History:
    """A history as the trainer keeps it: every iteration, evaluations every `eval_every`
    (test only, as he2015-cifar on the full training set)."""
    rng = random.Random(seed)
    h = History()
    for it in range(1, iterations + 1):
        err = 50 * math.exp(-it / max(iterations / 8, 1)) + rng.random()
        lr = 0.1 if it < iterations // 2 else 0.01 if it < 3 * iterations // 4 else 0.001
        h.append(it, lr, err / 20, err)
        if it % eval_every == 0 or it == iterations:
            h.evals.append({"iteration": it, "test_loss": err / 18, "test_err": err + 5})
    return h


def write_run(runs: Path, run_id: str, *, history_bytes: bytes | None = None, **kw) -> RunDir:
    """runs/<run_id>/summary.json and history.parquet (the given bytes, else a fresh
    history)."""
    rundir = RunDir(runs, run_id)
    rundir.path.mkdir(parents=True, exist_ok=True)
    s = summary(run_id, **kw)
    rundir.summary_path.write_text(json.dumps(s, indent=2))
    if history_bytes is None:
        history_bytes = history(kw.get("iterations", 30), kw.get("eval_every", 10),
                                kw.get("seed", 0)).to_parquet()
    rundir.history_path.write_bytes(history_bytes)
    return rundir


def make_runs(runs: Path, n: int, start: int = 0, iterations: int = 30, eval_every: int = 10,
              templates: int | None = None) -> list[str]:
    """n runs (models x seeds) named run-<i>; `templates`: that many distinct histories
    shared round-robin (64,000-iteration histories take a while to build)."""
    files = ([history(iterations, eval_every, seed=k).to_parquet() for k in range(templates)]
             if templates else None)
    ids = []
    for i in range(start, start + n):
        model = MODELS[i % len(MODELS)]
        run_id = f"run-{i:05d}"
        write_run(runs, run_id, model=model, seed=i // len(MODELS), iterations=iterations,
                  eval_every=eval_every, test_err=5.0 + (i % 7),
                  history_bytes=files[i % len(files)] if files else None)
        ids.append(run_id)
    return ids
