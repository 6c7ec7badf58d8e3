"""Every variant as a timm model, registered through timm's own machinery.

`timm.create_model("ra_resnet56_a")` goes through timm's `build_model_with_cfg` with a
pretrained config from `generate_default_cfgs` (module-level `default_cfgs`, as timm's own
model modules), so `features_only`, `pretrained_cfg_overlay=dict(file=...)` (a run's
model.pt), `resolve_model_data_config` and the rest behave as for timm's models. Entry
points are generated from the registry, plugin variants included, not written by hand.
Imported only when timm is (see resnet_ablate.variants.timm_hook).

A run's model.pt carries no metadata (a plain state_dict), but its run directory does:
`pretrained=True, pretrained_cfg_overlay=dict(file=".../model.pt")` reads the run's
config.json beside it and builds the network it trained (its classes, channels, input size
and every model override), so a digits run (1 channel, 8 px) loads as a CIFAR one does.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ..variants.parts import STEMS
from ..variants.registry import VARIANTS, get_spec, list_models
from ..variants.spec import VariantSpec
from .resnet import create_model

PREFIX = "ra_"
# The protocols subtract the training set's mean (per pixel for CIFAR) and divide by
# nothing: the nearest timm data config is that mean per channel with std 1.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10 training images, in [0, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
UNIT_STD = (1.0, 1.0, 1.0)

default_cfgs: dict[str, Any] = {}


def timm_name(name: str) -> str:
    return PREFIX + name.lower().replace("-", "_")


def _first_conv(spec: VariantSpec) -> str:
    """The qualified name of the stem's first conv (timm's first_conv), found by building
    the stem alone on the meta device."""
    import torch
    from torch import nn

    from .resnet import ACT_LAYER, NORM_LAYER, call_part

    with torch.device("meta"):
        stem = call_part(STEMS.get(spec.stem), spec.in_chans, spec.stem_width,
                         options=spec.stem_options,
                         context={"norm_layer": NORM_LAYER, "act_layer": ACT_LAYER})
    first = next(n for n, m in stem.named_modules() if isinstance(m, nn.Conv2d))
    return f"stem.{first}"


def _mean(mean: tuple[float, ...], chans: int) -> tuple[float, ...]:
    """The mean per channel for `chans` channels (grey images: the channels' average)."""
    return mean if chans == len(mean) else (round(sum(mean) / len(mean), 4),) * chans


def data_cfg(spec: VariantSpec, size: int | None = None) -> dict[str, Any]:
    """The part of the pretrained config that follows the data: classes, input size (the
    stem's design size unless given), pool size, crop, mean and std."""
    size = size or spec.input_size
    stem = STEMS.get(spec.stem).meta
    reduction = stem.get("reduction", 1) * 2 ** (len(spec.layers) - 1)
    pool = math.ceil(size / reduction)
    small = size <= 64
    return {"num_classes": spec.num_classes, "input_size": (spec.in_chans, size, size),
            "pool_size": (pool, pool), "crop_pct": 1.0 if small else 0.875,
            "mean": _mean(CIFAR10_MEAN if small else IMAGENET_MEAN, spec.in_chans),
            "std": (1.0,) * spec.in_chans}


def pretrained_cfg(spec: VariantSpec) -> dict[str, Any]:
    """What timm needs to feed the model: input size, pool size, mean/std as the protocol
    normalises, first conv and classifier names, classes."""
    return {
        "url": "", **data_cfg(spec), "interpolation": "bilinear",
        "first_conv": _first_conv(spec), "classifier": "fc",
        "license": "mit", "paper_ids": "arXiv:1512.03385",
        "notes": ("untrained; train with `resnet-ablate train` and load its model.pt with "
                  "pretrained=True, pretrained_cfg_overlay=dict(file=...)",),
    }


def from_run(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """kwargs for loading a run's model.pt (pretrained_cfg_overlay=dict(file=...)): the
    run's model overrides as defaults, its classes, channels and input size in the overlay
    (where timm's builder reads them), anything the caller gave first. A file outside a run
    directory (no config.json beside it) is loaded as given."""
    from pathlib import Path

    from ..errors import InputError
    from ..io import read_json
    from ..run import record
    from ..variants.resolve import from_record, overrides_of

    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    file = overlay.get("file")
    config = Path(str(file)).parent / "config.json" if file else None
    if config is None or not config.is_file():
        return kwargs
    raw = read_json(config)
    values = record.flat(raw) if isinstance(raw, dict) else {}
    if values.get("model") != name:
        raise InputError(f"{file} is the model.pt of a run of {values.get('model')!r}, not of "
                         f"{name!r}; load it with {timm_name(str(values.get('model')))}")
    spec = from_record(values, str(file))
    overrides = overrides_of(values, name)
    out = dict(kwargs)
    for key, value in overrides.items():
        if key not in ("num_classes", "in_chans"):  # these timm takes from the overlay
            out.setdefault(key, value)
    out["pretrained_cfg_overlay"] = {**data_cfg(spec, values.get("data.input_size")), **overlay}
    return out


def _build(name: str, pretrained: bool = False, **kwargs: Any):
    if pretrained:
        kwargs = from_run(name, kwargs)
    spec = get_spec(name)
    levels = len(spec.layers) + 1  # the stem and every stage
    return build_model_with_cfg(
        functools.partial(create_model, name), timm_name(name), pretrained,
        feature_cfg=dict(flatten_sequential=True, out_indices=tuple(range(levels))), **kwargs)


def _entrypoint(name: str) -> Callable[..., Any]:
    def build(pretrained: bool = False, **kwargs: Any):
        return _build(name, pretrained, **kwargs)

    build.__name__ = build.__qualname__ = timm_name(name)
    build.__module__ = __name__
    build.__doc__ = f"{name} of resnet-ablate (He et al. 2015/2016/2019)."
    return build


def register(spec: VariantSpec) -> None:
    """One variant: its pretrained config first (timm looks it up at registration), then
    its entry point."""
    default_cfgs.update(generate_default_cfgs({timm_name(spec.name): pretrained_cfg(spec)}))
    fn = _entrypoint(spec.name)
    globals()[fn.__name__] = register_model(fn)


for _name in list_models():
    register(get_spec(_name))
VARIANTS.on_add(register)  # variants registered later (plugins) join too
