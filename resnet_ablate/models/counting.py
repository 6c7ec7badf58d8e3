"""Parameters, MACs and activations of a variant, per stage and in total, and its size known
before it is built.

"MACs" are the multiply-accumulates of conv and linear layers (bias adds ignored): what the
paper and torchvision call FLOPs. They are counted from the shapes seen in one real forward
pass. `fvcore_flops` is fvcore's FlopCountAnalysis total, which adds batch norm and pooling.

The stage builder makes every block after the first of a stage the shape of the second, so
two blocks per stage stand for any depth (`_per_stage`): fvcore traces a shortened view of a
model, and the size check builds a shortened model on the meta device (no memory, no
compute), so `model.layers=[100000000,1,1]` is refused in milliseconds, exactly. Its shapes
come from a forward of an empty batch on the CPU (the short model's weights allocated, never
filled): the meta device would give the same shapes, but its first elementwise op imports
torch._dynamo, two seconds of a sweep's planning (a `train` imports it anyway: torch.optim's
constructors do).
"""
from __future__ import annotations

import copy
import math
import sys
import warnings
from collections import defaultdict
from typing import Any, Callable

import torch
from torch import nn

from ..errors import InputError
from ..reference import paper_complexity
from ..variants.spec import VariantSpec
from .resnet import ResNet, create_model


def _per_stage(model: nn.Module, layers: tuple[int, ...] | list[int],
               of: Callable[[nn.Module], int]) -> dict[str, int]:
    """of(module) per stage over the full depth of a model shortened to two blocks per
    stage: the stem, each stage's first block + its second x (n - 1), the head (final norm,
    pooling and classifier)."""
    out = {"stem": of(model.stem)}
    for i, (stage, count) in enumerate(zip(model.stages, layers)):
        blocks = list(stage)
        out[f"stage{i + 1}"] = of(blocks[0]) + (of(blocks[1]) * (count - 1) if count > 1
                                                else 0)
    # the head: every other child (final norm, global pooling, classifier, a plugin's own)
    out["head"] = sum(of(m) for n, m in model.named_children() if n not in ("stem", "stages"))
    return out


def _stage_of(qualname: str) -> str:
    """stem | stage1 ... stageN | head, from a module's qualified name in a ResNet."""
    parts = qualname.split(".")
    if parts[0] == "stages" and len(parts) > 1:
        return f"stage{int(parts[1]) + 1}"
    return "head" if parts[0] in ("fc", "final_norm", "head", "head_pool") else "stem"


def _input_shape(model: nn.Module, input_size: int | tuple | None) -> tuple[int, ...]:
    spec: VariantSpec | None = getattr(model, "spec", None)
    in_chans = spec.in_chans if spec is not None else 3
    if input_size is None:
        input_size = spec.input_size if spec is not None else 224
    if isinstance(input_size, int):
        return (1, in_chans, input_size, input_size)
    if len(input_size) == 2:
        return (1, in_chans, *input_size)
    if len(input_size) == 3:
        return (1, *input_size)
    raise InputError(f"input_size must be N, (H, W) or (C, H, W); got {input_size!r}")


def _short_view(model: nn.Module) -> tuple[nn.Module, list[int]] | None:
    """The model with its first two blocks per stage (the same modules), and each stage's
    block count; None when no stage is longer."""
    stages = getattr(model, "stages", None)
    if getattr(model, "spec", None) is None or not isinstance(stages, nn.Sequential):
        return None
    counts = [len(stage) for stage in stages]
    if max(counts, default=0) <= 2:
        return None
    short = copy.copy(model)
    short._modules = dict(model._modules)  # its own module table; the modules are shared
    short.stages = nn.Sequential(*[nn.Sequential(*list(stage)[:2]) for stage in stages])
    return short, counts


