"""resnet-ablate: plain vs residual networks of He et al. (2015), built, counted and trained
under the paper's protocol.

Importing the package is cheap (no torch, timm or pandas): each name below loads its module
on first use, so `resnet-ablate --help` starts at once. timm is never imported by us unless
asked; when anything imports timm, every variant is registered with it as `ra_<name>`.
"""
from __future__ import annotations

import importlib
from typing import Any

from .variants import timm_hook

__version__ = "0.3.0"

_EXPORTS = {
    "complexity": "resnet_ablate.models.counting",
    "create_model": "resnet_ablate.models.resnet",
    "get_spec": "resnet_ablate.variants.registry",
    "list_models": "resnet_ablate.variants.registry",
    "register_variant": "resnet_ablate.variants.registry",
    "register_block": "resnet_ablate.variants.parts",
    "register_shortcut": "resnet_ablate.variants.parts",
    "register_stem": "resnet_ablate.variants.parts",
    "register_probe": "resnet_ablate.probes.registry",
    "VariantSpec": "resnet_ablate.variants.spec",
    "load_plugins": ("resnet_ablate.variants.plugins", "load"),
    # The notebook API: c = ra.read_runs(["runs"]) reads run directories as they are, then
    # ra.figures.error_vs_depth(c) -> (fig, caption), ra.tables.table6(c) -> (DataFrame,
    # caption). Importing them sets no backend.
    "read_runs": "resnet_ablate.analysis.rundirs",
    "figures": ("resnet_ablate.analysis.figures", None),
    "tables": ("resnet_ablate.analysis.tables", None),
    "runs": "resnet_ablate.analysis.rundirs",  # ra.runs(dirs, where=...): a DataFrame
    "history": "resnet_ablate.analysis.rundirs",  # ra.history(dirs, where=..., max_points=...)
    "compare": "resnet_ablate.analysis.compare",  # ra.compare(c, baseline=...) -> (df, caption)
}
__all__ = sorted(_EXPORTS) + ["__version__"]

timm_hook.install("resnet_ablate.models.timm_models")  # registers ra_* with timm


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'resnet_ablate' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
