"""Files that ship inside the package: the paper's experiments, their W&B sweeps and the
paper report's definition, found with importlib.resources (so a wheel install runs
`resnet-ablate demo`, `reproduce EXP` and `sweep NAME` from any directory), and the one
YAML loader for them and for a user's own files. The top-level experiments/, sweeps/ and
analysis/ (the report definitions, reports/ here) of a checkout are links to these folders."""
from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from ..errors import InputError

MAX_YAML_BYTES = 1 << 20
# YAML aliases can make a small file stand for an exponentially large tree (a "billion
# laughs"); a sweep, experiment or report is a few hundred nodes.
MAX_YAML_NODES = 100_000


def folder(kind: str) -> Traversable:
    return resources.files(__name__) / kind


def names(kind: str) -> list[str]:
    return sorted(p.name[:-5] for p in folder(kind).iterdir() if p.name.endswith(".yaml"))


def find(kind: str, name_or_path: str | Path) -> tuple[str, str]:
    """(where, text) of a YAML file named by a path or by a bundled name; a one-line error
    listing the bundled names otherwise."""
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
    from ..io import read_bytes

    try:
        return read_bytes(path, MAX_YAML_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """Nodes of the tree a YAML node graph stands for, aliases expanded (counted, not
    built: each shared node once)."""
    import yaml

    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a cycle counts once
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes)
                       for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


def load_yaml(kind: str, name_or_path: str | Path) -> tuple[str, Any]:
    """(where, data) of a sweep, experiment or report file: yaml's safe loader only, a
    syntax error named with its line, an alias bomb refused before it is built, nesting
    too deep for the (recursive) loader refused in one line."""
    import yaml

    where, text = find(kind, name_or_path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise InputError(f"{where}: expands to over {MAX_YAML_NODES:,} values (YAML "
                             "aliases); refused")
        return where, yaml.safe_load(text)
    except RecursionError:  # "[[[[...": a few hundred levels; a real file has a few
        raise InputError(f"{where}: nested too deeply (lists or mappings hundreds of "
                         "levels deep); refused") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"{where}: not valid YAML"
                         + (f" at line {mark.line + 1}" if mark else "")) from None
