"""Probe a finished run: its network rebuilt from its record, its final (or initial)
weights, its own data; the result written beside the run, once per probe, settings and
seed, in the files resnet_ablate.run.probefiles defines:

    runs/<run_id>/probes/<probe>-<digest>.json   (+ .npz of its arrays)

The same settings again find the file and do nothing; other settings (or another seed)
make a second record.

A run is probed only when it is finished, its plugins are loaded now (a record never makes
code run), its variant rebuilds, its weights load (torch.load(weights_only=True)) into that
variant, and its data has the fingerprint it was trained on; else one line (InputError)
before anything is computed or written. Every run named is checked, and the data of every
record to write opened, before any is probed.

Data: the run's data set opened through resnet_ablate.data with the run's protocol fields
(the same train/validation/test splits, the training images' mean): the training split
without augmentation (eval_batches("train")) for probes of the training loss, the test
split for the lesion study. Three settings belong to the runner, not the probe (all in the
digest): batch_size (default: the run's protocol batch size, the batch statistics training
saw), weights (final, or initial: model_init.pt, e.g. the gradient paths at
initialisation) and num_images (a seeded class-stratified sample of the split, the same
images for every run of the data set: resnet_ablate.probes.sample; default: the split in
order, whose first batches are no sample of it when its folder is sorted by class). The
record says which images were drawn and the class counts of those the probe read, and a
warning (logged and recorded) says when those counts are uneven.

Two processes never compute one record at once: the second finds its lock held and skips
it, saying so (resnet_ablate.run.probefiles.lock).
"""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..errors import InputError, MissingInput, unknown
from ..run import probefiles, record
from ..run.protocol import MAX_BATCH, Protocol
from ..run.rundir import RunDir
from ..run.words import field_types, parse_value, split_words
from ..variants import plugins
from ..variants.resolve import from_record
from ..variants.spec import VariantSpec
from . import sample
from .common import check_choice, check_int, parse_settings, settings_dict
from .registry import Probe, get_probe

RUNNER_KEYS = ("batch_size", "weights", "num_images")  # the runner's: in the digest
WEIGHTS = ("final", "initial")


# ---------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class ProbeRequest:
    """A probe and its settings, validated before any run is opened."""
    probe: Probe
    settings: Any  # an instance of probe.settings
    batch_size: int | None = None  # None: the run's protocol batch size
    seed: int | None = None  # None: the run's seed
    weights: str = "final"  # or "initial": the run's model_init.pt
    num_images: int | None = None  # a stratified sample of the split; None: all, in order

    @property
    def needs_initial(self) -> bool:
        return self.probe.needs_initial or self.weights == "initial"

    @property
    def name(self) -> str:
        return self.probe.name

    def settings_dict(self) -> dict[str, Any]:
        return settings_dict(self.settings)


def parse_request(name: str, settings: Mapping[str, Any] | None = None,
                  words: Sequence[str] = (), seed: int | None = None) -> ProbeRequest:
    """`settings` (values, e.g. from YAML) and `words` (key=value text, from --set) for the
    probe `name`; unknown names, settings and values: one-line InputError."""
    probe = get_probe(name)
    types = field_types(probe.settings)
    values = dict(settings or {})
    for key, text in split_words(list(words)):
        if key in RUNNER_KEYS:
            values[key] = parse_value(key, text, str if key == "weights" else int)
        elif key in types:
            values[key] = parse_value(f"{name} {key}", text, types[key])
        else:
            values[key] = text
    known = [*types, *RUNNER_KEYS]
    for key in values:
        if key not in known:
            raise unknown(f"{name} setting", key, known)
    batch_size = values.pop("batch_size", None)
    check_int(name, "batch_size", batch_size, 1, MAX_BATCH, allow_none=True)
    num_images = values.pop("num_images", None)
    check_int(name, "num_images", num_images, 1, sample.MAX_IMAGES, allow_none=True)
    weights = values.pop("weights", "final")
    check_choice(name, "weights", weights, WEIGHTS)
    if weights == "initial" and probe.needs_initial:
        raise InputError(f"{name} runs from the initial to the final weights; weights=initial "
                         "is not one of its settings")
    if seed is not None:
        check_int(name, "seed", seed, 0, 2 ** 63 - 1)
    return ProbeRequest(probe, parse_settings(probe.settings, name, values), batch_size, seed,
                        weights, num_images)


