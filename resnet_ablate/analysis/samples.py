"""Which run is the sample of a (condition, seed): one per seed, chosen the same way by
`compare`, the figures, the tables, the report and the probes' findings; and the warnings
about what was pooled (reruns of a seed, runs built by network versions that differ)."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd


_RANK = {"finished": 0, "diverged": 1, "failed": 2}


def one_per_seed(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One sample per (condition, seed): a finished run over a diverged or failed one, then
    the latest; a warning names what was dropped."""
    order = runs.assign(_rank=runs["status"].map(_RANK).fillna(3),
                        _when=runs["finished_at"].fillna(""))
    order = order.sort_values(["_rank", "_when", "run_id"], ascending=[True, False, True])
    dup = order.duplicated(["condition", "seed"], keep="first")
    warnings = []
    many = order[order.duplicated(["condition", "seed"], keep=False)]
    for (cond, seed), group in many.groupby(["condition", "seed"], sort=False, dropna=False):
        kept, dropped = group["run_id"].iloc[0], list(group["run_id"].iloc[1:])
        warnings.append(f"runs {', '.join([kept, *dropped])} are the same condition "
                        f"({cond}) and seed ({seed}); counted once, as {kept}")
    return order.loc[~dup].drop(columns=["_rank", "_when"]).sort_values("run_id"), warnings


def network_versions(runs: pd.DataFrame) -> list[str]:
    """A warning for each condition whose runs were built by harness versions that define
    its network differently (resnet_ablate.variants.paper.NETWORK_CHANGES)."""
    def network(text: Any) -> str:
        try:
            return str(json.loads(text).get("network", "?")) if isinstance(text, str) else "?"
        except (ValueError, AttributeError):
            return "?"
    out = []
    versions = runs["versions"].map(network)
    for cond, group in versions.groupby(runs["condition"]):
        if group.nunique() > 1:
            ids = runs.loc[group.index, "run_id"]
            out.append(f"runs of condition {cond} were built by harness versions that define "
                       f"the network differently ({', '.join(sorted(set(group)))}: "
                       f"{', '.join(ids.head(4))}); pooled as one condition, check "
                       "NETWORK_CHANGES")
    return out
