"""Published numbers the project reproduces and compares against, each with its source,
and the one function that decides whether one of them may be set beside a run
(`paper_match`): only when the run's condition is the paper's."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

HE2015 = 'He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", arXiv:1512.03385'

# Table 6 (CIFAR-10): params as printed, and test error %. The paper's ResNets use option A.
CIFAR_TABLE6 = {
    20: {"params": 0.27e6, "params_text": "0.27M", "test_err": 8.75},
    32: {"params": 0.46e6, "params_text": "0.46M", "test_err": 7.51},
    44: {"params": 0.66e6, "params_text": "0.66M", "test_err": 7.17},
    56: {"params": 0.85e6, "params_text": "0.85M", "test_err": 6.97},
    # ResNet-110: best of 5 runs; mean +- std 6.61 +- 0.16.
    110: {"params": 1.7e6, "params_text": "1.7M", "test_err": 6.43, "test_err_mean": 6.61,
          "test_err_std": 0.16, "runs": 5},
    1202: {"params": 19.4e6, "params_text": "19.4M", "test_err": 7.93},
}

# How the papers' CIFAR numbers were computed over runs, in their words.
# He et al. (2015), Table 6 caption: "For ResNet-110, we run it 5 times and show 'best
# (mean±std)'"; its other rows are one number each, over how many runs not stated.
# He et al. (2016), Section 3.1: "Throughout this paper we report the median accuracy of 5
# runs for each architecture on CIFAR, reducing the impacts of random variations."
SINGLE = "single"  # one number, its number of runs not stated
MEDIAN = "median"  # the median of n runs
BEST_MEAN_STD = "best (mean ± std)"  # the best of n runs, and their mean ± std
MEAN_STD = "mean ± std"  # the mean of n runs (± their std)
KINDS = (SINGLE, MEDIAN, BEST_MEAN_STD, MEAN_STD)
HE2016_RUNS = 5
HE2016_KIND_SOURCE = ('He et al. (2016), Section 3.1: "Throughout this paper we report the '
                      'median accuracy of 5 runs for each architecture on CIFAR"')
FAIL_ABOVE = 20.0  # He et al. (2016), Table 1: "We report 'fail' when the test error is
# higher than 20%"; one constant for every table, figure and finding.

# He et al. (2016), Table 1 (CIFAR-10 test error %, ResNet-110, medians of 5 runs): the
# shortcut ablations, in the paper's order; None = the paper's "fail". Keyed by our variant
# names; the "original" is He et al. (2015)'s option-A ResNet-110, and its 6.61 is that
# paper's mean of 5 runs (Table 6: "6.43 (6.61±0.16)"), not a median (he2016_number). Two of the paper's rows
# are several of ours: "constant scaling 0 / 1" is, in the paper's words, "a plain net"
# (plain110), and "exclusive gating, init b_g = 0 to -5" is six initialisations, each of
# which the paper reports as "fail".
HE2016_TABLE1 = {
    "resnet110-A": ("original (Fig. 2a)", 6.61),
    "plain110": ("constant scaling: shortcut 0, F 1 (Fig. 2b): a plain net", None),
    "resnet110-scale-sc": ("constant scaling: shortcut 0.5, F 1 (Fig. 2b)", None),
    "resnet110-scale-both": ("constant scaling: shortcut 0.5, F 0.5 (Fig. 2b): frozen gating",
                             12.35),
    **{f"resnet110-gate-excl-b{b}": (f"exclusive gating, b_g = {-b} (Fig. 2c; the paper's "
                                     f"row: init b_g = 0 to -5)", None) for b in range(6)},
    "resnet110-gate-excl": ("exclusive gating, b_g = -6 (Fig. 2c)", 8.70),
    "resnet110-gate-excl-b7": ("exclusive gating, b_g = -7 (Fig. 2c)", 9.81),
    "resnet110-gate-sc": ("shortcut-only gating, b_g = 0 (Fig. 2d)", 12.86),
    "resnet110-gate-sc-b6": ("shortcut-only gating, b_g = -6 (Fig. 2d)", 6.91),
    "resnet110-C": ("1x1 conv shortcut (Fig. 2e)", 12.22),
    "resnet110-dropout-sc": ("dropout shortcut, 0.5 (Fig. 2f)", None),
}
# He et al. (2016), Table 2 (CIFAR-10 test error %, medians of 5 runs): where BN and ReLU
# sit, ResNet-110 then ResNet-164, in the paper's order. The ResNet-110 rows use option A
# where dimensions increase, as the paper's 6.61% baseline (He et al. 2015's option-A net;
# fb.resnet.torch's CIFAR default); the ResNet-164 rows use projections (option B), as the
# paper states for its bottleneck nets.
HE2016_TABLE2 = {
    "resnet110-A": ("original Residual Unit (Fig. 4a)", 6.61),
    "resnet110-bn-after-add": ("BN after addition (Fig. 4b)", 8.17),
    "resnet110-relu-before-add": ("ReLU before addition (Fig. 4c)", 7.84),
    "preresnet110-relu-only": ("ReLU-only pre-activation (Fig. 4d)", 6.71),
    "preresnet110-A": ("full pre-activation (Fig. 4e)", 6.37),
    "resnet164-B": ("original Residual Unit (Fig. 4a)", 5.93),
    "resnet164-bn-after-add": ("BN after addition (Fig. 4b)", 6.50),
    "resnet164-relu-before-add": ("ReLU before addition (Fig. 4c)", 6.14),
    "preresnet164-relu-only": ("ReLU-only pre-activation (Fig. 4d)", 5.91),
    "preresnet164": ("full pre-activation (Fig. 4e)", 5.46),
}
# Each table's "original" row, the one every ablation row is tested against (per depth).
HE2016_ORIGINALS = {110: "resnet110-A", 164: "resnet164-B"}
# The 2016 tables' rows that quote He et al. (2015) rather than report a median of 5.
HE2016_FROM_2015 = {"resnet110-A"}

# Table 1 (ImageNet): FLOPs (multiply-adds) of each depth at 224x224.
IMAGENET_TABLE1_FLOPS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}

# Tables 2 and 3 (ImageNet validation, 10-crop testing): top-1 / top-5 error %.
IMAGENET_ERRORS = {
    "plain18": {"top1": 27.94, "top5": None, "table": 2},
    "resnet18-A": {"top1": 27.88, "top5": None, "table": 2},
    "plain34": {"top1": 28.54, "top5": 10.02, "table": 3},
    "resnet34-A": {"top1": 25.03, "top5": 7.76, "table": 3},
    "resnet34-B": {"top1": 24.52, "top5": 7.46, "table": 3},
    "resnet34-C": {"top1": 24.19, "top5": 7.40, "table": 3},
    "resnet50-B": {"top1": 22.85, "top5": 6.71, "table": 3},
    "resnet101-B": {"top1": 21.75, "top5": 6.05, "table": 3},
    "resnet152-B": {"top1": 21.43, "top5": 5.71, "table": 3},
}

def paper_complexity(spec) -> dict:
    """The paper's published params / FLOPs for a spec's architecture, where it gives them.

    Table 6 lists the option-A ResNets (plain nets share their count); Table 1 gives FLOPs
    per ImageNet depth. Variants changed by overrides get nothing: the paper has no number.
    """
    from .variants.registry import get_spec

    if not re.fullmatch(r"plain\d+|resnet\d+-[ABC]", spec.name):
        return {}  # not one of the 2015 paper's nets
    try:
        if get_spec(spec.name) != spec:
            return {}
    except ValueError:
        return {}
    if spec.stem == "cifar" and spec.shortcut in (None, "A") and spec.depth in CIFAR_TABLE6:
        row = CIFAR_TABLE6[spec.depth]
        return {"paper_params": row["params"], "paper_params_text": row["params_text"],
                "paper_source": f"{HE2015}, Table 6"}
    # Table 1's 18/34-layer nets are plain or option A (same FLOPs); 50+ use option B.
    paper_options = (None, "A") if spec.block == "basic" else ("B",)
    if (spec.stem == "imagenet" and spec.depth in IMAGENET_TABLE1_FLOPS
            and spec.shortcut in paper_options):
        return {"paper_flops": IMAGENET_TABLE1_FLOPS[spec.depth],
                "paper_source": f"{HE2015}, Table 1"}
    return {}


@dataclass(frozen=True)
class PaperNumber:
    """What the paper reports for a run's architecture and protocol (test error %), and how
    it was computed over its runs (`kind`, over `n` runs): a single number, the median of n
    (He et al. 2016), or the best of n with their mean ± std (He et al. 2015's ResNet-110).
    Ours is computed the same way beside it (analysis.stats)."""
    source: str  # e.g. "He et al. (2015), Table 6"
    kind: str = SINGLE  # one of KINDS
    n: int | None = None  # the runs behind it; None: not stated
    reported: float | None = None  # the single number, or the median
    best: float | None = None  # the best of n runs
    mean: float | None = None  # and their mean +- std
    std: float | None = None
    top5: float | None = None
    fail: bool = False  # the paper's "fail": test error above FAIL_ABOVE
    case: str = ""  # the row's name in the paper's table
    fail_rule: bool = False  # its table writes "fail" above FAIL_ABOVE (He et al. 2016's)
    quotes: str = ""  # the paper the number comes from, when the table quotes another's

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")

    @property
    def headline(self) -> float | None:
        """The number to set a mean beside: the paper's mean if it gives one, else its
        single reported number (never its best; a median only as a median)."""
        return self.mean if self.mean is not None else self.reported

    def format(self, digits: int = 2) -> str:
        """"8.70 (median of 5)", "6.43 best of 5 (6.61 ± 0.16)", "6.61 (mean of 5, ± 0.16;
        He et al. 2015, Table 6)", "8.75 (single number)", "fail (> 20%, median of 5)"."""
        of = f" of {self.n}" if self.n else ""
        if self.fail:
            return f"fail (> {FAIL_ABOVE:g}%{', ' + self.kind + of if self.kind != SINGLE else ''})"
        if self.kind == BEST_MEAN_STD:
            return (f"{self.best:.{digits}f} best{of} ({self.mean:.{digits}f} ± "
                    f"{self.std:.{digits}f})")
        if self.kind == MEAN_STD:
            source = f"; {self.quotes}" if self.quotes else ""
            return f"{self.mean:.{digits}f} (mean{of}, ± {self.std:.{digits}f}{source})"
        if self.kind == MEDIAN:
            return f"{self.reported:.{digits}f} (median{of})"
        return f"{self.reported:.{digits}f} (single number)"


