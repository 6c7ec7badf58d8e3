"""A probe record as the analysis reads it, checked before any of it is used: the fields
every record has, the settings (through the probe's own settings class, so every range is
checked where it is read, as where it is given: a record whose span is 1e300 is refused as
`--set span=[0,1e300]` is), and each built-in probe's result: types, ranges, and lengths
and array shapes that agree with its settings (before any array is read). A record may be
anyone's file; one that fails is one line, InputError, and is skipped by its reader.

A plugin probe's result is not checked beyond being a mapping (the analysis reads only its
numbers); its settings are, when the plugin is loaded.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..errors import InputError

NUM, NUMN, INT, STR, BOOL, FRAC, FRACN = "num", "num?", "int", "str", "bool", "frac", "frac?"


def _ok(value: Any, kind: str) -> bool:
    if kind.endswith("?") and value is None:
        return True
    kind = kind.rstrip("?")
    if kind == STR:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == INT:
        return isinstance(value, int)
    return math.isfinite(value) and (kind != FRAC or 0.0 <= value <= 1.0)


def check(value: Any, spec: Any, where: str) -> None:
    """`value` against `spec`: a kind (NUM, INT, FRAC ...: '?' allows null), [spec] (a list
    of those), {key: spec} (a mapping with those keys; a key ending in '?' may be absent),
    or a callable(value, where)."""
    if callable(spec):
        spec(value, where)
    elif isinstance(spec, str):
        if not _ok(value, spec):
            words = {NUM: "a number", INT: "an integer", STR: "text", BOOL: "true or false",
                     FRAC: "a fraction in [0, 1]"}[spec.rstrip("?")]
            raise InputError(f"{where} must be {words}{' or null' if spec[-1] == '?' else ''}"
                             f"; got {_show(value)}")
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list; got {_show(value)}")
        for i, v in enumerate(value):
            check(v, spec[0], f"{where}[{i}]")
    else:
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a mapping; got {_show(value)}")
        for key, sub in spec.items():
            name = key.rstrip("?")
            if name in value:
                check(value[name], sub, f"{where}.{name}")
            elif not key.endswith("?"):
                raise InputError(f"{where} has no {name}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def _same_length(where: str, *lists: list) -> None:
    if len({len(v) for v in lists}) > 1:
        raise InputError(f"{where}: its lists differ in length ({', '.join(str(len(v)) for v in lists)})")


def _shapes(rec: dict[str, Any], expected: dict[str, tuple[int, ...]], where: str) -> None:
    shapes = (rec.get("arrays") or {}).get("shapes") or {}
    for name, shape in expected.items():
        if name in shapes and tuple(shapes[name]) != shape:
            raise InputError(f"{where}: array {name} has shape {shapes[name]}; its settings "
                             f"give {list(shape)}")


# ---------------------------------------------------------------------------- probes
_UNIT = {"unit": STR, "stage": INT, "position": INT, "how": STR, "error": FRACN,
         "loss": NUMN}
_DRAW = {"k": INT, "draw": INT, "error": FRAC, "loss": NUM}
_SUMMARY = {"k": [INT], "error_mean": [FRAC], "error_std": [NUM]}
LESION = {"units": INT, "deletable": INT, "baseline": {"loss": NUM, "error": FRAC},
          "single?": [_UNIT], "delete_k?": [{**_DRAW, "units": [STR]}],
          "delete_k_summary?": _SUMMARY, "swap_k?": [{**_DRAW, "pairs": [[STR]],
                                                      "kendall_tau": NUM}],
          "swap_k_summary?": {**_SUMMARY, "kendall_tau_mean?": [NUM]}}
LANDSCAPE = {"x": [NUM], "y?": [NUM], "center": {"loss": NUM, "error": FRAC},
             "min_loss?": NUMN,
             "sharpness?": {"radius": NUM, "losses": [NUMN], "rise_mean": NUMN,
                            "rise_max": NUMN},
             "curvature?": lambda v, w: None if v is None else check(
                 v, {"points": INT, "x": [NUM]}, w)}
LINEAR_PATH = {"alpha": [NUM], "start_loss": NUMN, "end_loss": NUMN, "max_loss": NUMN}
PATHS = {"units": INT, "residual_units": INT,
         "length_distribution": {"length": [INT], "share": [NUM]},
         "gradient_by_length": {"length": [INT], "mean": [NUMN], "std": [NUMN],
                                "total": [NUMN]},
         "unit_grad_norm": [{"unit": STR, "grad_norm": NUMN}]}
HESSIAN = {"num_params": INT, "top_eigenvalues": [NUMN], "eigen_iterations": [INT],
           "eigen_converged": [BOOL], "trace": NUMN, "trace_stderr": NUMN,
           "trace_samples": INT}


def _lesion(r: dict, s: dict, rec: dict, w: str) -> None:
    for part in ("delete_k", "swap_k"):
        summary = r.get(f"{part}_summary")
        if summary:
            _same_length(f"{w}.{part}_summary", summary["k"], summary["error_mean"],
                         summary["error_std"])
            _shapes(rec, {f"{part}_error": (len(summary["k"]), s["draws"])}, w)
    for row in r.get("swap_k") or []:
        if len({tuple(p) for p in row["pairs"]}) < len(row["pairs"]):
            raise InputError(f"{w}.swap_k: a draw holds a pair twice (drawn with replacement "
                             "by an older version, which swaps it back); probe it again")
        if not -1.0 <= row["kendall_tau"] <= 1.0:
            raise InputError(f"{w}.swap_k: kendall_tau must be in [-1, 1]; got "
                             f"{row['kendall_tau']!r}")


def _landscape(r: dict, s: dict, rec: dict, w: str) -> None:
    dims, points = s["dims"], s["points"]
    if len(r["x"]) != points or (dims == 2 and len(r.get("y") or []) != points):
        raise InputError(f"{w}: x (and y) must have its {points} points")
    shape = (points,) * dims
    expected = {"loss": shape, "error": shape}
    if r.get("curvature"):
        c = r["curvature"]["points"]
        expected |= {k: (c,) * dims for k in ("hessian_min", "hessian_max",
                                              "curvature_ratio")}
    _shapes(rec, expected, w)
    shapes = (rec.get("arrays") or {}).get("shapes") or {}
    if "loss" not in shapes:
        raise InputError(f"{w}: a landscape record names its loss array")


def _linear_path(r: dict, s: dict, rec: dict, w: str) -> None:
    if len(r["alpha"]) != s["points"]:
        raise InputError(f"{w}: alpha must have its {s['points']} points")
    _shapes(rec, {"loss": (s["points"],), "error": (s["points"],)}, w)
    if "loss" not in ((rec.get("arrays") or {}).get("shapes") or {}):
        raise InputError(f"{w}: a linear_path record names its loss array")


def _paths(r: dict, s: dict, rec: dict, w: str) -> None:
    d, g = r["length_distribution"], r["gradient_by_length"]
    _same_length(f"{w}.length_distribution", d["length"], d["share"])
    _same_length(f"{w}.gradient_by_length", g["length"], g["mean"], g["std"], g["total"])
    if not set(g["length"]) <= set(d["length"]) or len(r["unit_grad_norm"]) != r["units"]:
        raise InputError(f"{w}: its path lengths or units do not agree")
    _shapes(rec, {"unit_grad_norm": (r["units"],),
                  "path_grad": (len(g["length"]), s["samples"])}, w)


def _hessian(r: dict, s: dict, rec: dict, w: str) -> None:
    _same_length(w, r["top_eigenvalues"], r["eigen_iterations"], r["eigen_converged"])
    _shapes(rec, {"trace_samples": (r["trace_samples"],)}, w)


BUILTIN: dict[str, tuple[dict, Callable[[dict, dict, dict, str], None]]] = {
    "lesion": (LESION, _lesion), "landscape": (LANDSCAPE, _landscape),
    "linear_path": (LINEAR_PATH, _linear_path), "paths": (PATHS, _paths),
    "hessian": (HESSIAN, _hessian)}
RECORD = {"probe": STR, "run_id": STR, "digest": STR, "settings_digest": STR,
          "settings": lambda v, w: check(v, {}, w), "seed": INT, "weights": STR,
          "data": {"split": STR, "batch_size": INT}, "model": STR, "condition?": lambda v, w:
          None if v is None else check(v, STR, w), "paper?": STR, "claim?": STR,
          "result": lambda v, w: check(v, {}, w)}


def check_record(rec: dict[str, Any]) -> None:
    """The record as the analysis reads it (module docstring); InputError naming the first
    field that is wrong."""
    from .common import parse_settings, settings_dict
    from .registry import REGISTRY

    check(rec, RECORD, "record")
    name = rec["probe"]
    if name not in REGISTRY.names():
        return  # a plugin's probe, its plugin not loaded: its numbers are read as they are
    probe = REGISTRY.get(name)
    values = rec["settings"]
    try:
        settings = settings_dict(parse_settings(probe.settings, name, dict(values)))
    except (TypeError, ValueError) as exc:  # a plugin's settings may raise ValueError
        raise InputError(f"record.settings: {' '.join(str(exc).split())}") from None
    if name in BUILTIN:
        spec, more = BUILTIN[name]
        check(rec["result"], spec, "record.result")
        more(rec["result"], settings, rec, "record.result")
