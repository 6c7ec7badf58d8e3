"""Residual units: the original ones of He et al. (2015), Fig. 2 and Fig. 5, and the variants
He et al. (2016), "Identity Mappings in Deep Residual Networks", ablate (Fig. 2 / Table 1:
gating and scaling; Fig. 4 / Table 2: where BN and ReLU sit).

Each block is called as `Block(in_chans, planes, stride, shortcut, **options)`. The stage
builder makes the shortcut module (None in a plain net, so the block adds nothing) and
passes the norm and activation layers. Attribute names follow torchvision (conv1, bn1, ...,
downsample = the shortcut, whatever its option). timm's regularisers reach them as timm's
resnet blocks take them: `drop_path` (a module applied to the residual branch before the
addition: stochastic depth) and `drop_block` (a DropBlock factory, after the 3x3 conv's BN).
"""
import torch
from torch import Tensor, nn

from ..errors import InputError
from ..variants.parts import register_block
from .layers import conv1x1, conv3x3

POST_ORDERS = ("original", "bn_after_add", "relu_before_add")
PRE_ORDERS = ("full", "relu_only")
GATES = ("none", "exclusive", "shortcut")
PREACT_INPUTS = ("both", "branch", "none")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"block option {name} must be one of {', '.join(allowed)}; "
                         f"got {value!r}")
    return value


class _DropBlock(nn.Module):
    """timm's DropBlock where a rate asks for it (`drop_block`, set by the unit), else
    nothing: the paper's nets keep their graphs."""

    def _drop_block(self, x: Tensor) -> Tensor:
        return x if self.drop_block is None else self.drop_block(x)


def _strides(stride: int, stride_in: str) -> tuple[int, int]:
    """Where a bottleneck downsamples: the paper strides its first 1x1 ("v1"), torchvision
    its 3x3 ("v1.5", ResNet-B of He et al. 2019)."""
    return (stride, 1) if stride_in == "1x1" else (1, stride)


class _PostActivation(_DropBlock):
    """The original unit (He et al. 2015, Fig. 2): BN after each conv, the shortcut added to
    the last BN's output, then ReLU; with He et al. (2016)'s ablations as options:

    order: "original" (Fig. 4a) | "bn_after_add" (Fig. 4b: BN moves after the addition) |
           "relu_before_add" (Fig. 4c: the branch ends in ReLU; nothing after the addition)
    gate:  "none" | "exclusive" (Fig. 2c: g(x) F(x) + (1 - g(x)) x) |
           "shortcut" (Fig. 2d: F(x) + (1 - g(x)) x), g(x) = sigmoid(1x1 conv(x) + b_g),
           b_g initialised to gate_bias
    branch_scale: constant scaling of F (Fig. 2b; the shortcut's scale is the "scaled"
           shortcut)
    """

    def _setup_merge(self, in_chans: int, out_chans: int, stride: int,
                     shortcut: nn.Module | None, order: str, gate: str, gate_bias: float,
                     branch_scale: float, norm_layer, act_layer,
                     drop_path: nn.Module | None) -> None:
        self.order = _choice("order", order, POST_ORDERS)
        self.drop_path = drop_path
        _choice("gate", gate, GATES)
        self.downsample = shortcut
        self.act = act_layer(inplace=True)
        self.bn_post = norm_layer(out_chans) if order == "bn_after_add" else None
        self.gate = None
        self.gate_branch = gate == "exclusive"
        if gate != "none":
            if shortcut is None:
                raise InputError("a gate needs a shortcut to gate; plain nets have none")
            self.gate = nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=True)
            nn.init.constant_(self.gate.bias, float(gate_bias))
        self.branch_scale = float(branch_scale)

    def _merge(self, out: Tensor, x: Tensor) -> Tensor:
        if self.order == "relu_before_add":
            out = self.act(out)
        if self.downsample is not None:
            short = self.downsample(x)
            if self.gate is not None:
                g = torch.sigmoid(self.gate(x))
                short = short * (1.0 - g)
                if self.gate_branch:
                    out = out * g
            if self.branch_scale != 1.0:
                out = out * self.branch_scale
            if self.drop_path is not None:
                out = self.drop_path(out)
            out = out + short
        if self.bn_post is not None:
            out = self.bn_post(out)
        if self.order != "relu_before_add":
            out = self.act(out)
        return out


