"""Sweeps: W&B sweep files, run here (grid, random) or by `wandb agent` anywhere."""
from .runner import SweepRunner, expand_command, run_id_for
from .spec import SweepError, SweepSpec, load_sweep, plan

__all__ = ["SweepError", "SweepRunner", "SweepSpec", "expand_command", "load_sweep", "plan",
           "run_id_for"]
