"""Training protocols as frozen, named presets; any field can be overridden as key=value.

Every number of the paper's protocols lives here, with where it comes from, so that depth
and shortcut are the only things that differ between the runs of a study.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from .overrides import field_types, parse_value, unknown_key_error


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
    # "step": lr x lr_gamma at each milestone (iterations); "plateau": x lr_gamma when the
    # validation error has not improved for plateau_patience evaluations.
    lr_schedule: Literal["step", "plateau"] = "step"
    milestones: tuple[int, ...] = (32_000, 48_000)
    lr_gamma: float = 0.1
    plateau_patience: int = 5
    # Section 4.2, ResNet-110: lr warmup_lr until training error < warmup_until_train_err
    # (at most warmup_max_iterations), then lr. Applies to nets of warmup_min_depth layers
    # and deeper; 0 switches it off.
    warmup_lr: float = 0.01
    warmup_until_train_err: float = 0.8
    warmup_max_iterations: int = 400
    warmup_min_depth: int = 110
    # Data: val_size images held out of the training set for model selection (0: use the
    # data set's own held-out split); the split is drawn with split_seed, not the run seed.
    val_size: int = 5000
    split_seed: int = 0
    # Augmentation of small images, on the batch tensor: pad zeros, random crop, flip.
    pad: int = 4
    crop: int = 32
    flip: bool = True
    # "per_pixel_mean": subtract the training set's mean image (the paper).
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
        positive = ("batch_size", "iterations", "crop", "eval_every", "plateau_patience")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer; got {getattr(self, key)}")
        for key in ("lr", "warmup_lr"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0; got {getattr(self, key)}")
        for key in ("momentum", "weight_decay", "pad", "val_size", "warmup_max_iterations",
                    "warmup_min_depth"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0; got {getattr(self, key)}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1]; got {self.lr_gamma}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
                m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be increasing positive iterations; "
                             f"got {list(self.milestones)}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be [min, max] with 0 < min <= max; "
                             f"got {list(self.scale_range)}")

    def warmup_applies(self, depth: int) -> bool:
        return (self.lr_schedule == "step" and self.warmup_min_depth > 0
                and depth >= self.warmup_min_depth and self.warmup_max_iterations > 0)

    def fields(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


# Section 4.2 of He et al. (2015), to the letter: 45k/5k split, batch 128, lr 0.1 / 10 at
# 32k and 48k, stop at 64k (about 182 epochs); pad 4 + crop 32 + flip; per-pixel mean.
HE2015_CIFAR = Protocol(name="he2015-cifar")

# Section 3.4: scale augmentation [256, 480], 224 crop, flip, PCA colour, batch 256, lr 0.1
# / 10 on plateau, up to 60e4 iterations, wd 1e-4, momentum 0.9, 10-crop test. ImageNet's
# own validation set is the held-out split (val_size=0). A "plateau" is not defined in the
# paper; 5 evaluations of 5k iterations without improvement is our reading.
HE2015_IMAGENET = Protocol(
    name="he2015-imagenet", batch_size=256, iterations=600_000, lr_schedule="plateau",
    milestones=(), plateau_patience=5, warmup_min_depth=0, val_size=0, pad=0, crop=224,
    scale_range=(256, 480), color_pca=True, test_view="10crop", eval_every=5000)

# A short schedule for scikit-learn's 8x8 digits that shows the degradation problem on a
# CPU in minutes: the paper's optimiser and step schedule, scaled down. Digits are not
# flipped (a mirrored digit is another symbol); pad 1 px for an 8 px image.
DEMO = Protocol(
    name="demo", batch_size=128, iterations=1200, milestones=(800, 1000), val_size=180,
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