@register_block("basic")
class BasicBlock(_PostActivation):
    """Two 3x3 convs (Fig. 2 right of He et al. 2015)."""

    expansion = 1
    weighted_layers = 2
    preact = False

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: nn.Module | None,
                 order: str = "original", gate: str = "none", gate_bias: float = 0.0,
                 branch_scale: float = 1.0, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU,
                 drop_path: nn.Module | None = None, drop_block=None) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn1 = norm_layer(planes)
        self.drop_block = drop_block() if drop_block is not None else None
        self.relu = act_layer(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes) if order != "bn_after_add" else nn.Identity()
        self._setup_merge(in_chans, planes, stride, shortcut, order, gate, gate_bias,
                          branch_scale, norm_layer, act_layer, drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self._drop_block(self.bn1(self.conv1(x))))
        return self._merge(self.bn2(self.conv2(out)), x)

    def branch_end(self) -> nn.Module:
        """The last layer of the residual branch (what zero_init_residual zeroes)."""
        return self.conv2 if self.order == "bn_after_add" else self.bn2

    def response_modules(self) -> list[str]:
        """Fig. 7: each 3x3 layer's output after BN, before addition and ReLU."""
        return ["bn1", "conv2" if self.order == "bn_after_add" else "bn2"]


@register_block("bottleneck")
class Bottleneck(_PostActivation):
    """1x1 reduce, 3x3, 1x1 restore (x4) (Fig. 5 right of He et al. 2015)."""

    expansion = 4
    weighted_layers = 3
    preact = False

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: nn.Module | None,
                 order: str = "original", gate: str = "none", gate_bias: float = 0.0,
                 branch_scale: float = 1.0, stride_in: str = "1x1", norm_layer=nn.BatchNorm2d,
                 act_layer=nn.ReLU, drop_path: nn.Module | None = None, drop_block=None
                 ) -> None:
        super().__init__()
        out_chans = planes * self.expansion
        s1, s3 = _strides(stride, stride_in)
        self.conv1 = conv1x1(in_chans, planes, s1)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = norm_layer(planes)
        self.drop_block = drop_block() if drop_block is not None else None
        self.conv3 = conv1x1(planes, out_chans)
        self.bn3 = norm_layer(out_chans) if order != "bn_after_add" else nn.Identity()
        self.relu = act_layer(inplace=True)
        self._setup_merge(in_chans, out_chans, stride, shortcut, order, gate, gate_bias,
                          branch_scale, norm_layer, act_layer, drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self._drop_block(self.bn2(self.conv2(out))))
        return self._merge(self.bn3(self.conv3(out)), x)

    def branch_end(self) -> nn.Module:
        """The last layer of the residual branch (what zero_init_residual zeroes)."""
        return self.conv3 if self.order == "bn_after_add" else self.bn3

    def response_modules(self) -> list[str]:
        return ["bn2"]


