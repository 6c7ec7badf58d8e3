"""Runs into tidy pandas frames: local run directories and, when online, the W&B API.

runs:      one row per (condition, seed): every key of the run's record as a column, by its
           dotted path (resnet_ablate.run.record: depth, protocol_fields.lr,
           data.fingerprint, run.amp, final_test_err, ...; mappings and lists as canonical
           JSON text), its `condition` id, and where it came from (`source`).
history:   long: run_id, iteration, metric, value, granularity ("iteration" for local
           per-iteration rows, "window:N" for W&B's means over N iterations).
responses: Fig. 7: run_id, index, layer, std.

A broken run directory (no summary, a malformed one, a truncated history) is reported and
skipped, never fatal. The same condition and seed twice (a rerun under another run_id, a
run listed by two sweeps) counts once, with a warning naming both.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..errors import InputError, MissingInput
from ..run import record
from ..run.rundir import EVAL_COLUMNS, HISTORY_COLUMNS, RunDir, paper_train_err

METRIC_COLUMNS = HISTORY_COLUMNS[1:] + EVAL_COLUMNS  # the history's metrics, by their names


@dataclass
class Collected:
    runs: pd.DataFrame
    history: pd.DataFrame
    responses: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    warnings: list[str] = field(default_factory=list)

    def save(self, out: Path) -> list[Path]:
        from ..io import atomic_write_bytes

        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("runs", "history", "responses"):
            path = out / f"{name}.parquet"
            atomic_write_bytes(path, getattr(self, name).to_parquet(index=False))
            written.append(path)
        return written

    def subset(self, runs: pd.DataFrame) -> "Collected":
        ids = set(runs["run_id"])
        return Collected(runs, self.history[self.history["run_id"].isin(ids)],
                         self.responses[self.responses["run_id"].isin(ids)],
                         list(self.skipped), list(self.warnings))


def run_row(summary: dict[str, Any], source: str, warnings: list[str] | None = None
            ) -> dict[str, Any]:
    """One row of the runs table: the record flat, values as a table holds them. The
    condition is the one its factors give; a stored id that disagrees (a record edited by
    hand) is replaced, with a warning."""
    values = record.flat(summary)
    row = {c: record.canonical(values.get(c)) for c in record.columns()}
    computed = record.condition_id(values)
    if row["condition"] != computed:
        if warnings is not None and row["condition"] is not None:
            warnings.append(f"{source}: its stored condition {row['condition']} is not what "
                            f"its factors give ({computed}); grouped by its factors")
        row["condition"] = computed
    row["shortcut"] = row["shortcut"] or "-"  # plain nets: no shortcut
    row["source"] = source
    return row


def history_rows(run_id: str, records: Iterable[dict[str, Any]],
                 granularity: str = "iteration") -> list[dict[str, Any]]:
    out = []
    for rec in records:
        it = int(rec["iteration"])
        for metric, value in rec.items():
            if metric == "iteration" or value is None or value == "":
                continue
            value = float(value)
            if not math.isnan(value):
                out.append({"run_id": run_id, "iteration": it, "metric": metric,
                            "value": value, "granularity": granularity})
    return out


def _running_train_err(records: list[dict[str, Any]], summary: dict[str, Any]) -> float | None:
    """The paper's final training error from a history (runs recorded before 0.2)."""
    every = (summary.get("protocol_fields") or {}).get("eval_every")
    last = summary.get("iterations")
    if not every or not last:
        return None
    rows = [(int(r["iteration"]), float(r["train_err"])) for r in records
            if r.get("train_err") not in (None, "")]
    return paper_train_err([i for i, _ in rows], [e for _, e in rows], last, every)


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    frame = pd.read_csv(path)
    if "iteration" not in frame.columns or not pd.api.types.is_numeric_dtype(frame["iteration"]):
        raise InputError("history.csv has no numeric iteration column")
    return frame.to_dict("records")


