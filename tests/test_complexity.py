"""Golden params and MACs from reference-facts.md, and fvcore agreement.

complexity() counts from one real forward, so it runs here on every net up to 110 layers
(CIFAR) and the shallowest ImageNet ones; deeper nets are held to the same golden numbers
through the counting module's exact count (models/counting.py: a two-block-per-stage model
on an empty batch, milliseconds however deep), with their parameters also summed over the
full-depth model built on the meta device (no memory, no compute; the 1202-layer nets' are
summed on the real nets in test_models.py). The shallow cases assert both ways, so the two
counts are checked against each other on the golden numbers."""
import functools
import json
import warnings

import pytest
import torch
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

import resnet_ablate as ra
import golden as ref
from resnet_ablate.models import counting
from resnet_ablate.reference import paper_complexity

CIFAR_CASES = [(d, opt, *counts) for d, row in ref.CIFAR_COUNTS.items()
               for opt, counts in row.items()]


# complexity()'s real forward at these depths (CIFAR: up to 110; ImageNet: the shallowest
# basic and bottleneck nets); elsewhere the counting module's count
def _runs_forward(spec):
    return spec.depth <= 110 if spec.stem == "cifar" else spec.depth in (18, 50)


@functools.cache  # tests here share nets (resnet110-A, resnet50-B, ...): each counted once
def _counts(name, **overrides):
    """(params, MACs, complexity() or None) at the spec's input size: the counting
    module's, equal to the parameters of the full-depth net built on the meta device (one
    second at 1202 layers: those are summed on the real nets in test_models.py), and to
    complexity()'s own count where the net is one it runs."""
    spec = ra.get_spec(name).with_overrides(**overrides) if overrides else ra.get_spec(name)
    size = counting.check_size(spec, spec.input_size, 10 ** 12, 10 ** 15)
    if spec.depth < 1000:  # (the 1000+-layer nets' own sums: test_models' forward_backward)
        with torch.device("meta"):
            full = ra.create_model(name, **overrides)
        assert full.spec == spec
        assert size["params"] == sum(p.numel() for p in full.parameters())
    c = None
    if _runs_forward(spec):
        c = ra.complexity(ra.create_model(name, **overrides), with_fvcore=False)
        assert (c["params"], c["macs"]) == (size["params"], size["macs"]), name
    return size["params"], size["macs"], c


@pytest.mark.parametrize("depth, option, params, macs",
                         CIFAR_CASES)
def test_cifar_params_and_macs_are_the_golden_counts(depth, option, params, macs):
    assert _counts(f"resnet{depth}-{option}")[:2] == (params, macs)
    if option == "A":  # plain nets: the same layers, the same counts
        assert _counts(f"plain{depth}")[:2] == (params, macs)


@pytest.mark.parametrize("depth", list(ref.TORCHVISION_COUNTS))
def test_torchvision_counts_with_stride_in_3x3(depth):
    kwargs = {"stride_in": "3x3"} if depth >= 50 else {}
    assert _counts(f"resnet{depth}-B", **kwargs)[:2] == ref.TORCHVISION_COUNTS[depth]


@pytest.mark.parametrize("depth", list(ref.IMAGENET_V1_MACS))
def test_paper_v1_bottleneck_macs(depth):
    params, macs, _ = _counts(f"resnet{depth}-B")
    assert macs == ref.IMAGENET_V1_MACS[depth]
    assert params == ref.TORCHVISION_COUNTS[depth][0]  # stride placement moves no params


@pytest.mark.parametrize("depth", [18, 34])
def test_imagenet_params_of_options_a_b_c_are_the_golden_ones(depth):
    for option, params in ref.IMAGENET_SHORTCUT_PARAMS[depth].items():
        assert _counts(f"resnet{depth}-{option}")[0] == params
    assert _counts(f"plain{depth}")[0] == ref.IMAGENET_SHORTCUT_PARAMS[depth]["A"]


@pytest.mark.parametrize("name", [n for n in ra.list_models()
                                  if ra.get_spec(n).stem == "imagenet"
                                  and ra.get_spec(n).family != "preresnet"])
def test_default_imagenet_macs_within_3pct_of_table1(name):
    """The paper's FLOPs beside ours exactly where Table 1 gives them (complexity() attaches
    the same as paper_complexity: checked on the nets it runs)."""
    spec = ra.get_spec(name)
    _, macs, real = _counts(name)
    c = paper_complexity(spec)
    if real is not None:
        assert real.get("paper_flops") == c.get("paper_flops")
    if "paper_flops" in c:
        assert abs(macs / c["paper_flops"] - 1) < 0.03, (name, macs)
    expected = (spec.shortcut in (None, "A")) if spec.block == "basic" else spec.shortcut == "B"
    assert ("paper_flops" in c) == expected


