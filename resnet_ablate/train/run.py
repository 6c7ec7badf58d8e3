"""`resnet-ablate train key=value ...`: validate everything, then create the run, then train.

Bad input (unknown key, model, data set or protocol; a value of the wrong type or out of
range; a model too big to build; data that does not fit the model; missing or unreadable
data; a resume with nothing to resume) raises before anything is written, or removes what
it had just created, so it leaves nothing behind. Once training starts, a failure is
recorded as status `failed`. A run another process is training is skipped (exit 75).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from .. import __version__
from ..condition import condition_id, of_record
from ..config import RunConfig, TrainRequest, parse_train_words
from ..counting import complexity
from ..data import DataSettings, image_mode, open_run_data
from ..models.size import check as check_size
from ..plugins import load as load_plugins, loaded as loaded_plugins
from ..registry import create_model, get_spec
from ..rundir import RunDir, RunLocked
from ..spec import VariantSpec
from ..tracking import NullTracker, Tracker, tags
from .distributed import Dist, from_env
from .progress import Progress
from .trainer import Sinks, TrainOptions, Trainer
from ..errors import InputError, MissingInput
from ..overrides import unknown_key_error

EXIT_LOCKED = 75  # EX_TEMPFAIL: another process is training this run; try again later


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device=cuda but no CUDA device is available; use device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def set_deterministic(on: bool) -> None:
    """Deterministic algorithms only, cuDNN included (reproducible on GPUs, slower)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def default_run_id(cfg: RunConfig) -> str:
    return f"{get_spec(cfg.model).name}-{cfg.dataset}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_identity(spec: VariantSpec, request: TrainRequest, data_mode: str,
                 world_size: int) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint for it to continue bit for bit."""
    cfg = request.config
    return {"model": spec.factors(), "dataset": cfg.dataset, "data_mode": data_mode,
            "protocol": request.protocol.fields(), "seed": cfg.seed,
            "run": {"amp": cfg.amp, "channels_last": cfg.channels_last,
                    "deterministic": cfg.deterministic, "world_size": world_size}}


def _identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for key in ("model", "protocol", "run"):
        a_all, b_all = old.get(key) or {}, new[key]
        for f in sorted(set(a_all) | set(b_all)):
            if a_all.get(f) != b_all.get(f):
                diffs.append(f"{key}.{f}: checkpoint {a_all.get(f)!r}, now {b_all.get(f)!r}")
    for key in ("dataset", "data_mode", "seed"):
        if old.get(key) != new[key]:
            diffs.append(f"{key}: checkpoint {old.get(key)!r}, now {new[key]!r}")
    return diffs


def _resuming(rundir: RunDir, resume: str) -> bool:
    """Whether to resume; refuses to overwrite a run or to resume one that is not there.
    A failed run with checkpoints (say, a disk that filled at the last save) resumes."""
    summary = rundir.read_summary() if rundir.summary_path.exists() else None
    checkpoints = rundir.checkpoints()
    if rundir.locked_by_other():
        raise RunLocked(f"run {rundir.path} is being trained by another process")
    ended = summary is not None and not (summary["status"] == "failed" and checkpoints)
    if resume == "true":
        if not rundir.path.is_dir():
            raise MissingInput(f"resume=true but there is no run {rundir.path} to resume")
        if ended:
            raise InputError(f"run {rundir.path} has already ended (status "
                             f"{summary['status']}); nothing to resume")
        if not checkpoints:
            raise MissingInput(f"resume=true but {rundir.path} holds no checkpoint")
        return True
    if summary is not None:
        if resume == "auto" and not ended:  # failed with checkpoints: continue it
            return True
        raise InputError(f"run {rundir.path} already exists and has ended; choose another "
                         "run_id" + ("" if ended else " or pass resume=true"))
    if checkpoints:
        if resume == "auto":
            return True
        raise InputError(f"run {rundir.path} already exists with checkpoints; pass resume=true "
                         "to continue it or choose another run_id")
    return False


_SHARED_ERRORS = {c.__name__: c for c in (InputError, MissingInput, RunLocked)}


def _claim(rundir: RunDir, resume: str, dist: Dist) -> tuple[bool, bool]:
    """Rank 0 decides whether to resume and takes the run's lock; every rank gets its
    answer (or its error), so the other ranks never see rank 0's own lock as another's.
    Returns (resuming, whether the run directory is new)."""
    decision: tuple[str, Any] = ("ok", (False, False))
    if dist.is_main:
        try:
            created = not rundir.path.exists()
            decision = ("ok", (_resuming(rundir, resume), created))
            rundir.acquire()
        except (InputError, RunLocked) as exc:
            decision = (type(exc).__name__, str(exc))
        except OSError as exc:  # under a file, read-only, a name too long, ...
            decision = ("InputError", f"cannot create run directory {rundir.path}: "
                                      f"{exc.strerror or exc}")
    kind, value = dist.broadcast(decision)
    if kind != "ok":
        raise _SHARED_ERRORS[kind](value)
    return tuple(value)


def _check_backend(name: str) -> None:
    from torch._dynamo import list_backends

    known = list_backends(exclude_tags=())
    if name not in known:
        raise unknown_key_error(name, known, "compile_backend")


def _check_fits(spec: VariantSpec, data) -> None:
    if spec.num_classes < data.num_classes:
        raise InputError(f"model.num_classes={spec.num_classes} is below the data's "
                         f"{data.num_classes} classes")
    if spec.in_chans != data.in_chans:
        raise InputError(f"model.in_chans={spec.in_chans} but the data's images have "
                         f"{data.in_chans} channel(s)")


@dataclass
class Prepared:
    trainer: Trainer
    rundir: RunDir
    config: dict[str, Any]
    dist: Dist
    tracker: Any


def prepare(request: TrainRequest) -> Prepared:
    cfg, protocol = request.config, request.protocol
    overrides = dict(request.model_overrides)
    if cfg.run_id and cfg.resume != "false":  # a run's own plugins: its variant is theirs
        load_plugins((RunDir(cfg.runs_dir, cfg.run_id).read_config() or {}).get("plugins")
                     or [])
    base = get_spec(cfg.model)
    # Refused at once when absurd: the size is known from the spec, before any data loads.
    early = base.with_overrides(**overrides)
    check_size(early, protocol.crop, cfg.max_params, cfg.max_activations)
    if cfg.compile:
        _check_backend(cfg.compile_backend)
    device = resolve_device(cfg.device)
    set_deterministic(cfg.deterministic)
    dist = from_env(device.type)
    rundir = RunDir(cfg.runs_dir, dist.broadcast(cfg.run_id or default_run_id(cfg)))
    if dist.enabled and protocol.batch_size % dist.world_size:
        raise InputError(f"batch_size {protocol.batch_size} must divide evenly over "
                         f"{dist.world_size} processes")
    mode = image_mode(cfg.dataset, cfg.data_dir, cfg.data_mode)
    resuming, created = _claim(rundir, cfg.resume, dist)
    try:
        data = open_run_data(cfg.dataset, cfg.data_dir, cfg.download, mode, DataSettings(
            protocol=protocol, device=device, seed=cfg.seed, rank=dist.rank,
            world_size=dist.world_size, eval_batch_size=cfg.eval_batch_size,
            num_workers=cfg.num_workers))
        spec = base.with_overrides(**{"num_classes": data.num_classes,
                                      "in_chans": data.in_chans, **overrides})
        _check_fits(spec, data)
        if protocol.lr_schedule == "plateau" and not data.has("val"):
            raise InputError("lr_schedule=plateau reads a held-out split and this data has "
                             "none: set val_size > 0")
        check_size(spec, data.input_size, cfg.max_params, cfg.max_activations)
        identity = run_identity(spec, request, data.mode, dist.world_size)
        state = None
        if resuming:
            rundir.clean_tmp()
            state = rundir.load_checkpoint(map_location=device)
            diffs = _identity_diff(state["identity"], identity)
            if diffs:
                raise InputError(f"resume refused: {rundir.path} was trained with other "
                                 f"settings ({'; '.join(diffs[:3])}); bitwise resume needs "
                                 "the same ones")
        if resuming and dist.is_main:  # a failed run (a full disk) resumes: not failed now
            rundir.summary_path.unlink(missing_ok=True)
        torch.manual_seed(cfg.seed)
        model = create_model(spec).to(device)
        counts = complexity(model, input_size=data.input_size, with_fvcore=False)
        config = config_record(request, spec, rundir.run_id, counts, data, dist, device)
        if dist.is_main and not resuming:
            rundir.write_config(config)
    except BaseException:
        rundir.release()
        if created and dist.is_main:  # bad input: leave nothing behind
            shutil.rmtree(rundir.path, ignore_errors=True)
        raise
    dist.barrier()
    tracker = (Tracker(cfg.wandb, cfg.wandb_project, cfg.wandb_group, cfg.wandb_entity,
                       rundir.run_id, rundir.wandb_dir, wandb_config(config),
                       tags(spec.factors(), protocol.name), resume=resuming)
               if dist.is_main else NullTracker("rank > 0"))
    progress = Progress(cfg.progress, protocol.iterations, rundir.run_id, enabled=dist.is_main)
    options = TrainOptions(amp=cfg.amp == "bf16", channels_last=cfg.channels_last,
                           compile=cfg.compile, compile_backend=cfg.compile_backend,
                           checkpoint_every=cfg.checkpoint_every,
                           keep_checkpoints=cfg.keep_checkpoints, log_every=cfg.log_every,
                           responses=cfg.responses)
    trainer = Trainer(model, protocol, data, dist, options,
                      Sinks(tracker, progress, rundir if dist.is_main else None), identity)
    if state is not None:
        trainer.load_state_dict(state)
    return Prepared(trainer, rundir, config, dist, tracker)


def config_record(request: TrainRequest, spec: VariantSpec, run_id: str, counts: dict,
                  data, dist: Dist, device: torch.device) -> dict:
    cfg = request.config
    record = {
        "run_id": run_id,
        "model": spec.name,  # the registry's spelling, whatever case the user typed
        **{k: v for k, v in spec.factors().items() if k != "name"},
        "model_overrides": {k: v.as_dict() if hasattr(v, "as_dict") else v
                            for k, v in request.model_overrides.items()},
        "dataset": cfg.dataset,
        "data_dir": str(cfg.data_dir),
        "data_mode": data.mode,
        "split_sizes": data.sizes,
        "val_source": data.val_source,
        "protocol": request.protocol.name,
        "protocol_fields": request.protocol.fields(),
        "protocol_overrides": request.protocol_overrides,
        "overrides": list(request.words),
        "seed": cfg.seed,
        "params": counts["params"],
        "macs": counts["macs"],
        "input_size": list(counts["input_size"]),
        "world_size": dist.world_size,
        "device": str(device),
        "env": {k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                                          "SLURM_JOB_ID") if k in os.environ},
        "amp": cfg.amp,
        "channels_last": cfg.channels_last,
        "deterministic": cfg.deterministic,
        "compile": cfg.compile,
        "compile_backend": cfg.compile_backend if cfg.compile else None,
        "plugins": loaded_plugins(),
        "run_config": dataclasses.asdict(cfg),
        "versions": {"resnet_ablate": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    record["condition"] = condition_id(of_record(record))
    return record


# Config keys that are bookkeeping or local paths: not W&B config (the summary has them).
_NOT_FOR_WANDB = ("protocol_fields", "run_config", "model_overrides", "data_dir", "overrides",
                  "device", "env", "versions")


def wandb_config(config: dict) -> dict:
    """Flat keys whose values equal a sweep's parameters (model, seed, lr, ...); each key
    once, no local paths."""
    flat = {k: v for k, v in config.items() if k not in _NOT_FOR_WANDB}
    flat.update({k: v for k, v in config["protocol_fields"].items() if k != "name"})
    flat["log_every"] = config["run_config"]["log_every"]  # the window of W&B's train means
    flat["plugins"] = [os.path.basename(p) for p in config["plugins"]]
    return flat


def summary_record(config: dict, status: str, metrics: dict, tracker) -> dict:
    keys = ("run_id", "model", *[f.name for f in dataclasses.fields(VariantSpec)
                                 if f.name != "name"],
            "dataset", "data_mode", "split_sizes", "val_source", "protocol", "seed", "params",
            "macs", "input_size", "world_size", "device", "amp", "channels_last",
            "deterministic", "compile", "overrides", "protocol_overrides", "plugins",
            "condition")
    summary = {k: config[k] for k in keys}
    summary["status"] = status
    summary.update(metrics)
    summary["trained_on"] = (f"{config['split_sizes'].get('train')} training images; "
                             f"validation: {config['val_source']}")
    summary["errors_in"] = "percent"
    summary["wandb"] = tracker.info
    summary["protocol_fields"] = config["protocol_fields"]
    summary["versions"] = config["versions"]
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return summary


def _finish(prep: Prepared, status: str, metrics: dict) -> tuple[str, dict]:
    """The final checkpoint and weights; a failure to write them (a full disk) turns the
    run into a failed one that resume=true continues from its last checkpoint."""
    trainer, rundir = prep.trainer, prep.rundir
    if status != "finished":
        return status, metrics
    try:
        rundir.save_checkpoint(trainer.state_dict(), trainer.options.keep_checkpoints)
        from ..rundir import strip_module_prefix

        rundir.write_model(strip_module_prefix(trainer.model.state_dict()))
        return status, metrics
    except OSError as exc:
        error = (f"could not save the final weights ({exc.strerror or exc}); free space and "
                 f"continue with resume=true run_id={rundir.run_id}")
        print(f"resnet-ablate: error: {error}", file=sys.stderr, flush=True)
        return "failed", {**metrics, "error": error}


def train(words: list[str]) -> int:
    request = parse_train_words(words)
    prep = prepare(request)  # bad input raises here, before any file exists
    trainer, config, dist, tracker = prep.trainer, prep.config, prep.dist, prep.tracker
    try:
        cfg = request.config
        if dist.is_main:
            print(f"run {config['run_id']}: {config['model']} on {cfg.dataset} "
                  f"({config['split_sizes']}), protocol {request.protocol.name}, "
                  f"{config['params']:,} params, {config['macs']:,} MACs/image, "
                  f"{config['device']} x{dist.world_size}, W&B {tracker.info['mode']}",
                  flush=True)
        outcome = trainer.run()
        if not dist.is_main:
            return outcome.exit_code
        if outcome.status == "interrupted":
            tracker.finish(exit_code=1, preempted=True)
            print(f"resnet-ablate: stopped at iteration {trainer.iteration}; continue with "
                  f"resume=true run_id={prep.rundir.run_id}", file=sys.stderr, flush=True)
            return outcome.exit_code
        status, metrics = _finish(prep, outcome.status, outcome.metrics)
        summary = summary_record(config, status, metrics, tracker)
        try:
            prep.rundir.write_history(trainer.history)
            prep.rundir.write_summary(summary)
        except OSError as exc:
            print(f"resnet-ablate: error: could not write {prep.rundir.summary_path} "
                  f"({exc.strerror or exc}); the run's checkpoints remain: resume=true "
                  f"run_id={prep.rundir.run_id}", file=sys.stderr, flush=True)
            tracker.finish(exit_code=1)
            return 1
        tracker.log_responses(summary.get("layer_responses") or [])
        tracker.update_summary({k: v for k, v in summary.items()
                                if (k.startswith(("final_", "best_", "warmup_", "diverged_at"))
                                    and not isinstance(v, str)) or k == "status"})
        tracker.finish(exit_code=0 if status != "failed" else 1)
        _report(summary, prep.rundir)
        return 1 if status == "failed" else 0
    finally:
        prep.rundir.release()
        dist.close()


def _report(summary: dict, rundir: RunDir) -> None:
    where = rundir.summary_path
    if summary["status"] == "finished":
        parts = [f"{name} err {summary[key]:.2f}%" for name, key in (
            ("train", "final_train_err"), ("val", "final_val_err"), ("test", "final_test_err"))
                 if summary.get(key) is not None]
        print(f"finished {summary['iterations']} iterations: {', '.join(parts)} -> {where}",
              flush=True)
    elif summary["status"] == "diverged":
        print(f"diverged at iteration {summary['diverged_at']} (non-finite loss) -> {where}",
              flush=True)
    else:
        print(f"failed: {summary['error']} -> {where}", file=sys.stderr, flush=True)
