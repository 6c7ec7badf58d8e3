"""Sweeps beyond one machine, through submitit (the launcher pycls and many labs use): one
Slurm job per run, submitted as a job array. A job that is preempted or reaches its time
limit asks its run to checkpoint (SIGTERM: the trainer saves and exits) and requeues
itself; the run continues from its checkpoint (resume=auto). `--launcher local` uses
submitit's LocalExecutor: the same code path on one machine, what the tests run.
`--dry-run` describes the submission (array size and parallelism, resources per job, logs,
whether the command waits) without Slurm's tools; a real submission without them is one
line, before anything is written.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit

from ..errors import InputError
from .sweepfile import check_int


class RunJob(submitit.helpers.Checkpointable):
    """One training run as a submitit job: the sweep's command in its environment."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.command, self.env = command, env
        self.proc: subprocess.Popen | None = None

    def __call__(self) -> tuple[int, str]:
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, errors="replace")
        out, _ = self.proc.communicate()
        print(out, end="")  # into the job's own log
        short = out if len(out) <= 6000 else f"{out[:2000]}\n...\n{out[-4000:]}"
        return self.proc.returncode, short

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Preemption or time limit: the run saves a checkpoint at the end of its current
        iteration, then the same job is requeued and resumes it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return submitit.helpers.DelayedSubmission(RunJob(self.command, self.env))

    def __getstate__(self) -> dict:
        return {"command": self.command, "env": self.env, "proc": None}


# What a Slurm submission needs on this machine: sbatch submits, srun runs each job (and
# submitit refuses to start without it).
SLURM_TOOLS = ("sbatch", "srun")
ARRAY_PARALLELISM = 64  # jobs of one array running at once, unless --array-parallelism
# What a submission takes, each checked before anything is submitted (beyond these a
# value is a typo, and sbatch or submitit would fail on it with a traceback): a year of
# time, one node's GPUs, CPUs and memory at their largest.
RANGES = {"timeout_min": (1, 366 * 24 * 60), "array_parallelism": (1, 1_000_000),
          "gpus_per_job": (1, 64), "cpus_per_job": (1, 4096), "mem_gb": (1, 65_536)}


