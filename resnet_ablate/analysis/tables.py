"""The paper's tables, ours beside the paper's numbers: Table 1 (complexity), and analogs of
Table 6 (CIFAR error by depth) and Tables 2/3 (ImageNet top-1/top-5) from a user's runs."""
from __future__ import annotations

import math

import pandas as pd

from ..reference import CIFAR_TABLE6, IMAGENET_ERRORS, IMAGENET_TABLE1_FLOPS
from ..registry import get_spec
from .collect import Collected
from .figures import MissingRuns, label
from .stats import by_depth


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f}" + ("" if std != std else f" ± {std:.2f}")


def _num(v, fmt="{:.2f}") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def table1(_: Collected | None = None) -> pd.DataFrame:
    """Table 1: ImageNet architectures, our params and conv+fc MACs vs the paper's FLOPs."""
    from ..counting import complexity

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
    return pd.DataFrame(rows)


def table6(c: Collected) -> pd.DataFrame:
    """Table 6 analog: test error by depth, mean ± std over seeds (and best), ours beside the
    paper's CIFAR-10 numbers (shown only for CIFAR-10 runs)."""
    t = by_depth(c.runs)
    if t.empty:
        raise MissingRuns("needs finished runs")
    t = t[t["variant"].isin(["plain", "resnet-A"])]
    if t.empty:
        raise MissingRuns("needs plain or option-A residual runs")
    rows = []
    for _, r in t.iterrows():
        paper = CIFAR_TABLE6.get(int(r["depth"])) if r["dataset"] == "cifar10" and \
            r["variant"] == "resnet-A" else None
        rows.append({"dataset": r["dataset"], "model": label(r["family"], int(r["depth"]),
                                                             r["shortcut"]),
                     "layers": int(r["depth"]), "params": f"{int(r['params']):,}",
                     "params (paper)": paper["params_text"] if paper else "",
                     "runs": int(r["n"]), "test err % (mean ± std)": _pm(r["mean"], r["std"]),
                     "best": f"{r['best']:.2f}",
                     "paper": _num(paper["test_err"]) if paper else ""})
    return pd.DataFrame(rows)


def _imagenet(c: Collected, names: list[str], what: str) -> pd.DataFrame:
    runs = c.runs[(c.runs["status"] == "finished") & (c.runs["protocol"] == "he2015-imagenet")]
    rows = []
    for name in names:
        spec = get_spec(name)
        family, depth, shortcut = spec.family, spec.depth, spec.shortcut or "-"
        mine = runs[(runs["family"] == family) & (runs["depth"] == depth)
                    & (runs["shortcut"] == shortcut)]
        paper = IMAGENET_ERRORS[name]
        top1, top5 = mine["final_test_err"].astype(float), mine["final_test_top5_err"]
        rows.append({"model": label(family, depth, shortcut), "runs": len(mine),
                     "top-1 err %": _pm(top1.mean(), top1.std()) if len(mine) else "",
                     "top-1 (paper)": _num(paper["top1"]),
                     "top-5 err %": _num(pd.to_numeric(top5, errors="coerce").mean())
                     if len(mine) else "",
                     "top-5 (paper)": _num(paper["top5"])})
    df = pd.DataFrame(rows)
    if not (df["runs"] > 0).any():
        raise MissingRuns(f"needs ImageNet runs (protocol he2015-imagenet) of {what}")
    return df


def table2(c: Collected) -> pd.DataFrame:
    """Table 2 analog: plain vs ResNet (option A), 18 and 34 layers, top-1 error."""
    return _imagenet(c, ["plain18", "resnet18-A", "plain34", "resnet34-A"],
                     "plain18/34 and resnet18-A/34-A")


def table3(c: Collected) -> pd.DataFrame:
    """Table 3 analog: ResNet-34 A/B/C and ResNet-50/101/152 (B), top-1 and top-5 error."""
    return _imagenet(c, ["plain34", "resnet34-A", "resnet34-B", "resnet34-C", "resnet50-B",
                         "resnet101-B", "resnet152-B"], "resnet34-A/B/C or resnet50-152-B")


TABLES = {"table1": table1, "table6": table6, "table2": table2, "table3": table3}
