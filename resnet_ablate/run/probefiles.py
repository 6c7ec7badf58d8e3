"""Probe records in a run directory, the one definition of their files (written by
resnet_ablate.probes.runner; read by the figures and the report):

    runs/<run_id>/probes/<probe>-<digest>.json   the record
    runs/<run_id>/probes/<probe>-<digest>.npz    its arrays (numpy .npz), when it has any

`settings_digest` = digest({"probe", "settings" (every setting, defaults filled in),
"weights", "data": {"split", "batch_size"}}): equal for every run probed alike, what pools
the seeds of a condition. `digest` = digest({"settings_digest", "seed"}): the file's name,
one per run, probe, settings and seed (both record.digest: SHA-1 of canonical JSON, 10
hex). The .npz is written first, the .json last, each atomically; the .json names the .npz
and its SHA-256, so a record is complete exactly when its .json is there and the .npz it
names has that hash. Importing this module imports no torch.

The .json, FORMAT 1 (every key always present):
    format 1 | probe str | run_id str | digest str | settings_digest str
    settings {name: value}  the probe's settings, all of them
    seed int                the probe's own draws (default: the run's seed)
    weights "final" | "initial"   which of the run's weights were probed
    data {split: "train"|"test", batch_size int, split_images int, view str,
          fingerprint str}
    condition str, model str   copied from the run's record (join on run_id for the rest)
    paper str, claim str       the probe's source and its claim (our one-line summary)
    result {...}            the probe's own fields: JSON, non-finite numbers as null,
                            errors as fractions in [0, 1] (the run's summary: percent)
    arrays {file str, sha256 str, shapes {name: [int, ...]}} | null
    seconds float, device str, threads int, versions {resnet_ablate, torch, python},
    probed_at str (ISO 8601)
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..io import MAX_JSON_BYTES, atomic_write_bytes, atomic_write_json, read_bytes, read_json
from .record import digest as _digest

FORMAT = 1
PROBES_DIR = "probes"
MAX_ARRAY_BYTES = 1 << 30


def settings_digest(probe: str, settings: Mapping[str, Any], weights: str, split: str,
                    batch_size: int) -> str:
    return _digest({"probe": probe, "settings": dict(settings), "weights": weights,
                    "data": {"split": split, "batch_size": batch_size}})


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


def write(run_dir: str | Path, rec: dict[str, Any], arrays: Mapping[str, Any]) -> Path:
    """The record's .npz (if it has arrays), then its .json; `rec` holds every key but
    "arrays", which this fills in. Returns the .json's path."""
    import numpy as np

    json_path, npz_path = paths(run_dir, rec["probe"], rec["digest"])
    entry = None
    if arrays:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{str(k): np.asarray(v) for k, v in arrays.items()})
        blob = buf.getvalue()
        atomic_write_bytes(npz_path, blob)
        entry = {"file": npz_path.name, "sha256": hashlib.sha256(blob).hexdigest(),
                 "shapes": {str(k): list(np.shape(v)) for k, v in arrays.items()}}
    atomic_write_json(json_path, {**rec, "format": FORMAT, "arrays": entry})
    return json_path


def read(json_path: str | Path) -> dict[str, Any] | None:
    """A complete record (its .json, and the .npz it names with that SHA-256), else None.
    The arrays are not loaded (arrays() does)."""
    json_path = Path(json_path)
    try:
        rec = read_json(json_path, MAX_JSON_BYTES, inside=json_path.parent)
    except (FileNotFoundError, InputError):
        return None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        return None
    entry = rec.get("arrays")
    if entry is not None:
        try:
            data = read_bytes(json_path.parent / entry["file"], MAX_ARRAY_BYTES,
                              inside=json_path.parent)
        except (FileNotFoundError, InputError, KeyError, TypeError):
            return None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            return None
    return rec


def arrays(json_path: str | Path, rec: dict[str, Any]) -> dict[str, Any]:
    """The record's arrays by name (numpy; never pickles)."""
    import numpy as np

    if not rec.get("arrays"):
        return {}
    with np.load(Path(json_path).parent / rec["arrays"]["file"], allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def records(run_dir: str | Path, probe: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of every complete record in a run directory (of one probe, if
    named), in name order; incomplete ones are left out."""
    folder = Path(run_dir) / PROBES_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        rec = read(path)
        if rec is not None and (probe is None or rec.get("probe") == probe):
            out.append((path, rec))
    return out
