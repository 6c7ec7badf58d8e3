"""Files that ship inside the package: the paper's experiments, their W&B sweeps and the
paper report's definition, found with importlib.resources (so a wheel install runs
`resnet-ablate demo`, `reproduce EXP` and `sweep NAME` from any directory). The top-level
experiments/, sweeps/ and analysis/ of a checkout are links to these folders."""
from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..errors import InputError

KINDS = ("experiments", "sweeps", "analysis")


def folder(kind: str) -> Traversable:
    return resources.files(__name__) / kind


def names(kind: str) -> list[str]:
    return sorted(p.name[:-5] for p in folder(kind).iterdir() if p.name.endswith(".yaml"))


def find(kind: str, name_or_path: str | Path) -> tuple[str, str]:
    """(where, text) of a YAML file named by a path (as given, or relative to `base`) or by
    a bundled name; a one-line error listing the bundled names otherwise."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return str(path), _read(path)
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    bundled = folder(kind) / f"{stem}.yaml"
    if bundled.is_file():
        return f"{kind}/{stem}.yaml (bundled)", bundled.read_text()
    raise InputError(f"unknown {kind[:-1]} {str(name_or_path)!r}: not a file, and not one of "
                     f"the bundled ones ({', '.join(names(kind))})")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({type(exc).__name__})") from None