def fvcore_flops(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore's total and its per-stage split (BN and pooling included). A ResNet is traced
    with two blocks per stage and its later blocks counted from the second: exact, and a
    1202-layer net costs what a 20-layer one does (a full trace took 5-8 s)."""
    view = _short_view(model)
    traced, layers = view if view else (model, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation notices from fvcore's tracer
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(traced, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        by_module = analysis.by_module()
    names = {m: n for n, m in traced.named_modules()}

    def of(module: nn.Module) -> int:
        return int(by_module.get(names[module], 0))

    if isinstance(traced, ResNet):
        per_stage = _per_stage(traced, layers or [len(s) for s in traced.stages], of)
    else:  # any other module: by its top-level children
        per_stage = defaultdict(int)
        for child_name, child in traced.named_children():
            per_stage[_stage_of(child_name)] += of(child)
    # what the root module does itself (the functional global pooling) belongs to the head
    own = int(by_module[""]) - sum(of(child) for child in traced.children())
    per_stage["head"] = per_stage.get("head", 0) + own
    return sum(per_stage.values()), dict(per_stage)


def complexity(name_or_model: str | nn.Module, input_size: int | tuple | None = None,
               with_fvcore: bool = True) -> dict[str, Any]:
    """Params, MACs (conv + linear), fvcore's FLOPs and activations at batch 1.

    input_size: side length, (H, W) or (C, H, W); default the spec's (32 CIFAR, 224 ImageNet).
    Returns totals plus `stages`: one row per stem / stageK / head.
    """
    model = create_model(name_or_model) if isinstance(name_or_model, str) else name_or_model
    was_training = model.training
    model.eval()
    x = torch.zeros(_input_shape(model, input_size))
    stage_macs: dict[str, int] = defaultdict(int)
    stage_acts: dict[str, int] = defaultdict(int)
    stage_shape: dict[str, tuple] = {}

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor, qualname: str) -> None:
        stage = _stage_of(qualname)
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
        else:
            per_output = module.in_features
        stage_macs[stage] += output.numel() * per_output
        stage_acts[stage] += output.numel()
        stage_shape[stage] = tuple(output.shape[1:])

    handles = [m.register_forward_hook(lambda mod, i, o, q=q: count(mod, i, o, q))
               for q, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def shape(stage: str, output: Any) -> None:  # after its inner layers' hooks: it wins
        if isinstance(output, torch.Tensor):
            stage_shape[stage] = tuple(output.shape[1:])

    # A stage's output shape is what the stem and each stage return (the last conv of a
    # block may be a branch's: a squeeze-excite gate's 1x1), the head's its logits.
    stages = getattr(model, "stages", None)
    outputs = ({"stem": model.stem, **{f"stage{i + 1}": stage for i, stage in
                                       enumerate(stages)}}
               if isinstance(stages, nn.Sequential) and isinstance(
                   getattr(model, "stem", None), nn.Module) else {})
    handles += [m.register_forward_hook(lambda mod, i, o, s=stage: shape(s, o))
                for stage, m in outputs.items()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    stage_params: dict[str, int] = defaultdict(int)
    for qualname, p in model.named_parameters():
        stage_params[_stage_of(qualname)] += p.numel()
    flops_total, stage_flops = fvcore_flops(model, x) if with_fvcore else (None, {})
    model.train(was_training)

    order = ["stem"] + sorted((s for s in stage_macs if s.startswith("stage")),
                              key=lambda s: int(s[5:])) + ["head"]
    stages = [{"stage": s, "params": stage_params.get(s, 0), "macs": stage_macs.get(s, 0),
               "activations": stage_acts.get(s, 0), "output_shape": stage_shape.get(s),
               **({"fvcore_flops": stage_flops.get(s, 0)} if with_fvcore else {})}
              for s in order]
    spec = getattr(model, "spec", None)
    result: dict[str, Any] = {
        "model": spec.name if spec is not None else type(model).__name__,
        "input_size": tuple(x.shape[1:]),
        "params": sum(stage_params.values()),
        "macs": sum(stage_macs.values()),
        "fvcore_flops": flops_total,
        "activations": sum(stage_acts.values()),
        "stages": stages,
    }
    if spec is not None and input_size in (None, spec.input_size):
        result.update(paper_complexity(spec))
    return result


def complexity_table(names: list[str], input_size: int | None = None,
                     with_fvcore: bool = True, progress: bool = False):
    """One row per variant: factors, our counts, and the paper's where it gives them;
    `vs_paper_pct` compares what `vs_paper_of` says (params, or MACs vs FLOPs)."""
    import pandas as pd
    from tqdm import tqdm

    from ..variants.registry import get_spec

    rows = []
    from ..formatting import raw

    for name in tqdm(names, desc="complexity", unit="model", disable=not progress or None,
                     leave=False, file=raw(sys.stderr)):
        spec = get_spec(name)
        c = complexity(name, input_size=input_size, with_fvcore=with_fvcore)
        paper_params, paper_flops = c.get("paper_params"), c.get("paper_flops")
        if paper_params:
            delta, of = c["params"] / paper_params - 1, "params"
        elif paper_flops:
            delta, of = c["macs"] / paper_flops - 1, "MACs vs FLOPs"
        else:
            delta, of = None, None
        rows.append({
            "model": spec.name, "family": spec.family, "depth": spec.depth,
            "block": spec.block, "shortcut": spec.shortcut or "-",
            "input": "x".join(map(str, c["input_size"])),
            "params": c["params"], "paper_params": paper_params,
            "paper_params_text": c.get("paper_params_text"),
            "macs": c["macs"], "paper_flops": paper_flops,
            "vs_paper_pct": None if delta is None else round(100 * delta, 2),
            "vs_paper_of": of,
            "fvcore_flops": c["fvcore_flops"], "activations": c["activations"],
        })
    return pd.DataFrame(rows)


def stage_table(names: list[str], input_size: int | None = None,
                with_fvcore: bool = True) -> list[dict[str, Any]]:
    """One row per stage (stem, stage1 ... stageN, head) of each variant."""
    rows = []
    for name in names:
        c = complexity(name, input_size=input_size, with_fvcore=with_fvcore)
        for s in c["stages"]:
            shape = s["output_shape"]
            rows.append({"model": c["model"], "stage": s["stage"], "params": s["params"],
                         "macs": s["macs"], "activations": s["activations"],
                         **({"fvcore_flops": s["fvcore_flops"]} if with_fvcore else {}),
                         "output": "x".join(map(str, shape)) if shape else ""})
    return rows


# ---------------------------------------------------------------- size before building
# The short model is allocated on the CPU for the empty-batch forward up to this many
# parameters (uninitialized memory, 4 bytes each); beyond it (only absurd widths) the meta
# device gives the shapes.
_CPU_SHAPES_MAX_PARAMS = 50_000_000


def _per_image(output: torch.Tensor) -> int:
    return math.prod(output.shape[1:])  # the batch may be empty


def _macs_of(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return _per_image(output) * (module.in_channels // module.groups * kh * kw)
    return _per_image(output) * module.in_features


def _run(modules: list[nn.Module], x: torch.Tensor
         ) -> tuple[dict[nn.Module, tuple[int, int]], torch.Tensor]:
    """Run x through `modules` in order; (activations, MACs) of each of them (its conv and
    linear outputs), and the output."""
    counts: dict[nn.Module, list[int]] = {m: [0, 0] for m in modules}
    handles = []
    for top in modules:
        for m in top.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                def hook(mod, _i, out, top=top):
                    counts[top][0] += _per_image(out)
                    counts[top][1] += _macs_of(mod, out)
                handles.append(m.register_forward_hook(hook))
    try:
        for mod in modules:
            x = mod(x)
    finally:
        for h in handles:
            h.remove()
    return {m: tuple(c) for m, c in counts.items()}, x


def _short_model(spec: VariantSpec) -> ResNet:
    """Two blocks per stage, on the meta device (the spec as it is: no second one made)."""
    with torch.device("meta"):
        return ResNet(spec, skeleton=True).eval()  # a count needs no batch statistics


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _measure(model: ResNet, spec: VariantSpec, side: int) -> tuple[int, int]:
    """(activations, MACs) per image of `spec`: its short model run once, each later block
    counted from the second; on an empty batch on the CPU when the short model is small
    (shapes from CPU kernels, no dynamo import), else (or if a part refuses an empty batch,
    e.g. `x.view(x.size(0), -1)`) at batch 1 on the meta device."""
    if _params(model) <= _CPU_SHAPES_MAX_PARAMS:
        try:
            with torch.no_grad():
                return _measure_on(copy.deepcopy(model).to_empty(device="cpu"), spec, side,
                                   "cpu")
        except (NotImplementedError, RuntimeError):
            pass
    return _measure_on(model, spec, side, "meta")


def _measure_on(model: ResNet, spec: VariantSpec, side: int, device: str) -> tuple[int, int]:
    x = torch.zeros(0 if device == "cpu" else 1, spec.in_chans, side, side, device=device)
    blocks = [b for stage in model.stages for b in stage]
    counts, x = _run([model.stem, *blocks], x)
    x = model.final_norm(x)
    head, _ = _run([model.fc], model.forward_head(x, pre_logits=True))
    counts.update(head)
    zero = (0, 0)
    acts = _per_stage(model, spec.layers, lambda m: counts.get(m, zero)[0])
    macs = _per_stage(model, spec.layers, lambda m: counts.get(m, zero)[1])
    return sum(acts.values()), sum(macs.values())


def check_size(spec: VariantSpec, input_size: int, max_params: int,
               max_activations: int) -> dict[str, int | None]:
    """A spec's exact parameters, activations (conv and linear outputs per image) and MACs
    at the input size, from its short model on the meta device, in milliseconds however
    deep; a one-line InputError when it passes a cap. A part that cannot run on the meta
    device (a plugin's data-dependent op) leaves activations and MACs to be counted on the
    built model (None here)."""
    cheap = sum(spec.layers) * max(spec.widths) ** 2
    if cheap > 1e18:  # even meta tensors have int64 sizes
        raise InputError(f"{spec.name}: layers {list(spec.layers)} x widths "
                         f"{list(spec.widths)} is far beyond any cap (max_params={max_params:,})")
    model = _short_model(spec)
    params = sum(_per_stage(model, spec.layers, _params).values())
    if params > max_params:
        raise InputError(f"{spec.name}: {params:,} parameters exceed max_params="
                         f"{max_params:,} (raise it with max_params=N if you mean it)")
    try:
        activations, macs = _measure(model, spec, input_size)
    except (NotImplementedError, RuntimeError):
        return {"params": params, "activations": None, "macs": None}
    if activations > max_activations:
        raise InputError(f"{spec.name}: {activations:,} activations per image at "
                         f"{input_size} px exceed max_activations={max_activations:,} (raise "
                         "it with max_activations=N if you mean it)")
    return {"params": params, "activations": activations, "macs": macs}
