"""`resnet-ablate`: one entry point, one subcommand per job.

Bad input ends with one line on stderr that says what is allowed, and exit code 2.
"""
from __future__ import annotations

import argparse
import os
import sys

EXIT_USAGE = 2


class UsageError(ValueError):
    """Bad input from the command line: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message}")


def _commands():
    from . import analysis_cmds, model_cmds, run_cmds

    return [*model_cmds.COMMANDS, *run_cmds.COMMANDS, *analysis_cmds.COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="resnet-ablate",
                     description="Plain vs residual networks of He et al. (2015): build, "
                                 "count, train, sweep and report.")
    parser.add_argument("--version", action="version", version=f"resnet-ablate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, help_text, add_args, run in _commands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args._run(args) or 0)
    except (UsageError, ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        if os.environ.get("RESNET_ABLATE_DEBUG"):
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        message = " ".join(message.split())  # always one line
        if not message.startswith("resnet-ablate"):
            message = f"resnet-ablate: error: {message}"
        print(message, file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `resnet-ablate models | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
