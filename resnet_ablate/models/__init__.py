from .resnet import ResNet
from .shortcuts import ZeroPadShortcut, make_shortcut

__all__ = ["ResNet", "ZeroPadShortcut", "make_shortcut"]
