"""State dicts to and from torchvision's ResNet layout (conv1/bn1/layerK/fc), whose keys
differ from ours (stem.conv1, stem.bn1, stages.K-1) only by name: resnetD-B with
stride_in="3x3" is torchvision's resnetD, weight for weight."""
from __future__ import annotations

import re

import torch

_TO_OURS = [(re.compile(r"^(conv1|bn1)\."), r"stem.\1."),
            (re.compile(r"^layer(\d+)\."), lambda m: f"stages.{int(m.group(1)) - 1}.")]
_TO_TV = [(re.compile(r"^stem\.(conv1|bn1)\."), r"\1."),
          (re.compile(r"^stages\.(\d+)\."), lambda m: f"layer{int(m.group(1)) + 1}.")]


def _rename(state_dict: dict[str, torch.Tensor], rules) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        for pattern, repl in rules:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


def from_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision.models.resnetD().state_dict() -> our keys."""
    return _rename(state_dict, _TO_OURS)


def to_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> torchvision's keys."""
    return _rename(state_dict, _TO_TV)
