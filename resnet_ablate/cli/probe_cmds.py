"""`probe`: a probe of why residual nets train, on finished runs; each result is written
under runs/<run_id>/probes/ (resnet_ablate.probes.probing), once per settings and seed. Then
the probe's findings over those runs, as the report states them (resnet_ablate.analysis.
why: one sample per condition and seed, sentences only over nets probed alike).

Exit: 0; 3 when a record of those runs could not be read (each skipped and named in one
line, the rest reported); 75 when another process was computing one of the records (it is
skipped, as `train` skips a run another process trains); 2 for bad input."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_SKIPPED = 3  # as collect's: some input was skipped, the rest done
EXIT_BUSY = 75  # as train's: another process holds the lock
MAX_THREADS = 1024  # --threads: torch's intra-op threads (an int32 in torch)
BUILTIN = "lesion, landscape, linear_path, paths, hessian"


def add_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help=f"the probe: {BUILTIN}, or one a plugin registers "
                                "(ra.register_probe)")
    p.add_argument("--runs", nargs="+", type=Path, required=True, metavar="DIR",
                   help="run directories, or folders of runs (their finished runs)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="settings",
                   help="the probe's settings (e.g. points=11 span=[-0.5,0.5]), batch_size "
                        "(default: the run's), weights=final|initial, num_images=N (a "
                        "seeded class-stratified sample of the split; default: all of it, "
                        "in order)")
    p.add_argument("--seed", type=int, default=None,
                   help="the probe's own seed (default: each run's seed)")
    p.add_argument("--plugins", default="", metavar="MOD,FILE.py",
                   help="plugins to load: the runs' (their variants) and probes of your own")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: torch's default; on a CPU other jobs share, 1 is "
                        "often the fastest)")
    p.add_argument("--data-dir", default=None,
                   help="where the runs' data is now, if not where they recorded it")
    p.add_argument("--wandb", choices=["run", "auto", "online", "offline", "disabled"],
                   default="run",
                   help="W&B for the results: run (default: as the probed run logged), or a "
                        "mode; a W&B run of job_type probe, grouped with the run")


def run_probe_cmd(args: argparse.Namespace) -> int:
    from ..formatting import printable
    from ..outdir import utf8_folder
    from ..probes.probing import expand_runs, parse_request, probe_runs
    from ..sweep.sweepfile import check_int
    from ..variants import plugins

    check_int("--threads", args.threads, 0, MAX_THREADS, " (0: torch's default)")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.plugins:
        plugins.load(plugins.split(args.plugins))
    request = parse_request(args.name, words=args.settings, seed=args.seed)
    log = lambda message: print(message, flush=True)  # noqa: E731
    runs = expand_runs([utf8_folder(p, "--runs") for p in args.runs],
                       lambda m: print(printable(f"resnet-ablate: {m}"), file=sys.stderr))
    from ..analysis.probe_figures import record_png

    outcomes = probe_runs([request], runs, device=args.device, data_dir=args.data_dir,
                          wandb=args.wandb, log=log, figure=record_png)
    written = sum(o.written for o in outcomes)
    busy = sum(o.busy for o in outcomes)
    print(f"{request.name}: {written} record(s) written, {len(outcomes) - written - busy} "
          f"already there" + (f", {busy} being written by another process" if busy else "")
          + f", of {len(outcomes)} run(s)")
    from ..analysis.why import probe_findings

    found, skipped, warnings = probe_findings(runs, request.name)
    for line in found:
        print(line)
    for line in warnings:
        print(printable(f"resnet-ablate: warning: {line}"), file=sys.stderr)
    for line in skipped:
        print(printable(f"resnet-ablate: skipped {line}"), file=sys.stderr)
    return EXIT_SKIPPED if skipped else EXIT_BUSY if busy else 0


COMMANDS = [
    ("probe", "probe finished runs: lesion, loss landscape, gradient paths, Hessian (or a "
              "plugin's); results under runs/<id>/probes/", add_probe_args, run_probe_cmd),
]
