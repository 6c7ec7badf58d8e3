"""The local record of a run: config.json, history.csv and summary.json, written atomically.

history.csv has one row per iteration (lr, mini-batch loss and error) with the validation
and test columns filled at evaluation iterations. Errors are percentages throughout.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_json, atomic_write_text

EVAL_COLUMNS = ("val_loss", "val_err", "test_loss", "test_err")
STATUSES = ("finished", "diverged", "failed")


@dataclass
class History:
    iteration: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_err: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)  # {"iteration": i, ...}

    def append(self, iteration: int, lr: float, loss: float, err: float) -> None:
        self.iteration.append(iteration)
        self.lr.append(lr)
        self.train_loss.append(loss)
        self.train_err.append(err)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain lists only: loadable with torch.load(weights_only=True)."""
        return {"iteration": torch.tensor(self.iteration, dtype=torch.int64),
                "lr": torch.tensor(self.lr, dtype=torch.float64),
                "train_loss": torch.tensor(self.train_loss, dtype=torch.float64),
                "train_err": torch.tensor(self.train_err, dtype=torch.float64),
                "evals": [dict(e) for e in self.evals]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "History":
        return cls(iteration=state["iteration"].tolist(), lr=state["lr"].tolist(),
                   train_loss=state["train_loss"].tolist(),
                   train_err=state["train_err"].tolist(),
                   evals=[dict(e) for e in state["evals"]])

    def to_csv(self) -> str:
        evals = {int(e["iteration"]): e for e in self.evals}
        out = io.StringIO()
        out.write("iteration,lr,train_loss,train_err," + ",".join(EVAL_COLUMNS) + "\n")
        for i, it in enumerate(self.iteration):
            e = evals.get(it, {})
            cells = [str(it), repr(self.lr[i]), repr(self.train_loss[i]),
                     repr(self.train_err[i])]
            cells += [_cell(e.get(c)) for c in EVAL_COLUMNS]
            out.write(",".join(cells) + "\n")
        return out.getvalue()


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return "nan" if isinstance(value, float) and math.isnan(value) else repr(value)


class RunRecord:
    """Writes the run's files; only the main process of a run holds one."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir / "config.json", config)

    def write_history(self, history: History) -> None:
        atomic_write_text(self.run_dir / "history.csv", history.to_csv())

    def write_summary(self, summary: dict[str, Any]) -> None:
        assert summary["status"] in STATUSES, summary["status"]
        atomic_write_json(self.summary_path, summary)
