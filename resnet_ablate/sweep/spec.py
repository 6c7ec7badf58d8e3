"""Sweep YAMLs as W&B reads them, validated before anything is launched.

The same file works with `wandb sweep` (server-side controller, `wandb agent` per GPU) and
with `resnet-ablate sweep` (this machine, grid and random methods).
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LOCAL_METHODS = ("grid", "random")
W_AND_B_METHODS = ("grid", "random", "bayes")
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform",
                 "log_uniform", "log_uniform_values", "q_log_uniform_values", "normal",
                 "q_normal", "log_normal")
COMMAND_ARG_MACROS = ("${args}", "${args_no_hyphens}", "${args_json}", "${args_no_equals}",
                      "${args_no_boolean_flags}", "${args_json_file}")


class SweepError(ValueError):
    """A malformed sweep file: one line naming the field."""


@dataclass(frozen=True)
class SweepSpec:
    name: str
    path: str
    method: str
    parameters: dict[str, dict[str, Any]]
    command: tuple[str, ...] | None
    program: str | None
    run_cap: int | None
    raw: dict[str, Any]


def _train_keys() -> set[str]:
    from ..config import RunConfig
    from ..protocol import protocol_keys
    from ..spec import OVERRIDE_KEYS

    return ({f.name for f in dataclasses.fields(RunConfig)} | set(protocol_keys())
            | {f"model.{k}" for k in OVERRIDE_KEYS})


def _distribution(name: str, p: dict[str, Any]) -> str:
    """W&B's inference: value -> constant, values -> categorical, min/max by their type."""
    if "distribution" in p:
        return p["distribution"]
    if "value" in p:
        return "constant"
    if "values" in p:
        return "categorical"
    if "min" in p and "max" in p:
        both_int = all(isinstance(p[k], int) and not isinstance(p[k], bool)
                       for k in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    raise SweepError(f"parameters.{name}: needs value, values, min/max or a distribution")


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SweepError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a sweep file is a mapping with method and parameters")
    method = raw.get("method")
    if method is None:
        raise SweepError(f"{path}: method is missing; allowed: {', '.join(W_AND_B_METHODS)}")
    if method not in W_AND_B_METHODS:
        raise SweepError(f"{path}: method {method!r} is unknown; allowed: "
                         f"{', '.join(W_AND_B_METHODS)}")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise SweepError(f"{path}: parameters are missing (a mapping of train keys, e.g. "
                         "model: {values: [plain20, resnet20-A]})")
    allowed = _train_keys()
    for name, p in params.items():
        if name not in allowed:
            from ..overrides import unknown_key_error
            raise SweepError(f"{path}: parameters.{name}: "
                             + str(unknown_key_error(name, sorted(allowed), "train key")))
        if not isinstance(p, dict):
            raise SweepError(f"{path}: parameters.{name} must be a mapping such as "
                             "{value: X} or {values: [X, Y]}")
        dist = _distribution(name, p)
        if dist not in DISTRIBUTIONS:
            raise SweepError(f"{path}: parameters.{name}.distribution {dist!r} is not "
                             f"supported; allowed: {', '.join(DISTRIBUTIONS)}")
        if dist == "categorical" and (not isinstance(p.get("values"), list) or not p["values"]):
            raise SweepError(f"{path}: parameters.{name}.values must be a non-empty list")
    command = raw.get("command")
    if command is not None:
        if not isinstance(command, list) or not all(isinstance(c, (str, int)) for c in command):
            raise SweepError(f"{path}: command must be a list of strings")
        if not any(str(c) in COMMAND_ARG_MACROS for c in command):
            raise SweepError(f"{path}: command passes no parameters; add "
                             "${args_no_hyphens} (the key=value form train reads)")
        command = tuple(str(c) for c in command)
    elif not raw.get("program"):
        raise SweepError(f"{path}: give command (e.g. [${{env}}, resnet-ablate, train, "
                         "${args_no_hyphens}]) or program")
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or run_cap < 1):
        raise SweepError(f"{path}: run_cap must be a positive integer; got {run_cap!r}")
    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SweepError(f"{path}: name {name!r} must be letters, digits, '-', '_' or '.'")
    spec = SweepSpec(name=name, path=str(path), method=method, parameters=params,
                     command=command, program=raw.get("program"), run_cap=run_cap, raw=raw)
    check_against_wandb_schema(spec)
    return spec


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def grid_configs(spec: SweepSpec) -> list[dict[str, Any]]:
    """W&B's grid: constants fixed, the product of every discrete parameter, in order."""
    import itertools

    axes: list[tuple[str, list]] = []
    for name, p in spec.parameters.items():
        dist = _distribution(name, p)
        if dist == "constant":
            axes.append((name, [p["value"]]))
        elif dist == "categorical" and "probabilities" not in p:
            axes.append((name, list(p["values"])))
        elif dist == "int_uniform":
            axes.append((name, list(range(int(p["min"]), int(p["max"]) + 1))))
        elif dist == "q_uniform":  # W&B: numpy.arange(min, max, q), float steps and all
            import numpy as np

            axes.append((name, np.arange(p["min"], p["max"], p["q"]).tolist()))
        else:
            raise SweepError(f"{spec.path}: parameters.{name}: grid sweeps need value, values, "
                             f"int_uniform or q_uniform; {dist} is continuous (use random)")
    configs, seen = [], set()
    for combo in itertools.product(*(values for _, values in axes)):
        config = dict(zip((n for n, _ in axes), combo))
        key = _canonical(config)
        if key not in seen:  # W&B skips configurations it has already proposed
            seen.add(key)
            configs.append(config)
    return configs


