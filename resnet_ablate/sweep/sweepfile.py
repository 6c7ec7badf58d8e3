"""Sweep YAMLs as W&B reads them, validated before anything is launched.

The same file works with `wandb sweep` (server-side controller, `wandb agent` per GPU) and
with `resnet-ablate sweep` (this machine or a Slurm cluster, grid and random methods). A
grid's size is known from its axes before any configuration is built; configurations are
produced lazily, so `--count 3` of a 10^10-point grid answers at once.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError

W_AND_B_METHODS = ("grid", "random", "bayes")
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform",
                 "log_uniform", "log_uniform_values", "q_log_uniform_values", "normal",
                 "q_normal", "log_normal")
COMMAND_ARG_MACROS = ("${args}", "${args_no_hyphens}", "${args_json}", "${args_no_equals}",
                      "${args_no_boolean_flags}", "${args_json_file}")
# A grid larger than this is refused without --count N (which takes its first N lazily);
# the most runs one sweep plans at once (--count, run_cap).
MAX_GRID = 10_000
SEED_RANGE = (0, 2 ** 63 - 1)  # a random sweep's --seed (random.Random folds -1 onto 1)
# Keys a sweep may not set: where runs go and what they are called belong to the runner.
RUNNER_KEYS = ("run_id", "runs_dir")


class SweepError(InputError):
    """A malformed sweep file: one line naming the field."""


def check_int(name: str, value: Any, low: int, high: int, why: str = "") -> int:
    """An integer flag or field in [low, high] (`why`: what the bound is), else one line
    with the range: checked where it is read, never a traceback further on."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be an integer in [{low:,}, {high:,}]{why}; got "
                         f"{value!r}")
    return value


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
    from ..run.config import known_keys

    return set(known_keys())


def distribution(name: str, p: dict[str, Any]) -> str:
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


def load_sweep(name_or_path: str | Path) -> SweepSpec:
    """A sweep by path, or by the name of a bundled one (`demo`, `cifar-degradation`)."""
    from ..bundled import load_yaml

    try:
        where, raw = load_yaml("sweeps", name_or_path)
    except InputError as exc:
        raise SweepError(str(exc)) from None
    return parse_sweep(raw, where, Path(str(name_or_path)).stem)


