"""VariantSpec: every architectural factor of one network, as a frozen dataclass.

Sweeps, plots and tables group runs by these fields, never by parsing names. Block, shortcut
and stem are names in the open registries of parts (`resnet_ablate.variants.parts`); `options`,
`shortcut_options` and `stem_options` are the keyword options their makers take. A spec is
validated once, when it is made: the stage builder then only calls.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .parts import BLOCKS, SHORTCUTS, STEMS

STRIDE_IN = ("1x1", "3x3")
FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32
_FAMILY = re.compile(r"[a-z][a-z0-9_]*")

# Keys `create_model(name, **overrides)` and `model.KEY=value` accept; depth follows layers.
OVERRIDE_KEYS = ("num_classes", "in_chans", "layers", "widths", "shortcut", "stride_in",
                 "zero_init_residual", "block", "stem", "stem_width", "options",
                 "shortcut_options", "stem_options")


class Options(dict):
    """Keyword options of a part: a mapping of JSON scalars, frozen (hashable, so a spec
    is), sorted by name. In memory a dict; JSON only at the file boundary."""

    def __init__(self, value: Any = (), what: str = "options") -> None:
        if isinstance(value, str):
            value = _json_object(what, value)
        if isinstance(value, (list, tuple)) and all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            value = dict(value)
        if not isinstance(value, dict):
            raise InputError(f"{what} must be a mapping of option names to values; "
                             f"got {value!r}")
        for key, v in value.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise InputError(f"{what}: option names are identifiers; got {key!r}")
            if not (v is None or isinstance(v, (str, bool, int, float))):
                raise InputError(f"{what}.{key}: values are strings, numbers, true/false or "
                                 f"null; got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{what}.{key}: must be finite; got {v}")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) > FLOAT32_MAX:
                # finite here, infinite in the float32 network (a scale, a bias): refused
                raise InputError(f"{what}.{key}: must be within float32's range "
                                 f"(|x| <= {FLOAT32_MAX:.4g}); got "
                                 f"{f'{v:.4g}' if isinstance(v, float) else str(v)[:12] + '...'}")
        super().__init__(sorted(value.items()))

    @classmethod
    def from_text(cls, key: str, text: str) -> "Options":
        """`{"order": "bn_after_add"}` (JSON) from the command line."""
        return cls(text, key)

    def _frozen(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Options are frozen; make new ones")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _frozen
    __ior__ = _frozen

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (Options, (dict(self),))

    def __repr__(self) -> str:
        return f"Options({dict.__repr__(self)})"


def _json_object(key: str, text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raise InputError(f'{key}: expected a JSON object like {{"order": "full"}}; '
                         f"got {text!r}") from None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class VariantSpec:
    name: str
    family: str  # plain | resnet | preresnet | any lowercase word of a user's
    depth: int  # weighted layers, as the paper counts them (0 when made: from the layers)
    block: str  # a registered block: basic, bottleneck, preact_basic, preact_bottleneck, ...
    shortcut: str | None  # a registered shortcut: A | B | C (Section 3.3), ...; None: plain
    stem: str  # a registered stem: cifar | imagenet | deep | ...
    widths: tuple[int, ...]  # filters of the 3x3 convs per stage (bottleneck outputs x4)
    layers: tuple[int, ...]  # blocks per stage
    num_classes: int
    in_chans: int = 3
    stem_width: int = 0  # the stem's output channels; 0: the stem's registered width
    # Where a bottleneck downsamples: "1x1" = the paper (v1), "3x3" = torchvision's v1.5.
    stride_in: str = "1x1"
    # Departure from the paper (Goyal et al. 2017): zero the last BN of each residual branch.
    zero_init_residual: bool = False
    options: Options = field(default_factory=Options)  # the block's keyword options
    shortcut_options: Options = field(default_factory=Options)
    stem_options: Options = field(default_factory=Options)

    def __post_init__(self) -> None:

        for key in ("options", "shortcut_options", "stem_options"):
            value = getattr(self, key)
            if not isinstance(value, Options):
                object.__setattr__(self, key, Options(value, key))
        for key in ("layers", "widths"):
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"a variant needs a name; got {name!r}")
        if not isinstance(self.family, str) or not _FAMILY.fullmatch(self.family):
            raise InputError(f"{name}: family must be a lowercase word (plain, resnet, "
                             f"preresnet, ...); got {self.family!r}")
        try:
            block, stem = BLOCKS.get(self.block), STEMS.get(self.stem)
            shortcut = None if self.shortcut is None else SHORTCUTS.get(self.shortcut)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None
        if shortcut is None:
            if self.family != "plain":
                raise InputError(f"{name}: a {self.family} net needs a shortcut "
                                 f"(registered: {', '.join(SHORTCUTS.names())}); only plain "
                                 "nets have none")
            if self.zero_init_residual:
                raise InputError(f"{name}: zero_init_residual needs a residual branch; "
                                 "plain nets have none")
            if self.shortcut_options:
                raise InputError(f"{name}: shortcut_options need a shortcut")
        elif self.family == "plain":
            raise InputError(f"{name}: plain nets have no shortcut; got shortcut="
                             f"{self.shortcut!r} (use a resnet variant for shortcuts)")
        for key in ("layers", "widths"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not value or not all(map(_positive_int, value)):
                raise InputError(f"{name}: {key} must be positive integers, one per "
                                 f"stage; got {value!r}")
        if len(self.layers) != len(self.widths):
            raise InputError(f"{name}: layers and widths give one value per stage; "
                             f"layers has {len(self.layers)}, widths {len(self.widths)}")
        for key in ("num_classes", "in_chans"):
            if not _positive_int(getattr(self, key)):
                raise InputError(f"{name}: {key} must be a positive integer; "
                                 f"got {getattr(self, key)!r}")
        if self.stem_width == 0:
            object.__setattr__(self, "stem_width", stem.meta.get("width", 64))
        if not _positive_int(self.stem_width):
            raise InputError(f"{name}: stem_width must be a positive integer; "
                             f"got {self.stem_width!r}")
        if self.stride_in not in STRIDE_IN:
            raise InputError(f"{name}: stride_in must be one of {', '.join(STRIDE_IN)}; "
                             f"got {self.stride_in!r}")
        if self.stride_in != "1x1" and not (block.accepts and "stride_in" in block.accepts):
            raise InputError(f"{name}: stride_in applies to bottleneck blocks only; "
                             f"a {self.block} block strides in its first 3x3 conv")
        block.check_options(self.options, f"{name}: block {self.block!r}")
        if shortcut is not None:
            shortcut.check_options(self.shortcut_options, f"{name}: shortcut {self.shortcut!r}")
        stem.check_options(self.stem_options, f"{name}: stem {self.stem!r}")
        expected = block_depth(block.make, self.layers)
        if self.depth == 0:
            object.__setattr__(self, "depth", expected)
        elif self.depth != expected:
            raise InputError(f"{name}: depth {self.depth} does not match layers "
                             f"{self.layers} of {self.block} blocks ({expected})")

    @property
    def block_class(self) -> type:
        return BLOCKS.get(self.block).make

    @property
    def expansion(self) -> int:
        return self.block_class.expansion

    @property
    def residual(self) -> bool:
        return self.shortcut is not None

    @property
    def preact(self) -> bool:
        return bool(getattr(self.block_class, "preact", False))

    @property
    def input_size(self) -> int:
        """The side the stem was designed for: 32 px CIFAR, 224 px ImageNet crops."""
        return STEMS.get(self.stem).meta.get("input_size", 224)

    def factors(self) -> dict[str, Any]:
        """Every field, plain-typed for records, tables and W&B (tuples as lists, options as
        plain dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = dict(v) if isinstance(v, Options) else (
                list(v) if isinstance(v, tuple) else v)
        return out

    def with_overrides(self, **overrides: Any) -> "VariantSpec":
        """A validated copy with overrides applied; depth follows `layers` and `block`."""
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
        if unknown:
            raise InputError(f"unknown model override {unknown[0]!r}; allowed: "
                             f"{', '.join(OVERRIDE_KEYS)}")
        if not overrides:
            return self
        if "shortcut" in overrides and self.family == "plain" and overrides["shortcut"]:
            raise InputError(f"{self.name}: plain nets have no shortcut to override "
                             f"(allowed for residual variants)")
        return derive(self, self.name, **overrides)


def derive(base: VariantSpec, name: str, **changes: Any) -> VariantSpec:
    """A new spec from `base` with any field changed; depth is recomputed."""
    fields = {f.name for f in dataclasses.fields(VariantSpec)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise InputError(f"unknown variant field {unknown[0]!r}; allowed: "
                         f"{', '.join(sorted(fields - {'name', 'depth'}))}")
    changes = {k: v for k, v in changes.items() if k != "depth"}
    for key in ("layers", "widths"):
        if key in changes and not isinstance(changes[key], (list, tuple)):
            raise InputError(f"{key} must be a list of integers, one per stage; got "
                             f"{changes[key]!r}")
    if "stem" in changes and "stem_width" not in changes:
        changes["stem_width"] = 0  # the new stem's own width
    return dataclasses.replace(base, name=name, depth=0, **changes)


def block_depth(block_class: type, layers: tuple[int, ...]) -> int:
    """Weighted layers: one stem layer + the fc + the block's weighted layers per block
    (2 basic, 3 bottleneck). ResNet-C's three-conv stem still counts one, as its name does."""
    return getattr(block_class, "weighted_layers", 2) * sum(layers) + 2
