"""What the trainer sees of a data set (RunData), the plain values it is built from, and the
one validation hold-out policy both image modes share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol as TypingProtocol

import torch
from torch import Tensor

from ..errors import InputError


@dataclass
class Split:
    images: Tensor  # (N, C, H, W) uint8
    labels: Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, idx: Tensor) -> "Split":
        return Split(self.images[idx], self.labels[idx])


class Augmentation(TypingProtocol):
    """What the data side reads of a training protocol (resnet_ablate.run.protocol.Protocol
    is one): the split, the batch, the augmentation and the test view."""
    batch_size: int
    val_size: int
    split_seed: int
    pad: int
    crop: int
    flip: bool
    normalize: str
    scale_range: tuple[int, ...]
    color_pca: bool
    test_view: str


@dataclass(frozen=True)
class DataSettings:
    """Plain values a RunData is built from (never the whole run config)."""
    protocol: Augmentation
    device: torch.device
    seed: int
    rank: int = 0
    world_size: int = 1
    eval_batch_size: int = 1000
    num_workers: int = 4


class RunData(TypingProtocol):
    """The data side of a run, in either image mode: `tensor` (small images held whole on
    the device, augmented per batch) or `loader` (DataLoader workers, large images)."""

    mode: str
    num_classes: int
    in_chans: int
    input_size: int
    sizes: dict[str, int]  # split name -> images
    val_source: str  # where the validation split came from, recorded with the run
    fingerprint: str  # the data set's content: its part of the run's condition
    final_test_view: str  # single | center | 10crop

    def next(self) -> tuple[Tensor, Tensor]: ...  # the next training batch (this rank's)

    def has(self, split: str) -> bool: ...

    def eval_batches(self, split: str, sharded: bool = True, view: str = "single",
                     indices: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]: ...
    # indices: only these images of the split, in this order (a seeded subset)

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(frozen=True)
class HoldOut:
    train: Tensor | None  # indices of the training images kept for training (None: all)
    val: Tensor | None  # indices of the training images held out (None: none held out)
    source: str  # which split validates, in words; "none" when there is none


NO_VAL = "none: no held-out split (val_size=0 and the data set has none of its own)"


def hold_out(n_train: int, val_size: int, split_seed: int, own_val: bool) -> HoldOut:
    """The validation split: `val_size` training images held out with `split_seed` (the
    paper's 45k/5k), else the data set's own val/ split, else none. It is never the test
    split: model selection and the plateau schedule must not see the reported numbers."""
    if val_size > 0:
        if val_size >= n_train:
            raise InputError(f"val_size must be in [0, {n_train - 1}] for a training set of "
                             f"{n_train} images; got {val_size}")
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(split_seed))
        return HoldOut(perm[val_size:].sort().values, perm[:val_size].sort().values,
                       f"{val_size} training images held out (split_seed={split_seed})")
    if own_val:
        return HoldOut(None, None, "the data set's own val/ split")
    return HoldOut(None, None, NO_VAL)
