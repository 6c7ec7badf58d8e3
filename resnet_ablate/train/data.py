"""The data side of a run: training batches, evaluation views, and their checkpoint state.

Two implementations share this interface: TensorData (small images, whole set on the
device) and, for large ImageFolder trees, LoaderData (resnet_ablate.data.loader).
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ..data.batches import TensorBatches, eval_batches, image_mean
from ..data.sets import ImageData
from ..protocol import Protocol
from .distributed import Dist


class TensorData:
    mode = "tensor"
    final_test_view = "single"  # small images have only their original view

    def __init__(self, data: ImageData, protocol: Protocol, device: torch.device, seed: int,
                 dist: Dist, eval_batch_size: int) -> None:
        self.data = data
        self.protocol = protocol
        self.dist = dist
        self.eval_batch_size = eval_batch_size
        self.splits = {"train": data.train.to(device), "test": data.test.to(device)}
        if data.val is not None:
            self.splits["val"] = data.val.to(device)
        per_pixel = protocol.normalize == "per_pixel_mean"
        self.mean = image_mean(self.splits["train"].images, per_pixel)
        # The data stream has its own generator, seeded apart from the model's init.
        self.batches = TensorBatches(self.splits["train"], protocol.batch_size, self.mean,
                                     protocol.pad, protocol.crop, protocol.flip,
                                     seed=seed + 1_000_003, rank=dist.rank,
                                     world_size=dist.world_size)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def in_chans(self) -> int:
        return self.data.in_chans

    @property
    def input_size(self) -> int:
        return self.protocol.crop

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}

    @property
    def val_source(self) -> str:
        return self.data.val_source

    def next(self) -> tuple[Tensor, Tensor]:
        return self.batches.next()

    def has(self, split: str) -> bool:
        return split in self.splits

    def eval_batches(self, split: str, sharded: bool = True,
                     view: str = "single") -> Iterator[tuple[Tensor, Tensor]]:
        """The single original view of a split (small images have no other); sharded over
        ranks unless told otherwise."""
        rank, world = (self.dist.rank, self.dist.world_size) if sharded else (0, 1)
        return eval_batches(self.splits[split], self.eval_batch_size, self.mean,
                            self.protocol.crop, rank, world)

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)
