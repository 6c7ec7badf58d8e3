"""Training protocols as frozen, named presets; any field can be overridden as key=value.

Every number of the papers' protocols lives here, with the sentence it comes from, so that
depth and shortcut are the only things that differ between the runs of a study. Each field
states its meaning once (`train --help` prints it) and is validated (type, finite, in
range) before a run directory exists.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError, unknown
from .words import field_types, parse_value

# Bounds past which a value is a typo, not an experiment (and would hang, exhaust memory or
# overflow float32, the optimiser's arithmetic).
MAX_ITERATIONS = 1_000_000_000
MAX_BATCH = 65_536
MAX_SIDE = 4096
MAX_LR = 1e6
MAX_WEIGHT_DECAY = 10.0


def _f(default: Any, help: str) -> Any:
    """A protocol field: its default and its one line of help."""
    kwargs = {"default_factory": lambda: default} if isinstance(default, list) else {
        "default": default}
    return field(metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class Protocol:
    name: str = field(metadata={"help": "the preset's name"})
    # Optimisation (SGD with momentum; weight decay on every parameter, as the paper states).
    batch_size: int = _f(128, "images per SGD step (the global batch, over all processes)")
    lr: float = _f(0.1, f"learning rate, in (0, {MAX_LR:g}]")
    momentum: float = _f(0.9, "SGD momentum, in [0, 1)")
    weight_decay: float = _f(1e-4, f"L2 weight decay on every parameter, in [0, "
                                   f"{MAX_WEIGHT_DECAY:g}]")
    nesterov: bool = _f(False, "Nesterov momentum (not the paper's)")
    iterations: int = _f(64_000, "SGD steps in all (the paper counts iterations, not epochs)")
    # "step": lr x lr_gamma at each milestone (iterations); "plateau": lr x lr_gamma at the
    # plateau_patience-th evaluation in a row without a lower validation error.
    lr_schedule: Literal["step", "plateau"] = _f(
        "step", "step (divide at milestones) or plateau (divide when validation stalls)")
    milestones: tuple[int, ...] = _f((32_000, 48_000), "iterations at which the step "
                                     "schedule multiplies lr by lr_gamma")
    lr_gamma: float = _f(0.1, "the factor at each milestone or plateau, in (0, 1]")
    plateau_patience: int = _f(5, "evaluations in a row without a lower validation error "
                                  "before a cut")
    # He et al. (2015), Section 4.2, ResNet-110: "we use 0.01 to warm up the training until
    # the training error is below 80% (about 400 iterations), and then go back to 0.1". A
    # condition, not a cap: warmup_max_iterations=0 (default) has no cap; N > 0 is a
    # safety cap, and a run that hits it says so (warmup_capped in its summary).
    # warmup_iterations > 0 is a fixed length instead (He et al. 2016).
    warmup_lr: float = _f(0.01, "lr during the warm-up")
    warmup_until_train_err: float = _f(0.8, "the warm-up lasts until the training error "
                                            "(a fraction) is below this")
    # The paper does not say how it read "the training error": the mean error of the last
    # warmup_window mini-batches (one mini-batch of 128 is too noisy to decide on).
    warmup_window: int = _f(10, "mini-batches the warm-up's training error is averaged over")
    warmup_max_iterations: int = _f(0, "a safety cap on the warm-up (0: none, as the paper)")
    warmup_iterations: int = _f(0, "a warm-up of exactly this many iterations, whatever the "
                                   "error (0: until the error condition holds)")
    warmup_min_depth: int = _f(110, "nets this deep and deeper warm up (0: never)")
    # Data: val_size training images held out for validation, drawn with split_seed (not
    # the run seed); 0 holds out none (then the data set's own val/ split, if any).
    val_size: int = _f(0, "training images held out for validation (0: none; then the data "
                          "set's own val/, if any)")
    split_seed: int = _f(0, "seed of the validation hold-out (fixed across runs)")
    # Augmentation of small images, on the batch tensor: pad zeros, random crop, flip.
    pad: int = _f(4, "zero pixels padded on each side before the random crop")
    crop: int = _f(32, "training crop side (and the centre crop of evaluation)")
    flip: bool = _f(True, "random horizontal flips")
    normalize: Literal["per_pixel_mean", "per_channel_mean"] = _f(
        "per_pixel_mean", "per_pixel_mean (the paper) or per_channel_mean")
    # Large images (ImageNet, Section 3.4): shorter side random in scale_range, random crop,
    # flip, AlexNet PCA colour augmentation.
    scale_range: tuple[int, ...] = _f((256, 480), "ImageNet: the shorter side is resized to "
                                      "a random value in [min, max]")
    color_pca: bool = _f(False, "ImageNet: AlexNet's PCA colour augmentation")
    test_view: Literal["single", "center", "10crop"] = _f(
        "single", "single (the image), center (256 -> 224 crop) or 10crop")
    eval_every: int = _f(1000, "iterations between evaluations (and the interval the final "
                               "training error is averaged over)")
    # Batch normalisation's batch. He et al. (2015), Section 4.2: "a mini-batch size of 128
    # on two GPUs", so each BN saw 64 images; ImageNet's 256 on 8 GPUs saw 32 (Goyal et al.
    # 2017, Section 5.1, of that reference setup). A process whose batch is larger computes
    # BN over groups of bn_batch images of it (ghost batch norm), its running statistics
    # following the first group, as DDP's broadcast of rank 0's buffers makes them follow
    # rank 0's share (resnet_ablate.train.ghost).
    bn_batch: int = _f(64, "images each batch normalisation computes its statistics over "
                           "(the paper's per-GPU batch); 0: a process's whole batch")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"{f.name} must be a finite number; got {value}")
        for key, lo, hi in (("batch_size", 1, MAX_BATCH), ("iterations", 1, MAX_ITERATIONS),
                            ("crop", 1, MAX_SIDE), ("pad", 0, MAX_SIDE),
                            ("eval_every", 1, MAX_ITERATIONS), ("bn_batch", 0, MAX_BATCH),
                            ("plateau_patience", 1, MAX_ITERATIONS),
                            ("warmup_window", 1, 100_000),
                            ("warmup_max_iterations", 0, MAX_ITERATIONS),
                            ("warmup_iterations", 0, MAX_ITERATIONS),
                            ("warmup_min_depth", 0, MAX_ITERATIONS), ("val_size", 0, 10 ** 9),
                            ("split_seed", 0, 2 ** 63 - 1)):
            _range(key, getattr(self, key), lo, hi)
        for key in ("lr", "warmup_lr"):
            if not 0 < getattr(self, key) <= MAX_LR:
                raise InputError(f"{key} must be in (0, {MAX_LR:g}]; got {getattr(self, key)}")
        if not 0 <= self.momentum < 1:
            raise InputError(f"momentum must be in [0, 1); got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise InputError("nesterov needs momentum > 0")
        if not 0 <= self.weight_decay <= MAX_WEIGHT_DECAY:
            raise InputError(f"weight_decay must be in [0, {MAX_WEIGHT_DECAY:g}]; got "
                             f"{self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise InputError(f"lr_gamma must be in (0, 1]; got {self.lr_gamma}")
        if not 0 < self.warmup_until_train_err <= 1:
            raise InputError(f"warmup_until_train_err is a fraction in (0, 1]; got "
                             f"{self.warmup_until_train_err}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
                not 1 <= m <= MAX_ITERATIONS for m in self.milestones):
            raise InputError(f"milestones must be increasing positive iterations; "
                             f"got {list(self.milestones)}")
        if 0 < self.bn_batch < self.batch_size and self.batch_size % self.bn_batch:
            raise InputError(f"batch_size {self.batch_size} does not split into BN batches of "
                             f"bn_batch={self.bn_batch}: set bn_batch to a divisor of it, or 0 "
                             "(BN over the whole batch)")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1] \
                <= MAX_SIDE:
            raise InputError(f"scale_range must be [min, max] with 0 < min <= max <= "
                             f"{MAX_SIDE}; got {list(self.scale_range)}")

    def warmup_applies(self, depth: int) -> bool:
        return (self.lr_schedule == "step" and self.warmup_min_depth > 0
                and depth >= self.warmup_min_depth)

    def milestones_beyond_end(self) -> list[int]:
        """Milestones the schedule never reaches (an `iterations=` cut short without them)."""
        return [m for m in self.milestones if m >= self.iterations] \
            if self.lr_schedule == "step" else []

    def bn_images(self, world_size: int = 1) -> int:
        """The images each BN normalises over in a process of `world_size`: bn_batch where
        the process's batch (batch_size / world_size) is larger (it must split into them),
        else that whole batch."""
        per_process = self.batch_size // world_size
        if 0 < self.bn_batch < per_process and per_process % self.bn_batch:
            raise InputError(f"a process's batch of {per_process} ({self.batch_size} over "
                             f"{world_size} processes) does not split into BN batches of "
                             f"bn_batch={self.bn_batch}: set bn_batch to a divisor of it, or 0")
        return self.bn_batch if 0 < self.bn_batch < per_process else per_process

    def schedule_warnings(self) -> list[str]:
        """One line per thing the schedule never does (milestones at or past the end)."""
        beyond = self.milestones_beyond_end()
        if not beyond:
            return []
        many = len(beyond) > 1
        return [f"milestone{'s' if many else ''} {', '.join(map(str, beyond))} "
                f"{'are' if many else 'is'} at or beyond the last iteration "
                f"({self.iterations}): the step schedule never divides the lr there"]

    def fields(self) -> dict[str, Any]:
        """Every field but the name, plain-typed (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items() if k != "name"}


