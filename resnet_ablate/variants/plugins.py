"""Plugins: modules that register blocks, shortcuts, stems and variants.

Loaded from the train key `plugins=mod1,mod2` (a module name, or a path to a .py file), the
environment variable RESNET_ABLATE_PLUGINS (the same, comma-separated), and the entry-point
group `resnet_ablate.plugins` of installed packages: only ever what the user names now. A
run records the plugins it loaded; a record never makes code run by itself (the analysis reads
data and needs no plugin; `resume` refuses a run whose plugins are not loaded now and says
how to name them). Sweeps pass `plugins=` on to every run.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from ..errors import InputError

ENV = "RESNET_ABLATE_PLUGINS"
GROUP = "resnet_ablate.plugins"

_seen: set[str] = set()  # plugins as given or as recorded
_recorded: list[str] = []  # module names and absolute .py paths, in load order
_autoloaded = False
_failed: list[str] = []  # installed plugins that failed to load, as the warning names them


def split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _import(spec: str) -> str:
    """Import one plugin; returns it as a run records it."""
    if spec.endswith(".py"):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"plugin file {spec!r} does not exist")
        same = sys.modules.get(path.stem)
        if same is not None and getattr(same, "__file__", None) and \
                Path(same.__file__).resolve() == path:
            return str(path)  # imported by name before
        # its plain name when free, so a later `import my_blocks` finds this same module
        module = path.stem if path.stem.isidentifier() and path.stem not in sys.modules \
            else f"resnet_ablate_plugin_{path.stem}"
        if module not in sys.modules:
            loader_spec = importlib.util.spec_from_file_location(module, path)
            mod = importlib.util.module_from_spec(loader_spec)
            sys.modules[module] = mod
            try:
                loader_spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[module]
                raise
        return str(path)
    if not all(part.isidentifier() for part in spec.split(".")):
        raise InputError(f"plugin {spec!r} is neither a module name (a.b.c) nor a .py file")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:  # a module beside the user, as `python -m` would find it
        sys.path.append(cwd)
    try:
        module = importlib.import_module(spec)
    finally:
        if added:
            sys.path.remove(cwd)
    where = getattr(module, "__file__", None)
    if where and Path(where).resolve().is_relative_to(Path(cwd).resolve()) and \
            Path(where).suffix == ".py" and "." not in spec:
        return str(Path(where).resolve())  # recorded by path: found again from anywhere
    return spec


def _remember(spec: str, recorded: str) -> None:
    _seen.update((spec, recorded))
    if recorded not in _recorded:
        _recorded.append(recorded)


def load(specs: list[str]) -> list[str]:
    """Import each plugin once; a plugin that fails is a one-line error naming it."""
    for spec in specs:
        if spec in _seen:
            continue
        try:
            recorded = _import(spec)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001  whatever it raised: named, one line
            detail = " ".join(str(exc).split())[:200]
            raise InputError(f"plugin {spec!r} could not be loaded: {type(exc).__name__}"
                             + (f": {detail}" if detail else "")) from None
        _remember(spec, recorded)
    return loaded()


def autoload() -> None:
    """Once per process: RESNET_ABLATE_PLUGINS, then installed entry points. A broken one is
    a warning naming it, so it cannot stop commands that do not need it (a train of its
    variant then says the model is unknown)."""
    global _autoloaded
    if _autoloaded:
        return
    _autoloaded = True
    for spec in split(os.environ.get(ENV)):
        try:
            load([spec])
        except InputError as exc:
            print(f"resnet-ablate: warning: {exc} (from {ENV})", file=sys.stderr)
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP):
        if ep.module in _seen:
            continue
        try:
            obj = ep.load()
            if callable(obj):
                obj()
            _remember(ep.value, ep.module)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            print(f"resnet-ablate: warning: plugin {ep.name} ({ep.value}) failed to load: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            _failed.append(f"{ep.name} ({ep.value})")


def loaded() -> list[str]:
    """What this process loaded, as a run records it."""
    return list(_recorded)


def missing(recorded: list[str]) -> list[str]:
    """The plugins a run record names that this process has not loaded."""
    have = set(_recorded) | _seen
    return [p for p in recorded if p not in have]


def require(named: list[str], run: str, option: str, purpose: str, prefix: str = "") -> None:
    """The plugins a run record names, loaded now (named by the user, RESNET_ABLATE_PLUGINS or
    an entry point), or a one-line InputError saying how to name them: a record never makes
    code run by itself."""
    autoload()
    gone = missing(named)
    if gone:
        raise InputError(f"{prefix}run {run} was trained with plugin(s) {', '.join(gone)}, not "
                         f"loaded now; name them with {option}{','.join(gone)} (or {ENV}) to "
                         f"{purpose}")


# A plugin file beside the user is looked for up to this size and count (read as text,
# never imported: naming it with plugins= is what runs it).
_HINT_MAX_BYTES = 1 << 20
_HINT_MAX_FILES = 200


def hint(name: str) -> str:
    """Where an unknown variant may come from, in words (or ""): a .py file in the working
    directory that names it, not loaded (pass plugins=), or an installed plugin that failed
    to load."""
    import re

    wanted = name.strip().lower().replace("_", "-")
    found = []
    try:
        files = sorted(Path.cwd().glob("*.py"))[:_HINT_MAX_FILES]
    except OSError:
        files = []
    for path in files:
        try:
            if path.stat().st_size > _HINT_MAX_BYTES:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        quoted = re.findall(r"""["']([A-Za-z][A-Za-z0-9_.-]*)["']""", text)
        if any(q.lower().replace("_", "-") == wanted for q in quoted) and \
                str(path.resolve()) not in _recorded:
            found.append((path.name, path.stem if path.stem.isidentifier() else path.name))
    said = []
    if found:
        named = ",".join(arg for _, arg in found)
        said.append(f"{', '.join(file for file, _ in found)} in this directory names it: pass "
                    f"plugins={named} (or {ENV}={named}) to load it")
    if _failed:
        said.append(f"installed plugin(s) {', '.join(_failed)} failed to load (the warning "
                    "above); one may register it: pass plugins=MODULE once it imports")
    return "; ".join(said)
