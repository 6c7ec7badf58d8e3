"""Probe records in a run directory, the one definition of their files (written by
resnet_ablate.probes.probing; read by the figures and the report):

    runs/<run_id>/probes/<probe>-<digest>.json   the record
    runs/<run_id>/probes/<probe>-<digest>.npz    its arrays (numpy .npz), when it has any
    runs/<run_id>/probes/.<probe>-<digest>.lock  held (POSIX lockf) while one is computed

`settings_digest` = digest({"probe", "settings" (every setting, defaults filled in),
"weights", "data": {"split", "batch_size"} (+ "num_images" when a sample was drawn)}):
equal for every run probed alike, what pools the seeds of a condition. `digest` =
digest({"settings_digest", "seed"}): the file's name, one per run, probe, settings and
seed (both record.digest: SHA-1 of canonical JSON, 10 hex). The .npz is written first, the
.json last, each atomically, by the one process that holds the record's lock; the .json
names the .npz and its SHA-256, so a record is complete exactly when its .json is there and
the .npz it names has that hash. A write that fails (a full disk) leaves neither. Importing
this module imports no torch.

The .json, FORMAT 1 (every key always present unless said):
    format 1 | probe str | run_id str | digest str | settings_digest str
    settings {name: value}  the probe's settings, all of them
    seed int                the probe's own draws (default: the run's seed)
    weights "final" | "initial"   which of the run's weights were probed
    data {split: "train"|"test", batch_size int, split_images int, view str,
          fingerprint str,
          (written since the fair sample; absent in older records:)
          num_images int|null   the stratified sample asked for (null: the split in order)
          sample {rule str, seed int, indices [int]}|null  the images drawn, by index
          images int            the images the probe read
          class_counts [int]    of those, per class
          warning str|null      uneven class counts (resnet_ablate.probes.sample)}
    condition str, model str   copied from the run's record (join on run_id for the rest)
    paper str, claim str       the probe's source and its claim (our one-line summary)
    result {...}            the probe's own fields: JSON, non-finite numbers as null,
                            errors as fractions in [0, 1] (the run's summary: percent)
    arrays {file str, sha256 str, shapes {name: [int, ...]}} | null
    seconds float, device str, threads int, versions {resnet_ablate, torch, python},
    probed_at str (ISO 8601)

Reading is bounded (a file's record can be anyone's): the .json by read_json (size-capped,
inside its folder, nesting too deep refused), the .npz size-capped, hashed, and each array's
header read and checked against the record's shapes (numbers only, never objects: no
pickles; at most MAX_ARRAYS_BYTES declared) before anything is allocated.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import math
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import InputError
from ..io import MAX_JSON_BYTES, atomic_write_bytes, atomic_write_json, read_bytes, read_json
from .record import digest as _digest

FORMAT = 1
PROBES_DIR = "probes"
MAX_ARRAY_BYTES = 1 << 30  # the .npz file, compressed
MAX_ARRAYS_BYTES = 1 << 30  # its arrays, uncompressed, as their headers declare them
ARRAY_KINDS = "biuf"  # booleans and numbers; never objects (pickles), strings or records


def settings_digest(probe: str, settings: Mapping[str, Any], weights: str, split: str,
                    batch_size: int, num_images: int | None = None) -> str:
    data: dict[str, Any] = {"split": split, "batch_size": batch_size}
    if num_images is not None:  # absent when unset: the digests records had before it
        data["num_images"] = num_images
    return _digest({"probe": probe, "settings": dict(settings), "weights": weights,
                    "data": data})


def record_digest(settings_key: str, seed: int) -> str:
    return _digest({"settings_digest": settings_key, "seed": seed})


def paths(run_dir: str | Path, probe: str, digest: str) -> tuple[Path, Path]:
    """(.json, .npz) of a record."""
    folder = Path(run_dir) / PROBES_DIR
    return folder / f"{probe}-{digest}.json", folder / f"{probe}-{digest}.npz"


def jsonable(value: Any, where: str = "result") -> Any:
    """A probe's fields as JSON data: numpy to Python, non-finite numbers to null (JSON has
    none; the arrays keep them), tuples to lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars
        return jsonable(value.tolist(), where)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise InputError(f"the probe's {where} is a {type(value).__name__}, not JSON data (put "
                     "arrays under 'arrays')")


# ---------------------------------------------------------------------------- writing
@contextmanager
def lock(run_dir: str | Path, probe: str, digest: str) -> Iterator[bool]:
    """The record's lock while it is computed and written: yields True when this process
    holds it, False when another live process does (a POSIX record lock, released by the
    kernel when its holder dies: never stale). Two probes of one run with one settings
    digest and seed thus never interleave their .npz and .json."""
    folder = Path(run_dir) / PROBES_DIR
    name = f".{probe}-{digest}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / name, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                     0o644)
    except OSError as exc:
        raise InputError(f"cannot create {folder / name} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise InputError(f"cannot lock {folder / name} ({exc.strerror or exc})"
                                 ) from None
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def write(run_dir: str | Path, rec: dict[str, Any], arrays: Mapping[str, Any]) -> Path:
    """The record's .npz (if it has arrays), then its .json; `rec` holds every key but
    "arrays", which this fills in. Returns the .json's path. A write that fails (a full
    disk) removes what it wrote and says so in one line (InputError)."""
    import numpy as np

    json_path, npz_path = paths(run_dir, rec["probe"], rec["digest"])
    entry = None
    try:
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **{str(k): np.asarray(v) for k, v in arrays.items()})
            blob = buf.getvalue()
            atomic_write_bytes(npz_path, blob)
            entry = {"file": npz_path.name, "sha256": hashlib.sha256(blob).hexdigest(),
                     "shapes": {str(k): list(np.shape(v)) for k, v in arrays.items()}}
        atomic_write_json(json_path, {**rec, "format": FORMAT, "arrays": entry})
    except OSError as exc:
        if entry is not None:
            npz_path.unlink(missing_ok=True)
        raise InputError(f"cannot write the probe record {json_path} "
                         f"({exc.strerror or exc}); nothing of it was kept: free space and "
                         "run the probe again") from None
    return json_path


