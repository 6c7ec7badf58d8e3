"""Hessian spectrum probes of Yao, Gholami, Keutzer & Mahoney (2020), "PyHessian: Neural
Networks Through the Lens of the Hessian", Section III: the top eigenvalue(s) by power
iteration on Hessian-vector products (Sec. III-A) and the trace by Hutchinson's method with
Rademacher vectors (Sec. III-B), of the training loss at the given weights on a fixed subset
of batches. Written on torch.autograd alone: Hv = d(g . v)/dtheta with g from
autograd.grad(create_graph=True).

The loss over the subset is the sample-weighted mean of the batches' mean cross-entropy, so
Hv sums each batch's Hv weighted by its share of the samples. With one batch its gradient
graph is built once and reused for every product (PyHessian's single-batch mode); with more
it is rebuilt per product, batch by batch (their data-loader mode: memory of one batch).

BN: eval mode by default, as PyHessian (`self.model = model.eval()`): the running statistics
make BN an affine map, so the loss is a function of the weights alone and the Hessian is
that of a fixed function. bn="batch" differentiates through the batch statistics instead.
The Hessian is over every parameter that requires grad; the model and its .grad are left
untouched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import (BN_MODES, InputError, bn_mode, check_choice, check_float, check_int,
                     fixed_batches, generator, model_device, parse_settings, result)

PROBE = "hessian"
PAPER = "Yao et al. (2020), PyHessian, Sec. III"
ORDER = "largest magnitude"  # what power iteration finds: max |lambda|, of either sign


@dataclass(frozen=True)
class HessianSettings:
    top_n: int = 1  # eigenvalues by power iteration, each deflated against those found
    max_iter: int = 100  # power iterations per eigenvalue (PyHessian's maxIter)
    tol: float = 1e-3  # relative change of the eigenvalue estimate that stops them
    trace_iters: int = 100  # Hutchinson samples at most
    trace_tol: float = 1e-3  # relative change of the running mean that stops; 0: all samples
    bn: str = "eval"
    num_batches: int | None = 1  # the fixed subset; None: all given

    def __post_init__(self) -> None:
        check_int(PROBE, "top_n", self.top_n, 0, 100)
        check_int(PROBE, "max_iter", self.max_iter, 1, 100_000)
        check_float(PROBE, "tol", self.tol, 0.0, 1.0)
        check_int(PROBE, "trace_iters", self.trace_iters, 0, 1_000_000)
        check_float(PROBE, "trace_tol", self.trace_tol, 0.0, 1.0)
        check_choice(PROBE, "bn", self.bn, BN_MODES)
        check_int(PROBE, "num_batches", self.num_batches, 1, allow_none=True)
        if self.top_n == 0 and self.trace_iters == 0:
            raise InputError(f"{PROBE}: top_n and trace_iters are both 0: nothing to compute")


def hvp_operator(model: nn.Module, data: list[tuple[Tensor, Tensor]], params: list[Tensor]
                 ) -> Callable[[Tensor], Tensor]:
    """v (flat, over `params`) -> H v of the subset's mean loss, flat."""
    total = sum(y.shape[0] for _, y in data)
    sizes = [p.numel() for p in params]

    def grads(x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
        loss = F.cross_entropy(model(x), y) * (y.shape[0] / total)
        return torch.autograd.grad(loss, params, create_graph=True)

    def split(v: Tensor) -> list[Tensor]:
        return [c.view_as(p) for c, p in zip(torch.split(v, sizes), params)]

    def product(g: tuple[Tensor, ...], v: Tensor, retain: bool) -> Tensor:
        hv = torch.autograd.grad(g, params, grad_outputs=split(v), retain_graph=retain,
                                 allow_unused=True)
        return torch.cat([torch.zeros_like(p).flatten() if h is None else h.flatten()
                          for h, p in zip(hv, params)])

    if len(data) == 1:
        kept = grads(*data[0])
        return lambda v: product(kept, v, retain=True)

    def hvp(v: Tensor) -> Tensor:
        out = torch.zeros_like(v)
        for x, y in data:
            out += product(grads(x, y), v, retain=False)
        return out
    return hvp


def top_eigenvalues(hvp: Callable[[Tensor], Tensor], dim: int, like: Tensor,
                    gen: torch.Generator, top_n: int, max_iter: int, tol: float
                    ) -> tuple[list[float], list[int], list[bool], list[Tensor]]:
    """Power iteration (PyHessian Sec. III-A): v <- Hv/||Hv||, lambda = v.Hv, until lambda
    changes by less than tol relative; each later eigenvector is kept orthogonal to those
    found (deflation). Power iteration finds the eigenvalue of largest magnitude."""
    values, iters, converged, vectors = [], [], [], []
    for _ in range(top_n):
        v = torch.randn(dim, generator=gen, dtype=like.dtype).to(like.device)
        v /= v.norm()
        value, done, it = None, False, 0
        for it in range(1, max_iter + 1):
            for u in vectors:  # Gram-Schmidt against the eigenvectors already found
                v -= (v @ u) * u
            v /= v.norm()
            hv = hvp(v)
            estimate = float(hv @ v)
            v = hv / hv.norm()
            if value is not None and abs(estimate - value) / (abs(value) + 1e-6) < tol:
                value, done = estimate, True
                break
            value = estimate
        for u in vectors:  # kept orthonormal, so later deflations remove exactly these
            v -= (v @ u) * u
        values.append(value)
        iters.append(it)
        converged.append(done)
        vectors.append(v / v.norm())
    return values, iters, converged, vectors


def hutchinson_trace(hvp: Callable[[Tensor], Tensor], dim: int, like: Tensor,
                     gen: torch.Generator, iters: int, tol: float) -> np.ndarray:
    """Hutchinson (PyHessian Sec. III-B): tr H = E[v.Hv], v Rademacher; samples drawn until
    the running mean changes by less than tol relative (PyHessian's rule) or `iters`."""
    samples: list[float] = []
    mean = 0.0
    for _ in range(iters):
        v = (torch.randint(0, 2, (dim,), generator=gen) * 2 - 1).to(like.device, like.dtype)
        samples.append(float(hvp(v) @ v))
        new_mean = float(np.mean(samples))
        if abs(new_mean - mean) / (abs(mean) + 1e-6) < tol:
            break
        mean = new_mean
    return np.array(samples)


def run(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, seed: int,
        **settings: Any) -> dict[str, Any]:
    """PyHessian's top eigenvalue(s) and trace of the loss on the fixed subset.

    Returns the uniform result dict with num_params, top_eigenvalues (list, largest
    magnitude first: power iteration finds the eigenvalue of largest |lambda|, which may be
    negative), eigenvalue_order ("largest magnitude"), eigen_iterations, eigen_converged (a
    value that did not converge is the last estimate), trace (mean of the Hutchinson
    samples), trace_stderr (their standard error, the Monte-Carlo error of the trace),
    trace_samples (count); arrays: trace_samples (the v.Hv values).
    """
    s = parse_settings(HessianSettings, PROBE, settings)
    gen = generator(seed)
    data = fixed_batches(batches, s.num_batches, model_device(model), PROBE)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError(f"{PROBE}: the model has no parameters that require grad")
    dim = sum(p.numel() for p in params)
    with bn_mode(model, s.bn):
        hvp = hvp_operator(model, data, params)
        values, iters, converged, _ = top_eigenvalues(hvp, dim, params[0], gen, s.top_n,
                                                      s.max_iter, s.tol)
        samples = hutchinson_trace(hvp, dim, params[0], gen, s.trace_iters, s.trace_tol)
    n = len(samples)
    return result(PROBE, PAPER, seed, s, model, num_params=dim, top_eigenvalues=values,
                  eigenvalue_order=ORDER, eigen_iterations=iters, eigen_converged=converged,
                  trace=float(samples.mean()) if n else None,
                  trace_stderr=float(samples.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
                  trace_samples=n, arrays={"trace_samples": samples})
