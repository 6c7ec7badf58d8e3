"""A run's condition, defined once: every resolved factor that can change its result, and
nothing else.

In:  every VariantSpec field but the name (family, depth, block, shortcut, stem, widths,
     layers, num_classes, in_chans, stem_width, stride_in, zero_init_residual, options, ...);
     the data set, its split sizes and image mode; the protocol's name and every resolved
     field, overrides included; amp, channels_last, deterministic; world_size (each
     process's batch statistics differ with it).
Out: the seed (runs of one condition differ by seed: they are its samples) and
     bookkeeping: run_id, runs_dir, data_dir, device, compile (and its backend), progress,
     logging, W&B.

Analysis groups runs by condition and counts one sample per seed; sweeps and experiments
name a run by its planned condition and seed, so two sweeps that list the same run share
it. Importing this module imports no torch.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

MODEL_PREFIX, PROTOCOL_PREFIX = "model.", "protocol."
RUN_FACTORS = ("dataset", "split_sizes", "data_mode", "protocol", "amp", "channels_last",
               "deterministic", "world_size")


def _canonical(value: Any) -> Any:
    """Lists and mappings as canonical JSON text (hashable, comparable); scalars as they are."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def digest(values: dict[str, Any], n: int = 10) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def of_record(record: dict[str, Any]) -> dict[str, Any]:
    """The condition of a finished run, from its summary.json (or config.json): flat
    columns, `model.<field>`, `protocol.<field>` and the run factors, values hashable."""
    model = record.get("model_factors")
    if not isinstance(model, dict):  # summaries keep the factors at the top level
        from .spec import VariantSpec
        import dataclasses

        model = {f.name: record.get(f.name) for f in dataclasses.fields(VariantSpec)}
    out = {MODEL_PREFIX + k: _canonical(v) for k, v in sorted(model.items()) if k != "name"}
    fields = record.get("protocol_fields") if isinstance(record.get("protocol_fields"),
                                                         dict) else {}
    out.update({PROTOCOL_PREFIX + k: _canonical(v) for k, v in sorted(fields.items())})
    out.update({k: _canonical(record.get(k)) for k in RUN_FACTORS})
    return out


def condition_id(condition: dict[str, Any]) -> str:
    """A short, stable id of a condition (the same factors give the same id anywhere)."""
    return digest(condition)


def planned(request) -> dict[str, Any]:
    """The condition a `train` request will run under, known before any data is loaded:
    the data set named by its directory (its split sizes come from the protocol's val_size
    and the files), the image mode as asked, num_classes/in_chans as overridden."""
    from .registry import get_spec

    cfg = request.config
    factors = get_spec(cfg.model).with_overrides(**request.model_overrides).factors()
    for key in ("num_classes", "in_chans"):  # the data set's, unless overridden
        if key not in request.model_overrides:
            factors.pop(key)
    factors.pop("name")
    return {"model": factors, "dataset": cfg.dataset, "data_dir": cfg.data_dir,
            "data_mode": cfg.data_mode, "protocol": request.protocol.fields(),
            "amp": cfg.amp, "channels_last": cfg.channels_last,
            "deterministic": cfg.deterministic}


def planned_run_id(request) -> str:
    """A run's identity for sweeps and experiments: its planned condition and its seed,
    readable in front: <model>-s<seed>-<digest>."""
    from .registry import get_spec

    cfg = request.config
    return f"{get_spec(cfg.model).name}-s{cfg.seed}-{digest(planned(request))}"
