"""The registry: names, factors, and refusal of bad input."""
import re

import pytest

import resnet_ablate as ra
from resnet_ablate import registry
from resnet_ablate.spec import VariantSpec

ALL = ra.list_models()


def test_paper_variants_are_all_registered():
    for d in (20, 32, 44, 56, 110, 1202):
        for name in (f"plain{d}", f"resnet{d}-A", f"resnet{d}-B", f"resnet{d}-C",
                     f"preresnet{d}"):
            assert name in ALL
    for d in (18, 34, 50, 101, 152):
        for name in (f"plain{d}", f"resnet{d}-A", f"resnet{d}-B", f"resnet{d}-C",
                     f"preresnet{d}"):
            assert name in ALL
    assert {"preresnet164", "preresnet1001", "preresnet200"} <= set(ALL)
    assert len(ALL) == len(set(ALL)) == 6 * 5 + 5 * 5 + 3


@pytest.mark.parametrize("name", ALL)
def test_name_agrees_with_factors(name):
    spec = ra.get_spec(name)
    m = re.fullmatch(r"(plain|resnet|preresnet)(\d+)(?:-([ABC]))?", name)
    assert m, name
    family, depth, option = m.groups()
    assert (spec.family, spec.depth) == (family, int(depth))
    if family == "resnet":
        assert spec.shortcut == option
    if family == "plain":
        assert spec.shortcut is None
    expected_block = "bottleneck" if spec.depth in (50, 101, 152, 164, 200, 1001) else "basic"
    assert spec.block == expected_block
    assert spec.stem == ("imagenet" if spec.depth in (18, 34, 50, 101, 152, 200) else "cifar")
    assert spec.num_classes == (1000 if spec.stem == "imagenet" else 10)
    assert spec.widths == ((16, 32, 64) if spec.stem == "cifar" else (64, 128, 256, 512))


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
    with pytest.raises(Exception):
        spec.depth = 56
    wide = spec.with_overrides(layers=[5, 5, 5], num_classes=100)
    assert (wide.depth, wide.layers, wide.num_classes) == (32, (5, 5, 5), 100)
    assert spec.depth == 20


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ra.get_spec("resnet20-A"))


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: ra.get_spec("resnet57-A"), ValueError, r"closest: .*resnet5"),
    (lambda: ra.create_model("resnt20-A"), ValueError, r"closest: resnet20-A"),
    (lambda: ra.create_model("plain20", shortcut="B"), ValueError, "plain nets have no shortcut"),
    (lambda: ra.create_model("resnet20-A", colour="red"), ValueError,
     r"unknown model override 'colour'; allowed: num_classes"),
    (lambda: ra.create_model("resnet20-A", layers=(3, 3, 3, 3)), ValueError,
     r"layers must be 3 positive integers"),
    (lambda: ra.create_model("resnet18-A", layers=(2, 2)), ValueError,
     r"layers must be 4 positive integers"),
    (lambda: ra.create_model("resnet20-A", layers=3), TypeError, "list or tuple"),
    (lambda: ra.create_model("resnet20-A", layers=(3, 0, 3)), ValueError, "positive"),
    (lambda: ra.create_model("resnet20-A", shortcut="D"), ValueError,
     "shortcut must be one of A, B, C"),
    (lambda: ra.create_model("resnet20-A", stride_in="3x3"), ValueError, "bottleneck"),
    (lambda: ra.create_model("resnet50-B", stride_in="2x2"), ValueError, "1x1, 3x3"),
    (lambda: ra.create_model("resnet20-A", num_classes=0), ValueError, "positive integer"),
    (lambda: ra.create_model("plain20", zero_init_residual=True), ValueError, "residual"),
    (lambda: ra.get_spec(20), TypeError, "string"),
])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_depth_must_match_layers():
    with pytest.raises(ValueError, match="does not match"):
        VariantSpec(name="x", family="resnet", depth=21, block="basic", shortcut="A",
                    stem="cifar", widths=(16, 32, 64), layers=(3, 3, 3), num_classes=10)