@dataclass
class SubmititLauncher:
    name: str  # slurm | local
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    timeout_min: int = 24 * 60
    array_parallelism: int = ARRAY_PARALLELISM
    account: str | None = None
    wait: bool = True  # False: submit, print the job ids, return (Slurm only)
    signal_delay_s: int = 120  # the run's warning before its time limit: time to checkpoint

    def __post_init__(self) -> None:
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is not None:  # the local launcher may run jobs without a GPU
                low = 0 if name == "gpus_per_job" and self.name == "local" else low
                check_int("--" + name.replace("_", "-"), value, low, high)

    def check_tools(self) -> None:
        """A Slurm submission without Slurm's tools: one line, before anything is written."""
        if self.name != "slurm":
            return
        missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
        if missing:
            raise InputError(f"--launcher slurm needs Slurm's {' and '.join(missing)} on PATH "
                             "(run it on a login node); --dry-run shows what would be "
                             "submitted, --launcher local runs the same jobs here")

    def parameters(self) -> dict[str, Any]:
        """submitit's AutoExecutor parameters (generic names; Slurm's prefixed slurm_)."""
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "name": "resnet-ablate",
                                  "cpus_per_task": self.cpus_per_job, "mem_gb": self.mem_gb}
        if self.name == "slurm":
            params.update(slurm_partition=self.partition, gpus_per_node=self.gpus_per_job,
                          tasks_per_node=1, nodes=1,
                          slurm_array_parallelism=self.array_parallelism,
                          slurm_signal_delay_s=self.signal_delay_s,
                          slurm_account=self.account)
        return {k: v for k, v in params.items() if v is not None}

    def executor(self, folder: Path) -> submitit.AutoExecutor:
        ex = submitit.AutoExecutor(folder=folder, cluster=self.name)
        ex.update_parameters(**self.parameters())
        return ex

    def describe(self, jobs: int, folder: Path) -> list[str]:
        """What `run` would submit, in words, and (Slurm) the sbatch script submitit writes."""
        folder = folder / "submitit"
        cpus = f"{self.cpus_per_job} CPUs" if self.cpus_per_job else "the partition's default CPUs"
        mem = f"{self.mem_gb} GB memory" if self.mem_gb else "the partition's default memory"
        hours, minutes = divmod(self.timeout_min, 60)
        if self.name == "local":
            return [f"submitit's LocalExecutor on this machine: {jobs} job(s), all at once; "
                    f"time limit {hours}:{minutes:02d}:00 each; logs in {folder}/",
                    "waits for every job, then prints each run's state"]
        lines = [
            f"Slurm job array: {jobs} job(s), one per run to train, at most "
            f"{min(jobs, self.array_parallelism)} running at once (--array-parallelism "
            f"{self.array_parallelism})",
            f"each job: partition {self.partition or '(the cluster default)'}, "
            f"{self.gpus_per_job} GPU(s), {cpus}, {mem}, time limit {hours}:{minutes:02d}:00"
            + (f", account {self.account}" if self.account else ""),
            f"at the time limit or on preemption a job checkpoints its run (SIGTERM, "
            f"{self.signal_delay_s} s before) and requeues itself; the run resumes",
            f"logs: {folder}/<array id>_<index>_0_log.out and .err; each run's record in its "
            "own run directory",
            ("then: waits until every job has ended and prints each run's state"
             if self.wait else "then: returns after submitting (--no-wait) and prints the "
             "job ids and how to follow them"),
        ]
        script = self.sbatch_script(jobs, folder)
        if script:
            lines += ["the sbatch script submitit writes:", *("  " + s for s in script.splitlines()
                                                             if s.startswith("#SBATCH"))]
        return lines

    def sbatch_script(self, jobs: int, folder: Path) -> str | None:
        """submitit's own sbatch text for this array (its module function: the executor
        itself will not start where srun is missing), or None if its API has moved."""
        try:
            from submitit.slurm.slurm import _convert_mem, _make_sbatch_string

            extra = {"mem": _convert_mem(self.mem_gb)} if self.mem_gb else {}
            return _make_sbatch_string(
                command="python -u -m submitit.core._submit " + str(folder), folder=folder,
                job_name="resnet-ablate", partition=self.partition, time=self.timeout_min,
                nodes=1, ntasks_per_node=1, cpus_per_task=self.cpus_per_job,
                gpus_per_node=self.gpus_per_job, account=self.account,
                signal_delay_s=self.signal_delay_s, array_parallelism=self.array_parallelism,
                map_count=jobs if jobs > 1 else None, **extra)
        except Exception:  # noqa: BLE001  a private helper of submitit's: words suffice
            return None

    def run(self, runs: list, env_of: Callable, folder: Path,
            log: Callable[[str], None] = print) -> list[tuple[int, str]] | None:
        """Submit every run (one job array); wait for them and return (exit code, output)
        of each, or, with wait=False, log the job ids and return None."""
        if not runs:
            return []
        self.check_tools()
        executor = self.executor(folder / "submitit")
        env = {r.run_id: env_of(r) for r in runs}
        for e in env.values():  # the job gets its GPUs from Slurm, its threads from its CPUs
            e.pop("CUDA_VISIBLE_DEVICES", None)
        with executor.batch():
            jobs = [executor.submit(RunJob(r.command, env[r.run_id])) for r in runs]
        if not self.wait:
            array = str(jobs[0].job_id).split("_")[0]
            log(f"submitted {len(jobs)} job(s): {', '.join(str(j.job_id) for j in jobs[:4])}"
                + (" ..." if len(jobs) > 4 else "") + f"; follow them with `squeue -j {array}` "
                f"and `sacct -j {array}`, logs in {folder / 'submitit'}/; when they have ended, "
                "the same command again skips the finished runs (and builds a report)")
            return None
        results = []
        for run, job in zip(runs, jobs):
            try:
                results.append(job.result())
            except Exception as exc:  # noqa: BLE001  the job itself failed (node, Slurm)
                results.append((1, f"submitit job {job.job_id}: {type(exc).__name__}: "
                                   f"{str(exc)[-300:]}"))
        return results
