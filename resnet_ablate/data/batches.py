"""Training batches from a uint8 image tensor on the training device (after airbench).

One permutation per epoch, sliced into batches; pad, crop and flip act on the whole batch
tensor, with one seeded torch.Generator, so there is no per-image Python work, and the
state (permutation, position, generator) is a few tensors that checkpoint exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .sets import Split


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
            raise ValueError(f"batch_size {batch_size} exceeds the {len(split)} training images")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must divide evenly over {world_size} "
                             "processes")
        side = split.images.shape[-1]
        if crop > side + 2 * pad:
            raise ValueError(f"crop {crop} is larger than the padded image ({side} + 2 x {pad})")
        self.split, self.batch_size, self.mean = split, batch_size, mean
        self.pad, self.crop, self.flip = pad, crop, flip
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator(device=split.images.device).manual_seed(seed)
        self.epoch, self.position = 0, 0
        self.perm = self._draw()

    def _draw(self) -> Tensor:
        return torch.randperm(len(self.split), generator=self.generator,
                              device=self.split.images.device)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

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


def eval_batches(split: Split, batch_size: int, mean: Tensor, crop: int, rank: int = 0,
                 world_size: int = 1):
    """The single original view (centre crop if the protocol crops smaller), in order;
    with several processes each rank takes an interleaved share of the batches."""
    for i, start in enumerate(range(0, len(split), batch_size)):
        if i % world_size != rank:
            continue
        images = split.images[start:start + batch_size]
        yield centre_crop(normalise(images, mean), crop), split.labels[start:start + batch_size]
