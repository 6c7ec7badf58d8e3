"""The trainer: iterations of SGD under a protocol, read top to bottom.

    trainer = Trainer(model, protocol, data, dist, options, sinks)
    trainer.step()            # one iteration (what the throughput benchmark times)
    outcome = trainer.run()   # to the end, a divergence, a failure or a signal

Per-iteration losses stay on the device and are read back every `log_every` iterations (or
every iteration during the warm-up, which needs them), so a step never waits for the
device. The trainer returns its metrics; the run directory's owner writes them.
"""
from __future__ import annotations

import math
import signal
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import RunData
from ..errors import InputError
from ..protocol import Protocol
from ..rundir import METRICS, History, RunDir, strip_module_prefix
from .distributed import Dist
from .progress import Progress
from .responses import layer_response_std
from .schedule import build_scheduler, step_schedule

# The paper's training error (Fig. 1, Fig. 6 thin lines): the error of the training
# mini-batches, in train mode, on augmented images, as training goes; its final value is
# the mean over the last evaluation interval.
TRAIN_ERR_DEFINITION = ("the paper's training error: train-mode error on the augmented "
                        "mini-batches, mean over the last evaluation interval "
                        "(final_train_err_running); final_train_err_eval is the eval-mode "
                        "error on the whole training split")


@dataclass(frozen=True)
class TrainOptions:
    amp: bool = False  # bf16 autocast
    channels_last: bool = True  # the memory format of activations and weights
    compile: bool = False
    compile_backend: str = "inductor"
    checkpoint_every: int = 1000  # iterations; 0: only at the end and on a signal
    keep_checkpoints: int = 2
    log_every: int = 100
    responses: bool = True  # Fig. 7's layer responses at the end


@dataclass
class Sinks:
    """Where a run's numbers go: W&B, the progress display, the run directory (rank 0)."""
    tracker: Any
    progress: Progress
    rundir: RunDir | None = None


@dataclass
class Outcome:
    status: str  # finished | diverged | failed | interrupted
    exit_code: int
    metrics: dict[str, Any] = field(default_factory=dict)


