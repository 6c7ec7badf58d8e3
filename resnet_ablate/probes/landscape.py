"""Loss landscapes of Li, Xu, Taylor, Studer & Goldstein (2018), "Visualizing the Loss
Landscape of Neural Nets", Section 4 (filter-wise normalisation) and Fig. 5 (ResNet-56 with
and without shortcuts), and the linear path of Goodfellow, Vinyals & Saxe (2015),
"Qualitatively Characterizing Neural Network Optimization Problems", Section 2.

A random Gaussian direction d has, for every filter j of every layer i, d_ij rescaled to
||theta_ij|| (Li et al., Eq. 1 and Sec. 4); a "filter" is a slice along the first axis of a
weight of 2 or more dimensions (a conv's output channel, a linear layer's output unit).
Parameters of one dimension (BN scale/shift, biases) get a zero direction, as the paper's
figures and the authors' `--xignore biasbn` (ignore="none" moves them along themselves,
as the authors' code does without it). Directions cover parameters only, not BN buffers
(the authors' default `--dir_type weights`).

BN mode: eval, with the trained running statistics left as they are. That is what the
authors' code does (evaluation.eval_loss calls net.eval(); set_weights moves parameters
only), so our surfaces compare with theirs; it also makes each point a deterministic
function of the weights, independent of batch composition. bn="batch" instead normalises
each batch by its own statistics (running statistics untouched): the function training
sees, and invariant to the filter scale that filter normalisation assumes.

Weights are set in place per point (theta* + a d1 + b d2, from a kept copy of theta*, so
no error accumulates) and restored bit for bit at the end; no model copies.

Sharpness: the rise of the training loss above the centre's at filter-normalised radius r
(a step of r along a direction moves every filter by r times its own norm), at +-r along
each of the directions drawn: its mean and its max, in absolute loss (never a ratio to the
centre loss, which measures how well the net fit, not the surface). Curvature (an option,
Li et al. Sec. 6 and Fig. 7): at each point of a coarse grid over the span, the Hessian's
extreme eigenvalues as the authors' hess_vec_prod.min_max_hessian_eigs finds them (scipy's
eigsh, largest magnitude, tol 1e-2; then again on H - 0.51 lambda_max I for the other end)
and the map of |lambda_min / lambda_max|: near 0, convex-looking; near 1 or above, not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .common import (BN_MODES, InputError, bn_mode, check_choice, check_float, check_int,
                     evaluate, fixed_batches, generator, model_device, parse_settings, result)

PROBE = "landscape"
PAPER = "Li et al. (2018), Secs. 4-6, Figs. 5 and 7"
IGNORE = ("biasbn", "none")
MAX_POINTS = 201  # per axis: a 201 x 201 grid is ~40k evaluations already
MAX_STEP = 10.0  # |step|: 10 filter norms, far past any basin Li et al. draw ([-1, 1])
MAX_CURVATURE = 21  # per axis: two Lanczos runs of Hessian-vector products per point


def _check_span(probe: str, span: Any) -> None:
    if not (isinstance(span, tuple) and len(span) == 2):
        raise InputError(f"{probe}: span must be [low, high] with -{MAX_STEP:g} <= low < high "
                         f"<= {MAX_STEP:g}; got {span!r}")
    for v in span:
        check_float(probe, "span", v, -MAX_STEP, MAX_STEP)
    if not span[0] < span[1]:
        raise InputError(f"{probe}: span must be [low, high] with low < high; got {list(span)}")


@dataclass(frozen=True)
class LandscapeSettings:
    dims: int = 2  # 1: a slice along one direction; 2: a grid over two
    points: int = 21  # per axis
    span: tuple[float, float] = (-1.0, 1.0)  # step sizes along each direction
    ignore: str = "biasbn"  # 1-D parameters: zero direction ("biasbn") or themselves ("none")
    bn: str = "eval"
    num_batches: int | None = None  # the fixed subset: first n batches; None: all
    radius: float = 0.1  # sharpness: the loss's rise at +-radius along each direction
    curvature: int = 0  # Li et al. Fig. 7: |lambda_min/lambda_max| on c x c points; 0: off

    def __post_init__(self) -> None:
        check_int(PROBE, "dims", self.dims, 1, 2)
        check_int(PROBE, "points", self.points, 2, MAX_POINTS)
        _check_span(PROBE, self.span)
        check_choice(PROBE, "ignore", self.ignore, IGNORE)
        check_choice(PROBE, "bn", self.bn, BN_MODES)
        check_int(PROBE, "num_batches", self.num_batches, 1, allow_none=True)
        check_float(PROBE, "radius", self.radius, 0.0, MAX_STEP, above=True)
        if self.curvature != 0:
            check_int(PROBE, "curvature", self.curvature, 2, MAX_CURVATURE)


def coordinates(span: Sequence[float], points: int) -> list[float]:
    """Evenly spaced steps; 0 is hit exactly when the span is symmetric and points odd."""
    low, high = float(span[0]), float(span[1])
    return [low + (high - low) * i / (points - 1) for i in range(points)]


def filter_normalized_direction(params: Sequence[Tensor], gen: torch.Generator,
                                ignore: str = "biasbn") -> list[Tensor]:
    """A Gaussian direction, one tensor per parameter, filter-normalised (Li et al. 2018,
    Sec. 4): each filter d_ij scaled to ||theta_ij|| / (||d_ij|| + 1e-10); 1-D parameters
    zero (ignore="biasbn") or a copy of themselves (ignore="none")."""
    check_choice(PROBE, "ignore", ignore, IGNORE)
    out = []
    for w in params:
        w = w.detach()
        # drawn on the CPU generator in the parameter's dtype: the same on every device
        d = torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device)
        if w.dim() <= 1:
            d = torch.zeros_like(w) if ignore == "biasbn" else w.clone()
        else:
            scale = w.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)
            d.mul_(scale.view(-1, *([1] * (w.dim() - 1))))
        out.append(d)
    return out


def _surface(model: nn.Module, data: list, directions: list[list[Tensor]],
             steps: list[tuple[float, ...]], bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(loss, error) at theta* + sum_i step_i d_i for every step tuple; weights restored."""
    params = list(model.parameters())
    theta = [p.detach().clone() for p in params]
    loss = np.empty(len(steps))
    error = np.empty(len(steps))
    try:
        with torch.no_grad(), bn_mode(model, bn):
            for n, step in enumerate(steps):
                for i, (p, t) in enumerate(zip(params, theta)):
                    p.copy_(t)
                    for a, d in zip(step, directions):
                        if a != 0.0:
                            p.add_(d[i], alpha=a)
                loss[n], error[n] = evaluate(model, data)
    finally:
        with torch.no_grad():
            for p, t in zip(params, theta):
                p.copy_(t)
    return loss, error


