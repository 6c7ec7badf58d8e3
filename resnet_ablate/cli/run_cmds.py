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
    from ..train.session import train

    return train(words)


def dry_run_train(words: list[str]) -> int:
    """The resolved configuration, as `train` would run it (the spec it trains, on the
    data's classes and channels: train.session.planned_spec); nothing is written."""
    from ..run import record
    from ..run.config import parse_train_words
    from ..train.session import planned_spec
    from ..variants.resolve import resolve

    request = parse_train_words(words)
    spec, _, mode = planned_spec(request)
    for warning in request.protocol.schedule_warnings():  # as `train` says it
        print(f"resnet-ablate: warning: {warning}", file=sys.stderr)
    # what is known before any image is loaded: the data's classes, channels and mode
    values = record.resolved(request, spec, data={"data.mode": mode})
    planned = resolve(request.config.model, request.model_overrides)  # as a sweep names it
    planned = {"record": record.nest(values), "spec": spec.factors(),
               "planned_condition": values["condition"],
               "run_id_in_a_sweep": record.planned_run_id(request, planned)}
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
    add_set_arg(p)
    add_launcher_args(p)


def add_set_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="KEY is VALUE in every run (repeatable): replaces the sweep's values "
                        "of KEY, or adds it as a constant (e.g. --set data_dir=/data/cifar; "
                        "$RESNET_ABLATE_DATA is data_dir's default)")


# Launcher flags: (flag, default, help); None defaults so a flag given without --launcher is
# seen (and refused), whatever its value.
GPUS_PER_JOB, TIMEOUT_MIN = 1, 24 * 60
SLURM_ONLY = ("partition", "account", "array_parallelism", "no_wait")


def add_launcher_args(p: argparse.ArgumentParser) -> None:
    """GPUs here, or submitit (Slurm/local): one definition for sweep, reproduce and demo."""
    g = p.add_argument_group("GPUs on this machine")
    g.add_argument("--gpus", default=None, metavar="0,1,...",
                   help="give each job one of these GPUs (CUDA_VISIBLE_DEVICES)")
    g.add_argument("--jobs-per-gpu", type=int, default=1, help="jobs sharing a GPU (default 1)")
    s = p.add_argument_group("a cluster, through submitit (these need --launcher)")
    s.add_argument("--launcher", choices=["slurm", "local"], default=None,
                   help="submit one job per run (a job array); local: submitit's "
                        "LocalExecutor on this machine. With --dry-run: what would be "
                        "submitted")
    s.add_argument("--partition", default=None, help="Slurm partition")
    s.add_argument("--account", default=None, help="Slurm account")
    s.add_argument("--gpus-per-job", type=int, default=None,
                   help=f"GPUs per job (default {GPUS_PER_JOB})")
    s.add_argument("--cpus-per-job", type=int, default=None, help="CPUs per job")
    s.add_argument("--mem-gb", type=int, default=None, help="memory per job")
    s.add_argument("--timeout-min", type=int, default=None,
                   help=f"job time limit (default {TIMEOUT_MIN}); at it the run checkpoints "
                        "and is requeued")
    s.add_argument("--array-parallelism", type=int, default=None,
                   help="jobs of the array running at once (default 64)")
    s.add_argument("--no-wait", action="store_true", default=None,
                   help="submit, print the job ids and return (default: wait for the jobs)")


