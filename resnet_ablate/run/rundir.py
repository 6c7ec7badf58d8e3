"""The run directory, one owner: its paths and files (config.json, summary.json,
history.parquet, checkpoints/, model.pt, model_init.pt, wandb/), the history's metric names,
what state a run is in, and the lock that keeps two processes from training one run.

    runs/<run_id>/
      config.json       the record as known at the start (resnet_ablate.run.record)
      summary.json      the whole record, written once, when the run ends
      history.parquet   one row per iteration (typed: iteration int64, the metrics float64);
                        validation/test columns at evaluations, null elsewhere
      checkpoints/      ckpt-<iteration>.pt, the newest `keep` of them
      model.pt          the final weights (a state_dict)
      model_init.pt     the initial weights (the loss landscape's linear path needs them)
      wandb/            the W&B run
      .lock             locked (POSIX lockf) by the process training the run

Every file is written atomically (temporary file, fsync, rename); loading a checkpoint
never runs code (torch.load(weights_only=True)).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, MissingInput
from ..io import MAX_JSON_BYTES, atomic_torch_save, atomic_write_bytes, atomic_write_json, \
    read_json
from . import record
from .config import check_run_id

CHECKPOINT_FORMAT = 3
_CKPT = re.compile(r"ckpt-(\d+)\.pt$")
MAX_HISTORY_BYTES = 1 << 30  # 30x an ImageNet run's 600k rows

# history.parquet's columns, in this order: one row per iteration, the evaluations where
# they happened. The same names in W&B's history, on the progress line and in analysis; the
# final values are summary.json's final_<name> (one vocabulary: README, "Metric names").
HISTORY_COLUMNS = ("iteration", "lr", "train_loss", "train_err")
EVAL_COLUMNS = ("val_loss", "val_err", "test_loss", "test_err")
HISTORY_FILE_COLUMNS = HISTORY_COLUMNS + EVAL_COLUMNS  # iteration int64, the rest float64
# A checkpoint's fields and the type each must have to be resumed from.
CHECKPOINT_FIELDS = {"iteration": int, "model": dict, "optimizer": dict, "schedule": dict,
                     "data": dict, "rng": dict, "history": dict, "best": dict,
                     "counters": dict, "identity": dict}


def paper_train_err(iterations: list[int], train_errs: list[float], end: int,
                    every: int) -> float | None:
    """The paper's training error at `end` (Fig. 1, Fig. 6 thin lines): the mean train-mode
    error of the mini-batches of the last evaluation interval (end - every, end]. One
    definition for the trainer and for the analysis."""
    window = [e for i, e in zip(iterations, train_errs) if end - every < i <= end]
    return sum(window) / len(window) if window else None


@dataclass
class History:
    """Per-iteration training numbers and the evaluations, as history.parquet holds them."""
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

    def to_parquet(self) -> bytes:
        """history.parquet's bytes: a row per iteration, each evaluation's numbers in its
        iteration's row (null where there was none; NaN where one was measured as NaN)."""
        import pyarrow as pa

        evals = {int(e["iteration"]): e for e in self.evals}
        columns = {"iteration": pa.array(self.iteration, pa.int64()),
                   "lr": pa.array(self.lr, pa.float64()),
                   "train_loss": pa.array(self.train_loss, pa.float64()),
                   "train_err": pa.array(self.train_err, pa.float64())}
        for c in EVAL_COLUMNS:
            columns[c] = pa.array([evals.get(it, {}).get(c) for it in self.iteration],
                                  pa.float64())
        return parquet_bytes(pa.table(columns))


def parquet_bytes(table) -> bytes:
    """A history table as Parquet (zstd: a 64,000-iteration run in about 1 MB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


class RunLocked(Exception):
    """Another live process holds the run's lock."""


EXIT_LOCKED = 75  # EX_TEMPFAIL: train's answer when another process trains the run


