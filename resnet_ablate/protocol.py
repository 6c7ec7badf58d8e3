"""Training protocols as frozen, named presets; any field can be overridden as key=value.

Every number of the paper's protocols lives here, with the sentence it comes from, so that
depth and shortcut are the only things that differ between the runs of a study. Every
field is validated (finite, in range) before a run directory exists.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .overrides import field_types, parse_value, unknown_key_error
from .errors import InputError

# Bounds past which a value is a typo, not an experiment (and would hang or exhaust memory).
MAX_ITERATIONS = 1_000_000_000
MAX_BATCH = 65_536
MAX_SIDE = 4096


@dataclass(frozen=True)
class Protocol:
    name: str
    # Optimisation (SGD with momentum; weight decay on every parameter, as the paper states).
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    iterations: int = 64_000
    # "step": lr x lr_gamma at each milestone (iterations); "plateau": lr x lr_gamma at the
    # plateau_patience-th evaluation in a row without a lower validation error.
    lr_schedule: Literal["step", "plateau"] = "step"
    milestones: tuple[int, ...] = (32_000, 48_000)
    lr_gamma: float = 0.1
    plateau_patience: int = 5
    # Section 4.2, ResNet-110: "we use 0.01 to warm up the training until the training error
    # is below 80% (about 400 iterations), and then go back to 0.1". A condition, not a
    # cap: warmup_max_iterations=0 (default) has no cap; N > 0 is a safety cap, and a run
    # that hits it says so (warmup_capped in its summary). Applies to nets of
    # warmup_min_depth layers and deeper; 0 switches the warm-up off.
    warmup_lr: float = 0.01
    warmup_until_train_err: float = 0.8
    warmup_max_iterations: int = 0
    warmup_min_depth: int = 110
    # Data: val_size training images held out for validation, drawn with split_seed (not
    # the run seed); 0 holds out none (then the data set's own val/ split, if any).
    val_size: int = 5000
    split_seed: int = 0
    # Augmentation of small images, on the batch tensor: pad zeros, random crop, flip.
    pad: int = 4
    crop: int = 32
    flip: bool = True
    # "per_pixel_mean": subtract the training set's mean image (the paper, Section 4.2);
    # "per_channel_mean": its mean colour (what the large-image loader can do).
    normalize: Literal["per_pixel_mean", "per_channel_mean"] = "per_pixel_mean"
    # Large images (ImageNet, Section 3.4): shorter side random in scale_range, random crop,
    # flip, AlexNet PCA colour augmentation.
    scale_range: tuple[int, ...] = (256, 480)
    color_pca: bool = False
    # Test view: "single" = the original image; "center" = resize 256, centre 224 crop;
    # "10crop" = the 4 corners and centre of that, and their flips (AlexNet).
    test_view: Literal["single", "center", "10crop"] = "single"
    # Evaluate validation and test error every eval_every iterations and at the end.
    eval_every: int = 1000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"{f.name} must be a finite number; got {value}")
        _range("batch_size", self.batch_size, 1, MAX_BATCH)
        _range("iterations", self.iterations, 1, MAX_ITERATIONS)
        _range("crop", self.crop, 1, MAX_SIDE)
        _range("pad", self.pad, 0, MAX_SIDE)
        _range("eval_every", self.eval_every, 1, MAX_ITERATIONS)
        _range("plateau_patience", self.plateau_patience, 1, MAX_ITERATIONS)
        _range("warmup_max_iterations", self.warmup_max_iterations, 0, MAX_ITERATIONS)
        _range("warmup_min_depth", self.warmup_min_depth, 0, MAX_ITERATIONS)
        _range("val_size", self.val_size, 0, 10 ** 9)
        _range("split_seed", self.split_seed, 0, 2 ** 63 - 1)
        for key in ("lr", "warmup_lr"):
            if not getattr(self, key) > 0:
                raise InputError(f"{key} must be > 0; got {getattr(self, key)}")
        if not 0 <= self.momentum < 1:
            raise InputError(f"momentum must be in [0, 1); got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise InputError("nesterov needs momentum > 0")
        if not self.weight_decay >= 0:
            raise InputError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise InputError(f"lr_gamma must be in (0, 1]; got {self.lr_gamma}")
        if not 0 < self.warmup_until_train_err <= 1:
            raise InputError(f"warmup_until_train_err is a fraction in (0, 1]; got "
                             f"{self.warmup_until_train_err}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
                not 1 <= m <= MAX_ITERATIONS for m in self.milestones):
            raise InputError(f"milestones must be increasing positive iterations; "
                             f"got {list(self.milestones)}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1] \
                <= MAX_SIDE:
            raise InputError(f"scale_range must be [min, max] with 0 < min <= max <= "
                             f"{MAX_SIDE}; got {list(self.scale_range)}")

    def warmup_applies(self, depth: int) -> bool:
        return (self.lr_schedule == "step" and self.warmup_min_depth > 0
                and depth >= self.warmup_min_depth)

    def fields(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


# One line per field, for `train --help` (a test checks that every field has one).
PROTOCOL_HELP = {
    "batch_size": "images per SGD step (the global batch, over all processes)",
    "lr": "learning rate",
    "momentum": "SGD momentum, in [0, 1)",
    "weight_decay": "L2 weight decay on every parameter",
    "nesterov": "Nesterov momentum (not the paper's)",
    "iterations": "SGD steps in all (the paper counts iterations, not epochs)",
    "lr_schedule": "step (divide at milestones) or plateau (divide when validation stalls)",
    "milestones": "iterations at which the step schedule multiplies lr by lr_gamma",
    "lr_gamma": "the factor at each milestone or plateau",
    "plateau_patience": "evaluations in a row without a lower validation error before a cut",
    "warmup_lr": "lr during the warm-up (Section 4.2, 110 layers and deeper)",
    "warmup_until_train_err": "the warm-up lasts until the training error is below this",
    "warmup_max_iterations": "a safety cap on the warm-up (0: none, as the paper)",
    "warmup_min_depth": "nets this deep and deeper warm up (0: never)",
    "val_size": "training images held out for validation (0: the data set's own val/)",
    "split_seed": "seed of the validation hold-out (fixed across runs)",
    "pad": "zero pixels padded on each side before the random crop",
    "crop": "training crop side (and the centre crop of evaluation)",
    "flip": "random horizontal flips",
    "normalize": "per_pixel_mean (the paper) or per_channel_mean",
    "scale_range": "ImageNet: the shorter side is resized to a random value in [min, max]",
    "color_pca": "ImageNet: AlexNet's PCA colour augmentation",
    "test_view": "single (the image), center (256 -> 224 crop) or 10crop",
    "eval_every": "iterations between evaluations (and the interval the final training "
                  "error is averaged over)",
}


def _range(key: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise InputError(f"{key} must be an integer in [{lo:,}, {hi:,}]; got {value:,}")


# Section 4.2 of He et al. (2015), to the letter: "We use a weight decay of 0.0001 and
# momentum of 0.9 ... mini-batch size of 128 ... We start with a learning rate of 0.1,
# divide it by 10 at 32k and 48k iterations, and terminate training at 64k iterations,
# which is determined on a 45k/5k train/val split"; "4 pixels are padded on each side, and
# a 32x32 crop is randomly sampled from the padded image or its horizontal flip"; "the
# per-pixel mean subtracted". Runs train on the 45k of that split (val_size=5000), where
# the schedule was chosen and model selection is honest; val_size=0 trains on all 50k, as
# the paper's reported models probably did (it does not say); the summary records which.
HE2015_CIFAR = Protocol(name="he2015-cifar")

# Section 3.4: "The image is resized with its shorter side randomly sampled in [256, 480]
# for scale augmentation. A 224x224 crop is randomly sampled from an image or its
# horizontal flip, with the per-pixel mean subtracted ... standard color augmentation ...
# mini-batch size of 256. The learning rate starts from 0.1 and is divided by 10 when the
# error plateaus, and the models are trained for up to 60 x 10^4 iterations. We use a
# weight decay of 0.0001 and a momentum of 0.9." Testing: "the standard 10-crop testing".
# Departures, named: the plateau is read on 10,000 training images held out (val_size;
# the paper does not say which split, and ImageNet's val/ is the reported test split
# here); "plateau" = 5 evaluations of 5,000 iterations without a lower validation error;
# the mean is per channel (normalize), as random-scale crops have no pixel grid.
HE2015_IMAGENET = Protocol(
    name="he2015-imagenet", batch_size=256, iterations=600_000, lr_schedule="plateau",
    milestones=(), plateau_patience=5, warmup_min_depth=0, val_size=10_000, pad=0, crop=224,
    normalize="per_channel_mean", scale_range=(256, 480), color_pca=True, test_view="10crop",
    eval_every=5000)

# A short schedule for scikit-learn's 8x8 digits that shows the degradation problem on a
# CPU in minutes: the paper's optimiser and step schedule scaled to 1,200 iterations, its
# milestones at the paper's proportions (32k/64k = 1/2, 48k/64k = 3/4). Digits are not
# flipped (a mirrored digit is another symbol); pad 1 px for an 8 px image.
DEMO = Protocol(
    name="demo", batch_size=128, iterations=1200, milestones=(600, 900), val_size=180,
    pad=1, crop=8, flip=False, eval_every=100)

PROTOCOLS = {p.name: p for p in (HE2015_CIFAR, HE2015_IMAGENET, DEMO)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise unknown_key_error(name, list(PROTOCOLS), "protocol")
    return PROTOCOLS[name]


def protocol_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(Protocol) if f.name != "name"]


def apply_overrides(protocol: Protocol, words: dict[str, str]) -> Protocol:
    """Parse and apply `key=value` overrides (strings) to a protocol, validated."""
    types_ = field_types(Protocol)
    changes = {}
    for key, text in words.items():
        if key not in types_ or key == "name":
            raise unknown_key_error(key, protocol_keys(), "protocol field")
        changes[key] = parse_value(key, text, types_[key])
    return dataclasses.replace(protocol, **changes)
