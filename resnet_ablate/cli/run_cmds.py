"""`train` (one run under a protocol) and `sweep` (many, here, on GPUs or on Slurm)."""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from ..errors import InputError

TRAIN_USAGE = ("resnet-ablate train [key=value ...] [--dry-run]\n"
               "       (timm's habit works too: --model resnet20-A --lr 0.05 --amp)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    # Words are ours to parse ('--lr=0.05' included), so argparse sees no options here.
    p.prefix_chars = "+"
    p.add_argument("words", nargs="*", metavar="key=value",
                   help="settings, protocol fields and model.* overrides; --help, --dry-run")


def train_help() -> str:
    from ..run.config import settings_help
    from ..data.catalog import DATASETS

    lines = [f"usage: {TRAIN_USAGE}", "",
             "Train one variant under a fixed protocol. Every setting is key=value:", ""]
    for key, type_, default, meaning in settings_help():
        lines.append(f"  {key:24} {meaning}")
        lines.append(textwrap.fill(f"type: {type_}; default: {default}", width=96,
                                   initial_indent=" " * 27, subsequent_indent=" " * 27))
    lines += ["", "data sets:"] + [f"  {d.name:12} {d.facts}" for d in DATASETS.values()]
    lines += ["", "example: resnet-ablate train model=resnet56-A dataset=cifar10 seed=1 "
                  "wandb=offline",
              "--dry-run prints the resolved configuration and exits; nothing is written."]
    return "\n".join(lines) + "\n"


def run_train(args: argparse.Namespace) -> int:
    words = list(args.words)
    if "--help" in words or "-h" in words:
        sys.stdout.write(train_help())
        return 0
    if "--dry-run" in words:
        words.remove("--dry-run")
        return dry_run_train(words)
    from ..train.run import train

    return train(words)


def dry_run_train(words: list[str]) -> int:
    """The resolved configuration, as `train` would run it; nothing is written."""
    from ..run import record
    from ..run.config import parse_train_words
    from ..variants.registry import get_spec

    request = parse_train_words(words)
    spec = get_spec(request.config.model).with_overrides(**request.model_overrides)
    values = record.resolved(request, spec)  # what is known before any data is read
    planned = {"record": record.nest(values), "planned_condition": values["condition"],
               "run_id_in_a_sweep": record.planned_run_id(request)}
    print(json.dumps(planned, indent=2, default=str))
    return 0


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    from ..bundled import names

    p.add_argument("file", help=f"a W&B sweep YAML, or a bundled one: {', '.join(names('sweeps'))}")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where runs go (runs/)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their commands")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--count", type=int, default=None,
                   help="number of runs (random sweeps; or the first N of a grid)")
    p.add_argument("--seed", type=int, default=0, help="seed of random sweeps (default 0)")
    p.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                   help="only the configurations whose KEY is one of these (repeatable)")
    p.add_argument("--seeds-for", action="append", default=[], metavar="MODEL_A,MODEL_B",
                   help="only these two models, with the seeds a two-sided Welch test needs "
                        "to tell them apart (alpha 0.05, power 0.8, from the test errors of "
                        "their finished runs in --runs-dir): only the missing seeds run "
                        "(repeatable)")
    p.add_argument("--detect", type=float, default=None, metavar="PP",
                   help="with --seeds-for: plan to detect this difference of test error "
                        "(percentage points, e.g. 0.3) instead of the observed one")
    g = p.add_argument_group("GPUs on this machine")
    g.add_argument("--gpus", default=None, metavar="0,1,...",
                   help="give each job one of these GPUs (CUDA_VISIBLE_DEVICES)")
    g.add_argument("--jobs-per-gpu", type=int, default=1, help="jobs sharing a GPU (default 1)")
    s = p.add_argument_group("a cluster, through submitit")
    s.add_argument("--launcher", choices=["slurm", "local"], default=None,
                   help="submit one job per run (a job array); local: submitit's "
                        "LocalExecutor on this machine")
    s.add_argument("--partition", default=None, help="Slurm partition")
    s.add_argument("--account", default=None, help="Slurm account")
    s.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per job (default 1)")
    s.add_argument("--cpus-per-job", type=int, default=None, help="CPUs per job")
    s.add_argument("--mem-gb", type=int, default=None, help="memory per job")
    s.add_argument("--timeout-min", type=int, default=24 * 60,
                   help="job time limit; at it the run checkpoints and is requeued")