class RunDir:
    def __init__(self, runs_dir: str | os.PathLike, run_id: str) -> None:
        self.run_id = check_run_id(run_id)
        self.path = Path(runs_dir) / run_id
        self._lock_fd: int | None = None

    # -- paths ---------------------------------------------------------------------
    config_path = property(lambda self: self.path / "config.json")
    summary_path = property(lambda self: self.path / "summary.json")
    history_path = property(lambda self: self.path / "history.parquet")
    model_path = property(lambda self: self.path / "model.pt")
    init_model_path = property(lambda self: self.path / "model_init.pt")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    lock_path = property(lambda self: self.path / ".lock")

    # -- reading -------------------------------------------------------------------
    def read_summary(self) -> dict | None:
        """The summary, or None if the run has not ended; InputError if it is not a regular
        file inside the runs folder, too big, not JSON, or of the wrong shape or types."""
        try:
            summary = read_json(self.summary_path, MAX_JSON_BYTES, inside=self.path.parent)
        except FileNotFoundError:
            return None
        record.check(summary)
        return summary

    def read_config(self) -> dict | None:
        """config.json, or None when it is absent or unusable."""
        try:
            config = read_json(self.config_path, MAX_JSON_BYTES, inside=self.path.parent)
        except (FileNotFoundError, InputError):
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
        atomic_write_bytes(self.history_path, history.to_parquet())

    def write_summary(self, summary: dict[str, Any]) -> None:
        record.check(summary)
        atomic_write_json(self.summary_path, summary)

    def write_model(self, state_dict: dict, initial: bool = False) -> None:
        """model.pt, the final weights; initial=True: model_init.pt, the weights at
        iteration 0."""
        atomic_torch_save(state_dict, self.init_model_path if initial else self.model_path)

    def save_checkpoint(self, state: dict[str, Any], keep: int) -> Path:
        path = self.checkpoint_dir / f"ckpt-{state['iteration']:08d}.pt"
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, path)
        for old in self.checkpoints()[keep:]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, map_location="cpu", like: dict[str, Any] | None = None,
                        accept: Callable[[dict], None] | None = None) -> dict[str, Any]:
        """The newest checkpoint that loads and has every field, of its type; `like`: the
        state a fresh trainer of this run would save (its model's tensors, optimizer,
        schedule and data state), which every field must match in kind, dtype and shape.
        A truncated, corrupt, incomplete or mismatched one is reported and skipped.
        `accept(state)` raises to refuse a readable one (other settings): before the shapes
        are compared, so another model is "refused", not "unreadable".
        weights_only: a checkpoint is data; loading it can never run code."""
        import torch

        candidates = self.checkpoints()
        if not candidates:
            raise MissingInput(f"no checkpoint in {self.checkpoint_dir} to resume from")
        for path in candidates:
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
                _check_checkpoint(state)
            except Exception as exc:  # noqa: BLE001
                _unreadable(path, exc)
                continue
            if accept is not None:
                accept(state)
            try:
                _check_checkpoint(state, like)
                return state
            except Exception as exc:  # noqa: BLE001
                _unreadable(path, exc)
        raise MissingInput(f"no readable checkpoint in {self.checkpoint_dir} (each is named "
                           "above); nothing to resume from")


def _unreadable(path: Path, exc: Exception) -> None:
    print(f"resnet-ablate: warning: checkpoint {path} is unreadable ({type(exc).__name__}: "
          f"{' '.join(str(exc).split())[:160]}); trying the previous one", file=sys.stderr,
          flush=True)


