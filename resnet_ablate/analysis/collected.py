"""What figures, tables and the report read: `Collected`, the runs that count and, asked for
by each figure, their curves, histories and responses from the store; and the grouping
rules that decide which runs count (one per condition and seed) and what to warn about."""
from __future__ import annotations

import os
import shutil
import weakref
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..io import atomic_write_bytes
from .ingest import evaluation_rows
from .samples import network_versions, one_per_seed
from .store import CURVE_POINTS, HISTORY_COLUMNS_SQL, Store


class Collected:
    """What figures, tables and the report consume: `runs`, the runs that count (one row per
    condition and seed, a DataFrame of the runs table), and, asked for by each figure, their
    curves, histories and responses from the store (never all histories in memory).

    Collected(runs, history, responses) builds one from frames in memory (a long history:
    run_id, iteration, metric, value; or a wide one), as tests and notebooks do."""

    def __init__(self, runs: pd.DataFrame, history: pd.DataFrame | None = None,
                 responses: pd.DataFrame | None = None, skipped=None, warnings=None, *,
                 store: str | os.PathLike | None = None, unfinished=None) -> None:
        self.runs = runs
        self.skipped: list[tuple[str, str]] = list(skipped or [])  # (where, why)
        self.warnings: list[str] = list(warnings or [])
        self.unfinished: list[tuple[str, str]] = list(unfinished or [])
        self.path = Path(store) if store is not None else None
        self._memory = None if store is not None else _memory_store(history, responses)
        self._finalizer = None

    def _remove_on_close(self, folder: Path) -> None:
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)

    def close(self) -> None:
        """Remove a temporary store (collect() without a store)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> "Collected":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _ask(self, fn: Callable[[Store], Any]) -> Any:
        """One question to the store, on a connection of its own (opened read-only and
        closed: another process may collect into it between two figures)."""
        if self._memory is not None:
            return fn(self._memory)
        store = Store.open(self.path)
        try:
            return fn(store)
        finally:
            store.close()

    def _ids(self, runs: pd.DataFrame | None = None) -> list[str]:
        runs = self.runs if runs is None else runs
        return [] if runs.empty else list(dict.fromkeys(runs["run_id"]))

    @property
    def responses(self) -> pd.DataFrame:
        """Fig. 7's layer responses of these runs: run_id, index, layer, std."""
        return self._ask(lambda s: s.responses(self._ids()))

    @property
    def probes(self) -> pd.DataFrame:
        return self._ask(lambda s: s.probes(self._ids()))

    def history(self, columns: list[str] | None = None, max_points: int | None = None
                ) -> pd.DataFrame:
        """These runs' history rows, wide (see Store.history)."""
        return self._ask(lambda s: s.history(self._ids(), columns, max_points=max_points))

    def curves(self, runs: pd.DataFrame, split: str = "test",
               max_points: int = CURVE_POINTS) -> pd.DataFrame:
        """The paper's curves of `runs` (Store.curves), downsampled in the database."""
        return self._ask(lambda s: s.curves(self._ids(runs), split, max_points))

    def has(self, column: str) -> bool:
        """Whether any of these runs' history has `column` (val_err: a held-out split)."""
        return self._ask(lambda s: s.has(column, self._ids()))

    def subset(self, runs: pd.DataFrame) -> "Collected":
        c = Collected(runs, skipped=self.skipped, warnings=self.warnings,
                      unfinished=self.unfinished, store=self.path)
        c._memory = self._memory
        c._keep = self  # a temporary store lives as long as any view of it
        return c

    def save(self, folder: Path) -> list[Path]:
        """The runs a report used (runs.parquet) and their responses (responses.parquet),
        each written atomically; their histories stay in the store."""
        written = []
        for name, frame in (("runs", self.runs), ("responses", self.responses)):
            path = Path(folder) / f"{name}.parquet"
            atomic_write_bytes(path, frame.to_parquet(index=False))
            written.append(path)
        return written


def _memory_store(history: pd.DataFrame | None, responses: pd.DataFrame | None) -> Store:
    store = Store.create(None)
    if history is not None and len(history):
        if "metric" in history.columns:  # long: one row per (run, iteration, metric)
            keys = ["run_id", "iteration"] + (["granularity"] if "granularity" in history
                                              else [])
            history = history.pivot_table(index=keys, columns="metric", values="value",
                                          aggfunc="mean").reset_index()
        wide = history.reindex(columns=list(HISTORY_COLUMNS_SQL))
        wide["granularity"] = wide["granularity"].fillna("iteration")
        store.conn.register("_rows", wide)
        store.conn.execute("INSERT INTO history SELECT * FROM _rows")
        store.conn.unregister("_rows")
        rows = store.conn.sql("SELECT * FROM history").to_arrow_table()
        store.conn.register("_rows", evaluation_rows(rows))
        store.conn.execute("INSERT INTO evaluations SELECT * FROM _rows")
        store.conn.unregister("_rows")
    if responses is not None and len(responses):
        store.conn.register("_rows", responses[["run_id", "index", "layer", "std"]])
        store.conn.execute("INSERT INTO responses SELECT * FROM _rows")
        store.conn.unregister("_rows")
    return store


def open_collected(store: str | os.PathLike) -> Collected:
    """A store `collect` wrote, as figures and tables read it: the runs that count, what
    was skipped or unfinished, and the warnings (notes of its sources, reruns of a seed,
    network versions)."""
    db = Store.open(store)
    try:
        runs = db.runs()
        present = db.frame("SELECT run_id, condition, seed, status, finished_at, versions "
                           "FROM runs WHERE NOT gone")
        sources = db.sources().to_dict("records")
    finally:
        db.close()
    skipped = [(s["path"], s["why"]) for s in sources if s["state"] == "skipped"]
    unfinished = [(s["path"], s["why"]) for s in sources if s["state"] == "unfinished"]
    warnings = [f"{s['path']}: {s['why']}" for s in sources if s["state"] == "duplicate"]
    for s in sources:
        for note in ("summary_note", "history_note", "probe_note"):
            if isinstance(s[note], str):
                warnings += s[note].split("\n")
    if len(present):
        warnings += one_per_seed(present)[1] + network_versions(present)
    return Collected(runs, skipped=skipped, warnings=warnings, unfinished=unfinished,
                     store=store)
