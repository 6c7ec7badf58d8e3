"""Golden params and MACs from reference-facts.md, and fvcore agreement."""
import json
import warnings

import pytest
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

import resnet_ablate as ra
import golden as ref

CIFAR_CASES = [(d, opt, *counts) for d, row in ref.CIFAR_COUNTS.items()
               for opt, counts in row.items()]


def _p(*values, slow=False):
    return pytest.param(*values, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("depth, option, params, macs",
                         [_p(*c, slow=c[0] == 1202) for c in CIFAR_CASES])
def test_cifar_golden_counts(depth, option, params, macs):
    c = ra.complexity(f"resnet{depth}-{option}", with_fvcore=False)
    assert (c["params"], c["macs"]) == (params, macs)
    if option == "A":  # plain nets: the same layers, the same counts
        p = ra.complexity(f"plain{depth}", with_fvcore=False)
        assert (p["params"], p["macs"]) == (params, macs)


@pytest.mark.parametrize("depth", [_p(d, slow=d >= 101) for d in ref.TORCHVISION_COUNTS])
def test_torchvision_counts_with_stride_in_3x3(depth):
    kwargs = {"stride_in": "3x3"} if depth >= 50 else {}
    model = ra.create_model(f"resnet{depth}-B", **kwargs)
    c = ra.complexity(model, with_fvcore=False)
    assert (c["params"], c["macs"]) == ref.TORCHVISION_COUNTS[depth]


@pytest.mark.parametrize("depth", [_p(d, slow=d >= 101) for d in ref.IMAGENET_V1_MACS])
def test_paper_v1_bottleneck_macs(depth):
    c = ra.complexity(f"resnet{depth}-B", with_fvcore=False)
    assert c["macs"] == ref.IMAGENET_V1_MACS[depth]
    assert c["params"] == ref.TORCHVISION_COUNTS[depth][0]  # stride placement moves no params


@pytest.mark.parametrize("depth", [18, 34])
def test_imagenet_shortcut_params(depth):
    for option, params in ref.IMAGENET_SHORTCUT_PARAMS[depth].items():
        assert ra.complexity(f"resnet{depth}-{option}", with_fvcore=False)["params"] == params
    assert ra.complexity(f"plain{depth}", with_fvcore=False)["params"] == \
        ref.IMAGENET_SHORTCUT_PARAMS[depth]["A"]


@pytest.mark.parametrize("name", [_p(n, slow=ra.get_spec(n).depth >= 101)
                                  for n in ra.list_models() if ra.get_spec(n).stem == "imagenet"
                                  and ra.get_spec(n).family != "preresnet"])
def test_default_imagenet_macs_within_3pct_of_table1(name):
    c = ra.complexity(name, with_fvcore=False)
    if "paper_flops" in c:
        assert abs(c["macs"] / c["paper_flops"] - 1) < 0.03, (name, c["macs"])
    spec = ra.get_spec(name)
    expected = (spec.shortcut in (None, "A")) if spec.block == "basic" else spec.shortcut == "B"
    assert ("paper_flops" in c) == expected


def test_paper_params_within_5pct_of_table6():
    from resnet_ablate.reference import CIFAR_TABLE6

    for depth, row in CIFAR_TABLE6.items():
        c = ra.complexity(f"resnet{depth}-A", with_fvcore=False)
        assert c["paper_params"] == row["params"]
        assert abs(c["params"] / row["params"] - 1) < 0.05


def test_overridden_variants_get_no_paper_number():
    c = ra.complexity(ra.create_model("resnet20-A", num_classes=100), with_fvcore=False)
    assert "paper_params" not in c


@pytest.mark.parametrize("name", ["resnet20-A", "resnet20-C", "resnet18-B", "resnet50-B",
                                  "preresnet20", "resnet110-gate-excl"])
def test_fvcore_agrees(name):
    """Our MACs are fvcore's conv + linear counts; its total adds BN and pooling; our
    activations are fvcore's activation count. fvcore_flops (traced with two blocks per
    stage, the later ones counted from the second) equals a trace of the whole net."""
    c = ra.complexity(name)
    model = ra.create_model(name).eval()
    import torch
    x = torch.zeros(1, 3, ra.get_spec(name).input_size, ra.get_spec(name).input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flops = FlopCountAnalysis(model, x)
        flops.unsupported_ops_warnings(False)
        by_op = flops.by_operator()
        acts = ActivationCountAnalysis(model, x)
        acts.unsupported_ops_warnings(False)
        assert c["activations"] == acts.total()
    assert c["macs"] == by_op["conv"] + by_op["linear"]
    assert c["fvcore_flops"] == flops.total() > c["macs"]
    whole = flops.by_module()
    for i, row in enumerate(r for r in c["stages"] if r["stage"].startswith("stage")):
        assert row["fvcore_flops"] == whole[f"stages.{i}"], row["stage"]


def test_stages_sum_to_totals_and_have_paper_shapes():
    c = ra.complexity("resnet20-A")
    stages = {s["stage"]: s for s in c["stages"]}
    assert list(stages) == ["stem", "stage1", "stage2", "stage3", "head"]
    for key in ("params", "macs", "activations", "fvcore_flops"):
        assert sum(s[key] for s in c["stages"]) == c[key], key
    assert stages["stage1"]["output_shape"] == (16, 32, 32)
    assert stages["stage2"]["output_shape"] == (32, 16, 16)
    assert stages["stage3"]["output_shape"] == (64, 8, 8)
    assert stages["head"]["params"] == 64 * 10 + 10
    imagenet = {s["stage"]: s for s in ra.complexity("resnet18-B", with_fvcore=False)["stages"]}
    assert [imagenet[f"stage{i}"]["output_shape"][1] for i in (1, 2, 3, 4)] == [56, 28, 14, 7]


def test_input_size_scales_macs():
    small = ra.complexity("resnet20-A", input_size=16, with_fvcore=False)
    fc = 64 * 10  # the fc costs the same at any input size; the convs scale with area
    assert (small["macs"] - fc) * 4 == ra.complexity("resnet20-A", with_fvcore=False)["macs"] - fc
    assert small["input_size"] == (3, 16, 16)
    assert "paper_params" not in small


def test_complexity_cli_shows_paper_beside_ours(cli):
    proc = cli("complexity", "resnet56*", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == ["resnet56-A", "resnet56-B", "resnet56-C"]
    assert rows["resnet56-A"]["params"] == 853_018
    assert rows["resnet56-A"]["paper_params"] == 0.85e6
    assert rows["resnet56-B"]["macs"] == 125_747_840
    assert rows["resnet56-C"]["fvcore_flops"] > rows["resnet56-C"]["macs"]
    table = cli("complexity", "resnet56*")
    assert table.returncode == 0
    assert "0.85M" in table.stdout and "853,018" in table.stdout and "+0.4%" in table.stdout


def test_complexity_cli_formats(cli_inproc):
    cli = cli_inproc
    csv = cli("complexity", "resnet18-A", "--format", "csv", "--no-fvcore")
    assert csv.returncode == 0
    header, row = csv.stdout.strip().splitlines()
    assert "macs" in header and "1794805760" in row and "1800000000" in row
    md = cli("complexity", "resnet18-A", "--format", "markdown", "--no-fvcore")
    assert md.stdout.startswith("| model") and "1.80G" in md.stdout
    small = cli("complexity", "resnet20-A", "--input-size", "16", "--format", "json")
    assert json.loads(small.stdout)[0]["input"] == "3x16x16"
