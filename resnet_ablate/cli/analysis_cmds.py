"""`figures`, `compare`, `sql`, `pull`, `reproduce` and `demo`: from run directories to the
paper's figures and tables. The work is in resnet_ablate.analysis and resnet_ablate.pipeline; these parse
and print."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from ..analysis.names import FIGURE_TITLES, TABLE_TITLES
from ..errors import InputError, MissingInput

METRIC_CHOICES = ("train", "train_eval", "test", "val", "best_val")


def _add_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs="+", type=Path, default=None, metavar="DIR",
                   help="run directories, or folders of them, read as they are (default runs/)")


def _read(args):
    """The run directories named (--runs), read where they lie; what was skipped or is
    unfinished, and the warnings, printed one line each."""
    from ..analysis.rundirs import read_runs

    c = read_runs(_utf8(args.runs if args.runs is not None else [Path("runs")], "--runs"))
    _notes(c, skipped=False)
    return c


def _utf8(paths: list[Path], flag: str) -> list[Path]:
    from ..outdir import utf8_folder

    return [utf8_folder(p, flag) for p in paths]


def _notes(c, skipped: bool = True) -> None:
    """Unfinished runs and warnings (those not printed yet), and at the end (`skipped`, once
    the histories were read too) what was skipped: one line each on stderr."""
    from ..formatting import printable

    lines = [] if skipped else [f"not read {w}: {why}" for w, why in c.unfinished]
    done = getattr(c, "_printed", 0)
    lines += [f"warning: {w}" for w in c.warnings[done:]]
    c._printed = len(c.warnings)
    if skipped:
        lines += [f"skipped {w}: {why}" for w, why in c.skipped]
    for line in lines:
        print(printable(f"resnet-ablate: {line}"), file=sys.stderr)


def _status(c) -> int:
    """0, or EXIT_SKIPPED when some run directories were skipped (each named on stderr)."""
    from ..analysis.rundirs import EXIT_SKIPPED

    _notes(c)
    return EXIT_SKIPPED if c.skipped else 0


def _command_line() -> str:
    return shlex.join(["resnet-ablate", *sys.argv[1:]])


SKIPPED_NOTE = ("Exit status 0; 3 when some run directories were skipped (each named on "
                "stderr: not a regular file, too big, not JSON, wrong types, a history that "
                "is not the harness's), the rest analysed; 2 for bad input.")


def add_figures_args(p: argparse.ArgumentParser) -> None:
    _add_runs(p)
    p.add_argument("--out", type=Path, default=Path("reports/latest"),
                   help="report folder (default reports/latest)")
    p.add_argument("--figures", nargs="+", choices=list(FIGURE_TITLES), default=None,
                   help="only these figures (default all)")
    p.add_argument("--tables", nargs="+", choices=list(TABLE_TITLES), default=None,
                   help="only these tables (default all)")
    p.add_argument("--report", default=None, metavar="NAME|FILE",
                   help="a report definition: the bundled 'paper' or a YAML file (title, "
                        "figures, tables)")
    p.add_argument("--metric", choices=METRIC_CHOICES, default="train",
                   help="the error the findings compare (default train: the paper's)")
    p.add_argument("--edf", default=None, metavar="FACTOR",
                   help="also the error EDFs of the design spaces this factor splits the runs "
                        "into (family: plain vs resnet; shortcut: A vs B), with their "
                        "Kolmogorov-Smirnov test: a figure and a table")
    p.add_argument("--edf-normalize", choices=["params", "macs"], default=None,
                   help="with --edf: the complexity-normalised EDF (Radosavovic et al. 2019, "
                        "Sec. 3.2), weighted by parameters or MACs")
    p.add_argument("--margin", type=float, default=None, metavar="PP",
                   help="the findings say 'no worse' only from a non-inferiority test "
                        "against this margin, in percentage points of error")
    p.add_argument("--title", default=None)
    p.epilog = SKIPPED_NOTE


def run_figures(args: argparse.Namespace) -> int:
    from ..analysis.report import build
    from ..formatting import printable
    from ..outdir import check_out

    from ..analysis.compare import check_margin

    check_margin(args.margin)
    if args.edf_normalize and not args.edf:
        raise InputError("--edf-normalize needs --edf FACTOR")
    check_out(args.out)  # before the runs are read; made (or refused) before any write
    figures, tables, title = args.figures, args.tables, args.title
    if args.report:
        definition = load_report(args.report)
        figures = figures or definition["figures"]
        tables = tables or definition["tables"]
        title = title or definition["title"]
    from ..analysis.figures import check_edf_factor

    if args.edf:  # the schema's factors, before anything is written
        check_edf_factor(None, args.edf)
    c = _read(args)
    if args.edf:  # and these runs'
        check_edf_factor(c.runs, args.edf)
    c.check_histories()  # a history that is not the harness's: known before drawing
    report = build(c, args.out, figures=figures, tables=tables, commands=[_command_line()],
                   title=title or "resnet-ablate report", metric=args.metric,
                   progress=lambda m: print(printable(m), file=sys.stderr), edf=args.edf,
                   margin=args.margin, edf_normalize=args.edf_normalize)
    _print_report(report)
    return _status(c)


def load_report(name: str) -> dict:
    """A report definition (the paper's is bundled: reports/paper.yaml)."""
    from ..bundled import load_yaml

    where, raw = load_yaml("reports", name)
    if not isinstance(raw, dict):
        raise InputError(f"{where}: a report is a mapping of title, figures and tables")
    out = {"title": str(raw.get("title", "resnet-ablate report"))}
    for key, known in (("figures", FIGURE_TITLES), ("tables", TABLE_TITLES)):
        value = raw.get(key, list(known))
        if not isinstance(value, list) or any(v not in known for v in value):
            raise InputError(f"{where}: {key} must list names among {', '.join(known)}")
        out[key] = value
    return out


def _print_report(report) -> None:
    for finding in report.findings:
        print(finding.replace("**", ""))
    for name, why in report.skipped:
        print(f"skipped {name}: {why}")
    print(f"{len(report.figures)} figures, {len(report.tables)} tables -> "
          f"{report.out / 'index.md'} (and index.html)")


def add_compare_args(p: argparse.ArgumentParser) -> None:
    from ..formatting import FORMATS

    _add_runs(p)
    p.add_argument("--metric", choices=METRIC_CHOICES, default="test",
                   help="which error to compare (default test; train is the paper's "
                        "training error, train_eval the eval-mode one)")
    p.add_argument("--baseline", default=None, metavar="MODEL|CONDITION",
                   help="test every other condition against this one (a model, a label as "
                        "printed, or a condition id), within the same data and protocol; "
                        "with --by: the reference level (e.g. A)")
    p.add_argument("--pairs", default=None, metavar="A:B,C:D",
                   help="test only these pairs (A against B), each named as --baseline")
    p.add_argument("--by", default=None, metavar="FACTOR",
                   help="within conditions equal in every other factor, test each level of "
                        "FACTOR (shortcut, block, lr, ...) against the first (or --baseline)")
    p.add_argument("--interval", choices=["t", "bootstrap"], default="t",
                   help="the 95%% interval of each mean: t (default; the one for a few seeds) "
                        "or a seeded percentile bootstrap (marked * below 40 runs, where it "
                        "covers less than 95%%)")
    p.add_argument("--margin", type=float, default=None, metavar="PP",
                   help="say 'no worse' or 'equivalent' only from a non-inferiority test and "
                        "TOST against this margin, in percentage points of error (e.g. 0.5); "
                        "without it a difference not shown is 'not shown different'")
    p.add_argument("--power", action="store_true",
                   help="add the seeds per condition Welch's two-sided test needs (alpha "
                        "0.05, power 0.8) to detect each pair's observed difference: post "
                        "hoc, as noisy as that difference")
    p.add_argument("--detect", type=float, default=None, metavar="PP",
                   help="with --power (implied): the seeds needed to detect this difference "
                        "instead, in percentage points of error (e.g. 0.3)")
    p.add_argument("--columns", default=None, metavar="KEY,KEY",
                   help="the columns to show, any of: condition, dataset, protocol, "
                        "trained_on, depth, runs, n, mean, std, as_paper, paper, "
                        "like_with_like, best_same_n, vs, diff, p, p_holm, verdict, prob, "
                        "seeds, no_worse, equivalent (default for --format table: condition, "
                        "n, mean, diff, p_holm, verdict; other formats: all)")
    p.add_argument("--wide", action="store_true", help="every column in the terminal table")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.epilog = SKIPPED_NOTE


def run_compare(args: argparse.Namespace) -> int:
    from ..analysis.compare import (check_columns, check_margin, columns, compare_caption,
                                    format_compare, narrow, parse_pairs)
    from ..analysis.inference import check_detect
    from ..analysis.stats import by_condition
    from ..analysis.vocab import ERROR_METRICS, describe, finished
    from ..formatting import render

    check_detect(args.detect)
    check_margin(args.margin)
    pairs = parse_pairs(args.pairs)
    keys = [k.strip() for k in args.columns.split(",")] if args.columns else None
    check_columns(keys)
    seeds = args.power or args.detect is not None
    c = _read(args)
    column, text = ERROR_METRICS[args.metric]
    table = by_condition(c.runs, column, interval=args.interval, detect=args.detect,
                         margin=args.margin, baseline=args.baseline, pairs=pairs, by=args.by)
    if table.empty:
        where = args.runs or ["runs"]
        raise InputError(f"no finished runs with {column} in {', '.join(map(str, where))}")
    df = format_compare(table, f"{args.metric} err %", args.interval, seeds=seeds,
                        test_error=args.metric == "test")
    if keys:
        df = columns(df, keys)
    elif args.format == "table" and not args.wide:
        df = narrow(df, table.attrs["pairs"]["ref"])
    sys.stdout.write(render(df, args.format))
    if args.format == "table":
        more = "" if args.wide or keys else (" Columns: Δ is the row's mean less its "
                                             "reference's; --wide or --columns for the rest "
                                             "(the runs counted, the paper, raw p, P(X < Y)).")
        print(f"\n{text}, one row per condition; 'runs': the runs found of each condition in "
              f"any status. {compare_caption(table, args.interval, seeds, args.margin)}"
              f"{more} {describe(finished(c.runs))}")
    return _status(c)


def _add_run_options(p: argparse.ArgumentParser, jobs_default: int = 1) -> None:
    from .run_cmds import add_launcher_args, add_set_arg

    p.add_argument("--jobs", type=int, default=jobs_default, help="runs at a time")
    p.add_argument("--dry-run", action="store_true", help="print the plan; launch nothing")
    add_set_arg(p)
    add_launcher_args(p)  # the same flags as `sweep`


def add_reproduce_args(p: argparse.ArgumentParser) -> None:
    from ..pipeline import list_experiments

    p.add_argument("experiment", help=f"one of: {', '.join(list_experiments())} (or a path)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="where runs go (default runs/<experiment>)")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default reports/<experiment>)")
    _add_run_options(p)


def _run(name: str, args: argparse.Namespace) -> int:
    from ..outdir import check_out
    from ..pipeline import load_experiment, run_experiment
    from ..sweep.scheduler import MAX_JOBS
    from ..sweep.sweepfile import check_int
    from .run_cmds import (check_runs_dir, gpus_of, launcher_of, parse_settings, print_runs,
                           print_submission)

    check_int("--jobs", args.jobs, 1, MAX_JOBS)
    exp_name = load_experiment(name).name  # its folders checked before any run
    check_runs_dir(args.runs_dir or Path("runs") / exp_name)
    check_out(args.out or Path("reports") / exp_name)
    launcher = launcher_of(args)
    result = run_experiment(name, args.runs_dir, args.out, jobs=args.jobs,
                            dry_run=args.dry_run, launcher=launcher,
                            gpus=gpus_of(args), jobs_per_gpu=args.jobs_per_gpu,
                            settings=parse_settings(args.settings),
                            invoked_as=_command_line(), log=lambda m: print(m, flush=True))
    exp = result.experiment
    print(f"{exp.title} ({exp.paper}); protocol {exp.protocol}", flush=True)
    if result.dry_run:
        print("the same runs, by sweep:\n" + "\n".join(f"  {c}" for c in result.commands))
        from ..sweep import SweepRunner

        runs_dir = args.runs_dir or Path("runs") / exp.name
        runner = SweepRunner(result.runs, runs_dir, exp.name, launcher=launcher)
        print_runs(result.runs, runner, commands=True)
        print_submission(runner)
        return 0
    if result.report is None:  # submitted without waiting: the report comes with a rerun
        print("jobs submitted; run the same command again once they have ended: it skips "
              "the finished runs and writes the report")
        return 0
    from ..analysis.rundirs import EXIT_SKIPPED
    from ..formatting import printable

    for where, why in result.skipped:
        print(printable(f"resnet-ablate: skipped {where}: {why}"), file=sys.stderr)
    _print_report(result.report)
    if result.failed:
        return 1
    return EXIT_SKIPPED if result.skipped else 0


def run_reproduce(args: argparse.Namespace) -> int:
    return _run(args.experiment, args)


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("reports/demo"))
    p.add_argument("--runs-dir", type=Path, default=Path("runs/demo"))
    _add_run_options(p, jobs_default=min(2, os.cpu_count() or 1))


