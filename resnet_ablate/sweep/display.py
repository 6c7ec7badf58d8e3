"""What a sweep shows while it runs. On a terminal: a block redrawn in place about once a
second under the runner's lines: how many runs are done, running, failed and waiting, the
time left, and a line per running run (its iteration, its own time left, where its log
is). Elsewhere (a file, a pipe, CI): nothing but the runner's plain line per event.

A running run's iteration is the last `iter N/T` its train wrote to its log (train's
progress lines: a train whose output is not a terminal writes them)."""
from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..formatting import printable

_ITER = re.compile(rb"iter (\d+)/(\d+)")
_TAIL = 8192  # bytes of a log read for its last progress line
UP_CLEAR = "\x1b[{n}F\x1b[J"  # cursor up n lines to their start, clear to the end


def last_iteration(log: Path) -> tuple[int, int] | None:
    """(iteration, of) from the last progress line of a run's log, or None."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _TAIL))
            found = _ITER.findall(f.read())
    except OSError:
        return None
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Running:
    """A run in flight: where its log is, and the iterations seen (for its own rate)."""

    def __init__(self, run_id: str, log: Path) -> None:
        self.run_id, self.log = run_id, log
        self.first: tuple[float, int] | None = None  # (when, iteration) first seen

    def line(self, now: float) -> str:
        seen = last_iteration(self.log)
        if seen is None:
            return f"  {self.run_id}: starting; log {self.log}"
        it, total = seen
        if self.first is None:
            self.first = (now, it)
        when, at = self.first
        rate = (it - at) / (now - when) if now > when and it > at else None
        left = f", about {duration((total - it) / rate)} left" if rate else ""
        return f"  {self.run_id}: iter {it}/{total}{left}; log {self.log}"


class Display:
    """The in-place block of a sweep on a terminal `stream` (None: sys.stdout, when it is
    one). `header()` gives the counts line; runs in flight are added and removed by the
    runner as they start and end."""

    def __init__(self, header: Callable[[], str], stream: Any = None,
                 every: float = 1.0) -> None:
        out = sys.stdout if stream is None else stream
        self.stream = getattr(out, "raw_stream", out)  # ours: the escapes act, data is text
        self.on = bool(getattr(self.stream, "isatty", lambda: False)())
        self.header, self.every = header, every
        self.running: dict[str, Running] = {}
        self._shown, self._lock = 0, threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def lines(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        with self._lock:
            running = list(self.running.values())
        return [self.header(), *(r.line(now) for r in running)]

    def add(self, run_id: str, log: Path) -> None:
        with self._lock:
            self.running[run_id] = Running(run_id, log)

    def remove(self, run_id: str) -> None:
        with self._lock:
            self.running.pop(run_id, None)

    def say(self, message: str, log: Callable[[str], None]) -> None:
        """An event line above the block (the block redrawn under it)."""
        with self._lock:
            self._clear()
            log(message)
            self._draw()

    def _clear(self) -> None:
        if self.on and self._shown:
            self.stream.write(UP_CLEAR.format(n=self._shown))
            self._shown = 0

    def _draw(self) -> None:
        if not self.on or self._thread is None:
            return
        lines = self.lines()
        self.stream.write("".join(printable(line) + "\n" for line in lines))
        self.stream.flush()
        self._shown = len(lines)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                self._clear()
                self._draw()

    def __enter__(self) -> "Display":
        if self.on:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._clear()
        self._thread = None
