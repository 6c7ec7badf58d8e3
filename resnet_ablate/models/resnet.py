"""One network class for every variant: the spec names its stem, block and shortcut, and the
stage builder puts them together, as torchvision's and timm's stage builders do.

The model speaks timm's model API (forward_features / forward_head / forward_intermediates,
feature_info, reset_classifier, global_pool, drop_rate, set_grad_checkpointing) and scripts
and traces (TorchScript, FX), so timm's own tools work on it.
"""
from __future__ import annotations

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
GLOBAL_POOLS = ("avg", "")


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


class ResNet(nn.Module):
    """Plain, residual and pre-activation networks of He et al. (2015, 2016) and the
    ResNet-B/C/D tweaks of He et al. (2019).

    Layout: stem, stages (stages.0 ... stages.N-1, each a Sequential of blocks; the first
    block of stages 2..N strides 2), final_norm (BN-ReLU for pre-activation nets, whose
    units leave their output un-normalised; He et al. 2016, Fig. 4e), global average
    pooling (any input size works), dropout (drop_rate, 0 as the paper), fc to logits.
    """

    def __init__(self, spec: VariantSpec, global_pool: str = "avg", drop_rate: float = 0.0,
                 *, skeleton: bool = False) -> None:
        """skeleton=True: at most two blocks per stage (the size count's stand-in for any
        depth, built on the meta device; models/counting.py)."""
        super().__init__()
        if global_pool not in GLOBAL_POOLS:
            raise InputError(f"global_pool must be 'avg' or '' (no pooling); got {global_pool!r}")
        if not 0.0 <= drop_rate < 1.0:
            raise InputError(f"drop_rate must be in [0, 1); got {drop_rate}")
        self.spec = spec
        self.num_classes = spec.num_classes
        self.drop_rate = float(drop_rate)
        self.grad_checkpointing = False
        block_part = BLOCKS.get(spec.block)
        block = block_part.make
        preact = bool(getattr(block, "preact", False))
        context = {"norm_layer": NORM_LAYER, "act_layer": ACT_LAYER}
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
        self.fc = self._classifier(spec.num_classes)
        self._init_weights()

    def _classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

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
        if self.global_pool == "avg":
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
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
            if global_pool not in GLOBAL_POOLS:
                raise InputError(f"global_pool must be 'avg' or ''; got {global_pool!r}")
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


# Keyword arguments of create_model that build the module rather than change the spec.
MODULE_KWARGS = ("global_pool", "drop_rate")


def create_model(name: str | VariantSpec, **overrides: Any) -> ResNet:
    """Build a variant by name (or from a spec), with validated overrides such as
    num_classes (0: no classifier), in_chans, layers, widths, shortcut, stride_in,
    zero_init_residual, and timm's global_pool and drop_rate."""
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