def _scan_local(runs_dir: Path) -> tuple[list, list, list, list, list]:
    runs, history, responses, skipped, warnings = [], [], [], [], []
    if not runs_dir.is_dir():
        raise MissingInput(f"runs directory {str(runs_dir)!r} does not exist")
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        if run_dir.name.startswith("."):
            continue  # .sweeps and other bookkeeping
        try:
            rundir = RunDir(runs_dir, run_dir.name)
            summary = rundir.read_summary()
        except InputError as exc:
            skipped.append((str(run_dir), str(exc)))
            continue
        if summary is None:
            why = ("unfinished (checkpoints, no summary)" if rundir.checkpoints()
                   else "no summary.json")
            skipped.append((str(run_dir), why))
            continue
        try:
            records = _read_history(rundir.history_path)
            rows = history_rows(summary["run_id"], records)
            row = run_row(summary, str(run_dir), warnings)
        except Exception as exc:  # noqa: BLE001  a broken run never stops a collection
            skipped.append((str(run_dir), f"{type(exc).__name__}: {str(exc)[:120]}"))
            continue
        if row["final_train_err_running"] is None and row["status"] == "finished":
            row["final_train_err"] = row["final_train_err_running"] = _running_train_err(
                records, summary)
        last = max((int(r["iteration"]) for r in records), default=0)
        if isinstance(summary.get("iterations"), int) and last < summary["iterations"]:
            warnings.append(f"{run_dir}: history.csv ends at iteration {last}, the summary "
                            f"says {summary['iterations']} (curves are cut short)")
        runs.append(row)
        history += rows
        responses += _responses(summary)
    return runs, history, responses, skipped, warnings