@dataclass(frozen=True)
class PaperCondition:
    """What a paper's reported models ran under: a run's number is set beside the paper's
    only when its condition equals this (the protocol at the paper's values, the real data
    set, its class count, the training-set size of the reported models, full length)."""
    protocol: str  # the preset at the paper's values
    dataset: str
    num_classes: int
    train_images: int  # what the reported models trained on
    test_images: int


# He et al. (2015), Section 4.2: "trained on the training set and evaluated on the test
# set" (50k / 10k); (2016) the same, with its warm-up. Section 3.4: ImageNet's 1.28M
# training images (1,281,167), 10,000 of them held out here for the plateau (the protocol's
# val_size), evaluated on the 50k validation images.
PAPER_CONDITIONS = {
    "he2015-cifar": PaperCondition("he2015-cifar", "cifar10", 10, 50_000, 10_000),
    "he2016-cifar": PaperCondition("he2016-cifar", "cifar10", 10, 50_000, 10_000),
    "he2015-imagenet": PaperCondition("he2015-imagenet", "imagefolder", 1000,
                                      1_281_167 - 10_000, 50_000),
}


@dataclass(frozen=True)
class Match:
    """A run (or condition) against the papers: the number to set beside it, or why not."""
    paper: PaperNumber | None
    why_not: str = ""  # "" when matched, else one line: "paper: n/a — ..."

    def __bool__(self) -> bool:
        return self.paper is not None


