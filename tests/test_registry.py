"""The registry: names, factors, and refusal of bad input."""
import re

import pytest

import resnet_ablate as ra
from conftest import run_python
from torch import nn
from resnet_ablate.variants.registry import VARIANTS
from resnet_ablate.variants.spec import VariantSpec

ALL = ra.list_models()


def test_paper_variants_are_all_registered():
    for d in (20, 32, 44, 56, 110, 1202):
        for name in (f"plain{d}", f"resnet{d}-A", f"resnet{d}-B", f"resnet{d}-C",
                     f"preresnet{d}"):
            assert name in ALL
    for d in (18, 34, 50, 101, 152):
        for name in (f"plain{d}", f"resnet{d}-A", f"resnet{d}-B", f"resnet{d}-C",
                     f"preresnet{d}", f"resnet{d}d"):
            assert name in ALL
    assert {"preresnet164", "preresnet1001", "preresnet200", "resnet164-B"} <= set(ALL)
    assert len(ALL) == len(set(ALL))


def test_the_paper_factors_known_without_torch_are_the_registrys():
    """paper_factors (what compare and the figures check runs against, with no torch to
    import) is every paper variant's spec, field for field, and the stems' widths it
    assumes are theirs."""
    from resnet_ablate.variants.paper import STEM_WIDTHS, paper_factors
    from resnet_ablate.variants.parts import STEMS

    known = paper_factors()
    assert set(known) == set(ALL)  # no plugin loaded here: every variant is a paper's
    for name, factors in known.items():
        assert ra.get_spec(name).factors() == factors, name
    assert STEM_WIDTHS == {n: STEMS.get(n).meta["width"] for n in STEM_WIDTHS}
    code = ("import sys; from resnet_ablate.reference import paper_match; "
            "paper_match({'model': 'resnet110-A', 'protocol': 'he2015-cifar'}); "
            "print('torch' in sys.modules)")
    assert run_python(code).stdout.strip() == "False"


PAPER_NAME = re.compile(r"(plain|resnet|preresnet)(\d+)(?:-([ABC]))?")


@pytest.mark.parametrize("name", [n for n in ALL if PAPER_NAME.fullmatch(n)])
def test_name_agrees_with_factors(name):
    spec = ra.get_spec(name)
    family, depth, option = PAPER_NAME.fullmatch(name).groups()
    assert (spec.family, spec.depth) == (family, int(depth))
    if family == "resnet":
        assert spec.shortcut == option
    if family == "plain":
        assert spec.shortcut is None
    shape = "bottleneck" if spec.depth in (50, 101, 152, 164, 200, 1001) else "basic"
    assert spec.block == (f"preact_{shape}" if family == "preresnet" else shape)
    assert spec.stem == ("imagenet" if spec.depth in (18, 34, 50, 101, 152, 200) else "cifar")
    assert spec.num_classes == (1000 if spec.stem == "imagenet" else 10)
def test_cifar_depth_is_6n_plus_2():
    for d, n in {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}.items():
        assert ra.get_spec(f"resnet{d}-A").layers == (n, n, n)
    assert ra.get_spec("preresnet164").layers == (18, 18, 18)


def test_imagenet_layers_table1():
    assert ra.get_spec("resnet18-B").layers == (2, 2, 2, 2)
    assert ra.get_spec("plain34").layers == (3, 4, 6, 3)
    assert ra.get_spec("resnet50-B").layers == (3, 4, 6, 3)
    assert ra.get_spec("resnet101-B").layers == (3, 4, 23, 3)
    assert ra.get_spec("resnet152-C").layers == (3, 8, 36, 3)


def test_patterns_and_case():
    assert ra.list_models("resnet56*") == ["resnet56-A", "resnet56-B", "resnet56-C"]
    assert ra.list_models("plain*") == [f"plain{d}" for d in
                                        (20, 32, 44, 56, 110, 1202, 18, 34, 50, 101, 152)]
    assert ra.list_models("nothing*") == []
    assert ra.get_spec("ResNet56_a").name == "resnet56-A"


