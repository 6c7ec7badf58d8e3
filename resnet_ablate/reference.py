"""Published numbers the project reproduces and compares against, each with its source,
and the one lookup of which of them applies to a run (`paper_number`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

HE2015 = 'He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", arXiv:1512.03385'
HE2016 = ('He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", '
          'arXiv:1603.05027')
TORCHVISION = "torchvision.models resnet18..152 (option B, stride in the 3x3: v1.5)"
MEASURED = "measured with torch on the variants of this package; pycls golden values agree"

# Table 6 (CIFAR-10): params as printed, and test error %. The paper's ResNets use option A.
CIFAR_TABLE6 = {
    20: {"params": 0.27e6, "params_text": "0.27M", "test_err": 8.75},
    32: {"params": 0.46e6, "params_text": "0.46M", "test_err": 7.51},
    44: {"params": 0.66e6, "params_text": "0.66M", "test_err": 7.17},
    56: {"params": 0.85e6, "params_text": "0.85M", "test_err": 6.97},
    # ResNet-110: best of 5 runs; mean +- std 6.61 +- 0.16.
    110: {"params": 1.7e6, "params_text": "1.7M", "test_err": 6.43, "test_err_mean": 6.61,
          "test_err_std": 0.16},
    1202: {"params": 19.4e6, "params_text": "19.4M", "test_err": 7.93},
}

# He et al. (2016), Table 1 (CIFAR-10 test error %, ResNet-110): the shortcut ablations.
# "We report 'fail' when the test error is higher than 20%" (None here). Keyed by our
# variant names; "original" is He et al. (2015)'s option-A ResNet-110 (its mean of 5 runs).
HE2016_TABLE1 = {
    "resnet110-A": ("original (Fig. 2a)", 6.61),
    "resnet110-scale-sc": ("constant scaling: shortcut 0.5, F 1 (Fig. 2b)", None),
    "resnet110-scale-both": ("constant scaling: shortcut 0.5, F 0.5 (Fig. 2b)", 12.35),
    "resnet110-gate-excl": ("exclusive gating, b_g = -6 (Fig. 2c)", 8.70),
    "resnet110-gate-excl-b7": ("exclusive gating, b_g = -7 (Fig. 2c)", 9.81),
    "resnet110-gate-sc": ("shortcut-only gating, b_g = 0 (Fig. 2d)", 12.86),
    "resnet110-gate-sc-b6": ("shortcut-only gating, b_g = -6 (Fig. 2d)", 6.91),
    "resnet110-C": ("1x1 conv shortcut (Fig. 2e)", 12.22),
    "resnet110-dropout-sc": ("dropout shortcut, 0.5 (Fig. 2f)", None),
}
# He et al. (2016), Table 2 (CIFAR-10 test error %): where BN and ReLU sit, ResNet-110 and
# ResNet-164. Our rows all use option B where dimensions increase (see registry).
HE2016_TABLE2 = {
    "resnet110-B": ("original (Fig. 4a)", 6.61), "resnet164-B": ("original (Fig. 4a)", 5.93),
    "resnet110-bn-after-add": ("BN after addition (Fig. 4b)", 8.17),
    "resnet164-bn-after-add": ("BN after addition (Fig. 4b)", 6.50),
    "resnet110-relu-before-add": ("ReLU before addition (Fig. 4c)", 7.84),
    "resnet164-relu-before-add": ("ReLU before addition (Fig. 4c)", 6.14),
    "preresnet110-relu-only": ("ReLU-only pre-activation (Fig. 4d)", 6.71),
    "preresnet164-relu-only": ("ReLU-only pre-activation (Fig. 4d)", 5.91),
    "preresnet110": ("full pre-activation (Fig. 4e)", 6.37),
    "preresnet164": ("full pre-activation (Fig. 4e)", 5.46),
}
FAIL_ABOVE = 20.0  # He et al. (2016), Table 1: "fail" = test error higher than 20%

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

# Golden counts (batch 1; 32x32 CIFAR, 224x224 ImageNet): params and conv+fc MACs.
# CIFAR: plain nets have the counts of option A.
CIFAR_COUNTS = {
    20: {"A": (269_722, 40_551_040), "B": (272_474, 40_813_184), "C": (283_962, 42_648_192)},
    32: {"A": (464_154, 68_862_592), "B": (466_906, 69_124_736), "C": (489_594, 72_532_608)},
    44: {"A": (658_586, 97_174_144), "B": (661_338, 97_436_288), "C": (695_226, 102_417_024)},
    56: {"A": (853_018, 125_485_696), "B": (855_770, 125_747_840),
         "C": (900_858, 132_301_440)},
    110: {"A": (1_727_962, 252_887_680), "B": (1_730_714, 253_149_824),
          "C": (1_826_202, 266_781_312)},
    1202: {"A": (19_421_274, 2_829_238_912), "B": (19_424_026, 2_829_501_056),
           "C": (20_538_714, 2_986_263_168)},
}
# torchvision's resnetD (= our resnetD-B with stride_in="3x3"): params, conv+fc MACs.
TORCHVISION_COUNTS = {
    18: (11_689_512, 1_814_073_344),
    34: (21_797_672, 3_663_761_408),
    50: (25_557_032, 4_089_184_256),
    101: (44_549_160, 7_801_405_440),
    152: (60_192_808, 11_513_626_624),
}
# Paper placement (stride in the first 1x1, "v1") conv+fc MACs; match Table 1's 3.8/7.6/11.3.
IMAGENET_V1_MACS = {50: 3_857_973_248, 101: 7_570_194_432, 152: 11_282_415_616}
IMAGENET_SHORTCUT_PARAMS = {
    18: {"A": 11_515_688, "B": 11_689_512, "C": 12_043_816},
    34: {"A": 21_623_848, "B": 21_797_672, "C": 22_716_840},
}


def paper_complexity(spec) -> dict:
    """The paper's published params / FLOPs for a spec's architecture, where it gives them.

    Table 6 lists the option-A ResNets (plain nets share their count); Table 1 gives FLOPs
    per ImageNet depth. Variants changed by overrides get nothing: the paper has no number.
    """
    from .registry import get_spec

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
    """What the paper reports for a run's architecture and protocol (test error %)."""
    source: str  # e.g. "He et al. (2015), Table 6"
    reported: float | None = None  # a single number, kind unstated
    best: float | None = None  # the best of several runs
    mean: float | None = None  # and their mean +- std
    std: float | None = None
    top5: float | None = None
    fail: bool = False  # the paper's "fail": test error above FAIL_ABOVE
    case: str = ""  # the row's name in the paper's table

    @property
    def headline(self) -> float | None:
        """The number to set a mean beside: the paper's mean if it gives one, else its
        single reported number (never its best)."""
        return self.mean if self.mean is not None else self.reported


