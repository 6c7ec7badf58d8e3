"""Progress of a run: a tqdm bar on a terminal, plain log lines otherwise."""
from __future__ import annotations

import sys
from typing import Any

MODES = ("auto", "bar", "lines", "off")


class Progress:
    def __init__(self, mode: str, total: int, label: str, enabled: bool = True) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode if enabled else "off"
        self.total = total
        self.label = label
        self.bar = None

    def start(self, iteration: int) -> None:
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=iteration, desc=self.label, unit="it",
                            dynamic_ncols=True, file=sys.stderr)
        elif self.mode == "lines" and iteration:
            self.message(f"resuming at iteration {iteration}")

    def update(self, iteration: int, m: dict[str, Any]) -> None:
        text = (f"loss {m['train/loss']:.3f} err {m['train/err']:.1f}% lr {m['lr']:.3g} "
                f"{m['images_per_sec']:.0f} img/s")
        if self.bar is not None:
            self.bar.update(iteration - self.bar.n)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.mode == "lines":
            print(f"[{self.label}] iter {iteration}/{self.total} {text}", file=sys.stderr,
                  flush=True)

    def note(self, iteration: int, row: dict[str, float]) -> None:
        parts = [f"{k.replace('_err', ' err')} {v:.2f}%" for k, v in row.items()
                 if k.endswith("_err")]
        if parts:
            self.message(f"iter {iteration}: " + ", ".join(parts))

    def message(self, text: str) -> None:
        if self.mode == "off":
            return
        if self.bar is not None:
            self.bar.write(f"[{self.label}] {text}", file=sys.stderr)
        else:
            print(f"[{self.label}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
