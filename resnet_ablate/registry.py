"""The registry of named variants: the paper's tables generated rather than written out, the
follow-up ablations of the same authors, and any variant a user registers.

Names: plainD and resnetD-{A,B,C} for CIFAR depths 20-1202 (Section 4.2) and ImageNet depths
18-152 (Table 1); preresnetD for the pre-activation units of He et al. (2016); the shortcut
and activation ablations of He et al. (2016), Tables 1 and 2; resnetDd, the ResNet-D of He et
al. (2019). `register_variant(name, base=..., **changes)` adds one of your own.
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable

from .spec import VariantSpec, block_depth, derive
from .errors import InputError

# CIFAR-10, Section 4.2: depth 6n+2, three stages of n basic blocks at 16/32/64 filters.
CIFAR_N = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}
CIFAR_WIDTHS = (16, 32, 64)
# ImageNet, Table 1: blocks per stage at 64/128/256/512 base widths; bottleneck from 50.
IMAGENET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                   152: (3, 8, 36, 3)}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# He et al. (2016), "Identity Mappings": CIFAR bottleneck nets of depth 9n+2 (164, 1001)
# and ImageNet ResNet-200 (Table 5 there).
CIFAR_BOTTLENECK_N = {164: 18, 1001: 111}
PREACT_IMAGENET_LAYERS = {**IMAGENET_LAYERS, 200: (3, 24, 36, 3)}
SHORTCUTS_2015 = ("A", "B", "C")
# Pre-activation nets use projections where dimensions increase (He et al. 2016, Sec. 4;
# preresnet.lua's shortcut type B); `model.shortcut=` picks another.
PREACT_SHORTCUT = "B"

_REGISTRY: dict[str, VariantSpec] = {}
_LOOKUP: dict[str, str] = {}  # normalised name -> registered name
_LISTENERS: list[Callable[[VariantSpec], None]] = []  # e.g. timm registration


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(spec: VariantSpec) -> VariantSpec:
    """Add a spec; a name that is already taken is refused, never silently replaced."""
    key = _normalise(spec.name)
    if key in _LOOKUP:
        raise InputError(f"variant {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    _LOOKUP[key] = spec.name
    for listener in _LISTENERS:
        listener(spec)
    return spec


def on_register(listener: Callable[[VariantSpec], None]) -> None:
    """Call `listener(spec)` for every variant registered from now on."""
    _LISTENERS.append(listener)


def register_variant(name: str, base: str | VariantSpec | None = None,
                     **changes: Any) -> VariantSpec:
    """Register a named variant: `base` (a name or spec) with any factor changed (block,
    shortcut, stem, layers, widths, options, ...), or, without a base, every field given.
    Depth follows the block and layers."""
    if base is None:
        block = changes.get("block")
        from .parts import BLOCKS

        if block not in BLOCKS:
            raise InputError(f"{name}: {BLOCKS.unknown(block)}")
        changes.setdefault("depth", block_depth(BLOCKS.get(block).make,
                                                tuple(changes.get("layers", ()))))
        for key in ("layers", "widths"):
            if isinstance(changes.get(key), list):
                changes[key] = tuple(changes[key])
        return register(VariantSpec(name=name, **changes))
    base_spec = base if isinstance(base, VariantSpec) else get_spec(base)
    if "shortcut" in changes and "family" not in changes:
        if changes["shortcut"] is None:
            changes["family"] = "plain"
        elif base_spec.family == "plain":
            changes["family"] = "resnet"
    return register(derive(base_spec, name, **changes))


def _paper(name: str, family: str, block: str, shortcut: str | None, stem: str,
           layers: tuple[int, ...], **extra: Any) -> None:
    register_variant(name, family=family, block=block, shortcut=shortcut, stem=stem,
                     widths=CIFAR_WIDTHS if stem == "cifar" else IMAGENET_WIDTHS, layers=layers,
                     num_classes=10 if stem == "cifar" else 1000, **extra)


def _register_builtin_variants() -> None:
    # He et al. (2015): Section 4.2 (CIFAR) and Table 1 (ImageNet).
    tables = [("cifar", {d: (n, n, n) for d, n in CIFAR_N.items()}),
              ("imagenet", IMAGENET_LAYERS)]
    for stem, table in tables:
        for depth, layers in table.items():
            block = "bottleneck" if stem == "imagenet" and depth >= 50 else "basic"
            _paper(f"plain{depth}", "plain", block, None, stem, layers)
            for option in SHORTCUTS_2015:
                _paper(f"resnet{depth}-{option}", "resnet", block, option, stem, layers)
    # He et al. (2016): pre-activation nets. The CIFAR stem has no BN of its own there (the
    # first unit normalises), as in preresnet.lua.
    preact_cifar = {**{d: ("preact_basic", (n,) * 3) for d, n in CIFAR_N.items()},
                    **{d: ("preact_bottleneck", (n,) * 3) for d, n in CIFAR_BOTTLENECK_N.items()}}
    for depth, (block, layers) in preact_cifar.items():
        _paper(f"preresnet{depth}", "preresnet", block, PREACT_SHORTCUT, "cifar", layers,
               stem_options={"norm": False})
    for depth, layers in PREACT_IMAGENET_LAYERS.items():
        block = "preact_bottleneck" if depth >= 50 else "preact_basic"
        _paper(f"preresnet{depth}", "preresnet", block, PREACT_SHORTCUT, "imagenet", layers)

    # He et al. (2016), Table 1: shortcut ablations on ResNet-110 (option A, as He et al.
    # 2015's ResNet-110, the table's "original" row). Where dimensions increase the ablated
    # shortcut acts on option A's zero-padded identity. "1x1 conv shortcut" is resnet110-C.
    base = "resnet110-A"
    register_variant("resnet110-scale-sc", base, shortcut="scaled",
                     shortcut_options={"scale": 0.5})
    register_variant("resnet110-scale-both", base, shortcut="scaled",
                     shortcut_options={"scale": 0.5}, options={"branch_scale": 0.5})
    for gate, bias, suffix in (("exclusive", -6.0, "gate-excl"), ("exclusive", -7.0,
                                                                    "gate-excl-b7"),
                               ("shortcut", 0.0, "gate-sc"), ("shortcut", -6.0, "gate-sc-b6")):
        register_variant(f"resnet110-{suffix}", base, options={"gate": gate, "gate_bias": bias})
    register_variant("resnet110-dropout-sc", base, shortcut="dropout",
                     shortcut_options={"p": 0.5})

    # He et al. (2016), Table 2 / Fig. 4: where BN and ReLU sit, on ResNet-110 (basic) and
    # ResNet-164 (bottleneck), all with projections where dimensions increase (option B).
    _paper("resnet164-B", "resnet", "bottleneck", "B", "cifar", (18, 18, 18))
    for depth in (110, 164):
        register_variant(f"resnet{depth}-bn-after-add", f"resnet{depth}-B",
                         options={"order": "bn_after_add"})
        register_variant(f"resnet{depth}-relu-before-add", f"resnet{depth}-B",
                         options={"order": "relu_before_add"})
        register_variant(f"preresnet{depth}-relu-only", f"preresnet{depth}",
                         options={"order": "relu_only"})

    # He et al. (2019), "Bag of Tricks", Section 4.1: ResNet-D = ResNet-B (stride in the
    # 3x3) + ResNet-C (deep stem) + average-pool downsampling in the projection shortcut;
    # the same layers as timm's resnet18d ... resnet152d.
    for depth in IMAGENET_LAYERS:
        register_variant(f"resnet{depth}d", f"resnet{depth}-B", stem="deep", shortcut="avgdown",
                         stride_in="3x3" if depth >= 50 else "1x1")


_builtins_done = False


def _ready() -> None:
    """Plugins load once the built-in variants are in (they may derive from them)."""
    if _builtins_done:
        from .plugins import autoload

        autoload()


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern (case-insensitive), in registry order:
    the paper's families and depths first, then the follow-ups, then plugins'."""
    _ready()
    pat = _normalise(pattern)
    return [name for key, name in _LOOKUP.items() if fnmatch.fnmatchcase(key, pat)]


