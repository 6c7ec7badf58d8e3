"""The run configuration of `resnet-ablate train key=value ...`.

Three kinds of keys: run settings (this dataclass), protocol fields (`lr=0.05`), and model
overrides prefixed `model.` (`model.zero_init_residual=true`). Every override is recorded.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

from .overrides import field_types, parse_value, split_words, unknown_key_error
from .protocol import Protocol, apply_overrides, get_protocol, protocol_keys
from .spec import OVERRIDE_KEYS, VariantSpec

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
# A data set's protocol when none is named: the paper's, or the demo's for digits.
DEFAULT_PROTOCOL = {"digits": "demo", "cifar10": "he2015-cifar", "cifar100": "he2015-cifar"}


@dataclass(frozen=True)
class RunConfig:
    model: str = "resnet20-A"
    dataset: Literal["digits", "cifar10", "cifar100", "imagefolder"] = "digits"
    data_dir: str = "data"
    download: bool = True  # fetch CIFAR when absent and the network allows
    # "tensor": the whole set as one uint8 tensor on the device, augmented per batch;
    # "loader": DataLoader workers (large images); "auto": tensor for images <= 64 px.
    data_mode: Literal["auto", "tensor", "loader"] = "auto"
    protocol: str = "auto"
    seed: int = 0
    runs_dir: str = "runs"
    run_id: str | None = None
    resume: Literal["false", "true", "auto"] = "false"
    checkpoint_every: int = 1000  # iterations; 0: only at the end and on SIGTERM/SIGINT
    keep_checkpoints: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16"] = "off"
    channels_last: Literal["auto", "true", "false"] = "auto"
    compile: bool = False
    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    wandb_project: str = "resnet-ablate"
    wandb_group: str | None = None
    wandb_entity: str | None = None
    log_every: int = 100
    progress: Literal["auto", "bar", "lines", "off"] = "auto"
    num_workers: int = 4
    eval_batch_size: int = 1000
    responses: bool = True  # record Fig. 7 layer responses at the end

    def __post_init__(self) -> None:
        for key in ("log_every", "eval_batch_size", "keep_checkpoints"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer; got {getattr(self, key)}")
        for key in ("checkpoint_every", "num_workers"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0; got {getattr(self, key)}")
        if self.run_id is not None and (not self.run_id or any(
                c in self.run_id for c in "/\\ ") or self.run_id.startswith(".")):
            raise ValueError(f"run_id must be a plain name (letters, digits, '-', '_', '.'); "
                             f"got {self.run_id!r}")


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


def parse_train_words(words: list[str]) -> TrainRequest:
    run_types = field_types(RunConfig)
    model_types = {k: t for k, t in field_types(VariantSpec).items() if k in OVERRIDE_KEYS}
    run_values: dict[str, Any] = {}
    proto_words: dict[str, str] = {}
    model_overrides: dict[str, Any] = {}
    known = list(run_types) + protocol_keys() + [f"model.{k}" for k in OVERRIDE_KEYS]
    for key, text in split_words(words):
        if key in run_types:
            run_values[key] = parse_value(key, text, run_types[key])
        elif key in protocol_keys():
            proto_words[key] = text
        elif key.startswith("model."):
            sub = key[len("model."):]
            if sub not in model_types:
                raise unknown_key_error(key, [f"model.{k}" for k in OVERRIDE_KEYS],
                                        "model override")
            model_overrides[sub] = parse_value(key, text, model_types[sub])
        else:
            raise unknown_key_error(key, known, "train key")
    # W&B's agent and the local sweep runner name the run through the environment.
    if "run_id" not in run_values and os.environ.get("WANDB_RUN_ID"):
        run_values["run_id"] = os.environ["WANDB_RUN_ID"]
    if "runs_dir" not in run_values and os.environ.get("RESNET_ABLATE_RUNS_DIR"):
        run_values["runs_dir"] = os.environ["RESNET_ABLATE_RUNS_DIR"]
    if "resume" not in run_values and os.environ.get("RESNET_ABLATE_RESUME"):
        run_values["resume"] = parse_value("resume", os.environ["RESNET_ABLATE_RESUME"],
                                           run_types["resume"])
    config = RunConfig(**run_values)
    protocol_name = config.protocol
    if protocol_name == "auto":
        protocol_name = DEFAULT_PROTOCOL.get(config.dataset, "auto")
    if protocol_name == "auto":  # imagefolder: the CIFAR protocol for small images
        from .data.sets import SMALL_MAX_SIDE, probe_imagefolder

        small = probe_imagefolder(config.data_dir) <= SMALL_MAX_SIDE
        protocol_name = "he2015-cifar" if small else "he2015-imagenet"
    protocol = apply_overrides(get_protocol(protocol_name), proto_words)
    config = dataclasses.replace(config, protocol=protocol_name)
    return TrainRequest(config=config, protocol=protocol, model_overrides=model_overrides,
                        words=tuple(words))
