"""A sweep's runs, planned: each configuration validated by the parser `train` uses,
named by its condition and seed (a run's identity, whatever sweep lists it), with the
command `wandb agent` would run for it."""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .sweepfile import SweepError, SweepSpec, plan


@dataclass
class PlannedRun:
    run_id: str
    params: dict[str, Any]
    command: list[str]
    group: str  # the W&B group: the first sweep that lists the run
    state: str = "pending"  # pending | running | finished | diverged | failed | interrupted
    detail: str = ""
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    request: Any = field(default=None, repr=False)  # its words, parsed (run.config)
    spec: Any = field(default=None, repr=False)  # its VariantSpec before data (resolve)
    planned_condition: str = ""  # the digest its name ends in, recorded in its summary

    @property
    def shell(self) -> str:
        """The command quoted for a POSIX shell: pasting it runs no value as code."""
        return shlex.join(self.command)


def expand_command(spec: SweepSpec, params: dict[str, Any]) -> list[str]:
    """The command `wandb agent` would run for these parameters (its own helpers)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command(list(spec.command) if spec.command else None)
    sweep_vars = sweep_utils.create_sweep_command_args(
        {"args": {k: {"value": v} for k, v in params.items()}})
    sweep_vars["interpreter"] = ["python"]
    sweep_vars["program"] = [spec.program] if spec.program else []
    sweep_vars["env"] = ["/usr/bin/env"]
    out: list[str] = []
    for chunk in command:
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            out += sweep_vars.get(chunk[2:-1]) or []
        else:
            out.append(chunk)
    return out


def with_settings(spec: SweepSpec, settings: dict[str, Any] | None) -> SweepSpec:
    """`--set KEY=VALUE`: KEY is VALUE in every run. A parameter the sweep has takes that
    one value instead of its own; a train key it does not have joins as a constant
    (`--set data_dir=/data/cifar`, `--set wandb=offline`). A key train does not know, or one
    the runner owns, is refused."""
    if not settings:
        return spec
    from ..errors import unknown
    from .sweepfile import RUNNER_KEYS, _train_keys

    allowed = _train_keys()
    for key in settings:
        if key in RUNNER_KEYS:
            raise SweepError(f"--set {key}: the runner names runs and puts them in "
                             "--runs-dir; not a sweep setting")
        if key not in allowed:
            raise SweepError(f"--set {key}: " + str(unknown("train key", key, sorted(allowed))))
    parameters = {**spec.parameters, **{k: {"value": v} for k, v in settings.items()}}
    return dataclasses.replace(spec, parameters=parameters,
                               raw={**spec.raw, "parameters": parameters})


def planned_runs(spec: SweepSpec, count: int | None = None, seed: int = 0,
                 only: dict[str, list[Any]] | None = None,
                 settings: dict[str, Any] | None = None) -> list[PlannedRun]:
    """The runs of a sweep (with `--set` settings), validated, each named by its
    condition and seed."""
    spec = with_settings(spec, settings)
    configs = plan(spec, count=count, seed=seed)
    if only:  # a subset of the sweep (an experiment's, or `sweep --only`)
        unknown = sorted(set(only) - set(spec.parameters))
        if unknown:
            raise SweepError(f"{spec.path}: only: {unknown[0]!r} is not a parameter")
        kept = [c for c in configs if all(_matches(c[k], v) for k, v in only.items())]
        if configs and not kept:
            asked = "; ".join(f"{k}={','.join(map(str, v))}" for k, v in only.items())
            values = "; ".join(f"{k}: {', '.join(sorted({str(c[k]) for c in configs}))}"
                               for k in only)
            raise SweepError(f"{spec.path}: only {asked} matches none of its {len(configs)} "
                             f"runs (its values: {values})")
        configs = kept
    runs: dict[str, PlannedRun] = {}
    for params in configs:
        run = _planned(spec, params)
        runs.setdefault(run.run_id, run)
    return list(runs.values())


def _planned(spec: SweepSpec, params: dict[str, Any]) -> PlannedRun:
    """A run of the sweep: its words parsed once and its spec resolved once (what its name,
    its time estimate and its --seeds-for pair read), named by its planned condition."""
    from ..run.config import parse_train_words
    from ..run.record import planned_condition, planned_run_id
    from ..variants.resolve import resolve

    try:
        request = parse_train_words([f"{k}={v}" for k, v in params.items()])
        resolved = resolve(request.config.model, request.model_overrides)
    except (InputError, FileNotFoundError) as exc:
        raise SweepError(f"{spec.path}: {exc}") from None
    return PlannedRun(planned_run_id(request, resolved), params, expand_command(spec, params),
                      spec.name, request=request, spec=resolved,
                      planned_condition=planned_condition(request, resolved))


def _matches(value: Any, allowed: list[Any]) -> bool:
    return value in allowed or str(value) in {str(a) for a in allowed}


def merge(*groups: list[PlannedRun]) -> list[PlannedRun]:
    """Runs of several sweeps, each once (the first listing names its W&B group)."""
    out: dict[str, PlannedRun] = {}
    for runs in groups:
        for run in runs:
            out.setdefault(run.run_id, run)
    return list(out.values())
