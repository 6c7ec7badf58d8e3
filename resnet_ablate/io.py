"""Files in and out. Writes are atomic: a reader sees the old file or the new one, never half
of either. Reads of files someone else may have written (summaries, configs, histories)
are bounded and never block: a FIFO, a directory, a device, a symlink out of its folder, a
file too large, JSON with NaN or Infinity are one-line errors, not hangs or tracebacks."""
from __future__ import annotations

import errno
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_JSON_BYTES = 8 * 1024 * 1024  # a summary is a few kB; Fig. 7 of a 1202-layer net ~100 kB


_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """A written file's bytes on disk; raises if they cannot be (the caller is about to
    depend on them: a commit that names the file, a rename over a good one)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename over it, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text; a path's bytes that are not UTF-8 (Python holds them as lone surrogates:
    a report folder named so, a skipped run folder) are written as their escape, \\udcff,
    so the file stays UTF-8 instead of the write failing."""
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def open_regular(path: str | os.PathLike, max_bytes: int,
                 inside: str | os.PathLike | None = None) -> tuple[int, os.stat_result]:
    """An open descriptor of a regular file of at most `max_bytes`, and its stat; `inside`:
    it (and any symlink on the way) must resolve within that folder. Opened without
    blocking (a FIFO never hangs) and checked on the open descriptor (no swap between the
    check and the read). FileNotFoundError if it is not there; InputError for the rest.
    The caller closes the descriptor."""
    path = Path(path)
    name = path.name
    if inside is not None:
        try:
            root, real = Path(inside).resolve(), path.resolve()
        except RuntimeError:  # Python < 3.13: a symlink loop
            raise InputError(f"{name} cannot be read (a symlink loop)") from None
        if real != root and root not in real.parents:
            raise InputError(f"{name} points outside {root} (a symlink to {real}); refused")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        raise InputError(f"{name} cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO"
                    if stat.S_ISFIFO(st.st_mode) else "not a regular file")
            raise InputError(f"{name} is {kind}; expected a file")
        if st.st_size > max_bytes:
            raise InputError(f"{name} is {st.st_size:,} bytes, over the {max_bytes:,} a run "
                             "file may have")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bytes(path: str | os.PathLike, max_bytes: int, inside: str | os.PathLike | None = None
               ) -> bytes:
    """A regular file's bytes, at most `max_bytes`, opened and checked by open_regular."""
    name = Path(path).name
    fd, _ = open_regular(path, max_bytes, inside)
    try:
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise InputError(f"{name} grew over {max_bytes:,} bytes while read")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES,
              inside: str | os.PathLike | None = None) -> Any:
    """A JSON file as read_bytes reads it; NaN and Infinity (Python's extensions of JSON)
    are refused, not turned into floats where an integer belongs."""
    data = read_bytes(path, max_bytes, inside)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise InputError(f"{Path(path).name} is not UTF-8 text") from None
    except RecursionError:  # not a ValueError: JSON nested thousands deep
        raise InputError(f"{Path(path).name} is nested too deeply to be a record") from None
    except ValueError as exc:
        msg = getattr(exc, "msg", None) or str(exc)
        raise InputError(f"{Path(path).name} is not JSON ({msg})") from None
