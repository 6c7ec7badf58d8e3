"""Register every variant with timm when timm is imported, without importing timm ourselves.

`import resnet_ablate` must stay cheap, yet `timm.create_model("ra_resnet56_a")` must work
after it (the public contract). A meta-path finder waits for `timm`; once timm's own module
has run, it imports the registration module the package names (resnet_ablate.models.
timm_models). If timm is already imported, registration happens at once.
"""
from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings

_registration = ""  # the module whose import registers every variant with timm


def _register() -> None:
    try:
        importlib.import_module(_registration)
    except Exception as exc:  # noqa: BLE001  never break `import timm` for its user
        warnings.warn(f"resnet-ablate could not register its models with timm: "
                      f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)


class _Loader(importlib.abc.Loader):
    """timm's own loader, plus registration after its module has run."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _register()

    def __getattr__(self, name: str):  # resource readers and the like
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # once; the search below must not find us again
        for finder in sys.meta_path:
            spec = getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def install(registration: str) -> None:
    """Import `registration` (a torch module: the package's __init__ names it) as soon as
    timm is imported, or now if it already is."""
    global _registration
    _registration = registration
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
