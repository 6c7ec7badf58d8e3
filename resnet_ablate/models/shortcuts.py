"""Shortcut options of Section 3.3: A (zero-padding identity), B and C (projections)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ZeroPadShortcut(nn.Module):
    """Option A: identity; where dimensions increase, stride-2 subsampling and zero channels.

    A module, not a lambda, so models pickle and `state_dict`s round-trip; no parameters.
    The extra channels are appended after the identity channels (the paper does not say
    where; at He initialisation the choice is symmetric).
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        if out_chans < in_chans:
            raise ValueError(f"option A cannot reduce channels ({in_chans} -> {out_chans})")
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.out_chans > self.in_chans:
            x = F.pad(x, (0, 0, 0, 0, 0, self.out_chans - self.in_chans))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_chans}, {self.out_chans}, stride={self.stride}"


def make_shortcut(option: str | None, in_chans: int, out_chans: int, stride: int,
                  norm: bool = True) -> nn.Module | None:
    """The shortcut module of one block, or None for a plain identity (or a plain net).

    A: parameter-free everywhere. B: projection only where the shape changes.
    C: projection on every shortcut. `norm=False` for pre-activation units, whose
    projection takes the already normalised input (He et al. 2016).
    """
    if option is None:
        return None
    reshapes = stride != 1 or in_chans != out_chans
    if option == "A" or (option == "B" and not reshapes):
        return ZeroPadShortcut(in_chans, out_chans, stride) if reshapes else None
    conv = nn.Conv2d(in_chans, out_chans, kernel_size=1, stride=stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_chans)) if norm else nn.Sequential(conv)