class _PreActivation(_DropBlock):
    """He et al. (2016) pre-activation: nothing after the addition.

    order: "full" (Fig. 4e: BN-ReLU before each conv) | "relu_only" (Fig. 4d: ReLU before
           each conv, BN after it).
    Where the unit's pre-activation goes follows the authors' code (fb.resnet.torch
    preresnet.lua): the first unit of a stage pre-activates once for both the branch and the
    shortcut ("both_preact"); later units pre-activate the branch only, the shortcut takes
    the raw input; the first unit after a stem that already ends in BN-ReLU (ImageNet's)
    does not normalise again ("no_preact"). The stage builder says which (`preact_input`).
    """

    def _setup_preact(self, in_chans: int, shortcut: nn.Module | None, order: str,
                      preact_input: str, norm_layer, act_layer, drop_path: nn.Module | None,
                      drop_block) -> None:
        self.order = _choice("order", order, PRE_ORDERS)
        self.drop_path = drop_path
        self.drop_block = drop_block() if drop_block is not None else None
        self.preact_input = _choice("preact_input", preact_input, PREACT_INPUTS)
        self.downsample = shortcut
        if preact_input == "none":
            self.pre_norm: nn.Module = nn.Identity()
            self.pre_act: nn.Module = nn.Identity()
        else:
            self.pre_norm = norm_layer(in_chans) if order == "full" else nn.Identity()
            # not in place: with "relu_only" it acts on x itself, which the shortcut needs
            self.pre_act = act_layer(inplace=False)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(branch input, shortcut input)."""
        pre = self.pre_act(self.pre_norm(x))
        return pre, (pre if self.preact_input == "both" else x)

    def _add(self, out: Tensor, short_in: Tensor) -> Tensor:
        if self.downsample is None:
            return out
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + self.downsample(short_in)


@register_block("preact_basic")
class PreActBasicBlock(_PreActivation):
    """Two 3x3 convs, each after BN-ReLU (full pre-activation)."""

    expansion = 1
    weighted_layers = 2
    preact = True

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: nn.Module | None,
                 order: str = "full", preact_input: str = "branch", norm_layer=nn.BatchNorm2d,
                 act_layer=nn.ReLU, drop_path: nn.Module | None = None, drop_block=None
                 ) -> None:
        super().__init__()
        self._setup_preact(in_chans, shortcut, order, preact_input, norm_layer, act_layer,
                           drop_path, drop_block)
        full = order == "full"
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = act_layer(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.Identity() if full else norm_layer(planes)

    def forward(self, x: Tensor) -> Tensor:
        branch, short = self._split(x)
        if self.order == "full":  # BN-ReLU-conv, BN-ReLU-conv
            out = self.conv2(self.relu(self._drop_block(self.bn1(self.conv1(branch)))))
        else:  # ReLU-conv-BN, ReLU-conv-BN
            out = self.bn2(self.conv2(self.relu(self._drop_block(self.bn1(self.conv1(branch))))))
        return self._add(out, short)

    def branch_end(self) -> nn.Module:
        """The last layer of the residual branch (what zero_init_residual zeroes)."""
        return self.conv2 if self.order == "full" else self.bn2

    def response_modules(self) -> list[str]:
        """Fig. 7 for pre-activation: no BN follows a conv in "full" order, so the response
        is each 3x3 conv's output."""
        return ["conv1", "conv2"] if self.order == "full" else ["bn1", "bn2"]


@register_block("preact_bottleneck")
class PreActBottleneck(_PreActivation):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (x4)."""

    expansion = 4
    weighted_layers = 3
    preact = True

    def __init__(self, in_chans: int, planes: int, stride: int, shortcut: nn.Module | None,
                 order: str = "full", preact_input: str = "branch", stride_in: str = "1x1",
                 norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU,
                 drop_path: nn.Module | None = None, drop_block=None) -> None:
        super().__init__()
        self._setup_preact(in_chans, shortcut, order, preact_input, norm_layer, act_layer,
                           drop_path, drop_block)
        out_chans = planes * self.expansion
        s1, s3 = _strides(stride, stride_in)
        self.conv1 = conv1x1(in_chans, planes, s1)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, out_chans)
        self.bn3 = nn.Identity() if order == "full" else norm_layer(out_chans)
        self.relu = act_layer(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        branch, short = self._split(x)
        if self.order == "full":
            out = self.conv2(self.relu(self.bn1(self.conv1(branch))))
            out = self.conv3(self.relu(self._drop_block(self.bn2(out))))
        else:
            out = self.relu(self.bn1(self.conv1(branch)))
            out = self.relu(self._drop_block(self.bn2(self.conv2(out))))
            out = self.bn3(self.conv3(out))
        return self._add(out, short)

    def branch_end(self) -> nn.Module:
        """The last layer of the residual branch (what zero_init_residual zeroes)."""
        return self.conv3 if self.order == "full" else self.bn3

    def response_modules(self) -> list[str]:
        return ["conv2"] if self.order == "full" else ["bn2"]
