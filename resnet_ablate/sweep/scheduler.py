"""Run sweeps with W&B's semantics: the same parameters, the same command expansion (wandb's
own: sweep.planning), one W&B group per sweep; here N at a time, one GPU each, or as Slurm
jobs.

A run's identity is its planned condition and seed, not the sweep that lists it: two
sweeps listing the same run plan it once, and a run one sweep finished is reused by the
next. Idempotent: a rerun skips what has finished (or diverged: that is a result), resumes
what was interrupted, retries failed runs only when asked, and leaves alone a run another
process is training (each run directory is locked by the process training it; each run's
log by the runner that started it).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from ..formatting import printable
from ..io import MAX_JSON_BYTES, atomic_write_json, read_json
from ..run.rundir import EXIT_LOCKED, RunDir
from .display import Display, duration
from .planning import PlannedRun, _planned, merge, planned_runs
from .sweepfile import SweepError, SweepSpec, check_int

MAX_JOBS = 1024  # runs at once on one machine (--jobs; --gpus x --jobs-per-gpu)

# The most seeds per condition `sweep --seeds-for` plans (a tiny observed difference can
# ask for thousands; the log says when the cap binds).
MAX_PLANNED_SEEDS = 20


def _seed_values(spec: SweepSpec) -> list[int]:
    p = spec.parameters.get("seed")
    if p is None:
        return [0]  # train's default seed
    values = p.get("values", [p["value"]] if "value" in p else None)
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                               for v in values):
        raise SweepError(f"{spec.path}: --seeds-for needs the sweep's seed as a value or a "
                         "list of integers")
    return sorted(values)


def _finished_errors(runs_dir: Path, planned: str) -> list[float]:
    """The final test errors of the finished runs of one planned condition (every seed
    found in `runs_dir`, however many the sweep listed): the runs whose summary records
    that planned condition (never read from their names)."""
    out = []
    for path in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        try:
            summary = RunDir(runs_dir, path.name).read_summary() or {}
        except (InputError, OSError):
            continue
        err = summary.get("final_test_err")
        if summary.get("planned_condition") == planned and summary.get("status") == \
                "finished" and isinstance(err, (int, float)):
            out.append(float(err))
    return out


def plan_seeds_for(spec: SweepSpec, runs_dir: Path, pairs: list[tuple[str, str]],
                   detect: float | None = None, max_seeds: int = MAX_PLANNED_SEEDS,
                   log: Callable[[str], None] = print) -> list[PlannedRun]:
    """The runs of named pairs of models with the seeds Welch's test needs to tell each
    pair apart (analysis.power.seeds_needed: two-sided, alpha 0.05, power 0.8, each
    side's spread from the finished runs' test errors in `runs_dir`; the difference
    `detect`, in percentage points, or else the observed one, post hoc, as the log says),
    each pair's other parameters as the sweep has them. The sweep's own seeds are kept and
    the next integers added; what has finished is then skipped by the runner, so only the
    missing seeds run."""
    from ..analysis.inference import check_detect
    from ..analysis.power import seeds_needed

    check_detect(detect)  # its range, checked where it is read
    models = spec.parameters.get("model", {})
    allowed = models.get("values", [models["value"]] if "value" in models else [])
    for a, b in pairs:
        for m in (a, b):
            if m not in allowed:
                raise SweepError(f"--seeds-for {a},{b}: {m!r} is not one of the sweep's "
                                 f"models ({', '.join(map(str, allowed))})")
    seeds = _seed_values(spec)
    base = planned_runs(spec, only={"model": sorted({m for p in pairs for m in p})})
    out: list[PlannedRun] = []
    for a, b in pairs:
        # one planned condition per model and setting of the sweep's other parameters
        groups: dict[str, dict[str, PlannedRun]] = {}
        for run in base:
            rest = json.dumps({k: v for k, v in run.params.items() if k not in ("model",
                                                                                "seed")},
                              sort_keys=True, default=str)
            groups.setdefault(rest, {}).setdefault(run.params["model"], run)
        for rest, by_model in groups.items():
            if a not in by_model or b not in by_model:
                continue
            errs = {m: _finished_errors(runs_dir, by_model[m].planned_condition)
                    for m in (a, b)}
            n = seeds_needed(errs[a], errs[b], detect=detect)
            what = (f"Δ = {detect:g}" if detect is not None else
                    "the observed difference (post hoc: as noisy as that difference)")
            if n is None:
                log(f"--seeds-for {a},{b}: {len(errs[a])} and {len(errs[b])} finished runs: "
                    f"a spread (2 or more runs on a side) is needed to plan for {what}; "
                    f"planning the sweep's seeds")
                n = len(seeds)
            elif n > max_seeds:
                log(f"--seeds-for {a},{b}: {what} needs {n} seeds per condition; capped at "
                    f"{max_seeds}")
                n = max_seeds
            else:
                log(f"--seeds-for {a},{b}: {len(errs[a])} and {len(errs[b])} finished runs; "
                    f"{what} needs {n} seeds per condition (two-sided Welch, alpha 0.05, "
                    f"power 0.8, each side's own spread)")
            planned = seeds + [max(seeds) + 1 + k for k in range(max(0, n - len(seeds)))]
            for m in (a, b):
                params = {**by_model[m].params}
                for seed in planned:
                    params["seed"] = seed
                    out.append(_planned(spec, dict(params)))
    return merge(out)


def planned_work(run: PlannedRun) -> float | None:
    """What a planned run's training costs, up to a rate: MACs per image (counted on the
    meta device at the protocol's crop) x iterations x batch size, from the spec its
    planning resolved. None when it cannot be counted (a plugin's part); the estimate then
    falls back to the mean run's time."""
    try:
        from ..models.counting import check_size

        p, cfg = run.request.protocol, run.request.config
        macs = check_size(run.spec, p.crop, cfg.max_params, cfg.max_activations)["macs"]
        return float(macs) * p.iterations * p.batch_size if macs else None
    except Exception:  # noqa: BLE001  an estimate only: never in the way of a sweep
        return None


class SweepRunner:
    """Runs planned runs: `jobs` at a time on this machine (optionally one GPU each), or
    through a submitit launcher (Slurm, or submitit's local executor)."""

    def __init__(self, runs: list[PlannedRun], runs_dir: Path, name: str, jobs: int = 1,
                 retry_failed: bool = False, gpus: list[str] | None = None,
                 jobs_per_gpu: int = 1, launcher=None, log: Callable[[str], None] = print
                 ) -> None:
        check_int("--jobs", jobs, 1, MAX_JOBS)
        check_int("--jobs-per-gpu", jobs_per_gpu, 1, MAX_JOBS)
        if gpus and len(gpus) * jobs_per_gpu > MAX_JOBS:
            raise InputError(f"--gpus x --jobs-per-gpu must be at most {MAX_JOBS:,} jobs at "
                             f"once; got {len(gpus)} x {jobs_per_gpu}")
        self.runs, self.runs_dir, self.name = runs, runs_dir, name
        self.retry_failed = retry_failed
        # What the runner says carries the sweep's values and the runs' output: text only;
        # on a terminal, above the block of runs in flight (sweep/display.py)
        self.display = Display(self._header)
        self.log: Callable[[str], None] = lambda message: self.display.say(
            message, lambda m: log(printable(m)))
        self.slots: queue.Queue | None = None
        if gpus:
            self.slots = queue.Queue()
            for _ in range(jobs_per_gpu):
                for gpu in gpus:
                    self.slots.put(gpu)
            jobs = len(gpus) * jobs_per_gpu
        self.jobs = jobs
        self.launcher = launcher
        self.submitted = False  # jobs submitted and not waited for (launcher.wait False)
        self.todo_at_start: list[PlannedRun] = []
        self.state_path = runs_dir / ".sweeps" / f"{name}.json"
        self._lock = threading.Lock()
        # The train processes running now, and the signal that stops the sweep (see
        # _relaying_signals): a scheduler's SIGTERM reaches the runner, not its children.
        self._procs: set[subprocess.Popen] = set()
        self._stop: int | None = None
        self._relay = False
        self._done = 0
        self._work: dict[str, float | None] = {}  # run_id -> planned_work (the ETA's weights)
        self._ended: set[str] = set()
        self.refresh()

    # -- state: the run directory says (rundir.RunDir.state) ---------------------------
    def refresh(self) -> None:
        for run in self.runs:
            self._read(run)

    def _read(self, run: PlannedRun) -> None:
        rundir = RunDir(self.runs_dir, run.run_id)
        state = rundir.state()
        try:
            run.summary = rundir.read_summary() or {}
        except InputError as exc:
            run.summary, run.detail = {}, f"malformed summary.json: {exc}"
        if run.summary.get("error"):
            run.detail = run.summary["error"]
        if state == "pending" and run.state == "failed":
            return  # failed before its directory existed: keep what the launch said
        run.state = state

    def _save_state(self) -> None:
        with self._lock:
            atomic_write_json(self.state_path, {
                "sweep": self.name, "runs": {r.run_id: {
                    "params": r.params, "state": r.state, "detail": r.detail,
                    "command": r.shell, "group": r.group} for r in self.runs}})

    def _recorded_failures(self) -> None:
        """Runs refused at start leave no run directory; the sweep's record remembers."""
        try:  # data someone may have replaced: a bounded read that never blocks (a FIFO)
            recorded = read_json(self.state_path, MAX_JSON_BYTES).get("runs", {})
        except (OSError, ValueError, AttributeError):  # InputError is a ValueError
            return
        for run in self.runs:
            rec = recorded.get(run.run_id) if isinstance(recorded, dict) else None
            if run.state == "pending" and isinstance(rec, dict) and rec.get("state") == "failed":
                run.state, run.detail = "failed", str(rec.get("detail", ""))

    def _wanted(self) -> set[str]:
        """The states of a run this runner trains."""
        return {"pending", "interrupted"} | ({"failed"} if self.retry_failed else set())

    def todo(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.state in self._wanted()]

    def _skip(self, run: PlannedRun, index: int, total: int, who: str = "another process"
              ) -> None:
        """Another process (a second runner on this runs dir) trains or has ended `run`."""
        with self._lock:
            self._ended.add(run.run_id)
        doing = ("is training it" if run.state == "running" or who != "another process"
                 else f"ended it ({run.state})")
        self.log(f"[{index}/{total}] skip {run.run_id}: {who} {doing}")

    # -- running ------------------------------------------------------------------------
    def env(self, run: PlannedRun, gpu: str | None = None) -> dict[str, str]:
        """The environment of a run's process: its name, where it goes, that it resumes,
        its W&B group, its GPU, its share of the cores."""
        env = dict(os.environ)
        bin_dir = str(Path(sys.executable).parent)  # resnet-ablate and python of this env
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env.update({
            "WANDB_RUN_ID": run.run_id,  # as the W&B agent names each run
            "WANDB_RUN_GROUP": run.group,
            "RESNET_ABLATE_RUNS_DIR": str(self.runs_dir),
            "RESNET_ABLATE_RESUME": "auto",  # an interrupted run continues from its checkpoint
            # ... even where its numerics changed (another --jobs, so another thread count;
            # a requeued job on another node): recorded in its summary, not bitwise
            "RESNET_ABLATE_RESUME_NUMERICS": "any",
        })
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        # Concurrent jobs share the cores (GPU jobs too, as torchrun does): N processes with a
        # thread per core each ran up to 8x slower. A value the user set is kept.
        if self.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        return env

    def _prepare_retry(self, run: PlannedRun) -> None:
        """A retry starts afresh, but for a run that failed with checkpoints to continue
        from (a full disk at its last save): that one resumes."""
        if run.state == "failed" and not RunDir(self.runs_dir, run.run_id).checkpoints():
            shutil.rmtree(self.runs_dir / run.run_id, ignore_errors=True)

    def _outcome(self, run: PlannedRun, code: int, output: str) -> None:
        self._read(run)
        if run.state in ("finished", "diverged", "failed") and run.summary:
            return
        lines = [line for line in output.splitlines() if line.strip()]
        last = lines[-1][:200] if lines else "no output"
        if code == EXIT_LOCKED:
            run.state, run.detail = "running", f"skipped: {last}"
        elif code in (130, 143):
            run.state, run.detail = "interrupted", f"exit {code}"
        elif code != 0:
            run.state, run.detail = "failed", f"exit {code}: {last}"

    def _execute(self, run: PlannedRun, index: int, total: int) -> None:
        gpu = self.slots.get() if self.slots is not None else None
        try:
            if self._stop is not None:  # the sweep is stopping: no new run starts
                return
            self._read(run)
            if run.state not in self._wanted():  # another runner got to it first
                self._skip(run, index, total)
                return
            log_path = self.runs_dir / ".sweeps" / self.name / f"{run.run_id}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a") as out:  # each attempt appended, one runner at a time
                if not _hold(out):
                    self._skip(run, index, total, "another sweep runner")
                    return
                self._read(run)  # what it is now that this runner alone may start it
                if run.state not in self._wanted():
                    self._skip(run, index, total)
                    return
                self._prepare_retry(run)
                self.log(f"[{index}/{total}] start {run.run_id}"
                         + (f" on GPU {gpu}" if gpu else "") + ": "
                         + " ".join(f"{k}={v}" for k, v in run.params.items())
                         + f"; log {log_path}")
                self.display.add(run.run_id, log_path)
                try:
                    code, output = self._attempt(run, gpu, out)
                finally:
                    self.display.remove(run.run_id)
            self._outcome(run, code, output)
            self._save_state()
            if code == EXIT_LOCKED or (code != 0 and run.state in ("finished", "diverged")):
                # its train found the run trained (or ended) by another process: that
                # process's outcome, not this runner's
                self._skip(run, index, total)
                return
            self._report(run, index, total)
        finally:
            if gpu is not None:
                self.slots.put(gpu)

    def _attempt(self, run: PlannedRun, gpu: str | None, out) -> tuple[int, str]:
        """One train process of `run`, its output appended to the run's log `out` (held by
        this runner); its exit code and what it wrote there."""
        start = time.perf_counter()
        offset = out.tell()
        out.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} runner pid {os.getpid()}: "
                  f"{run.shell}\n")
        out.flush()
        code = self._train(run, gpu, out)
        run.seconds = time.perf_counter() - start
        with open(out.name, "rb") as f:  # read while held: no other runner's lines after
            f.seek(offset)
            return code, f.read().decode(errors="replace")

    def _train(self, run: PlannedRun, gpu: str | None, out) -> int:
        """One train process to its end. Where the runner relays signals, the child has a
        session of its own, so every stop signal reaches it once, from the runner."""
        proc = subprocess.Popen(run.command, env=self.env(run, gpu), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=self._relay)
        with self._lock:
            self._procs.add(proc)
        if self._stop is not None:  # a signal came while it started
            proc.send_signal(self._stop)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    @contextlib.contextmanager
    def _relaying_signals(self):
        """SIGTERM and SIGINT to the runner (a scheduler's preemption, `kill`, Ctrl-C) go on
        to every train process, which checkpoints and exits; no new run starts; the sweep
        ends with 128 + the signal once they have. (Only where signals can be handled: the
        main thread.)"""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def relay(signum, _frame):
            self._stop = self._stop or signum
            with self._lock:
                procs = list(self._procs)
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

        previous = {sig: signal.signal(sig, relay) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._relay = True
        try:
            yield
        finally:
            self._relay = False
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _report(self, run: PlannedRun, index: int, total: int) -> None:
        with self._lock:
            self._done += 1
            done = self._done
            self._ended.add(run.run_id)
            ended = [r for r in self.todo_at_start if r.run_id in self._ended]
        err = run.summary.get("final_test_err")
        result = f"test err {err:.2f}%" if isinstance(err, (int, float)) else run.detail[:120]
        self.log(f"[{index}/{total}] {run.state} {run.run_id} ({run.seconds:.0f} s) {result} "
                 f"-- {self._header(counts_only=True)}")

    def _header(self, counts_only: bool = False) -> str:
        """The sweep's counts (done, running, failed, waiting) and the time left."""
        with self._lock:
            ended = [r for r in self.todo_at_start if r.run_id in self._ended]
            done, total = self._done, len(self.todo_at_start)
        running = len(self.display.running)
        failed = sum(r.state == "failed" for r in ended)
        waiting = max(0, total - done - running)
        left = total - done
        eta = f"; about {duration(self.seconds_left(ended))} left" if left and ended else ""
        counts = (f"{done}/{total} done, {running} running, {failed} failed, {waiting} "
                  f"waiting{eta}")
        return counts if counts_only else f"sweep {self.name}: {counts}"

    def seconds_left(self, ended: list[PlannedRun]) -> float:
        """The time the runs not yet ended will take, from the trained ones' seconds per
        unit of work (MACs x images: a 56-layer run costs ~3x a 20-layer one), over the
        jobs running at once; the mean run's time where a run's work is unknown."""
        done = {r.run_id for r in ended}
        waiting = [r for r in self.todo_at_start if r.run_id not in done]
        known = [r for r in ended if self._work.get(r.run_id) and r.seconds > 0
                 and r.state in ("finished", "diverged")]
        if known and all(self._work.get(r.run_id) for r in waiting):
            rate = sum(r.seconds for r in known) / sum(self._work[r.run_id] for r in known)
            total = rate * sum(self._work[r.run_id] for r in waiting)
        else:
            total = sum(r.seconds for r in ended) / max(len(ended), 1) * len(waiting)
        return total / max(1, min(self.jobs, len(waiting) or 1))

    def run(self) -> list[PlannedRun]:
        self._recorded_failures()
        todo = self.todo()
        if self.launcher is not None:
            self.launcher.check_tools()  # before anything is written
        skipped = len(self.runs) - len(todo)
        where = (f"{self.jobs} at a time" if self.launcher is None
                 else f"as {self.launcher.name} jobs")
        self.log(f"sweep {self.name}: {len(self.runs)} runs, {len(todo)} to run, {skipped} "
                 f"already done{' or failed' if not self.retry_failed else ''}; {where}; "
                 f"runs in {self.runs_dir}")
        self._save_state()
        self._done, self._ended = 0, set()
        self.todo_at_start = todo
        if self.launcher is not None:
            for run in todo:
                self._prepare_retry(run)
            results = self.launcher.run(todo, self.env, self.runs_dir / ".sweeps" / self.name,
                                        log=self.log)
            if results is None:  # submitted, not waited for (--no-wait)
                self.submitted = True
                return self.runs
            for run, (code, output) in zip(todo, results):
                self._outcome(run, code, output)
            self._save_state()
            return self.runs
        self._work = {r.run_id: planned_work(r) for r in todo} if len(todo) > 1 else {}
        with self._relaying_signals(), self.display, \
                ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self._execute, r, i + 1, len(todo))
                       for i, r in enumerate(todo)]
            for f in futures:
                f.result()
        if self._stop is not None:
            self._save_state()
            name = signal.Signals(self._stop).name
            self.log(f"sweep {self.name}: stopped by {name}; the runs it stopped checkpointed "
                     f"and resume when the same command runs again")
            raise SystemExit(128 + self._stop)
        return self.runs


def _hold(log) -> bool:
    """Whether this runner now holds a run's log (flock, never waiting): a second runner
    that reaches the same run while the first trains it finds the log held and skips the
    run, instead of starting a train that would find the run locked and write into the
    same log. The train process inherits the log as its output, and with it the hold: it
    lasts while anyone writes there and ends when they have exited, however they end."""
    try:
        fcntl.flock(log.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
