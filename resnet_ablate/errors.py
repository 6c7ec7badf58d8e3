"""The errors a user causes and can act on. The CLI answers them in one line with exit
code 2; anything else is a bug: a traceback and exit code 1."""
from __future__ import annotations

import difflib
from typing import Iterable


class InputError(ValueError):
    """Bad input (a name, a value, a file's contents): what was wrong and what is allowed."""


class MissingInput(InputError, FileNotFoundError):
    """A file or folder the input names is not there."""


def closest(name: object, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names nearest to `name` (difflib's ratio of at least 0.6)."""
    return difflib.get_close_matches(str(name), list(known), n=n, cutoff=0.6)


def unknown(kind: str, name: object, known: Iterable[str], hint: str = "",
            listed: bool = True) -> InputError:
    """The one wording of "no such name": `unknown block 'basik'; closest: basic
    (allowed: ...; hint)`. `listed=False` leaves the full list out (hundreds of models)."""
    known = list(known)
    near = closest(name, known)
    text = f"unknown {kind} {name!r}" + (f"; closest: {', '.join(near)}" if near else "")
    tail = [f"allowed: {', '.join(known)}"] if listed else []
    tail += [hint] if hint else []
    return InputError(text + (f" ({'; '.join(tail)})" if tail else ""))
