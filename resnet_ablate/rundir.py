"""The run directory, one owner: its paths and files (config.json, summary.json,
history.csv, checkpoints/, model.pt, wandb/), the summary's schema, the metric names shared
by W&B, the progress display and `collect`, what state a run is in, and the lock that keeps
two processes from training one run at once.

    runs/<run_id>/
      config.json       the request as given and as resolved
      summary.json      written once, when the run ends (SUMMARY below)
      history.csv       one row per iteration; validation/test columns at evaluations
      checkpoints/      ckpt-<iteration>.pt, the newest `keep` of them
      model.pt          the final weights (a state_dict)
      wandb/            the W&B run
      .lock             locked (POSIX lockf) by the process training the run

Every file is written atomically (temporary file, fsync, rename); loading a checkpoint
never runs code (torch.load(weights_only=True)).
"""
from __future__ import annotations

import errno
import fcntl
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from .io import atomic_torch_save, atomic_write_json, atomic_write_text
from .errors import InputError, MissingInput

STATUSES = ("finished", "diverged", "failed")
CHECKPOINT_FORMAT = 2
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_CKPT = re.compile(r"ckpt-(\d+)\.pt$")

# Per-iteration columns of history.csv, and their names in W&B and on the progress line.
HISTORY_COLUMNS = ("iteration", "lr", "train_loss", "train_err")
EVAL_COLUMNS = ("val_loss", "val_err", "test_loss", "test_err")
METRICS = {"train_loss": "train/loss", "train_err": "train/err", "lr": "lr",
           "val_loss": "val/loss", "val_err": "val/err", "test_loss": "test/loss",
           "test_err": "test/err"}


class Summary(TypedDict, total=False):
    """summary.json. Errors are percentages. The model's factors (VariantSpec fields) are
    stored at the top level beside these keys."""
    run_id: str
    model: str
    family: str
    depth: int
    shortcut: str | None
    block: str
    dataset: str
    data_mode: str
    split_sizes: dict
    val_source: str
    protocol: str
    protocol_fields: dict
    protocol_overrides: dict
    seed: int
    status: str  # finished | diverged | failed
    iterations: int
    iterations_planned: int
    final_train_err: float | None  # the paper's: train mode, augmented mini-batches
    final_train_err_running: float | None  # the same, by its explicit name
    final_train_err_eval: float | None  # eval mode, the whole training split
    train_err_definition: str
    final_val_err: float | None
    final_test_err: float | None
    final_test_top5_err: float | None
    best_val_err: float | None
    best_val_iteration: int | None
    test_err_at_best_val: float | None
    diverged_at: int | None
    warmup_end: int | None
    warmup_capped: bool
    params: int
    macs: int
    amp: str
    channels_last: bool
    deterministic: bool
    world_size: int
    plugins: list
    condition: str
    layer_responses: list
    error: str | None
    finished_at: str


# The type a key must have for `collect` to trust a summary (numbers may also be None).
_NUMBERS = {k for k, t in Summary.__annotations__.items() if "float" in str(t)} | {
    "depth", "seed", "iterations", "params", "macs", "world_size"}
_STRINGS = {"run_id", "model", "family", "block", "dataset", "protocol", "status"}
_MAPPINGS = {"split_sizes", "protocol_fields"}


def check_summary(summary: Any) -> None:
    """A summary's shape, as collect trusts it: a one-line ValueError naming the first
    field that is missing or of the wrong type."""
    if not isinstance(summary, dict):
        raise InputError("summary.json is not an object")
    for key in ("run_id", "model", "family", "depth", "status"):
        if key not in summary:
            raise InputError(f"summary.json lacks {key}")
    for key in _STRINGS:
        if key in summary and not isinstance(summary[key], str):
            raise InputError(f"summary.json: {key} must be a string")
    for key in _NUMBERS:
        v = summary.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise InputError(f"summary.json: {key} must be a number")
    for key in _MAPPINGS:
        if key in summary and not isinstance(summary[key], dict):
            raise InputError(f"summary.json: {key} must be a mapping")
    if summary["status"] not in STATUSES:
        raise InputError(f"summary.json: status {summary['status']!r} is none of "
                         f"{', '.join(STATUSES)}")


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise InputError(f"run_id must be 1-128 ASCII letters, digits, '-', '_' or '.', not "
                         f"starting with '-' or '.'; got {run_id!r}")
    return run_id


