"""The data sets, one table: name -> how to load it, its default protocol, what it is. A new
data set is one entry here. `open_run_data` decides the image mode once and builds the
RunData the trainer uses."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import InputError

if TYPE_CHECKING:
    from .base import DataSettings, RunData
    from .tensor import Images

SMALL_MAX_SIDE = 64  # ImageFolder images up to this side are held whole as a tensor
MODES = ("auto", "tensor", "loader")


def digits_arrays():
    """The digits' (images [N, 8, 8] float 0..16, labels [N]) as sklearn.datasets.load_digits
    gives them, read from the CSV scikit-learn bundles without importing scikit-learn (1 s
    of every run's start-up)."""
    import gzip

    import numpy as np

    with gzip.open(_digits_csv(), "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


def _digits_csv() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("dataset=digits needs scikit-learn (pip install scikit-learn), "
                         "which bundles the images")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def _digits(data_dir: str, download: bool) -> Images:
    """scikit-learn's 8x8 digits (1,797 real images of 16 grey levels, bundled; no
    download). They come without a test split: a fixed 20% (seed 0) is held out as test."""
    import torch

    from .base import Split, hold_out
    from .tensor import Images

    pixels, labels = digits_arrays()
    images = torch.from_numpy(pixels).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    full = Split(images, torch.from_numpy(labels).long())
    fixed = hold_out(len(full), len(full) // 5, 0, own_val=False)
    return Images("digits", full.subset(fixed.train), full.subset(fixed.val), None,
                  [str(i) for i in range(10)])


def _cifar(name: str) -> Callable[[str, bool], Images]:
    def load(data_dir: str, download: bool) -> Images:
        from .cifar import load_cifar
        from .tensor import Images

        train, test, classes = load_cifar(name, data_dir, download)
        return Images(name, train, test, None, classes)
    return load


def _imagefolder(data_dir: str, download: bool) -> Images:
    from . import folders
    from .tensor import Images

    root = Path(data_dir)
    found = folders.splits(root)
    classes = folders.classes_of(found["train"])
    listing = folders.listing(found, classes)
    own_val = folders.decode(found["val"], listing["val"]) if "val" in listing else None
    return Images("imagefolder", folders.decode(found["train"], listing["train"]),
                  folders.decode(folders.test_dir(found), listing["test"]), own_val, classes)


@dataclass(frozen=True)
class Described:
    """What a data set tells before it is loaded: enough to resolve the model."""
    num_classes: int
    in_chans: int


def _imagefolder_described(data_dir: str, mode: str) -> Described:
    """Loader mode decodes RGB; tensor mode keeps grey images one channel."""
    from . import folders

    found = folders.splits(Path(data_dir))
    chans = 3 if mode == "loader" else folders.channels(folders.first_image(data_dir))
    return Described(len(folders.classes_of(found["train"])), chans)


@dataclass(frozen=True)
class DataSet:
    name: str
    load: Callable[[str, bool], "Images"]  # (data_dir, download) -> small images, as tensors
    default_protocol: str | None  # None: by image size (the CIFAR or the ImageNet protocol)
    facts: str
    describe: Callable[[str, str], Described]  # (data_dir, mode) -> classes, channels; no load


DATASETS: dict[str, DataSet] = {d.name: d for d in (
    DataSet("digits", _digits, "demo", "scikit-learn's 1,797 real 8x8 digits, bundled: no "
            "download; a fixed 20% test split", lambda *_: Described(10, 1)),
    DataSet("cifar10", _cifar("cifar10"), "he2015-cifar", "CIFAR-10 in torchvision's format "
            "(DATA_DIR/cifar-10-batches-py/), downloaded where the network allows",
            lambda *_: Described(10, 3)),
    DataSet("cifar100", _cifar("cifar100"), "he2015-cifar", "CIFAR-100 in torchvision's "
            "format (DATA_DIR/cifar-100-python/)", lambda *_: Described(100, 3)),
    DataSet("imagefolder", _imagefolder, None, "any DATA_DIR/train/<class>/ tree beside val/ "
            "and/or test/ (ImageNet; ../shared/data/cifar10-jpg); images over 64 px go "
            "through DataLoader workers", _imagefolder_described),
)}


def get_dataset(name: str) -> DataSet:
    if name not in DATASETS:
        from ..errors import unknown

        raise unknown("dataset", name, DATASETS)
    return DATASETS[name]


def _large(dataset: str, data_dir: str) -> bool:
    from . import folders

    return dataset == "imagefolder" and folders.probe(data_dir) > SMALL_MAX_SIDE


def default_protocol(dataset: str, data_dir: str) -> str:
    """The data set's protocol; an ImageFolder's by its image size."""
    named = get_dataset(dataset).default_protocol
    if named is not None:
        return named
    return "he2015-imagenet" if _large(dataset, data_dir) else "he2015-cifar"


def image_mode(dataset: str, data_dir: str, requested: str) -> str:
    """tensor or loader, decided once: auto means tensor unless an ImageFolder's images are
    larger than SMALL_MAX_SIDE."""
    if requested not in MODES:
        raise InputError(f"data_mode must be one of {', '.join(MODES)}; got {requested!r}")
    if requested == "loader" and dataset != "imagefolder":
        raise InputError(f"data_mode=loader is for imagefolder data; {dataset} is held as a "
                         "tensor (data_mode=tensor or auto)")
    if requested != "auto":
        return requested
    return "loader" if _large(dataset, data_dir) else "tensor"


def open_run_data(dataset: str, data_dir: str, download: bool, mode: str,
                  settings: DataSettings) -> RunData:
    if mode == "loader":
        from .loader import LoaderData

        return LoaderData(data_dir, settings)
    from .tensor import TensorData

    return TensorData(get_dataset(dataset).load(data_dir, download), settings)
