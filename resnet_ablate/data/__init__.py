"""Data sets: digits (embedded), CIFAR-10/100 (torchvision's format), any ImageFolder tree.

Small images are held whole as one uint8 tensor (see `batches`); large ImageFolder trees go
through DataLoader workers (see `loader`).
"""
from .sets import DATASETS, ImageData, Split, load_small, probe_imagefolder

__all__ = ["DATASETS", "ImageData", "Split", "load_small", "probe_imagefolder"]