# ---------------------------------------------------------------------------- reading
def load(json_path: str | Path) -> dict[str, Any]:
    """A complete record (its .json, and the .npz it names with that SHA-256), or an
    InputError that says what is wrong with it (FileNotFoundError: no .json). The arrays
    are not loaded (arrays() does)."""
    json_path = Path(json_path)
    try:
        rec = read_json(json_path, MAX_JSON_BYTES, inside=json_path.parent)
    except RecursionError:  # json's decoder on nesting thousands deep; not a ValueError
        raise InputError(f"{json_path.name} is nested too deeply") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise InputError(f"{json_path.name} is not a probe record of format {FORMAT}")
    entry = rec.get("arrays")
    if entry is not None:
        _check_entry(json_path.name, entry)
        data = read_bytes(json_path.parent / entry["file"], MAX_ARRAY_BYTES,
                          inside=json_path.parent)
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise InputError(f"{json_path.name}: {entry['file']} is not the file it names "
                             "(another SHA-256): written since, or cut short")
    return rec


def read(json_path: str | Path) -> dict[str, Any] | None:
    """A complete record, else None (absent, incomplete or unreadable)."""
    try:
        return load(json_path)
    except (FileNotFoundError, InputError):
        return None


def _check_entry(name: str, entry: Any) -> None:
    ok = isinstance(entry, dict) and isinstance(entry.get("file"), str) and \
        isinstance(entry.get("sha256"), str) and isinstance(entry.get("shapes"), dict)
    if ok:
        for shape in entry["shapes"].values():
            ok = ok and isinstance(shape, list) and all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 40
                for n in shape) and len(shape) <= 8
    if not ok or "/" in entry["file"] or not entry["file"].endswith(".npz"):
        raise InputError(f"{name}: its arrays entry must be {{file: NAME.npz, sha256, shapes: "
                         "{name: [int, ...]}}")


def arrays(json_path: str | Path, rec: dict[str, Any]) -> dict[str, Any]:
    """The record's arrays by name (numpy), each header checked against the record's shapes
    before any array is read: numbers only (no pickles), at most MAX_ARRAYS_BYTES in all;
    InputError naming what does not fit."""
    import numpy as np
    from numpy.lib import format as npy

    entry = rec.get("arrays")
    if not entry:
        return {}
    name = Path(json_path).name
    _check_entry(name, entry)
    folder = Path(json_path).parent
    data = read_bytes(folder / entry["file"], MAX_ARRAY_BYTES, inside=folder)
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise InputError(f"{name}: {entry['file']} is not the file it names (another SHA-256)")
    shapes = {f"{k}.npy": tuple(v) for k, v in entry["shapes"].items()}
    out, total = {}, 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if sorted(i.filename for i in infos) != sorted(shapes):
                raise InputError(f"{name}: {entry['file']} holds other arrays than the record "
                                 f"names ({', '.join(sorted(entry['shapes']))})")
            for info in infos:
                with z.open(info) as f:
                    version = npy.read_magic(f)
                    if version not in ((1, 0), (2, 0)):
                        raise InputError(f"{name}: {info.filename} is .npy version {version}")
                    read_header = npy.read_array_header_1_0 if version == (1, 0) else \
                        npy.read_array_header_2_0
                    shape, _, dtype = read_header(f)
                    header = f.tell()  # magic, version, length and the header's dict
                if dtype.hasobject or dtype.kind not in ARRAY_KINDS:
                    raise InputError(f"{name}: array {info.filename[:-4]} is of dtype {dtype} "
                                     "(numbers only; objects would be a pickle)")
                if tuple(shape) != shapes[info.filename]:
                    raise InputError(f"{name}: array {info.filename[:-4]} claims shape "
                                     f"{list(shape)}, the record {list(shapes[info.filename])}")
                size = math.prod(shape) * dtype.itemsize
                total += size
                if total > MAX_ARRAYS_BYTES or info.file_size != header + size:
                    raise InputError(f"{name}: array {info.filename[:-4]} declares "
                                     f"{size:,} bytes in a {info.file_size:,}-byte entry (at "
                                     f"most {MAX_ARRAYS_BYTES:,} in all)")
            with np.load(io.BytesIO(data), allow_pickle=False) as z2:
                for key in z2.files:
                    out[key] = z2[key]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{name}: {entry['file']} is not a readable .npz "
                         f"({' '.join(str(exc).split())[:120]})") from None
    return out


def records(run_dir: str | Path, probe: str | None = None,
            notes: list[str] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of every complete record in a run directory (of one probe, if
    named), in name order; one that cannot be read is left out, and named in `notes`."""
    folder = Path(run_dir) / PROBES_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(f"{probe}-*.json" if probe else "*.json")):
        try:
            rec = load(path)
        except FileNotFoundError:
            continue
        except InputError as exc:
            if notes is not None:
                notes.append(f"{path}: {exc}")
            continue
        if probe is None or rec.get("probe") == probe:
            out.append((path, rec))
    return out
