"""Probes of why residual nets train: the numerical core, registered as probes.

Every probe has one entry function of one signature,

    run(model, batches, *, seed: int, **settings) -> dict

`batches` an iterable of already normalised (x, y) tensors, `seed` for the probe's own
draws. The result echoes its settings and is JSON-able except under "arrays" (numpy).
Unknown or out-of-range settings raise a one-line resnet_ablate.errors.InputError. The
model is left exactly as found.

The built-ins are registered here through `ra.register_probe` (resnet_ablate.probes.registry),
the way a user's plugin registers its own: lesion, landscape, linear_path, paths, hessian.
PROBES is a read-only view of the registry as plain data: name -> run, settings class,
defaults, split, paper, claim (the claims are our one-sentence summaries of each paper's
finding, not quotations). `resnet_ablate.probes.probing` probes a finished run.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Iterator

from . import hessian, landscape, lesion, paths
from .registry import REGISTRY, get_probe, probe_names, register_probe

__all__ = ["PROBES", "run_probe", "register_probe", "get_probe", "probe_names", "hessian",
           "landscape", "lesion", "paths"]


# ---------------------------------------------------------------------------- tables
def _lesion_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [["baseline", "", "", 0, None, r["baseline"]["error"], r["baseline"]["loss"]]]
    rows += [["single", u["unit"], u["how"], 1, None, u["error"], u["loss"]]
             for u in r.get("single", [])]
    rows += [["delete_k", " ".join(u["units"]), "", u["k"], u["draw"], u["error"], u["loss"]]
             for u in r.get("delete_k", [])]
    rows += [["swap_k", " ".join("<->".join(p) for p in u["pairs"]), "", u["k"], u["draw"],
              u["error"], u["loss"]] for u in r.get("swap_k", [])]
    return ["part", "units", "how", "k", "draw", "error", "loss"], rows


def _grid_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    loss, error = r["arrays"]["loss"], r["arrays"]["error"]
    if loss.ndim == 1:
        return ["x", "loss", "error"], [[x, float(a), float(b)]
                                        for x, a, b in zip(r["x"], loss, error)]
    return ["x", "y", "loss", "error"], [
        [x, y, float(loss[j, i]), float(error[j, i])]
        for j, y in enumerate(r["y"]) for i, x in enumerate(r["x"])]


def _path_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return ["alpha", "loss", "error"], [
        [a, float(b), float(c)] for a, b, c in zip(r["alpha"], r["arrays"]["loss"],
                                                   r["arrays"]["error"])]


def _paths_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    share = dict(zip(r["length_distribution"]["length"], r["length_distribution"]["share"]))
    g = r["gradient_by_length"]
    rows = [["length", str(k), share[k], m, s, t]
            for k, m, s, t in zip(g["length"], g["mean"], g["std"], g["total"])]
    rows += [["unit", u["unit"], None, u["grad_norm"], None, None] for u in r["unit_grad_norm"]]
    return ["kind", "at", "share", "grad", "grad_std", "total"], rows


def _hessian_rows(r: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Each eigenvalue (largest magnitude first) with whether power iteration converged,
    and the trace with its Monte-Carlo standard error."""
    done = r.get("eigen_converged") or []
    iters = r.get("eigen_iterations") or []
    rows = [[f"eigenvalue_{i + 1} (largest magnitude)", v,
             "converged" if i < len(done) and done[i] else
             f"NOT converged ({iters[i] if i < len(iters) else '?'} iterations)"]
            for i, v in enumerate(r["top_eigenvalues"])]
    rows += [["trace (Hutchinson)", r["trace"], f"MC s.e. {r['trace_stderr']}, "
              f"{r.get('trace_samples')} samples"], ["num_params", r["num_params"], ""]]
    return ["quantity", "value", "note"], rows


# ---------------------------------------------------------------------------- built-ins
VEIT = ("Veit, Wilber & Belongie (2016), Residual Networks Behave Like Ensembles of "
        "Relatively Shallow Networks")

# name, run, settings, split, table, needs_initial, paper, claim
BUILTINS = (
    ("lesion", lesion.run, lesion.LesionSettings, "test", _lesion_rows, False,
     f"{VEIT}, Sec. 4, Figs. 3 and 5",
     "Deleting one residual unit at test time barely changes a residual net's error "
     "(downsampling units aside) while it ruins a plain net, and error grows smoothly with "
     "the number of units deleted or swapped."),
    ("landscape", landscape.run, landscape.LandscapeSettings, "train", _grid_rows, False,
     "Li, Xu, Taylor, Studer & Goldstein (2018), Visualizing the Loss Landscape of Neural "
     "Nets, Secs. 4-6, Figs. 5 and 7",
     "With filter-normalised random directions, ResNet-56's loss surface around its "
     "minimiser is smooth and convex-looking, and without shortcuts it turns chaotic."),
    ("linear_path", landscape.run_linear_path, landscape.LinearPathSettings, "train",
     _path_rows, True,
     "Goodfellow, Vinyals & Saxe (2015), Qualitatively Characterizing Neural Network "
     "Optimization Problems, Sec. 2",
     "On the straight line from the initial to the final weights the training loss falls "
     "smoothly, without barriers, for the nets that train well."),
    ("paths", paths.run, paths.PathSettings, "train", _paths_rows, False,
     f"{VEIT}, Sec. 5, Fig. 6",
     "Path lengths are binomial, but the gradient along a path falls fast with its length, "
     "so nearly all of the gradient comes from paths much shorter than the net."),
    ("hessian", hessian.run, hessian.HessianSettings, "train", _hessian_rows, False,
     "Yao, Gholami, Keutzer & Mahoney (2020), PyHessian: Neural Networks Through the Lens "
     "of the Hessian, Sec. III",
     "Adding residual connections lowers the Hessian's top eigenvalue and trace: a flatter, "
     "better-conditioned loss at the trained weights."),
)
for _name, _run, _settings, _split, _rows, _initial, _paper, _claim in BUILTINS:
    register_probe(_name, settings=_settings, split=_split, table=_rows,
                   needs_initial=_initial, paper=_paper, claim=_claim)(_run)


class _Table(Mapping):
    """The registry as plain data (plugins included, as they register)."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in REGISTRY:
            raise KeyError(name)
        p = REGISTRY.get(name)
        return {"run": p.run, "settings": p.settings, "defaults": p.defaults,
                "split": p.split, "paper": p.paper, "claim": p.claim,
                "needs_initial": p.needs_initial}

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY.names())

    def __len__(self) -> int:
        return len(REGISTRY.names())


PROBES: Mapping[str, dict[str, Any]] = _Table()


def run_probe(name: str, model: Any, batches: Iterable, *, seed: int, **settings: Any
              ) -> dict[str, Any]:
    """The registered probe `name` on `model` and `batches` (InputError: unknown name)."""
    return get_probe(name).run(model, batches, seed=seed, **settings)