def parse_sweep(raw: Any, where: str, default_name: str) -> SweepSpec:
    if not isinstance(raw, dict):
        raise SweepError(f"{where}: a sweep file is a mapping with method and parameters")
    method = raw.get("method")
    if method is None:
        raise SweepError(f"{where}: method is missing; allowed: {', '.join(W_AND_B_METHODS)}")
    if method not in W_AND_B_METHODS:
        raise SweepError(f"{where}: method {method!r} is unknown; allowed: "
                         f"{', '.join(W_AND_B_METHODS)}")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise SweepError(f"{where}: parameters are missing (a mapping of train keys, e.g. "
                         "model: {values: [plain20, resnet20-A]})")
    allowed = _train_keys()
    for name, p in params.items():
        if name in RUNNER_KEYS:
            raise SweepError(f"{where}: parameters.{name}: the runner names runs and puts them "
                             "in --runs-dir; a sweep may not set it")
        if name not in allowed:
            from ..errors import unknown

            raise SweepError(f"{where}: parameters.{name}: "
                             + str(unknown("train key", str(name), sorted(allowed))))
        if not isinstance(p, dict):
            raise SweepError(f"{where}: parameters.{name} must be a mapping such as "
                             "{value: X} or {values: [X, Y]}")
        dist = distribution(name, p)
        if dist not in DISTRIBUTIONS:
            raise SweepError(f"{where}: parameters.{name}.distribution {dist!r} is not "
                             f"supported; allowed: {', '.join(DISTRIBUTIONS)}")
        if dist == "categorical" and (not isinstance(p.get("values"), list) or not p["values"]):
            raise SweepError(f"{where}: parameters.{name}.values must be a non-empty list")
    command = raw.get("command")
    if command is not None:
        if not isinstance(command, list) or not all(isinstance(c, (str, int)) for c in command):
            raise SweepError(f"{where}: command must be a list of strings")
        if not any(str(c) in COMMAND_ARG_MACROS for c in command):
            raise SweepError(f"{where}: command passes no parameters; add "
                             "${args_no_hyphens} (the key=value form train reads)")
        command = tuple(str(c) for c in command)
    elif not raw.get("program"):
        raise SweepError(f"{where}: give command (e.g. [${{env}}, resnet-ablate, train, "
                         "${args_no_hyphens}]) or program")
    run_cap = raw.get("run_cap")
    if run_cap is not None:
        try:
            check_int("run_cap", run_cap, 1, MAX_GRID, " (the most runs planned at once)")
        except InputError as exc:
            raise SweepError(f"{where}: {exc}") from None
    name = str(raw.get("name") or default_name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SweepError(f"{where}: name {name!r} must be letters, digits, '-', '_' or '.'")
    spec = SweepSpec(name=name, path=where, method=method, parameters=params,
                     command=command, program=raw.get("program"), run_cap=run_cap, raw=raw)
    check_against_wandb_schema(spec)
    return spec


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def grid_axes(spec: SweepSpec) -> list[tuple[str, list]]:
    """W&B's grid axes: constants, every categorical value, int_uniform and q_uniform
    steps; a continuous distribution cannot be a grid axis."""
    axes: list[tuple[str, list]] = []
    for name, p in spec.parameters.items():
        dist = distribution(name, p)
        if dist == "constant":
            axes.append((name, [p["value"]]))
        elif dist == "categorical" and "probabilities" not in p:
            axes.append((name, list(p["values"])))
        elif dist == "int_uniform":
            lo, hi = int(p["min"]), int(p["max"])
            if hi - lo > 10 ** 7:
                raise SweepError(f"{spec.path}: parameters.{name}: an int_uniform grid axis of "
                                 f"{hi - lo + 1:,} values; use a random sweep")
            axes.append((name, range(lo, hi + 1)))
        elif dist == "q_uniform":  # W&B: numpy.arange(min, max, q), float steps and all
            import numpy as np

            if (p["max"] - p["min"]) / p["q"] > 10 ** 7:
                raise SweepError(f"{spec.path}: parameters.{name}: q_uniform grid axis too long")
            axes.append((name, np.arange(p["min"], p["max"], p["q"]).tolist()))
        else:
            raise SweepError(f"{spec.path}: parameters.{name}: grid sweeps need value, values, "
                             f"int_uniform or q_uniform; {dist} is continuous (use random)")
    return axes


def grid_size(spec: SweepSpec) -> int:
    """The number of configurations, from the axis lengths alone (duplicates included)."""
    return math.prod(len(values) for _, values in grid_axes(spec))


def grid_configs(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """W&B's grid, lazily: the product of the axes in order, repeats skipped (W&B skips
    configurations it has already proposed)."""
    axes = grid_axes(spec)
    names = [n for n, _ in axes]
    seen = set()
    for combo in itertools.product(*(values for _, values in axes)):
        config = dict(zip(names, combo))
        key = _canonical(config)
        if key not in seen:
            seen.add(key)
            yield config


def _sample(name: str, p: dict[str, Any], rng: random.Random) -> Any:
    dist = distribution(name, p)
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
    """The configurations this machine will run: a random sweep's draws, or the grid's
    first `count` (or run_cap) configurations. A grid beyond MAX_GRID needs --count."""
    if spec.method == "bayes":
        raise SweepError(f"{spec.path}: method bayes needs W&B's server-side controller; run "
                         "it with `wandb sweep` and `wandb agent` (local methods: grid, random)")
    if count is not None:
        check_int("--count", count, 1, MAX_GRID, " (the most runs planned at once)")
    check_int("--seed", seed, *SEED_RANGE)
    if spec.method == "random":
        return random_configs(spec, count, seed)
    limit = count or spec.run_cap
    size = grid_size(spec)
    if limit is None and size > MAX_GRID:
        raise SweepError(f"{spec.path}: the grid has {size:,} configurations, over the "
                         f"{MAX_GRID:,} this runner plans at once; take some with --count N "
                         "(or set run_cap)")
    return list(itertools.islice(grid_configs(spec), limit))


def wandb_schema() -> dict | None:
    """W&B's sweep-config JSON schema, from its `sweeps` package when installed (it is
    not a dependency: it pins numpy<2). Found without importing the package."""
    import importlib.util

    found = importlib.util.find_spec("sweeps")
    if found is None or not found.submodule_search_locations:
        return None
    for location in found.submodule_search_locations:
        path = Path(location) / "config" / "schema.json"
        if path.is_file():
            return json.loads(path.read_text())
    return None


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
