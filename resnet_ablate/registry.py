"""One class for every kind of registered name (`Registry`): variants, blocks, shortcuts,
stems, probes. A taken name is refused, never silently replaced; a registry's built-ins are
registered the first time it is asked for a name. Importing this imports no torch."""
from __future__ import annotations

import fnmatch
import re
from typing import Callable, Generic, Iterator, TypeVar

from .errors import InputError, unknown

T = TypeVar("T")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


class Registry(Generic[T]):
    """Names -> entries of one kind. A taken name is refused, never silently replaced;
    `key` normalises a name for lookup (variants: case- and '_'/'-'-insensitive); `loader`
    runs once, before the first lookup (it registers the built-ins)."""

    def __init__(self, kind: str, key: Callable[[str], str] = str,
                 loader: Callable[[], None] | None = None, hint: str = "",
                 listed: bool = True) -> None:
        self.kind, self._key, self._loader, self.hint, self.listed = kind, key, loader, hint, \
            listed
        self._entries: dict[str, T] = {}  # normalised key -> entry
        self._names: dict[str, str] = {}  # normalised key -> registered spelling
        self._listeners: list[Callable[[T], None]] = []
        self._loading = False

    def _load(self) -> None:
        if self._loader is not None and not self._loading:
            self._loading = True
            self._loader()

    def add(self, name: str, entry: T, where: str = "") -> T:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InputError(f"{self.kind} name must start with a letter and hold letters, "
                             f"digits, '_', '-' or '.'; got {name!r}")
        self._load()
        key = self._key(name)
        if key in self._entries:
            raise InputError(f"{self.kind} {name!r} is already registered"
                             + (f" (by {where})" if where else ""))
        self._entries[key], self._names[key] = entry, name
        for listener in self._listeners:
            listener(entry)
        return entry

    def get(self, name: str) -> T:
        self._load()
        key = self._key(name) if isinstance(name, str) else name
        if key not in self._entries:
            raise unknown(self.kind, name, self.names(), self.hint, self.listed)
        return self._entries[key]

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[T]:
        self._load()
        return iter(list(self._entries.values()))

    def names(self, pattern: str = "*") -> list[str]:
        """Registered spellings in registration order, those matching an fnmatch pattern
        (normalised like the names)."""
        self._load()
        pat = self._key(pattern)
        return [self._names[k] for k in self._entries if fnmatch.fnmatchcase(k, pat)]

    def on_add(self, listener: Callable[[T], None]) -> None:
        """Call `listener(entry)` for every entry registered from now on."""
        self._listeners.append(listener)