def run_demo(args: argparse.Namespace) -> int:
    return _run("demo", args)


def add_sql_args(p: argparse.ArgumentParser) -> None:
    from ..formatting import FORMATS

    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                   help="run directories, or folders of them")
    p.add_argument("query", help="one SELECT over the views runs (every run read; `counted`: "
                                 "the one sample per condition and seed), history (run_id, "
                                 "iteration, the metrics) and responses (Fig. 7), e.g. "
                                 "\"select model, avg(final_test_err) from runs where counted "
                                 "group by model\"; quote dotted columns: "
                                 "\\\"protocol_fields.lr\\\"")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--max-rows", type=int, default=10_000,
                   help="print at most this many rows (default 10000; 0: all)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="stop a query that runs longer (default 120 s)")
    p.epilog = ("The query reads the runs named and nothing else: no other file, no network, "
                "no extension, no writes. " + SKIPPED_NOTE)


MAX_ROWS = 1_000_000_000  # sql --max-rows: what a table printed at once may hold


def run_sql(args: argparse.Namespace) -> int:
    from ..analysis.rundirs import read_runs
    from ..formatting import render
    from ..sweep.sweepfile import check_int

    check_int("--max-rows", args.max_rows, 0, MAX_ROWS, " (0: all)")
    if not 0 < args.timeout <= 86_400:
        raise InputError(f"--timeout must be in (0, 86400] seconds; got {args.timeout:g}")
    c = read_runs(_utf8(args.dirs, "DIR"))
    _notes(c, skipped=False)
    with c:
        names, rows, more = c.histories().query(args.query, args.max_rows or None,
                                                args.timeout)
    import pandas as pd

    sys.stdout.write(render(pd.DataFrame.from_records(rows, columns=names), args.format))
    if more:
        print(f"resnet-ablate: more rows not shown (--max-rows {args.max_rows})",
              file=sys.stderr)
    return _status(c)


