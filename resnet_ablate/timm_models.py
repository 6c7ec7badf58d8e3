"""Every variant as a timm model: `timm.create_model("ra_resnet56_a")` after importing us.

Entry points are generated from the registry (timm registers a function by its __name__),
not written out by hand.
"""
from __future__ import annotations

from typing import Any, Callable

from timm.models import register_model

from .registry import create_model, list_models

PREFIX = "ra_"
# Arguments timm's factory passes to every entry point; ours have no pretrained weights.
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def timm_name(name: str) -> str:
    return PREFIX + name.lower().replace("-", "_")


def _entrypoint(name: str) -> Callable[..., Any]:
    def build(pretrained: bool = False, **kwargs: Any):
        if pretrained:
            raise ValueError(f"{timm_name(name)}: no pretrained weights; train one with "
                             "`resnet-ablate train`")
        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        return create_model(name, **kwargs)

    build.__name__ = build.__qualname__ = timm_name(name)
    build.__module__ = __name__
    build.__doc__ = f"{name} of resnet-ablate (He et al. 2015/2016)."
    return build


for _name in list_models():
    globals()[timm_name(_name)] = register_model(_entrypoint(_name))
