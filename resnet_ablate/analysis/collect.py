"""Runs into tidy pandas frames: local run directories and, when online, the W&B API.

runs:      one row per (condition, seed): every factor of the run's condition as a column
           (model.*, protocol.*, dataset, split_sizes, ...), its short `condition` id, and
           every summary metric (errors in percent).
history:   long: run_id, iteration, metric, value, granularity ("iteration" for local
           per-iteration rows, "window:N" for W&B's means over N iterations).
responses: Fig. 7: run_id, index, layer, std.

A broken run directory (no summary, a malformed one, a truncated history) is reported and
skipped, never fatal. The same condition and seed twice (a rerun under another run_id, a
run listed by two sweeps) counts once, with a warning naming both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..condition import condition_id, of_record
from ..errors import InputError, MissingInput
from ..rundir import METRICS, RunDir, check_summary

RUN_COLUMNS = ("run_id", "model", "family", "depth", "shortcut", "block", "stem", "dataset",
               "protocol", "seed", "status", "iterations", "params", "macs",
               "final_train_err", "final_train_err_running", "final_train_err_eval",
               "final_val_err", "final_test_err", "final_test_top5_err", "best_val_err",
               "test_err_at_best_val", "diverged_at", "warmup_end", "warmup_capped",
               "world_size", "images_per_sec", "trained_on", "finished_at", "plugins",
               "source", "condition")


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


def run_row(summary: dict[str, Any], source: str) -> dict[str, Any]:
    row = {k: summary.get(k) for k in RUN_COLUMNS}
    row["plugins"] = ",".join(summary.get("plugins") or [])
    row["source"] = source
    row["shortcut"] = row["shortcut"] or "-"  # plain nets: no shortcut
    if "final_train_err_running" not in summary:  # before 0.2: only the eval-mode one
        row["final_train_err_eval"], row["final_train_err"] = summary.get("final_train_err"), None
    condition = of_record(summary)
    row.update(condition)
    row["condition"] = condition_id(condition)
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
    errs = [float(r["train_err"]) for r in records
            if r.get("train_err") not in (None, "") and int(r["iteration"]) > last - every]
    return sum(errs) / len(errs) if errs else None


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
            row = run_row(summary, str(run_dir))
        except Exception as exc:  # noqa: BLE001  a broken run never stops a collection
            skipped.append((str(run_dir), f"{type(exc).__name__}: {str(exc)[:120]}"))
            continue
        if row["final_train_err"] is None and row["status"] == "finished":
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
    (scan_history). Needs a login. Training numbers in W&B are means over log_every
    iterations; their rows say so (granularity "window:N")."""
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
    names = {v: k for k, v in METRICS.items()}
    for run in found:
        where = f"wandb:{path}/{run.id}"
        try:
            config = dict(run.config)
            summary = {**config, **{k: v for k, v in dict(run.summary).items()
                                    if not k.startswith("_")}}
            summary.setdefault("run_id", run.name or run.id)
            summary.setdefault("status", "finished" if run.state == "finished" else "failed")
            fields = {k: config[k] for k in config if k in _protocol_keys()}
            summary.setdefault("protocol_fields", fields)
            check_summary(summary)
            window = int(config.get("log_every") or 1)
            records = []
            for row in run.scan_history():
                if row.get("iteration") is None:
                    continue
                rec = {"iteration": row["iteration"]}
                rec.update({names[k]: v for k, v in row.items() if k in names and v is not None})
                records.append(rec)
            train = [{k: r[k] for k in ("iteration", "train_loss", "train_err", "lr") if k in r}
                     for r in records]
            evals = [{k: r[k] for k in r if k == "iteration" or k.startswith(("val_", "test_"))}
                     for r in records]
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


def _protocol_keys() -> set[str]:
    from ..protocol import protocol_keys

    return set(protocol_keys())


def _frames(runs, history, responses, skipped, warnings) -> Collected:
    runs_df = pd.DataFrame(runs)
    for col in RUN_COLUMNS:
        if col not in runs_df:
            runs_df[col] = pd.Series(dtype=object)
    hist_df = pd.DataFrame(history, columns=["run_id", "iteration", "metric", "value",
                                             "granularity"])
    resp_df = pd.DataFrame(responses, columns=["run_id", "index", "layer", "std"])
    if not runs_df.empty:
        dupes = runs_df["run_id"].duplicated(keep="first")
        for rid in runs_df.loc[dupes, "run_id"]:
            skipped.append((rid, "duplicate run_id (kept the first)"))
        runs_df = runs_df.loc[~dupes]
        runs_df, dropped = one_per_seed(runs_df)
        warnings += dropped
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


def collect(runs_dirs: list[Path], wandb_path: str | None = None,
            group: str | None = None, api=None) -> Collected:
    """Every local runs directory and, if given, a W&B project, as one set of frames."""
    from ..plugins import load as load_plugins

    scans = [_scan_local(d) for d in runs_dirs]
    if wandb_path:
        scans.append(_scan_wandb(wandb_path, group, api=api))
    c = _frames(*([item for scan in scans for item in scan[i]] for i in range(5)))
    plugins = sorted({p for text in c.runs["plugins"].dropna() for p in str(text).split(",")
                      if p})
    for plugin in plugins:  # the runs' own plugins, so their variants are known here
        try:
            load_plugins([plugin])
        except InputError as exc:
            c.warnings.append(f"plugin of the collected runs not loaded: {exc}")
    return c


def load_collected(path: Path) -> Collected:
    """Frames saved by `resnet-ablate collect` (a folder of parquet files)."""
    frames = {name: pd.read_parquet(path / f"{name}.parquet")
              for name in ("runs", "history", "responses")}
    return Collected(**frames)
