"""Gradient paths of Veit, Wilber & Belongie (2016), "Residual Networks Behave Like Ensembles
of Relatively Shallow Networks", Section 5, Fig. 6: a net of n residual units unravels into
2^n paths; a path of length k goes through k residual branches and n - k shortcuts, so path
lengths are Binomial(n, 1/2) (Fig. 6a). The gradient reaching the input along paths of each
length is measured by sampling (Fig. 6b): one forward pass, then per sample a backward pass
in which k random units propagate through their residual branch only and the other n - k
through their shortcut only ("path" sampling: exactly one path of length k); Fig. 6c
weighs each length's mean magnitude by its share of paths.

Also the per-unit gradient norm of He et al.'s vanishing-gradient argument, for a given
model (run it at initialisation and at the end of training): the norm of dL/dx_l, the
gradient of the loss with respect to each unit's input. Activation gradients, not parameter
gradients: they are what the path decomposition splits (dL/dx_l is a sum over the paths
from unit l on), and in BN nets a parameter's gradient scales inversely with its own norm
(BN's scale invariance), which would mix weight growth into a depth profile.

Conventions. "Input" is the input of the first unit (where the paths begin; the stem's
Jacobian is common to all of them). Magnitudes are per sample: the loss is the summed
cross-entropy of a batch, each sample's row of the gradient is normed, and norms are
averaged over samples of the fixed subset. A plain unit has no shortcut: every path goes
through its branch, so with p plain and m residual units lengths run p..p+m (a plain net
has one path, of length n). A gate's own path (He et al. 2016 gated shortcuts) is not
masked.

BN: "batch" by default (train-mode BN on the batch's statistics, running statistics
untouched): the backward pass training runs. At initialisation the running statistics are
the constructor's (mean 0, var 1), so eval mode would measure an un-normalised network.
bn="eval" measures a trained net on its running statistics.

Masking leaves the forward pass unchanged: the outputs of each unit's branch end and
shortcut pass through an identity whose backward multiplies by an on/off flag read at
backward time, so one forward serves every sample.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import (BN_MODES, InputError, Unit, bn_mode, branch_end, check_choice,
                     check_int, check_ints, fixed_batches, generator, model_device,
                     network_units, parse_settings, result)

PROBE = "paths"
PAPER = "Veit et al. (2016), Sec. 5, Fig. 6"
SAMPLING = ("path", "branches")


@dataclass(frozen=True)
class PathSettings:
    samples: int = 8  # seeded draws of k units per path length
    lengths: tuple[int, ...] | None = None  # path lengths to sample; None: every length
    # "path": Veit et al.'s single path of length k (chosen units: branch only; others:
    #   shortcut only). "branches": chosen units' branches carry gradient alongside every
    #   shortcut (all paths through subsets of those k branches; k = n: the full gradient).
    sampling: str = "path"
    bn: str = "batch"
    num_batches: int | None = 1

    def __post_init__(self) -> None:
        check_int(PROBE, "samples", self.samples, 1, 10_000)
        check_ints(PROBE, "lengths", self.lengths, 0, 100_000)
        check_choice(PROBE, "sampling", self.sampling, SAMPLING)
        check_choice(PROBE, "bn", self.bn, BN_MODES)
        check_int(PROBE, "num_batches", self.num_batches, 1, allow_none=True)


def length_distribution(units: Sequence[Unit]) -> tuple[list[int], list[float]]:
    """Path lengths and their shares of all paths (Veit et al. Fig. 6a): Binomial(m, 1/2)
    over the m residual units, shifted by the p plain units every path goes through."""
    m = sum(u.residual for u in units)
    p = len(units) - m
    return [p + k for k in range(m + 1)], [math.comb(m, k) / 2 ** m for k in range(m + 1)]


class _GradGate(torch.autograd.Function):
    """Identity forward; backward passes the gradient only while gates.on[key] is true."""

    @staticmethod
    def forward(ctx, x: Tensor, gates: "PathGates", key: tuple[int, int]) -> Tensor:
        ctx.gates, ctx.key = gates, key
        return x.clone()  # a fresh tensor: merges apply in-place ReLUs to it

    @staticmethod
    def backward(ctx, grad: Tensor):
        return (grad if ctx.gates.on[ctx.key] else None), None, None


BRANCH, SHORTCUT = 0, 1


class PathGates:
    """On/off flags of every unit's branch and shortcut in the backward pass, and the unit
    inputs of the last forward (inputs[0], the first unit's, is a leaf)."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = list(units)
        self.on: dict[tuple[int, int], bool] = {}
        self.inputs: list[Tensor] = []
        self.all_on()

    def all_on(self) -> None:
        for u in self.units:
            self.on[(u.index, BRANCH)] = True
            self.on[(u.index, SHORTCUT)] = True

    def set(self, branch: Sequence[bool], shortcut: Sequence[bool]) -> None:
        """Flags per unit, in depth order; a plain unit's branch cannot be turned off."""
        for u, b, s in zip(self.units, branch, shortcut, strict=True):
            if not u.residual and not b:
                raise InputError(f"{PROBE}: plain unit {u.name} has only its branch")
            self.on[(u.index, BRANCH)] = bool(b)
            self.on[(u.index, SHORTCUT)] = bool(s)

    def set_path(self, chosen: Sequence[int], sampling: str = "path") -> None:
        """Residual units `chosen` (unit indices) carry their branch; see PathSettings."""
        pick = set(chosen)
        branch = [u.index in pick or not u.residual for u in self.units]
        if sampling == "path":
            shortcut = [u.residual and u.index not in pick for u in self.units]
        else:
            shortcut = [u.residual for u in self.units]
        self.set(branch, shortcut)


@contextmanager
def gated(model: nn.Module, units: Sequence[Unit]) -> Iterator[PathGates]:
    """Install PathGates on `model` (hooks only; all removed on exit). Gradient
    checkpointing is off meanwhile: its recomputation in backward would re-run the hooks."""
    gates = PathGates(units)
    handles = []
    checkpointing = getattr(model, "grad_checkpointing", None)

    def capture(first: bool):
        def hook(module, inputs):
            x = inputs[0]
            if first:  # paths begin here: a leaf, whether or not the stem needs grad
                gates.inputs = []
                x = x.detach().requires_grad_(True)
            gates.inputs.append(x)
            return (x, *inputs[1:])
        return hook

    def gate(key: tuple[int, int]):
        return lambda module, inputs, output: _GradGate.apply(output, gates, key)

    try:
        if checkpointing is not None:
            model.grad_checkpointing = False
        for u in units:
            handles.append(u.block.register_forward_pre_hook(capture(u.index == 0)))
            handles.append(branch_end(u.block).register_forward_hook(gate((u.index, BRANCH))))
            if u.residual:
                handles.append(u.block.downsample.register_forward_hook(
                    gate((u.index, SHORTCUT))))
        yield gates
    finally:
        for h in handles:
            h.remove()
        if checkpointing is not None:
            model.grad_checkpointing = checkpointing


def _per_sample_norm_sum(grad: Tensor | None) -> float:
    """Sum over the batch of each sample's gradient norm (None: no path reached it)."""
    return 0.0 if grad is None else float(grad.flatten(1).norm(dim=1).sum())


def run(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, seed: int,
        **settings: Any) -> dict[str, Any]:
    """Veit et al. (2016) Sec. 5 and per-unit gradient norms, on a resnet_ablate ResNet.

    Returns the uniform result dict with
      units, residual_units
      length_distribution: {length: [...], share: [...]} (Fig. 6a)
      gradient_by_length: {length, mean, std, total} (Fig. 6b; total = mean x share, 6c)
      unit_grad_norm: [{unit, grad_norm}] (||dL/dx_l|| per sample, mean over samples)
      arrays: path_grad (lengths, samples), unit_grad_norm (units,)
    """
    s = parse_settings(PathSettings, PROBE, settings)
    gen = generator(seed)
    data = fixed_batches(batches, s.num_batches, model_device(model), PROBE)
    units = network_units(model, data[0][0], PROBE)
    all_lengths, shares = length_distribution(units)
    lengths = s.lengths or tuple(all_lengths)
    bad = [k for k in lengths if k not in all_lengths]
    if bad:
        raise InputError(f"{PROBE}: path lengths of this net are {all_lengths[0]}.."
                         f"{all_lengths[-1]}; got {bad[0]}")
    residual = [u.index for u in units if u.residual]
    plain = len(units) - len(residual)
    # A sample is one set of units, used on every batch of the subset.
    masks = [[[residual[i] for i in
               torch.randperm(len(residual), generator=gen)[:k - plain].tolist()]
              for _ in range(s.samples)] for k in lengths]
    path_sum = np.zeros((len(lengths), s.samples))
    unit_sum = np.zeros(len(units))
    count = 0
    with bn_mode(model, s.bn), gated(model, units) as gates:
        for x, y in data:
            gates.all_on()
            loss = F.cross_entropy(model(x), y, reduction="sum")
            grads = torch.autograd.grad(loss, gates.inputs, retain_graph=True,
                                        allow_unused=True)
            unit_sum += [_per_sample_norm_sum(g) for g in grads]
            for i, per_length in enumerate(masks):
                for j, chosen in enumerate(per_length):
                    gates.set_path(chosen, s.sampling)
                    (g,) = torch.autograd.grad(loss, gates.inputs[0], retain_graph=True,
                                               allow_unused=True)
                    path_sum[i, j] += _per_sample_norm_sum(g)
            count += y.shape[0]
            del loss, grads
    path_grad = path_sum / count
    unit_norm = unit_sum / count
    share = {k: w for k, w in zip(all_lengths, shares)}
    mean = path_grad.mean(1)
    return result(
        PROBE, PAPER, seed, s, model, units=len(units), residual_units=len(residual),
        length_distribution={"length": all_lengths, "share": shares},
        gradient_by_length={"length": list(lengths), "mean": mean.tolist(),
                            "std": path_grad.std(1).tolist(),
                            "total": [float(m) * share[k] for m, k in zip(mean, lengths)]},
        unit_grad_norm=[{"unit": u.name, "grad_norm": float(v)}
                        for u, v in zip(units, unit_norm)],
        arrays={"path_grad": path_grad, "unit_grad_norm": unit_norm})
