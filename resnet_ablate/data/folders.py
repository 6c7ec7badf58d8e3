"""ImageFolder trees (`train/<class>/*.jpg` beside `val/` and/or `test/`): finding the
splits, probing the image size, the tree's fingerprint, decoding small images once into a
cached uint8 tensor. A file that does not decode (a decompression bomb included) and a
symlink that resolves to nothing or loops are one-line errors naming them."""
from __future__ import annotations

import errno
import hashlib
import os
import warnings
from pathlib import Path

import torch

from .base import Split
from ..errors import InputError, MissingInput

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


# The held-out split's folder names: ours and torchvision's (val/), timm's (validation/).
VAL_NAMES = ("val", "validation")


def _kind(entry: os.DirEntry | Path) -> str:
    """'dir', 'file' or 'other' (a FIFO, a device: never opened) of a directory entry, its
    symlinks followed; a symlink that loops or leads nowhere, or an entry that cannot be
    examined, is a one-line error naming it (never a silently smaller data set)."""
    path = entry.path if isinstance(entry, os.DirEntry) else str(entry)
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
        if entry.is_symlink():
            os.stat(path)  # raises: it leads nowhere
        return "other"
    except OSError as exc:
        why = ("a symlink loop" if exc.errno == errno.ELOOP else "a symlink to nothing"
               if exc.errno == errno.ENOENT else exc.strerror or str(exc))
        raise InputError(f"{path}: cannot be read ({why})") from None


def _dir(path: Path) -> bool:
    return _kind(path) == "dir"


def splits(root: Path) -> dict[str, Path]:
    """train/ plus val/ (or timm's validation/) and/or test/ under root (ImageNet has val/,
    cifar10-jpg has test/)."""
    if not _dir(root):
        raise MissingInput(f"data_dir {str(root)!r} does not exist; imagefolder needs "
                           f"DATA_DIR/train/<class>/*.jpg and DATA_DIR/val (or validation) "
                           f"or test/<class>/")
    found = {s: root / s for s in ("train", "test") if _dir(root / s)}
    held_out = [root / s for s in VAL_NAMES if _dir(root / s)]
    if len(held_out) > 1:
        raise InputError(f"{root} has both val/ and validation/: one held-out split, one "
                         "folder (rename or remove one)")
    if held_out:
        found["val"] = held_out[0]
    if "train" not in found or len(found) < 2:
        raise MissingInput(f"imagefolder needs {root}/train/<class>/ and {root}/val/ (or "
                           f"validation/) or {root}/test/<class>/; found "
                           f"{sorted(p.name for p in found.values()) or 'neither'}")
    return found


def test_dir(found: dict[str, Path]) -> Path:
    """The reported split: test/ when there is one, else val/ or validation/ (ImageNet's)."""
    return found.get("test", found.get("val"))


def _class_dirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if _kind(e) == "dir")


def _image_files(class_dir: Path) -> list[os.DirEntry]:
    """The image files of one class folder, sorted by name; an image's name on anything but
    a regular file (a FIFO would block its reader) is a one-line error."""
    with os.scandir(class_dir) as entries:
        found = sorted((e for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS)),
                       key=lambda e: e.name)
    for entry in found:
        kind = _kind(entry)
        if kind != "file":
            raise InputError(f"{entry.path}: not a readable image (a "
                             f"{'directory' if kind == 'dir' else 'FIFO, socket or device'}, "
                             "not a regular file)")
    return found


def classes_of(train: Path) -> list[str]:
    classes = [p.name for p in _class_dirs(train)]
    if not classes:
        raise MissingInput(f"no class folders under {train}/")
    return classes


def list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) of every image under folder/<class>/, sorted; an empty file is a one-line
    error (cheap to find here, from the listing)."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for class_dir in _class_dirs(folder):
        if class_dir.name not in index:
            raise InputError(f"{class_dir}: class {class_dir.name!r} is not among the training "
                             f"classes ({len(classes)} folders under train/)")
        for entry in _image_files(class_dir):
            if entry.stat().st_size == 0:
                raise InputError(f"{entry.path}: not a readable image (empty file)")
            out.append((Path(entry.path), index[class_dir.name]))
    if not out:
        raise MissingInput(f"no images under {folder}/<class>/")
    return out


def listing(found: dict[str, Path], classes: list[str]) -> dict[str, list[tuple[Path, int]]]:
    """Every split's (file, label) list: train, test (test/, else val/), and val when the
    tree has both val/ and test/ (its own held-out split)."""
    out = {"train": list_images(found["train"], classes),
           "test": list_images(test_dir(found), classes)}
    if {"val", "test"} <= set(found):
        out["val"] = list_images(found["val"], classes)
    return out


