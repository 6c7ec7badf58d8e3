"""`models` and `complexity`: the registry and what each variant costs."""
from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from ..formatting import FORMATS, human, render


def _names(patterns: list[str]) -> list[str]:
    """The variants the names and patterns match, in the order given, each once; a pattern
    that matches nothing is a one-line error naming the closest."""
    from ..errors import closest
    from ..variants.plugins import hint as plugin_hint
    from ..variants.registry import list_models, normalise

    out: dict[str, None] = {}
    for pattern in patterns or ["*"]:
        names = list_models(pattern)
        if not names:
            close = closest(normalise(pattern.replace("*", "")),
                            [normalise(n) for n in list_models()])
            lookup = {normalise(n): n for n in list_models()}
            hint = f"; closest: {', '.join(lookup[c] for c in close)}" if close else ""
            where = plugin_hint(pattern) if "*" not in pattern and "?" not in pattern else ""
            raise InputError(f"no variant matches {pattern!r}{hint} (patterns use * and ?"
                             + (f"; {where}" if where else "") + ")")
        out.update(dict.fromkeys(names))
    return list(out)


def _add_format(p: argparse.ArgumentParser, default: str = "table") -> None:
    p.add_argument("--format", choices=FORMATS, default=default,
                   help=f"output format (default {default})")


def _add_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugins", default="", metavar="MOD[,MOD]",
                   help="modules or .py files that register variants (also "
                        "RESNET_ABLATE_PLUGINS and installed entry points)")


def add_models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="*", default=["*"], metavar="NAME",
                   help="names or fnmatch patterns, e.g. resnet56-A 'plain*' (default: all)")
    _add_format(p)
    _add_plugins(p)


def _options(opts: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in opts.items())


def run_models(args: argparse.Namespace) -> int:
    from ..variants.plugins import load, split
    from ..variants.registry import get_spec

    load(split(args.plugins))
    rows = []
    for name in _names(args.patterns):
        f = get_spec(name).factors()
        rows.append({"model": f["name"], "family": f["family"], "depth": f["depth"],
                     "block": f["block"], "shortcut": f["shortcut"] or "-",
                     "stem": f["stem"], "layers": "/".join(map(str, f["layers"])),
                     "widths": "/".join(map(str, f["widths"])),
                     "num_classes": f["num_classes"], "stride_in": f["stride_in"],
                     "options": _options({**f["options"], **f["shortcut_options"],
                                          **f["stem_options"]})})
    sys.stdout.write(render(rows, args.format))
    return 0


def add_complexity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="*", default=["*"], metavar="NAME",
                   help="names or fnmatch patterns, e.g. resnet56-A 'plain*' (default: all)")
    _add_format(p)
    p.add_argument("--input-size", type=int, default=None, metavar="N",
                   help="square input side (default: 32 for CIFAR variants, 224 for ImageNet)")
    p.add_argument("--no-fvcore", action="store_true",
                   help="skip fvcore's FLOP count (its jit trace is the slow part)")
    p.add_argument("--per-stage", action="store_true",
                   help="one row per stage (stem, stage1..N, head) of each variant")
    _add_plugins(p)


def run_complexity(args: argparse.Namespace) -> int:
    from ..models.counting import complexity_table, stage_table
    from ..variants.plugins import load, split

    load(split(args.plugins))
    if args.input_size is not None and not 1 <= args.input_size <= 4096:
        raise InputError(f"--input-size must be an integer in [1, 4096]; got {args.input_size}")
    names = _names(args.patterns)
    if args.per_stage:
        rows = stage_table(names, input_size=args.input_size, with_fvcore=not args.no_fvcore)
        if args.format in ("table", "markdown", "latex"):
            rows = [{k: (f"{v:,}" if isinstance(v, int) and k != "depth" else v)
                     for k, v in r.items()} for r in rows]
        sys.stdout.write(render(rows, args.format))
        return 0
    df = complexity_table(names, input_size=args.input_size, with_fvcore=not args.no_fvcore,
                          progress=True)
    if args.format in ("table", "markdown", "latex"):
        df = _readable(df)
    sys.stdout.write(render(df, args.format))
    if args.format == "table":
        print("\nMACs = conv + fc multiply-accumulates (the paper's \"FLOPs\"); fvcore adds "
              "BN and pooling. 'ours vs paper' compares params with Table 6 (CIFAR, option A) "
              "or MACs with Table 1's FLOPs (ImageNet; plain/A at 18/34, B from 50).")
    return 0


def _readable(df):
    out = df.copy()
    for col in ("params", "macs", "fvcore_flops", "activations"):
        out[col] = out[col].map(lambda v: "" if v is None or v != v else f"{int(v):,}")
    out["paper_params"] = df["paper_params_text"].fillna("")
    out = out.drop(columns=["paper_params_text"])
    out["paper_flops"] = df["paper_flops"].map(human)
    out["vs_paper_pct"] = [
        "" if v is None or v != v else f"{v:+.1f}% ({what})"
        for v, what in zip(df["vs_paper_pct"], df["vs_paper_of"])]
    out = out.drop(columns=["vs_paper_of"])
    return out.rename(columns={"paper_params": "params (paper)", "paper_flops": "FLOPs (paper)",
                               "vs_paper_pct": "ours vs paper (params or MACs vs FLOPs)",
                               "fvcore_flops": "fvcore FLOPs", "macs": "MACs"})


COMMANDS = [
    ("models", "list variants and their factors", add_models_args, run_models),
    ("complexity", "params, MACs and fvcore FLOPs of variants, beside the paper's",
     add_complexity_args, run_complexity),
]