def add_pull_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", metavar="ENTITY/PROJECT", help="the W&B project")
    p.add_argument("--group", default=None, help="only this W&B group")
    p.add_argument("--to", type=Path, required=True, metavar="DIR",
                   help="the folder the runs go to, one run directory each (summary.json, "
                        "history.parquet as W&B logged it)")
    p.epilog = ("Needs a W&B login. A run already there with the same record is left as it "
                "is. Exit status 0; 3 when some W&B runs could not be written (each named); "
                "2 for bad input.")


def run_pull(args: argparse.Namespace) -> int:
    from ..analysis.pull import pull
    from ..analysis.rundirs import EXIT_SKIPPED
    from ..formatting import printable
    from ..outdir import utf8_folder

    written, skipped = pull(args.project, utf8_folder(args.to, "--to"), group=args.group,
                            progress=lambda m: print(printable(m), file=sys.stderr, flush=True))
    for where, why in skipped:
        print(printable(f"resnet-ablate: skipped {where}: {why}"), file=sys.stderr)
    print(f"{len(written)} runs -> {args.to} ({len(skipped)} skipped)")
    return EXIT_SKIPPED if skipped else 0


COMMANDS = [
    ("pull", "write a W&B project's runs as run directories (then read like local ones)",
     add_pull_args, run_pull),
    ("sql", "one SELECT over run directories: runs, history, responses (prints a table)",
     add_sql_args, run_sql),
    ("figures", "the paper's figures and tables from your runs, with an index",
     add_figures_args, run_figures),
    ("compare", "error by condition over seeds, beside the paper, with significance",
     add_compare_args, run_compare),
    ("reproduce", "run a paper experiment's sweeps, then its report", add_reproduce_args,
     run_reproduce),
    ("demo", "the degradation problem on the embedded digits data, report in reports/demo",
     add_demo_args, run_demo),
]
