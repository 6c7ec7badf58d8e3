"""SIGTERM and SIGINT (a scheduler's preemption or time limit, Ctrl-C), deferred: the first
asks the run to stop at the end of its iteration; one during the final save waits for the
save. Handled from the first iteration until every file of the run is complete, so no
signal can kill a run half-saved."""
from __future__ import annotations

import signal
import sys
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class DeferredSignals:
    def __init__(self) -> None:
        self.signal: int | None = None  # the first signal received
        self.saving = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "DeferredSignals":
        self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.saving:
            print(f"\nresnet-ablate: {name} received while the run's files are written; "
                  "they are completed first", file=sys.stderr, flush=True)
        elif self.signal is None:
            print(f"\nresnet-ablate: {name} received; saving a checkpoint at the end of "
                  "this iteration", file=sys.stderr, flush=True)
        if self.signal is None:
            self.signal = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal or signal.SIGTERM)
