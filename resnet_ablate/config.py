"""The run configuration of `resnet-ablate train key=value ...`.

Three kinds of keys: run settings (RunConfig), protocol fields (`lr=0.05`), and model
overrides prefixed `model.` (`model.zero_init_residual=true`). The habit of timm's train.py
works too: `--model resnet20-A --lr=0.05`. Every override is recorded with the run.
Importing this module imports no torch (`train --help` lists everything from it).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

from .overrides import field_types, parse_value, split_words, type_name, unknown_key_error
from .protocol import PROTOCOLS, Protocol, apply_overrides, get_protocol, protocol_keys
from .spec import OVERRIDE_KEYS, VariantSpec
from .errors import InputError

DATASET_NAMES = ("digits", "cifar10", "cifar100", "imagefolder")  # data.catalog.DATASETS


@dataclass(frozen=True)
class RunConfig:
    model: str = "resnet20-A"
    dataset: Literal["digits", "cifar10", "cifar100", "imagefolder"] = "digits"
    data_dir: str = "data"
    download: bool = True
    data_mode: Literal["auto", "tensor", "loader"] = "auto"
    protocol: str = "auto"
    seed: int = 0
    runs_dir: str = "runs"
    run_id: str = ""
    resume: Literal["false", "true", "auto"] = "false"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16"] = "off"
    channels_last: bool = True
    deterministic: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    wandb_project: str = "resnet-ablate"
    wandb_group: str = ""
    wandb_entity: str = ""
    log_every: int = 100
    progress: Literal["auto", "bar", "lines", "off"] = "auto"
    num_workers: int = 4
    eval_batch_size: int = 1000
    responses: bool = True
    plugins: str = ""
    max_params: int = 3_000_000_000
    max_activations: int = 1_000_000_000

    def __post_init__(self) -> None:
        for key in ("log_every", "eval_batch_size", "keep_checkpoints", "max_params",
                    "max_activations"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be a positive integer; got {getattr(self, key)}")
        for key in ("checkpoint_every", "num_workers", "seed"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be >= 0; got {getattr(self, key)}")
        if self.seed >= 2 ** 63 - 2_000_000:
            raise InputError(f"seed must be below 2**63; got {self.seed}")
        if self.run_id:
            from .rundir import check_run_id

            check_run_id(self.run_id)
        if self.protocol != "auto" and self.protocol not in PROTOCOLS:
            raise unknown_key_error(self.protocol, list(PROTOCOLS) + ["auto"], "protocol")
        if not self.runs_dir:
            raise InputError("runs_dir must name a folder")


# One line per setting, for `train --help` (a test checks that every field has one).
RUN_HELP = {
    "model": "variant name (see `resnet-ablate models`)",
    "dataset": "digits (bundled), cifar10, cifar100 (torchvision's format) or imagefolder",
    "data_dir": "where the data set is (or goes, for a CIFAR download)",
    "download": "fetch CIFAR into data_dir when absent and the network allows",
    "data_mode": "tensor: images held whole on the device; loader: DataLoader workers; "
                 "auto: loader for images over 64 px",
    "protocol": "he2015-cifar, he2015-imagenet, demo; auto: the data set's",
    "seed": "model init and data order (the validation split has its own split_seed)",
    "runs_dir": "where runs/<run_id>/ go",
    "run_id": "the run's folder name (letters, digits, -, _, .); empty: model-dataset-seed-time",
    "resume": "true: continue run_id from its last checkpoint; auto: if it has one",
    "checkpoint_every": "iterations between checkpoints (0: only at the end and on SIGTERM)",
    "keep_checkpoints": "how many of the newest checkpoints stay",
    "device": "auto (CUDA if present), cpu, cuda",
    "amp": "off or bf16 autocast",
    "channels_last": "NHWC memory format (measured faster on CPU and GPU)",
    "deterministic": "deterministic algorithms only (cuDNN included): reproducible on GPUs",
    "compile": "torch.compile the network (slow first step)",
    "compile_backend": "torch.compile's backend: inductor, or aot_eager (no C++ toolchain)",
    "wandb": "auto (online if logged in, else offline), online, offline, disabled",
    "wandb_project": "W&B project",
    "wandb_group": "W&B group (sweeps set it to the sweep's name)",
    "wandb_entity": "W&B entity (user or team)",
    "log_every": "iterations between logged training numbers",
    "progress": "auto (bar on a terminal, else lines), bar, lines, off",
    "num_workers": "DataLoader workers (loader mode)",
    "eval_batch_size": "images per evaluation batch",
    "responses": "record Fig. 7's layer responses at the end",
    "plugins": "modules or .py files that register blocks/variants, comma-separated",
    "max_params": "refuse models with more parameters (counted before building)",
    "max_activations": "refuse models with more activations per image",
}


@dataclass(frozen=True)
class TrainRequest:
    """Everything `train` was asked for, parsed and validated."""
    config: RunConfig
    protocol: Protocol
    model_overrides: dict[str, Any]
    words: tuple[str, ...]  # the overrides as given, recorded with the run

    @property
    def protocol_overrides(self) -> dict[str, Any]:
        base = get_protocol(self.protocol.name)
        return {k: v for k, v in self.protocol.fields().items() if v != base.fields()[k]}


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


def parse_train_words(words: list[str]) -> TrainRequest:
    from .plugins import load as load_plugins, split as split_plugins

    run_types = field_types(RunConfig)
    model_types = model_override_types()
    run_values: dict[str, Any] = {}
    proto_words: dict[str, str] = {}
    model_words: dict[str, str] = {}
    for key, text in split_words(normalise_words(list(words))):
        if key in run_types:
            run_values[key] = parse_value(key, text, run_types[key])
        elif key in protocol_keys():
            proto_words[key] = text
        elif key.startswith("model."):
            sub = key[len("model."):]
            if sub not in model_types:
                raise unknown_key_error(key, [f"model.{k}" for k in OVERRIDE_KEYS],
                                        "model override")
            model_words[sub] = text
        else:
            raise unknown_key_error(key, known_keys(), "train key")
    # W&B's agent and the local sweep runner name the run through the environment.
    env = {"run_id": "WANDB_RUN_ID", "runs_dir": "RESNET_ABLATE_RUNS_DIR",
           "resume": "RESNET_ABLATE_RESUME"}
    for key, var in env.items():
        if key not in run_values and os.environ.get(var):
            run_values[key] = parse_value(key, os.environ[var], run_types[key])
    config = RunConfig(**run_values)
    if config.plugins:  # before the model name is looked up: it may be a plugin's
        load_plugins(split_plugins(config.plugins))
    model_overrides = {k: parse_value(f"model.{k}", t, model_types[k])
                       for k, t in model_words.items()}
    protocol_name = config.protocol
    if protocol_name == "auto":
        from .data.catalog import default_protocol

        protocol_name = default_protocol(config.dataset, config.data_dir)
    protocol = apply_overrides(get_protocol(protocol_name), proto_words)
    config = dataclasses.replace(config, protocol=protocol_name)
    return TrainRequest(config=config, protocol=protocol, model_overrides=model_overrides,
                        words=tuple(words))


def settings_help() -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every train setting, protocol defaults included."""
    from .protocol import PROTOCOL_HELP

    rows = []
    for f in dataclasses.fields(RunConfig):
        rows.append((f.name, type_name(field_types(RunConfig)[f.name]), repr(f.default),
                     RUN_HELP[f.name]))
    defaults = {name: p.fields() for name, p in PROTOCOLS.items()}
    for key in protocol_keys():
        shown = "; ".join(f"{n}: {_short(defaults[n][key])}" for n in PROTOCOLS)
        rows.append((key, type_name(field_types(Protocol)[key]), shown, PROTOCOL_HELP[key]))
    for key in OVERRIDE_KEYS:
        rows.append((f"model.{key}", type_name(model_override_types()[key]), "the variant's",
                     f"change the variant's {key}"))
    return rows


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)
