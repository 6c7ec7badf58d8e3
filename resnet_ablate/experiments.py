"""Paper experiments (experiments/*.yaml): which sweeps, which protocol, which figures and
tables. `resnet-ablate reproduce NAME` runs the sweeps, then writes the report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .analysis.figures import FIGURES
from .analysis.tables import TABLES

# experiments/ and sweeps/ sit beside the package in the source tree (editable installs).
SOURCE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SweepRef:
    file: Path
    only: dict[str, list[Any]] | None  # a subset of the sweep's configurations


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    paper: str
    protocol: str
    sweeps: tuple[SweepRef, ...]
    figures: tuple[str, ...]
    tables: tuple[str, ...]
    notes: tuple[str, ...]
    path: Path


def experiment_dirs() -> list[Path]:
    return [Path.cwd() / "experiments", SOURCE_ROOT / "experiments"]


def list_experiments() -> list[str]:
    names = set()
    for d in experiment_dirs():
        names |= {p.stem for p in d.glob("*.yaml")} if d.is_dir() else set()
    return sorted(names)


def _resolve(path: str, base: Path) -> Path:
    """A file named in an experiment: as given, else relative to the project root."""
    for candidate in (Path(path), base / path, SOURCE_ROOT / path):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path!r} not found (looked in ., {base} and {SOURCE_ROOT})")


def load_experiment(name_or_path: str) -> Experiment:
    path = Path(name_or_path)
    if not path.is_file():
        for d in experiment_dirs():
            if (d / f"{name_or_path}.yaml").is_file():
                path = d / f"{name_or_path}.yaml"
                break
        else:
            known = ", ".join(list_experiments()) or "none found"
            raise ValueError(f"unknown experiment {name_or_path!r}; known: {known}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or "sweeps" not in raw:
        raise ValueError(f"{path}: an experiment names its sweeps (sweeps: [{{file: ...}}])")
    root = path.resolve().parents[1]
    sweeps = []
    for s in raw["sweeps"]:
        s = {"file": s} if isinstance(s, str) else s
        sweeps.append(SweepRef(_resolve(s["file"], root), s.get("only")))
    figures = tuple(raw.get("figures", FIGURES))
    tables = tuple(raw.get("tables", TABLES))
    for kind, names, known in (("figure", figures, FIGURES), ("table", tables, TABLES)):
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"{path}: unknown {kind} {bad[0]!r}; allowed: {', '.join(known)}")
    return Experiment(name=raw.get("name", path.stem), title=raw.get("title", path.stem),
                      paper=raw.get("paper", ""), protocol=raw.get("protocol", ""),
                      sweeps=tuple(sweeps), figures=figures, tables=tables,
                      notes=tuple(raw.get("notes", [])), path=path)