def test_spec_is_frozen_and_overrides_validate():
    spec = ra.get_spec("resnet20-A")
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.depth = 56
    wide = spec.with_overrides(layers=[5, 5, 5], num_classes=100)
    assert (wide.depth, wide.layers, wide.num_classes) == (32, (5, 5, 5), 100)
    assert spec.depth == 20


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):
        VARIANTS.add("resnet20-A", ra.get_spec("resnet20-A"))


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: ra.get_spec("resnet57-A"), ValueError, r"closest: .*resnet5"),
    (lambda: ra.create_model("resnt20-A"), ValueError, r"closest: resnet20-A"),
    (lambda: ra.create_model("plain20", shortcut="B"), ValueError, "plain nets have no shortcut"),
    (lambda: ra.create_model("resnet20-A", colour="red"), ValueError,
     r"unknown model override 'colour'; allowed: num_classes"),
    (lambda: ra.create_model("resnet20-A", layers=(3, 3, 3, 3)), ValueError,
     r"one value per stage; layers has 4, widths 3"),
    (lambda: ra.create_model("resnet18-A", layers=(2, 2)), ValueError,
     r"layers has 2, widths 4"),
    (lambda: ra.create_model("resnet20-A", layers=3), ValueError, "list of integers"),
    (lambda: ra.create_model("resnet20-A", layers=(3, 0, 3)), ValueError, "positive"),
    (lambda: ra.create_model("resnet20-A", shortcut="D"), ValueError,
     r"unknown shortcut 'D' \(allowed: A, B, C"),
    (lambda: ra.create_model("resnet20-A", block="basik"), ValueError,
     r"unknown block 'basik'; closest: basic"),
    (lambda: ra.create_model("resnet20-A", stem="cifa"), ValueError,
     r"unknown stem 'cifa'; closest: cifar"),
    (lambda: ra.create_model("resnet20-A", options={"gait": "exclusive"}), ValueError,
     r"block 'basic' takes no option 'gait' \(its options: order, gate, gate_bias"),
    (lambda: ra.create_model("resnet20-A", options={"order": "sideways"}), ValueError,
     r"order must be one of original, bn_after_add, relu_before_add"),
    (lambda: ra.create_model("resnet20-A", shortcut_options={"scale": float("nan")}),
     ValueError, "finite"),
    (lambda: ra.create_model("resnet20-A", options={"branch_scale": "abc"}), ValueError,
     r"option branch_scale must be a number like its default 1.0; got 'abc'"),
    (lambda: ra.create_model("resnet110-gate-excl", options={"gate": "exclusive",
                                                             "gate_bias": "low"}),
     ValueError, "option gate_bias must be a number"),
    (lambda: ra.create_model("resnet110-dropout-sc", shortcut_options={"p": "half"}),
     ValueError, "shortcut 'dropout' option p must be a number"),
    (lambda: ra.create_model("resnet20-A", options={"order": 3}), ValueError,
     "option order must be a string"),
    (lambda: ra.create_model("resnet20-A", stride_in="3x3"), ValueError, "bottleneck"),
    (lambda: ra.create_model("resnet50-B", stride_in="2x2"), ValueError, "1x1, 3x3"),
    (lambda: ra.create_model("resnet20-A", num_classes=-1), ValueError, "positive integer"),
    (lambda: ra.create_model("plain20", zero_init_residual=True), ValueError, "residual"),
    (lambda: ra.create_model("resnet20-A", global_pool="median"), ValueError, "global_pool"),
    (lambda: ra.get_spec(20), TypeError, "string"),
])
def test_bad_variant_input_raises_what_is_allowed(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_depth_must_match_layers():
    with pytest.raises(ValueError, match="does not match"):
        VariantSpec(name="x", family="resnet", depth=21, block="basic", shortcut="A",
                    stem="cifar", widths=(16, 32, 64), layers=(3, 3, 3), num_classes=10)


def test_register_variant_changes_any_factor():
    spec = ra.register_variant("test-resnet26-gated", base="resnet20-B", layers=(4, 4, 4),
                               options={"gate": "shortcut", "gate_bias": -2})
    assert (spec.depth, spec.layers, spec.shortcut, spec.family) == (26, (4, 4, 4), "B", "resnet")
    assert spec.options == {"gate": "shortcut", "gate_bias": -2}
    assert hash(spec) == hash(ra.get_spec("test-resnet26-gated"))  # frozen: hashable
    with pytest.raises(TypeError, match="frozen"):
        spec.options["gate"] = "none"
    assert ra.get_spec("test-resnet26-gated") is spec
    model = ra.create_model("test-resnet26-gated")
    assert all(b.gate.bias.eq(-2).all() for b in model.blocks())
    bottleneck = ra.register_variant("test-bottleneck29", base="resnet20-A", block="bottleneck",
                                     layers=(3, 3, 3))
    assert bottleneck.depth == 3 * 9 + 2  # depth follows the block's weighted layers
    with pytest.raises(ValueError, match="already registered"):
        ra.register_variant("test-resnet26-gated", base="resnet20-A")
    with pytest.raises(ValueError, match="unknown variant field 'colour'"):
        ra.register_variant("test-colour", base="resnet20-A", colour="red")


def test_timm_num_classes_zero_is_a_feature_extractor():
    model = ra.create_model("resnet20-A", num_classes=0)
    assert isinstance(model.fc, nn.Identity) and model.num_classes == 0
