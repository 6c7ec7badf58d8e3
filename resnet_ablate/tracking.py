"""Weights & Biases for a training run, done the way W&B does it, never in the way of the
training itself.

Online when wandb's own login check finds credentials, offline otherwise (sync later with
`wandb sync`), disabled on request. An online run whose server does not answer within a
few seconds falls back to an offline run, kept for a later `wandb sync`. If W&B fails or
dies mid-run, the run goes on and says so once; the local record (summary.json,
history.parquet) is complete whatever happens here.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from .errors import InputError

# What W&B refuses in a project name (wandb.Settings.validate_project: these characters, over
# 128 characters): its run would start with no W&B record. The entity shares the path
# ENTITY/PROJECT, so the same characters are refused there; tags are 1-64 characters.
FORBIDDEN = '/\\#?%:'
MAX_NAME = 128
MAX_TAG = 64

MODES = ("auto", "online", "offline", "disabled")
# How long an online run may wait for the server before going offline (W&B's own default
# is 90 s); WANDB_INIT_TIMEOUT, wandb's own variable, overrides it.
INIT_TIMEOUT_S = 8.0


def check_names(project: str, entity: str, group: str) -> None:
    """What W&B would refuse, refused before training in one line (and control characters,
    which no name shows)."""
    for key, value in (("wandb_project", project), ("wandb_entity", entity),
                       ("wandb_group", group)):
        if len(value) > MAX_NAME:
            raise InputError(f"{key} must be at most {MAX_NAME} characters; got {len(value)}")
        bad = sorted({c for c in value if (c in FORBIDDEN and key != "wandb_group")
                      or not c.isprintable()})
        if bad:
            raise InputError(f"{key} {value!r}: W&B refuses {' '.join(map(repr, bad))} in "
                             f"names (refused: {' '.join(FORBIDDEN)} and control characters)")
    if not project:
        raise InputError("wandb_project must name a project")


def logged_in() -> bool:
    """wandb's own check for credentials (API key in the environment, settings or netrc;
    identity tokens), without prompting and without the network."""
    import wandb

    try:
        return bool(wandb.login(prompt=False, verify=False))
    except wandb.errors.Error:  # credentials it cannot use
        return False


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"wandb must be one of {', '.join(MODES)}; got {mode!r}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if logged_in() else "offline"


def tags(values: dict[str, Any]) -> list[str]:
    """Run tags to filter by in the W&B UI, from a run's flat record (a plugin's long block
    name cut to W&B's 64 characters: a longer tag would refuse the whole run)."""
    return [tag[:MAX_TAG] for tag in (
        f"family:{values['family']}", f"depth:{values['depth']}",
        f"shortcut:{values['shortcut'] or 'none'}", f"block:{values['block']}",
        f"protocol:{values['protocol']}")]


class Tracker:
    """A W&B run that turns every failure into one warning and carries on without W&B."""

    def __init__(self, mode: str, project: str, group: str | None, entity: str | None,
                 run_id: str, run_dir: Path, config: dict[str, Any], tags: list[str],
                 resume: bool, job_type: str = "train") -> None:
        self.mode = resolve_mode(mode)
        self.run = None
        self.failed: str | None = None
        self.fallback: str | None = None
        if self.mode == "disabled":
            return
        try:
            import wandb

            kwargs: dict[str, Any] = dict(
                project=project, entity=entity or None, group=group or None, job_type=job_type,
                name=run_id, config=config, tags=tags, dir=str(run_dir),
                resume="allow" if resume else None, reinit="finish_previous")
            # The W&B agent names its training runs (WANDB_RUN_ID); elsewhere, and for
            # other jobs (probes of a finished run), the run id is ours.
            if job_type != "train" or not os.environ.get("WANDB_RUN_ID"):
                kwargs["id"] = run_id
            timeout = float(os.environ.get("WANDB_INIT_TIMEOUT", INIT_TIMEOUT_S))
            try:
                self.run = wandb.init(mode=self.mode, settings=wandb.Settings(
                    quiet=True, init_timeout=timeout), **kwargs)
            except Exception as exc:  # noqa: BLE001
                if self.mode != "online":
                    raise
                self.fallback = f"{type(exc).__name__}: {str(exc)[:160]}"
                print(f"resnet-ablate: warning: W&B online did not start within {timeout:g} s "
                      f"({self.fallback}); logging offline instead, sync later with `wandb "
                      "sync`", file=sys.stderr, flush=True)
                self.mode = "offline"
                self.run = wandb.init(mode="offline", settings=wandb.Settings(quiet=True),
                                      **kwargs)
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
        if self.fallback:
            info["online_fallback"] = self.fallback
        if self.failed:
            info["failed"] = self.failed
        return info

    def _fail(self, what: str, exc: BaseException) -> None:
        self.failed = f"W&B {what}: {type(exc).__name__}: {exc}".strip()
        print(f"resnet-ablate: warning: {self.failed}; training goes on, the local record "
              "in summary.json/history.parquet stays complete", file=sys.stderr, flush=True)
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

    def log_responses(self, rows: list[dict[str, Any]]) -> None:
        """Fig. 7's layer responses as a W&B table (index, layer, std)."""
        if self.run is None or not rows:
            return
        try:
            import wandb

            table = wandb.Table(columns=["index", "layer", "std"],
                                data=[[r["index"], r["layer"], r["std"]] for r in rows])
            self.run.log({"layer_responses": table})
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

    def log_responses(self, rows: list[dict[str, Any]]) -> None:
        pass

    def update_summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        pass