def _value(row: Mapping[str, Any], column: str) -> Any:
    """A row's value as the record has it (a table's JSON text parsed; a plain net's
    shortcut "-" is None)."""
    value = row.get(column)
    if column == "shortcut" and value == "-":
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def he2016_number(model: str, table: dict) -> PaperNumber:
    """A row of He et al. (2016)'s Table 1 or 2: the median of 5 runs, or "fail"; its
    "original" ResNet-110 row (6.61) is He et al. (2015)'s mean of 5 (6.61 ± 0.16), and is
    set beside our mean."""
    case, err = table[model]
    which = 1 if table is HE2016_TABLE1 else 2
    if model in HE2016_FROM_2015:
        t = CIFAR_TABLE6[110]
        return PaperNumber(f"He et al. (2016), Table {which}", kind=MEAN_STD, n=t["runs"],
                           reported=err, mean=t["test_err_mean"], std=t["test_err_std"],
                           case=case, fail_rule=True, quotes="He et al. 2015, Table 6")
    return PaperNumber(f"He et al. (2016), Table {which}", kind=MEDIAN, n=HE2016_RUNS,
                       reported=err, fail=err is None, case=case, fail_rule=True)


def _number_for(model: str, protocol: str) -> PaperNumber | None:
    """The paper's number for a registered variant under a paper protocol, if any."""
    if protocol == "he2016-cifar":
        for table in (HE2016_TABLE1, HE2016_TABLE2):
            if model in table:
                return he2016_number(model, table)
    if protocol == "he2015-cifar":
        m = re.fullmatch(r"resnet(\d+)-A", model)
        if m and int(m.group(1)) in CIFAR_TABLE6:
            t = CIFAR_TABLE6[int(m.group(1))]
            if "test_err_mean" in t:  # "best (mean±std)" of 5 runs
                return PaperNumber("He et al. (2015), Table 6", kind=BEST_MEAN_STD,
                                   n=t["runs"], best=t["test_err"], mean=t["test_err_mean"],
                                   std=t["test_err_std"], case=f"ResNet-{m.group(1)}")
            return PaperNumber("He et al. (2015), Table 6", reported=t["test_err"],
                               case=f"ResNet-{m.group(1)}")
    if protocol == "he2015-imagenet" and model in IMAGENET_ERRORS:
        e = IMAGENET_ERRORS[model]
        return PaperNumber(f"He et al. (2015), Table {e['table']} (10-crop)",
                           reported=e["top1"], top5=e["top5"], case=model)
    return None


