"""Paper experiments (bundled experiments/*.yaml, or a path): which sweeps, which protocol,
which figures and tables. `run_experiment` plans every run (each once, however many of the
experiment's sweeps list it), runs what is not done, reads the runs, and writes the report; the
CLI's `reproduce` and `demo` only call it and print."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .analysis.names import FIGURE_TITLES, TABLE_TITLES
from .bundled import load_yaml, names
from .errors import InputError


@dataclass(frozen=True)
class SweepRef:
    file: str  # a bundled sweep's name or a path
    only: dict[str, list[Any]] | None  # a subset of the sweep's configurations

    def command(self, runs_dir: Path, jobs: int, settings: dict[str, Any] | None = None) -> str:
        """The `resnet-ablate sweep` command that plans the same runs, as written."""
        words = ["resnet-ablate", "sweep", self.file, "--runs-dir", str(runs_dir),
                 "--jobs", str(jobs)]
        for key, values in (self.only or {}).items():
            words += ["--only", f"{key}={','.join(map(str, values))}"]
        for key, value in (settings or {}).items():
            words += ["--set", f"{key}={_yaml_text(value)}"]
        return shlex.join(words)


def _yaml_text(value: Any) -> str:
    """A --set value as typed (what parse_settings reads back to the same value)."""
    import json

    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class ProbeRef:
    """A probe of the experiment's finished runs (all, or those whose parameters match
    `only`), at `settings`; run after its sweeps, each record once."""
    name: str
    only: dict[str, list[Any]] | None
    settings: dict[str, Any]
    seed: int | None = None

    def command(self, runs_dir: Path) -> str:
        words = ["resnet-ablate", "probe", self.name, "--runs", f"{runs_dir}/..."]
        if self.settings:
            words += ["--set", *[f"{k}={_word(v)}" for k, v in self.settings.items()]]
        if self.seed is not None:
            words += ["--seed", str(self.seed)]
        where = "; ".join(f"{k} in {v}" for k, v in (self.only or {}).items())
        return shlex.join(words) + (f"  # runs with {where}" if where else "")


def _word(value: Any) -> str:
    """A setting as --set reads it (a list: comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    paper: str
    protocol: str
    sweeps: tuple[SweepRef, ...]
    figures: tuple[str, ...]
    tables: tuple[str, ...]
    notes: tuple[str, ...]
    where: str
    edf: str | None = None  # a factor: the report's error EDFs of the design spaces it splits
    probes: tuple[ProbeRef, ...] = ()


def list_experiments() -> list[str]:
    return names("experiments")


def _strings(where: str, key: str, value: Any, allowed: dict | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: {key} must be a list of names")
    bad = [v for v in value if allowed is not None and v not in allowed]
    if bad:
        raise InputError(f"{where}: unknown {key[:-1]} {bad[0]!r}; allowed: "
                         f"{', '.join(allowed)}")
    return tuple(value)


def load_experiment(name_or_path: str) -> Experiment:
    where, raw = load_yaml("experiments", name_or_path)
    if not isinstance(raw, dict) or not isinstance(raw.get("sweeps"), list) or not raw["sweeps"]:
        raise InputError(f"{where}: an experiment is a mapping that names its sweeps "
                         "(sweeps: [{file: NAME, only: {model: [...]}}])")
    sweeps = []
    for s in raw["sweeps"]:
        s = {"file": s} if isinstance(s, str) else s
        if not isinstance(s, dict) or not isinstance(s.get("file"), str):
            raise InputError(f"{where}: each sweep is a name or {{file: NAME, only: {{...}}}}")
        only = s.get("only")
        if only is not None and (not isinstance(only, dict) or not all(
                isinstance(v, list) for v in only.values())):
            raise InputError(f"{where}: only: must map parameters to lists of values")
        sweeps.append(SweepRef(s["file"], only))
    for key in ("name", "title", "paper", "protocol", "edf"):
        if key in raw and not isinstance(raw[key], str):
            raise InputError(f"{where}: {key} must be a string")
    stem = Path(str(name_or_path)).name.removesuffix(".yaml")
    probes = []
    for p in raw.get("probes") or []:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not isinstance(
                p.get("settings", {}), dict) or not isinstance(p.get("only") or {}, dict) or \
                not all(isinstance(v, list) for v in (p.get("only") or {}).values()):
            raise InputError(f"{where}: each probe is {{name: NAME, settings: {{...}}, only: "
                             "{model: [...]}}")
        probes.append(ProbeRef(p["name"], p.get("only"), dict(p.get("settings") or {}),
                               p.get("seed")))
    return Experiment(
        name=raw.get("name", stem), title=raw.get("title", stem), paper=raw.get("paper", ""),
        protocol=raw.get("protocol", ""), sweeps=tuple(sweeps),
        figures=_strings(where, "figures", raw.get("figures", list(FIGURE_TITLES)), FIGURE_TITLES),
        tables=_strings(where, "tables", raw.get("tables", list(TABLE_TITLES)), TABLE_TITLES),
        notes=_strings(where, "notes", raw.get("notes", [])), where=where, edf=raw.get("edf"),
        probes=tuple(probes))


@dataclass
class ExperimentResult:
    experiment: Experiment
    runs: list  # PlannedRun, each once
    commands: list[str]
    report: Any = None  # analysis.report.Report, None on a dry run
    failed: bool = False
    dry_run: bool = False
    out: Path | None = None
    skipped: list = field(default_factory=list)  # (run directory, why) not readable


def plan_experiment(exp: Experiment, settings: dict[str, Any] | None = None) -> list:
    """Every run of the experiment's sweeps, each once; `settings` (--set) in every run."""
    from .sweep import load_sweep, merge, planned_runs

    return merge(*[planned_runs(load_sweep(ref.file), only=ref.only, settings=settings)
                   for ref in exp.sweeps])


def run_experiment(name_or_path: str, runs_dir: Path | None = None, out: Path | None = None,
                   jobs: int = 1, dry_run: bool = False, launcher=None,
                   gpus: list[str] | None = None, jobs_per_gpu: int = 1,
                   settings: dict[str, Any] | None = None, invoked_as: str | None = None,
                   log: Callable[[str], None] = print) -> ExperimentResult:
    """Plan, run what is missing, read the runs, report. Every sweep is validated and every run
    planned before any starts. `settings` (--set KEY=VALUE) hold in every run (data_dir:
    where the data is; its default is $RESNET_ABLATE_DATA, else data). Jobs submitted
    without waiting (a launcher's --no-wait) leave the report to a rerun."""
    from .sweep import SweepRunner

    exp = load_experiment(name_or_path)
    runs_dir = runs_dir or Path("runs") / exp.name
    out = out or Path("reports") / exp.name
    runs = plan_experiment(exp, settings)
    commands = [ref.command(runs_dir, jobs, settings) for ref in exp.sweeps]
    runner = SweepRunner(runs, runs_dir, exp.name, jobs=jobs, gpus=gpus,
                         jobs_per_gpu=jobs_per_gpu, launcher=launcher, log=log)
    probing = plan_probes(exp, runner.runs)  # validated before any run starts
    commands += [ref.command(runs_dir) for ref in exp.probes]
    result = ExperimentResult(exp, runner.runs, commands, dry_run=dry_run, out=out)
    if dry_run:
        return result
    runner.run()
    if runner.submitted:  # --no-wait: nothing to read yet
        return result
    result.failed = any(r.state == "failed" for r in runner.runs)
    run_probes(probing, runner.runs, runs_dir, log)
    from .analysis.report import build
    from .analysis.rundirs import read_runs

    commands = commands + [shlex.join(["resnet-ablate", "figures", "--runs", str(runs_dir),
                                       "--out", str(out)])]
    # the experiment's own runs, whatever else is there, read where they lie
    runs = read_runs([runs_dir])
    runs.check_histories()
    result.skipped = runs.skipped
    ours = runs.subset(runs.runs[runs.runs["run_id"].isin({r.run_id for r in runner.runs})])
    invoked = invoked_as or shlex.join(["resnet-ablate", "reproduce", name_or_path])
    import pandas as pd

    # The plan, so that a planned run that left no record is counted ("not run").
    planned = pd.DataFrame({"run_id": [r.run_id for r in runner.runs]})
    result.report = build(
        ours, out, figures=list(exp.figures), tables=list(exp.tables),
        commands=[invoked, "# which ran:", *commands], title=exp.title,
        notes=list(exp.notes), progress=log, planned=planned, edf=exp.edf)
    return result


def plan_probes(exp: Experiment, runs: list) -> list[tuple[ProbeRef, Any]]:
    """Each of the experiment's probes parsed and checked (its name, its settings), with the
    plugins its runs name loaded (a plugin probe, a plugin's variant)."""
    if not exp.probes:
        return []
    from .probes.probing import parse_request
    from .variants import plugins

    params = {k for run in runs for k in run.params}
    for ref in exp.probes:
        bad = sorted(set(ref.only or {}) - params)
        if bad:
            raise InputError(f"{exp.where}: probe {ref.name}: only: {bad[0]!r} is not a "
                             f"parameter of its sweeps ({', '.join(sorted(params))})")
    for run in runs:
        plugins.load(plugins.split(str(run.params.get("plugins") or "")))
    return [(ref, parse_request(ref.name, ref.settings, seed=ref.seed)) for ref in exp.probes]


def run_probes(probing: list[tuple[ProbeRef, Any]], runs: list, runs_dir: Path,
               log: Callable[[str], None]) -> None:
    """The probes of each finished run, a run at a time (one W&B probe run per run)."""
    if not probing:
        return
    from .analysis.probe_figures import record_png
    from .probes.probing import probe_runs

    for run in runs:
        wanted = [request for ref, request in probing if run.state == "finished" and all(
            str(run.params.get(k)) in {str(a) for a in v} for k, v in (ref.only or {}).items())]
        if wanted:
            probe_runs(wanted, [runs_dir / run.run_id], log=log, figure=record_png)