def open_image(path: Path, mode: str | None = None):
    """A decoded PIL image, converted to `mode` (RGB by default; "keep": as stored); a
    one-line error naming the file if it does not decode, or if its header claims more
    pixels than PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS: PIL itself only
    warns below twice that, and would decode up to 179M pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return im.copy() if mode == "keep" else im.convert(mode or "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None


def first_image(data_dir: str):
    """The first training image, as stored (its size says small or large data, its mode
    how many channels)."""
    found = splits(Path(data_dir))
    for name in classes_of(found["train"]):  # the first file found: no full listing
        for entry in _image_files(found["train"] / name):
            return open_image(Path(entry.path), mode="keep")
    raise MissingInput(f"no images under {found['train']}/<class>/")


def probe(data_dir: str) -> int:
    """The larger side of the first training image: small (tensor) or large (loader) data."""
    return max(first_image(data_dir).size)


def channels(image) -> int:
    """Grey images stay one channel in tensor mode; everything else is decoded as RGB."""
    return 1 if image.mode in ("L", "1", "I;16") else 3


FINGERPRINT_SAMPLE = 1000  # files whose bytes a large tree's fingerprint reads


def fingerprint(root: Path, listing: dict[str, list[tuple[Path, int]]],
                classes: list[str]) -> str:
    """A large tree's content, cheaply (loader mode: ImageNet's 1.3M files cannot all be
    read at every start): its class names, the files per split, a digest of the sorted
    (relative path, size) list and of the bytes of an evenly spread sample of
    FINGERPRINT_SAMPLE files. The same tree copied elsewhere keeps it; another tree of the
    same layout and sizes does not, unless it differs only in files outside the sample.
    (Small images, held as a tensor, are fingerprinted by their decoded pixels: data.tensor.)"""
    h = hashlib.sha1("\n".join(classes).encode())
    counts, files = [], []
    for split in (s for s in ("train", "val", "test") if s in listing):
        counts.append(f"{split}={len(listing[split])}")
        files += [p for p, _ in listing[split]]
    for path in files:
        h.update(f"\n{path.relative_to(root)}:{path.stat().st_size}".encode())
    step = max(1, len(files) // FINGERPRINT_SAMPLE)
    for path in files[::step][:FINGERPRINT_SAMPLE]:
        h.update(path.read_bytes())
    return f"imagefolder:{len(classes)}c:{','.join(counts)}:{h.hexdigest()[:16]}"


def _cache_dir() -> Path:
    base = os.environ.get("RESNET_ABLATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "resnet-ablate")
    return Path(base)


def cache_key(folder: Path, files: list[tuple[Path, int]]) -> str:
    """The decoded-image cache's key: each file's path, label, inode, size, mtime and ctime.
    Rewriting a file changes its ctime, which no one can set back (utime sets mtime only),
    so a cached tensor never serves stale pixels; a label is keyed too (a class folder
    added before others renumbers them). One stat per file: about as much as listing the
    tree (benchmarks/cache_key.py), far less than a digest of the bytes."""
    h = hashlib.sha1(str(folder.resolve()).encode())
    for p, label in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder)}:{label}:{st.st_ino}:{st.st_size}:"
                 f"{st.st_mtime_ns}:{st.st_ctime_ns}\n".encode())
    return h.hexdigest()[:16]


def decode(folder: Path, files: list[tuple[Path, int]]) -> Split:
    """Decode an ImageFolder split once into a uint8 tensor, cached under cache_key."""
    import numpy as np

    from ..io import atomic_torch_save

    cache = _cache_dir() / f"imagefolder-{cache_key(folder, files)}.pt"
    if cache.exists():
        try:
            blob = torch.load(cache, weights_only=True)
            return Split(blob["images"], blob["labels"])
        except Exception:  # noqa: BLE001  a damaged cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    first = open_image(files[0][0], mode="keep")
    mode = "L" if first.mode in ("L", "1", "I;16") else "RGB"
    arrays = [np.asarray(open_image(p, mode)) for p, _ in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise InputError(f"images under {folder} differ in size ({len(shapes)} sizes); tensor "
                         "mode needs one size (use data_mode=loader)")
    stacked = torch.from_numpy(np.stack(arrays))
    images = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
    split = Split(images.contiguous(), torch.tensor([lab for _, lab in files], dtype=torch.long))
    try:
        atomic_torch_save({"images": split.images, "labels": split.labels}, cache)
    except OSError:
        pass  # no writable cache: decode again next time
    return split
