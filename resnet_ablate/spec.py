"""VariantSpec: every architectural factor of one network, as a frozen dataclass.

Sweeps, plots and tables group runs by these fields, never by parsing names. Block, shortcut
and stem are names in the open registries of `resnet_ablate.parts`; `options`,
`shortcut_options` and `stem_options` are the keyword options their makers take.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any
from .errors import InputError

STRIDE_IN = ("1x1", "3x3")
_FAMILY = re.compile(r"[a-z][a-z0-9_]*")

# Keys `create_model(name, **overrides)` and `model.KEY=value` accept; depth follows layers.
OVERRIDE_KEYS = ("num_classes", "in_chans", "layers", "widths", "shortcut", "stride_in",
                 "zero_init_residual", "block", "stem", "stem_width", "options",
                 "shortcut_options", "stem_options")


class Options(tuple):
    """Keyword options of a part, frozen: sorted (name, value) pairs of JSON scalars."""

    @classmethod
    def of(cls, value: Any, what: str = "options") -> "Options":
        if isinstance(value, Options):
            return value
        if isinstance(value, str):
            return cls.from_text(what, value)
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, (list, tuple)) and all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            items = [tuple(p) for p in value]
        else:
            raise InputError(f"{what} must be a mapping of option names to values; "
                             f"got {value!r}")
        out = []
        for key, v in items:
            if not isinstance(key, str) or not key.isidentifier():
                raise InputError(f"{what}: option names are identifiers; got {key!r}")
            if not (v is None or isinstance(v, (str, bool, int, float))):
                raise InputError(f"{what}.{key}: values are strings, numbers, true/false or "
                                 f"null; got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{what}.{key}: must be finite; got {v}")
            out.append((key, v))
        return cls(sorted(out))

    @classmethod
    def from_text(cls, key: str, text: str) -> "Options":
        """`{"order": "bn_after_add"}` (JSON) from the command line."""
        try:
            value = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            raise InputError(f'{key}: expected a JSON object like {{"order": "full"}}; '
                             f"got {text!r}") from None
        return cls.of(value, key)

    def as_dict(self) -> dict[str, Any]:
        return dict(self)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class VariantSpec:
    name: str
    family: str  # plain | resnet | preresnet | any lowercase word of a user's
    depth: int  # weighted layers, as the paper counts them
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
    options: Options = Options()  # the block's keyword options
    shortcut_options: Options = Options()
    stem_options: Options = Options()

    def __post_init__(self) -> None:
        from .parts import BLOCKS, SHORTCUTS, STEMS

        for key in ("options", "shortcut_options", "stem_options"):
            object.__setattr__(self, key, Options.of(getattr(self, key), key))
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError(f"a variant needs a name; got {self.name!r}")
        if not isinstance(self.family, str) or not _FAMILY.fullmatch(self.family):
            raise InputError(f"{self.name}: family must be a lowercase word (plain, resnet, "
                             f"preresnet, ...); got {self.family!r}")
        if self.block not in BLOCKS:
            raise InputError(f"{self.name}: {BLOCKS.unknown(self.block)}")
        if self.stem not in STEMS:
            raise InputError(f"{self.name}: {STEMS.unknown(self.stem)}")
        if self.shortcut is None:
            if self.family != "plain":
                raise InputError(f"{self.name}: a {self.family} net needs a shortcut "
                                 f"(registered: {', '.join(SHORTCUTS.names())}); only plain "
                                 "nets have none")
            if self.zero_init_residual:
                raise InputError(f"{self.name}: zero_init_residual needs a residual branch; "
                                 "plain nets have none")
        else:
            if self.family == "plain":
                raise InputError(f"{self.name}: plain nets have no shortcut; got shortcut="
                                 f"{self.shortcut!r} (use a resnet variant for shortcuts)")
            if self.shortcut not in SHORTCUTS:
                raise InputError(f"{self.name}: {SHORTCUTS.unknown(self.shortcut)}")
        for key in ("layers", "widths"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not value or not all(map(_positive_int, value)):
                raise InputError(f"{self.name}: {key} must be positive integers, one per "
                                 f"stage; got {value!r}")
        if len(self.layers) != len(self.widths):
            raise InputError(f"{self.name}: layers and widths give one value per stage; "
                             f"layers has {len(self.layers)}, widths {len(self.widths)}")
        for key in ("num_classes", "in_chans"):
            if not _positive_int(getattr(self, key)):
                raise InputError(f"{self.name}: {key} must be a positive integer; "
                                 f"got {getattr(self, key)!r}")
        if self.stem_width == 0:
            object.__setattr__(self, "stem_width", STEMS.get(self.stem).meta.get("width", 64))
        if not _positive_int(self.stem_width):
            raise InputError(f"{self.name}: stem_width must be a positive integer; "
                             f"got {self.stem_width!r}")
        if self.stride_in not in STRIDE_IN:
            raise InputError(f"{self.name}: stride_in must be one of {', '.join(STRIDE_IN)}; "
                             f"got {self.stride_in!r}")
        if self.stride_in != "1x1" and "stride_in" not in _parameters(self.block_class):
            raise InputError(f"{self.name}: stride_in applies to bottleneck blocks only; "
                             f"a {self.block} block strides in its first 3x3 conv")
        _check_options(self.name, f"block {self.block!r}", self.block_class, self.options,
                       skip=("in_chans", "planes", "stride", "shortcut"))
        if self.shortcut is not None:
            _check_options(self.name, f"shortcut {self.shortcut!r}",
                           SHORTCUTS.get(self.shortcut).make, self.shortcut_options,
                           skip=("in_chans", "out_chans", "stride"))
        elif self.shortcut_options:
            raise InputError(f"{self.name}: shortcut_options need a shortcut")
        _check_options(self.name, f"stem {self.stem!r}", STEMS.get(self.stem).make,
                       self.stem_options, skip=("in_chans", "out_chans"))
        expected = block_depth(self.block_class, self.layers)
        if self.depth != expected:
            raise InputError(f"{self.name}: depth {self.depth} does not match layers "
                             f"{self.layers} of {self.block} blocks ({expected})")

    @property
    def block_class(self) -> type:
        from .parts import BLOCKS

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
        from .parts import STEMS

        return STEMS.get(self.stem).meta.get("input_size", 224)

    def factors(self) -> dict[str, Any]:
        """Plain-typed fields for configs, tables and W&B (tuples as lists, options as
        mappings)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.as_dict() if isinstance(v, Options) else (
                list(v) if isinstance(v, tuple) else v)
        return out

    def with_overrides(self, **overrides: Any) -> "VariantSpec":
        """A validated copy with overrides applied; depth follows `layers` and `block`."""
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
        if unknown:
            raise InputError(f"unknown model override {unknown[0]!r}; allowed: "
                             f"{', '.join(OVERRIDE_KEYS)}")
        if "shortcut" in overrides and self.family == "plain" and overrides["shortcut"]:
            raise InputError(f"{self.name}: plain nets have no shortcut to override "
                             f"(allowed for residual variants)")
        return derive(self, self.name, **overrides)