def closest_names(name: str, n: int = 3) -> list[str]:
    _ready()
    matches = difflib.get_close_matches(_normalise(name), list(_LOOKUP), n=n, cutoff=0.5)
    return [_LOOKUP[m] for m in matches]


def get_spec(name: str) -> VariantSpec:
    """The spec of a registered variant; names are case- and '_'/'-'-insensitive."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string; got {type(name).__name__}")
    _ready()
    key = _normalise(name)
    if key not in _LOOKUP:
        close = closest_names(name)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise InputError(f"unknown model {name!r}{hint} (see `resnet-ablate models`)")
    return _REGISTRY[_LOOKUP[key]]


# Keyword arguments of create_model that build the module rather than change the spec.
MODULE_KWARGS = ("global_pool", "drop_rate")


def create_model(name: str | VariantSpec, **overrides: Any):
    """Build a variant by name (or from a spec), with validated overrides such as
    num_classes (0: no classifier), in_chans, layers, widths, shortcut, stride_in,
    zero_init_residual, and timm's global_pool and drop_rate."""
    from .models import ResNet

    spec = name if isinstance(name, VariantSpec) else get_spec(name)
    module_kwargs = {k: overrides.pop(k) for k in MODULE_KWARGS if k in overrides}
    headless = overrides.get("num_classes") == 0  # timm's feature extractor: no classifier
    if headless:
        del overrides["num_classes"]
    model = ResNet(spec.with_overrides(**overrides) if overrides else spec, **module_kwargs)
    if headless:
        model.reset_classifier(0)
    return model


_register_builtin_variants()
_builtins_done = True
