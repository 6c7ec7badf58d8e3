"""Probes of why residual nets train: the numerical core, no harness.

Every probe has one entry function of one signature,

    run(model, batches, *, seed: int, **settings) -> dict

`batches` an iterable of already normalised (x, y) tensors, `seed` for the probe's own
draws. The result echoes its settings and is JSON-able except under "arrays" (numpy).
Unknown or out-of-range settings raise a one-line resnet_ablate.errors.InputError. The
model is left exactly as found.

PROBES is the table, as plain data: name -> run, settings class, defaults, paper, claim
(the claims are our one-sentence summaries of each paper's finding, not quotations).
Also here: landscape.linear_path(model, initial_state, final_state, batches, ...), the
Goodfellow et al. (2015) path between two state_dicts.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..errors import InputError
from . import hessian, landscape, lesion, paths
from .common import settings_dict

__all__ = ["PROBES", "run_probe", "hessian", "landscape", "lesion", "paths"]


def _entry(module: Any, settings: type, paper: str, claim: str) -> dict[str, Any]:
    return {"run": module.run, "settings": settings, "defaults": settings_dict(settings()),
            "paper": paper, "claim": claim}


PROBES: dict[str, dict[str, Any]] = {
    "lesion": _entry(
        lesion, lesion.LesionSettings,
        "Veit, Wilber & Belongie (2016), Residual Networks Behave Like Ensembles of "
        "Relatively Shallow Networks, Sec. 4, Figs. 3 and 5",
        "Deleting one residual unit at test time barely changes a residual net's error "
        "(downsampling units aside) while it ruins a plain net, and error grows smoothly "
        "with the number of units deleted or swapped."),
    "landscape": _entry(
        landscape, landscape.LandscapeSettings,
        "Li, Xu, Taylor, Studer & Goldstein (2018), Visualizing the Loss Landscape of "
        "Neural Nets, Sec. 4, Fig. 5",
        "With filter-normalised random directions, ResNet-56's loss surface around its "
        "minimiser is smooth and convex-looking, and without shortcuts it turns chaotic."),
    "paths": _entry(
        paths, paths.PathSettings,
        "Veit, Wilber & Belongie (2016), Residual Networks Behave Like Ensembles of "
        "Relatively Shallow Networks, Sec. 5, Fig. 6",
        "Path lengths are binomial, but the gradient along a path falls fast with its "
        "length, so nearly all of the gradient comes from paths much shorter than the net."),
    "hessian": _entry(
        hessian, hessian.HessianSettings,
        "Yao, Gholami, Keutzer & Mahoney (2020), PyHessian: Neural Networks Through the "
        "Lens of the Hessian, Sec. III",
        "Adding residual connections lowers the Hessian's top eigenvalue and trace: a "
        "flatter, better-conditioned loss at the trained weights."),
}


def run_probe(name: str, model: Any, batches: Iterable, *, seed: int, **settings: Any
              ) -> dict[str, Any]:
    """PROBES[name]["run"](model, batches, seed=seed, **settings)."""
    if name not in PROBES:
        raise InputError(f"unknown probe {name!r} (allowed: {', '.join(PROBES)})")
    return PROBES[name]["run"](model, batches, seed=seed, **settings)
