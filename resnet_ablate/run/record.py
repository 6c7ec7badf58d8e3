"""The run record, declared once: every key a run writes (config.json, summary.json), with
its type, where it sits, and what kind of fact it is. Everything else is a projection:

    factor       changes a result            -> the condition (analysis groups by it)
    numerics     changes rounding only       -> the resume identity (bitwise needs it)
    seed         one sample of a condition   -> the resume identity
    bookkeeping  names, paths, versions      -> neither
    result       measured at the end         -> summary.json only

    condition       = factors                       (condition(), condition_id())
    resume identity = factors + numerics + seed     (identity())
    planned         = the condition before any data is read (fields only the loaded data
                      can tell are None), by the same function  (planned(), planned_run_id())
    W&B config      = the keys marked for W&B, nested as the record is  (wandb_config())
    runs table      = every key, flat, by its dotted path                (columns(), flat())

The model's factors are VariantSpec's fields, the protocol's are Protocol's, the run
settings RunConfig's (each field says its kind and place in its metadata): a new field in
any of them reaches every file, the W&B config, the condition and the analysis's runs table by itself.
Summaries are checked against these types when written and when read back (a record is
data from anywhere). Importing this module imports no torch.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import InputError
from .config import BOOKKEEPING, FACTOR, NUMERICS, RESULT, SEED, RunConfig, TrainRequest

# 4: protocol_fields.bn_batch and run.bn_batch (ghost BN), history.parquet.
SCHEMA_VERSION = 4
STATUSES = ("finished", "diverged", "failed")


@dataclass(frozen=True)
class Key:
    path: tuple[str, ...]
    type: Any  # int, float, str, bool, list, dict, or a union of them with None
    kind: str
    doc: str
    known: str = "plan"  # plan | data | run | end: when its value is known
    wandb: bool = False  # in W&B's run config
    column: str = dataclasses.field(init=False, repr=False)  # the dotted path

    def __post_init__(self) -> None:  # (made once: reading 10,000 summaries asks it 7M times)
        object.__setattr__(self, "column", ".".join(self.path))


def _plain(tp: Any) -> Any:
    """A dataclass field's annotation as the plain JSON type its record value has."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return tuple(_plain(a) for a in typing.get_args(tp))
    if origin is tuple or tp is tuple:
        return list
    if origin is typing.Literal:
        return type(typing.get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, dict):
        return dict
    return tp


