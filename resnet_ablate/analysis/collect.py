"""Runs into tidy pandas frames: local run directories and, when online, the W&B API.

runs:      one row per run: every factor (family, depth, shortcut, block, ...) and every
           summary metric (errors in percent).
history:   long: run_id, iteration, metric, value (train_loss, train_err, lr, val_err, ...).
responses: Fig. 7: run_id, index, layer, std.
A broken or half-written run directory is reported and skipped, never fatal.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

RUN_COLUMNS = ("run_id", "model", "family", "depth", "shortcut", "block", "stem", "dataset",
               "protocol", "seed", "status", "iterations", "params", "macs",
               "final_train_err", "final_val_err", "final_test_err", "final_test_top5_err",
               "best_val_err", "test_err_at_best_val", "diverged_at", "world_size",
               "images_per_sec", "source")


@dataclass
class Collected:
    runs: pd.DataFrame
    history: pd.DataFrame
    responses: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)

    def save(self, out: Path) -> list[Path]:
        from ..io import atomic_write_bytes

        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("runs", "history", "responses"):
            path = out / f"{name}.parquet"
            atomic_write_bytes(path, getattr(self, name).to_parquet(index=False))
            written.append(path)
        return written


def run_row(summary: dict[str, Any], source: str) -> dict[str, Any]:
    row = {k: summary.get(k) for k in RUN_COLUMNS}
    row["source"] = source
    row["shortcut"] = row["shortcut"] or "-"  # plain nets: no shortcut
    row["variant"] = variant_label(row["family"], row["shortcut"])
    return row


def variant_label(family: str, shortcut: str | None) -> str:
    """The hue of most figures: plain, resnet-A, resnet-B, preresnet-B, ..."""
    return family if family == "plain" else f"{family}-{shortcut}"


def history_rows(run_id: str, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        it = int(rec["iteration"])
        for metric, value in rec.items():
            if metric == "iteration" or value is None or value == "":
                continue
            value = float(value)
            if not math.isnan(value):
                out.append({"run_id": run_id, "iteration": it, "metric": metric,
                            "value": value})
    return out


def _check_summary(summary: Any) -> None:
    if not isinstance(summary, dict):
        raise ValueError("summary.json is not an object")
    missing = [k for k in ("run_id", "model", "family", "depth", "status") if k not in summary]
    if missing:
        raise ValueError(f"summary.json lacks {', '.join(missing)}")


def collect_local(runs_dir: Path) -> Collected:
    return _frames(*_scan_local(runs_dir))


def _scan_local(runs_dir: Path) -> tuple[list, list, list, list]:
    runs, history, responses, skipped = [], [], [], []
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory {str(runs_dir)!r} does not exist")
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        if run_dir.name.startswith("."):
            continue  # .sweeps and other bookkeeping
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            why = ("unfinished (checkpoints, no summary)" if (run_dir / "checkpoints").is_dir()
                   else "no summary.json")
            skipped.append((str(run_dir), why))
            continue
        try:
            summary = json.loads(summary_path.read_text())
            _check_summary(summary)
            records = (pd.read_csv(run_dir / "history.csv").to_dict("records")
                       if (run_dir / "history.csv").exists() else [])
            rows = history_rows(summary["run_id"], records)
        except Exception as exc:  # noqa: BLE001  a broken run never stops a collection
            skipped.append((str(run_dir), f"{type(exc).__name__}: {str(exc)[:120]}"))
            continue
        runs.append(run_row(summary, str(run_dir)))
        history += rows
        for r in summary.get("layer_responses") or []:
            responses.append({"run_id": summary["run_id"], **r})
    return runs, history, responses, skipped


def _scan_wandb(path: str, group: str | None) -> tuple[list, list, list, list]:
    """Runs of a W&B project ("entity/project"), optionally one group, with full history
    (scan_history). Needs a login; the same rows as a local scan."""
    import wandb

    api = wandb.Api()
    filters = {"group": group} if group else None
    runs, history, responses, skipped = [], [], [], []
    for run in api.runs(path, filters=filters):
        try:
            summary = {**dict(run.config), **{k: v for k, v in run.summary.items()
                                              if not k.startswith("_")}}
            summary.setdefault("run_id", run.name or run.id)
            summary.setdefault("status", "finished" if run.state == "finished" else run.state)
            _check_summary(summary)
            records = []
            for row in run.scan_history():
                rec = {"iteration": row.get("iteration")}
                if rec["iteration"] is None:
                    continue
                for key, name in (("train/loss", "train_loss"), ("train/err", "train_err"),
                                  ("lr", "lr"), ("val/err", "val_err"),
                                  ("val/loss", "val_loss"), ("test/err", "test_err"),
                                  ("test/loss", "test_loss")):
                    if row.get(key) is not None:
                        rec[name] = row[key]
                records.append(rec)
        except Exception as exc:  # noqa: BLE001
            skipped.append((f"wandb:{path}/{run.id}", f"{type(exc).__name__}: {exc}"))
            continue
        runs.append(run_row(summary, f"wandb:{path}/{run.id}"))
        history += history_rows(summary["run_id"], records)
        for r in summary.get("layer_responses") or []:
            responses.append({"run_id": summary["run_id"], **r})
    return runs, history, responses, skipped


def _frames(runs, history, responses, skipped) -> Collected:
    runs_df = pd.DataFrame(runs, columns=[*RUN_COLUMNS, "variant"])
    hist_df = pd.DataFrame(history, columns=["run_id", "iteration", "metric", "value"])
    resp_df = pd.DataFrame(responses, columns=["run_id", "index", "layer", "std"])
    if not runs_df.empty:
        dupes = runs_df["run_id"].duplicated(keep="first")
        for rid in runs_df.loc[dupes, "run_id"]:
            skipped.append((rid, "duplicate run_id (kept the first)"))
        runs_df = runs_df.loc[~dupes].reset_index(drop=True)
    for col in ("depth", "seed", "iterations", "params", "macs"):
        runs_df[col] = pd.to_numeric(runs_df[col], errors="coerce").astype("Int64")
    return Collected(runs_df, hist_df, resp_df, skipped)


def collect(runs_dirs: list[Path], wandb_path: str | None = None,
            group: str | None = None) -> Collected:
    """Every local runs directory and, if given, a W&B project, as one set of frames."""
    scans = [_scan_local(d) for d in runs_dirs]
    if wandb_path:
        scans.append(_scan_wandb(wandb_path, group))
    return _frames(*([item for scan in scans for item in scan[i]] for i in range(4)))


def load_collected(path: Path) -> Collected:
    """Frames saved by `resnet-ablate collect` (a folder of parquet files)."""
    frames = {name: pd.read_parquet(path / f"{name}.parquet")
              for name in ("runs", "history", "responses")}
    return Collected(**frames)
