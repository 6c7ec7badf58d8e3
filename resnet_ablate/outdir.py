"""The folders a command is given: where it writes (`--out`, `--runs-dir`) and where it reads
runs (`--runs`, `DIR`). Each is checked before anything is read or written, in one line:
an output folder is a folder, or can be made, and files can be written in it; a symlink is
followed (the files go where it points, the link itself is never replaced) or, when it
leads nowhere, refused. A folder of runs needs a UTF-8 name: a run's record and the
analysis keep its path as text."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError
from .formatting import printable


def _shown(path: str | os.PathLike) -> str:
    """A path as the one-line message shows it (undecodable bytes and escapes as text)."""
    return printable(os.fspath(path))


def utf8_folder(path: str | os.PathLike, flag: str) -> Path:
    """`path`, if its name and the folder it leads to are UTF-8 (Python holds other bytes
    as lone surrogates, which no record, table or Parquet file can store); else one line."""
    for name in (os.fspath(path), os.path.realpath(path)):  # runs are read where they lie
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{flag} {_shown(path)}: "
                             + ("" if name == os.fspath(path) else f"leads to {_shown(name)}, ")
                             + "a name with bytes that are not UTF-8 (shown as \\udcXX); "
                             "rename the folder") from None
    return Path(path)


def check_out(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse what cannot be an output folder, creating nothing: a file, a symlink that
    leads nowhere or to a file, a path under a file, a name the file system refuses."""
    path = Path(path)
    shown = _shown(path)
    try:
        if path.is_symlink() and not path.exists():
            raise InputError(f"{flag} {shown} is a symlink that leads nowhere (to "
                             f"{_shown(os.readlink(path))}); create its target folder or name "
                             "another")
        if path.exists() and not path.is_dir():
            what = (f"a symlink to a file ({_shown(os.readlink(path))})" if path.is_symlink()
                    else "a file")
            raise InputError(f"{flag} {shown} is {what}; name a folder (made if missing)")
        above = path
        while not os.path.lexists(above) and above != above.parent:
            above = above.parent
        if os.path.lexists(above) and not above.is_dir():
            raise InputError(f"{flag} {shown} is under {_shown(above)}, which is not a folder")
        longest = max((len(os.fsencode(p.name)) for p in (path, *path.parents)
                       if not os.path.lexists(p)), default=0)
        if longest > os.pathconf(above, "PC_NAME_MAX"):  # else known only once made
            raise InputError(f"{flag} {shown}: File name too long (a name of {longest} bytes; "
                             f"the file system takes {os.pathconf(above, 'PC_NAME_MAX')})")
    except OSError as exc:  # a name too long, a loop among its parents
        raise InputError(f"{flag} {shown}: {exc.strerror or exc}") from None
    return path


def make_out(path: str | os.PathLike, flag: str = "--out") -> Path:
    """The output folder, made if missing (with its missing parents), once check_out has
    passed and a file can be written in it; if not, one line, and the folders this call
    made are removed again."""
    path = check_out(path, flag)
    missing = []
    for p in (path, *path.parents):
        if os.path.lexists(p):
            break
        missing.append(p)
    made: list[Path] = []
    try:
        for p in reversed(missing):
            os.mkdir(p)
            made.append(p)
        with tempfile.TemporaryFile(dir=path, prefix=".resnet-ablate-"):
            pass  # a file can be written here (root may make folders where it cannot)
    except OSError as exc:
        for p in reversed(made):
            try:
                os.rmdir(p)
            except OSError:
                pass
        raise InputError(f"{flag} {_shown(path)}: cannot write there "
                         f"({exc.strerror or exc})") from None
    return path
