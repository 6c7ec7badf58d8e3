"""The run configuration of `resnet-ablate train key=value ...`.

Three kinds of keys: run settings (RunConfig), protocol fields (`lr=0.05`), and model
overrides prefixed `model.` (`model.zero_init_residual=true`). The habit of timm's train.py
works too: `--model resnet20-A --lr=0.05`. Each setting declares once, in its field, what it
means, what kind of fact it is in the run's record (a factor of the result, numerics, or
bookkeeping: `resnet_ablate.run.record`) and where the record keeps it. Importing this
module imports no torch (`train --help` lists everything from it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InputError, unknown
from ..variants.spec import OVERRIDE_KEYS, VariantSpec
from .protocol import PROTOCOLS, Protocol, apply_overrides, get_protocol, protocol_help, \
    protocol_keys
from .words import field_types, parse_value, split_words, type_name

# Kinds of facts in a run's record (resnet_ablate.run.record says what each one joins).
FACTOR, NUMERICS, SEED, BOOKKEEPING, RESULT = "factor", "numerics", "seed", "bookkeeping", \
    "result"


def _s(default: Any, help: str, kind: str = BOOKKEEPING, at: tuple[str, ...] = ()) -> Any:
    """A run setting: its default, its help, its kind and where the record keeps it
    (default: settings.<name>)."""
    return field(default=default, metadata={"help": help, "kind": kind, "at": at})


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


MAX_WORKERS_PER_CORE = 4
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise InputError(f"run_id must be 1-128 ASCII letters, digits, '-', '_' or '.', not "
                         f"starting with '-' or '.'; got {run_id!r}")
    return run_id


@dataclass(frozen=True)
class RunConfig:
    model: str = _s("resnet20-A", "variant name (see `resnet-ablate models`)", at=("model",))
    dataset: Literal["digits", "cifar10", "cifar100", "imagefolder"] = _s(
        "digits", "digits (bundled), cifar10, cifar100 (torchvision's format) or imagefolder",
        FACTOR, ("dataset",))
    data_dir: str = _s("data", "where the data set is (or goes, for a CIFAR download); "
                               "default: $RESNET_ABLATE_DATA when set, else data",
                       at=("data", "data_dir"))
    download: bool = _s(True, "fetch CIFAR into data_dir when absent and the network allows")
    data_mode: Literal["auto", "tensor", "loader"] = _s(
        "auto", "tensor: images held whole on the device; loader: DataLoader workers; auto: "
                "loader for images over 64 px")
    protocol: str = _s("auto", "he2015-cifar, he2016-cifar, he2015-imagenet, demo; auto: the "
                               "data set's", at=("protocol",))
    seed: int = _s(0, "model init and data order (the validation split has its own "
                      "split_seed)", SEED, ("seed",))
    runs_dir: str = _s("runs", "where runs/<run_id>/ go")
    run_id: str = _s("", "the run's folder name (letters, digits, -, _, .); empty: "
                         "model-dataset-seed-time", at=("run_id",))
    resume: Literal["false", "true", "auto"] = _s(
        "false", "true: continue run_id from its last checkpoint; auto: if it has one")
    resume_numerics: Literal["same", "any"] = _s(
        "same", "same: a resume needs the checkpoint's numerics (device, threads, "
                "channels_last, deterministic, compile), so it continues bit for bit; any: "
                "continue under others (recorded; not bitwise)")
    checkpoint_every: int = _s(1000, "iterations between checkpoints (0: only at the end and "
                                     "on SIGTERM)")
    keep_checkpoints: int = _s(2, "how many of the newest checkpoints stay")
    device: Literal["auto", "cpu", "cuda"] = _s("auto", "auto (CUDA if present), cpu, cuda")
    amp: Literal["off", "bf16"] = _s("off", "off or bf16 autocast", FACTOR, ("run", "amp"))
    channels_last: bool = _s(True, "NHWC memory format (measured faster on CPU and GPU)",
                             NUMERICS, ("run", "channels_last"))
    deterministic: bool = _s(False, "deterministic algorithms only (cuDNN included): "
                                    "reproducible on GPUs", NUMERICS, ("run", "deterministic"))
    compile: bool = _s(False, "torch.compile the network (slow first step)", NUMERICS,
                       ("run", "compile"))
    compile_backend: str | None = _s("inductor", "torch.compile's backend: inductor, or aot_eager "
                                          "(no C++ toolchain)", NUMERICS,
                              ("run", "compile_backend"))
    compile_mode: Literal["default", "reduce-overhead", "max-autotune",
                          "max-autotune-no-cudagraphs"] | None = _s(
        "default", "torch.compile's mode (inductor's): reduce-overhead replays CUDA graphs "
                   "(fewer kernel launches; GPU only)", NUMERICS, ("run", "compile_mode"))
    wandb: Literal["auto", "online", "offline", "disabled"] = _s(
        "auto", "auto (online if logged in, else offline), online, offline, disabled")
    wandb_project: str = _s("resnet-ablate", "W&B project")
    wandb_group: str = _s("", "W&B group (sweeps set it to the sweep's name)")
    wandb_entity: str = _s("", "W&B entity (user or team)")
    log_every: int = _s(100, "iterations between logged training numbers (W&B's training "
                             "numbers are means over this window)")
    progress: Literal["auto", "bar", "lines", "off"] = _s(
        "auto", "auto (bar on a terminal, else lines), bar, lines, off")
    num_workers: int = _s(4, "DataLoader workers (loader mode)")
    eval_batch_size: int = _s(1000, "images per evaluation batch")
    responses: bool = _s(True, "record Fig. 7's layer responses at the end")
    # The eval-mode pass over the whole training split cost 122 s of a 600-iteration CIFAR
    # run on a CPU (35% of it); the paper's training error is the running one, so this second
    # number is worth a subset: 10,000 images put it within +-0.9 pp (95%) of the whole split's.
    train_eval: Literal["subset", "full", "off"] = _s(
        "subset", "the final eval-mode error on the training split (final_train_err_eval): "
                  "subset (train_eval_size images drawn with split_seed, the same in every "
                  "run; the paper's training error is the running one, so a subset is "
                  "enough), full, off")
    train_eval_size: int = _s(10_000, "images of the training split the subset has (the "
                                      "whole split when it is smaller)")
    probes: str = _s("", "probes of the finished run, at their default settings, comma-"
                         "separated: lesion, landscape, linear_path, paths, hessian or a "
                         "plugin's (other settings: `resnet-ablate probe`)")
    plugins: str = _s("", "modules or .py files that register blocks/variants, "
                          "comma-separated")
    max_params: int = _s(3_000_000_000, "refuse models with more parameters (counted before "
                                        "building)")
    max_activations: int = _s(1_000_000_000, "refuse models with more activations per image")

    def __post_init__(self) -> None:
        for key in ("log_every", "eval_batch_size", "keep_checkpoints", "max_params",
                    "max_activations", "train_eval_size"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be a positive integer; got {getattr(self, key)}")
        for key in ("checkpoint_every", "num_workers", "seed"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be >= 0; got {getattr(self, key)}")
        if self.num_workers > MAX_WORKERS_PER_CORE * _cores():
            raise InputError(f"num_workers must be in [0, {MAX_WORKERS_PER_CORE * _cores()}] "
                             f"({MAX_WORKERS_PER_CORE} per core of this machine); got "
                             f"{self.num_workers}")
        if self.seed >= 2 ** 63 - 2_000_000:
            raise InputError(f"seed must be below 2**63; got {self.seed}")
        if self.run_id:
            check_run_id(self.run_id)
        if self.protocol != "auto" and self.protocol not in PROTOCOLS:
            raise unknown("protocol", self.protocol, [*PROTOCOLS, "auto"])
        if self.compile and self.compile_mode not in (None, "default") and \
                self.compile_backend != "inductor":  # other backends ignore a mode
            raise InputError(f"compile_mode={self.compile_mode} needs compile_backend=inductor; "
                             f"got compile_backend={self.compile_backend}")
        if not self.runs_dir:
            raise InputError("runs_dir must name a folder")
        from ..tracking import check_names

        check_names(self.wandb_project, self.wandb_entity, self.wandb_group)


def run_help() -> dict[str, str]:
    return {f.name: f.metadata["help"] for f in dataclasses.fields(RunConfig)}


@dataclass(frozen=True)
class TrainRequest:
    """Everything `train` was asked for, parsed and validated."""
    config: RunConfig
    protocol: Protocol
    model_overrides: dict[str, Any]
    words: tuple[str, ...]  # the overrides as given, recorded with the run

    @property
    def protocol_overrides(self) -> dict[str, Any]:
        base = get_protocol(self.protocol.name).fields()
        return {k: v for k, v in self.protocol.fields().items() if v != base[k]}


def model_override_types() -> dict[str, Any]:
    return {k: t for k, t in field_types(VariantSpec).items() if k in OVERRIDE_KEYS}


def known_keys() -> list[str]:
    return ([f.name for f in dataclasses.fields(RunConfig)] + protocol_keys()
            + [f"model.{k}" for k in OVERRIDE_KEYS])


def normalise_words(argv: list[str]) -> list[str]:
    """`key=value` words from either habit: ours (key=value), timm's train.py (--key value,
    --key=value, --flag for a true boolean). Dashes in keys become underscores."""
    bools = {k for k, t in field_types(RunConfig).items() if t is bool}
    bools |= {k for k, t in field_types(Protocol).items() if t is bool}
    words, i = [], 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("--") and "=" not in word:
            key = word[2:].replace("-", "_")
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if key in bools and (nxt is None or nxt.startswith("--") or "=" in nxt):
                words.append(f"{key}=true")
            elif nxt is None:
                raise InputError(f"{word} needs a value (e.g. {word} VALUE or {word}=VALUE)")
            else:
                words.append(f"{key}={nxt}")
                i += 1
        elif word.startswith("--"):
            key, _, value = word[2:].partition("=")
            words.append(f"{key.replace('-', '_')}={value}")
        else:
            words.append(word)
        i += 1
    return words


# W&B's agent and the local sweep runner name the run through the environment; the user
# names where the data is (for every run, bundled sweeps included) with RESNET_ABLATE_DATA.
ENVIRONMENT = {"run_id": "WANDB_RUN_ID", "runs_dir": "RESNET_ABLATE_RUNS_DIR",
               "resume": "RESNET_ABLATE_RESUME",
               "resume_numerics": "RESNET_ABLATE_RESUME_NUMERICS",
               "data_dir": "RESNET_ABLATE_DATA"}


# Names other trainers (timm's train.py, Keras, PyTorch examples) and the papers' readers
# reach for first, and ours: a key the user typed gets "did you mean" ours.
HABITS = {"learning_rate": "lr", "lr_base": "lr", "base_lr": "lr", "wd": "weight_decay",
          "epochs": "iterations", "num_epochs": "iterations", "max_epochs": "iterations",
          "decay_milestones": "milestones", "lr_milestones": "milestones",
          "decay_rate": "lr_gamma", "gamma": "lr_gamma", "sched": "lr_schedule",
          "scheduler": "lr_schedule", "warmup_epochs": "warmup_iterations",
          "num_classes": "model.num_classes", "workers": "num_workers", "batch": "batch_size",
          "output": "runs_dir", "experiment": "run_id"}
# Epoch-counted habits; ours count iterations (the paper does: "terminate training at 64k
# iterations").
_IN_EPOCHS = {"epochs", "num_epochs", "max_epochs", "decay_milestones", "warmup_epochs"}
# Training images before any hold-out, where a data set's size is fixed (digits: 1,797 less
# its fixed 20% test split).
TRAIN_IMAGES = {"digits": 1797 - 1797 // 5, "cifar10": 50_000, "cifar100": 50_000}


def _training_images(dataset: str, data_dir: str) -> int | None:
    """The training split's images, before the protocol's hold-out (None if unknown)."""
    if dataset in TRAIN_IMAGES:
        return TRAIN_IMAGES[dataset]
    try:
        from pathlib import Path

        from ..data import folders

        train = folders.splits(Path(data_dir))["train"]
        return len(folders.list_images(train, folders.classes_of(train)))
    except (OSError, InputError, KeyError):
        return None


def _habit(key: str, text: str, words: list[str]) -> InputError | None:
    """"unknown train key 'epochs'; did you mean iterations=3907? ..." for a habit's key;
    None for any other."""
    ours = HABITS.get(key)
    if ours is None:
        return None
    said = f"unknown train key {key!r}; did you mean {ours}"
    if key not in _IN_EPOCHS:
        return InputError(f"{said}? ({ours}={text})")
    if ours != "iterations":
        return InputError(f"{said}? (in iterations, not epochs: the paper counts iterations)")
    try:  # the rest of the words, parsed as `train` would: the data set and the protocol
        rest = parse_train_words([w for w in words if w.partition("=")[0].lstrip("-")
                                  .replace("-", "_") != key])
        epochs = float(text)
    except (InputError, ValueError):
        return InputError(f"{said}? (the paper counts iterations: iterations = epochs x "
                          "training images / batch_size)")
    p, cfg = rest.protocol, rest.config
    images = _training_images(cfg.dataset, cfg.data_dir)
    if images is None or not math.isfinite(epochs) or epochs <= 0:
        return InputError(f"{said}? (the paper counts iterations: iterations = epochs x "
                          f"training images / batch_size {p.batch_size})")
    trained = images - p.val_size if 0 < p.val_size < images else images
    iterations = max(1, math.ceil(epochs * trained / p.batch_size))
    return InputError(f"{said}={iterations}? (the paper counts iterations: {text} epochs of "
                      f"{trained:,} {cfg.dataset} training images at batch_size {p.batch_size} "
                      f"under {p.name})")


def parse_train_words(words: list[str]) -> TrainRequest:
    from ..variants.plugins import load as load_plugins, split as split_plugins

    run_types = field_types(RunConfig)
    model_types = model_override_types()
    run_values: dict[str, Any] = {}
    proto_words: dict[str, str] = {}
    model_words: dict[str, str] = {}
    words = normalise_words(list(words))
    for key, text in split_words(words):
        if key in run_types:
            run_values[key] = parse_value(key, text, run_types[key])
        elif key in protocol_keys():
            proto_words[key] = text
        elif key.startswith("model."):
            sub = key[len("model."):]
            if sub not in model_types:
                raise unknown("model override", key, [f"model.{k}" for k in OVERRIDE_KEYS])
            model_words[sub] = text
        else:
            raise _habit(key, text, words) or unknown("train key", key, sorted(known_keys()))
    for key, var in ENVIRONMENT.items():
        if key not in run_values and os.environ.get(var):
            run_values[key] = parse_value(key, os.environ[var], run_types[key])
    config = RunConfig(**run_values)
    if config.plugins:  # before the model name is looked up: it may be a plugin's
        load_plugins(split_plugins(config.plugins))
    model_overrides = {k: parse_value(f"model.{k}", t, model_types[k])
                       for k, t in model_words.items()}
    protocol_name = config.protocol
    if protocol_name == "auto":
        from ..data.catalog import default_protocol

        protocol_name = default_protocol(config.dataset, config.data_dir)
    protocol = apply_overrides(get_protocol(protocol_name), proto_words)
    config = dataclasses.replace(config, protocol=protocol_name)
    return TrainRequest(config=config, protocol=protocol, model_overrides=model_overrides,
                        words=tuple(words))


def settings_help() -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every train setting, protocol defaults included."""
    rows = []
    for f in dataclasses.fields(RunConfig):
        rows.append((f.name, type_name(field_types(RunConfig)[f.name]), repr(f.default),
                     f.metadata["help"]))
    defaults = {name: p.fields() for name, p in PROTOCOLS.items()}
    helps = protocol_help()
    for key in protocol_keys():
        shown = "; ".join(f"{n}: {_short(defaults[n][key])}" for n in PROTOCOLS)
        rows.append((key, type_name(field_types(Protocol)[key]), shown, helps[key]))
    for key in OVERRIDE_KEYS:
        rows.append((f"model.{key}", type_name(model_override_types()[key]), "the variant's",
                     f"change the variant's {key}"))
    return rows


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
