"""Residual and plain building blocks (Fig. 2 and Fig. 5) and pre-activation units.

One class per block shape; `shortcut=None` gives the plain block with the same layers.
Attribute names follow torchvision (conv1, bn1, ..., downsample) so state_dicts interchange;
`downsample` holds the shortcut of Section 3.3 whatever its option.
"""
from __future__ import annotations

from torch import Tensor, nn

from .shortcuts import make_shortcut


def conv3x3(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False)


class _PostActivation(nn.Module):
    """The original unit (Fig. 2): BN after each conv; the shortcut is added to the last
    BN's output, then ReLU. A plain unit (shortcut=None) skips the addition."""

    residual: bool
    downsample: nn.Module | None
    relu: nn.ReLU

    def _merge(self, out: Tensor, x: Tensor) -> Tensor:
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class BasicBlock(_PostActivation):
    """Two 3x3 convs, BN after each conv and before ReLU; ReLU after the addition."""

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: str | None,
                 stride_in: str = "1x1") -> None:
        super().__init__()
        self.residual = shortcut is not None
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_chans, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self._merge(self.bn2(self.conv2(out)), x)

    def last_norm(self) -> nn.Module:
        return self.bn2

    def response_modules(self) -> list[str]:
        """Fig. 7: outputs of each 3x3 layer after BN, before addition and ReLU."""
        return ["bn1", "bn2"]


class Bottleneck(_PostActivation):
    """1x1 reduce, 3x3, 1x1 restore (x4). The paper strides in the first 1x1 ("v1");
    stride_in="3x3" strides in the 3x3 as torchvision does ("v1.5")."""

    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: str | None,
                 stride_in: str = "1x1") -> None:
        super().__init__()
        out_chans = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        self.residual = shortcut is not None
        self.conv1 = conv1x1(in_chans, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_chans)
        self.bn3 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_chans, out_chans, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self._merge(self.bn3(self.conv3(out)), x)

    def last_norm(self) -> nn.Module:
        return self.bn3

    def response_modules(self) -> list[str]:
        return ["bn2"]


class _PreActivation(nn.Module):
    """He et al. (2016) full pre-activation: nothing after the addition. A projection
    shortcut takes the pre-activated input, an identity one the raw input (as in the
    authors' code), so the projection needs no BN of its own."""

    downsample: nn.Module | None

    def _identity(self, x: Tensor, pre: Tensor) -> Tensor:
        if self.downsample is None:
            return x
        return self.downsample(pre if isinstance(self.downsample, nn.Sequential) else x)


class PreActBasicBlock(_PreActivation):
    """BN-ReLU-conv3x3 twice."""

    expansion = 1

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: str,
                 stride_in: str = "1x1") -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)  # acts on BN outputs only; x stays intact
        self.downsample = make_shortcut(shortcut, in_chans, planes, stride, norm=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        return out + self._identity(x, pre)

    def last_norm(self) -> nn.Module:
        return self.conv2  # no BN ends a pre-activation branch: zero its last conv instead

    def response_modules(self) -> list[str]:
        """Pre-activation has no BN after a conv: the response is the 3x3 conv's output."""
        return ["conv1", "conv2"]


class PreActBottleneck(_PreActivation):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4)."""

    expansion = 4

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: str,
                 stride_in: str = "1x1") -> None:
        super().__init__()
        out_chans = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.conv1 = conv1x1(in_chans, planes, s1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_chans, out_chans, stride, norm=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + self._identity(x, pre)

    def last_norm(self) -> nn.Module:
        return self.conv3

    def response_modules(self) -> list[str]:
        return ["conv2"]


def block_class(block: str, preact: bool) -> type[nn.Module]:
    return {("basic", False): BasicBlock, ("bottleneck", False): Bottleneck,
            ("basic", True): PreActBasicBlock, ("bottleneck", True): PreActBottleneck}[
        (block, preact)]
