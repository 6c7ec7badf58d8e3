"""Sweeps: W&B sweep files, run here (grid, random; N at a time, a GPU each), on a Slurm
cluster through submitit, or by `wandb agent` anywhere."""
from .planning import PlannedRun, expand_command, merge, planned_runs
from .scheduler import SweepRunner
from .sweepfile import SweepError, SweepSpec, grid_size, load_sweep, plan

__all__ = ["PlannedRun", "SweepError", "SweepRunner", "SweepSpec", "expand_command",
           "grid_size", "load_sweep", "merge", "plan", "planned_runs"]
