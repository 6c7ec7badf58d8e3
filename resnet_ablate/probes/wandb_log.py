"""Probe records to Weights & Biases: per record a wandb.Table (the probe's rows), its figure
(as PNG, from the `figure` function the caller hands down: the analysis draws it, and the
probes import no analysis) and its scalars in the run summary.

Where: in the run's own W&B run while it is live (`train probes=...`: logged at the run's
last iteration, before it finishes). Otherwise (`resnet-ablate probe`, `reproduce`) in a new
W&B run with job_type "probe", in the run's project and entity, grouped with it (the run's
W&B group, or its run id when it had none), configured with the run's W&B config and the
probed run's id. Not by resuming the finished run: a resume would rewrite a finished run's
summary and history in W&B, offline runs cannot be resumed by a later process before they
are synced, and many probes of many runs would contend for one run; a probe run beside
the training run is W&B's own pattern for evaluation jobs (job_type, group). The W&B mode
is the run's own (settings.wandb: a run trained without W&B gets no probe run) unless the
caller names one. A W&B failure is a warning (resnet_ablate.tracking.Tracker): the records
on disk are complete whatever W&B does.
"""
from __future__ import annotations

import io

from typing import Any, Callable, Sequence

from ..run import probefiles, record
from .registry import get_probe

Figure = Callable[[dict, dict], "bytes | None"]  # (record, its arrays) -> PNG bytes


def scalars(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The result's numbers, one level of nesting flattened: probe/<name>/<field>."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"probe/{name}/{key}" + (f".{sub}" if sub else "")] = v
    return out


def _log(tracker: Any, outcomes: Sequence[Any], step: int, figure: Figure | None) -> None:
    import wandb

    payload: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for o in outcomes:
        rec = o.record
        probe = get_probe(rec["probe"]) if rec["probe"] else None
        arrays = probefiles.arrays(o.path, rec)
        columns, rows = probe.rows({**rec["result"], "arrays": arrays})
        tag = f"probe/{rec['probe']}-{rec['digest']}"
        payload[f"{tag}/table"] = wandb.Table(columns=columns, data=rows)
        png = figure(rec, arrays) if figure is not None else None
        if png is not None:
            # W&B's own conversion of a figure goes through pyplot: hand it the PNG
            import PIL.Image

            payload[f"{tag}/figure"] = wandb.Image(PIL.Image.open(io.BytesIO(png)))
        summary.update(scalars(rec["probe"], rec["result"]))
    tracker.log(payload, step)
    tracker.update_summary(summary)


def log_outcomes(target: Any, outcomes: Sequence[Any], mode: str = "run", tracker: Any = None,
                 log: Callable[[str], None] = print, figure: Figure | None = None) -> None:
    """Log the new records of one run (see the module's docstring for where)."""
    if not outcomes:
        return
    if tracker is not None:
        _log(tracker, outcomes, int(target.values.get("iterations") or 0), figure)
        return
    v = target.values
    mode = (v.get("settings.wandb") or "auto") if mode == "run" else mode
    if mode == "disabled":
        return
    from ..tracking import Tracker, tags

    wandb_id = (v.get("wandb") or {}).get("id") if isinstance(v.get("wandb"), dict) else None
    config = {**record.wandb_config(v), "probed_run": target.run_id,
              "probed_wandb_id": wandb_id,
              "probes": {f"{o.probe}-{o.record['digest']}": {
                  "settings": o.record["settings"], "seed": o.record["seed"],
                  "weights": o.record["weights"], "batch_size": o.record["data"]["batch_size"]}
                  for o in outcomes}}
    # one W&B run per set of new records (each record is written, so logged, once)
    run_id = f"{target.run_id[:100]}-probe-{record.digest([o.record['digest'] for o in outcomes], 8)}"
    probe_run = Tracker(mode, v.get("settings.wandb_project") or "resnet-ablate",
                        v.get("settings.wandb_group") or target.run_id,
                        v.get("settings.wandb_entity") or "", run_id, target.rundir.path,
                        config, [*tags(v), "probe"], resume=False, job_type="probe")
    _log(probe_run, outcomes, 0, figure)
    where = probe_run.info.get("dir")
    probe_run.finish()
    if where:
        log(f"W&B {probe_run.mode}: probe run {run_id} of run {target.run_id} ({where})")
