"""Stems: what comes before the first stage. Registered factories `make(in_chans, out_chans,
**options) -> nn.Module`; a stem module may set `normalized = True` to say that its output
is already batch-normalised and activated (the first pre-activation unit then does not do
it again, as fb.resnet.torch's preresnet.lua)."""
from torch import Tensor, nn

from ..variants.parts import register_stem
from .layers import conv3x3


class Stem(nn.Module):
    """conv1 -> bn1 -> relu -> maxpool, any of the last three absent (an identity), as
    torchvision and timm lay out theirs. `normalized`: the output is already BN-ReLU'd."""

    def __init__(self, conv1: nn.Module, bn1: nn.Module | None = None,
                 relu: nn.Module | None = None, maxpool: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn1 or nn.Identity()
        self.relu = relu or nn.Identity()
        self.maxpool = maxpool or nn.Identity()
        self.normalized = bn1 is not None and relu is not None

    def forward(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


@register_stem("cifar", input_size=32, reduction=1, width=16)
def cifar(in_chans: int, out_chans: int, norm: bool = True, norm_layer=nn.BatchNorm2d,
          act_layer=nn.ReLU) -> Stem:
    """Section 4.2: "The first layer is 3x3 convolutions", 16 filters. norm=False for the
    pre-activation nets, whose first unit normalises (He et al. 2016; fb.resnet.torch's
    preresnet.lua has no BN on the CIFAR stem)."""
    if not norm:
        return Stem(conv3x3(in_chans, out_chans))
    return Stem(conv3x3(in_chans, out_chans), norm_layer(out_chans), act_layer(inplace=True))


@register_stem("imagenet", input_size=224, reduction=4, width=64)
def imagenet(in_chans: int, out_chans: int, norm_layer=nn.BatchNorm2d,
             act_layer=nn.ReLU) -> Stem:
    """Table 1: 7x7 conv, 64, stride 2, then 3x3 max pool, stride 2."""
    return Stem(nn.Conv2d(in_chans, out_chans, 7, stride=2, padding=3, bias=False),
                norm_layer(out_chans), act_layer(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1))


@register_stem("deep", input_size=224, reduction=4, width=64)
def deep(in_chans: int, out_chans: int, width: int = 32, norm_layer=nn.BatchNorm2d,
         act_layer=nn.ReLU) -> Stem:
    """ResNet-C of He et al. (2019), "Bag of Tricks", Fig. 2b: the 7x7 conv replaced by three
    3x3 convs (width, width, out_chans; the first strides 2), then the 3x3 max pool. Layer
    order as timm's `stem_type="deep"`, so its weights copy over in order."""
    convs = nn.Sequential(conv3x3(in_chans, width, 2), norm_layer(width), act_layer(inplace=True),
                          conv3x3(width, width), norm_layer(width), act_layer(inplace=True),
                          conv3x3(width, out_chans))
    return Stem(convs, norm_layer(out_chans), act_layer(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1))
