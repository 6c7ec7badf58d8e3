"""Sweeps beyond one machine, through submitit (the launcher pycls and many labs use): one
Slurm job per run, submitted as a job array. A job that is preempted or reaches its time
limit asks its run to checkpoint (SIGTERM: the trainer saves and exits) and requeues
itself; the run continues from its checkpoint (resume=auto). `--launcher local` uses
submitit's LocalExecutor: the same code path on one machine, what the tests run.
"""
from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit

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


@dataclass
class SubmititLauncher:
    name: str  # slurm | local
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    timeout_min: int = 24 * 60
    array_parallelism: int = 64
    account: str | None = None

    def executor(self, folder: Path) -> submitit.AutoExecutor:
        ex = submitit.AutoExecutor(folder=folder, cluster=self.name)
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "name": "resnet-ablate"}
        if self.name == "slurm":
            params.update(slurm_partition=self.partition, gpus_per_node=self.gpus_per_job,
                          tasks_per_node=1, nodes=1, slurm_array_parallelism=self.array_parallelism,
                          slurm_signal_delay_s=120)
            if self.account:
                params["slurm_account"] = self.account
        if self.cpus_per_job:
            params["cpus_per_task"] = self.cpus_per_job
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex

    def run(self, runs: list, env_of: Callable, folder: Path) -> list[tuple[int, str]]:
        """Submit every run (one job array), wait for them, return (exit code, output)."""
        if not runs:
            return []
        executor = self.executor(folder / "submitit")
        env = {r.run_id: env_of(r) for r in runs}
        for e in env.values():  # the job gets its GPUs from Slurm, its threads from its CPUs
            e.pop("CUDA_VISIBLE_DEVICES", None)
        with executor.batch():
            jobs = [executor.submit(RunJob(r.command, env[r.run_id])) for r in runs]
        results = []
        for run, job in zip(runs, jobs):
            try:
                results.append(job.result())
            except Exception as exc:  # noqa: BLE001  the job itself failed (node, Slurm)
                results.append((1, f"submitit job {job.job_id}: {type(exc).__name__}: "
                                   f"{str(exc)[-300:]}"))
        return results
