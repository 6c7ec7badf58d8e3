"""The trainer: iterations of SGD under a protocol, read top to bottom.

    trainer = Trainer(model, protocol, data, dist, options, sinks)
    trainer.step()                # one iteration (what the throughput benchmark times)
    outcome = trainer.run(stop)   # to the end, a divergence, a failure or a signal

Per-iteration losses stay on the device and are read back every `log_every` iterations (or
every iteration during an error-conditioned warm-up, which needs them), so a step never
waits for the device. The trainer measures; the run (resnet_ablate.train.session) assembles the
record and owns the files.
"""
from __future__ import annotations

import math
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol as Interface

import torch
import torch.nn.functional as F
from torch import nn

from ..data import RunData
from ..errors import InputError
from ..run.protocol import Protocol
from ..run.rundir import History, paper_train_err, strip_module_prefix
from .distributed import Dist
from .ghost import GhostBatch
from .progress import Progress
from .responses import layer_response_std
from .schedule import Schedule


@dataclass(frozen=True)
class TrainOptions:
    amp: bool = False  # bf16 autocast
    channels_last: bool = True  # the memory format of activations and weights
    compile: bool = False
    compile_backend: str = "inductor"
    compile_mode: str | None = "default"  # torch.compile's; reduce-overhead: CUDA graphs
    checkpoint_every: int = 1000  # iterations; 0: only at the end and on a signal
    log_every: int = 100
    responses: bool = True  # Fig. 7's layer responses at the end
    train_eval: str = "subset"  # the final eval-mode pass over the training split: full,
    # subset (train_eval_size images drawn with the protocol's split_seed) or off
    train_eval_size: int = 10_000


class Files(Interface):
    """Where checkpoints and the history go (the run directory, on rank 0)."""

    def checkpoint(self, state: dict[str, Any]) -> None: ...

    def history(self, history: History) -> None: ...


@dataclass
class Sinks:
    """Where a run's numbers go: W&B, the progress display, its files (rank 0 only)."""
    tracker: Any
    progress: Progress
    files: Files | None = None


@dataclass
class Outcome:
    status: str  # finished | diverged | failed | interrupted
    exit_code: int
    metrics: dict[str, Any] = field(default_factory=dict)