@dataclass
class History:
    """Per-iteration training numbers and the evaluations, as history.csv holds them."""
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
        import torch

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
        out.write(",".join(HISTORY_COLUMNS + EVAL_COLUMNS) + "\n")
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


class RunLocked(Exception):
    """Another live process holds the run's lock."""


class RunDir:
    def __init__(self, runs_dir: str | os.PathLike, run_id: str) -> None:
        self.run_id = check_run_id(run_id)
        self.path = Path(runs_dir) / run_id
        self._lock_fd: int | None = None

    # -- paths ---------------------------------------------------------------------
    config_path = property(lambda self: self.path / "config.json")
    summary_path = property(lambda self: self.path / "summary.json")
    history_path = property(lambda self: self.path / "history.csv")
    model_path = property(lambda self: self.path / "model.pt")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    wandb_dir = property(lambda self: self.path)  # W&B makes wandb/ under it
    lock_path = property(lambda self: self.path / ".lock")

    # -- reading -------------------------------------------------------------------
    def read_summary(self) -> dict | None:
        """The summary, or None if the run has not ended; ValueError if it is malformed."""
        try:
            text = self.summary_path.read_text()
        except FileNotFoundError:
            return None
        try:
            summary = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"summary.json is not JSON ({exc.msg})") from None
        check_summary(summary)
        return summary

    def read_config(self) -> dict | None:
        try:
            config = json.loads(self.config_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return config if isinstance(config, dict) else None

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, newest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir()
                 if (m := _CKPT.search(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def state(self) -> str:
        """finished | diverged | failed (its summary says) | running (another process
        holds its lock) | interrupted (checkpoints, no summary) | pending (nothing yet)."""
        try:
            summary = self.read_summary()
        except ValueError:
            return "failed"
        if summary is not None:
            return summary["status"]
        if self.locked_by_other():
            return "running"
        return "interrupted" if self.checkpoints() else "pending"

    # -- the lock ------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the run's lock; RunLocked if another live process holds it. A POSIX record
        lock: the kernel releases it when its process dies (a lock is never stale), and the
        DataLoader workers a run forks do not inherit it (as they would a flock)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLocked(f"run {self.path} is being trained by another "
                                "process") from None
            raise
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None

    def locked_by_other(self) -> bool:
        if self._lock_fd is not None or not self.lock_path.exists():
            return False
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def clean_tmp(self) -> list[Path]:
        """Remove temporary files of atomic writes a killed process left behind (only the
        lock holder may)."""
        gone = []
        for folder in (self.path, self.checkpoint_dir):
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    p.unlink(missing_ok=True)
                    gone.append(p)
        return gone

    # -- writing -------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config_path, config)

    def write_history(self, history: History) -> None:
        atomic_write_text(self.history_path, history.to_csv())

    def write_summary(self, summary: dict[str, Any]) -> None:
        check_summary(summary)
        atomic_write_json(self.summary_path, summary)

    def write_model(self, state_dict: dict) -> None:
        atomic_torch_save(state_dict, self.model_path)

    def save_checkpoint(self, state: dict[str, Any], keep: int) -> Path:
        path = self.checkpoint_dir / f"ckpt-{state['iteration']:08d}.pt"
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, path)
        for old in self.checkpoints()[keep:]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, map_location="cpu") -> dict[str, Any]:
        """The newest checkpoint that loads; a truncated or corrupt one is reported and
        skipped. weights_only: a checkpoint is data; loading it can never run code."""
        import torch

        candidates = self.checkpoints()
        if not candidates:
            raise MissingInput(f"no checkpoint in {self.checkpoint_dir} to resume from")
        for path in candidates:
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
                if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                    raise InputError(f"format {getattr(state, 'get', dict().get)('format')!r},"
                                     f" expected {CHECKPOINT_FORMAT}")
                return state
            except Exception as exc:  # noqa: BLE001
                print(f"resnet-ablate: warning: checkpoint {path} is unreadable "
                      f"({type(exc).__name__}: {str(exc)[:120]}); trying the previous one",
                      file=sys.stderr, flush=True)
        raise MissingInput(f"no readable checkpoint in {self.checkpoint_dir}")


def strip_module_prefix(state_dict: dict) -> dict:
    """Weights saved from DataParallel/DDP (`module.`) or torch.compile (`_orig_mod.`)."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out
