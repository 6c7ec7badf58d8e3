"""Ghost batch norm: the paper's BN batch in one process.

He et al. (2015), Section 4.2, trained CIFAR with "a mini-batch size of 128 on two GPUs":
each BN normalised 64 images, and the gradient was the mean of the two GPUs'. One process
with the whole batch would normalise over 128: another model. `GhostBatch` wraps a network
so that a training forward runs it on consecutive groups of `group` images (each BN's
statistics are its group's) and returns their outputs concatenated. One loss over them, the
mean over the batch, is DDP's mean of the per-replica means when the groups are equal, so
outputs and gradients are those of len(x) / group replicas given the same groups; it works
for every block, a plugin's included, as it needs nothing of them.

Running statistics: DDP with broadcast_buffers (its default, and ours) broadcasts rank 0's
buffers to every rank at each forward, so the running statistics follow rank 0's share of
each batch and the other ranks' updates are dropped. The same here: every buffer as the first
group's forward left it is kept, and restored after the other groups' (tests/
test_train_ghost.py checks all three against two real DDP processes).
"""
from __future__ import annotations

import torch
from torch import nn


class GhostBatch(nn.Module):
    def __init__(self, module: nn.Module, group: int) -> None:
        super().__init__()
        if group < 1:
            raise ValueError(f"group must be a positive number of images; got {group}")
        self.module, self.group = module, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.module.training or len(x) <= self.group:
            return self.module(x)
        groups = x.split(self.group)
        outputs = [self.module(groups[0])]
        buffers = list(self.module.buffers())
        kept = [b.detach().clone() for b in buffers]  # the first replica's (rank 0's)
        outputs += [self.module(g) for g in groups[1:]]
        # Restored through .data: the groups' BN ops keep these tensors for a backward that
        # does not read them in training mode, and an in-place copy's version bump would
        # fail that backward ("modified by an inplace operation").
        for buffer, value in zip(buffers, kept):
            buffer.data.copy_(value)
        return torch.cat(outputs)
