"""`train`: one run under a protocol (sweep/reproduce/demo are added beside it)."""
from __future__ import annotations

import argparse
import dataclasses


def _train_epilog() -> str:
    from ..config import DATASETS, RunConfig
    from ..protocol import PROTOCOLS, protocol_keys
    from ..spec import OVERRIDE_KEYS

    run_keys = ", ".join(f.name for f in dataclasses.fields(RunConfig))
    return (f"run keys: {run_keys}\n"
            f"protocol fields (override any): {', '.join(protocol_keys())}\n"
            f"model overrides: {', '.join('model.' + k for k in OVERRIDE_KEYS)}\n"
            f"datasets: {', '.join(DATASETS)}; protocols: {', '.join(PROTOCOLS)}\n"
            "example: resnet-ablate train model=resnet56-A dataset=cifar10 seed=1 wandb=offline")


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _train_epilog()
    p.add_argument("words", nargs="*", metavar="key=value",
                   help="settings, protocol fields and model.* overrides")


def run_train(args: argparse.Namespace) -> int:
    from ..train.run import train

    return train(args.words)


COMMANDS = [
    ("train", "train one variant under a fixed protocol (key=value words)", add_train_args,
     run_train),
]