def parse_names(text: str | Sequence[str]) -> list[str]:
    """`lesion,landscape` -> the registered names, each once, in order; unknown: one line."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if item and get_probe(item).name not in out:
            out.append(get_probe(item).name)
    return out


# ---------------------------------------------------------------------------- runs
@dataclass
class Target:
    """A finished run, checked and ready to probe."""
    rundir: RunDir
    values: dict[str, Any]  # its record, flat
    spec: VariantSpec
    protocol: Protocol
    weights: dict[str, torch.Tensor]
    initial: dict[str, torch.Tensor] | None = None

    @property
    def run_id(self) -> str:
        return self.rundir.run_id

    @property
    def where(self) -> str:
        return str(self.rundir.path)


def _load_weights(path: Path, what: str, run: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise MissingInput(f"run {run} has no {path.name} ({what}); nothing to probe")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  truncated zip, bad pickle, not a file of ours
        raise InputError(f"run {run}: {path.name} is truncated or corrupt "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:100]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise InputError(f"run {run}: {path.name} is not a state_dict of tensors")
    return state


def _protocol(values: dict[str, Any], run: str) -> Protocol:
    prefix = "protocol_fields."
    fields = {c[len(prefix):]: tuple(v) if isinstance(v, list) else v
              for c, v in values.items() if c.startswith(prefix)}
    try:
        return Protocol(name=values["protocol"], **fields)
    except (InputError, TypeError) as exc:
        raise InputError(f"run {run}: its protocol cannot be rebuilt from its record "
                         f"({' '.join(str(exc).split())})") from None


def open_run(path: str | os.PathLike, needs_initial: str = "") -> Target:
    """A run directory, checked: finished, plugins loaded, variant rebuilt, weights loaded
    into it, and the initial ones too when `needs_initial` names a probe that needs them."""
    path = Path(path)
    if not path.is_dir():
        raise MissingInput(f"no run directory {str(path)!r}")
    rundir = RunDir(path.parent, path.name)
    run = rundir.run_id
    summary = rundir.read_summary()
    if summary is None:
        raise InputError(f"run {run} is not finished (it is {rundir.state()}); only a "
                         "finished run can be probed")
    if summary["status"] != "finished":
        raise InputError(f"run {run} ended {summary['status']}; only a finished run can be "
                         "probed")
    plugins.require(summary.get("plugins") or [], run, "--plugins ", "probe it")
    values = record.flat(summary)
    spec = from_record(values, f"run {run}")
    protocol = _protocol(values, run)
    weights = _load_weights(rundir.model_path, "its final weights", run)
    initial = _load_weights(rundir.init_model_path, f"its initial weights, which "
                            f"{needs_initial} needs", run) if needs_initial else None
    from ..models import ResNet

    model = ResNet(spec)
    for which, state in (("model.pt", weights), ("model_init.pt", initial)):
        if state is None:
            continue
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise InputError(f"run {run}: {which} does not fit its variant {spec.name} "
                             f"({' '.join(str(exc).split())[:120]})") from None
    return Target(rundir, values, spec, protocol, weights, initial)


def resolve_device(name: str) -> torch.device:
    if name not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device=cuda but no CUDA device is available; use cpu or auto")
    return torch.device("cuda" if name == "cuda" or (
        name == "auto" and torch.cuda.is_available()) else "cpu")


# ---------------------------------------------------------------------------- data
@dataclass
class DataCache:
    """Each data set opened once for all the runs that share it (splits, mean, batch)."""
    device: torch.device
    data_dir: str | None = None  # where the runs' data is now, if not where they recorded
    opened: dict[str, Any] = field(default_factory=dict)

    def get(self, target: Target, batch_size: int) -> Any:
        from ..data import DataSettings, open_run_data

        v = target.values
        data_dir = self.data_dir or v["data.data_dir"]
        key = record.digest([v["dataset"], data_dir, v["data.mode"], target.protocol.fields(),
                             batch_size])
        if key not in self.opened:
            workers = min(int(v.get("settings.num_workers") or 0), os.cpu_count() or 1)
            try:
                self.opened[key] = open_run_data(
                    v["dataset"], data_dir, False, v["data.mode"], DataSettings(
                        protocol=target.protocol, device=self.device, seed=int(v["seed"]),
                        eval_batch_size=batch_size, num_workers=workers))
            except (InputError, FileNotFoundError) as exc:
                raise InputError(f"run {target.run_id}: its data ({v['dataset']} at "
                                 f"{data_dir}) cannot be opened: "
                                 f"{' '.join(str(exc).split())}") from None
        data = self.opened[key]
        if data.fingerprint != v["data.fingerprint"]:
            raise InputError(f"run {target.run_id}: the data at {data_dir} is not the data it "
                             f"was trained on (fingerprint {data.fingerprint}, recorded "
                             f"{v['data.fingerprint']}); give its data with --data-dir")
        return data


# ---------------------------------------------------------------------------- records
def write_record(request: ProbeRequest, target: Target, seed: int, batch_size: int,
                 data: Any, result: dict[str, Any], seconds: float, device: torch.device,
                 read: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """The probe's result as a record (resnet_ablate.run.probefiles), atomically; `read`:
    the images it read (sample, images, class_counts, warning)."""
    from .. import __version__

    key, digest = _digests(request, seed, batch_size)
    result = dict(result)
    arrays = result.pop("arrays", None) or {}
    for name in ("probe", "paper", "seed", "settings"):  # kept at the top of the record
        result.pop(name, None)
    split = request.probe.split
    rec = {"format": probefiles.FORMAT, "probe": request.name, "run_id": target.run_id,
           "digest": digest, "settings_digest": key, "settings": request.settings_dict(),
           "seed": seed, "weights": request.weights,
           "data": {"split": split, "batch_size": batch_size,
                    "split_images": int(data.sizes[split]),
                    "view": "center" if data.mode == "loader" else "single",
                    "fingerprint": data.fingerprint, "num_images": request.num_images,
                    **(read or {})},
           "condition": target.values.get("condition"), "model": target.spec.name,
           "paper": request.probe.paper, "claim": request.probe.claim,
           "result": probefiles.jsonable(result), "seconds": round(seconds, 3),
           "device": device.type, "threads": torch.get_num_threads(),
           "versions": {"resnet_ablate": __version__, "torch": torch.__version__,
                        "python": platform.python_version()},
           "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = probefiles.write(target.rundir.path, rec, arrays)
    return path, probefiles.read(path) or rec


def _digests(request: ProbeRequest, seed: int, batch_size: int) -> tuple[str, str]:
    key = probefiles.settings_digest(request.name, request.settings_dict(), request.weights,
                                     request.probe.split, batch_size, request.num_images)
    return key, probefiles.record_digest(key, seed)


# ---------------------------------------------------------------------------- probing
@dataclass
class Outcome:
    run_id: str
    probe: str
    path: Path
    written: bool  # False: the same record was already there (or is being written)
    seconds: float = 0.0
    record: dict[str, Any] | None = None
    busy: bool = False  # another process holds the record's lock: skipped


def _planned(request: ProbeRequest, target: Target) -> tuple[int, int, Path]:
    """(seed, batch size, record path) of a request on a run."""
    seed = request.seed if request.seed is not None else int(target.values["seed"])
    batch_size = request.batch_size or target.protocol.batch_size
    json_path, _ = probefiles.paths(target.rundir.path, request.name,
                                    _digests(request, seed, batch_size)[1])
    return seed, batch_size, json_path


def probe_target(request: ProbeRequest, target: Target, cache: DataCache,
                 log: Callable[[str], None] = print) -> Outcome:
    """One probe of one checked run; nothing is computed when its record is there, or
    while another process computes it (its lock held: busy)."""
    seed, batch_size, json_path = _planned(request, target)
    existing = _checked(json_path, log)
    if existing is not None:
        return Outcome(target.run_id, request.name, json_path, False, 0.0, existing)
    digest = _digests(request, seed, batch_size)[1]
    with probefiles.lock(target.rundir.path, request.name, digest) as mine:
        if not mine:
            return Outcome(target.run_id, request.name, json_path, False, busy=True)
        existing = _checked(json_path, lambda m: None)  # written by another process meanwhile
        if existing is not None:
            return Outcome(target.run_id, request.name, json_path, False, 0.0, existing)
        return _compute(request, target, cache, seed, batch_size, log)


def _checked(json_path: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The record there, if it is complete and passes the analysis's checks; one that
    does not (an older version's draws, a corrupt file) is probed again, and said so."""
    from .checks import check_record

    rec = probefiles.read(json_path)
    if rec is not None:
        try:
            check_record(rec)
        except InputError as exc:
            log(f"probing again: {json_path} fails its checks ({exc})")
            return None
    return rec