def _responses(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in summary.get("layer_responses") or []:
        if isinstance(r, dict) and {"index", "layer", "std"} <= set(r):
            out.append({"run_id": summary["run_id"], "index": r["index"], "layer": r["layer"],
                        "std": r["std"]})
    return out


def _scan_wandb(path: str, group: str | None, api=None) -> tuple[list, list, list, list, list]:
    """Runs of a W&B project ("entity/project"), optionally one group, with full history
    (scan_history): W&B's config and summary are projections of the record, read back into
    it. Needs a login. Training numbers in W&B are means over log_every iterations; their
    rows say so (granularity "window:N")."""
    if api is None:
        import wandb

        from ..tracking import logged_in

        if not logged_in():
            raise InputError(f"collect --wandb {path}: no W&B login found (run `wandb login` or "
                             "set WANDB_API_KEY)")
        api = wandb.Api()
    if path.count("/") != 1 or not all(path.split("/")):
        raise InputError(f"--wandb must be ENTITY/PROJECT; got {path!r}")
    filters = {"group": group} if group else None
    try:
        found = list(api.runs(path, filters=filters))
    except Exception as exc:  # noqa: BLE001  a wrong project, no access, no network
        raise InputError(f"collect --wandb {path}: {type(exc).__name__}: "
                         f"{str(exc)[:160]}") from None
    runs, history, responses, skipped = [], [], [], []
    train_keys, eval_keys = set(HISTORY_COLUMNS[1:]), set(EVAL_COLUMNS)
    for run in found:
        where = f"wandb:{path}/{run.id}"
        try:
            config = dict(run.config)
            results = {k: v for k, v in dict(run.summary).items() if not k.startswith("_")}
            summary = record.upgrade({**config, **results})
            summary.setdefault("run_id", run.name or run.id)
            summary.setdefault("status", "finished" if run.state == "finished" else "failed")
            record.check(summary, where)
            window = int(record.flat(summary).get("settings.log_every") or
                         config.get("log_every") or 1)
            train, evals = [], []
            for row in run.scan_history():
                if row.get("iteration") is None:
                    continue
                row = {record.LEGACY_METRICS.get(k, k): v for k, v in row.items()}
                it = {"iteration": row["iteration"]}
                train.append({**it, **{k: row[k] for k in train_keys if row.get(k) is not None}})
                evals.append({**it, **{k: row[k] for k in eval_keys if row.get(k) is not None}})
            rows = (history_rows(summary["run_id"], train, f"window:{window}")
                    + history_rows(summary["run_id"], evals, "evaluation"))
            row = run_row(summary, where)
        except Exception as exc:  # noqa: BLE001
            skipped.append((where, f"{type(exc).__name__}: {str(exc)[:120]}"))
            continue
        runs.append(row)
        history += rows
        responses += _responses(summary)
    return runs, history, responses, skipped, []


def _frames(runs, history, responses, skipped, warnings) -> Collected:
    columns = [*record.columns(), "source"]
    runs_df = pd.DataFrame(runs, columns=columns)
    hist_df = pd.DataFrame(history, columns=["run_id", "iteration", "metric", "value",
                                             "granularity"])
    resp_df = pd.DataFrame(responses, columns=["run_id", "index", "layer", "std"])
    if not runs_df.empty:
        dupes = runs_df["run_id"].duplicated(keep="first")
        for rid in runs_df.loc[dupes, "run_id"]:
            skipped.append((rid, "duplicate run_id (kept the first)"))
        runs_df = runs_df.loc[~dupes]
        runs_df, dropped = one_per_seed(runs_df)
        warnings += dropped + network_versions(runs_df)
        runs_df = runs_df.reset_index(drop=True)
        kept = set(runs_df["run_id"])
        hist_df = hist_df[hist_df["run_id"].isin(kept)]
        resp_df = resp_df[resp_df["run_id"].isin(kept)]
    for col in ("depth", "seed", "iterations", "params", "macs"):
        runs_df[col] = pd.to_numeric(runs_df[col], errors="coerce").astype("Int64")
    for col in ("final_train_err", "final_train_err_running", "final_train_err_eval",
                "final_val_err", "final_test_err", "final_test_top5_err", "best_val_err"):
        runs_df[col] = pd.to_numeric(runs_df[col], errors="coerce").astype(float)
    return Collected(runs_df, hist_df.reset_index(drop=True), resp_df.reset_index(drop=True),
                     skipped, warnings)


_RANK = {"finished": 0, "diverged": 1, "failed": 2}


def one_per_seed(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One sample per (condition, seed): a finished run over a diverged or failed one, then
    the latest; a warning names what was dropped."""
    order = runs.assign(_rank=runs["status"].map(_RANK).fillna(3),
                        _when=runs["finished_at"].fillna(""))
    order = order.sort_values(["_rank", "_when", "run_id"], ascending=[True, False, True])
    dup = order.duplicated(["condition", "seed"], keep="first")
    warnings = []
    for (cond, seed), group in order.groupby(["condition", "seed"], sort=False):
        if len(group) > 1:
            kept, dropped = group["run_id"].iloc[0], list(group["run_id"].iloc[1:])
            warnings.append(f"runs {', '.join([kept, *dropped])} are the same condition "
                            f"({cond}) and seed ({seed}); counted once, as {kept}")
    return order.loc[~dup].drop(columns=["_rank", "_when"]).sort_values("run_id"), warnings


def network_versions(runs: pd.DataFrame) -> list[str]:
    """A warning for each condition whose runs were built by harness versions that define
    its network differently (resnet_ablate.variants.paper.NETWORK_CHANGES)."""
    def network(text: Any) -> str:
        try:
            return str(json.loads(text).get("network", "?")) if isinstance(text, str) else "?"
        except (ValueError, AttributeError):
            return "?"
    out = []
    versions = runs["versions"].map(network)
    for cond, group in versions.groupby(runs["condition"]):
        if group.nunique() > 1:
            ids = runs.loc[group.index, "run_id"]
            out.append(f"runs of condition {cond} were built by harness versions that define "
                       f"the network differently ({', '.join(sorted(set(group)))}: "
                       f"{', '.join(ids.head(4))}); pooled as one condition, check "
                       "NETWORK_CHANGES")
    return out


def collect(runs_dirs: list[Path], wandb_path: str | None = None,
            group: str | None = None, api=None) -> Collected:
    """Every local runs directory and, if given, a W&B project, as one set of frames. It
    reads data only: no plugin a record names is imported."""
    scans = [_scan_local(Path(d)) for d in runs_dirs]  # paths or strings (notebooks)
    if wandb_path:
        scans.append(_scan_wandb(wandb_path, group, api=api))
    return _frames(*([item for scan in scans for item in scan[i]] for i in range(5)))


def load_collected(path: Path) -> Collected:
    """Frames saved by `resnet-ablate collect` (a folder of parquet files)."""
    frames = {name: pd.read_parquet(path / f"{name}.parquet")
              for name in ("runs", "history", "responses")}
    return Collected(**frames)
