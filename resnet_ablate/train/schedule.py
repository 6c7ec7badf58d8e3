"""The learning rate as a protocol sets it, one object on torch's schedulers: the step
schedule with its warm-up, or the plateau schedule.

The step schedule is a LambdaLR whose factor is a function of the iteration alone, so a
warm-up cannot leak into the rest of training: the known pitfall of "set lr to 0.01, then
rely on a chainable scheduler" keeps 0.01 for the whole first phase.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque
from typing import Any

import torch

from ..run.protocol import Protocol


class StepFactor:
    """lr factor at an iteration: warmup_factor until the warm-up ends, then lr_gamma per
    milestone passed. A callable object, so LambdaLR's state_dict saves its state."""

    def __init__(self, protocol: Protocol, warmup: bool) -> None:
        self.milestones = list(protocol.milestones)
        self.gamma = protocol.lr_gamma
        self.warmup = warmup
        self.warmup_factor = protocol.warmup_lr / protocol.lr
        self.warmup_end: int | None = None  # the iteration the warm-up ended at, if it did
        self.warmup_capped = False
        self.recent_errors: list[float] = []

    def in_warmup(self) -> bool:
        return self.warmup and self.warmup_end is None

    def __call__(self, iteration: int) -> float:
        if self.in_warmup():
            return self.warmup_factor
        return self.gamma ** bisect_right(self.milestones, iteration)


class Schedule:
    """Stepped after every iteration (`after_iteration`, with that mini-batch's training
    error) and after every evaluation (`after_evaluation`, with the validation error); each
    returns a sentence when the learning rate changed phase, else None."""

    def __init__(self, optimizer: torch.optim.Optimizer, protocol: Protocol, depth: int
                 ) -> None:
        self.protocol = protocol
        self.optimizer = optimizer
        self.plateau = protocol.lr_schedule == "plateau"
        if self.plateau:
            # torch cuts once more than `patience` evaluations in a row have not improved;
            # the protocol's plateau_patience=5 cuts at the 5th. An improvement is any
            # lower error.
            self.torch = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=protocol.lr_gamma,
                patience=protocol.plateau_patience - 1, threshold=0.0, threshold_mode="abs")
            self.factor: StepFactor | None = None
        else:
            self.factor = StepFactor(protocol, warmup=protocol.warmup_applies(depth))
            self.torch = torch.optim.lr_scheduler.LambdaLR(optimizer, self.factor)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def in_warmup(self) -> bool:
        return self.factor is not None and self.factor.in_warmup()

    @property
    def warmup_end(self) -> int | None:
        return None if self.factor is None else self.factor.warmup_end

    @property
    def warmup_capped(self) -> bool:
        return bool(self.factor is not None and self.factor.warmup_capped)

    def after_iteration(self, iteration: int, batch_err: float | None) -> str | None:
        """batch_err: the training error (a fraction) of this iteration's mini-batch, which
        the warm-up reads (None when not warming up)."""
        if self.factor is None:
            return None
        said = self._observe(iteration, batch_err) if self.in_warmup() else None
        self.torch.step()
        return said

    def _observe(self, iteration: int, batch_err: float | None) -> str | None:
        p, f = self.protocol, self.factor
        if p.warmup_iterations:  # He et al. (2016): a fixed length, whatever the error
            if iteration >= p.warmup_iterations:
                f.warmup_end = iteration
        elif batch_err is not None:
            window = deque(f.recent_errors, maxlen=p.warmup_window)
            window.append(batch_err)
            f.recent_errors = list(window)
            if len(window) == p.warmup_window and sum(window) / len(window) < \
                    p.warmup_until_train_err:
                f.warmup_end = iteration
            elif p.warmup_max_iterations and iteration >= p.warmup_max_iterations:
                f.warmup_end, f.warmup_capped = iteration, True
        if f.warmup_end is None:
            return None
        how = (f"after the fixed {p.warmup_iterations} iterations" if p.warmup_iterations
               else f": the safety cap warmup_max_iterations={p.warmup_max_iterations} was "
                    f"reached before the training error fell below "
                    f"{100 * p.warmup_until_train_err:.0f}%" if f.warmup_capped
               else f"(training error below {100 * p.warmup_until_train_err:.0f}% over "
                    f"{p.warmup_window} mini-batches)")
        return f"warm-up ends at iteration {iteration} {how} (lr {p.warmup_lr} -> {p.lr})"

    def after_evaluation(self, iteration: int, val_err: float | None) -> str | None:
        if not self.plateau or val_err is None:
            return None
        before = self.lr
        self.torch.step(val_err)
        if self.lr != before:
            return (f"validation error plateaued: lr {before:.3g} -> {self.lr:.3g} at "
                    f"iteration {iteration}")
        return None

    def state_dict(self) -> dict[str, Any]:
        return self.torch.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.torch.load_state_dict(state)
