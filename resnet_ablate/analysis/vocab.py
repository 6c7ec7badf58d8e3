"""The analysis vocabulary, one home for figures, tables, `compare` and the findings: which
runs count (finished ones), what a condition is called (the paper's legend names, a
plugin's variant by its factors, two conditions that share a name told apart by how they
differ), which runs form a depth series, which plain and residual series pair up (never
pooling shortcut options), which error a metric is, and how a number is written."""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pandas as pd

from ..run import record
from ..run.config import FACTOR

# --metric NAME -> (summary column, what it is, in words)
ERROR_METRICS = {
    "train": ("final_train_err", "final training error, the paper's (train mode, augmented "
                                 "mini-batches, mean of the last evaluation interval)"),
    "train_eval": ("final_train_err_eval", "final training error in eval mode on the "
                                           "training split (train_eval: a seeded subset of "
                                           "it by default, or the whole)"),
    "test": ("final_test_err", "final test error"),
    "val": ("final_val_err", "final validation error"),
    "best_val": ("best_val_err", "best validation error"),
}
TRAIN_ERR_NOTE = ("Training error is the paper's: train mode on augmented mini-batches, "
                  "the mean over the last evaluation interval.")
FAMILY_NAMES = {"plain": "plain", "resnet": "ResNet", "preresnet": "PreResNet"}
DEFAULT_SHORTCUT = {"resnet": "A", "preresnet": "B"}
PAPER_BLOCKS = {"basic", "bottleneck", "preact_basic", "preact_bottleneck"}
PAPER_STEMS = {"cifar", "imagenet"}
# Columns that make the depth of a condition (a series is a condition without them).
DEPTH_COLUMNS = ("depth", "layers")
OPTION_COLUMNS = ("options", "shortcut_options", "stem_options")


def metric(name: str) -> tuple[str, str]:
    if name not in ERROR_METRICS:
        raise ValueError(f"metric must be one of {', '.join(ERROR_METRICS)}; got {name!r}")
    return ERROR_METRICS[name]


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "finished"]


def condition_columns(runs: pd.DataFrame) -> list[str]:
    """The factor columns (resnet_ablate.run.record) the frame has."""
    return [c for c in record.columns([FACTOR]) if c in runs.columns]


def model_columns(runs: pd.DataFrame) -> list[str]:
    """The network's factors (VariantSpec's fields: top-level keys of the record)."""
    return [c for c in condition_columns(runs) if "." not in c and c != "dataset"]


def pm(mean: float, std: float | None = None, digits: int = 2) -> str:
    """12.34 ± 0.56 (the mean alone when there is no spread to show)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = f"{mean:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std:.{digits}f}"
    return text


def num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return fmt.format(value)


def _text(value: Any) -> str:
    """A value as comparable text (missing values included, whatever pandas made of them)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "none"
    return str(value)


def keys(runs: pd.DataFrame, cols: list[str]) -> pd.Series:
    """One text key per row from the given columns."""
    return pd.Series(["|".join(_text(v) for v in row) for row in runs[cols].itertuples(
        index=False)], index=runs.index, dtype=object)


def _varies(values: pd.Series) -> bool:
    return values.map(_text).nunique() > 1


def _options(text: Any) -> dict[str, Any]:
    if isinstance(text, str) and text.startswith("{"):
        return json.loads(text)
    return dict(text) if isinstance(text, dict) else {}


def _short(column: str) -> str:
    """A column as a label shows it: its last part (lr, fingerprint, amp)."""
    return column.rsplit(".", 1)[-1]


def base_label(row: pd.Series | dict, with_depth: bool = True) -> str:
    """The paper's legend names (plain-20, ResNet-56, ResNet-34 (B), PreResNet-110), and a
    variant beyond the paper's parts by its factors: ResNet-110 (gate=exclusive, ...)."""
    family = row.get("family")
    depth = row.get("depth")
    name = FAMILY_NAMES.get(family, str(family))
    text = f"{name}-{int(depth)}" if with_depth and depth is not None and depth == depth \
        else name
    extras = []
    block, stem = row.get("block"), row.get("stem")
    if block and block not in PAPER_BLOCKS:
        extras.append(block)
    if stem and stem not in PAPER_STEMS:
        extras.append(f"{stem} stem")
    shortcut = row.get("shortcut")
    if family in DEFAULT_SHORTCUT and shortcut not in (None, "-", DEFAULT_SHORTCUT[family]):
        extras.append(str(shortcut))
    preset = _preset(family, depth, stem)
    for key in OPTION_COLUMNS:
        own = preset.get(key, {})  # the preset's own options say nothing about the variant
        extras += [f"{k}={v}" for k, v in _options(row.get(key)).items()
                   if k not in own or own[k] != v]
    return text + (f" ({', '.join(extras)})" if extras else "")


