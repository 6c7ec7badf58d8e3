"""Deprecated (0.3): moved to `resnet_ablate.run.protocol`; this path works for one more
release."""
import warnings

from .run import protocol as _moved
from .run.protocol import *  # noqa: F401,F403

warnings.warn("resnet_ablate.protocol is deprecated; use resnet_ablate.run.protocol",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    return getattr(_moved, name)
