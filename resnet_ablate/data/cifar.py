"""CIFAR-10/100 in torchvision's standard format (the python pickles of the official
archives), read without running code: the pickles are opened with an unpickler that admits
only numpy arrays and dtypes, lists, dicts, strings, bytes and numbers. A crafted file is a
one-line error naming it, never executed."""
from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import torch

from .base import Split
from ..errors import InputError, MissingInput

# torchvision's on-disk CIFAR layout.
CIFAR_FORMAT = {
    "cifar10": {"folder": "cifar-10-batches-py", "meta": ("batches.meta", "label_names"),
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "labels": "labels", "classes": 10},
    "cifar100": {"folder": "cifar-100-python", "meta": ("meta", "fine_label_names"),
                 "train": ["train"], "test": ["test"], "labels": "fine_labels", "classes": 100},
}

# What numpy's pickles of arrays need (numpy 1 and 2 spell the module differently), and
# what Python 2 pickles of bytes use; nothing else.
_ALLOWED = {(f"numpy{core}.{module}", fn) for core in (".core", "._core")
            for module, fn in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))}
_ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name} (only numpy arrays, lists, "
                                     "dicts, strings, bytes and numbers are allowed)")


def safe_unpickle(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return _DataOnly(io.BufferedReader(f), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as exc:
        raise InputError(f"{path}: not a CIFAR data file, refused: {exc}") from None


def read_cifar_folder(name: str, folder: Path) -> tuple[Split, Split, list[str]]:
    """Read CIFAR-10/100 from torchvision's standard folder (cifar-10-batches-py/...)."""
    import numpy as np

    fmt = CIFAR_FORMAT[name]

    def batch(file: str) -> tuple:
        path = folder / file
        obj = safe_unpickle(path)
        if not isinstance(obj, dict):
            raise InputError(f"{path}: not a CIFAR batch (a mapping with data and labels)")
        data, labels = obj.get("data"), obj.get(fmt["labels"])
        if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                or data.shape[1] != 3072):
            raise InputError(f"{path}: data must be uint8 rows of 3072 values (32x32x3)")
        labels = np.asarray(labels)
        if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer) or (
                len(labels) and not 0 <= labels.min() <= labels.max() < fmt["classes"]):
            raise InputError(f"{path}: {fmt['labels']} must be {len(data)} integers in "
                             f"[0, {fmt['classes'] - 1}]")
        return data, labels

    def split(files: list[str]) -> Split:
        parts = [batch(f) for f in files]
        data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([lab for _, lab in parts])
        return Split(torch.from_numpy(data).contiguous(),
                     torch.from_numpy(labels.astype(np.int64)))

    meta_file, meta_key = fmt["meta"]
    meta = safe_unpickle(folder / meta_file)
    classes = meta.get(meta_key) if isinstance(meta, dict) else None
    if not isinstance(classes, list) or len(classes) != fmt["classes"] or not all(
            isinstance(c, (str, bytes)) for c in classes):
        raise InputError(f"{folder / meta_file}: {meta_key} must list {fmt['classes']} names")
    classes = [c.decode() if isinstance(c, bytes) else c for c in classes]
    return split(fmt["train"]), split(fmt["test"]), classes


def load_cifar(name: str, data_dir: str, download: bool) -> tuple[Split, Split, list[str]]:
    """CIFAR in torchvision's format under data_dir, downloaded by torchvision if absent
    (torchvision checks the archive's MD5)."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    fmt = CIFAR_FORMAT[name]
    folder = Path(data_dir) / fmt["folder"]
    files = [*fmt["train"], *fmt["test"], fmt["meta"][0]]
    if not all((folder / f).is_file() for f in files):
        existed = Path(data_dir).exists()
        error = None
        if download:
            try:
                cls(data_dir, train=True, download=True)
            except Exception as exc:  # noqa: BLE001  offline: say where the files go
                error = exc
        if not download or error is not None:
            if not existed:
                shutil.rmtree(data_dir, ignore_errors=True)  # leave nothing half-written
            why = f" and could not be downloaded ({type(error).__name__})" if error else ""
            raise MissingInput(
                f"{name} not found in {folder}{why}: put torchvision's {cls.filename} from "
                f"{cls.url} there, extracted (download=true fetches it where the network "
                "allows)")
    return read_cifar_folder(name, folder)
