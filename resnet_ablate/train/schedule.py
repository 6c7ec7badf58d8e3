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

# "until the training error is below 80%" (Section 4.2): the training error is read as the
# mean error of the last WARMUP_WINDOW mini-batches (one mini-batch of 128 is too noisy to
# decide on; the paper does not say how it measured).
WARMUP_WINDOW = 10


class StepSchedule:
    """lr factor at an iteration: warmup_factor until the warm-up ends, then lr_gamma per
    milestone passed. A callable object, so LambdaLR's state_dict saves its state."""

    def __init__(self, milestones: tuple[int, ...], gamma: float, warmup_factor: float,
                 warmup_max_iterations: int, warmup: bool) -> None:
        self.milestones = list(milestones)
        self.gamma = gamma
        self.warmup = warmup
        self.warmup_factor = warmup_factor
        self.warmup_max_iterations = warmup_max_iterations  # 0: no cap
        self.warmup_end: int | None = None  # the iteration the warm-up ended at, if it did
        self.warmup_capped = False
        self.recent_errors: list[float] = []

    def in_warmup(self) -> bool:
        return self.warmup and self.warmup_end is None

    def __call__(self, iteration: int) -> float:
        if self.in_warmup():
            return self.warmup_factor
        return self.gamma ** bisect_right(self.milestones, iteration)

    def observe(self, iteration: int, batch_error: float, threshold: float) -> bool:
        """Feed the training error (a fraction) of the mini-batch of `iteration`; True when
        the warm-up ends with it: the error is below threshold, or the safety cap (if one
        is set) is reached, which is recorded as warmup_capped."""
        if not self.in_warmup():
            return False
        window = deque(self.recent_errors, maxlen=WARMUP_WINDOW)
        window.append(batch_error)
        self.recent_errors = list(window)
        if len(window) == WARMUP_WINDOW and sum(window) / len(window) < threshold:
            self.warmup_end = iteration
        elif self.warmup_max_iterations and iteration >= self.warmup_max_iterations:
            self.warmup_end, self.warmup_capped = iteration, True
        return self.warmup_end is not None


def build_scheduler(optimizer: torch.optim.Optimizer, protocol: Protocol, depth: int):
    if protocol.lr_schedule == "plateau":
        # torch cuts once more than `patience` evaluations in a row have not improved; the
        # protocol's plateau_patience=5 cuts at the 5th. An improvement is any lower error.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=protocol.lr_gamma,
            patience=protocol.plateau_patience - 1, threshold=0.0, threshold_mode="abs")
    schedule = StepSchedule(protocol.milestones, protocol.lr_gamma,
                            protocol.warmup_lr / protocol.lr, protocol.warmup_max_iterations,
                            warmup=protocol.warmup_applies(depth))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def step_schedule(scheduler) -> StepSchedule | None:
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        return scheduler.lr_lambdas[0]
    return None
