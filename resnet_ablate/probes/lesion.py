"""Lesion study of Veit, Wilber & Belongie (2016), "Residual Networks Behave Like Ensembles
of Relatively Shallow Networks", Section 4: at test time, (a) delete each residual unit
singly (Fig. 3), (b) delete k random units (Fig. 5a), (c) reorder units by swapping k random
pairs within a stage (Fig. 5b: error against the Kendall tau of the new order); report test
error per condition. The k pairs of a draw are distinct (drawn without replacement: a pair
drawn twice would swap back and reorder nothing).

Deleting a unit means its residual branch contributes nothing, F(x) = 0, so the unit outputs
what its shortcut path gives: x for an identity shortcut; a unit that changes shape keeps
its zero-pad (option A) or projection shortcut. A plain unit has no shortcut: a
shape-preserving one is replaced by the identity (Veit et al.'s VGG comparison, Sec. 4.1);
one that changes shape cannot be deleted, and its row says so.

No model copies: a deletion zeroes the branch's output with a forward hook on the branch's
last module (the unit's own merge code then gives exactly its shortcut path: the ReLU after
the addition, a gate, BN after the addition), a plain unit is swapped for nn.Identity in its
stage; hooks are removed and modules put back on exit. Test-time BN: eval mode, the trained
running statistics, as the paper evaluates trained networks.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .common import (InputError, Unit, bn_mode, branch_end, check_choice, check_int,
                     check_ints, evaluate, fixed_batches, generator, model_device,
                     network_units, parse_settings, result)

PROBE = "lesion"
PAPER = "Veit et al. (2016), Sec. 4, Figs. 3 and 5"
PARTS = ("single", "delete_k", "swap_k")
NOT_DELETABLE = "not deletable (changes shape, no shortcut)"
PLAIN_IDENTITY = "identity (plain: no shortcut)"


@dataclass(frozen=True)
class LesionSettings:
    parts: tuple[str, ...] = PARTS  # which of Fig. 3 / Fig. 5a / Fig. 5b to run
    draws: int = 5  # seeded random draws per k (deletions and swaps)
    delete_ks: tuple[int, ...] | None = None  # None: k = 1..(deletable units)
    swap_ks: tuple[int, ...] | None = None  # None: k = 1..(shape-preserving units)
    num_batches: int | None = None  # evaluate on the first n batches; None: all

    def __post_init__(self) -> None:
        if not isinstance(self.parts, tuple) or not self.parts:
            raise InputError(f"{PROBE}: parts must be a non-empty list of "
                             f"{', '.join(PARTS)}; got {self.parts!r}")
        for part in self.parts:
            check_choice(PROBE, "parts", part, PARTS)
        check_int(PROBE, "draws", self.draws, 1, 1000)
        check_ints(PROBE, "delete_ks", self.delete_ks, 1, 100_000)
        check_ints(PROBE, "swap_ks", self.swap_ks, 1, 100_000)
        check_int(PROBE, "num_batches", self.num_batches, 1, allow_none=True)


def how_deleted(unit: Unit) -> str:
    """What deleting `unit` leaves in its place (the rows' "how")."""
    if unit.residual:
        return f"shortcut only ({unit.shortcut_kind})"
    return PLAIN_IDENTITY if unit.keeps_shape else NOT_DELETABLE


def deletable(unit: Unit) -> bool:
    return unit.residual or unit.keeps_shape


def _zero_branch(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
    return torch.zeros_like(output)  # not output * 0: that keeps NaN/inf


@contextmanager
def deleted(model: nn.Module, units: Sequence[Unit]) -> Iterator[None]:
    """Run the model with `units` deleted (Veit et al. 2016, Sec. 4.1); restores on exit."""
    handles, replaced = [], []
    try:
        for u in units:
            if u.residual:
                handles.append(branch_end(u.block).register_forward_hook(_zero_branch))
            elif u.keeps_shape:
                model.stages[u.stage][u.position] = nn.Identity()
                replaced.append(u)
            else:
                raise InputError(f"{PROBE}: unit {u.name} is {NOT_DELETABLE}")
        yield
    finally:
        for h in handles:
            h.remove()
        for u in replaced:
            model.stages[u.stage][u.position] = u.block


@contextmanager
def swapped(model: nn.Module, pairs: Sequence[tuple[Unit, Unit]]) -> Iterator[list[int]]:
    """Run the model with the units at each pair's positions swapped, in order (Veit et al.
    2016, Sec. 4.3, Fig. 5b). Yields the resulting order of units (their original indices);
    every stage is put back on exit."""
    units = {(u.stage, u.position): u for pair in pairs for u in pair}
    stages = sorted({u.stage for u in units.values()})
    originals = {s: list(model.stages[s]) for s in stages}
    order = {s: list(range(len(model.stages[s]))) for s in stages}
    try:
        for a, b in pairs:
            if a.stage != b.stage or not (a.keeps_shape and b.keeps_shape):
                raise InputError(f"{PROBE}: only shape-preserving units of one stage swap; "
                                 f"got {a.name} and {b.name}")
            o = order[a.stage]
            o[a.position], o[b.position] = o[b.position], o[a.position]
        for s in stages:
            for j, k in enumerate(order[s]):
                model.stages[s][j] = originals[s][k]
        offsets = np.cumsum([0] + [len(st) for st in model.stages]).tolist()
        yield [offsets[s] + (order[s][j] if s in order else j)
               for s in range(len(model.stages)) for j in range(len(model.stages[s]))]
    finally:
        for s in stages:
            for j, block in enumerate(originals[s]):
                model.stages[s][j] = block


def kendall_tau(order: Sequence[int]) -> float:
    """Kendall's tau between `order` and 0..n-1 (scipy.stats.kendalltau; no ties): Fig.
    5b's x axis."""
    from scipy.stats import kendalltau

    if len(order) < 2:
        return 1.0
    return float(kendalltau(np.asarray(order), np.arange(len(order))).statistic)


def run(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, seed: int,
        **settings: Any) -> dict[str, Any]:
    """Veit et al. (2016) Sec. 4 on `model` (a resnet_ablate ResNet) and test `batches`.

    Returns the uniform result dict with
      baseline: {loss, error}
      single: [{unit, stage, position, how, error, loss}] per unit (error/loss None where
              not deletable) (Fig. 3)
      delete_k: [{k, draw, units, error, loss}]; delete_k_summary: {k, error_mean, error_std}
      swap_k: [{k, draw, pairs, kendall_tau, error, loss}]; swap_k_summary likewise (Fig. 5)
              (empty, with swap_k_skipped saying why, where no stage has two
              shape-preserving units)
      arrays: delete_k_error / swap_k_error / swap_k_tau, shape (len(ks), draws)
    """
    s = parse_settings(LesionSettings, PROBE, settings)
    g = generator(seed)
    data = fixed_batches(batches, s.num_batches, model_device(model), PROBE)
    units = network_units(model, data[0][0], PROBE)
    can_delete = [u for u in units if deletable(u)]
    keep = [u for u in units if u.keeps_shape]
    swap_pairs = [(a, b) for a, b in itertools.combinations(keep, 2) if a.stage == b.stage]
    delete_ks = s.delete_ks or tuple(range(1, len(can_delete) + 1))
    swap_ks = s.swap_ks or tuple(range(1, min(len(keep), len(swap_pairs)) + 1))
    if "delete_k" in s.parts and max(delete_ks, default=0) > len(can_delete):
        raise InputError(f"{PROBE}: delete_ks go up to the {len(can_delete)} deletable units; "
                         f"got {max(delete_ks)}")
    if "swap_k" in s.parts and swap_pairs and max(swap_ks) > len(swap_pairs):
        raise InputError(f"{PROBE}: swap_ks go up to the {len(swap_pairs)} distinct pairs of "
                         f"shape-preserving units in a stage; got {max(swap_ks)}")

    out: dict[str, Any] = {"units": len(units), "deletable": len(can_delete)}
    arrays: dict[str, np.ndarray] = {}
    with bn_mode(model, "eval"):
        loss, error = evaluate(model, data)
        out["baseline"] = {"loss": loss, "error": error}
        if "single" in s.parts:
            rows = []
            for u in units:
                row = {"unit": u.name, "stage": u.stage, "position": u.position,
                       "how": how_deleted(u), "error": None, "loss": None}
                if deletable(u):
                    with deleted(model, [u]):
                        row["loss"], row["error"] = evaluate(model, data)
                rows.append(row)
            out["single"] = rows
        if "delete_k" in s.parts:
            rows = []
            for k in delete_ks:
                for d in range(s.draws):
                    pick = torch.randperm(len(can_delete), generator=g)[:k].sort().values
                    chosen = [can_delete[i] for i in pick.tolist()]
                    with deleted(model, chosen):
                        loss, error = evaluate(model, data)
                    rows.append({"k": k, "draw": d, "units": [u.name for u in chosen],
                                 "error": error, "loss": loss})
            out["delete_k"] = rows
            arrays["delete_k_error"] = _grid(rows, "error", len(delete_ks), s.draws)
            out["delete_k_summary"] = _summary(delete_ks, arrays["delete_k_error"])
        if "swap_k" in s.parts and not swap_pairs:
            out["swap_k"] = []
            out["swap_k_skipped"] = "no stage has two shape-preserving units to swap"
        elif "swap_k" in s.parts:
            rows = []
            for k in swap_ks:
                for d in range(s.draws):
                    picks = torch.randperm(len(swap_pairs), generator=g)[:k].tolist()
                    pairs = [swap_pairs[i] for i in picks]
                    with swapped(model, pairs) as order:
                        loss, error = evaluate(model, data)
                    rows.append({"k": k, "draw": d,
                                 "pairs": [[a.name, b.name] for a, b in pairs],
                                 "kendall_tau": kendall_tau(order), "error": error,
                                 "loss": loss})
            out["swap_k"] = rows
            arrays["swap_k_error"] = _grid(rows, "error", len(swap_ks), s.draws)
            arrays["swap_k_tau"] = _grid(rows, "kendall_tau", len(swap_ks), s.draws)
            out["swap_k_summary"] = _summary(swap_ks, arrays["swap_k_error"])
            out["swap_k_summary"]["kendall_tau_mean"] = arrays["swap_k_tau"].mean(1).tolist()
    return result(PROBE, PAPER, seed, s, model, **out, arrays=arrays)


def _grid(rows: list[dict[str, Any]], key: str, ks: int, draws: int) -> np.ndarray:
    return np.array([r[key] for r in rows], dtype=np.float64).reshape(ks, draws)


def _summary(ks: Sequence[int], errors: np.ndarray) -> dict[str, list]:
    return {"k": list(ks), "error_mean": errors.mean(1).tolist(),
            "error_std": errors.std(1).tolist()}
