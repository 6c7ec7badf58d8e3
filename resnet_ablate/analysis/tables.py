"""The papers' tables, ours beside theirs: Table 1 (complexity), analogs of Table 6 (CIFAR
error by depth) and Tables 2/3 (ImageNet top-1/top-5) of He et al. (2015), and Tables 1/2
of He et al. (2016) (shortcut and activation ablations on ResNet-110/164).

Each builder returns (table of formatted strings, caption), so Markdown, HTML and LaTeX
show the same numbers; a mean is set beside the paper's mean (or its single number), a
best beside its best.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from ..reference import (CIFAR_TABLE6, FAIL_ABOVE, HE2016_KIND_SOURCE, HE2016_ORIGINALS,
                         HE2016_TABLE1, HE2016_TABLE2, IMAGENET_ERRORS, IMAGENET_TABLE1_FLOPS,
                         he2016_number, paper_match)
from ..variants.registry import get_spec
from . import inference, names
from .rundirs import RunSet
from .figures import MissingRuns
from .inference import ERROR_BOUNDS
from .stats import (beside_paper, by_condition, conditions, count_runs, holm_caption,
                    interval_note, pair_columns, pair_note, pair_tests, paper_note)
from .vocab import base_label, describe, finished, is_paper_net, labels, num

Table = tuple[pd.DataFrame, str]


def table1(c: RunSet | None = None) -> Table:
    """Table 1: ImageNet architectures, our params and conv+fc MACs vs the paper's FLOPs.
    Counted from the registry, no run needed (`table1()`); given runs, only when they hold
    ImageNet-stem nets (a CIFAR or digits report has no Table 1)."""
    from ..models.counting import complexity

    if c is not None:
        done = finished(c.runs)
        if done.empty or not (done["stem"] == "imagenet").any():
            data = ", ".join(sorted(set(done["dataset"]))) if len(done) else "nothing"
            raise MissingRuns(f"the paper's ImageNet architectures; these runs have no "
                              f"ImageNet-stem net (they are on {data})")
    rows = []
    for depth in IMAGENET_TABLE1_FLOPS:
        name = f"resnet{depth}-A" if depth < 50 else f"resnet{depth}-B"
        spec = get_spec(name)
        c = complexity(name, with_fvcore=False)
        paper = IMAGENET_TABLE1_FLOPS[depth]
        rows.append({"layers": depth, "block": spec.block,
                     "blocks per stage": "/".join(map(str, spec.layers)),
                     "model": name, "params": f"{c['params']:,}",
                     "MACs (ours)": f"{c['macs'] / 1e9:.3f}e9",
                     "FLOPs (paper)": f"{paper / 1e9:.1f}e9",
                     "ours vs paper": f"{100 * (c['macs'] / paper - 1):+.1f}%"})
    return pd.DataFrame(rows), names.TABLE_TITLES["table1"] + (
        ": MACs are conv + fc multiply-accumulates at 224x224, what the paper calls FLOPs.")


def table6(c: RunSet) -> Table:
    """Table 6 analog: test error by depth of plain and option-A residual nets (the paper's
    parts), per data set and protocol, beside the paper's CIFAR-10 numbers; each depth step
    of a series tested against the next shallower (Holm over the table)."""
    runs = c.runs
    data = sorted(set(finished(runs)["dataset"])) if len(runs) else []
    if "cifar10" not in data:  # the CLI's report and ra.tables make the same choice
        raise MissingRuns(f"the paper's cifar10 numbers; these runs are on "
                          f"{', '.join(data) or 'nothing'} (their test errors: 'Test error "
                          "by condition')")
    runs = runs[runs["dataset"] == "cifar10"]
    runs = runs[runs.apply(is_paper_net, axis=1)] if not runs.empty else runs
    runs = runs[(runs["family"] == "plain") | ((runs["family"] == "resnet")
                                               & (runs["shortcut"] == "A"))]
    t = by_condition(runs)
    if t.empty:
        raise MissingRuns("needs finished plain or option-A residual runs on cifar10")
    head = pd.DataFrame({
        "dataset": t["dataset"], "protocol": t["protocol"],
        "trained on": t["trained_on"].fillna(""), "model": t["label"], "layers": t["depth"],
        "params": t["params"].map(lambda v: f"{int(v):,}"),
        "params (paper)": [CIFAR_TABLE6[d]["params_text"] if p is not None
                           and d in CIFAR_TABLE6 else "" for d, p in zip(t["depth"], t["paper"])],
    })
    steps = pair_columns(list(t["test"]), ["" if v is None else v for v in t["vs"]],
                         "deeper", "shallower")
    out = pd.concat([head, beside_paper(t), steps], axis=1)
    drawn = any(p is not None for p in t["paper"])
    return out, (names.TABLE_TITLES["table6"] + (
                 ", beside He et al. (2015)'s numbers where the run's condition is the "
                 "paper's" if drawn else "; no run here has the paper's condition, so no "
                 "paper number is drawn") + ". He et al. (2015)'s Table 6 gives one number "
                 "per depth (over how many runs not stated), but for ResNet-110 the "
                 "'best (mean±std)' of 5 runs, 6.43 (6.61±0.16), in its caption's words: our "
                 "mean is set beside its mean, our best beside its best when we have 5 runs "
                 "too. He et al. (2015) determined the schedule 'on a 45k/5k train/val "
                 "split' (Section 4.2) and report models 'trained on the training set'; "
                 "'trained on' says which images ours saw (val_size=0, the default: all "
                 f"50k). {interval_note()}. Depth steps: {holm_caption(list(t['test']))}. "
                 f"{pair_note()} {paper_note(t)} {describe(finished(runs), 'test error')}")


def _imagenet(c: RunSet, models: list[str], what: str) -> pd.DataFrame:
    """One row per condition of each of the paper's models (its row with no runs when
    there are none): two conditions of one model (another lr, say) are never pooled."""
    runs = _imagenet_runs(c)
    if not runs.empty:
        runs = runs.assign(label=labels(runs))
    rows = []
    for name in models:
        spec = get_spec(name)
        paper = IMAGENET_ERRORS[name]
        mine = runs[runs["model"] == name] if not runs.empty else runs
        groups = list(mine.groupby("condition", sort=False)) if len(mine) else [(None, None)]
        for _, group in groups:
            has = group is not None
            done = group[group["status"] == "finished"] if has else None
            match = paper_match(group.iloc[0]) if has else None
            why = match.why_not if has and not match else ""
            top1 = done["final_test_err"].dropna().astype(float).tolist() if has else []
            top5 = pd.to_numeric(done["final_test_top5_err"], errors="coerce").dropna() \
                if has else pd.Series(dtype=float)
            rows.append({"model": group["label"].iloc[0] if has else base_label(
                             {"family": spec.family, "depth": spec.depth,
                              "shortcut": spec.shortcut or "-"}),
                         "runs": str(count_runs(group)) if has else "none",
                         "trained on": (group.iloc[0].get("trained_on") or "") if has else "",
                         "top-1 err % mean [95% t CI]":
                             inference.mean_ci(top1, bounds=ERROR_BOUNDS).format()
                             if top1 else "",
                         "top-1 (paper)": why or num(paper["top1"]),
                         "top-5 err %": num(top5.mean()) if len(top5) else "",
                         "top-5 (paper)": "" if why else num(paper["top5"])})
    df = pd.DataFrame(rows)
    if not (df["runs"] != "none").any():
        raise MissingRuns(f"needs ImageNet runs (protocol he2015-imagenet) of {what}")
    return df


def _imagenet_runs(c: RunSet) -> pd.DataFrame:
    runs = c.runs
    return runs[runs["protocol"] == "he2015-imagenet"] if not runs.empty else runs


def table2(c: RunSet) -> Table:
    models = ["plain18", "resnet18-A", "plain34", "resnet34-A"]
    return (_imagenet(c, models, "plain18/34 and resnet18-A/34-A"),
            names.TABLE_TITLES["table2"] + ": top-1 error, 10-crop testing on ImageNet val. "
            + f"{interval_note()}. " + describe(finished(_imagenet_runs(c)), "test error (top-1)"))


def table3(c: RunSet) -> Table:
    models = ["plain34", "resnet34-A", "resnet34-B", "resnet34-C", "resnet50-B", "resnet101-B",
              "resnet152-B"]
    return (_imagenet(c, models, "resnet34-A/B/C or resnet50-152-B"),
            names.TABLE_TITLES["table3"] + ": top-1 and top-5 error, 10-crop testing. "
            + f"{interval_note()}. "
            + describe(finished(_imagenet_runs(c)), "test error (top-1, top-5)"))


def _he2016(c: RunSet, rows: dict, which: str) -> Table:
    """He et al. (2016)'s Table 1 or 2: one row per variant, in the paper's order, where
    the run's condition is the paper's (he2016-cifar on CIFAR-10 at full length); each
    ablation row tested against its depth's original (Holm over the table)."""
    runs = c.runs
    runs = runs[runs["model"].isin(list(rows))] if not runs.empty else runs
    t = conditions(runs)
    if t.empty:
        raise MissingRuns(f"needs finished runs of {', '.join(list(rows)[:3])} ...")
    is_2016 = t["paper"].map(lambda p: p is not None and p.source.startswith(
        "He et al. (2016)"))
    dropped = t[~is_2016]
    t = t[is_2016].copy()
    if t.empty:
        raise MissingRuns("needs the table's variants unchanged, on CIFAR-10 under "
                          "he2016-cifar at full length")
    order = {m: i for i, m in enumerate(rows)}
    t = t.assign(_order=t["model"].map(order)).sort_values("_order", kind="stable")
    t["paper"] = [he2016_number(m, rows) for m in t["model"]]  # this table's row
    originals = {d: t[t["model"] == m].index[0] for d, m in HE2016_ORIGINALS.items()
                 if (t["model"] == m).any()}
    pairs = [(i, originals.get(d)) for i, d in zip(t.index, t["depth"])]
    tested = [(i, o) for i, o in pairs if o is not None and o != i]

    def ranked(i):  # the statistic the table shows: a diverged run is the worst of all
        return t.at[i, "values"] + [float("inf")] * t.at[i, "counts"].diverged

    tests = dict(zip([i for i, _ in tested],
                     pair_tests([(ranked(i), ranked(o)) for i, o in tested], rank=True)))
    row_tests = [tests.get(i) for i in t.index]
    head = pd.DataFrame({"case (the paper's row)": [rows[m][0] for m in t["model"]],
                         "model": t["label"], "layers": t["depth"],
                         "params": t["params"].map(lambda v: f"{int(v):,}"),
                         "trained on": t["trained_on"].fillna("")}, index=t.index)
    against = [f"original ({HE2016_ORIGINALS[d]})" if d in HE2016_ORIGINALS else ""
               for d in t["depth"]]
    out = pd.concat([head, beside_paper(t),
                     pair_columns(row_tests, against, "ablation", "original", index=t.index,
                                  rank=True)], axis=1).reset_index(drop=True)
    missing = [m for m in rows if m not in set(t["model"])]
    notes = ""
    if len(dropped):
        notes += " Not the paper's condition, not shown: " + "; ".join(
            f"{lab}: {why or 'another protocol'}" for lab, why in
            zip(dropped["label"], dropped["paper_why_not"])) + "."
    if missing:
        notes += f" No runs yet of: {', '.join(missing)}."
    return out, (
        f"{names.TABLE_TITLES[which]}. The paper's numbers are medians of 5 runs "
        f"({HE2016_KIND_SOURCE}), ours medians of our n beside them; but its 'original' "
        "ResNet-110 row, 6.61, is He et al. (2015)'s mean of 5 runs (6.61±0.16, its Table "
        "6), set beside our mean. 'fail' = test error above "
        f"{FAIL_ABOVE:g}%, He et al. (2016)'s word (Table 1: \"We report 'fail' when the "
        "test error is higher than 20%\"). Each ablation row is tested against its "
        f"depth's original by the statistic the table shows: {holm_caption(row_tests)}. "
        f"{interval_note()}. {pair_note(rank=True)} {paper_note(t)} "
        f"{describe(finished(runs), 'test error')}{notes}")


def he2016_table1(c: RunSet) -> Table:
    return _he2016(c, HE2016_TABLE1, "he2016_table1")


def he2016_table2(c: RunSet) -> Table:
    return _he2016(c, HE2016_TABLE2, "he2016_table2")


TABLE_BUILDERS: dict[str, Callable[[RunSet], Table]] = {
    "table1": table1, "table2": table2, "table3": table3, "table6": table6,
    "he2016_table1": he2016_table1, "he2016_table2": he2016_table2,
}
assert list(TABLE_BUILDERS) == list(names.TABLE_TITLES), "analysis.names lists every table"
