"""One network class for every variant: the spec's factors pick stem, block and shortcut."""
from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from ..spec import VariantSpec
from .blocks import block_class, conv3x3


class ResNet(nn.Module):
    """Plain, residual and pre-activation networks of He et al. (2015, 2016).

    CIFAR stem: 3x3 conv, 16 (Section 4.2). ImageNet stem: 7x7 conv, 64, stride 2, then
    3x3 max pool, stride 2 (Table 1). Stages double the width and halve the resolution
    from the second on; global average pooling, so any input size works; fc to logits.
    """

    def __init__(self, spec: VariantSpec) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = spec.num_classes
        block = block_class(spec.block, spec.preact)
        stem = spec.stem_width
        if spec.stem == "cifar":
            self.conv1 = conv3x3(spec.in_chans, stem)
        else:
            self.conv1 = nn.Conv2d(spec.in_chans, stem, 7, stride=2, padding=3, bias=False)
        # Pre-activation nets normalise at the start of each unit; the CIFAR stem then has
        # no BN of its own, while the ImageNet stem keeps BN-ReLU before its max pool.
        stem_norm = not (spec.preact and spec.stem == "cifar")
        self.bn1 = nn.BatchNorm2d(stem) if stem_norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True) if stem_norm else nn.Identity()
        self.maxpool = (nn.MaxPool2d(3, stride=2, padding=1) if spec.stem == "imagenet"
                        else nn.Identity())
        in_chans = stem
        for i, (planes, blocks) in enumerate(zip(spec.widths, spec.layers)):
            stride = 1 if i == 0 else 2
            units = []
            for j in range(blocks):
                units.append(block(in_chans, planes, stride if j == 0 else 1, spec.shortcut,
                                   stride_in=spec.stride_in))
                in_chans = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*units))
        self.num_features = in_chans
        # Pre-activation nets end with BN-ReLU before pooling (He et al. 2016, Fig. 4e).
        self.final_norm = (nn.Sequential(nn.BatchNorm2d(in_chans), nn.ReLU(inplace=True))
                           if spec.preact else nn.Identity())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chans, spec.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He et al. (2015b) "MSRA" init; fan_out as torchvision and fb.resnet.torch.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.zero_init_residual:
            for block in self.blocks():
                nn.init.zeros_(block.last_norm().weight)

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.spec.layers))]

    def blocks(self) -> list[nn.Module]:
        return [b for stage in self.stages for b in stage]

    def response_modules(self) -> list[str]:
        """Qualified names of the modules whose outputs are the Fig. 7 layer responses,
        in depth order: each 3x3 layer after BN, before addition and ReLU."""
        names = ["bn1"] if self.spec.stem == "cifar" and not self.spec.preact else []
        if self.spec.stem == "cifar" and self.spec.preact:
            names.append("conv1")
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                names += [f"layer{s + 1}.{b}.{m}" for m in block.response_modules()]
        return names

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return self.final_norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (no softmax) of shape (batch, num_classes)."""
        return self.forward_head(self.forward_features(x))

    # timm's classifier interface, so timm utilities work on these models.
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.spec = dataclasses.replace(self.spec, num_classes=num_classes)
        self.fc = nn.Linear(self.num_features, num_classes)
