"""The papers' named variants, generated from their tables rather than written out: He et
al. (2015)'s CIFAR and ImageNet nets, the pre-activation nets and the shortcut and
activation ablations of He et al. (2016), and ResNet-D of He et al. (2019). Importing this
module registers them (the variant registry does, before its first lookup).

Names: plainD and resnetD-{A,B,C} for CIFAR depths 20-1202 (Section 4.2) and ImageNet depths
18-152 (Table 1); preresnetD for the pre-activation units of He et al. (2016); the shortcut
and activation ablations of He et al. (2016), Tables 1 and 2; resnetDd, the ResNet-D of He et
al. (2019). `ra.register_variant(name, base=..., **changes)` adds one of your own.
The variant registry calls `register_builtin` with its `register_variant` before its first
lookup (so this module imports no registry).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

# CIFAR-10, Section 4.2: depth 6n+2, three stages of n basic blocks at 16/32/64 filters.
CIFAR_N = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}
CIFAR_WIDTHS = (16, 32, 64)
# ImageNet, Table 1: blocks per stage at 64/128/256/512 base widths; bottleneck from 50.
IMAGENET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                   152: (3, 8, 36, 3)}
IMAGENET_WIDTHS = (64, 128, 256, 512)
# The stems' registered widths (models/stems.py; tests/test_registry.py checks they agree):
# what a paper variant's stem_width resolves to, known here without building it.
STEM_WIDTHS = {"cifar": 16, "imagenet": 64, "deep": 64}
# He et al. (2016), "Identity Mappings": CIFAR bottleneck nets of depth 9n+2 (164, 1001)
# and ImageNet ResNet-200 (Table 5 there).
CIFAR_BOTTLENECK_N = {164: 18, 1001: 111}
PREACT_IMAGENET_LAYERS = {**IMAGENET_LAYERS, 200: (3, 24, 36, 3)}
SHORTCUTS_2015 = ("A", "B", "C")
# Pre-activation nets use projections where dimensions increase (He et al. 2016, Sec. 4;
# preresnet.lua's shortcut type B); `model.shortcut=` picks another.
PREACT_SHORTCUT = "B"
register_variant: Callable[..., Any]  # the registry's, given by register_builtin


def register_builtin(register: Callable[..., Any]) -> None:
    """Register the papers' variants through `register` (the registry's register_variant)."""
    global register_variant
    register_variant = register
    _register_builtin_variants()


def _paper(name: str, family: str, block: str, shortcut: str | None, stem: str,
           layers: tuple[int, ...], **extra: Any) -> None:
    """A paper's net, its depth the paper's (6n+2 or 9n+2 on CIFAR, Table 1's on ImageNet:
    the registry checks it against the blocks' weighted layers)."""
    weighted = 3 if "bottleneck" in block else 2
    register_variant(name, family=family, block=block, shortcut=shortcut, stem=stem,
                     widths=CIFAR_WIDTHS if stem == "cifar" else IMAGENET_WIDTHS, layers=layers,
                     num_classes=10 if stem == "cifar" else 1000,
                     depth=weighted * sum(layers) + 2, **extra)


@functools.lru_cache(maxsize=1)
def paper_factors() -> dict[str, dict[str, Any]]:
    """Every paper variant's factors (VariantSpec.factors()), from the same tables, without
    building a spec (which imports the blocks, and torch): what the analysis compares a run
    against (reference.paper_match). tests/test_registry.py checks it equals the registry."""
    import dataclasses

    from .spec import Options, VariantSpec

    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                         else f.default) for f in dataclasses.fields(VariantSpec)
                if f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING}
    order = [f.name for f in dataclasses.fields(VariantSpec)]
    out: dict[str, dict[str, Any]] = {}

    def record(name: str, base: str | None = None, **changes: Any) -> None:
        spec = {**defaults, "name": name} if base is None else {**out[base], "name": name}
        if base is not None and "shortcut" in changes and "family" not in changes:
            if changes["shortcut"] is None:  # as registry.register_variant derives
                spec["family"] = "plain"
            elif spec["family"] == "plain":
                spec["family"] = "resnet"
        if "stem" in changes and "stem_width" not in changes:
            spec["stem_width"] = 0
        spec.update(changes)
        if not spec["stem_width"]:
            spec["stem_width"] = STEM_WIDTHS[spec["stem"]]
        for key in ("options", "shortcut_options", "stem_options"):
            spec[key] = dict(Options(spec[key], key))
        for key in ("layers", "widths"):
            spec[key] = list(spec[key])
        out[name] = {f: spec[f] for f in order}  # in the spec's field order, as factors()

    global register_variant
    previous = globals().get("register_variant")
    try:
        register_variant = record
        _register_builtin_variants()
    finally:
        if previous is not None:
            register_variant = previous
        else:
            del globals()["register_variant"]
    return out


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
    # Exclusive gating: the paper's b_g = -6 (its best) and -7, and "init b_g = 0 to -5"
    # (one "fail" row in the paper), each of those six as a variant of its own.
    gates = [("exclusive", -6.0, "gate-excl"), ("exclusive", -7.0, "gate-excl-b7"),
             *[("exclusive", float(-b), f"gate-excl-b{b}") for b in range(6)],
             ("shortcut", 0.0, "gate-sc"), ("shortcut", -6.0, "gate-sc-b6")]
    for gate, bias, suffix in gates:
        register_variant(f"resnet110-{suffix}", base, options={"gate": gate, "gate_bias": bias})
    register_variant("resnet110-dropout-sc", base, shortcut="dropout",
                     shortcut_options={"p": 0.5})

    # He et al. (2016), Table 2 / Fig. 4: where BN and ReLU sit. ResNet-110 (basic units)
    # with option A where dimensions increase, as the table's 6.61% original (He et al.
    # 2015's option-A net; fb.resnet.torch's CIFAR default): the paper states projections
    # only for its bottleneck nets. ResNet-164 (bottleneck) with projections (option B).
    # preresnet110-A is the full pre-activation ResNet-110 of the table (preresnet110 itself
    # keeps the pre-activation nets' projections).
    _paper("resnet164-B", "resnet", "bottleneck", "B", "cifar", (18, 18, 18))
    register_variant("preresnet110-A", "preresnet110", shortcut="A")
    for depth, original, preact in ((110, "resnet110-A", "preresnet110-A"),
                                    (164, "resnet164-B", "preresnet164")):
        register_variant(f"resnet{depth}-bn-after-add", original,
                         options={"order": "bn_after_add"})
        register_variant(f"resnet{depth}-relu-before-add", original,
                         options={"order": "relu_before_add"})
        register_variant(f"preresnet{depth}-relu-only", preact, options={"order": "relu_only"})

    # He et al. (2019), "Bag of Tricks", Section 4.1: ResNet-D = ResNet-B (stride in the
    # 3x3) + ResNet-C (deep stem) + average-pool downsampling in the projection shortcut;
    # the same layers as timm's resnet18d ... resnet152d.
    for depth in IMAGENET_LAYERS:
        register_variant(f"resnet{depth}d", f"resnet{depth}-B", stem="deep", shortcut="avgdown",
                         stride_in="3x3" if depth >= 50 else "1x1")


# The harness versions whose changes alter what a network of a given spec computes (a
# run's record keeps the one it was built under; the analysis warns before pooling runs built
# under different ones). Add an entry whenever a block, shortcut, stem or the stage builder
# changes a network's function.
NETWORK_CHANGES = {
    "0.1.0": "first release",
    "0.2.0": "pre-activation units route their pre-activation as preresnet.lua; the CIFAR "
             "pre-activation stem has no BN",
}


def network_version(version: str) -> str:
    """The entry of NETWORK_CHANGES a harness `version` builds its networks by."""
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".")[:3] if p.isdigit())
    older = [v for v in NETWORK_CHANGES if key(v) <= key(version)]
    return max(older, key=key) if older else min(NETWORK_CHANGES, key=key)