def parse_only(items: list[str]) -> dict[str, list]:
    only: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise InputError(f"--only needs KEY=V1,V2; got {item!r}")
        only.setdefault(key, []).extend(v for v in values.split(",") if v)
    return only


def launcher_of(args: argparse.Namespace):
    if args.launcher is None:
        for flag in ("partition", "account", "cpus_per_job", "mem_gb"):
            if getattr(args, flag):
                raise InputError(f"--{flag.replace('_', '-')} needs --launcher slurm")
        return None
    if args.gpus:
        raise InputError("--gpus assigns GPUs on this machine; with --launcher the cluster "
                         "does (--gpus-per-job)")
    for flag in ("gpus_per_job", "timeout_min"):
        if getattr(args, flag) < 1 and not (flag == "gpus_per_job" and args.launcher == "local"):
            raise InputError(f"--{flag.replace('_', '-')} must be a positive integer")
    from ..sweep.launch import SubmititLauncher

    return SubmititLauncher(args.launcher, partition=args.partition,
                            gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                            mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                            account=args.account)


def gpus_of(args: argparse.Namespace) -> list[str] | None:
    if args.gpus is None:
        return None
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    if not gpus or not all(g.isdigit() for g in gpus):
        raise InputError(f"--gpus takes device numbers like 0,1; got {args.gpus!r}")
    return gpus


def run_sweep(args: argparse.Namespace) -> int:
    from ..sweep import SweepRunner, load_sweep, planned_runs

    if args.count is not None and args.count < 1:
        raise InputError(f"--count must be a positive integer; got {args.count}")
    spec = load_sweep(args.file)
    if args.seeds_for:
        runs = _seeds_for(spec, args)
    else:
        if args.detect is not None:
            raise InputError("--detect goes with --seeds-for MODEL_A,MODEL_B")
        runs = planned_runs(spec, count=args.count, seed=args.seed, only=parse_only(args.only))
    runner = SweepRunner(runs, args.runs_dir, spec.name, jobs=args.jobs,
                         retry_failed=args.retry_failed, gpus=gpus_of(args),
                         jobs_per_gpu=args.jobs_per_gpu, launcher=launcher_of(args))
    if args.dry_run:
        print_runs(runner.runs, runner, commands=True)
        return 0
    runs = runner.run()
    print_runs(runs, runner)
    return 1 if any(r.state == "failed" for r in runs) else 0


def _seeds_for(spec, args: argparse.Namespace) -> list:
    import math

    from ..sweep.runner import plan_seeds_for

    pairs = []
    for item in args.seeds_for:
        names = [n.strip() for n in item.split(",")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            raise InputError(f"--seeds-for needs two different models, MODEL_A,MODEL_B; "
                             f"got {item!r}")
        pairs.append((names[0], names[1]))
    if args.only or args.count is not None:
        raise InputError("--seeds-for plans its own runs; it does not combine with --only "
                         "or --count")
    if args.detect is not None and not (math.isfinite(args.detect) and args.detect > 0):
        raise InputError(f"--detect must be a positive difference in percentage points "
                         f"(e.g. 0.3); got {args.detect}")
    return plan_seeds_for(spec, args.runs_dir, pairs, detect=args.detect)


def print_runs(runs, runner, commands: bool = False) -> None:
    from ..formatting import render

    todo = {r.run_id for r in runner.todo()}
    rows = []
    for r in runs:
        s = r.summary
        row = {"run_id": r.run_id, "state": r.state}
        if commands:
            row["action"] = "run" if r.run_id in todo else "skip"
        for key in ("final_train_err", "final_test_err"):
            v = s.get(key)
            row[key.replace("final_", "")] = f"{v:.2f}" if isinstance(v, (int, float)) else ""
        if any(x.detail for x in runs):
            row["detail"] = r.detail[:60]
        if commands:
            row["command"] = r.shell
        rows.append(row)
    print(render(rows, "table"), end="")


COMMANDS = [
    ("train", "train one variant under a fixed protocol (key=value words; --help lists them)",
     add_train_args, run_train),
    ("sweep", "run a W&B sweep file: here (grid or random, --jobs N, --gpus), or on Slurm",
     add_sweep_args, run_sweep),
]
