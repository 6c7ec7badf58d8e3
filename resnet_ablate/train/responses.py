"""Fig. 7: the std of each 3x3 layer's response (after BN, before addition and ReLU)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn


@torch.no_grad()
def layer_response_std(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                       names: list[str]) -> list[dict]:
    """Std over every unit and image of each named module's output, on held-out data, in
    eval mode. Sums are taken in float64 at the hook, before an in-place ReLU can act."""
    modules = dict(model.named_modules())
    sums = {n: torch.zeros(3, dtype=torch.float64) for n in names}

    def hook(name: str):
        def record(_m: nn.Module, _i: tuple, out: Tensor) -> None:
            o = out.detach().to(torch.float64)
            sums[name] += torch.stack([torch.tensor(float(o.numel()), dtype=torch.float64),
                                       o.sum().cpu(), o.square().sum().cpu()])
        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        for x, _ in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows = []
    for index, name in enumerate(names, start=1):
        count, total, squares = sums[name].tolist()
        mean = total / count
        rows.append({"index": index, "layer": name,
                     "std": max(squares / count - mean * mean, 0.0) ** 0.5})
    return rows
