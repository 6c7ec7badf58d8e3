"""Weights & Biases for a training run, never in the way of the training itself.

Online when logged in, offline otherwise (sync later with `wandb sync`), disabled on
request. If W&B fails to start or dies mid-run, the run goes on and says so once; the local
record (summary.json, history.csv) is complete whatever happens here.
"""
from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

MODES = ("auto", "online", "offline", "disabled")


def logged_in() -> bool:
    """An API key in the environment or in ~/.netrc for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"wandb must be one of {', '.join(MODES)}; got {mode!r}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if logged_in() else "offline"


class Tracker:
    """A W&B run that turns every failure into one warning and carries on without W&B."""

    def __init__(self, mode: str, project: str, group: str | None, entity: str | None,
                 run_id: str, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        self.mode = resolve_mode(mode)
        self.run = None
        self.failed: str | None = None
        if self.mode == "disabled":
            return
        try:
            import wandb

            kwargs: dict[str, Any] = {}
            # The W&B agent names its runs (WANDB_RUN_ID); elsewhere the run id is ours.
            if not os.environ.get("WANDB_RUN_ID"):
                kwargs["id"] = run_id
            self.run = wandb.init(
                project=project, entity=entity, group=group, job_type="train",
                name=run_id, config=config, dir=str(run_dir), mode=self.mode,
                resume="allow" if resume else None, reinit="finish_previous",
                settings=wandb.Settings(quiet=True), **kwargs)
            # The iteration is the x axis of every metric (a resumed run may repeat a few).
            self.run.define_metric("iteration")
            self.run.define_metric("*", step_metric="iteration")
        except BaseException as exc:  # noqa: BLE001  W&B must never stop training
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._fail("failed to start", exc)

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"mode": self.mode + (" (failed)" if self.failed else "")}
        if self.run is not None:
            info.update(id=self.run.id, project=self.run.project, dir=self.run.dir)
            if self.mode == "online":
                info["url"] = getattr(self.run, "url", None)
        if self.failed:
            info["failed"] = self.failed
        return info

    def _fail(self, what: str, exc: BaseException) -> None:
        self.failed = f"W&B {what}: {type(exc).__name__}: {exc}".strip()
        print(f"resnet-ablate: warning: {self.failed}; training goes on, the local record "
              "in summary.json/history.csv stays complete", file=sys.stderr, flush=True)
        run, self.run = self.run, None
        if run is not None:
            try:
                import wandb

                run.finish(exit_code=1, quiet=True)
            except BaseException:  # noqa: BLE001
                pass
            try:
                wandb.teardown()  # releases W&B's exit hook, which would print a traceback
            except BaseException:  # noqa: BLE001
                pass

    def log(self, metrics: dict[str, Any], iteration: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log({"iteration": iteration, **metrics})
        except Exception as exc:  # noqa: BLE001
            self._fail("stopped during the run", exc)

    def update_summary(self, values: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(values)
        except Exception as exc:  # noqa: BLE001
            self._fail("stopped during the run", exc)

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        if self.run is None:
            return
        try:
            if preempted:
                self.run.mark_preempting()
            self.run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001
            self._fail("failed to finish", exc)
        self.run = None


class NullTracker:
    """No W&B at all: ranks other than 0, benchmarks."""

    failed = None

    def __init__(self, mode: str = "disabled") -> None:
        self.info: dict[str, Any] = {"mode": mode}

    def log(self, metrics: dict[str, Any], iteration: int) -> None:
        pass

    def update_summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        pass
