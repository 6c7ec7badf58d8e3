"""One path from a request to the VariantSpec a run trains, as timm's `_create_resnet ->
build_model_with_cfg` is one path from a name to a model: the registered variant, the data's
classes and channels where they are known, the user's `model.*` overrides, validated once.
Every place that makes a spec from words or from a run's record calls it: `train` and its
dry run, a sweep's planning (the planned run id), timm loading a run's weights, the probes.
Importing this module imports no torch (building a spec does: its parts are modules)."""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import InputError
from .registry import get_spec
from .spec import OVERRIDE_KEYS, VariantSpec


def resolve(model: str, overrides: Mapping[str, Any] | None = None,
            data: tuple[int, int] | None = None) -> VariantSpec:
    """The spec of `model` with `overrides` (model.* words; an unknown key is refused here),
    on data of `data` = (classes, channels) when it is known: the classes and channels
    follow the data unless overridden, and an override the data refutes is refused."""
    given = dict(overrides or {})
    known = {} if data is None else {"num_classes": data[0], "in_chans": data[1]}
    spec = get_spec(model).with_overrides(**{**known, **given})
    if data is not None:
        if spec.num_classes < data[0]:
            raise InputError(f"model.num_classes={spec.num_classes} is below the data's "
                             f"{data[0]} classes")
        if spec.in_chans != data[1]:
            raise InputError(f"model.in_chans={spec.in_chans} but the data's images have "
                             f"{data[1]} channel(s)")
    return spec


def overrides_of(values: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The model.* overrides that turn `model` into the factors `values` name (a record's,
    or a spec's factors())."""
    base = get_spec(model).factors()
    return {k: values[k] for k in OVERRIDE_KEYS
            if values.get(k) is not None and values[k] != base[k]}


def from_record(values: Mapping[str, Any], what: str = "the run") -> VariantSpec:
    """The spec a run's record (flat, record.flat) says it trained: its variant with every
    factor that differs from the registered one as an override. A record whose factors no
    override of its variant gives (the variant was registered otherwise since) is refused."""
    model = values.get("model")
    if not isinstance(model, str):
        raise InputError(f"{what}: its record names no model")
    try:
        spec = resolve(model, overrides_of(values, model))
    except InputError as exc:
        raise InputError(f"{what}: its variant cannot be rebuilt from its record "
                         f"({' '.join(str(exc).split())})") from None
    recorded = {k: values[k] for k in spec.factors() if k != "name" and k in values}
    differ = sorted(k for k, v in recorded.items() if v is not None and v != spec.factors()[k])
    if differ:
        raise InputError(f"{what}: its record's {', '.join(differ)} are not what {model} with "
                         "its overrides is now (the variant was registered otherwise since)")
    return spec