def _fields(cls: type) -> Iterable[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, _plain(hints[f.name])


# Results: what a run measured (summary.json only). Errors are percentages.
_RESULTS: tuple[tuple[str, Any, str], ...] = (
    ("status", str, "finished | diverged | failed"),
    ("iterations", int, "iterations trained"),
    ("iterations_planned", int, "the protocol's iterations"),
    ("final_train_err", (float, None), "the paper's training error: train mode, augmented "
                                       "mini-batches, mean of the last evaluation interval"),
    ("final_train_err_running", (float, None), "the same, by its explicit name"),
    ("final_train_err_eval", (float, None), "eval mode, the training split (or the subset "
                                            "of final_train_eval_images)"),
    ("final_train_loss_eval", (float, None), "the same, its loss"),
    ("final_train_eval_images", (int, None), "the training images the eval-mode numbers are "
                                             "over (train_eval; None: off)"),
    ("final_val_err", (float, None), "the held-out split at the last evaluation"),
    ("final_val_loss", (float, None), ""),
    ("final_test_err", (float, None), "the test split, the protocol's test view"),
    ("final_test_loss", (float, None), ""),
    ("final_test_top5_err", (float, None), ""),
    ("final_test_view", (str, None), "single | center | 10crop"),
    ("best_val_err", (float, None), "the lowest validation error of any evaluation"),
    ("best_val_iteration", (int, None), ""),
    ("test_err_at_best_val", (float, None), ""),
    ("diverged_at", (int, None), "the iteration the loss became NaN/inf"),
    ("warmup_end", (int, None), "the iteration the warm-up ended at"),
    ("warmup_capped", bool, "the warm-up ended at warmup_max_iterations"),
    ("images_per_sec", (float, None), "training throughput (evaluations excluded)"),
    ("images_seen", int, ""),
    ("replicas_in_sync", (bool, None), "DDP: every rank ended with the same weights"),
    ("train_time_s", float, ""),
    ("error", (str, None), "why a failed run failed"),
    ("layer_responses", list, "Fig. 7: [{index, layer, std}]"),
    ("layer_responses_split", (str, None), ""),
    ("schedule_warnings", list, "e.g. milestones beyond the last iteration"),
    ("resumed_with", list, "numerics that differed at a resume=... resume_numerics=any"),
    ("train_err_definition", str, ""),
    ("trained_on", str, "the training images, in words"),
    ("errors_in", str, "percent"),
    ("wandb", dict, "the W&B run: mode, id, project, dir"),
    ("finished_at", str, ""),
)

# What the record keeps beyond the three dataclasses: (path, type, kind, doc, known, wandb).
_OTHERS: tuple[tuple[tuple[str, ...], Any, str, str, str, bool], ...] = (
    (("data", "mode"), str, FACTOR, "tensor | loader (how images are augmented)", "data", True),
    (("data", "fingerprint"), (str, None), FACTOR,
     "the data set's content: class names, files per split, (path, size) digest", "data",
     True),
    (("data", "split_sizes"), dict, FACTOR, "images per split", "data", True),
    (("data", "val_source"), str, BOOKKEEPING, "where the validation split came from", "data",
     False),
    (("data", "input_size"), int, BOOKKEEPING, "the side of the images the model sees", "data",
     False),
    (("run", "world_size"), int, FACTOR, "processes (each has its own batch statistics)",
     "run", True),
    (("run", "device"), str, NUMERICS, "cpu | cuda (the device type)", "run", True),
    (("run", "threads"), int, NUMERICS, "torch's intra-op threads", "run", True),
    (("run", "bn_batch"), int, BOOKKEEPING, "the images each BN normalised over: bn_batch, or "
                                            "a process's whole batch where that is smaller "
                                            "(a function of the factors)", "run", True),
    (("overrides", "words"), list, BOOKKEEPING, "the train words as given", "plan", False),
    (("overrides", "model"), dict, BOOKKEEPING, "model.* overrides", "plan", False),
    (("overrides", "protocol"), dict, BOOKKEEPING, "protocol fields unlike the preset's",
     "plan", False),
    (("params",), int, BOOKKEEPING, "parameters (a function of the model's factors)", "data",
     True),
    (("macs",), int, BOOKKEEPING, "conv + fc multiply-accumulates per image", "data", True),
    (("plugins",), list, BOOKKEEPING, "plugins loaded (module names or .py paths)", "plan",
     False),
    (("versions",), dict, BOOKKEEPING, "resnet_ablate, network (the version that defines "
                                       "the network), torch, python", "run", False),
    (("env",), dict, BOOKKEEPING, "CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS, SLURM_JOB_ID", "run",
     False),
    (("condition",), str, BOOKKEEPING, "the condition's id (a digest of its factors)", "data",
     True),
    (("planned_condition",), (str, None), BOOKKEEPING,
     "what a sweep names the run by: its condition before any data is read and where its "
     "data is (the digest in <model>-s<seed>-<digest>); a sweep finds a condition's seeds "
     "by it, never by parsing names", "plan", False),
    (("history_granularity",), (str, None), BOOKKEEPING,
     "how history.parquet was logged: null, every iteration (the harness); window:N, pulled "
     "from W&B (training numbers are means over N iterations, evaluations rows of their own)",
     "end", False),
)


@functools.lru_cache(maxsize=None)
def keys() -> tuple[Key, ...]:
    """The schema: every key of a record, in file order."""
    from ..variants.spec import VariantSpec
    from .protocol import Protocol

    out = [Key(("schema",), int, BOOKKEEPING, "the record's format version"),
           Key(("run_id",), str, BOOKKEEPING, "the run's folder name")]
    for f, tp in _fields(VariantSpec):
        if f.name == "name":
            out.append(Key(("model",), str, BOOKKEEPING, "the variant's registered name",
                           wandb=True))
        else:  # num_classes and in_chans follow the data unless overridden
            out.append(Key((f.name,), tp, FACTOR, f"model factor {f.name}", wandb=True,
                           known="data" if f.name in ("num_classes", "in_chans") else "plan"))
    out.append(Key(("protocol",), str, BOOKKEEPING, "the protocol preset", wandb=True))
    for f, tp in _fields(Protocol):
        if f.name != "name":
            out.append(Key(("protocol_fields", f.name), tp, FACTOR, f.metadata["help"],
                           wandb=True))
    for f, tp in _fields(RunConfig):
        kind, at = f.metadata["kind"], f.metadata["at"]
        if at in (("model",), ("protocol",), ("run_id",)):
            continue  # resolved above (the registry's spelling, the preset's name)
        path = at or ("settings", f.name)
        out.append(Key(path, tp, kind, f.metadata["help"],
                       wandb=kind != BOOKKEEPING or path == ("data", "data_dir")
                       or f.name == "log_every"))
    for path, tp, kind, doc, known, wandb in _OTHERS:
        out.append(Key(path, tp, kind, doc, known, wandb))
    for name, tp, doc in _RESULTS:
        out.append(Key((name,), tp, RESULT, doc, "end"))
    columns = [k.column for k in out]
    assert len(columns) == len(set(columns)), "every key once"
    return tuple(out)


def by_column() -> dict[str, Key]:
    return {k.column: k for k in keys()}


def columns(kinds: Iterable[str] | None = None) -> list[str]:
    wanted = set(kinds) if kinds is not None else None
    return [k.column for k in keys() if wanted is None or k.kind in wanted]


# ---------------------------------------------------------------------------- values
def _json_type(value: Any, tp: Any) -> bool:
    types_ = tp if isinstance(tp, tuple) else (tp,)
    for t in types_:
        if t is None or t is type(None):
            if value is None:
                return True
        elif t is bool:
            if isinstance(value, bool):
                return True
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif t is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    isinstance(value, int) or math.isfinite(value)):
                return True
        elif isinstance(t, type) and isinstance(value, t):
            return True
    return False