def _compute(request: ProbeRequest, target: Target, cache: DataCache, seed: int,
             batch_size: int, log: Callable[[str], None]) -> Outcome:
    data = cache.get(target, batch_size)
    from ..models import ResNet

    model = ResNet(target.spec)
    model.load_state_dict(target.initial if request.weights == "initial" else target.weights,
                          strict=True)
    model = model.to(cache.device).eval()
    if target.values.get("run.channels_last"):  # the memory format it trained in
        model = model.to(memory_format=torch.channels_last)
    kwargs = request.settings_dict()
    if request.probe.needs_initial:
        kwargs["initial"] = target.initial
    split = request.probe.split
    labels = sample.split_labels(data, split)
    drawn = None
    if request.num_images is not None:
        drawn = sample.stratified(labels, request.num_images, data.num_classes)
        batches = sample.subset_batches(data, split, drawn, batch_size)
    else:
        batches = data.eval_batches(split, sharded=False)
    counted = sample.Counted(batches, data.num_classes)
    torch.manual_seed(seed)  # for a plugin probe that draws from torch's global generator
    start = time.perf_counter()
    result = request.probe.run(model, counted, seed=seed, **kwargs)
    seconds = time.perf_counter() - start
    if not isinstance(result, dict):
        raise InputError(f"probe {request.name} returned a {type(result).__name__}, not a "
                         "dict of results")
    counts = counted.class_counts()
    warning = sample.uneven(counts, labels, f"probe {request.name} of run {target.run_id}")
    if warning:
        log(f"warning: {warning}")
    read = {"sample": None if drawn is None else {
                "rule": sample.RULE, "seed": sample.SAMPLE_SEED, "indices": drawn.tolist()},
            "images": sum(counts), "class_counts": counts, "warning": warning}
    path, rec = write_record(request, target, seed, batch_size, data, result, seconds,
                             cache.device, read)
    return Outcome(target.run_id, request.name, path, True, seconds, rec)


