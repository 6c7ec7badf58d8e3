"""`resnet-ablate pull ENTITY/PROJECT --to DIR`: a W&B project's runs written as run
directories of the harness's own format (summary.json, history.parquet), so that every
command reads them as it reads local runs: there is no second way in.

W&B's run config and summary are projections of the run record (resnet_ablate.run.record):
read back into it, checked like any summary. Its history is written as W&B logged it: the
training numbers are means over `log_every` iterations (the summary's history_granularity
says window:N), each evaluation a row of its own. Fig. 7's responses are a W&B table, not
pulled. A run already in DIR with the same record is left as it is; a different run under
its name is not overwritten (skipped, in one line).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from ..io import atomic_write_bytes, atomic_write_json
from ..run import record
from ..run.config import check_run_id
from ..run.rundir import EVAL_COLUMNS, HISTORY_COLUMNS, HISTORY_FILE_COLUMNS, RunDir, \
    parquet_bytes


def _api(project: str):
    import wandb

    from ..tracking import logged_in

    if not logged_in():
        raise InputError(f"pull {project}: no W&B login found (run `wandb login` or set "
                         "WANDB_API_KEY)")
    return wandb.Api()


def pull(project: str, to: Path, group: str | None = None, api=None,
         progress: Callable[[str], None] | None = None) -> tuple[list[str], list[tuple]]:
    """Every run of `project` (ENTITY/PROJECT), optionally of one group, as a run directory
    in `to`: (run_ids written or already there, [(where, why) skipped])."""
    if project.count("/") != 1 or not all(project.split("/")):
        raise InputError(f"pull takes ENTITY/PROJECT; got {project!r}")
    if to.exists() and not to.is_dir():
        raise InputError(f"--to {to} is not a folder")
    api = api if api is not None else _api(project)
    try:
        found = list(api.runs(project, filters={"group": group} if group else None))
    except Exception as exc:  # noqa: BLE001  a wrong project, no access, no network
        raise InputError(f"pull {project}: {type(exc).__name__}: {str(exc)[:160]}") from None
    written, skipped = [], []
    for i, run in enumerate(found, 1):
        where = f"wandb:{project}/{getattr(run, 'id', '?')}"
        try:
            summary = _summary(run)
            rundir = RunDir(to, summary["run_id"])
            old = rundir.read_summary() if rundir.summary_path.exists() else None
            if old is not None and record.digest(old) != record.digest(summary):
                raise InputError(f"{rundir.path} holds another run of that name; not "
                                 "overwritten")
            if old is None:
                table = _history(run, summary)
                rundir.path.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(rundir.history_path, parquet_bytes(table))
                atomic_write_json(rundir.summary_path, summary)  # last: the run is complete
        except (InputError, OSError, RecursionError) as exc:
            skipped.append((where, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001  the API failed for this run
            skipped.append((where, f"{type(exc).__name__}: {str(exc)[:160]}"))
            continue
        written.append(summary["run_id"])
        if progress is not None:
            progress(f"pull: {i}/{len(found)} {summary['run_id']}")
    return written, skipped


def _summary(run) -> dict[str, Any]:
    """The run's record from its W&B config (nested as the record is) and summary (the
    results), checked as a summary.json is."""
    config = dict(run.config)
    logged = {k: v for k, v in dict(run.summary).items() if not str(k).startswith("_")}
    values = record.flat(config)
    results = {k.column for k in record.keys() if k.kind == "result"}
    values.update({k: v for k, v in logged.items() if k in results})
    values.setdefault("run_id", run.name or run.id)
    values.setdefault("status", "finished" if run.state == "finished" else "failed")
    window = values.get("settings.log_every") or 1
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise InputError(f"log_every must be a positive integer; got {window!r}")
    values["history_granularity"] = f"window:{window}"
    values["schema"] = record.SCHEMA_VERSION  # written now, in this version's layout
    values["condition"] = record.condition_id(values)
    summary = record.nest(values)
    record.check(summary, "the W&B run's record")
    check_run_id(summary["run_id"])
    return summary


def _history(run, summary: dict[str, Any]):
    """The run's history as W&B logged it (scan_history with only the keys kept: the rows
    that have them all): training windows, then each evaluation, by iteration."""
    import pyarrow as pa

    last = summary.get("iterations")
    rows: list[dict[str, Any]] = []
    logged = {k for k in dict(run.summary)}
    for keys in (HISTORY_COLUMNS[1:], EVAL_COLUMNS):  # training windows, evaluations
        keys = [k for k in keys if k in logged]  # W&B's summary: the last of each logged
        if not keys:
            continue
        for row in run.scan_history(keys=["iteration", *keys]):
            it = row.get("iteration")
            if isinstance(it, bool) or not isinstance(it, (int, float)) or it != it or \
                    it < 0 or (last is not None and it > last):
                raise InputError(f"its history has iteration {it!r}, outside [0, {last}]")
            rows.append({"iteration": int(it), **{k: _float(row.get(k)) for k in keys}})
    rows.sort(key=lambda r: (r["iteration"], any(k in r for k in EVAL_COLUMNS)))
    cols = {c: [r.get(c) for r in rows] for c in HISTORY_FILE_COLUMNS}
    return pa.table({c: pa.array(v, pa.int64() if c == "iteration" else pa.float64())
                     for c, v in cols.items()})


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is None:
            return None
        raise InputError(f"its history holds {json.dumps(value)[:40]} where a number belongs")
    return float(value)