@functools.lru_cache(maxsize=1)
def _plain_types() -> dict[str, frozenset[type]]:
    """Each column's accepted Python types, exactly (bool is not int; an int is a float's)."""
    out = {}
    for k in keys():
        types_ = set(k.type if isinstance(k.type, tuple) else (k.type,)) - {None, type(None)}
        out[k.column] = frozenset(types_ | ({int} if float in types_ else set()))
    return out


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a finite number", str: "a string",
             bool: "true or false", list: "a list", dict: "a mapping", None: "null",
             type(None): "null"}
    types_ = tp if isinstance(tp, tuple) else (tp,)
    return " or ".join(names.get(t, str(t)) for t in types_)


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """Flat {column: value} -> the record's nested layout, in schema order. A column the
    schema does not declare is a bug (nothing writes an undeclared key)."""
    declared = by_column()
    undeclared = sorted(set(values) - set(declared))
    if undeclared:
        raise KeyError(f"not in the run record's schema: {', '.join(undeclared)}")
    out: dict[str, Any] = {}
    for key in keys():
        if key.column in values:
            node = out
            for part in key.path[:-1]:
                node = node.setdefault(part, {})
            node[key.path[-1]] = values[key.column]
    return out


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """The record's nested layout -> {column: value} for every declared key present, in
    schema order (walked over the record's own keys: a summary is read per run)."""
    found: dict[str, Any] = {}
    groups, order, declared = _layout()
    for name, value in record.items():
        if name in declared:
            found[name] = value
        elif name in groups and isinstance(value, dict):
            for sub, v in value.items():
                column = f"{name}.{sub}"
                if column in declared:
                    found[column] = v
    return {c: found[c] for c in order if c in found}


@functools.lru_cache(maxsize=1)
def _layout() -> tuple[frozenset[str], tuple[str, ...], frozenset[str]]:
    """(the record's nested groups, every column in schema order, the same as a set): one
    level of nesting."""
    paths = [k.path for k in keys()]
    assert all(len(p) <= 2 for p in paths), "flat() walks one level of nesting"
    order = tuple(k.column for k in keys())
    return frozenset(p[0] for p in paths if len(p) == 2), order, frozenset(order)


def check(record: Any, what: str = "summary.json", required: Iterable[str] = (
        "run_id", "model", "family", "depth", "status")) -> dict[str, Any]:
    """A record's keys against their declared types: a one-line InputError naming the first
    that is missing or wrong (NaN where an integer belongs, a list for a mapping, ...).
    Returns it flat."""
    if not isinstance(record, dict):
        raise InputError(f"{what} is not an object")
    values = flat(record)
    for column in required:
        if column not in values:
            raise InputError(f"{what} lacks {column}")
    declared, plain = by_column(), _plain_types()
    for column, value in values.items():
        if value is None or (type(value) in plain[column] and (
                type(value) is not float or math.isfinite(value))):
            continue  # None: not known; a value of its exact type (most): no more to check
        key = declared[column]
        if not _json_type(value, key.type):
            raise InputError(f"{what}: {column} must be {_type_name(key.type)}; got "
                             f"{_short(value)}")
    if "status" in values and values["status"] not in STATUSES:
        raise InputError(f"{what}: status {values['status']!r} is none of "
                         f"{', '.join(STATUSES)}")
    if isinstance(values.get("depth"), int) and values["depth"] < 1:
        raise InputError(f"{what}: depth must be a positive integer; got {values['depth']}")
    responses = values.get("layer_responses") or []
    if not all(isinstance(r, dict) and isinstance(r.get("index"), int) and isinstance(
            r.get("layer"), str) and _json_type(r.get("std"), float) for r in responses):
        raise InputError(f"{what}: layer_responses must be a list of {{index: integer, "
                         "layer: string, std: number}}")
    return values


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------- projections
def canonical(value: Any) -> Any:
    """Lists and mappings as canonical JSON text (hashable, comparable); scalars as they are:
    the form a record's values take in a table."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def digest(values: Any, n: int = 10) -> str:
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def _project(values: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    return {k.column: canonical(values.get(k.column)) for k in keys() if k.kind in kinds}


def condition(values: dict[str, Any]) -> dict[str, Any]:
    """The factors of a flat record (values as canonical text): runs of one condition
    differ only by seed, numerics and bookkeeping."""
    return _project(values, (FACTOR,))


def condition_id(values: dict[str, Any]) -> str:
    return digest(condition(values))


def identity(values: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint: factors, numerics and seed."""
    return _project(values, (FACTOR, NUMERICS, SEED))


def identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, "column: checkpoint X, now Y") of every column that differs."""
    kinds = by_column()
    out = []
    for column in sorted(set(old) | set(new), key=lambda c: list(kinds).index(c)
                         if c in kinds else len(kinds)):
        if old.get(column) != new.get(column):
            kind = kinds[column].kind if column in kinds else FACTOR
            out.append((kind, f"{column}: checkpoint {old.get(column)!r}, now "
                              f"{new.get(column)!r}"))
    return out


def wandb_config(values: dict[str, Any]) -> dict[str, Any]:
    """W&B's run config: the factors, numerics and seed, the model's and protocol's names,
    where the data came from and the logging window, nested as the record is."""
    marked = {k.column for k in keys() if k.wandb or k.kind in (FACTOR, NUMERICS, SEED)}
    return nest({c: v for c, v in values.items() if c in marked})


def results(values: dict[str, Any]) -> dict[str, Any]:
    """The measured part of a flat record (W&B's run summary)."""
    return {c: v for c, v in values.items() if by_column()[c].kind == RESULT}


# ---------------------------------------------------------------------------- building
def resolved(request: TrainRequest, spec: Any, *, data: dict[str, Any] | None = None,
             run: dict[str, Any] | None = None, **others: Any) -> dict[str, Any]:
    """The flat record of a train request: its spec (resolved), protocol, settings, and, once
    known, what the data (`data.*`, params, macs) and the process (`run.*`, versions, env)
    tell. Unknown values stay None: the planned record of a sweep is this, before data."""
    cfg = request.config
    values: dict[str, Any] = {"schema": SCHEMA_VERSION, "run_id": cfg.run_id or None,
                              "model": spec.name, "protocol": request.protocol.name}
    for name, value in spec.factors().items():
        if name != "name":
            values[name] = value
    if data is None:  # planned: what only the data can tell is unknown (unless asked for)
        for name in ("num_classes", "in_chans"):
            if name not in request.model_overrides:
                values[name] = None
    for name, value in request.protocol.fields().items():
        values[f"protocol_fields.{name}"] = value
    for f in dataclasses.fields(RunConfig):
        at = f.metadata["at"]
        if at in (("model",), ("protocol",), ("run_id",)):
            continue
        values[".".join(at or ("settings", f.name))] = getattr(cfg, f.name)
    if not cfg.compile:
        values["run.compile_backend"] = None  # no compiler, no backend: nothing to match
        values["run.compile_mode"] = None
    if data is None:
        values["data.mode"] = None if cfg.data_mode == "auto" else cfg.data_mode
    values["overrides.words"] = list(request.words)
    values["overrides.model"] = {k: (dict(v) if isinstance(v, dict) else list(v)
                                     if isinstance(v, tuple) else v)
                                 for k, v in request.model_overrides.items()}
    values["overrides.protocol"] = request.protocol_overrides
    for column, value in {**(data or {}), **(run or {})}.items():
        values[column] = value
    values.update(others)
    for key in keys():
        if key.kind != RESULT:
            values.setdefault(key.column, None)
    values["condition"] = condition_id(values)
    return values


def planned_run_id(request: TrainRequest, spec: Any) -> str:
    """A run's name in sweeps and experiments: its planned condition (`spec`: the request's,
    before any data, variants.resolve), where its data is, and its seed, readable in front:
    <model>-s<seed>-<digest>. Recorded in the run's summary (planned_run_id), never parsed
    back out of a name."""
    return f"{spec.name}-s{request.config.seed}-{planned_condition(request, spec)}"


def planned_condition(request: TrainRequest, spec: Any) -> str:
    """The planned condition and where its data is, as one digest (recorded in the
    summary; a run's classes and channels, which only its data gives, are left out)."""
    values = resolved(request, spec)
    return digest({**condition(values), "data.data_dir": values["data.data_dir"]})
