"""Shortcuts: options A/B/C of He et al. (2015), Section 3.3; the shortcut ablations of He et
al. (2016), "Identity Mappings in Deep Residual Networks", Table 1 / Fig. 2; and ResNet-D's
average-pool downsampling (He et al. 2019, "Bag of Tricks", Section 4.1).

Each is a registered factory `make(in_chans, out_chans, stride, **options)` returning the
shortcut module, or None for the identity. The stage builder passes `norm_layer` (None for
pre-activation units, whose projections take an already normalised input).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ..variants.parts import register_shortcut


def _reshapes(in_chans: int, out_chans: int, stride: int) -> bool:
    return stride != 1 or in_chans != out_chans


class ZeroPadShortcut(nn.Module):
    """Option A: identity; where dimensions increase, stride-2 subsampling and zero channels.

    A module, not a lambda, so models pickle and `state_dict`s round-trip; no parameters.
    The extra channels are appended after the identity channels (the paper does not say
    where; at He initialisation the choice is symmetric).
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        if out_chans < in_chans:
            raise InputError(f"option A cannot reduce channels ({in_chans} -> {out_chans})")
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.out_chans > self.in_chans:
            x = F.pad(x, [0, 0, 0, 0, 0, self.out_chans - self.in_chans])
        return x

    def extra_repr(self) -> str:
        return f"{self.in_chans}, {self.out_chans}, stride={self.stride}"


def projection(in_chans: int, out_chans: int, stride: int, norm_layer=nn.BatchNorm2d,
               pool: bool = False) -> nn.Sequential:
    """1x1 conv (+ norm). pool=True: ResNet-D's 2x2 average pool does the striding, so the
    1x1 conv sees every input pixel (timm's `avg_down`)."""
    layers: list[nn.Module] = []
    if pool and stride != 1:
        layers.append(nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False))
        stride = 1
    layers.append(nn.Conv2d(in_chans, out_chans, kernel_size=1, stride=stride, bias=False))
    if norm_layer is not None:
        layers.append(norm_layer(out_chans))
    return nn.Sequential(*layers)


@register_shortcut("A")
def option_a(in_chans: int, out_chans: int, stride: int, norm_layer=None) -> nn.Module | None:
    """Parameter-free: identity, zero-padded and subsampled where the shape changes."""
    return ZeroPadShortcut(in_chans, out_chans, stride) if _reshapes(in_chans, out_chans,
                                                                      stride) else None


@register_shortcut("B")
def option_b(in_chans: int, out_chans: int, stride: int, norm_layer=nn.BatchNorm2d
             ) -> nn.Module | None:
    """Projection where the shape changes, identity elsewhere."""
    if not _reshapes(in_chans, out_chans, stride):
        return None
    return projection(in_chans, out_chans, stride, norm_layer)


@register_shortcut("C")
def option_c(in_chans: int, out_chans: int, stride: int, norm_layer=nn.BatchNorm2d
             ) -> nn.Module:
    """Projection on every shortcut (also He et al. 2016's "1x1 conv shortcut", Fig. 2e)."""
    return projection(in_chans, out_chans, stride, norm_layer)


@register_shortcut("avgdown")
def avg_down(in_chans: int, out_chans: int, stride: int, norm_layer=nn.BatchNorm2d
             ) -> nn.Module | None:
    """ResNet-D (He et al. 2019, Fig. 2c): where the shape changes, 2x2 average pool with
    stride 2, then 1x1 conv and BN; identity elsewhere."""
    if not _reshapes(in_chans, out_chans, stride):
        return None
    return projection(in_chans, out_chans, stride, norm_layer, pool=True)


class Scale(nn.Module):
    """Multiply by a constant (He et al. 2016, Fig. 2b: "constant scaling")."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"{self.scale}"


class ShortcutDropout(nn.Module):
    """He et al. (2016), Fig. 2f, dropout on the shortcut: "statistically imposes a scale of
    lambda with an expectation of 0.5 on the shortcut", so this is dropout without the 1/(1-p)
    rescaling: training keeps each unit with probability 1-p, evaluation scales by 1-p."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise InputError(f"dropout p must be in [0, 1); got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        keep = 1.0 - self.p
        if self.training:
            return x * torch.bernoulli(torch.full_like(x, keep))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _then(first: nn.Module | None, second: nn.Module) -> nn.Module:
    return second if first is None else nn.Sequential(first, second)


@register_shortcut("scaled")
def scaled(in_chans: int, out_chans: int, stride: int, scale: float = 0.5,
           norm_layer=None) -> nn.Module:
    """Option A's identity times a constant (He et al. 2016, Table 1, "constant scaling")."""
    return _then(option_a(in_chans, out_chans, stride), Scale(scale))


@register_shortcut("dropout")
def dropout(in_chans: int, out_chans: int, stride: int, p: float = 0.5,
            norm_layer=None) -> nn.Module:
    """Option A's identity through dropout (He et al. 2016, Table 1, "dropout shortcut")."""
    return _then(option_a(in_chans, out_chans, stride), ShortcutDropout(p))