class Trainer:
    def __init__(self, model: nn.Module, protocol: Protocol, data: RunData, dist: Dist,
                 options: TrainOptions, sinks: Sinks,
                 identity: dict[str, Any] | None = None) -> None:
        self.model = model  # the plain module: its state_dict has no wrapper prefixes
        self.protocol = protocol
        self.data = data
        self.dist = dist
        self.options = options
        self.sinks = sinks
        self.identity = identity or {}
        self.device = next(model.parameters()).device
        self.memory_format = (torch.channels_last if options.channels_last
                              else torch.contiguous_format)
        self.model.to(memory_format=self.memory_format)
        depth = getattr(getattr(model, "spec", None), "depth", 0)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=protocol.lr,
                                         momentum=protocol.momentum,
                                         weight_decay=protocol.weight_decay,
                                         nesterov=protocol.nesterov)
        self.scheduler = build_scheduler(self.optimizer, protocol, depth)
        self.schedule = step_schedule(self.scheduler)
        net: nn.Module = model
        if dist.enabled:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.net = (torch.compile(net, backend=options.compile_backend) if options.compile
                    else net)

        self.iteration = 0
        self.history = History()
        self.best = {"val_err": math.inf, "iteration": 0, "test_err": math.nan}
        self.pending: list[tuple[float, torch.Tensor, torch.Tensor]] = []
        self.train_time = 0.0
        self.images_seen = 0
        self.window_start = time.perf_counter()
        self.window_images = 0
        self.diverged_at: int | None = None
        self.stop_signal: int | None = None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "iteration": self.iteration,
            "model": strip_module_prefix(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "data": self.data.state_dict(),
            "rng": rng,
            "history": self.history.state_dict(),
            "best": dict(self.best),
            "counters": {"train_time": self.train_time, "images_seen": self.images_seen},
            "identity": self.identity,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(strip_module_prefix(state["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
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
        lr = self.optimizer.param_groups[0]["lr"]
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
        n = self.protocol.batch_size  # global batch: every rank's share
        self.images_seen += n
        self.window_images += n

    def flush(self) -> None:
        """Read back pending per-iteration losses: history, divergence check, logging."""
        if not self.pending:
            return
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
        metrics = {METRICS["train_loss"]: _mean(self.history.train_loss[window]),
                   METRICS["train_err"]: _mean(self.history.train_err[window]),
                   METRICS["lr"]: self.history.lr[-1],
                   "images_per_sec": self.window_images / elapsed if elapsed > 0 else math.nan,
                   "epoch": self.images_seen / max(1, self.data.sizes["train"])}
        if self.dist.is_main:
            self.sinks.tracker.log(metrics, self.iteration)
        self.sinks.progress.update(self.iteration, metrics)
        self.window_start, self.window_images = time.perf_counter(), 0

    def _pause_clock(self) -> None:
        """Evaluation and checkpoints do not count as training time."""
        self.flush()

    def _resume_clock(self) -> None:
        self.window_start, self.window_images = time.perf_counter(), 0

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str, sharded: bool = True, view: str = "single",
                 what: str | None = None) -> dict[str, float]:
        """Loss, top-1 and top-5 error (%) of a split in eval mode. Multi-crop batches
        (B, crops, C, H, W) score the mean of the crops' softmax, as 10-crop testing does."""
        self._sync_buffers()
        was_training = self.model.training
        self.model.eval()
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        batches = self.data.eval_batches(split, sharded=sharded, view=view)
        size = self.data.sizes[split] // (self.dist.world_size if sharded else 1)
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

    def _eval_point(self) -> None:
        self._pause_clock()
        row: dict[str, float] = {"iteration": self.iteration}
        for split in ("val", "test"):
            if self.data.has(split):
                r = self.evaluate(split, what=f"{split} split")
                row[f"{split}_loss"], row[f"{split}_err"] = r["loss"], r["err"]
        self.history.evals.append(row)
        # "best" and the plateau read the held-out split, never the reported test split.
        if "val_err" in row and row["val_err"] < self.best["val_err"]:
            self.best = {"val_err": row["val_err"], "iteration": self.iteration,
                         "test_err": row.get("test_err", math.nan)}
        if self.schedule is None and "val_err" in row:  # plateau schedule
            before = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step(row["val_err"])
            after = self.optimizer.param_groups[0]["lr"]
            if after != before:
                self.sinks.progress.message(f"validation error plateaued: lr {before:.3g} -> "
                                            f"{after:.3g} at iteration {self.iteration}")
        if self.dist.is_main:
            self.sinks.tracker.log({METRICS[k]: v for k, v in row.items() if k in METRICS},
                                   self.iteration)
            self.sinks.rundir.write_history(self.history)
        self.sinks.progress.note(self.iteration, row)
        self._resume_clock()

    def checkpoint(self) -> None:
        self._pause_clock()
        if self.dist.is_main:
            self.sinks.rundir.save_checkpoint(self.state_dict(), self.options.keep_checkpoints)
            self.sinks.rundir.write_history(self.history)
        self._resume_clock()

    # ---------------------------------------------------------------- the loop
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            print(f"\nresnet-ablate: {signal.Signals(signum).name} received; saving a checkpoint "
                  "at the end of this iteration", file=sys.stderr, flush=True)

    def run(self) -> Outcome:
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.model.train()
        self.sinks.progress.start(self.iteration)
        self._resume_clock()
        try:
            status = self._loop()
            metrics = self._final_metrics() if status == "finished" else {}
        except Exception as exc:  # noqa: BLE001  recorded as a failed run, not lost
            self.sinks.progress.close()
            if isinstance(exc, InputError):  # bad data met mid-run (a worker's image): one line
                error = [line for line in str(exc).splitlines() if line.strip()][-1]
                error = error.split("InputError: ", 1)[-1]  # a worker's, re-raised by torch
                print(f"resnet-ablate: error: {error}", file=sys.stderr, flush=True)
            else:  # a bug: the traceback is what helps
                traceback.print_exc()
                error = f"{type(exc).__name__}: {exc}"
            return Outcome("failed", 1, self._record(error=error))
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        self.sinks.progress.close()
        if status == "interrupted":
            self.checkpoint()
            return Outcome("interrupted", 128 + int(self.stop_signal or signal.SIGTERM))
        return Outcome(status, 0, self._record(**metrics))

    def _loop(self) -> str:
        p = self.protocol
        while self.iteration < p.iterations:
            self.step()
            it = self.iteration
            warming = self.schedule is not None and self.schedule.in_warmup()
            if warming or it % self.options.log_every == 0 or it == p.iterations:
                self.flush()
                if self.diverged_at is not None:
                    return "diverged"
            if warming and self.schedule.observe(it, self.history.train_err[-1] / 100.0,
                                                 p.warmup_until_train_err):
                self.sinks.progress.message(
                    f"warm-up ends at iteration {it} (lr {p.warmup_lr} -> {p.lr})"
                    + (f": the safety cap warmup_max_iterations={p.warmup_max_iterations} "
                       "was reached before the training error fell below "
                       f"{100 * p.warmup_until_train_err:.0f}%" if self.schedule.warmup_capped
                       else ""))
            if self.schedule is not None:
                self.scheduler.step()
            if it % p.eval_every == 0 or it == p.iterations:
                self._eval_point()
            if self.diverged_at is not None:
                return "diverged"
            if self.dist.any(self.stop_signal is not None, self.device):
                return "interrupted"
            every = self.options.checkpoint_every
            if every and it % every == 0 and it < p.iterations:
                self.checkpoint()
        return "finished"

    # ---------------------------------------------------------------- the end
    def running_train_err(self) -> float | None:
        """The paper's training error at the end: the mean mini-batch error (train mode,
        augmented) over the last evaluation interval."""
        window = [e for i, e in zip(self.history.iteration, self.history.train_err)
                  if i > self.iteration - self.protocol.eval_every]
        return _mean(window) if window else None

    def _final_metrics(self) -> dict[str, Any]:
        self._pause_clock()
        progress = self.sinks.progress
        progress.message("final evaluation: the training split in eval mode, then the test "
                         "split" + (f" ({self.data.final_test_view})" if
                                    self.data.final_test_view != "single" else ""))
        train = self.evaluate("train", what="final: training split, eval mode")
        last = self.history.evals[-1] if self.history.evals else {}
        # The test split once more for its top-5 error (10-crop under the ImageNet
        # protocol); the top-1 error equals the last evaluation's for a single view.
        test = self.evaluate("test", view=self.data.final_test_view,
                             what=f"final: test split ({self.data.final_test_view})")
        metrics = {"final_train_err_eval": train["err"], "final_train_loss_eval": train["loss"],
                   "final_val_err": last.get("val_err"), "final_val_loss": last.get("val_loss"),
                   "final_test_err": test["err"], "final_test_loss": test["loss"],
                   "final_test_top5_err": test["top5_err"],
                   "final_test_view": self.data.final_test_view}
        if self.options.responses and self.dist.is_main:
            split = "val" if self.data.has("val") else "test"
            metrics["layer_responses"] = layer_response_std(
                self.model, self.data.eval_batches(split, sharded=False),
                self.model.response_modules())
            metrics["layer_responses_split"] = split
        return metrics

    def _record(self, error: str | None = None, **final: Any) -> dict[str, Any]:
        """What the run measured, for its summary."""
        running = self.running_train_err() if self.diverged_at is None else None
        return {
            "iterations": self.iteration,
            "iterations_planned": self.protocol.iterations,
            "final_train_err": running,
            "final_train_err_running": running,
            **final,
            "train_err_definition": TRAIN_ERR_DEFINITION,
            "best_val_err": None if math.isinf(self.best["val_err"]) else self.best["val_err"],
            "best_val_iteration": self.best["iteration"] or None,
            "test_err_at_best_val": (None if math.isnan(self.best["test_err"])
                                     else self.best["test_err"]),
            "diverged_at": self.diverged_at,
            "warmup_end": None if self.schedule is None else self.schedule.warmup_end,
            "warmup_capped": bool(self.schedule is not None and self.schedule.warmup_capped),
            "images_per_sec": self.images_seen / self.train_time if self.train_time else None,
            "images_seen": self.images_seen,
            "replicas_in_sync": self._replicas_in_sync() if error is None else None,
            "train_time_s": self.train_time,
            "error": error,
        }

    def _sync_buffers(self) -> None:
        """BN running statistics follow each rank's own batches; take rank 0's, as DDP does
        at every training forward, so that all ranks evaluate the same network."""
        if self.dist.enabled:
            for buf in self.model.buffers():
                torch.distributed.broadcast(buf, src=0)

    def _replicas_in_sync(self) -> bool | None:
        """With several processes: whether every rank ends with the same weights (DDP's
        invariant), checked on a float64 digest of all parameters and buffers."""
        if not self.dist.enabled:
            return None
        digest = torch.stack([t.detach().double().sum() for t in self.model.state_dict().values()
                              if t.is_floating_point()]).sum().reshape(1)
        gathered = [torch.zeros_like(digest) for _ in range(self.dist.world_size)]
        torch.distributed.all_gather(gathered, digest)
        return all(torch.equal(g, gathered[0]) for g in gathered)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