def parse_settings(items: list[str]) -> dict[str, object]:
    """--set KEY=VALUE words; VALUE read as a sweep file's value (YAML: 2000 is a number,
    [1000,1500] a list, /data/cifar a string)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set needs KEY=VALUE; got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        out[key.strip()] = text if isinstance(value, dict) else value
    return out


def parse_only(items: list[str]) -> dict[str, list]:
    only: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise InputError(f"--only needs KEY=V1,V2; got {item!r}")
        only.setdefault(key, []).extend(v for v in values.split(",") if v)
    return only


LAUNCHER_FLAGS = ("partition", "account", "gpus_per_job", "cpus_per_job", "mem_gb",
                  "timeout_min", "array_parallelism", "no_wait")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def launcher_of(args: argparse.Namespace):
    """The submitit launcher the flags ask for, or None; a launcher flag without
    --launcher (or a Slurm-only one with --launcher local) is refused, whatever its value."""
    given = [f for f in LAUNCHER_FLAGS if getattr(args, f, None) is not None]
    if args.launcher is None:
        if given:
            raise InputError(f"{_flag(given[0])} needs --launcher slurm (or local)"
                             if given[0] not in SLURM_ONLY else
                             f"{_flag(given[0])} needs --launcher slurm")
        return None
    if args.launcher == "local" and any(f in SLURM_ONLY for f in given):
        flag = next(f for f in given if f in SLURM_ONLY)
        raise InputError(f"{_flag(flag)} needs --launcher slurm (the local launcher runs "
                         "every job at once on this machine, and waits)")
    if args.gpus:
        raise InputError("--gpus assigns GPUs on this machine; with --launcher the cluster "
                         "does (--gpus-per-job)")
    from ..sweep.launch import ARRAY_PARALLELISM, SubmititLauncher

    def given(value, default):
        return default if value is None else value

    return SubmititLauncher(  # which checks each value's range
        args.launcher, partition=args.partition,
        gpus_per_job=given(args.gpus_per_job, GPUS_PER_JOB), cpus_per_job=args.cpus_per_job,
        mem_gb=args.mem_gb, timeout_min=given(args.timeout_min, TIMEOUT_MIN),
        array_parallelism=given(args.array_parallelism, ARRAY_PARALLELISM),
        account=args.account, wait=not args.no_wait)


def gpus_of(args: argparse.Namespace) -> list[str] | None:
    if args.gpus is None:
        return None
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    if not gpus or not all(g.isascii() and g.isdigit() and int(g) < MAX_GPU for g in gpus):
        raise InputError(f"--gpus takes device numbers in [0, {MAX_GPU - 1}] like 0,1; got "
                         f"{args.gpus!r}")
    return gpus


MAX_GPU = 1024  # device numbers of one machine (CUDA_VISIBLE_DEVICES)


def check_runs_dir(path: Path) -> Path:
    """--runs-dir: a UTF-8 name (the runs record it) that is, or can be, a folder; checked
    before anything is planned or written."""
    from ..outdir import check_out, utf8_folder

    return check_out(utf8_folder(path, "--runs-dir"), "--runs-dir")


def run_sweep(args: argparse.Namespace) -> int:
    from ..sweep import SweepRunner, load_sweep, planned_runs
    from ..sweep.planning import with_settings

    from ..sweep.sweepfile import MAX_GRID, SEED_RANGE, check_int

    if args.count is not None:
        check_int("--count", args.count, 1, MAX_GRID, " (the most runs planned at once)")
    check_int("--seed", args.seed, *SEED_RANGE)
    check_runs_dir(args.runs_dir)
    launcher = launcher_of(args)
    spec = load_sweep(args.file)
    settings = parse_settings(args.settings)
    if args.seeds_for:
        runs = _seeds_for(with_settings(spec, settings), args)
    else:
        if args.detect is not None:
            raise InputError("--detect goes with --seeds-for MODEL_A,MODEL_B")
        runs = planned_runs(spec, count=args.count, seed=args.seed, only=parse_only(args.only),
                            settings=settings)
    runner = SweepRunner(runs, args.runs_dir, spec.name, jobs=args.jobs,
                         retry_failed=args.retry_failed, gpus=gpus_of(args),
                         jobs_per_gpu=args.jobs_per_gpu, launcher=launcher)
    said = set()  # each schedule warning once (milestones past the last iteration ...)
    for run in runs:
        for warning in run.request.protocol.schedule_warnings() if run.request else []:
            if warning not in said:
                said.add(warning)
                print(f"resnet-ablate: warning: {run.run_id} (and any run alike): {warning}",
                      file=sys.stderr)
    if args.dry_run:
        print_runs(runner.runs, runner, commands=True)
        print_submission(runner)
        return 0
    runs = runner.run()
    print_runs(runs, runner)
    return 1 if any(r.state == "failed" for r in runs) else 0


def print_submission(runner) -> None:
    """What a launcher would submit for the runs still to train (dry runs)."""
    if runner.launcher is None:
        return
    todo = runner.todo()
    print(f"\n--launcher {runner.launcher.name} would submit:")
    for line in runner.launcher.describe(len(todo), runner.runs_dir / ".sweeps" / runner.name):
        print(f"  {line}")


def _seeds_for(spec, args: argparse.Namespace) -> list:
    from ..analysis.inference import check_detect
    from ..sweep.scheduler import plan_seeds_for

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
    check_detect(args.detect)
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