class Trainer:
    def __init__(self, model: nn.Module, protocol: Protocol, data: RunData, dist: Dist,
                 options: TrainOptions, sinks: Sinks) -> None:
        self.model = model  # the plain module: its state_dict has no wrapper prefixes
        self.protocol, self.data, self.dist = protocol, data, dist
        self.options, self.sinks = options, sinks
        self.device = next(model.parameters()).device
        self.memory_format = (torch.channels_last if options.channels_last
                              else torch.contiguous_format)
        self.model.to(memory_format=self.memory_format)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=protocol.lr,
                                         momentum=protocol.momentum,
                                         weight_decay=protocol.weight_decay,
                                         nesterov=protocol.nesterov)
        self.schedule = Schedule(self.optimizer, protocol, model.spec.depth)
        net: nn.Module = model
        # the paper's BN batch: groups of it within this process's batch (ghost BN)
        self.bn_images = protocol.bn_images(dist.world_size)
        if self.bn_images < protocol.batch_size // dist.world_size:
            net = GhostBatch(model, self.bn_images)
        if dist.enabled:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.net = (torch.compile(net, backend=options.compile_backend,
                                  mode=options.compile_mode) if options.compile else net)
        self.iteration = 0
        self.history = History()
        self.best = {"val_err": math.inf, "iteration": 0, "test_err": math.nan}
        self.pending: list[tuple[float, torch.Tensor, torch.Tensor]] = []
        self.train_time, self.images_seen = 0.0, 0
        self.window_start, self.window_images = time.perf_counter(), 0
        self.diverged_at: int | None = None
        # the last evaluation of the test split: (iteration, view, result), for the final one
        self.last_test: tuple[int, str, dict[str, float]] | None = None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "iteration": self.iteration,
            "model": strip_module_prefix(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "data": self.data.state_dict(),
            "rng": rng,
            "history": self.history.state_dict(),
            "best": dict(self.best),
            "counters": {"train_time": self.train_time, "images_seen": self.images_seen},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(strip_module_prefix(state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.data.load_state_dict(state["data"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.iteration = int(state["iteration"])
        self.history = History.from_state(state["history"])
        self.best = dict(state["best"])
        self.train_time = float(state["counters"]["train_time"])
        self.images_seen = int(state["counters"]["images_seen"])

    # ---------------------------------------------------------------- one iteration
    def _autocast(self):
        if not self.options.amp:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def step(self) -> None:
        """One iteration of SGD on the next mini-batch; its loss and error stay on the
        device until the next flush."""
        lr = self.schedule.lr
        x, y = self.data.next()
        x = x.contiguous(memory_format=self.memory_format)
        with self._autocast():
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        err = (logits.argmax(1) != y).float().mean()
        self.pending.append((lr, loss.detach(), err.detach()))
        self.images_seen += self.protocol.batch_size  # global batch: every rank's share
        self.window_images += self.protocol.batch_size

    def flush(self) -> None:
        """Read back pending per-iteration losses (history, divergence check, logging) and
        stop the training clock: what follows until the next step is not training time."""
        if self.pending:
            values = torch.stack([torch.stack([l, e]) for _, l, e in self.pending]).float()
            values = self.dist.all_reduce_mean(values).cpu().double()
            first = self.iteration - len(self.pending) + 1
            for k, (lr, _, _) in enumerate(self.pending):
                loss, err = values[k].tolist()
                self.history.append(first + k, lr, loss, 100.0 * err)
                if self.diverged_at is None and not math.isfinite(loss):
                    self.diverged_at = first + k
            self.pending.clear()
            elapsed = time.perf_counter() - self.window_start
            self.train_time += elapsed
            window = slice(-len(values), None)
            metrics = {"train_loss": _mean(self.history.train_loss[window]),
                       "train_err": _mean(self.history.train_err[window]),
                       "lr": self.history.lr[-1],
                       "images_per_sec": self.window_images / elapsed if elapsed > 0
                       else math.nan,
                       "epoch": self.images_seen / max(1, self.data.sizes["train"])}
            if self.dist.is_main:
                self.sinks.tracker.log(metrics, self.iteration)
            self.sinks.progress.update(self.iteration, metrics)
        self.window_start, self.window_images = time.perf_counter(), 0

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str, sharded: bool = True, view: str = "single",
                 what: str | None = None, indices: torch.Tensor | None = None
                 ) -> dict[str, float]:
        """Loss, top-1 and top-5 error (%) of a split (of `indices` of it, if given) in eval
        mode. Multi-crop batches (B, crops, C, H, W) score the mean of the crops' softmax, as
        10-crop testing does."""
        self.dist.broadcast_buffers(self.model)
        was_training = self.model.training
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        batches = self.data.eval_batches(split, sharded=sharded, view=view, indices=indices)
        size = (self.data.sizes[split] if indices is None else len(indices)) // (
            self.dist.world_size if sharded else 1)
        for x, y in self.sinks.progress.iterate(batches, what or split, size):
            crops = x.shape[1] if x.dim() == 5 else 0
            if crops:
                x = x.flatten(0, 1)
            x = x.contiguous(memory_format=self.memory_format)
            with self._autocast():
                logits = self.model(x).float()
            if crops:
                scores = logits.unflatten(0, (-1, crops)).softmax(-1).mean(1)
                loss = F.nll_loss(scores.clamp_min(1e-12).log(), y, reduction="sum")
            else:
                scores = logits
                loss = F.cross_entropy(logits, y, reduction="sum")
            top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
            totals += torch.stack([
                loss.double(), (scores.argmax(1) != y).sum().double(),
                (top5 != y[:, None]).all(1).sum().double(),
                torch.tensor(float(len(y)), device=self.device, dtype=torch.float64)])
        if sharded:
            self.dist.all_reduce_sum(totals)
        self.model.train(was_training)
        loss, wrong, wrong5, count = totals.tolist()
        return {"loss": loss / count, "err": 100.0 * wrong / count,
                "top5_err": 100.0 * wrong5 / count}

    def evaluation_point(self) -> None:
        """Validation and test error now: the history, "best" and the plateau schedule
        (which read the held-out split, never the reported test split)."""
        self.flush()
        row: dict[str, float] = {"iteration": self.iteration}
        for split in ("val", "test"):
            if self.data.has(split):
                r = self.evaluate(split, view=self.point_view, what=f"{split} split")
                row[f"{split}_loss"], row[f"{split}_err"] = r["loss"], r["err"]
                if split == "test":
                    self.last_test = (self.iteration, self.point_view, r)
        self.history.evals.append(row)
        if "val_err" in row and row["val_err"] < self.best["val_err"]:
            self.best = {"val_err": row["val_err"], "iteration": self.iteration,
                         "test_err": row.get("test_err", math.nan)}
        said = self.schedule.after_evaluation(self.iteration, row.get("val_err"))
        if said:
            self.sinks.progress.message(said)
        if self.dist.is_main:
            self.sinks.tracker.log({k: v for k, v in row.items() if k != "iteration"},
                                   self.iteration)
            self.sinks.files.history(self.history)
        self.sinks.progress.note(self.iteration, row)
        self.flush()

    @property
    def point_view(self) -> str:
        """The view of every evaluation during training: the single image (small images),
        the centre crop (large ones: Fig. 4's "center-crop error"), never 10 crops."""
        final = self.data.final_test_view
        return "single" if final == "10crop" else final

    def checkpoint(self) -> None:
        self.flush()
        if self.dist.is_main:
            self.sinks.files.checkpoint(self.state_dict())
            self.sinks.files.history(self.history)
        self.flush()

    # ---------------------------------------------------------------- the loop
    def run(self, stop: Any) -> Outcome:
        """Train to the end; `stop.signal` (set by a deferred SIGTERM/SIGINT) ends the loop
        at the end of an iteration, with a checkpoint."""
        self.model.train()
        self.sinks.progress.start(self.iteration)
        self.flush()
        try:
            status = self._loop(stop)
            metrics = self.final_evaluation() if status == "finished" else {}
        except Exception as exc:  # noqa: BLE001  recorded as a failed run, not lost
            self.sinks.progress.close()
            if isinstance(exc, InputError):  # bad data met mid-run (a worker's image): one line
                error = [line for line in str(exc).splitlines() if line.strip()][-1]
                error = error.split("InputError: ", 1)[-1]  # a worker's, re-raised by torch
                print(f"resnet-ablate: error: {error}", file=sys.stderr, flush=True)
            else:  # a bug: the traceback is what helps
                traceback.print_exc()
                error = f"{type(exc).__name__}: {exc}"
            return Outcome("failed", 1, self.measured(error=error))
        self.sinks.progress.close()
        if status == "interrupted":
            self.checkpoint()
            return Outcome("interrupted", stop.exit_code)
        return Outcome(status, 0, self.measured(**metrics))

    def _loop(self, stop: Any) -> str:
        p = self.protocol
        while self.iteration < p.iterations:
            self.step()
            it = self.iteration
            # an error-conditioned warm-up reads each mini-batch's error as it comes
            reading = self.schedule.in_warmup() and not p.warmup_iterations
            if reading or it % self.options.log_every == 0 or it == p.iterations:
                self.flush()
                if self.diverged_at is not None:
                    return "diverged"
            said = self.schedule.after_iteration(
                it, self.history.train_err[-1] / 100.0 if reading else None)
            if said:
                self.sinks.progress.message(said)
            if it % p.eval_every == 0 or it == p.iterations:
                self.evaluation_point()
            if self.diverged_at is not None:
                return "diverged"
            if self.dist.any(stop.signal is not None, self.device):
                return "interrupted"
            if self.options.checkpoint_every and it % self.options.checkpoint_every == 0 \
                    and it < p.iterations:
                self.checkpoint()
        return "finished"

    def final_evaluation(self) -> dict[str, Any]:
        """The training split in eval mode, the test split in the protocol's final view,
        Fig. 7's layer responses."""
        self.flush()
        view = self.data.final_test_view
        # The last evaluation point scored the test split at this iteration in this view
        # (top-5 included) unless the final view is another (10-crop): not twice.
        reuse = self.last_test if self.last_test is not None and self.last_test[:2] == (
            self.iteration, view) else None
        indices = self.train_eval_indices()
        steps = (["the training split in eval mode" + (
            f" ({len(indices):,} images of it)" if indices is not None else "")]
            if self.options.train_eval != "off" else []) + (
            [f"the test split ({view})"] if reuse is None else [])
        if steps:
            self.sinks.progress.message("final evaluation: " + ", then ".join(steps))
        train = (self.evaluate("train", indices=indices, what="final: training split, eval "
                               "mode") if self.options.train_eval != "off" else {})
        last = self.history.evals[-1] if self.history.evals else {}
        test = reuse[2] if reuse is not None else self.evaluate(
            "test", view=view, what=f"final: test split ({view})")
        metrics = {"final_train_err_eval": train.get("err"),
                   "final_train_loss_eval": train.get("loss"),
                   "final_train_eval_images": None if not train else (
                       len(indices) if indices is not None else self.data.sizes["train"]),
                   "final_val_err": last.get("val_err"), "final_val_loss": last.get("val_loss"),
                   "final_test_err": test["err"], "final_test_loss": test["loss"],
                   "final_test_top5_err": test["top5_err"],
                   "final_test_view": view}
        if self.options.responses and self.dist.is_main:
            split = "val" if self.data.has("val") else "test"
            metrics["layer_responses"] = layer_response_std(
                self.model, self.data.eval_batches(split, sharded=False),
                self.model.response_modules())
            metrics["layer_responses_split"] = split
        return metrics

    def train_eval_indices(self) -> torch.Tensor | None:
        """The training images of the final eval-mode pass: None for the whole split, else
        train_eval_size of them drawn with the protocol's split_seed (the same images in
        every run of a data set and protocol, so runs compare on one subset), in order."""
        n = self.data.sizes["train"]
        if self.options.train_eval != "subset" or self.options.train_eval_size >= n:
            return None
        generator = torch.Generator().manual_seed(self.protocol.split_seed)
        return torch.randperm(n, generator=generator)[:self.options.train_eval_size].sort().values

    def measured(self, error: str | None = None, **final: Any) -> dict[str, Any]:
        """What the run measured: the record's results (resnet_ablate.run.record)."""
        h = self.history
        running = (paper_train_err(h.iteration, h.train_err, self.iteration,
                                   self.protocol.eval_every)
                   if self.diverged_at is None else None)
        return {
            "iterations": self.iteration,
            "iterations_planned": self.protocol.iterations,
            "final_train_err": running,
            "final_train_err_running": running,
            **final,
            "best_val_err": None if math.isinf(self.best["val_err"]) else self.best["val_err"],
            "best_val_iteration": self.best["iteration"] or None,
            "test_err_at_best_val": (None if math.isnan(self.best["test_err"])
                                     else self.best["test_err"]),
            "diverged_at": self.diverged_at,
            "warmup_end": self.schedule.warmup_end,
            "warmup_capped": self.schedule.warmup_capped,
            "images_per_sec": self.images_seen / self.train_time if self.train_time else None,
            "images_seen": self.images_seen,
            "replicas_in_sync": self.dist.replicas_in_sync(self.model) if error is None
            else None,
            "train_time_s": self.train_time,
            "error": error,
        }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