def derive(base: VariantSpec, name: str, **changes: Any) -> VariantSpec:
    """A new spec from `base` with any field changed; depth is recomputed."""
    fields = {f.name for f in dataclasses.fields(VariantSpec)}
    unknown = sorted(set(changes) - fields - {"depth"})
    if unknown:
        raise InputError(f"unknown variant field {unknown[0]!r}; allowed: "
                         f"{', '.join(sorted(fields - {'name', 'depth'}))}")
    changes = dict(changes)
    changes.pop("depth", None)
    for key in ("layers", "widths"):
        if key in changes:
            changes[key] = _as_int_tuple(key, changes[key])
    if "stem" in changes and "stem_width" not in changes:
        changes["stem_width"] = 0  # the new stem's own width
    from .parts import BLOCKS

    block = changes.get("block", base.block)
    if block not in BLOCKS:
        raise InputError(f"{name}: {BLOCKS.unknown(block)}")
    changes["depth"] = block_depth(BLOCKS.get(block).make, changes.get("layers", base.layers))
    return dataclasses.replace(base, name=name, **changes)


def block_depth(block_class: type, layers: tuple[int, ...]) -> int:
    """Weighted layers: one stem layer + the fc + the block's weighted layers per block
    (2 basic, 3 bottleneck). ResNet-C's three-conv stem still counts one, as its name does."""
    return getattr(block_class, "weighted_layers", 2) * sum(layers) + 2


def _parameters(make: Any) -> dict[str, Any]:
    import inspect

    try:
        return dict(inspect.signature(make).parameters)
    except (TypeError, ValueError):
        return {}


def _check_options(name: str, what: str, make: Any, options: Options,
                   skip: tuple[str, ...]) -> None:
    import inspect

    params = _parameters(make)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key, _ in options:
        if key not in params or key in skip:
            allowed = [k for k, p in params.items() if k not in skip and k not in (
                "norm_layer", "act_layer", "stride_in", "preact_input")
                       and p.default is not inspect.Parameter.empty]
            raise InputError(f"{name}: {what} takes no option {key!r} (its options: "
                             f"{', '.join(allowed) or 'none'})")


def _as_int_tuple(key: str, value: Any) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise InputError(f"{key} must be a list of integers, one per stage; got {value!r}")
