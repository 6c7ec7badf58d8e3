"""Deprecated (0.3): moved to `resnet_ablate.variants.spec`; this path works for one more
release."""
import warnings

from .variants import spec as _moved
from .variants.spec import *  # noqa: F401,F403

warnings.warn("resnet_ablate.spec is deprecated; use resnet_ablate.variants.spec (or "
              "ra.get_spec / ra.VariantSpec)", DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    return getattr(_moved, name)
