"""Progress of a run: a tqdm bar on a terminal, plain log lines otherwise. Evaluations, the
final whole-split passes and 10-crop testing show their own progress too. What it prints is
text (formatting.printable): a label or message that carries a recorded name can never act
on the terminal (stderr is not wrapped as the CLI's stdout is: the bar draws with \r)."""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator

from ..formatting import printable, raw


MODES = ("auto", "bar", "lines", "off")


class Progress:
    def __init__(self, mode: str, total: int, label: str, enabled: bool = True) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode if enabled else "off"
        self.total = total
        self.label = printable(label)
        self.bar = None

    def start(self, iteration: int) -> None:
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=iteration, desc=self.label, unit="it",
                            dynamic_ncols=True, file=raw(sys.stderr))
        elif self.mode == "lines" and iteration:
            self.message(f"resuming at iteration {iteration}")

    def update(self, iteration: int, m: dict[str, Any]) -> None:
        text = (f"loss {m['train_loss']:.3f} err {m['train_err']:.1f}% "
                f"lr {m['lr']:.3g} {m['images_per_sec']:.0f} img/s")
        if self.bar is not None:
            # the text first, then the count, whose refresh shows it: never a window stale
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(iteration - self.bar.n)
        elif self.mode == "lines":
            print(f"[{self.label}] iter {iteration}/{self.total} {text}", file=sys.stderr,
                  flush=True)

    def note(self, iteration: int, row: dict[str, float]) -> None:
        parts = [f"{k.replace('_err', ' err')} {v:.2f}%" for k, v in row.items()
                 if k.endswith("_err")]
        if parts:
            self.message(f"iter {iteration}: " + ", ".join(parts))

    def iterate(self, batches: Iterable, what: str, images: int) -> Iterator:
        """Batches of an evaluation, with their own progress (a second bar, or a line when
        a pass takes more than a few seconds)."""
        if self.mode == "bar":
            from tqdm import tqdm

            bar = tqdm(total=images, desc=f"[{self.label}] {what}", unit="img", leave=False,
                       dynamic_ncols=True, file=raw(sys.stderr))
            try:
                for x, y in batches:
                    yield x, y
                    bar.update(len(y))
            finally:
                bar.close()
            return
        start, done, said = time.perf_counter(), 0, False
        for x, y in batches:
            yield x, y
            done += len(y)
            if self.mode == "lines" and time.perf_counter() - start > 10 and not said:
                self.message(f"{what}: {done}/{images} images ...")
                said = True
        if said:
            self.message(f"{what}: {done} images in {time.perf_counter() - start:.0f} s")

    def message(self, text: str) -> None:
        if self.mode == "off":
            return
        text = printable(text)
        if self.bar is not None:
            self.bar.write(f"[{self.label}] {text}", file=sys.stderr)
        else:
            print(f"[{self.label}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
