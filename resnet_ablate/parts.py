"""The open registries of building parts: blocks, shortcuts and stems.

A researcher registers a part from their own module and then names it in a variant like any
built-in; the built-in parts (basic, bottleneck and pre-activation blocks, shortcut options
A/B/C, the CIFAR and ImageNet stems) are registered through these same decorators, in
`resnet_ablate.models`. This module itself imports no torch: the built-ins are imported the
first time a registry is asked for a name.

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

import difflib
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from .errors import InputError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Part:
    name: str
    make: Callable[..., Any]  # a block class, a shortcut factory or a stem factory
    module: str  # where it was registered (recorded with runs, so plugins reload)
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Names -> parts. A taken name is refused, never silently replaced."""

    def __init__(self, kind: str, builtins: str) -> None:
        self.kind = kind
        self._builtins = builtins  # the module that registers the built-in parts
        self._parts: dict[str, Part] = {}
        self._loading = False

    def _load_builtins(self) -> None:
        if not self._loading:
            self._loading = True
            importlib.import_module(self._builtins)

    def register(self, name: str, make: Callable[..., Any], **meta: Any) -> Callable[..., Any]:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InputError(f"{self.kind} name must start with a letter and hold letters, "
                             f"digits, '_', '-' or '.'; got {name!r}")
        self._load_builtins()
        if name in self._parts:
            raise InputError(f"{self.kind} {name!r} is already registered "
                             f"(by {self._parts[name].module})")
        self._parts[name] = Part(name, make, getattr(make, "__module__", "?"), dict(meta))
        return make

    def get(self, name: str) -> Part:
        self._load_builtins()
        if name not in self._parts:
            raise InputError(self.unknown(name))
        return self._parts[name]

    def unknown(self, name: Any) -> str:
        close = difflib.get_close_matches(str(name), list(self._parts), n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        return (f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(self.names())}; "
                f"add your own with ra.register_{self.kind})")

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._parts

    def names(self) -> list[str]:
        self._load_builtins()
        return list(self._parts)


BLOCKS = Registry("block", "resnet_ablate.models.blocks")
SHORTCUTS = Registry("shortcut", "resnet_ablate.models.shortcuts")
STEMS = Registry("stem", "resnet_ablate.models.stems")


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
        return BLOCKS.register(name, cls)
    return decorate


def register_shortcut(name: str) -> Callable[[Callable], Callable]:
    """Register a factory `make(in_chans, out_chans, stride, **options) -> nn.Module | None`
    (None: the identity)."""
    def decorate(make: Callable) -> Callable:
        return SHORTCUTS.register(name, make)
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
        return STEMS.register(name, make, input_size=input_size, reduction=reduction,
                              width=width)
    return decorate
