"""The paper's curves binned exactly from a run's history rows (numpy, vectorised): per
evaluation, its split metrics and the training error and loss averaged over the interval since
the previous evaluation. analysis.histories bins the harness's regular evaluations in its
query; a run evaluated elsewhere (W&B's rows, a hand-made file) comes here."""
from __future__ import annotations

from ..run.rundir import EVAL_COLUMNS

EVALUATION_COLUMNS = ("run_id", "iteration", *EVAL_COLUMNS, "train_err", "train_loss",
                      "n_train")


def evaluation_rows(history):
    """The evaluations table's rows of a batch of history rows (an Arrow table): per
    evaluation (a row with any split metric; a repeated iteration once), its metrics and
    the mean training error and loss of the rows in (previous evaluation, this one]: the
    paper's training curve, binned once here, vectorised, so that a figure reads 64 rows a
    run, not 64,000."""
    import numpy as np
    import pyarrow as pa

    if history is None or not history.num_rows:
        return None
    names = history["run_id"].combine_chunks()
    names = names if pa.types.is_dictionary(names.type) else names.dictionary_encode()
    run = names.indices.to_numpy().astype(np.int64)
    it = history["iteration"].to_numpy()
    is_eval = _any_valid(history, EVAL_COLUMNS)
    # Rows in (run, iteration) order, a training-only row before an evaluation at its
    # iteration (files come in order: usually nothing to sort).
    key = run << 40
    key += it << 1
    key += is_eval
    order = None if np.all(key[1:] >= key[:-1]) else np.argsort(key, kind="stable")
    if order is not None:
        run, it, is_eval, key = run[order], it[order], is_eval[order], key[order]
    pos = np.flatnonzero(is_eval)
    if not len(pos):
        return None
    new = np.concatenate([[True], (run[pos[1:]] != run[pos[:-1]]) | (it[pos[1:]] != it[pos[:-1]])])
    evals, group = pos[new], np.cumsum(new) - 1  # an iteration evaluated twice: its mean
    m = len(evals)
    # Each row's evaluation, the first at or after it: the evaluations that start before
    # it (rows are in order; an evaluation row counts its own)
    starts = np.zeros(len(it), dtype=np.int64)
    starts[evals] = 1
    nxt = np.minimum(np.cumsum(starts) - is_eval, m - 1)
    # binned: a row at or before its run's last evaluation (and after iteration 0)
    last = np.full(int(run.max()) + 1, -1)
    last[run[pos]] = pos  # pos ascending: each run's last evaluation row wins
    binned = (np.arange(len(it)) <= last[run]) & (it > 0)
    out = {"run_id": names.dictionary.take(pa.array(run[evals])).cast(pa.string()),
           "iteration": pa.array(it[evals])}
    at = pos if order is None else order[pos]  # the evaluation rows, as the table holds them
    for col in EVAL_COLUMNS:
        v = _floats(history[col].take(pa.array(at)))
        out[col] = _mean(np.bincount(group[~np.isnan(v)], minlength=m),
                         np.bincount(group, weights=np.nan_to_num(v), minlength=m))
    bounds = np.searchsorted(nxt, np.arange(m))  # nxt ascends: each evaluation's rows a run
    for col in ("train_err", "train_loss"):
        v = _floats(history[col])
        v = v if order is None else v[order]
        use = binned & ~np.isnan(v)
        n = np.add.reduceat(use, bounds, dtype=np.int64)
        out[col] = _mean(n, np.add.reduceat(np.where(use, v, 0.0), bounds))
        if col == "train_err":
            out["n_train"] = pa.array(n, type=pa.int64())
    return pa.table({c: out[c] for c in EVALUATION_COLUMNS})


def _mean(n, total):
    """Means of groups as an Arrow array (NULL where a group is empty)."""
    import numpy as np
    import pyarrow as pa

    with np.errstate(invalid="ignore", divide="ignore"):
        return pa.array(total / np.maximum(n, 1), mask=n == 0)


def _floats(column):
    """An Arrow float column as numpy, NULL as NaN."""
    import numpy as np

    return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _any_valid(table, columns):
    """Whether each row has a value in any of these columns (a numpy bool array)."""
    import numpy as np
    import pyarrow.compute as pc

    marked = np.zeros(table.num_rows, dtype=bool)
    for col in columns:
        if table[col].null_count < table.num_rows:  # a split never evaluated: nothing
            marked |= pc.is_valid(table[col]).to_numpy(zero_copy_only=False)
    return marked
