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


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a W&B sweep YAML (sweeps/*.yaml)")
    p.add_argument("--runs-dir", default="runs", help="where runs go (default runs/)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--dry-run", action="store_true", help="list the runs; launch nothing")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--count", type=int, default=None,
                   help="number of runs (random sweeps; or the first N of a grid)")
    p.add_argument("--seed", type=int, default=0, help="seed of random sweeps (default 0)")


def run_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..sweep import SweepRunner, load_sweep

    if args.count is not None and args.count < 1:
        raise ValueError(f"--count must be a positive integer; got {args.count}")
    runner = SweepRunner(load_sweep(args.file), Path(args.runs_dir), jobs=args.jobs,
                         retry_failed=args.retry_failed, count=args.count, seed=args.seed)
    if args.dry_run:
        _print_runs(runner.runs, runner, commands=True)
        return 0
    runs = runner.run()
    _print_runs(runs, runner)
    return 1 if any(r.state == "failed" for r in runs) else 0


def _print_runs(runs, runner, commands: bool = False) -> None:
    import pandas as pd

    from ..formatting import render

    todo = {r.run_id for r in runner.todo()}
    rows = []
    for r in runs:
        s = r.summary
        row = {"run_id": r.run_id, "state": r.state,
               "action": ("run" if r.run_id in todo else "skip") if commands else None,
               "train_err": s.get("final_train_err"), "test_err": s.get("final_test_err"),
               "detail": r.detail[:60]}
        if commands:
            row["command"] = " ".join(r.command)
        rows.append({k: v for k, v in row.items() if v is not None or k.endswith("err")})
    df = pd.DataFrame(rows)
    if not df["detail"].astype(bool).any():
        df = df.drop(columns=["detail"])
    for col in ("train_err", "test_err"):
        df[col] = df[col].map(lambda v: "" if v is None or v != v else f"{v:.2f}")
    print(render(df, "table"), end="")


COMMANDS.append(("sweep", "run a W&B sweep file here: grid or random, idempotent, --jobs N",
                 add_sweep_args, run_sweep))
