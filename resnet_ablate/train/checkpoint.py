"""Checkpoints: written atomically, loaded without executing code, newest good one wins.

A checkpoint holds everything the next iteration depends on (model, optimizer, schedule,
data order and every RNG state, history), so a resumed run continues bit for bit.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_torch_save

FORMAT = 1
_NAME = re.compile(r"ckpt-(\d+)\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files, newest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int) -> Path:
    path = checkpoint_dir(run_dir) / f"ckpt-{state['iteration']:08d}.pt"
    atomic_torch_save({"format": FORMAT, **state}, path)
    for old in list_checkpoints(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    return path


def load_latest(run_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The newest checkpoint that loads; a truncated or corrupt one is reported and skipped."""
    candidates = list_checkpoints(run_dir)
    if not candidates:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(run_dir)} to resume from")
    for path in candidates:
        try:
            # weights_only: a checkpoint is data; loading it can never run code.
            state = torch.load(path, map_location=map_location, weights_only=True)
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {FORMAT}")
            return state
        except Exception as exc:  # noqa: BLE001
            print(f"resnet-ablate: warning: checkpoint {path} is unreadable "
                  f"({type(exc).__name__}: {str(exc)[:120]}); trying the previous one",
                  file=sys.stderr, flush=True)
    raise FileNotFoundError(f"no readable checkpoint in {checkpoint_dir(run_dir)}")


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved from DataParallel/DDP (`module.`) or torch.compile (`_orig_mod.`)."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out
