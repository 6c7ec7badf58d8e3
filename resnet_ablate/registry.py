"""The registry of named variants, generated from the paper's tables rather than written out.

Names: plainD and resnetD-{A,B,C} for CIFAR depths 20-1202 (Section 4.2) and ImageNet depths
18-152 (Table 1); preresnetD for the pre-activation units of He et al. (2016).
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any

import torch.nn as nn

from .spec import SHORTCUTS, VariantSpec, block_depth

# CIFAR-10, Section 4.2: depth 6n+2, three stages of n basic blocks at 16/32/64 filters.
CIFAR_N = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}
CIFAR_WIDTHS = (16, 32, 64)
# ImageNet, Table 1: blocks per stage at 64/128/256/512 base widths; bottleneck from 50.
IMAGENET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                   152: (3, 8, 36, 3)}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# He et al. (2016), "Identity Mappings": CIFAR bottleneck nets of depth 9n+2 (164, 1001)
# and ImageNet ResNet-200 (Table 5 there).
PREACT_CIFAR_BOTTLENECK_N = {164: 18, 1001: 111}
PREACT_IMAGENET_LAYERS = {**IMAGENET_LAYERS, 200: (3, 24, 36, 3)}
# Pre-activation nets use projections where dimensions increase (He et al. 2016, Sec. 4).
PREACT_SHORTCUT = "B"

_REGISTRY: dict[str, VariantSpec] = {}
_LOOKUP: dict[str, str] = {}  # normalised name -> registered name


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(spec: VariantSpec) -> VariantSpec:
    """Add a spec; a name that is already taken is refused, never silently replaced."""
    key = _normalise(spec.name)
    if key in _LOOKUP:
        raise ValueError(f"variant {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    _LOOKUP[key] = spec.name
    return spec


def _spec(name: str, family: str, block: str, shortcut: str | None, stem: str,
          layers: tuple[int, ...]) -> VariantSpec:
    return VariantSpec(
        name=name, family=family, depth=block_depth(block, layers), block=block,
        shortcut=shortcut, stem=stem,
        widths=CIFAR_WIDTHS if stem == "cifar" else IMAGENET_WIDTHS, layers=layers,
        num_classes=10 if stem == "cifar" else 1000)


def _register_paper_variants() -> None:
    tables = [("cifar", {d: (n, n, n) for d, n in CIFAR_N.items()}),
              ("imagenet", IMAGENET_LAYERS)]
    for stem, table in tables:
        for depth, layers in table.items():
            block = "bottleneck" if stem == "imagenet" and depth >= 50 else "basic"
            register(_spec(f"plain{depth}", "plain", block, None, stem, layers))
            for option in SHORTCUTS:
                register(_spec(f"resnet{depth}-{option}", "resnet", block, option, stem,
                               layers))
    for depth, n in CIFAR_N.items():
        register(_spec(f"preresnet{depth}", "preresnet", "basic", PREACT_SHORTCUT, "cifar",
                       (n, n, n)))
    for depth, n in PREACT_CIFAR_BOTTLENECK_N.items():
        register(_spec(f"preresnet{depth}", "preresnet", "bottleneck", PREACT_SHORTCUT,
                       "cifar", (n, n, n)))
    for depth, layers in PREACT_IMAGENET_LAYERS.items():
        block = "bottleneck" if depth >= 50 else "basic"
        register(_spec(f"preresnet{depth}", "preresnet", block, PREACT_SHORTCUT, "imagenet",
                       layers))


_register_paper_variants()


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern (case-insensitive), in registry order:
    families and depths as the paper lists them."""
    pat = _normalise(pattern)
    return [name for key, name in _LOOKUP.items() if fnmatch.fnmatchcase(key, pat)]


def closest_names(name: str, n: int = 3) -> list[str]:
    matches = difflib.get_close_matches(_normalise(name), list(_LOOKUP), n=n, cutoff=0.5)
    return [_LOOKUP[m] for m in matches]


def get_spec(name: str) -> VariantSpec:
    """The spec of a registered variant; names are case- and '_'/'-'-insensitive."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string; got {type(name).__name__}")
    key = _normalise(name)
    if key not in _LOOKUP:
        close = closest_names(name)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (see `resnet-ablate models`)")
    return _REGISTRY[_LOOKUP[key]]


def create_model(name: str | VariantSpec, **overrides: Any) -> nn.Module:
    """Build a variant by name (or from a spec), with validated overrides such as
    num_classes, in_chans, layers, widths, shortcut, stride_in, zero_init_residual."""
    from .models import ResNet

    spec = name if isinstance(name, VariantSpec) else get_spec(name)
    return ResNet(spec.with_overrides(**overrides) if overrides else spec)
