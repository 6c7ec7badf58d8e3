"""Deprecated (0.3): moved to `resnet_ablate.variants.registry` (and `create_model` to
`resnet_ablate.models`); this path works for one more release."""
import warnings

from .variants import registry as _moved
from .variants.registry import get_spec, list_models, register_variant  # noqa: F401

warnings.warn("resnet_ablate.registry is deprecated; use ra.list_models, ra.get_spec, "
              "ra.register_variant and ra.create_model", DeprecationWarning, stacklevel=2)


def create_model(name, **overrides):
    from .models import create_model as build

    return build(name, **overrides)


def __getattr__(name: str):
    return getattr(_moved, name)
