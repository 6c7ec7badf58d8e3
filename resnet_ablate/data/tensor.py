"""Tensor mode: a small-image data set held whole as one uint8 tensor on the training device
(after airbench). One permutation per epoch, sliced into batches; pad, crop and flip act on
the whole batch tensor with one seeded torch.Generator, so there is no per-image Python work
and the state (permutation, position, generator) is a few tensors that checkpoint exactly.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DataSettings, Split, hold_out
from ..errors import InputError


@dataclass
class Images:
    """A small-image data set as loaded, before the validation hold-out."""
    name: str  # the catalog's: digits, cifar10, imagefolder, ...
    train: Split
    test: Split
    own_val: Split | None  # the data set's own val/ split, if it has one besides test/
    classes: list[str]


def fingerprint(images: Images) -> str:
    """The data set's content, exactly: a digest of its class names and every split's
    pixels and labels as decoded (hashed in place: about 0.3 s for CIFAR's 60k images). A
    copy elsewhere has the same; another set of the same size and layout does not."""
    h = hashlib.sha1("\n".join(images.classes).encode())
    sizes = []
    for name, split in (("train", images.train), ("val", images.own_val),
                        ("test", images.test)):
        if split is None:
            continue
        sizes.append(f"{name}={len(split)}")
        h.update(name.encode())
        h.update(split.images.contiguous().cpu().numpy())
        h.update(split.labels.contiguous().cpu().numpy())
    return f"{images.name}:{len(images.classes)}c:{','.join(sizes)}:{h.hexdigest()[:16]}"


def image_mean(images: Tensor, per_pixel: bool) -> Tensor:
    """The training set's mean image (C, H, W) in [0, 1], or its per-channel mean (C, 1, 1)."""
    mean = torch.zeros(images.shape[1:], dtype=torch.float64, device=images.device)
    for chunk in images.split(4096):
        mean += chunk.to(torch.float64).sum(0)
    mean /= len(images) * 255.0
    if not per_pixel:
        mean = mean.mean(dim=(1, 2), keepdim=True)
    return mean.to(torch.float32)


def normalise(images: Tensor, mean: Tensor) -> Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] minus the mean (the paper: mean subtraction
    only, no division by the std)."""
    return images.to(torch.float32).div_(255.0).sub_(mean)


def random_crop_flip(x: Tensor, pad: int, crop: int, flip: bool,
                     generator: torch.Generator) -> Tensor:
    """Pad each side with zeros (after mean subtraction, so a pad pixel is the mean pixel),
    take one random crop x crop window per image and mirror half the images, all at once."""
    n, c, h, w = x.shape
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    hp, wp = h + 2 * pad, w + 2 * pad
    if crop != hp or crop != wp:
        dy = torch.randint(0, hp - crop + 1, (n,), generator=generator, device=x.device)
        dx = torch.randint(0, wp - crop + 1, (n,), generator=generator, device=x.device)
        base = torch.arange(crop, device=x.device)
        rows = (dy[:, None] + base)[:, None, :, None]
        cols = (dx[:, None] + base)[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(c, device=x.device)[None, :, None, None]
        x = x[batch, chans, rows, cols]
    if flip:
        mirror = torch.rand(n, generator=generator, device=x.device) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    return x


def centre_crop(x: Tensor, crop: int) -> Tensor:
    h, w = x.shape[-2:]
    if crop >= h and crop >= w:
        return x
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[..., top:top + crop, left:left + crop]


class TensorBatches:
    """Endless augmented training batches of a Split held on the device.

    Each epoch is one permutation of the training set cut into full batches (the remainder,
    under one batch, waits for the next epoch's draw). With several processes every rank
    draws the same global batch and keeps its own slice, so the data a run sees does not
    depend on how many processes share it.
    """

    def __init__(self, split: Split, batch_size: int, mean: Tensor, pad: int, crop: int,
                 flip: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size > len(split):
            raise InputError(f"batch_size {batch_size} exceeds the {len(split)} training images")
        if batch_size % world_size:
            raise InputError(f"batch_size {batch_size} must divide evenly over {world_size} "
                             "processes")
        side = split.images.shape[-1]
        if crop > side + 2 * pad:
            raise InputError(f"crop {crop} is larger than the padded image ({side} + 2 x {pad})")
        self.split, self.batch_size, self.mean = split, batch_size, mean
        self.pad, self.crop, self.flip = pad, crop, flip
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator(device=split.images.device).manual_seed(seed)
        self.epoch, self.position = 0, 0
        self.perm = self._draw()

    def _draw(self) -> Tensor:
        return torch.randperm(len(self.split), generator=self.generator,
                              device=self.split.images.device)

    def next(self) -> tuple[Tensor, Tensor]:
        if self.position + self.batch_size > len(self.perm):
            self.epoch, self.position = self.epoch + 1, 0
            self.perm = self._draw()
        idx = self.perm[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        x = normalise(self.split.images[idx], self.mean)
        x = random_crop_flip(x, self.pad, self.crop, self.flip, self.generator)
        y = self.split.labels[idx]
        if self.world_size > 1:
            per = self.batch_size // self.world_size
            x, y = x[self.rank * per:(self.rank + 1) * per], y[self.rank * per:(self.rank + 1) * per]
        return x, y

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "perm": self.perm.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.perm = state["perm"].to(self.split.images.device)
        self.generator.set_state(state["generator"])


class TensorData:
    """RunData of a small-image set (digits, CIFAR, small ImageFolders)."""

    mode = "tensor"
    final_test_view = "single"  # small images have only their original view

    def __init__(self, images: Images, settings: DataSettings) -> None:
        p = settings.protocol
        self.settings = settings
        held = hold_out(len(images.train), p.val_size, p.split_seed, images.own_val is not None)
        train = images.train if held.train is None else images.train.subset(held.train)
        val = images.own_val if held.val is None else images.train.subset(held.val)
        self.splits = {"train": train.to(settings.device), "test": images.test.to(settings.device)}
        if val is not None:
            self.splits["val"] = val.to(settings.device)
        self.val_source = held.source
        self.fingerprint = fingerprint(images)
        self.num_classes = len(images.classes)
        self.in_chans = int(images.train.images.shape[1])
        self.input_size = p.crop
        # The mean of the training images only: held-out and test images never leak in.
        self.mean = image_mean(self.splits["train"].images, p.normalize == "per_pixel_mean")
        # The data stream has its own generator, seeded apart from the model's init.
        self.batches = TensorBatches(self.splits["train"], p.batch_size, self.mean, p.pad,
                                     p.crop, p.flip, seed=settings.seed + 1_000_003,
                                     rank=settings.rank, world_size=settings.world_size)

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}

    def next(self) -> tuple[Tensor, Tensor]:
        return self.batches.next()

    def has(self, split: str) -> bool:
        return split in self.splits

    def eval_batches(self, split: str, sharded: bool = True, view: str = "single",
                     indices: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """The single original view (centre crop if the protocol crops smaller), in order
        (of `indices`, if given: those images only); sharded over ranks (interleaved
        batches) unless told otherwise."""
        rank, world = (self.settings.rank, self.settings.world_size) if sharded else (0, 1)
        data, size = self.splits[split], self.settings.eval_batch_size
        if indices is not None:
            data = data.subset(indices.to(data.labels.device))
        for i, start in enumerate(range(0, len(data), size)):
            if i % world == rank:
                images = normalise(data.images[start:start + size], self.mean)
                yield centre_crop(images, self.input_size), data.labels[start:start + size]

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)
