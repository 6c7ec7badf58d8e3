"""`resnet-ablate train key=value ...`: validate everything, then create the run, then train.

Bad input (unknown key, model, data set or protocol; a value of the wrong type; missing
data; a resume with nothing to resume) raises before the run directory exists, so it
leaves nothing behind. Once training starts, a failure is recorded as status `failed`.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..counting import complexity
from ..config import RunConfig, TrainRequest, parse_train_words
from ..registry import create_model, get_spec
from ..spec import VariantSpec
from ..tracking import NullTracker, Tracker
from .checkpoint import list_checkpoints, load_latest
from .distributed import Dist, from_env
from .loop import Trainer
from .progress import Progress
from .record import RunRecord


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is available; use device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def build_data(cfg: RunConfig, protocol, device: torch.device, dist: Dist):
    from ..data.sets import SMALL_MAX_SIDE, load_small, probe_imagefolder

    mode = cfg.data_mode
    if mode == "auto":
        mode = "tensor"
        if cfg.dataset == "imagefolder" and probe_imagefolder(cfg.data_dir) > SMALL_MAX_SIDE:
            mode = "loader"
    if mode == "loader":
        if cfg.dataset != "imagefolder":
            raise ValueError(f"data_mode=loader is for imagefolder data; {cfg.dataset} is "
                             "held as a tensor (data_mode=tensor or auto)")
        from ..data.loader import LoaderData

        return LoaderData(cfg, protocol, device, dist)
    from .data import TensorData

    data = load_small(cfg.dataset, cfg.data_dir, protocol.val_size, protocol.split_seed,
                      download=cfg.download)
    return TensorData(data, protocol, device, cfg.seed, dist, cfg.eval_batch_size)


def default_run_id(cfg: RunConfig) -> str:
    return f"{cfg.model}-{cfg.dataset}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_identity(spec: VariantSpec, request: TrainRequest) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint: the model, data and protocol."""
    return {"model": spec.factors(), "dataset": request.config.dataset,
            "protocol": request.protocol.fields(), "seed": request.config.seed}


def _identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for key in ("model", "protocol"):
        for field in sorted(set(old[key]) | set(new[key])):
            a, b = old[key].get(field), new[key].get(field)
            if a != b:
                diffs.append(f"{key}.{field}: checkpoint {a!r}, now {b!r}")
    for key in ("dataset", "seed"):
        if old[key] != new[key]:
            diffs.append(f"{key}: checkpoint {old[key]!r}, now {new[key]!r}")
    return diffs


def _check_run_dir(run_dir: Path, resume: str) -> bool:
    """Whether to resume; refuses to overwrite a run or to resume one that is not there."""
    summary, checkpoints = run_dir / "summary.json", list_checkpoints(run_dir)
    if resume == "true":
        if not run_dir.is_dir():
            raise FileNotFoundError(f"resume=true but there is no run {run_dir} to resume")
        if summary.exists():
            raise ValueError(f"run {run_dir} has already ended (see its summary.json); "
                             "nothing to resume")
        if not checkpoints:
            raise FileNotFoundError(f"resume=true but {run_dir} holds no checkpoint")
        return True
    if summary.exists():
        raise ValueError(f"run {run_dir} already exists and has ended; choose another run_id")
    if checkpoints:
        if resume == "auto":
            return True
        raise ValueError(f"run {run_dir} already exists with checkpoints; pass resume=true to "
                         "continue it or choose another run_id")
    return False


def _channels_last(setting: str) -> bool:
    # auto: channels_last, measured faster for these convnets on CPU (benchmarks/) and GPU.
    return setting != "false"


def prepare(request: TrainRequest) -> tuple[Trainer, dict[str, Any], Dist]:
    cfg, protocol = request.config, request.protocol
    spec = get_spec(cfg.model)
    device = resolve_device(cfg.device)
    dist = from_env(device.type)
    run_id = dist.broadcast(cfg.run_id or default_run_id(cfg))
    run_dir = Path(cfg.runs_dir) / run_id
    resuming = _check_run_dir(run_dir, cfg.resume)
    if dist.enabled and protocol.batch_size % dist.world_size:
        raise ValueError(f"batch_size {protocol.batch_size} must divide evenly over "
                         f"{dist.world_size} processes")

    data = build_data(cfg, protocol, device, dist)
    overrides = {"num_classes": data.num_classes, "in_chans": data.in_chans,
                 **request.model_overrides}
    spec = spec.with_overrides(**overrides)
    identity = run_identity(spec, request)
    state = None
    if resuming:
        state = load_latest(run_dir, map_location=device)
        diffs = _identity_diff(state["identity"], identity)
        if diffs:
            raise ValueError(f"resume refused: {run_dir} was trained with other settings "
                             f"({'; '.join(diffs[:3])})")

    torch.manual_seed(cfg.seed)
    model = create_model(spec)
    counts = complexity(model, input_size=data.input_size, with_fvcore=False)
    channels_last = _channels_last(cfg.channels_last)
    model = model.to(device, memory_format=torch.channels_last if channels_last
                     else torch.contiguous_format)

    record = None
    config = _config_record(request, spec, run_id, counts, data, dist, device, channels_last)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        record = RunRecord(run_dir)
        if not resuming:
            record.write_config(config)
    dist.barrier()
    tracker = Tracker(cfg.wandb, cfg.wandb_project, cfg.wandb_group, cfg.wandb_entity,
                      run_id, run_dir, _wandb_config(config), resume=resuming) \
        if dist.is_main else NullTracker("rank > 0")
    progress = Progress(cfg.progress, protocol.iterations, run_id, enabled=dist.is_main)
    trainer = Trainer(model=model, protocol=protocol, data=data, device=device, dist=dist,
                      run_dir=run_dir, record=record, tracker=tracker, progress=progress,
                      amp=cfg.amp == "bf16", channels_last=channels_last, compile=cfg.compile,
                      checkpoint_every=cfg.checkpoint_every,
                      keep_checkpoints=cfg.keep_checkpoints, log_every=cfg.log_every,
                      identity=identity, responses=cfg.responses)
    if state is not None:
        trainer.load_state_dict(state)
    return trainer, config, dist


