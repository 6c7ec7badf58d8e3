"""The registries of building parts: blocks, shortcuts, stems (one `Registry` class for every
kind of name, resnet_ablate/registry.py; the variants' are in `variants.registry`, the
probes' in `probes.registry`).

A researcher registers a part from their own module and then names it in a variant like any
built-in; the built-in parts (basic, bottleneck and pre-activation blocks, shortcut options
A/B/C, the CIFAR and ImageNet stems) are registered through these same decorators, in
`resnet_ablate.models`. This module imports no torch: the built-ins are imported the first
time a registry is asked for a name.

    @ra.register_block("my_block")
    class MyBlock(nn.Module):
        expansion = 1
        def __init__(self, in_chans, planes, stride, shortcut, **options): ...

    @ra.register_shortcut("half")
    def half(in_chans, out_chans, stride, **options) -> nn.Module | None: ...

    @ra.register_stem("tiny", input_size=32, reduction=1, width=16)
    def tiny(in_chans, out_chans, **options) -> nn.Module: ...
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InputError
from ..registry import Registry



# ---------------------------------------------------------------------------- parts
# What the stage builder hands to a part that takes it by name (never an option of it).
# drop_path/drop_block: timm's regularisers, only when create_model's rates ask for them.
CONTEXT = ("norm_layer", "act_layer", "stride_in", "preact_input", "drop_path", "drop_block")


@dataclass(frozen=True)
class Part:
    name: str
    make: Callable[..., Any]  # a block class, a shortcut factory or a stem factory
    module: str  # where it was registered
    meta: dict[str, Any] = field(default_factory=dict)
    accepts: frozenset[str] | None = None  # the keywords it takes; None: any (**kwargs)
    options: dict[str, Any] = field(default_factory=dict)  # its options and their defaults

    @classmethod
    def of(cls, name: str, make: Callable[..., Any], positional: int, **meta: Any) -> "Part":
        """Its signature read once, here: the stage builder and the spec only look up."""
        try:
            params = list(inspect.signature(make).parameters.values())
        except (TypeError, ValueError):
            params = []
        accepts = None if any(p.kind is p.VAR_KEYWORD for p in params) else frozenset(
            p.name for p in params)
        options = {p.name: p.default for p in params[positional:]
                   if p.default is not p.empty and p.name not in CONTEXT}
        return cls(name, make, getattr(make, "__module__", "?"), dict(meta), accepts, options)

    def takes(self, keyword: str) -> bool:
        return self.accepts is None or keyword in self.accepts

    def check_options(self, options: dict[str, Any], what: str) -> None:
        """An option it does not take, or of another type than its default: one line."""
        for key, value in options.items():
            if self.accepts is not None and (key not in self.options):
                raise InputError(f"{what} takes no option {key!r} (its options: "
                                 f"{', '.join(self.options) or 'none'})")
            default = self.options.get(key)
            if not _same_kind(default, value):
                raise InputError(f"{what} option {key} must be {_kind_name(default)} like "
                                 f"its default {default!r}; got {value!r}")


def _same_kind(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _kind_name(default: Any) -> str:
    return ("true or false" if isinstance(default, bool) else "a number" if isinstance(
        default, (int, float)) else "a string" if isinstance(default, str) else
            type(default).__name__)


def _builtins(module: str) -> Callable[[], None]:
    return lambda: importlib.import_module(module)


BLOCKS: Registry[Part] = Registry("block", loader=_builtins("resnet_ablate.models.blocks"),
                                  hint="add your own with ra.register_block")
SHORTCUTS: Registry[Part] = Registry("shortcut",
                                     loader=_builtins("resnet_ablate.models.shortcuts"),
                                     hint="add your own with ra.register_shortcut")
STEMS: Registry[Part] = Registry("stem", loader=_builtins("resnet_ablate.models.stems"),
                                 hint="add your own with ra.register_stem")


def register_block(name: str) -> Callable[[type], type]:
    """Register an nn.Module class built as `Block(in_chans, planes, stride, shortcut,
    **options)`; `shortcut` is the shortcut module (None in a plain net). The class states
    `expansion` (output channels = planes * expansion) and may state `weighted_layers`
    (default 2: depth = weighted_layers * blocks + 2) and `preact` (True: the network adds
    BN-ReLU before pooling)."""
    def decorate(cls: type) -> type:
        if not isinstance(getattr(cls, "expansion", None), int) or cls.expansion < 1:
            raise TypeError(f"block {name!r}: {cls.__name__} needs a class attribute "
                            "`expansion`, a positive integer")
        BLOCKS.add(name, Part.of(name, cls, positional=4), where=cls.__module__)
        return cls
    return decorate


def register_shortcut(name: str) -> Callable[[Callable], Callable]:
    """Register a factory `make(in_chans, out_chans, stride, **options) -> nn.Module | None`
    (None: the identity)."""
    def decorate(make: Callable) -> Callable:
        SHORTCUTS.add(name, Part.of(name, make, positional=3), where=make.__module__)
        return make
    return decorate


def register_stem(name: str, *, input_size: int = 224, reduction: int = 1, width: int = 64
                  ) -> Callable[[Callable], Callable]:
    """Register a factory `make(in_chans, out_chans, **options) -> nn.Module`; `input_size`
    is the side it was designed for (default input of complexity and timm), `reduction`
    how much it shrinks that side, `width` its default output channels."""
    for key, value in (("input_size", input_size), ("reduction", reduction), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"stem {name!r}: {key} must be a positive integer; got {value!r}")

    def decorate(make: Callable) -> Callable:
        STEMS.add(name, Part.of(name, make, positional=2, input_size=input_size,
                                reduction=reduction, width=width), where=make.__module__)
        return make
    return decorate
