"""VariantSpec: every architectural factor of one network, as a frozen dataclass.

Sweeps, plots and tables group runs by these fields, never by parsing names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FAMILIES = ("plain", "resnet", "preresnet")
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C")
STEMS = ("cifar", "imagenet")
STRIDE_IN = ("1x1", "3x3")

# Keys `create_model(name, **overrides)` accepts; everything else in the spec follows from them.
OVERRIDE_KEYS = ("num_classes", "in_chans", "layers", "widths", "shortcut", "stride_in",
                 "zero_init_residual")


def block_depth(block: str, layers: tuple[int, ...]) -> int:
    """Weighted layers: the stem conv + the fc + 2 (basic) or 3 (bottleneck) convs per block."""
    return (2 if block == "basic" else 3) * sum(layers) + 2


@dataclass(frozen=True)
class VariantSpec:
    name: str
    family: str  # plain | resnet | preresnet
    depth: int  # weighted layers, as the paper counts them
    block: str  # basic (3x3, 3x3) | bottleneck (1x1, 3x3, 1x1; x4 expansion)
    shortcut: str | None  # A | B | C (Section 3.3); None for plain nets
    stem: str  # cifar: 3x3 conv, 16 | imagenet: 7x7 conv, 64, stride 2 + 3x3 max pool
    widths: tuple[int, ...]  # filters of the 3x3 convs per stage (bottleneck outputs x4)
    layers: tuple[int, ...]  # blocks per stage
    num_classes: int
    in_chans: int = 3
    # Where a bottleneck downsamples: "1x1" = the paper (v1), "3x3" = torchvision's v1.5.
    stride_in: str = "1x1"
    # Departure from the paper (Goyal et al. 2017): zero the last BN of each residual branch.
    zero_init_residual: bool = False

    def __post_init__(self) -> None:
        _check_choice("family", self.family, FAMILIES)
        _check_choice("block", self.block, BLOCKS)
        _check_choice("stem", self.stem, STEMS)
        _check_choice("stride_in", self.stride_in, STRIDE_IN)
        if self.family == "plain":
            if self.shortcut is not None:
                raise ValueError(f"{self.name}: plain nets have no shortcut; got shortcut="
                                 f"{self.shortcut!r} (use a resnet variant for shortcuts A/B/C)")
            if self.zero_init_residual:
                raise ValueError(f"{self.name}: zero_init_residual needs a residual branch; "
                                 "plain nets have none")
        else:
            _check_choice("shortcut", self.shortcut, SHORTCUTS)
        stages = 3 if self.stem == "cifar" else 4
        for field in ("layers", "widths"):
            value = getattr(self, field)
            if (not isinstance(value, tuple) or len(value) != stages
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                               for v in value)):
                raise ValueError(f"{self.name}: {field} must be {stages} positive integers "
                                 f"(one per stage of the {self.stem} stem); got {value!r}")
        for field in ("num_classes", "in_chans"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field} must be a positive integer; got {value!r}")
        if self.block == "basic" and self.stride_in != "1x1":
            raise ValueError(f"{self.name}: stride_in applies to bottleneck blocks only; "
                             "a basic block strides in its first 3x3 conv")
        if self.depth != block_depth(self.block, self.layers):
            raise ValueError(f"{self.name}: depth {self.depth} does not match layers "
                             f"{self.layers} of {self.block} blocks "
                             f"({block_depth(self.block, self.layers)})")

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def residual(self) -> bool:
        return self.family != "plain"

    @property
    def preact(self) -> bool:
        return self.family == "preresnet"

    @property
    def stem_width(self) -> int:
        return 16 if self.stem == "cifar" else 64

    @property
    def input_size(self) -> int:
        """The paper's input side: 32 px CIFAR, 224 px ImageNet crops."""
        return 32 if self.stem == "cifar" else 224

    def factors(self) -> dict[str, Any]:
        """Plain-typed fields for configs, tables and W&B (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def with_overrides(self, **overrides: Any) -> "VariantSpec":
        """A validated copy with overrides applied; depth follows `layers`."""
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(f"unknown model override {unknown[0]!r}; allowed: "
                             f"{', '.join(OVERRIDE_KEYS)}")
        if "shortcut" in overrides and self.family == "plain":
            raise ValueError(f"{self.name}: plain nets have no shortcut to override "
                             f"(allowed for resnet and preresnet variants)")
        changes = dict(overrides)
        for key in ("layers", "widths"):
            if key in changes:
                changes[key] = _as_int_tuple(key, changes[key])
        if "layers" in changes:
            changes["depth"] = block_depth(self.block, changes["layers"])
        return dataclasses.replace(self, **changes)


def _as_int_tuple(key: str, value: Any) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise TypeError(f"{key} must be a list or tuple of integers, one per stage; got {value!r}")


def _check_choice(field: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(map(str, allowed))}; got {value!r}")
