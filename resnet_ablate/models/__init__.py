"""The network: registered parts (blocks, shortcuts, stems) and the stage builder."""
from . import blocks, shortcuts, stems  # noqa: F401  register the built-in parts
from .resnet import ResNet, create_model
from .shortcuts import ZeroPadShortcut

__all__ = ["ResNet", "ZeroPadShortcut", "create_model"]
