"""Loading small-image data sets into uint8 tensors, with the paper's held-out split."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
SMALL_MAX_SIDE = 64  # ImageFolder images up to this side are decoded once into a tensor
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class Split:
    images: Tensor  # (N, C, H, W) uint8
    labels: Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class ImageData:
    name: str
    train: Split
    val: Split | None
    test: Split
    num_classes: int
    in_chans: int
    classes: list[str]
    val_source: str  # where the validation split came from, recorded with the run


def holdout(n: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (rest, held_out) of a seeded random hold-out of `size` items out of n."""
    if not 0 <= size < n:
        raise ValueError(f"val_size must be in [0, {n - 1}] for a training set of {n} images; "
                         f"got {size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[size:].sort().values, perm[:size].sort().values


def _subset(split: Split, idx: Tensor) -> Split:
    return Split(split.images[idx], split.labels[idx])


def _digits() -> tuple[Split, Split, list[str]]:
    """scikit-learn's 8x8 digits (1,797 real images of 16 grey levels, bundled; no download).
    They come without a test split: a fixed 20% (seed 0) is held out as the test set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy(d.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(d.target).long()
    full = Split(images, labels)
    train_idx, test_idx = holdout(len(full), len(full) // 5, seed=0)
    return _subset(full, train_idx), _subset(full, test_idx), [str(i) for i in range(10)]


# torchvision's on-disk CIFAR layout: the python pickles of the official archives.
CIFAR_FORMAT = {
    "cifar10": {"folder": "cifar-10-batches-py", "meta": ("batches.meta", "label_names"),
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "labels": "labels"},
    "cifar100": {"folder": "cifar-100-python", "meta": ("meta", "fine_label_names"),
                 "train": ["train"], "test": ["test"], "labels": "fine_labels"},
}


def read_cifar_folder(name: str, folder: Path) -> tuple[Split, Split, list[str]]:
    """Read CIFAR-10/100 from torchvision's standard folder (cifar-10-batches-py/...)."""
    import pickle

    import numpy as np

    fmt = CIFAR_FORMAT[name]

    def load(file: str) -> dict:
        with open(folder / file, "rb") as f:
            return pickle.load(f, encoding="latin1")  # the official archives are pickles

    def split(files: list[str]) -> Split:
        parts = [load(f) for f in files]
        data = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([np.asarray(p[fmt["labels"]]) for p in parts])
        return Split(torch.from_numpy(data).contiguous(),
                     torch.from_numpy(labels.astype(np.int64)))

    meta_file, meta_key = fmt["meta"]
    return split(fmt["train"]), split(fmt["test"]), list(load(meta_file)[meta_key])


def _cifar(name: str, data_dir: str, download: bool) -> tuple[Split, Split, list[str]]:
    """CIFAR in torchvision's format under data_dir, downloaded by torchvision if absent."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = Path(data_dir) / CIFAR_FORMAT[name]["folder"]
    files = [*CIFAR_FORMAT[name]["train"], *CIFAR_FORMAT[name]["test"],
             CIFAR_FORMAT[name]["meta"][0]]
    if not all((folder / f).is_file() for f in files):
        existed = Path(data_dir).exists()
        error = None
        if download:
            try:
                cls(data_dir, train=True, download=True)  # fetches and checks the md5
            except Exception as exc:  # noqa: BLE001  offline: say where the files go
                error = exc
        if not download or error is not None:
            if not existed:
                shutil.rmtree(data_dir, ignore_errors=True)  # leave nothing half-written
            why = f" and could not be downloaded ({type(error).__name__})" if error else ""
            raise FileNotFoundError(
                f"{name} not found in {folder}{why}: put torchvision's {cls.filename} from "
                f"{cls.url} there, extracted (download=true fetches it where the network "
                "allows)")
    return read_cifar_folder(name, folder)


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def imagefolder_splits(root: Path) -> dict[str, Path]:
    """train/ plus val/ and/or test/ under root (ImageNet has val/, cifar10-jpg has test/)."""
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir {str(root)!r} does not exist; imagefolder needs "
                                f"DATA_DIR/train/<class>/*.jpg and DATA_DIR/val or test/<class>/")
    found = {s: root / s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" not in found or len(found) < 2:
        raise FileNotFoundError(f"imagefolder needs {root}/train/<class>/ and {root}/val/ or "
                                f"{root}/test/<class>/; found {sorted(found) or 'neither'}")
    return found


def probe_imagefolder(data_dir: str) -> int:
    """The larger side of the first training image: small (tensor) or large (loader) data."""
    from PIL import Image

    train = imagefolder_splits(Path(data_dir))["train"]
    for class_dir in sorted(p for p in train.iterdir() if p.is_dir()):
        for p in sorted(class_dir.iterdir()):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                with Image.open(p) as im:
                    return max(im.size)
    raise FileNotFoundError(f"no images under {train}/<class>/")


def _cache_dir() -> Path:
    base = os.environ.get("RESNET_ABLATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "resnet-ablate")
    return Path(base)


def _decode_folder(folder: Path, classes: list[str]) -> Split:
    """Decode an ImageFolder split once into a uint8 tensor, cached by its file listing."""
    import numpy as np
    from PIL import Image

    from ..io import atomic_torch_save

    files = _list_images(folder)
    if not files:
        raise FileNotFoundError(f"no images under {folder}/<class>/")
    h = hashlib.sha1(str(folder.resolve()).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    cache = _cache_dir() / f"imagefolder-{h.hexdigest()[:16]}.pt"
    if cache.exists():
        try:
            blob = torch.load(cache, weights_only=True)
            return Split(blob["images"], blob["labels"])
        except Exception:
            cache.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    index = {c: i for i, c in enumerate(classes)}
    mode = None
    arrays, labels = [], []
    for p in files:
        with Image.open(p) as im:
            mode = mode or ("L" if im.mode in ("L", "1", "I;16") else "RGB")
            arrays.append(np.asarray(im.convert(mode)))
        labels.append(index[p.relative_to(folder).parts[0]])
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"images under {folder} differ in size; tensor mode needs one size "
                         "(use data_mode=loader)")
    stacked = torch.from_numpy(np.stack(arrays))
    images = (stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2))
    split = Split(images.contiguous(), torch.tensor(labels, dtype=torch.long))
    try:
        atomic_torch_save({"images": split.images, "labels": split.labels}, cache)
    except OSError:
        pass  # no writable cache: decode again next time
    return split


def _imagefolder(data_dir: str) -> tuple[Split, Split, Split | None, list[str]]:
    found = imagefolder_splits(Path(data_dir))
    classes = sorted(p.name for p in found["train"].iterdir() if p.is_dir())
    train = _decode_folder(found["train"], classes)
    test_dir = found.get("test", found.get("val"))
    test = _decode_folder(test_dir, classes)
    val = _decode_folder(found["val"], classes) if "val" in found and "test" in found else None
    return train, test, val, classes


def load_small(name: str, data_dir: str, val_size: int, split_seed: int,
               download: bool = True) -> ImageData:
    """A small-image data set as uint8 tensors, with `val_size` training images held out
    for validation (the paper's 45k/5k); val_size=0 uses the set's own held-out split."""
    if name not in DATASETS:
        from ..overrides import unknown_key_error
        raise unknown_key_error(name, list(DATASETS), "dataset")
    own_val = None
    if name == "digits":
        train, test, classes = _digits()
    elif name in ("cifar10", "cifar100"):
        train, test, classes = _cifar(name, data_dir, download)
    else:
        train, test, own_val, classes = _imagefolder(data_dir)
    if val_size > 0:
        rest, held = holdout(len(train), val_size, split_seed)
        val, train = _subset(train, held), _subset(train, rest)
        val_source = f"{val_size} training images held out (split_seed={split_seed})"
    elif own_val is not None:
        val, val_source = own_val, "the data set's val/ split"
    else:
        val, val_source = test, "the test split (no separate validation split)"
    return ImageData(name=name, train=train, val=val, test=test, num_classes=len(classes),
                     in_chans=int(train.images.shape[1]), classes=classes,
                     val_source=val_source)
