"""Learning-rate schedules built on torch's schedulers.

The paper's step schedule is a LambdaLR whose factor is a function of the iteration alone,
so a warm-up phase cannot leak into the rest of training: the known pitfall of "set lr to
0.01, then rely on a chainable scheduler" keeps 0.01 for the whole first phase.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque

import torch

from ..protocol import Protocol

# The warm-up ends when the mean training error of the last WARMUP_WINDOW mini-batches is
# below the protocol's threshold (the paper: "until the training error is below 80%").
WARMUP_WINDOW = 10


class StepSchedule:
    """lr factor at an iteration: warm-up factor while warming up, then lr_gamma per
    milestone passed. A callable object, so LambdaLR's state_dict saves its state."""

    def __init__(self, milestones: tuple[int, ...], gamma: float, warmup_factor: float,
                 warmup_max_iterations: int, warmup: bool) -> None:
        self.milestones = list(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_max_iterations = warmup_max_iterations
        self.warmup_end: int | None = None if warmup else 0
        self.recent_errors: list[float] = []

    def in_warmup(self, iteration: int) -> bool:
        return self.warmup_end is None and iteration < self.warmup_max_iterations

    def __call__(self, iteration: int) -> float:
        if self.in_warmup(iteration):
            return self.warmup_factor
        return self.gamma ** bisect_right(self.milestones, iteration)

    def observe(self, iteration: int, batch_error: float, threshold: float) -> bool:
        """Feed the training error of the mini-batch of `iteration`; True when the warm-up
        ends with it (error below threshold, or the iteration cap reached)."""
        if self.warmup_end is not None:
            return False
        window = deque(self.recent_errors, maxlen=WARMUP_WINDOW)
        window.append(batch_error)
        self.recent_errors = list(window)
        full = len(window) == WARMUP_WINDOW
        if (full and sum(window) / len(window) < threshold) or \
                iteration >= self.warmup_max_iterations:
            self.warmup_end = iteration
            return True
        return False


def build_scheduler(optimizer: torch.optim.Optimizer, protocol: Protocol, depth: int):
    if protocol.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=protocol.lr_gamma, patience=protocol.plateau_patience)
    schedule = StepSchedule(protocol.milestones, protocol.lr_gamma,
                            protocol.warmup_lr / protocol.lr, protocol.warmup_max_iterations,
                            warmup=protocol.warmup_applies(depth))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def step_schedule(scheduler) -> StepSchedule | None:
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return scheduler.lr_lambdas[0]
    return None