def expand_runs(paths: Iterable[str | os.PathLike], log: Callable[[str], None]) -> list[Path]:
    """Run directories as named; a folder of runs (no summary.json or config.json of its
    own) stands for its finished runs, the others named on one line each."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise MissingInput(f"no run directory {str(p)!r}")
        if (p / "summary.json").exists() or (p / "config.json").exists():
            out.append(p)
            continue
        found = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        for d in found:
            try:
                state = RunDir(d.parent, d.name).state()
            except InputError:
                continue
            if state == "finished":
                out.append(d)
            elif (d / "config.json").exists():
                log(f"skipped {d}: {state}")
        if not any(d in out for d in found):
            raise InputError(f"{p} holds no finished run")
    return list(dict.fromkeys(out))


def probe_runs(requests: Sequence[ProbeRequest], run_dirs: Sequence[str | os.PathLike], *,
               device: str = "auto", data_dir: str | None = None, wandb: str = "run",
               tracker: Any = None, should_stop: Callable[[], bool] = lambda: False,
               log: Callable[[str], None] = print, figure: Any = None) -> list[Outcome]:
    """Every request on every run: all runs checked first (nothing is computed or written
    if one is bad), then probed one run at a time; W&B gets each run's new records (in
    `tracker`, a live run's, else in a W&B run of its own: resnet_ablate.probes.wandb_log),
    with their figures where the caller hands `figure` (analysis.probe_figures.record_png)."""
    if not requests:
        return []
    needs = next((r.name for r in requests if r.needs_initial), "")
    targets = [open_run(path, needs) for path in run_dirs]
    cache = DataCache(resolve_device(device), data_dir)
    for target in targets:  # the data of every record to write opens before any is written
        for request in requests:
            _, batch_size, json_path = _planned(request, target)
            if _checked(json_path, lambda m: None) is None:
                data = cache.get(target, batch_size)
                images = int(data.sizes[request.probe.split])
                if request.num_images is not None and request.num_images > images:
                    raise InputError(f"{request.name}: num_images must be 1..{images} (the "
                                     f"{request.probe.split} split of run {target.run_id}); "
                                     f"got {request.num_images}")
    outcomes: list[Outcome] = []
    from .wandb_log import log_outcomes

    for target in targets:
        done = []
        for request in requests:
            if should_stop():
                log(f"stopped before probe {request.name} of run {target.run_id}")
                return outcomes
            outcome = probe_target(request, target, cache, log)
            log(f"probe {request.name} of run {target.run_id}: " + (
                f"{outcome.seconds:.1f} s -> {outcome.path}" if outcome.written else
                f"skipped: another process is probing it ({outcome.path})" if outcome.busy
                else f"already there, nothing to do ({outcome.path})"))
            done.append(outcome)
        outcomes += done
        log_outcomes(target, [o for o in done if o.written], wandb, tracker, log, figure)
    return outcomes


class _Stopped(BaseException):
    """SIGTERM or SIGINT while a finished run is probed."""


def after_training(run_dir: Path, names: str, tracker: Any, should_stop: Callable[[], bool],
                   log: Callable[[str], None] = print, figure: Any = None) -> None:
    """`train probes=...`: each probe at its defaults on the run just finished, logged in its
    live W&B run. A probe that fails is a warning, and SIGTERM/SIGINT stop the probing at
    once (a record is written whole or not at all): the run itself is complete."""
    import signal
    import threading

    def stop(signum, _frame):
        raise _Stopped(signal.Signals(signum).name)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)} if main \
        else {}
    try:
        for name in parse_names(names):
            if should_stop():
                break
            try:
                probe_runs([parse_request(name)], [run_dir], device="auto", tracker=tracker,
                           should_stop=should_stop, log=log, figure=figure)
            except Exception as exc:  # noqa: BLE001  the run is finished whatever a probe does
                print(f"resnet-ablate: warning: probe {name} failed ({type(exc).__name__}: "
                      f"{' '.join(str(exc).split())[:200]}); the run is complete; retry with "
                      f"`resnet-ablate probe {name} --runs {run_dir}`", file=sys.stderr,
                      flush=True)
    except _Stopped as why:
        print(f"resnet-ablate: {why} received: the probes stop here (the run is complete; "
              f"`resnet-ablate probe NAME --runs {run_dir}` adds them later)", file=sys.stderr,
              flush=True)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