def _config_record(request: TrainRequest, spec: VariantSpec, run_id: str, counts: dict,
                   data, dist: Dist, device: torch.device, channels_last: bool) -> dict:
    cfg = request.config
    return {
        "run_id": run_id,
        "model": spec.name,  # the registry's spelling, whatever case the user typed
        **{k: v for k, v in spec.factors().items() if k != "name"},
        "model_overrides": dict(request.model_overrides),
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
        "amp": cfg.amp,
        "channels_last": channels_last,
        "compile": cfg.compile,
        "run_config": dataclasses.asdict(cfg),
        "versions": {"resnet_ablate": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }


def _wandb_config(config: dict) -> dict:
    """Flat keys whose values equal a sweep's parameters (model, seed, lr, ...)."""
    flat = {k: v for k, v in config.items()
            if k not in ("protocol_fields", "run_config", "model_overrides")}
    flat.update(config["protocol_fields"])
    flat["protocol"] = config["protocol"]
    return flat


def train(words: list[str]) -> int:
    request = parse_train_words(words)
    trainer, config, dist = prepare(request)  # bad input raises here, before any file exists
    try:
        cfg = request.config
        if dist.is_main:
            print(f"run {config['run_id']}: {config['model']} on {cfg.dataset} "
                  f"({config['split_sizes']}), protocol {request.protocol.name}, "
                  f"{config['params']:,} params, {config['macs']:,} MACs/image, "
                  f"{config['device']} x{dist.world_size}, W&B {trainer.tracker.info['mode']}",
                  flush=True)
        outcome = trainer.run()
        if dist.is_main and outcome.summary is not None:
            summary = _summary(config, outcome.summary, trainer)
            trainer.record.write_summary(summary)
            trainer.tracker.update_summary({
                k: v for k, v in summary.items()
                if k.startswith(("final_", "best_", "status", "diverged_at", "warmup_end",
                                 "layer_responses"))
                and not isinstance(v, str) or k == "status"})
            trainer.tracker.finish(exit_code=outcome.exit_code)
            _report(summary, trainer.run_dir)
        return outcome.exit_code
    finally:
        dist.close()


def _summary(config: dict, result: dict, trainer: Trainer) -> dict:
    keys = ("run_id", "model", "family", "depth", "shortcut", "block", "stem", "widths",
            "layers", "num_classes", "in_chans", "stride_in", "zero_init_residual",
            "dataset", "data_mode", "split_sizes", "val_source", "protocol", "seed",
            "params", "macs", "input_size", "world_size", "device", "amp", "channels_last",
            "compile", "overrides", "protocol_overrides")
    summary = {k: config[k] for k in keys}
    summary.update(result)
    n = config["split_sizes"].get("train")
    summary["final_train_err_measured"] = (
        f"eval mode, no augmentation, on the whole training split ({n} images)")
    summary["errors_in"] = "percent"
    summary["wandb"] = trainer.tracker.info
    summary["protocol_fields"] = config["protocol_fields"]
    summary["versions"] = config["versions"]
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return summary


def _report(summary: dict, run_dir: Path) -> None:
    if summary["status"] == "finished":
        parts = [f"{name} err {summary[f'final_{name}_err']:.2f}%"
                 for name in ("train", "val", "test") if summary.get(f"final_{name}_err")
                 is not None]
        print(f"finished {summary['iterations']} iterations: {', '.join(parts)} -> "
              f"{run_dir}/summary.json", flush=True)
    elif summary["status"] == "diverged":
        print(f"diverged at iteration {summary['diverged_at']} (non-finite loss) -> "
              f"{run_dir}/summary.json", flush=True)
    else:
        print(f"failed: {summary['error']} -> {run_dir}/summary.json", file=sys.stderr,
              flush=True)