def _range(key: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise InputError(f"{key} must be an integer in [{lo:,}, {hi:,}]; got {value:,}")


# Section 4.2 of He et al. (2015), to the letter: "We use a weight decay of 0.0001 and
# momentum of 0.9 ... mini-batch size of 128 ... We start with a learning rate of 0.1,
# divide it by 10 at 32k and 48k iterations, and terminate training at 64k iterations,
# which is determined on a 45k/5k train/val split"; "4 pixels are padded on each side, and
# a 32x32 crop is randomly sampled from the padded image or its horizontal flip"; "the
# per-pixel mean subtracted". The reported models are "trained on the training set and
# evaluated on the test set": all 50k images (val_size=0); val_size=5000 gives the 45k/5k
# split where the schedule was determined. "These models are trained with a mini-batch size
# of 128 on two GPUs": BN over 64 images (bn_batch, the dataclass's default).
HE2015_CIFAR = Protocol(name="he2015-cifar")

# He et al. (2016), "Identity Mappings", appendix: the 2015 protocol, and "for all CIFAR
# experiments we warm up the training by using a smaller learning rate of 0.01 at the
# beginning 400 iterations and go back to 0.1 after that": a fixed 400 iterations, for
# every depth, not the 2015 error condition.
HE2016_CIFAR = Protocol(name="he2016-cifar", warmup_iterations=400, warmup_min_depth=1)

# Section 3.4: "The image is resized with its shorter side randomly sampled in [256, 480]
# for scale augmentation. A 224x224 crop is randomly sampled from an image or its
# horizontal flip, with the per-pixel mean subtracted ... standard color augmentation ...
# mini-batch size of 256. The learning rate starts from 0.1 and is divided by 10 when the
# error plateaus, and the models are trained for up to 60 x 10^4 iterations. We use a
# weight decay of 0.0001 and a momentum of 0.9." Testing: "the standard 10-crop testing".
# Departures, named: the plateau is read on 10,000 training images held out (val_size;
# the paper does not say which split, and ImageNet's val/ is the reported test split
# here); "plateau" = 5 evaluations of 5,000 iterations without a lower validation error;
# the mean is per channel (normalize), as random-scale crops have no pixel grid. BN over 32
# images: 256 on 8 GPUs (bn_batch).
HE2015_IMAGENET = Protocol(
    name="he2015-imagenet", batch_size=256, iterations=600_000, lr_schedule="plateau",
    milestones=(), plateau_patience=5, warmup_min_depth=0, val_size=10_000, pad=0, crop=224,
    normalize="per_channel_mean", scale_range=(256, 480), color_pca=True, test_view="10crop",
    eval_every=5000, bn_batch=32)

# A short schedule for scikit-learn's 8x8 digits that shows the degradation problem on a
# CPU in minutes: the paper's optimiser and step schedule scaled to 1,200 iterations, its
# milestones at the paper's proportions (32k/64k = 1/2, 48k/64k = 3/4). Digits are not
# flipped (a mirrored digit is another symbol); pad 1 px for an 8 px image; 180 training
# images held out for the validation curves; BN over the whole batch of 128 (bn_batch=0: the
# demo is not the paper's setting, and its numbers stay those measured before ghost BN).
DEMO = Protocol(
    name="demo", batch_size=128, iterations=1200, milestones=(600, 900), val_size=180,
    pad=1, crop=8, flip=False, eval_every=100, bn_batch=0)

PROTOCOLS = {p.name: p for p in (HE2015_CIFAR, HE2016_CIFAR, HE2015_IMAGENET, DEMO)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise unknown("protocol", name, PROTOCOLS)
    return PROTOCOLS[name]


def protocol_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(Protocol) if f.name != "name"]


def protocol_help() -> dict[str, str]:
    return {f.name: f.metadata["help"] for f in dataclasses.fields(Protocol)}


def apply_overrides(protocol: Protocol, words: dict[str, str]) -> Protocol:
    """Parse and apply `key=value` overrides (strings) to a protocol, validated."""
    types_ = field_types(Protocol)
    changes = {}
    for key, text in words.items():
        if key not in types_ or key == "name":
            raise unknown("protocol field", key, protocol_keys())
        changes[key] = parse_value(key, text, types_[key])
    return dataclasses.replace(protocol, **changes)