def _sample(name: str, p: dict[str, Any], rng: random.Random) -> Any:
    dist = _distribution(name, p)
    if dist == "constant":
        return p["value"]
    if dist == "categorical":
        weights = p.get("probabilities")
        return rng.choices(p["values"], weights=weights)[0]
    lo, hi = p.get("min"), p.get("max")
    if dist == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if dist == "uniform":
        return rng.uniform(lo, hi)
    if dist == "q_uniform":
        return round(rng.uniform(lo, hi) / p.get("q", 1)) * p.get("q", 1)
    if dist == "log_uniform":  # min/max are exponents (natural log), as in W&B
        return math.exp(rng.uniform(lo, hi))
    if dist == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if dist == "q_log_uniform_values":
        q = p.get("q", 1)
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))) / q) * q
    if dist in ("normal", "q_normal"):
        value = rng.gauss(p.get("mu", 0.0), p.get("sigma", 1.0))
        return round(value / p.get("q", 1)) * p.get("q", 1) if dist == "q_normal" else value
    if dist == "log_normal":
        return math.exp(rng.gauss(p.get("mu", 0.0), p.get("sigma", 1.0)))
    raise SweepError(f"parameters.{name}: distribution {dist!r} is not supported")


def random_configs(spec: SweepSpec, count: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """W&B's random search, drawn with a seed so a rerun proposes the same runs."""
    n = count or spec.run_cap
    if not n:
        raise SweepError(f"{spec.path}: a random sweep runs until stopped; give run_cap in "
                         "the file or --count N")
    rng = random.Random(seed)
    return [{name: _sample(name, p, rng) for name, p in spec.parameters.items()}
            for _ in range(n)]


def plan(spec: SweepSpec, count: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    if spec.method == "bayes":
        raise SweepError(f"{spec.path}: method bayes needs W&B's server-side controller; run "
                         "it with `wandb sweep` and `wandb agent` (local methods: grid, random)")
    configs = grid_configs(spec) if spec.method == "grid" else random_configs(spec, count, seed)
    if spec.method == "grid" and count:
        configs = configs[:count]
    elif spec.method == "grid" and spec.run_cap:
        configs = configs[:spec.run_cap]
    return configs


def wandb_schema() -> dict | None:
    """W&B's sweep-config JSON schema, from its `sweeps` package when installed (it is
    not a dependency: it pins numpy<2). Found without importing the package."""
    import importlib.util

    found = importlib.util.find_spec("sweeps")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / "config" / "schema.json"
    return json.loads(path.read_text()) if path.is_file() else None


def schema_errors(raw: dict[str, Any], schema: dict) -> list[str]:
    """Violations of W&B's schema, each as 'field.path: message'."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = []
    for err in sorted(validator.iter_errors(raw), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        errors.append(f"{where}: {err.message}")
    return errors


def check_against_wandb_schema(spec: SweepSpec) -> None:
    schema = wandb_schema()
    if schema is None:
        return
    try:
        errors = schema_errors(spec.raw, schema)
    except ImportError:  # jsonschema absent: our own checks above still hold
        return
    if errors:
        raise SweepError(f"{spec.path}: W&B's sweep schema: {errors[0]}")
