"""`resnet-ablate train key=value ...`: resolve everything once, then create the run, then
train, then write its record.

Bad input (unknown key, model, data set or protocol; a value of the wrong type or out of
range; a model too big to build; data that does not fit the model; missing or unreadable
data; a resume with nothing to resume, or of a run whose plugins are not loaded now) raises
before anything is written, or removes what it had just created, so it leaves nothing
behind. Once training starts, a failure is recorded as status `failed`. A run another
process is training is skipped (exit 75). SIGTERM/SIGINT are deferred from the first
iteration until the run's files are complete.
"""
from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import torch

from .. import __version__
from ..data import DataSettings, get_dataset, image_mode, open_run_data
from ..errors import InputError, MissingInput, unknown
from ..models import ResNet
from ..models.counting import check_size
from ..run import record
from ..run.config import NUMERICS, RunConfig, TrainRequest, parse_train_words
from ..run.rundir import History, RunDir, RunLocked, strip_module_prefix
from ..tracking import NullTracker, Tracker, tags
from ..variants import plugins
from ..variants.paper import NETWORK_CHANGES, network_version
from ..variants.resolve import resolve
from ..variants.spec import VariantSpec
from .distributed import Dist, from_env
from .progress import Progress
from .stop import DeferredSignals
from .trainer import Sinks, TrainOptions, Trainer

TRAIN_ERR_DEFINITION = ("the paper's training error: train-mode error on the augmented "
                        "mini-batches, mean over the last evaluation interval "
                        "(final_train_err_running); final_train_err_eval is the eval-mode "
                        "error on the training split (final_train_eval_images of it)")


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


def default_run_id(cfg: RunConfig, spec: VariantSpec) -> str:
    return f"{spec.name}-{cfg.dataset}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


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
        raise unknown("compile_backend", name, known)


def _check_resumable(cfg: RunConfig) -> None:
    """What a run's record (config.json, written at its start) says a resume needs: the
    plugins it was trained with, loaded by the user now (plugins=, RESNET_ABLATE_PLUGINS or
    an installed entry point; a record names them but never makes them run), and the
    network version it was built by (variants/paper.py NETWORK_CHANGES): a harness whose
    blocks compute another function would make half the run another model's."""
    rundir = RunDir(cfg.runs_dir, cfg.run_id)
    config = rundir.read_config() or {}
    named = config.get("plugins") or []
    if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
        raise InputError(f"{cfg.runs_dir}/{cfg.run_id}/config.json: plugins must be a list of "
                         "names")
    plugins.require(named, cfg.run_id, "plugins=", "resume it", prefix="resume refused: ")
    versions = config.get("versions") if isinstance(config.get("versions"), dict) else {}
    built = versions.get("network")
    now = network_version(__version__)
    if built is not None and built != now:
        raise InputError(
            f"resume refused: {rundir.path} was trained with other settings (versions.network: "
            f"run {built!r}, now {now!r}: {NETWORK_CHANGES.get(now, 'another network')}); its "
            f"network computes another function under resnet-ablate {__version__}: start a new "
            f"run, or resume it with a resnet-ablate of network version {built}")


def checkpoint_like(trainer: Trainer) -> dict[str, Any]:
    """The state this trainer saves, its optimizer's per-parameter buffers (momentum)
    included: what a checkpoint must match to be resumed from (else the previous one is)."""
    like = trainer.state_dict()
    like["optimizer"]["state"] = {i: {"momentum_buffer": p.detach()}
                                  for i, p in enumerate(trainer.model.parameters())}
    return like


def planned_spec(request: TrainRequest) -> tuple[VariantSpec, Any, str]:
    """The run's spec, once (variants.resolve): the variant on the data's classes and
    channels (from the data set's description: nothing is loaded yet) with the user's
    overrides; the data's description and image mode. The dry run prints this spec."""
    cfg = request.config
    mode = image_mode(cfg.dataset, cfg.data_dir, cfg.data_mode)
    described = get_dataset(cfg.dataset).describe(cfg.data_dir, mode)
    spec = resolve(cfg.model, request.model_overrides,
                   (described.num_classes, described.in_chans))
    return spec, described, mode


class RunFiles:
    """The trainer's files on rank 0: checkpoints carry the run's identity, which a resume
    compares with its own."""

    def __init__(self, rundir: RunDir, identity: dict[str, Any], keep: int) -> None:
        self.rundir, self.identity, self.keep = rundir, identity, keep

    def checkpoint(self, state: dict[str, Any]) -> None:
        self.rundir.save_checkpoint({**state, "identity": self.identity}, self.keep)

    def history(self, history: History) -> None:
        self.rundir.write_history(history)