def _factors_match(row: Mapping[str, Any], name: str) -> bool:
    """The row's network is the registered variant `name`, unchanged (but for the number
    of classes and input channels, which follow the data)."""
    from .registry import get_spec

    spec = get_spec(name).factors()
    for key, value in spec.items():
        if key in ("name", "num_classes", "in_chans"):
            continue
        col = f"model.{key}"
        if col in row:
            import json

            got = row[col]
            want = json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(
                value, (list, dict)) else value
            if got != want and not (got is None and value is None):
                return False
    return True


def paper_number(row: Mapping[str, Any]) -> PaperNumber | None:
    """The paper's test error for a collected run row, where it has one: He et al. (2015)
    Table 6 (CIFAR-10 option-A ResNets, the paper's protocol), Tables 2/3 (ImageNet top-1 and
    top-5, 10-crop); He et al. (2016) Tables 1 and 2 (CIFAR-10 ablations)."""
    model, dataset, protocol = row.get("model"), row.get("dataset"), row.get("protocol")
    if not isinstance(model, str) or not _factors_match(row, model):
        return None
    if dataset == "cifar10" and protocol == "he2015-cifar":
        if model in HE2016_TABLE1 and model != "resnet110-A":
            case, err = HE2016_TABLE1[model]
            return PaperNumber("He et al. (2016), Table 1", reported=err, fail=err is None,
                               case=case)
        if model in HE2016_TABLE2:
            case, err = HE2016_TABLE2[model]
            return PaperNumber("He et al. (2016), Table 2", reported=err, case=case)
        m = re.fullmatch(r"resnet(\d+)-A", model)
        if m and int(m.group(1)) in CIFAR_TABLE6:
            t = CIFAR_TABLE6[int(m.group(1))]
            if "test_err_mean" in t:  # "best (mean +- std)"
                return PaperNumber("He et al. (2015), Table 6", best=t["test_err"],
                                   mean=t["test_err_mean"], std=t["test_err_std"],
                                   case=f"ResNet-{m.group(1)}")
            return PaperNumber("He et al. (2015), Table 6", reported=t["test_err"],
                               case=f"ResNet-{m.group(1)}")
    if dataset == "imagefolder" and protocol == "he2015-imagenet" and model in IMAGENET_ERRORS:
        e = IMAGENET_ERRORS[model]
        return PaperNumber(f"He et al. (2015), Table {e['table']} (10-crop)",
                           reported=e["top1"], top5=e["top5"], case=model)
    return None
