"""Run a sweep on this machine with W&B's semantics: the same parameters, the same command
expansion (wandb's own), one W&B group, N runs at a time.

Idempotent: each configuration has a fixed run id, so a rerun skips what has finished
(or diverged: that is a result), resumes what was interrupted, and retries failed runs only
when asked. Outcomes the run directory cannot hold (a run refused at start) are kept in
RUNS_DIR/.sweeps/<sweep>.json.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_json
from .spec import SweepError, SweepSpec, plan


@dataclass
class PlannedRun:
    run_id: str
    params: dict[str, Any]
    command: list[str]
    state: str = "pending"  # pending | finished | diverged | failed | interrupted
    detail: str = ""
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def run_id_for(sweep: str, params: dict[str, Any], varying: list[str] | None = None) -> str:
    """Readable and fixed by the configuration: <sweep>-<varying values>-<hash of all>."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode())
    keys = [k for k in params if varying is None or k in varying]
    words = [str(params[k]) if k == "model" else f"{k.split('.')[-1]}{params[k]}"
             for k in keys if not isinstance(params[k], (list, dict))][:4]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join([sweep, *words]))[:80].strip("_-.")
    return f"{slug}-{digest.hexdigest()[:6]}"


def expand_command(spec: SweepSpec, params: dict[str, Any]) -> list[str]:
    """The command `wandb agent` would run for these parameters (its own helpers)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command(list(spec.command) if spec.command else None)
    sweep_vars = sweep_utils.create_sweep_command_args(
        {"args": {k: {"value": v} for k, v in params.items()}})
    sweep_vars["interpreter"] = ["python"]
    sweep_vars["program"] = [spec.program] if spec.program else []
    sweep_vars["env"] = ["/usr/bin/env"]
    out: list[str] = []
    for chunk in command:
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            out += sweep_vars.get(chunk[2:-1]) or []
        else:
            out.append(chunk)
    return out


def validate_params(spec: SweepSpec, configs: list[dict[str, Any]]) -> None:
    """Every configuration must be one `train` accepts: checked before launching any."""
    from ..config import parse_train_words
    from ..registry import get_spec

    for params in configs:
        words = [f"{k}={v}" for k, v in params.items()]
        try:
            request = parse_train_words(words)
            get_spec(request.config.model)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            raise SweepError(f"{spec.path}: parameters: {exc}") from None


class SweepRunner:
    def __init__(self, spec: SweepSpec, runs_dir: Path, jobs: int = 1,
                 retry_failed: bool = False, count: int | None = None, seed: int = 0,
                 only: dict[str, list[Any]] | None = None, log=print) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs must be a positive integer; got {jobs}")
        self.spec, self.runs_dir, self.jobs = spec, runs_dir, jobs
        self.retry_failed, self.log = retry_failed, log
        configs = plan(spec, count=count, seed=seed)
        if only:  # a subset of the sweep (an experiment's): same run ids as the whole
            unknown = sorted(set(only) - set(spec.parameters))
            if unknown:
                raise SweepError(f"{spec.path}: only: {unknown[0]!r} is not a parameter")
            configs = [c for c in configs if all(c[k] in v for k, v in only.items())]
        validate_params(spec, configs)
        varying = [k for k, p in spec.parameters.items()
                   if "value" not in p and len(p.get("values", [0, 1])) > 1]
        self.runs = [PlannedRun(run_id_for(spec.name, c, varying), c, expand_command(spec, c))
                     for c in configs]
        self.state_path = runs_dir / ".sweeps" / f"{spec.name}.json"
        self._lock = threading.Lock()
        self._refresh()

    # -- state ----------------------------------------------------------------------
    def _recorded(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text()).get("runs", {})
        except (OSError, json.JSONDecodeError):
            return {}

    def _refresh(self) -> None:
        recorded = self._recorded()
        for run in self.runs:
            self._update(run, recorded=recorded)

    def _update(self, run: PlannedRun, recorded: dict[str, Any] | None = None,
                code: int | None = None, log_path: Path | None = None) -> None:
        """A run's state: its summary.json if it has one; else, before launching, what the
        sweep recorded (or `interrupted` if checkpoints wait); after, its exit code."""
        try:
            run.summary = json.loads((self.runs_dir / run.run_id / "summary.json").read_text())
            run.state = run.summary.get("status", "failed")
            run.detail = run.summary.get("error") or ""
            return
        except (OSError, json.JSONDecodeError):
            pass
        if code is None:
            rec = (recorded or {}).get(run.run_id, {})
            run.state, run.detail = rec.get("state", "pending"), rec.get("detail", "")
            if run.state != "failed" and (self.runs_dir / run.run_id / "checkpoints").is_dir():
                run.state = "interrupted"
            return
        lines = [line for line in log_path.read_text().splitlines() if line.strip()]
        run.state = "interrupted" if code in (130, 143) else "failed"
        run.detail = f"exit {code}: {lines[-1][:200] if lines else 'no output'}"

    def _save_state(self) -> None:
        with self._lock:
            atomic_write_json(self.state_path, {
                "sweep": self.spec.name, "file": self.spec.path, "method": self.spec.method,
                "runs": {r.run_id: {"params": r.params, "state": r.state, "detail": r.detail,
                                    "command": r.command} for r in self.runs}})

    def todo(self) -> list[PlannedRun]:
        wanted = {"pending", "interrupted"} | ({"failed"} if self.retry_failed else set())
        return [r for r in self.runs if r.state in wanted]

    # -- running --------------------------------------------------------------------
    def _env(self, run: PlannedRun) -> dict[str, str]:
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)  # resnet-ablate and python of this env
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.update({
            "WANDB_RUN_ID": run.run_id,  # as the W&B agent names each run
            "WANDB_RUN_GROUP": self.spec.name,
            "RESNET_ABLATE_RUNS_DIR": str(self.runs_dir),
            "RESNET_ABLATE_RESUME": "auto",  # an interrupted run continues from its checkpoint
        })
        if self.jobs > 1:  # share the cores instead of oversubscribing them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        if run.state == "failed":  # a retry starts afresh
            import shutil
            shutil.rmtree(self.runs_dir / run.run_id, ignore_errors=True)
        return env

    def _execute(self, run: PlannedRun, index: int, total: int) -> None:
        log_path = self.runs_dir / ".sweeps" / self.spec.name / f"{run.run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"[{index}/{total}] start {run.run_id}: "
                 + " ".join(f"{k}={v}" for k, v in run.params.items()))
        start = time.perf_counter()
        with open(log_path, "w") as out:
            code = subprocess.call(run.command, env=self._env(run), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        run.seconds = time.perf_counter() - start
        self._update(run, code=code, log_path=log_path)
        self._save_state()
        errs = run.summary.get("final_test_err")
        result = f"test err {errs:.2f}%" if isinstance(errs, (int, float)) else run.detail
        self.log(f"[{index}/{total}] {run.state} {run.run_id} ({run.seconds:.0f} s) {result}")

    def run(self) -> list[PlannedRun]:
        todo = self.todo()
        skipped = len(self.runs) - len(todo)
        self.log(f"sweep {self.spec.name}: {len(self.runs)} runs, {len(todo)} to run, "
                 f"{skipped} already done{' or failed' if not self.retry_failed else ''}; "
                 f"{self.jobs} at a time; W&B group {self.spec.name}; runs in {self.runs_dir}")
        self._save_state()
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self._execute, r, i + 1, len(todo))
                       for i, r in enumerate(todo)]
            for f in futures:
                f.result()
        return self.runs
