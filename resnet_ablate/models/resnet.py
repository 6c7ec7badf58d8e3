"""One network class for every variant: the spec names its stem, block and shortcut, and the
stage builder puts them together, as torchvision's and timm's stage builders do.

The model speaks timm's model API (forward_features / forward_head / forward_intermediates,
feature_info, reset_classifier, global_pool, drop_rate, set_grad_checkpointing) and scripts
and traces (TorchScript, FX), so timm's own tools work on it. It takes the flags timm's
train.py passes to create_model: drop_rate, drop_path_rate (stochastic depth of the
residual branch, timm's DropPath), drop_block_rate (timm's DropBlock2d), global_pool (timm's
SelectAdaptivePool2d), bn_momentum and bn_eps. None of them is the paper's: they build the
module (no parameters, no spec field), so a run's weights load into any of them.

No postponed annotations here (`from __future__ import annotations`): FX copies forward()'s
annotations into the code it generates, and TorchScript cannot resolve them as strings.
"""
import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ..variants.parts import BLOCKS, SHORTCUTS, STEMS, Part
from ..variants.spec import VariantSpec

# What the builder hands to every part that accepts it (by parameter name).
NORM_LAYER = nn.BatchNorm2d
ACT_LAYER = nn.ReLU
# timm's pool types (SelectAdaptivePool2d); "avg" is ours (the same function, no timm import),
# "" leaves the features unpooled; the cat* types double the fc's input.
GLOBAL_POOLS = ("avg", "", "max", "avgmax", "catavgmax", "fast", "fastavg", "fastmax",
                "fastavgmax", "fastcatavgmax")
# timm's resnet puts DropBlock in its last two stages: (block size, gamma scale) of each.
DROP_BLOCK_STAGES = ((5, 0.25), (3, 1.0))


def call_part(part: Part, *args: Any, options: dict[str, Any], context: dict[str, Any]) -> Any:
    """make(*args, **options, **context): the context keys only where the part takes them
    (read from its signature once, at registration), so a user's part declares just what
    it needs. Its options were checked by the spec."""
    given = {k: v for k, v in context.items() if part.takes(k)}
    return part.make(*args, **options, **given)


class NormAct(nn.Module):
    """BN-ReLU before pooling in pre-activation nets (a module of its own, not a Sequential,
    so timm's feature extractors find it by name)."""

    def __init__(self, chans: int) -> None:
        super().__init__()
        self.bn = NORM_LAYER(chans)
        self.act = ACT_LAYER(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(x))


class GlobalAvgPool(nn.Module):
    """Global average pooling, flattened (SelectAdaptivePool2d("avg", flatten=True))."""

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def _pool(global_pool: str) -> tuple[nn.Module, int]:
    """The head's pooling module and how many times the features it outputs (2: cat)."""
    if global_pool not in GLOBAL_POOLS:
        raise InputError(f"global_pool must be one of {', '.join(map(repr, GLOBAL_POOLS))} "
                         f"('' = no pooling); got {global_pool!r}")
    if global_pool == "avg":
        return GlobalAvgPool(), 1
    if global_pool == "":
        return nn.Identity(), 1
    from timm.layers import SelectAdaptivePool2d

    pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
    return pool, pool.feat_mult()