@dataclass
class Prepared:
    trainer: Trainer
    rundir: RunDir
    values: dict[str, Any]  # the run's record as known at the start, flat
    dist: Dist
    tracker: Any
    notes: dict[str, list[str]]  # record results known before training (warnings)


def _missing(path: Path) -> bool:
    """Whether a folder is not there (a name the file system cannot hold: it is not, and
    the claim says so in one line)."""
    try:
        return not path.exists()
    except OSError:
        return False


def prepare(request: TrainRequest) -> Prepared:
    cfg, protocol = request.config, request.protocol
    if cfg.run_id and cfg.resume != "false":
        _check_resumable(cfg)
    if cfg.compile:
        _check_backend(cfg.compile_backend)
    if cfg.probes:  # an unknown probe is refused before anything is written
        from ..probes.probing import parse_names

        parse_names(cfg.probes)
    spec, _, mode = planned_spec(request)
    # Refused at once when absurd: counted on the meta device, before any data loads.
    size = check_size(spec, protocol.crop, cfg.max_params, cfg.max_activations)
    notes = {"schedule_warnings": protocol.schedule_warnings()}
    device = resolve_device(cfg.device)
    set_deterministic(cfg.deterministic)
    dist = from_env(device.type)
    rundir = RunDir(cfg.runs_dir, dist.broadcast(cfg.run_id or default_run_id(cfg, spec)))
    if dist.enabled and protocol.batch_size % dist.world_size:
        raise InputError(f"batch_size {protocol.batch_size} must divide evenly over "
                         f"{dist.world_size} processes")
    protocol.bn_images(dist.world_size)  # each process's batch splits into BN batches
    made = [d for d in rundir.path.parents if _missing(d)]  # runs_dir, if the claim makes it
    resuming, created = _claim(rundir, cfg.resume, dist)
    try:
        data = open_run_data(cfg.dataset, cfg.data_dir, cfg.download, mode, DataSettings(
            protocol=protocol, device=device, seed=cfg.seed, rank=dist.rank,
            world_size=dist.world_size, eval_batch_size=cfg.eval_batch_size,
            num_workers=cfg.num_workers))
        if data.num_classes > spec.num_classes:  # the description and the data disagree
            raise InputError(f"the data has {data.num_classes} classes; the model "
                             f"{spec.num_classes}")
        if protocol.lr_schedule == "plateau" and not data.has("val"):
            raise InputError("lr_schedule=plateau reads a held-out split and this data has "
                             "none: set val_size > 0")
        values = record.resolved(
            request, spec, run_id=rundir.run_id, params=size["params"], macs=size["macs"],
            data={"data.mode": data.mode, "data.fingerprint": data.fingerprint,
                  "data.split_sizes": data.sizes, "data.val_source": data.val_source,
                  "data.input_size": data.input_size},
            run={"run.world_size": dist.world_size, "run.device": device.type,
                 "run.threads": torch.get_num_threads(),
                 "run.bn_batch": protocol.bn_images(dist.world_size)},
            plugins=plugins.loaded(), planned_condition=record.planned_condition(request, spec),
            versions={"resnet_ablate": __version__, "network": network_version(__version__),
                      "torch": torch.__version__, "python": platform.python_version()},
            env={k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                                            "SLURM_JOB_ID") if k in os.environ})
        identity = record.identity(values)
        torch.manual_seed(cfg.seed)
        model = ResNet(spec).to(device)  # the one build
        if values["macs"] is None:  # a part that cannot run on the meta device
            from ..models.counting import complexity

            values["macs"] = complexity(model, input_size=data.input_size,
                                        with_fvcore=False)["macs"]
        progress = Progress(cfg.progress, protocol.iterations, rundir.run_id,
                            enabled=dist.is_main)
        options = TrainOptions(amp=cfg.amp == "bf16", channels_last=cfg.channels_last,
                               compile=cfg.compile, compile_backend=cfg.compile_backend,
                               compile_mode=cfg.compile_mode,
                               checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                               responses=cfg.responses, train_eval=cfg.train_eval,
                               train_eval_size=cfg.train_eval_size)
        files = RunFiles(rundir, identity, cfg.keep_checkpoints) if dist.is_main else None
        # W&B starts once the run is known good; until then the trainer logs nowhere
        trainer = Trainer(model, protocol, data, dist, options,
                          Sinks(NullTracker("not started"), progress, files))
        if resuming:
            rundir.clean_tmp()
            def accept(state: dict) -> None:  # another run's settings: refused
                diffs = record.identity_diff(state["identity"], identity)
                refused = [d for kind, d in diffs if kind != NUMERICS
                           or cfg.resume_numerics == "same"]
                if refused:
                    hint = (" (or resume_numerics=any to continue under other numerics, not "
                            "bitwise)" if all(k == NUMERICS for k, _ in diffs) else "")
                    raise InputError(f"resume refused: {rundir.path} was trained with other "
                                     f"settings ({'; '.join(refused[:3])}); bitwise resume "
                                     f"needs the same ones{hint}")
                notes["resumed_with"] = [d for _, d in diffs]

            # Onto the CPU, whatever the device: RNG states restore only from CPU tensors
            # (torch.set_rng_state refuses a CUDA one); load_state_dict moves the rest.
            state = rundir.load_checkpoint(map_location="cpu", like=checkpoint_like(trainer),
                                           accept=accept)
            trainer.load_state_dict(state)
            if dist.is_main:  # a failed run (a full disk) resumes: not failed now
                rundir.summary_path.unlink(missing_ok=True)
        if dist.is_main and not resuming:
            rundir.write_config(record.nest(values))
            rundir.write_model(model.state_dict(), initial=True)
    except BaseException:
        rundir.release()
        if created and dist.is_main:  # bad input: leave nothing behind
            shutil.rmtree(rundir.path, ignore_errors=True)
            for folder in made:  # nearest first; one another run wrote into stays
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
    dist.barrier()
    trainer.sinks.tracker = (
        Tracker(cfg.wandb, cfg.wandb_project, cfg.wandb_group, cfg.wandb_entity, rundir.run_id,
                rundir.path, record.wandb_config(values), tags(values), resume=resuming)
        if dist.is_main else NullTracker("rank > 0"))
    for warning in notes["schedule_warnings"]:  # said even with progress=off
        if progress.mode != "off":
            progress.message(f"warning: {warning}")
        elif dist.is_main:
            print(f"resnet-ablate: warning: {warning}", file=sys.stderr, flush=True)
    return Prepared(trainer, rundir, values, dist, trainer.sinks.tracker, notes)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summary_values(prep: Prepared, status: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The whole record, flat: the start's values and what the run measured."""
    values = {**prep.values, **prep.notes, "status": status}
    values.update({k: _finite(v) for k, v in metrics.items()})
    sizes = values["data.split_sizes"] or {}
    values.update({
        "train_err_definition": TRAIN_ERR_DEFINITION,
        "trained_on": f"{sizes.get('train')} training images; validation: "
                      f"{values['data.val_source']}",
        "errors_in": "percent", "wandb": prep.tracker.info,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    for key in ("layer_responses", "schedule_warnings", "resumed_with"):
        values.setdefault(key, [])
    return values


def _finish(prep: Prepared, status: str, metrics: dict) -> tuple[str, dict]:
    """The final checkpoint and weights; a failure to write them (a full disk) turns the
    run into a failed one that resume=true continues from its last checkpoint."""
    trainer, rundir = prep.trainer, prep.rundir
    if status != "finished":
        return status, metrics
    try:
        trainer.sinks.files.checkpoint(trainer.state_dict())
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
    trainer, values, dist, tracker = prep.trainer, prep.values, prep.dist, prep.tracker
    try:
        with DeferredSignals() as stop:
            if dist.is_main:
                print(f"run {prep.rundir.run_id}: {values['model']} on {values['dataset']} "
                      f"({values['data.split_sizes']}), protocol {values['protocol']}, "
                      f"{values['params']:,} params, {values['macs']:,} MACs/image, "
                      f"{values['run.device']} x{dist.world_size}, W&B {tracker.info['mode']}",
                      flush=True)
            outcome = trainer.run(stop)
            if not dist.is_main:
                return outcome.exit_code
            if outcome.status == "interrupted":
                tracker.finish(exit_code=1, preempted=True)
                print(f"resnet-ablate: stopped at iteration {trainer.iteration}; continue with "
                      f"resume=true run_id={prep.rundir.run_id}", file=sys.stderr, flush=True)
                return outcome.exit_code
            stop.saving = True  # from here a signal waits for the run's files
            status, metrics = _finish(prep, outcome.status, outcome.metrics)
            summary = summary_values(prep, status, metrics)
            try:
                prep.rundir.write_history(trainer.history)
                prep.rundir.write_summary(record.nest(summary))
            except OSError as exc:
                print(f"resnet-ablate: error: could not write {prep.rundir.summary_path} "
                      f"({exc.strerror or exc}); the run's checkpoints remain: resume=true "
                      f"run_id={prep.rundir.run_id}", file=sys.stderr, flush=True)
                tracker.finish(exit_code=1)
                return 1
            tracker.log_responses(summary.get("layer_responses") or [])
            tracker.update_summary({k: v for k, v in record.results(summary).items()
                                    if isinstance(v, (int, float, str, bool))})
            if status == "finished" and request.config.probes:  # the run's files are written
                from ..analysis.probe_figures import record_png
                from ..probes.probing import after_training

                after_training(prep.rundir.path, request.config.probes, tracker,
                               should_stop=lambda: stop.signal is not None, figure=record_png)
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
