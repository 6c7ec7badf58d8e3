"""What every probe shares: the units of a network and their shapes, the one place that
names a block's residual-branch end, BN modes that never touch the running statistics, a
fixed subset of batches, batched evaluation, and settings validation.

Probes take a model and batches of already normalised (x, y) tensors; they never need the
training harness, and they leave the model exactly as they found it (weights, buffers,
modules, train/eval flags, no hooks left behind).
"""
from __future__ import annotations

import dataclasses
import difflib
import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InputError

BN_MODES = ("eval", "batch")


def branch_end(block: nn.Module) -> nn.Module:
    """The last module of a unit's residual branch F (its output is F(x), before the merge).
    The only place the probes name this block API, so its rename is one line here."""
    return block.branch_end()


# ---------------------------------------------------------------------------- units
@dataclass(frozen=True, eq=False)
class Unit:
    """One residual (or plain) unit, in depth order."""

    index: int  # 0-based position in the whole network
    stage: int
    position: int  # index within its stage's Sequential
    block: nn.Module
    in_shape: tuple[int, ...]  # (C, H, W) of one sample
    out_shape: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"stages.{self.stage}.{self.position}"

    @property
    def residual(self) -> bool:
        """Has a shortcut (identity, zero-pad or projection); a plain unit has None."""
        return getattr(self.block, "downsample", None) is not None

    @property
    def keeps_shape(self) -> bool:
        return self.in_shape == self.out_shape

    @property
    def shortcut_kind(self) -> str:
        """identity | zero-pad (option A) | projection (B/C) | parts joined by " + " |
        the module's class name; "none" in a plain unit."""
        s = getattr(self.block, "downsample", None)
        return "none" if s is None else _kind(s)


def _kind(s: nn.Module) -> str:
    if isinstance(s, nn.Identity):
        return "identity"
    if type(s).__name__ == "ZeroPadShortcut":
        return "zero-pad"
    if isinstance(s, nn.Conv2d) or (
            isinstance(s, nn.Sequential) and any(isinstance(m, nn.Conv2d) for m in s)):
        return "projection"
    if isinstance(s, nn.Sequential):
        return " + ".join(_kind(m) for m in s)
    return type(s).__name__


def network_units(model: nn.Module, x: Tensor, probe: str) -> list[Unit]:
    """The units of `model.stages` with their input/output shapes, from one no-grad forward
    of a single sample (shapes decide which units a plain net can lose or swap)."""
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Sequential) or not all(
            isinstance(s, nn.Sequential) for s in stages):
        raise InputError(f"{probe} needs a resnet_ablate ResNet (model.stages: a Sequential "
                         f"of stages of units); got {type(model).__name__}")
    found = [(s, j, b) for s, stage in enumerate(stages) for j, b in enumerate(stage)]
    if not found:
        raise InputError(f"{probe}: the model has no units")
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def record(i: int):
        def hook(module, inputs, output):
            shapes[i] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]))
        return hook

    handles = [b.register_forward_hook(record(i)) for i, (_, _, b) in enumerate(found)]
    try:
        with torch.no_grad(), bn_mode(model, "eval"):
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return [Unit(i, s, j, b, *shapes[i]) for i, (s, j, b) in enumerate(found)]


# ---------------------------------------------------------------------------- modes
@contextmanager
def bn_mode(model: nn.Module, bn: str) -> Iterator[None]:
    """The whole model in eval mode (dropout off, shortcut dropout at its expectation), and
    BN layers either on their running statistics ("eval") or on each batch's own statistics
    ("batch": train-mode BN with track_running_stats off, so the running mean/var and
    num_batches_tracked are neither used nor updated). Every flag is restored on exit."""
    if bn not in BN_MODES:
        raise InputError(f"bn must be one of {', '.join(BN_MODES)}; got {bn!r}")
    modes = [(m, m.training) for m in model.modules()]
    tracked = [(m, m.track_running_stats) for m in model.modules() if isinstance(m, _BatchNorm)]
    try:
        model.eval()
        if bn == "batch":
            for m, _ in tracked:
                m.train()
                m.track_running_stats = False
        yield
    finally:
        for m, flag in modes:
            m.training = flag
        for m, flag in tracked:
            m.track_running_stats = flag