def _rate(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise InputError(f"{name} must be in [0, 1); got {value!r}")
    return float(value)


class ResNet(nn.Module):
    """Plain, residual and pre-activation networks of He et al. (2015, 2016) and the
    ResNet-B/C/D tweaks of He et al. (2019).

    Layout: stem, stages (stages.0 ... stages.N-1, each a Sequential of blocks; the first
    block of stages 2..N strides 2), final_norm (BN-ReLU for pre-activation nets, whose
    units leave their output un-normalised; He et al. 2016, Fig. 4e), global average
    pooling (any input size works), dropout (drop_rate, 0 as the paper), fc to logits.

    timm's regularisers, all off as in the paper: drop_path_rate is stochastic depth
    (Huang et al. 2016): each unit's residual branch is dropped with a probability rising
    linearly from 0 at the first unit to drop_path_rate at the last (timm's rule); a plain
    net has no residual branch to drop, so it is refused. drop_block_rate: DropBlock in the
    last two stages, as timm's resnet. bn_momentum/bn_eps: every BatchNorm's.
    """

    def __init__(self, spec: VariantSpec, global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, drop_block_rate: float = 0.0,
                 bn_momentum: float | None = None, bn_eps: float | None = None,
                 *, skeleton: bool = False) -> None:
        """skeleton=True: at most two blocks per stage (the size count's stand-in for any
        depth, built on the meta device; models/counting.py)."""
        super().__init__()
        self.spec = spec
        self.num_classes = spec.num_classes
        self.drop_rate = _rate("drop_rate", drop_rate)
        drop_path_rate = _rate("drop_path_rate", drop_path_rate)
        drop_block_rate = _rate("drop_block_rate", drop_block_rate)
        self.grad_checkpointing = False
        block_part = BLOCKS.get(spec.block)
        block = block_part.make
        preact = bool(getattr(block, "preact", False))
        context = {"norm_layer": NORM_LAYER, "act_layer": ACT_LAYER}
        if drop_path_rate > 0 and spec.shortcut is None:
            raise InputError(f"drop_path_rate: stochastic depth drops residual branches and "
                             f"{spec.name} is a plain net (no shortcut, no branch to drop); "
                             "use drop_path_rate=0 or a residual variant")
        for rate, key in ((drop_path_rate, "drop_path"), (drop_block_rate, "drop_block")):
            if rate > 0 and not block_part.takes(key):
                raise InputError(f"{key}_rate: block {spec.block!r} takes no {key} argument "
                                 f"(it would have to apply it itself); use {key}_rate=0")
        total, index = sum(spec.layers), 0
        stem_part = STEMS.get(spec.stem)
        self.stem = call_part(stem_part, spec.in_chans, spec.stem_width,
                              options=spec.stem_options, context=context)
        in_chans = spec.stem_width
        reduction = stem_part.meta.get("reduction", 1)
        self.feature_info = [dict(num_chs=in_chans, reduction=reduction, module="stem")]
        stem_normalized = bool(getattr(self.stem, "normalized", False))
        shortcut_part = SHORTCUTS.get(spec.shortcut) if spec.shortcut else None
        stages = []
        for i, (planes, count) in enumerate(zip(spec.widths, spec.layers)):
            count = min(count, 2) if skeleton else count
            units = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                out_chans = planes * block.expansion
                shortcut = None
                if shortcut_part is not None:
                    shortcut = call_part(
                        shortcut_part, in_chans, out_chans, stride,
                        options=spec.shortcut_options,
                        context={"norm_layer": None if preact else NORM_LAYER}) or nn.Identity()
                unit_context = dict(context, stride_in=spec.stride_in)
                unit_context.update(_regularisers(i, len(spec.layers), index, total,
                                                  drop_path_rate, drop_block_rate))
                index += 1
                if preact:  # fb.resnet.torch preresnet.lua: both_preact / no_preact / branch
                    unit_context["preact_input"] = (
                        "branch" if j > 0 else "none" if (i == 0 and stem_normalized)
                        else "both")
                units.append(call_part(block_part, in_chans, planes, stride, shortcut,
                                       options=spec.options, context=unit_context))
                in_chans = out_chans
            if i > 0:
                reduction *= 2
            stages.append(nn.Sequential(*units))
            self.feature_info.append(dict(num_chs=in_chans, reduction=reduction,
                                          module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = in_chans
        self.final_norm = NormAct(in_chans) if preact else nn.Identity()
        if preact:
            self.feature_info[-1]["module"] = "final_norm"
        self.global_pool = global_pool
        self.head_pool, self.pool_mult = _pool(global_pool)
        self.fc = self._classifier(spec.num_classes)
        self._init_weights()
        _set_batchnorm(self, bn_momentum, bn_eps)

    def _classifier(self, num_classes: int) -> nn.Module:
        width = self.num_features * self.pool_mult
        return nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        if any(p.is_meta for p in self.parameters()):
            return  # a size count on the meta device (models/counting.py): nothing to set
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                # He et al. (2015b) "MSRA" init; fan_out as torchvision and fb.resnet.torch.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.zero_init_residual:
            for b in self.blocks():
                if not hasattr(b, "branch_end"):
                    raise InputError(f"zero_init_residual: block {self.spec.block!r} has no "
                                     "branch_end() to zero")
                nn.init.zeros_(b.branch_end().weight)

    # ------------------------------------------------------------------ structure
    def blocks(self) -> list[nn.Module]:
        return [b for stage in self.stages for b in stage]

    def response_modules(self) -> list[str]:
        """Qualified names of the modules whose outputs are Fig. 7's layer responses, in
        depth order: each 3x3 layer after BN, before addition and ReLU."""
        names = []
        conv1 = getattr(self.stem, "conv1", None)
        if isinstance(conv1, nn.Conv2d) and conv1.kernel_size == (3, 3):  # CIFAR's stem
            bn1 = getattr(self.stem, "bn1", None)
            names.append("stem.bn1" if isinstance(bn1, nn.BatchNorm2d) else "stem.conv1")
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                sub = block.response_modules() if hasattr(block, "response_modules") else []
                names += [f"stages.{s}.{b}.{m}" for m in sub]
        return names

    # ------------------------------------------------------------------ forward
    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = self._checkpointed_stages(x)
        else:
            x = self.stages(x)
        return self.final_norm(x)

    @torch.jit.ignore
    def _checkpointed_stages(self, x: Tensor) -> Tensor:
        """Activations recomputed block by block in the backward pass (less memory)."""
        from torch.utils.checkpoint import checkpoint

        for block in self.blocks():
            x = checkpoint(block, x, use_reentrant=False)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (no softmax) of shape (batch, num_classes)."""
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def forward_intermediates(self, x: Tensor, indices: int | list[int] | None = None,
                              norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's feature API: the outputs of the feature_info levels (stem, stage 1, ...)
        picked by `indices` (the last n levels if an int, all if None), and the final
        features unless intermediates_only."""
        if output_fmt != "NCHW":
            raise InputError("output_fmt must be NCHW")
        take = _take_indices(len(self.feature_info), indices)
        intermediates = []
        x = self.stem(x)
        if 0 in take:
            intermediates.append(x)
        last = len(self.stages)
        for i, stage in enumerate(self.stages, start=1):
            if stop_early and i > max(take):
                break
            x = stage(x)
            if i in take:
                intermediates.append(self.final_norm(x) if i == last else x)
        if intermediates_only:
            return intermediates
        if not (stop_early and max(take) < last):
            x = self.final_norm(x)
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        take = _take_indices(len(self.feature_info), indices)
        keep = max(take)
        self.stages = nn.Sequential(*list(self.stages)[:max(keep, 1)])
        if prune_norm:
            self.final_norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return sorted(take)

    # ------------------------------------------------------------------ timm's interface
    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new head: num_classes=0 makes the model a feature extractor; global_pool=''
        leaves the features unpooled."""
        if global_pool is not None:
            self.head_pool, self.pool_mult = _pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        import dataclasses

        self.spec = dataclasses.replace(self.spec, num_classes=max(num_classes, 1))
        self.fc = self._classifier(num_classes)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)" if coarse else
                r"^stages\.(\d+)\.(\d+)"}


def _take_indices(levels: int, indices: int | list[int] | None) -> list[int]:
    if indices is None:
        return list(range(levels))
    if isinstance(indices, int):
        if not 0 < indices <= levels:
            raise InputError(f"indices must be in 1..{levels}; got {indices}")
        return list(range(levels - indices, levels))
    take = [i if i >= 0 else levels + i for i in indices]
    if not all(0 <= i < levels for i in take):
        raise InputError(f"indices must be in 0..{levels - 1}; got {list(indices)}")
    return take


def _regularisers(stage: int, stages: int, index: int, total: int, drop_path_rate: float,
                  drop_block_rate: float) -> dict[str, Any]:
    """The unit's drop_path module (timm's linear rule over all units) and drop_block
    factory (the last two stages), only where a rate asks for them."""
    out: dict[str, Any] = {}
    rate = drop_path_rate * index / max(total - 1, 1)
    if rate > 0:
        from timm.layers import DropPath

        out["drop_path"] = DropPath(rate)
    from_end = stages - 1 - stage
    if drop_block_rate > 0 and from_end < len(DROP_BLOCK_STAGES):
        from timm.layers import DropBlock2d

        size, gamma = DROP_BLOCK_STAGES[::-1][from_end]
        out["drop_block"] = functools.partial(DropBlock2d, drop_prob=drop_block_rate,
                                              block_size=size, gamma_scale=gamma)
    return out


def _set_batchnorm(model: nn.Module, momentum: float | None, eps: float | None) -> None:
    """timm's bn_momentum/bn_eps on every BatchNorm (the parts' own ones included)."""
    if momentum is not None and not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
        raise InputError(f"bn_momentum must be in (0, 1]; got {momentum!r}")
    if eps is not None and not (isinstance(eps, (int, float)) and eps > 0):
        raise InputError(f"bn_eps must be a positive number; got {eps!r}")
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                m.momentum = float(momentum)
            if eps is not None:
                m.eps = float(eps)


# Keyword arguments of create_model that build the module rather than change the spec: timm's
# train.py flags. Not spec fields (not factors of a run's condition): the harness trains the
# paper's nets, which have none of them, and they add no parameters (a run's model.pt loads
# into a model built with any of them).
MODULE_KWARGS = ("global_pool", "drop_rate", "drop_path_rate", "drop_block_rate",
                 "bn_momentum", "bn_eps")


def create_model(name: str | VariantSpec, **overrides: Any) -> ResNet:
    """Build a variant by name (or from a spec), with validated overrides such as
    num_classes (0: no classifier), in_chans, layers, widths, shortcut, stride_in,
    zero_init_residual, and timm's module flags (MODULE_KWARGS)."""
    from ..variants.registry import get_spec

    spec = name if isinstance(name, VariantSpec) else get_spec(name)
    module_kwargs = {k: overrides.pop(k) for k in MODULE_KWARGS if k in overrides}
    headless = overrides.get("num_classes") == 0  # timm's feature extractor: no classifier
    if headless:
        del overrides["num_classes"]
    model = ResNet(spec.with_overrides(**overrides), **module_kwargs)
    if headless:
        model.reset_classifier(0)
    return model
