"""The probe registry: names -> probes, through the project's one `Registry` class, so a
user's probe (a plugin) runs through the same CLI, run record, W&B and report as the
built-ins, which are registered here too (`resnet_ablate.probes`).

    import resnet_ablate as ra

    @dataclass(frozen=True)
    class WidthSettings:
        eps: float = 1e-3

    @ra.register_probe("my_probe", settings=WidthSettings, split="train",
                       paper="Me (2026)", claim="What it shows, in one sentence.")
    def my_probe(model, batches, *, seed, **settings) -> dict:
        return {"probe": "my_probe", "value": 1.0, "arrays": {"curve": np.zeros(3)}}

A probe is `run(model, batches, *, seed, **settings) -> dict`: `batches` are (x, y) of the
named split of the run's data (normalised as in training, no augmentation), the result is
JSON-able except under "arrays" (numpy arrays, stored beside it as .npz). `settings` is a
frozen dataclass whose fields are the probe's settings (their defaults are recorded, so two
spellings of one setting are one record); its __post_init__ refuses bad values with an
InputError. A probe that needs the run's initial weights says `needs_initial=True` and is
called with `initial=` (a state_dict) as well. `table` turns a result into W&B/report rows
(columns, rows); by default, one row per scalar field.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import InputError
from ..registry import Registry

SPLITS = ("train", "test")


@dataclass(frozen=True)
class NoSettings:
    """The settings of a probe that takes none."""


@dataclass(frozen=True)
class Probe:
    name: str
    run: Callable[..., dict[str, Any]]
    settings: type  # a frozen dataclass of the probe's settings
    split: str  # the run's split it reads: train (no augmentation) or test
    paper: str
    claim: str  # the paper's finding in one sentence (our summary, not a quotation)
    needs_initial: bool = False  # called with initial= (the run's model_init.pt)
    table: Callable[[dict[str, Any]], tuple[list[str], list[list[Any]]]] | None = None
    module: str = ""

    @property
    def defaults(self) -> dict[str, Any]:
        from .common import settings_dict

        return settings_dict(self.settings())

    def rows(self, result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        """(columns, rows) of a result for a table (W&B, the report)."""
        if self.table is not None:
            return self.table(result)
        return ["field", "value"], [[k, v] for k, v in result.items()
                                    if isinstance(v, (int, float, str, bool)) or v is None]


REGISTRY: Registry[Probe] = Registry(
    "probe", loader=lambda: importlib.import_module("resnet_ablate.probes"),
    hint="add your own with ra.register_probe")


def register_probe(name: str, *, settings: type | None = None, split: str = "train",
                   paper: str = "", claim: str = "", needs_initial: bool = False,
                   table: Callable | None = None) -> Callable[[Callable], Callable]:
    """Register `run(model, batches, *, seed, **settings) -> dict` as probe `name`."""
    if split not in SPLITS:
        raise InputError(f"probe {name!r}: split must be one of {', '.join(SPLITS)}; got "
                         f"{split!r}")
    settings = NoSettings if settings is None else settings
    if not (dataclasses.is_dataclass(settings) and isinstance(settings, type)):
        raise InputError(f"probe {name!r}: settings must be a dataclass class (its fields "
                         f"are the probe's settings); got {settings!r}")
    try:
        settings()
    except TypeError as exc:
        raise InputError(f"probe {name!r}: every setting needs a default ({exc})") from None

    def decorate(run: Callable) -> Callable:
        if not callable(run):
            raise InputError(f"probe {name!r}: register a function run(model, batches, *, "
                             "seed, **settings)")
        module = getattr(run, "__module__", "?")
        REGISTRY.add(name, Probe(name, run, settings, split, paper, claim, needs_initial,
                               table, module), where=module)
        return run
    return decorate


def get_probe(name: str) -> Probe:
    return REGISTRY.get(name)


def probe_names() -> list[str]:
    return REGISTRY.names()
