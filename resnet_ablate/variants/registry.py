"""The registry of named variants: the papers' (variants/paper.py, registered before the
first lookup), then plugins', then any a user registers with `register_variant`. Names are
case- and '_'/'-'-insensitive (the registries of parts: variants/parts.py; the one
`Registry` class: resnet_ablate/registry.py)."""
from __future__ import annotations

from typing import Any

from ..registry import Registry
from .spec import VariantSpec, derive


def _load_variants() -> None:
    """The papers' variants, then plugins (which may derive from them)."""
    from .paper import register_builtin
    from .plugins import autoload

    register_builtin(register_variant)
    autoload()


def normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


VARIANTS = Registry("model", key=normalise, loader=_load_variants, listed=False,
                    hint="see `resnet-ablate models`")


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern (case-insensitive), in registry order:
    the paper's families and depths first, then the follow-ups, then plugins'."""
    return VARIANTS.names(pattern)


def get_spec(name: str):
    """The spec of a registered variant; names are case- and '_'/'-'-insensitive."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string; got {type(name).__name__}")
    if name not in VARIANTS:  # a plugin's, not loaded? say how to load it
        from ..errors import unknown
        from .plugins import hint

        raise unknown("model", name, VARIANTS.names(), hint(name) or VARIANTS.hint,
                      listed=False)
    return VARIANTS.get(name)


def register_variant(name: str, base: Any = None, **changes: Any):
    """Register a named variant: `base` (a name or spec) with any factor changed (block,
    shortcut, stem, layers, widths, options, ...), or, without a base, every field given.
    Depth follows the block and layers."""
    if base is None:
        changes.setdefault("depth", 0)
        spec = VariantSpec(name=name, **changes)
    else:
        base_spec = base if isinstance(base, VariantSpec) else get_spec(base)
        if "shortcut" in changes and "family" not in changes:
            if changes["shortcut"] is None:
                changes["family"] = "plain"
            elif base_spec.family == "plain":
                changes["family"] = "resnet"
        spec = derive(base_spec, name, **changes)
    return VARIANTS.add(name, spec)