def _preset(family: Any, depth: Any, stem: Any) -> dict[str, dict[str, Any]]:
    """The part options of the papers' base net of a family, depth and stem (e.g. the
    CIFAR pre-activation nets' stem_options norm=False): {column: options}."""
    from ..variants.paper import paper_factors

    if not isinstance(family, str) or depth is None or depth != depth:
        return {}
    name = {"plain": "plain{}", "resnet": "resnet{}-A", "preresnet": "preresnet{}"}.get(
        family, "").format(int(depth))
    spec = paper_factors().get(name)
    if spec is None or (stem is not None and spec["stem"] != stem):
        return {}
    return {key: dict(spec[key]) for key in OPTION_COLUMNS}


def _disambiguate(runs: pd.DataFrame, base: pd.Series, by: str) -> pd.Series:
    """Append to each label the factors in which its condition differs from the others
    that share the label: `ResNet-56 (lr=0.05)`."""
    out = base.copy()
    cols = condition_columns(runs)
    for label, idx in base.groupby(base).groups.items():
        group = runs.loc[idx]
        if group[by].nunique() < 2:
            continue
        differ = [c for c in cols if _varies(group[c])]
        for key, sub in group.groupby(by):
            first = sub.iloc[0]
            parts = [f"{_short(c)}={_text(first[c])}" for c in differ]
            out.loc[sub.index] = f"{label} ({', '.join(parts)})"
    return out


def labels(runs: pd.DataFrame) -> pd.Series:
    """One display label per condition, unique among the conditions in `runs`."""
    if runs.empty:
        return pd.Series(dtype=str)
    return _disambiguate(runs, runs.apply(base_label, axis=1), "condition")


def series(runs: pd.DataFrame) -> pd.Series:
    """The depth series of each run: its condition without depth (conditions that differ
    only in depth, as plain-20 ... plain-56 do)."""
    cols = [c for c in condition_columns(runs) if c not in DEPTH_COLUMNS]
    return keys(runs, cols).map(lambda s: hashlib.sha1(s.encode()).hexdigest()[:10])


def series_labels(runs: pd.DataFrame) -> pd.Series:
    """One label per depth series (plain, ResNet, ResNet (B) ...), unique in `runs`."""
    if runs.empty:
        return pd.Series(dtype=str)
    frame = runs.assign(_series=series(runs))
    base = frame.apply(lambda r: base_label(r, with_depth=False), axis=1)
    return _disambiguate(frame, base, "_series")


def scope_key(runs: pd.DataFrame) -> pd.Series:
    """What must be equal for two runs to share a plot or a finding: everything in the
    condition but the network (data set, splits, protocol fields, amp, ...)."""
    model = set(model_columns(runs))
    return keys(runs, [c for c in condition_columns(runs) if c not in model])


def is_paper_net(row: pd.Series) -> bool:
    """Built from the paper's parts only (no block options, paper stems and blocks)."""
    return (row.get("block") in PAPER_BLOCKS and row.get("stem") in PAPER_STEMS
            and not any(_options(row.get(k)) for k in OPTION_COLUMNS))


def plain_residual_pairs(runs: pd.DataFrame) -> list[tuple[pd.DataFrame, pd.DataFrame, str]]:
    """(plain runs, residual runs, shortcut) of one scope each, at the shallowest and the
    deepest depth both have: plain nets against the ResNets of ONE shortcut option (A and
    B are never pooled), the paper's parts only."""
    done = finished(runs)
    if done.empty:
        return []
    done = done[done.apply(is_paper_net, axis=1)]
    out = []
    for _, scope in done.groupby(scope_key(done), sort=True):
        plain = scope[scope["family"] == "plain"]
        for shortcut, res in scope[scope["family"] == "resnet"].groupby("shortcut", sort=True):
            depths = sorted(set(plain["depth"]) & set(res["depth"]))
            if len(depths) >= 2:
                pick = [depths[0], depths[-1]]
                out.append((plain[plain["depth"].isin(pick)], res[res["depth"].isin(pick)],
                            str(shortcut)))
    return out


def describe(runs: pd.DataFrame, metric_text: str | None = None) -> str:
    """The sentence every figure and table carries: how many seeds, how its conditions
    differ, and which error it shows."""
    if runs.empty:
        return ""
    per = runs.groupby("condition")["seed"].nunique()
    n = f"n = {per.min()}" if per.min() == per.max() else f"n = {per.min()}-{per.max()}"
    cols = condition_columns(runs)
    differ = sorted({_short(c) for c in cols if _varies(runs[c])})
    text = f"{n} seed(s) per condition; conditions differ in: {', '.join(differ) or 'nothing'}"
    return text + (f"; shown: {metric_text}" if metric_text else "") + "."