def _known(value: Any) -> Any:
    """None for a value a table does not know (None, NaN); whole floats as int."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.item() if hasattr(value, "item") else value


def _numerics_not_the_papers(row: Mapping[str, Any], protocol: Any) -> str:
    """Why a run's arithmetic is not the paper's, or "": fp32 (no bf16 autocast), and BN
    over the paper's per-GPU batch (protocol.bn_images(): 64 on CIFAR, 32 on ImageNet) in
    each process, as recorded (run.bn_batch) or as its factors give it."""
    amp = _known(_value(row, "run.amp"))
    if amp not in (None, "off"):
        return f"{amp} autocast, the paper's fp32"
    want = protocol.bn_images()
    got = _known(_value(row, "run.bn_batch"))
    if got is None:  # not recorded: from the factors, as Protocol.bn_images does
        bn = _known(_value(row, "protocol_fields.bn_batch"))
        if not isinstance(bn, int):  # a row without it: as for every protocol field above,
            return ""  # only what a row has is judged (a null there already differs)
        batch = _known(_value(row, "protocol_fields.batch_size"))
        batch = batch if isinstance(batch, int) else protocol.batch_size
        world = _known(_value(row, "run.world_size")) or 1
        per_process = batch // world
        got = bn if 0 < bn < per_process else per_process
    if got != want:
        return f"BN over {got} images a process, the paper's {want}"
    return ""


def paper_match(row: Mapping[str, Any]) -> Match:
    """Whether the paper has a number for this run's condition (a collected run row: the
    record's columns), and which; else why not, in one line. The network must be the
    registered variant unchanged (but for classes and channels, which follow the data), and
    every factor of the rest must be the paper's."""
    from .run.protocol import get_protocol
    from .variants.paper import paper_factors

    model = row.get("model")
    spec = paper_factors().get(model) if isinstance(model, str) else None
    if spec is None:  # (the papers' variants, known without building a network)
        return Match(None, f"paper: n/a — {model} is none of the papers' variants")
    changed = [k for k, v in spec.items() if k not in ("name", "num_classes", "in_chans")
               and k in row and _value(row, k) != v]
    if changed:
        return Match(None, f"paper: n/a — {', '.join(changed)} changed from {model}")
    candidates = []  # the papers' protocols under which they report this model
    for name in PAPER_CONDITIONS:
        number = _number_for(model, name)
        if number is not None:
            fields = get_protocol(name).fields()
            differ = [f"{k}={_value(row, f'protocol_fields.{k}')}" for k, v in fields.items()
                      if f"protocol_fields.{k}" in row
                      and _value(row, f"protocol_fields.{k}") != v]
            candidates.append((len(differ), name, number, differ))
    if not candidates:
        return Match(None, f"paper: n/a — the papers report no number for {model}")
    _, name, number, differ = min(candidates, key=lambda c: c[0])
    want = PAPER_CONDITIONS[name]
    if differ:
        what = ", ".join(differ[:4]) + (" ..." if len(differ) > 4 else "")
        return Match(None, f"paper: n/a — {what} differ{'s' if len(differ) == 1 else ''} "
                           f"from {want.protocol}")
    numerics = _numerics_not_the_papers(row, get_protocol(name))
    if numerics:
        return Match(None, f"paper: n/a — {numerics}")
    if row.get("dataset") != want.dataset:
        return Match(None, f"paper: n/a — data set {row.get('dataset')}, not "
                           f"{want.dataset}")
    sizes = _value(row, "data.split_sizes") or {}
    facts = [(row.get("num_classes"), want.num_classes, "classes"),
             (sizes.get("train") if isinstance(sizes, dict) else None, want.train_images,
              "training images"),
             (sizes.get("test") if isinstance(sizes, dict) else None, want.test_images,
              "test images")]
    for got, expected, what in facts:
        if got is not None and got != expected:
            return Match(None, f"paper: n/a — {got:,} {what}, the paper's "
                               f"{expected:,}")
    return Match(number)


def paper_number(row: Mapping[str, Any]) -> PaperNumber | None:
    """The paper's number for a run row when its condition is the paper's (paper_match)."""
    return paper_match(row).paper