def _curvature(model: nn.Module, data: list, directions: list[list[Tensor]],
               steps: list[tuple[float, ...]], bn: str, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """(lambda_min, lambda_max) of the Hessian of the loss at each step, as Li et al.'s
    hess_vec_prod.min_max_hessian_eigs finds them; weights restored."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    from .hessian import hvp_operator

    params = list(model.parameters())
    wrt = [p for p in params if p.requires_grad]
    theta = [p.detach().clone() for p in params]
    n = sum(p.numel() for p in wrt)
    rng = np.random.RandomState(seed)  # eigsh's start vectors
    low, high = np.empty(len(steps)), np.empty(len(steps))
    try:
        with bn_mode(model, bn):
            for k, step in enumerate(steps):
                with torch.no_grad():
                    for i, (p, t) in enumerate(zip(params, theta)):
                        p.copy_(t)
                        for a, d in zip(step, directions):
                            p.add_(d[i], alpha=a)
                hvp = hvp_operator(model, data, wrt)

                def matvec(v: np.ndarray, shift: float = 0.0, hvp=hvp) -> np.ndarray:
                    t = torch.as_tensor(np.ravel(v), dtype=wrt[0].dtype).to(wrt[0].device)
                    return hvp(t).double().cpu().numpy() - shift * np.ravel(v)

                top = float(eigsh(LinearOperator((n, n), matvec=matvec, dtype=np.float64),
                                  k=1, tol=1e-2, v0=rng.standard_normal(n),
                                  return_eigenvectors=False)[0])
                shift = 0.51 * top  # a negative eigenvalue is now the largest in magnitude
                other = float(eigsh(LinearOperator(
                    (n, n), matvec=lambda v, m=matvec, s=shift: m(v, s), dtype=np.float64),
                    k=1, tol=1e-2, v0=rng.standard_normal(n),
                    return_eigenvectors=False)[0]) + shift
                if top <= 0 and other > 0:  # as the authors' code: the larger is lambda_max
                    top, other = other, top
                high[k], low[k] = top, other
    finally:
        with torch.no_grad():
            for p, t in zip(params, theta):
                p.copy_(t)
    return low, high


def run(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, seed: int,
        **settings: Any) -> dict[str, Any]:
    """Li et al. (2018): loss and error on a 1-D slice or 2-D grid around the model's weights.

    Returns the uniform result dict with x (and y) step lists, center {loss, error} (the
    unperturbed model), min_loss, sharpness {radius, losses, rise_mean, rise_max} (the
    loss at +-radius along each direction, its rises over the centre's), curvature
    {points, x} or null, and arrays loss / error of shape (points,) for dims=1 or
    (points, points) indexed [y, x] for dims=2 (and with curvature: hessian_min,
    hessian_max, curvature_ratio = |min / max| on its coarser grid, likewise shaped).
    """
    s = parse_settings(LandscapeSettings, PROBE, settings)
    gen = generator(seed)
    data = fixed_batches(batches, s.num_batches, model_device(model), PROBE)
    params = list(model.parameters())
    directions = [filter_normalized_direction(params, gen, s.ignore) for _ in range(s.dims)]
    xs = coordinates(s.span, s.points)
    with bn_mode(model, s.bn):
        center_loss, center_error = evaluate(model, data)
    if s.dims == 1:
        steps = [(a,) for a in xs]
        shape: tuple[int, ...] = (s.points,)
    else:
        steps = [(a, b) for b in xs for a in xs]  # row-major: [y, x]
        shape = (s.points, s.points)
    loss, error = _surface(model, data, directions, steps, s.bn)
    coords = {"x": xs} if s.dims == 1 else {"x": xs, "y": xs}
    at_r = [tuple(sign * s.radius if j == i else 0.0 for j in range(s.dims))
            for i in range(s.dims) for sign in (-1, 1)]
    rim = _surface(model, data, directions, at_r, s.bn)[0]
    arrays = {"loss": loss.reshape(shape), "error": error.reshape(shape)}
    curvature = None
    if s.curvature:
        cs = coordinates(s.span, s.curvature)
        grid = [(a,) for a in cs] if s.dims == 1 else [(a, b) for b in cs for a in cs]
        low, high = _curvature(model, data, directions, grid, s.bn, seed)
        cshape = (s.curvature,) * s.dims
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(low / high)
        arrays.update(hessian_min=low.reshape(cshape), hessian_max=high.reshape(cshape),
                      curvature_ratio=ratio.reshape(cshape))
        curvature = {"points": s.curvature, "x": cs}
    return result(PROBE, PAPER, seed, s, model, **coords,
                  center={"loss": center_loss, "error": center_error},
                  min_loss=float(loss.min()),
                  sharpness={"radius": s.radius, "losses": rim.tolist(),
                             "rise_mean": float(rim.mean() - center_loss),
                             "rise_max": float(rim.max() - center_loss)},
                  curvature=curvature, arrays=arrays)


# ---------------------------------------------------------------------------- linear path
def linear_path(model: nn.Module, initial: Mapping[str, Tensor], final: Mapping[str, Tensor],
                batches: Iterable[tuple[Tensor, Tensor]], *, points: int = 21,
                span: Sequence[float] = (0.0, 1.0), bn: str = "batch",
                num_batches: int | None = None) -> dict[str, Any]:
    """Goodfellow et al. (2015), Sec. 2: loss and error at theta(a) = (1 - a) theta_0 + a
    theta_1 for `points` values of a on `span` ([0, 1] from initial to final; [-0.5, 1.5]
    as Li et al.'s 1-D interpolations extends it), `initial` and `final` two state_dicts of
    `model`'s architecture. Every floating-point entry is interpolated, parameters and BN
    running statistics alike (Li et al.'s `--dir_type states`); integer buffers come from
    `final`.

    BN: "batch" by default. The initial state's running statistics are the constructor's
    (mean 0, var 1), statistics of no data, so in eval mode the early points would measure a
    network no one trained or tested; batch statistics give the loss training computes at
    those weights. bn="eval" uses the interpolated running statistics instead.

    Returns {"probe": "linear_path", "settings", "alpha": [...], "arrays": {loss, error}};
    the model's own state is restored exactly.
    """
    probe = "linear_path"
    check_int(probe, "points", points, 2, 10_001)
    span = tuple(span)
    _check_span(probe, span)
    check_choice(probe, "bn", bn, BN_MODES)
    check_int(probe, "num_batches", num_batches, 1, allow_none=True)
    state = dict(model.named_parameters()) | dict(model.named_buffers())
    keys = list(model.state_dict().keys())
    for which, sd in (("initial", initial), ("final", final)):
        missing = [k for k in keys if k not in sd]
        extra = [k for k in sd if k not in state]
        if missing or extra:
            raise InputError(f"{probe}: the {which} state_dict does not match the model "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
    data = fixed_batches(batches, num_batches, model_device(model), probe)
    saved = {k: state[k].detach().clone() for k in keys}
    # copies: `final` may be the model's own state_dict(), whose tensors the loop overwrites
    start = {k: initial[k].detach().to(saved[k].device, saved[k].dtype, copy=True)
             for k in keys}
    end = {k: final[k].detach().to(saved[k].device, saved[k].dtype, copy=True) for k in keys}
    alphas = coordinates(span, points)
    loss = np.empty(points)
    error = np.empty(points)
    try:
        with torch.no_grad(), bn_mode(model, bn):
            for n, a in enumerate(alphas):
                for k in keys:
                    t = state[k]
                    if t.is_floating_point():
                        t.copy_(torch.lerp(start[k], end[k], a))  # exact at a = 0 and 1
                    else:
                        t.copy_(end[k])
                loss[n], error[n] = evaluate(model, data)
    finally:
        with torch.no_grad():
            for k in keys:
                state[k].copy_(saved[k])
    return {"probe": probe, "paper": "Goodfellow et al. (2015), Sec. 2",
            "settings": {"points": points, "span": list(span), "bn": bn,
                         "num_batches": num_batches},
            "alpha": alphas, "arrays": {"loss": loss, "error": error}}


PATH_PROBE = "linear_path"
MAX_PATH_POINTS = 10_001


@dataclass(frozen=True)
class LinearPathSettings:
    points: int = 21
    span: tuple[float, float] = (0.0, 1.0)  # 0: the initial weights, 1: the final ones
    bn: str = "batch"  # see linear_path: the initial running statistics are of no data
    num_batches: int | None = None  # the fixed subset: first n batches; None: all

    def __post_init__(self) -> None:
        check_int(PATH_PROBE, "points", self.points, 2, MAX_PATH_POINTS)
        _check_span(PATH_PROBE, self.span)
        check_choice(PATH_PROBE, "bn", self.bn, BN_MODES)
        check_int(PATH_PROBE, "num_batches", self.num_batches, 1, allow_none=True)


def run_linear_path(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, seed: int,
                    initial: Mapping[str, Tensor], **settings: Any) -> dict[str, Any]:
    """linear_path from `initial` to the model's own weights, as a probe (the uniform
    result; `seed` is recorded, the path draws nothing)."""
    s = parse_settings(LinearPathSettings, PATH_PROBE, settings)
    out = linear_path(model, initial, model.state_dict(), batches, points=s.points,
                      span=s.span, bn=s.bn, num_batches=s.num_batches)
    arrays = out.pop("arrays")
    return result(PATH_PROBE, out["paper"], seed, s, model, alpha=out["alpha"],
                  start_loss=float(arrays["loss"][0]), end_loss=float(arrays["loss"][-1]),
                  max_loss=float(arrays["loss"].max()), arrays=arrays)