def test_paper_params_within_5pct_of_table6():
    from resnet_ablate.reference import CIFAR_TABLE6

    for depth, row in CIFAR_TABLE6.items():
        params, _, c = _counts(f"resnet{depth}-A")
        paper = c if c is not None else paper_complexity(ra.get_spec(f"resnet{depth}-A"))
        assert paper["paper_params"] == row["params"]
        assert abs(params / row["params"] - 1) < 0.05


def test_overridden_variants_get_no_paper_number():
    c = ra.complexity(ra.create_model("resnet20-A", num_classes=100), with_fvcore=False)
    assert "paper_params" not in c


# fvcore's agreement holds at any input size and depth: ImageNet nets are traced at 64 px,
# not 224, and the gated net with three units per stage (still more than the two its
# shortened trace keeps), not 18
FVCORE_SIDE = {"cifar": 32, "imagenet": 64}


@pytest.mark.parametrize("name, overrides", [
    ("resnet20-A", {}), ("resnet20-C", {}), ("resnet18-B", {}), ("resnet50-B", {}),
    ("preresnet20", {}), ("resnet110-gate-excl", {"layers": (3, 3, 3)})])
def test_our_macs_are_fvcores_conv_and_linear_counts(name, overrides):
    """Our MACs are fvcore's conv + linear counts; its total adds BN and pooling; our
    activations are fvcore's activation count. fvcore_flops (traced with two blocks per
    stage, the later ones counted from the second) equals a trace of the whole net."""
    model = ra.create_model(name, **overrides).eval()
    side = FVCORE_SIDE[ra.get_spec(name).stem]
    c = ra.complexity(model, input_size=side)
    x = torch.zeros(1, 3, side, side)
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


def test_complexity_cli_shows_paper_beside_ours(cli_inproc):
    cli = cli_inproc
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
    assert f"{rows['resnet56-C']['fvcore_flops']:,}" in table.stdout


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


def test_complexity_takes_several_names_and_patterns(cli_inproc):
    """The README's `complexity preresnet164 resnet164-B`: each name's row, in the order
    given; a pattern beside them; a name matched twice counted once."""
    proc = cli_inproc("complexity", "preresnet164", "resnet164-B", "resnet20-?", "resnet164-B",
                      "--no-fvcore", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["model"] for r in rows] == ["preresnet164", "resnet164-B", "resnet20-A",
                                          "resnet20-B", "resnet20-C"]
    assert (rows[0]["params"], rows[1]["params"]) == (1_703_258, 1_704_154)
    stages = cli_inproc("complexity", "resnet20-A", "plain20", "--per-stage", "--no-fvcore",
                        "--format", "json")
    assert {r["model"] for r in json.loads(stages.stdout)} == {"resnet20-A", "plain20"}
    bad = cli_inproc("complexity", "resnet20-A", "resnet57-A")
    assert bad.returncode == 2 and "no variant matches 'resnet57-A'" in bad.stderr


def test_per_stage_shapes_are_the_stage_outputs_of_a_squeeze_excite_block():
    """A plugin block with a squeeze-excite branch (its last conv is the gate's 1x1 on a
    pooled 1x1 map): each stage's output shape is what the stage returns, 16x32x32 ..., not
    the gate's 16x1x1; the stem's is after its pooling (ImageNet: 64x56x56)."""
    from torch import nn

    from resnet_ablate.variants.registry import VARIANTS

    if "se20-counting-test" not in VARIANTS:
        @ra.register_block("se_basic_counting_test")
        class SEBasic(nn.Module):
            expansion = 1

            def __init__(self, in_chans, planes, stride, shortcut, norm_layer=nn.BatchNorm2d):
                super().__init__()
                self.conv1 = nn.Conv2d(in_chans, planes, 3, stride, 1, bias=False)
                self.bn1 = norm_layer(planes)
                self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
                self.bn2 = norm_layer(planes)
                self.squeeze = nn.Conv2d(planes, planes // 4, 1)
                self.excite = nn.Conv2d(planes // 4, planes, 1)
                self.shortcut = shortcut

            def forward(self, x):
                out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
                gate = self.excite(torch.relu(self.squeeze(out.mean((2, 3), keepdim=True))))
                out = out * gate.sigmoid()
                return torch.relu(out + (self.shortcut(x) if self.shortcut is not None else 0))

        ra.register_variant("se20-counting-test", base="resnet20-B",
                            block="se_basic_counting_test")
    stages = {s["stage"]: s for s in ra.complexity("se20-counting-test",
                                                   with_fvcore=False)["stages"]}
    assert [stages[f"stage{i}"]["output_shape"] for i in (1, 2, 3)] == [
        (16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert stages["stem"]["output_shape"] == (16, 32, 32)
    assert stages["head"]["output_shape"] == (10,)
    imagenet = {s["stage"]: s for s in ra.complexity("resnet18-B", with_fvcore=False)["stages"]}
    assert imagenet["stem"]["output_shape"] == (64, 56, 56)
