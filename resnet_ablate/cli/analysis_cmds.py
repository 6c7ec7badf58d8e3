"""`collect`, `figures`, `compare`, `reproduce` and `demo`: from runs to the paper's
figures and tables."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def _add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs="+", type=Path, default=[Path("runs")], metavar="DIR",
                   help="run directories to collect (default runs/)")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None,
                   help="also collect this W&B project through the API (needs a login)")
    p.add_argument("--group", default=None, help="only this W&B group (with --wandb)")


def _collect(args):
    from ..analysis.collect import collect

    for d in args.runs:
        if not d.is_dir():
            raise FileNotFoundError(f"runs directory {str(d)!r} does not exist")
    c = collect(args.runs, wandb_path=args.wandb, group=args.group)
    for where, why in c.skipped:
        print(f"resnet-ablate: skipped {where}: {why}", file=sys.stderr)
    return c


def _command_line() -> str:
    return "resnet-ablate " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def add_collect_args(p: argparse.ArgumentParser) -> None:
    _add_sources(p)
    p.add_argument("--out", type=Path, default=Path("collected"),
                   help="folder for runs/history/responses.parquet (default collected/)")


def run_collect(args: argparse.Namespace) -> int:
    from ..formatting import render

    c = _collect(args)
    written = c.save(args.out)
    cols = ["run_id", "variant", "depth", "seed", "status", "final_train_err",
            "final_test_err"]
    view = c.runs[cols].copy()
    for col in ("final_train_err", "final_test_err"):
        view[col] = view[col].map(lambda v: "" if v != v or v is None else f"{v:.2f}")
    sys.stdout.write(render(view, "table"))
    print(f"\n{len(c.runs)} runs, {len(c.history)} history rows, {len(c.skipped)} skipped -> "
          + ", ".join(str(p) for p in written))
    return 0


def add_figures_args(p: argparse.ArgumentParser) -> None:
    from ..analysis.figures import FIGURES
    from ..analysis.tables import TABLES

    _add_sources(p)
    p.add_argument("--out", type=Path, default=Path("reports/latest"),
                   help="report folder (default reports/latest)")
    p.add_argument("--figures", nargs="+", choices=list(FIGURES), default=None,
                   help="only these figures (default all)")
    p.add_argument("--tables", nargs="+", choices=list(TABLES), default=None,
                   help="only these tables (default all)")
    p.add_argument("--title", default="resnet-ablate report")


def run_figures(args: argparse.Namespace) -> int:
    from ..analysis.report import build

    c = _collect(args)
    report = build(c, args.out, figures=args.figures, tables=args.tables,
                   commands=[_command_line()], title=args.title,
                   progress=lambda m: print(m, file=sys.stderr))
    _print_report(report)
    return 0


def _print_report(report) -> None:
    for finding in report.findings:
        print(finding.replace("**", ""))
    for name, why in report.skipped:
        print(f"skipped {name}: {why}")
    print(f"{len(report.figures)} figures, {len(report.tables)} tables -> "
          f"{report.out / 'index.md'} (and index.html)")


def add_compare_args(p: argparse.ArgumentParser) -> None:
    from ..formatting import FORMATS

    _add_sources(p)
    p.add_argument("--metric", choices=["test", "val", "train", "best_val"], default="test",
                   help="which final error to compare (default test)")
    p.add_argument("--format", choices=FORMATS, default="table")


def run_compare(args: argparse.Namespace) -> int:
    from ..analysis.stats import ALPHA, TEST_NAME, by_depth, format_compare
    from ..formatting import render

    c = _collect(args)
    metric = {"test": "final_test_err", "val": "final_val_err", "train": "final_train_err",
              "best_val": "best_val_err"}[args.metric]
    table = by_depth(c.runs, metric)
    if table.empty:
        raise ValueError(f"no finished runs with {metric} in {', '.join(map(str, args.runs))}")
    sys.stdout.write(render(format_compare(table, f"{args.metric} err %"), args.format))
    if args.format == "table":
        print(f"\nmean +- std over seeds (finished runs); 'vs shallower' compares each depth "
              f"with the next shallower of the same variant by {TEST_NAME}, alpha = {ALPHA}; "
              "'paper': Table 6 (CIFAR-10) or Tables 2/3 (ImageNet top-1).")
    return 0


def add_reproduce_args(p: argparse.ArgumentParser) -> None:
    from ..experiments import list_experiments

    p.add_argument("experiment", help=f"one of: {', '.join(list_experiments())} (or a path)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="where runs go (default runs/<experiment>)")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default reports/<experiment>)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--dry-run", action="store_true", help="list the runs; launch nothing")


def reproduce(name: str, runs_dir: Path | None, out: Path | None, jobs: int,
              dry_run: bool = False) -> int:
    from ..analysis.collect import collect
    from ..analysis.report import build
    from ..experiments import load_experiment
    from ..sweep import SweepRunner, load_sweep
    from .run_cmds import _print_runs

    exp = load_experiment(name)
    runs_dir = runs_dir or Path("runs") / exp.name
    out = out or Path("reports") / exp.name
    runners = [SweepRunner(load_sweep(ref.file), runs_dir, jobs=jobs, only=ref.only)
               for ref in exp.sweeps]  # every sweep validated before any run starts
    print(f"{exp.title} ({exp.paper}); protocol {exp.protocol}", flush=True)
    commands = []
    failed = False
    for ref, runner in zip(exp.sweeps, runners):
        only = "" if not ref.only else " (" + "; ".join(
            f"{k} in {v}" for k, v in ref.only.items()) + ")"
        commands.append(f"resnet-ablate sweep {ref.file} --runs-dir {runs_dir} "
                        f"--jobs {jobs}{only}")
        if dry_run:
            _print_runs(runner.runs, runner, commands=True)
            continue
        runs = runner.run()
        failed |= any(r.state == "failed" for r in runs)
    if dry_run:
        return 0
    commands.append(f"resnet-ablate figures --runs {runs_dir} --out {out}")
    report = build(collect([runs_dir]), out, figures=list(exp.figures),
                   tables=list(exp.tables), commands=[_command_line(), "# which ran:",
                                                      *commands],
                   title=exp.title, notes=list(exp.notes),
                   progress=lambda m: print(m, file=sys.stderr))
    _print_report(report)
    return 1 if failed else 0


def run_reproduce(args: argparse.Namespace) -> int:
    return reproduce(args.experiment, args.runs_dir, args.out, args.jobs, args.dry_run)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("reports/demo"))
    p.add_argument("--runs-dir", type=Path, default=Path("runs/demo"))
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="runs at a time (default: 2 where there are 2 cores)")


def run_demo(args: argparse.Namespace) -> int:
    return reproduce("demo", args.runs_dir, args.out, args.jobs)


COMMANDS = [
    ("collect", "gather runs (local dirs, W&B) into tidy parquet frames", add_collect_args,
     run_collect),
    ("figures", "the paper's figures and tables from your runs, with an index",
     add_figures_args, run_figures),
    ("compare", "error by depth and family over seeds, beside the paper, with significance",
     add_compare_args, run_compare),
    ("reproduce", "run a paper experiment's sweeps, then its report", add_reproduce_args,
     run_reproduce),
    ("demo", "the degradation problem on the embedded digits data, report in reports/demo",
     add_demo_args, run_demo),
]