# ---------------------------------------------------------------------------- data
def model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def fixed_batches(batches: Iterable[tuple[Tensor, Tensor]], num_batches: int | None,
                  device: torch.device, probe: str) -> list[tuple[Tensor, Tensor]]:
    """The first `num_batches` (all if None) of `batches`, on `device`, kept as a list so
    every condition or grid point sees the very same samples. No batch past those is
    taken from the iterable (the runner counts the images a probe read)."""
    out = []
    for item in itertools.islice(batches, num_batches):
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise InputError(f"{probe}: batches must be (x, y) pairs; got {type(item).__name__}")
        x, y = item[0], item[1]
        if not (isinstance(x, Tensor) and isinstance(y, Tensor)) or y.dim() != 1 or \
                x.shape[0] != y.shape[0] or y.is_floating_point():
            raise InputError(f"{probe}: each batch is (x, y) with y a 1-D tensor of class "
                             "indices, one per row of x")
        out.append((x.to(device), y.to(device)))
    if not out:
        raise InputError(f"{probe}: no batches given")
    return out


def evaluate(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """(mean cross-entropy, top-1 error) over all samples of `batches`, in whatever mode
    the model is in; sums stay on the device until the end (one sync per condition)."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=batches[0][0].device)
    wrong = torch.zeros((), dtype=torch.int64, device=loss_sum.device)
    count = 0
    with torch.no_grad():
        for x, y in batches:
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            wrong += (logits.argmax(1) != y).sum()
            count += y.shape[0]
    return float(loss_sum) / count, float(wrong) / count


def generator(seed: int) -> torch.Generator:
    """A CPU generator: draws are the same on any device the model lives on."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer; got {seed!r}")
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- settings
def parse_settings(cls: type, probe: str, settings: dict[str, Any]) -> Any:
    """cls(**settings), refusing unknown names in one line; lists become tuples (frozen)."""
    known = [f.name for f in dataclasses.fields(cls)]
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InputError(f"{probe}: unknown setting {key!r}{hint} (allowed: "
                             f"{', '.join(known)})")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return cls(**values)


def settings_dict(settings: Any) -> dict[str, Any]:
    """The settings as JSON-able data (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(settings).items()}


def check_int(probe: str, name: str, value: Any, low: int, high: int | None = None,
              allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (
        high is None or value <= high)
    if not ok:
        span = f"{low}..{high}" if high is not None else f">= {low}"
        extra = " or null (all)" if allow_none else ""
        raise InputError(f"{probe}: {name} must be an integer {span}{extra}; got {value!r}")


def check_float(probe: str, name: str, value: Any, low: float | None = None,
                high: float | None = None, above: bool = False) -> None:
    """A finite number in [low, high] (above=True: low excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(
            value) or (low is not None and (value <= low if above else value < low)) or (
            high is not None and value > high):
        span = "" if low is None and high is None else \
            f" {'>' if above else '>='} {low:g}" if high is None else \
            f" in {'(' if above else '['}{low:g}, {high:g}]" if low is not None else \
            f" <= {high:g}"
        raise InputError(f"{probe}: {name} must be a finite number{span}; got {value!r}")


def check_choice(probe: str, name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"{probe}: {name} must be one of {', '.join(allowed)}; got {value!r}")


def check_ints(probe: str, name: str, value: Any, low: int, high: int) -> None:
    """None (the default range) or a non-empty tuple of distinct integers in low..high."""
    if value is None:
        return
    if not isinstance(value, tuple) or not value or any(
            isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high
            for v in value) or len(set(value)) != len(value):
        raise InputError(f"{probe}: {name} must be distinct integers in {low}..{high} (or "
                         f"null for all); got {value!r}")


def result(probe: str, paper: str, seed: int, settings: Any, model: nn.Module,
           **fields: Any) -> dict[str, Any]:
    """The uniform result: JSON-able fields, big numpy arrays under "arrays"."""
    spec = getattr(model, "spec", None)
    arrays = fields.pop("arrays", {})
    out = {"probe": probe, "paper": paper, "seed": seed, "settings": settings_dict(settings),
           "model": getattr(spec, "name", type(model).__name__)}
    out.update(fields)
    out["arrays"] = arrays
    return out
