"""`resnet-ablate`: one entry point, one subcommand per job.

Bad input ends with one line on stderr that says what is allowed, and exit code 2; a run
another process is training is skipped with exit code 75; anything else is a bug and shows
its traceback (exit 1). RESNET_ABLATE_DEBUG=1 shows the traceback of bad input too.
Building the parser imports no torch, timm, wandb or pandas: each command imports what it
needs when it runs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from ..errors import InputError

EXIT_USAGE = 2


class UsageError(InputError):
    """Bad input from the command line: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def _commands():
    from . import analysis_cmds, model_cmds, probe_cmds, run_cmds

    return [*model_cmds.COMMANDS, *run_cmds.COMMANDS, *analysis_cmds.COMMANDS,
            *probe_cmds.COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="resnet-ablate",
                     description="Plain vs residual networks of He et al. (2015): build, "
                                 "count, train, sweep and report.",
                     epilog="Bad input: one line, exit 2 (RESNET_ABLATE_DEBUG=1 for the "
                            "traceback). `resnet-ablate COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"resnet-ablate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, help_text, add_args, run in _commands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def _one_line(message: str) -> str:
    from ..formatting import printable

    message = printable(" ".join(str(message).split()))
    return message if message.startswith("resnet-ablate") else f"resnet-ablate: error: {message}"


def main(argv: list[str] | None = None) -> int:
    from ..formatting import TextOnly
    from ..run.rundir import EXIT_LOCKED, RunLocked

    debug = bool(os.environ.get("RESNET_ABLATE_DEBUG"))
    stdout, stderr = sys.stdout, sys.stderr
    # what a record holds is printed as text, never acted on (our own progress bars and
    # displays write their escapes to the raw stream: formatting.raw)
    sys.stdout, sys.stderr = TextOnly(stdout), TextOnly(stderr)
    # A path's bytes that are not UTF-8 (\udcff) are printed as escapes, as Python's own
    # stderr does, on whatever streams the CLI is given
    streams = {s: s.errors for s in (stdout, stderr) if hasattr(s, "reconfigure")
               and getattr(s, "errors", None)}
    for s in streams:
        s.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        return int(args._run(args) or 0)
    except InputError as exc:
        if debug:
            raise
        print(_one_line(str(exc)), file=sys.stderr)
        return EXIT_USAGE
    except RunLocked as exc:
        print(f"resnet-ablate: skipped: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_LOCKED
    except BrokenPipeError:  # `resnet-ablate models | head`
        return 0
    finally:
        if isinstance(sys.stdout, TextOnly):
            sys.stdout = stdout
        if isinstance(sys.stderr, TextOnly):
            sys.stderr = stderr
        for s, errors in streams.items():
            with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`)
                s.reconfigure(errors=errors)


if __name__ == "__main__":
    sys.exit(main())
