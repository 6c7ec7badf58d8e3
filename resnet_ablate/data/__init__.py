"""Data, in one home: the data sets (catalog), what the trainer sees of them (RunData) in
its two image modes (tensor: small images held whole on the device; loader: DataLoader
workers for large images), the validation hold-out, CIFAR's pickles read safely.

Names load on first use, so the catalog (`train --help`) needs no torch."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"DataSettings": "base", "RunData": "base", "Split": "base", "hold_out": "base",
            "DATASETS": "catalog", "default_protocol": "catalog", "get_dataset": "catalog",
            "image_mode": "catalog", "open_run_data": "catalog"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'resnet_ablate.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
