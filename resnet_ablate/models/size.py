"""How big a variant is, known before it is built: parameters and activations from the spec.

The stage builder makes every block after the first of a stage the same shape, so one
first block and one later block per stage, built on the meta device (no memory, no
compute), give exact counts for any registered variant in milliseconds, however many
blocks it has: parameters from the modules, activations from one run on a meta tensor. `model.layers=[100000000,1,1]` is refused at
once instead of after minutes of building and gigabytes of memory.
"""
from __future__ import annotations

import torch
from torch import nn

from ..spec import VariantSpec
from ..errors import InputError

# Defaults of the train keys max_params and max_activations: 50x ResNet-152's 60M
# parameters; activations (conv and fc outputs per image) of 4 GB in float32.
MAX_PARAMS = 3_000_000_000
MAX_ACTIVATIONS = 1_000_000_000


def _count(modules: list[nn.Module], x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Conv/linear output elements of running x through `modules` in order."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        total += out.numel()

    handles = [m.register_forward_hook(hook) for mod in modules for m in mod.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        for mod in modules:
            x = mod(x)
    finally:
        for h in handles:
            h.remove()
    return total, x


def _short_model(spec: VariantSpec) -> nn.Module:
    """Two blocks per stage, on the meta device: every later block of a stage is the
    second's shape."""
    from .resnet import ResNet

    short = spec.with_overrides(layers=tuple(min(n, 2) for n in spec.layers))
    with torch.device("meta"):
        return ResNet(short).eval()  # a count needs no batch statistics


def _per_stage(model: nn.Module, spec: VariantSpec, of) -> int:
    """of(module) summed over the full depth: stem, stages (first + later x (n-1)), head."""
    total = of(model.stem) + of(model.final_norm) + of(model.fc)
    for stage, count in zip(model.stages, spec.layers):
        blocks = list(stage)
        total += of(blocks[0]) + (of(blocks[1]) * (count - 1) if count > 1 else 0)
    return total


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _activation_bound(model: nn.Module, spec: VariantSpec, side: int) -> int:
    """An upper bound of the activations without running anything: no conv or linear
    output has more channels than the widest or more pixels than the input."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    widest = max(m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
                 for m in layers)
    n = _per_stage(model, spec, lambda mod: sum(isinstance(m, (nn.Conv2d, nn.Linear))
                                                for m in mod.modules()))
    return n * widest * side * side


def _activations(model: nn.Module, spec: VariantSpec, side: int) -> int:
    """Exact activations of `spec` at batch 1: its short model run once on a meta tensor."""
    x = torch.zeros(1, spec.in_chans, side, side, device="meta")
    acts, x = _count([model.stem], x)
    for stage, count in zip(model.stages, spec.layers):
        blocks = list(stage)
        a_first, x = _count(blocks[:1], x)
        acts += a_first
        if count > 1:
            a_later, x = _count(blocks[1:2], x)
            acts += a_later * (count - 1)
    x = model.final_norm(x)
    head_acts, _ = _count([model.fc], model.forward_head(x, pre_logits=True))
    return acts + head_acts


def check(spec: VariantSpec, input_size: int, max_params: int, max_activations: int) -> None:
    """A one-line InputError when `spec` passes a cap: its exact parameters, then its
    activations (conv and linear outputs per image at the input size). The meta forward
    that counts them exactly (a second) runs only when a cheap upper bound reaches the cap."""
    cheap = sum(spec.layers) * max(spec.widths) ** 2
    if cheap > 1e18:  # even meta tensors have int64 sizes
        raise InputError(f"{spec.name}: layers {list(spec.layers)} x widths "
                         f"{list(spec.widths)} is far beyond any cap (max_params={max_params:,})")
    model = _short_model(spec)
    params = _per_stage(model, spec, _params)
    if params > max_params:
        raise InputError(f"{spec.name}: {params:,} parameters exceed max_params="
                         f"{max_params:,} (raise it with max_params=N if you mean it)")
    if _activation_bound(model, spec, input_size) <= max_activations:
        return
    activations = _activations(model, spec, input_size)
    if activations > max_activations:
        raise InputError(f"{spec.name}: {activations:,} activations per image at "
                         f"{input_size} px exceed max_activations={max_activations:,} (raise "
                         "it with max_activations=N if you mean it)")