def _check_checkpoint(state: Any, like: dict[str, Any] | None = None) -> None:
    """A checkpoint's fields, of their types, consistent with each other (one history row
    per iteration) and, given `like`, shaped as this run's trainer saves them."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise InputError(f"format {got!r}, expected {CHECKPOINT_FORMAT}")
    import torch

    for key, tp in CHECKPOINT_FIELDS.items():
        value = state.get(key)
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            what = "missing" if value is None else f"a {type(value).__name__}"
            raise InputError(f"field {key!r} is {what}, expected {tp.__name__}")
    if state["iteration"] < 0:
        raise InputError(f"iteration {state['iteration']} is negative")
    tensors = [("rng.torch", state["rng"].get("torch"))]
    tensors += [(f"history.{k}", state["history"].get(k)) for k in HISTORY_COLUMNS]
    tensors += [(f"model.{k}", v) for k, v in state["model"].items()]
    for name, value in tensors:
        if not isinstance(value, torch.Tensor):
            raise InputError(f"field {name!r} is not a tensor")
    rows = {k: state["history"][k].shape for k in HISTORY_COLUMNS}
    if any(shape != (state["iteration"],) for shape in rows.values()):
        raise InputError(f"history has {sorted(set(map(tuple, rows.values())))} rows for "
                         f"iteration {state['iteration']} (one row per iteration)")
    evals = state["history"].get("evals")
    if not isinstance(evals, list) or not all(
            isinstance(e, dict) and _number(e.get("iteration")) for e in evals):
        raise InputError("field 'history.evals' is not a list of {iteration: ..., ...}")
    for key in ("val_err", "test_err", "iteration"):
        if not _number(state["best"].get(key)):
            raise InputError(f"field 'best.{key}' is not a number")
    if not _number(state["counters"].get("train_time")) or not isinstance(
            state["counters"].get("images_seen"), int):
        raise InputError("fields 'counters.train_time' and 'counters.images_seen' must be "
                         "numbers")
    if like is None:
        return
    model = strip_module_prefix(state["model"])
    if set(model) != set(like["model"]):
        extra, absent = sorted(set(model) - set(like["model"])), sorted(
            set(like["model"]) - set(model))
        raise InputError(f"its model has other tensors than this run's (missing "
                         f"{absent[:2]}, unexpected {extra[:2]})")
    for key in ("model", "optimizer", "schedule", "data", "rng"):
        _match(like[key], model if key == "model" else state[key], key)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# torch's own optimizer and LR-scheduler states gain keys between versions (their loaders
# fill in what an older one lacks): of their keys only these must be there ('#': any index).
REQUIRED_KEYS = {"optimizer": ("state", "param_groups"), "optimizer.param_groups.#": ("params",),
                 "optimizer.state": (), "optimizer.state.#": (),
                 "schedule": ("last_epoch", "lr_lambdas"), "schedule.lr_lambdas.#": ()}


def _match(like: Any, value: Any, where: str) -> None:
    """`value` has `like`'s structure: a mapping with like's keys (more allowed: a GPU run's
    CUDA generator; fewer where REQUIRED_KEYS says), a list as long (an empty one: any list),
    a tensor of like's dtype and shape (an empty one: of its number of dimensions), a number,
    flag or string as like's."""
    import torch

    if isinstance(like, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.dtype != like.dtype or (
                value.shape != like.shape if like.numel() else value.dim() != like.dim()):
            got = (f"a {value.dtype} tensor of shape {tuple(value.shape)}"
                   if isinstance(value, torch.Tensor) else f"a {type(value).__name__}")
            raise InputError(f"field {where!r} is {got}, expected a {like.dtype} tensor of "
                             f"shape {tuple(like.shape)}")
    elif isinstance(like, dict):
        if not isinstance(value, dict):
            raise InputError(f"field {where!r} is a {type(value).__name__}, expected a mapping")
        required = REQUIRED_KEYS.get(re.sub(r"\.\d+(?=\.|$)", ".#", where), like)
        for key, sub in like.items():
            if key in value:
                _match(sub, value[key], f"{where}.{key}")
            elif key in required:
                raise InputError(f"field '{where}.{key}' is missing")
    elif isinstance(like, (list, tuple)):
        if not isinstance(value, (list, tuple)) or (like and len(value) != len(like)):
            raise InputError(f"field {where!r} is not a list of {len(like)}")
        for i, (sub, item) in enumerate(zip(like, value)):
            _match(sub, item, f"{where}.{i}")
    elif isinstance(like, bool):
        if not isinstance(value, bool):
            raise InputError(f"field {where!r} is not true or false")
    elif isinstance(like, (int, float)):
        if not _number(value) or (isinstance(like, int) and not isinstance(value, int)):
            raise InputError(f"field {where!r} is not "
                             + ("an integer" if isinstance(like, int) else "a number"))
    elif isinstance(like, str) and not isinstance(value, str):
        raise InputError(f"field {where!r} is not a string")


def strip_module_prefix(state_dict: dict) -> dict:
    """Weights saved from DataParallel/DDP (`module.`) or torch.compile (`_orig_mod.`)."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out
