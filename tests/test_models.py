"""Every registered variant builds, runs forward and backward, and keeps its paper's
semantics: shortcut options (He et al. 2015), the shortcut and activation ablations of He
et al. (2016), ResNet-D (He et al. 2019). Structure is checked on the modules and on
numbers computed by hand from the paper's equations."""
import io
import pickle

import pytest
import torch
import torchvision
from torch import nn

import resnet_ablate as ra
from resnet_ablate.models import ZeroPadShortcut, counting
from resnet_ablate.models.convert import from_torchvision, to_torchvision
from golden import CIFAR_COUNTS

ALL = ra.list_models()


def _structure(name):
    s = ra.get_spec(name)
    return (s.family, s.block, s.shortcut, s.stem, s.options, s.shortcut_options,
            s.stem_options, s.stride_in)


def _run() -> list[str]:
    """The shallowest variant of every structure (family, block, shortcut, stem, options):
    every code path once; and every net of 1000+ layers, the paper's deepest, whose
    gradients at initialisation need float64 (a change to the initialisation's gain shows
    there first: it compounds over a thousand layers)."""
    shallowest: dict[tuple, str] = {}
    for name in ALL:
        key = _structure(name)
        if key not in shallowest or ra.get_spec(name).depth < ra.get_spec(
                shallowest[key]).depth:
            shallowest[key] = name
    return [n for n in ALL if n in shallowest.values() or ra.get_spec(n).depth >= 1001]


RUN = _run()
BUILT = [n for n in ALL if n not in RUN]  # the depths between: no code path of their own


def _meta(name, **overrides):
    """The model built on the meta device: its modules and parameter shapes, no memory, no
    initialisation (for tests of structure and counts)."""
    with torch.device("meta"):
        return ra.create_model(name, **overrides)


def _to_be_loaded(make):
    """make() built on the meta device and given uninitialised CPU memory: for a model
    whose every weight and buffer a strict load_state_dict then sets (its own
    initialisation would be thrown away)."""
    with torch.device("meta"):
        model = make()
    return model.to_empty(device="cpu")


@pytest.mark.parametrize("name", RUN)
def test_forward_backward(name):
    torch.manual_seed(0)
    spec = ra.get_spec(name)
    # Gradients of 1000+-layer nets without a clean identity path (plain, option C) explode
    # at initialisation (about 1e88 at the stem of plain1202): past float32, within float64.
    dtype = torch.float64 if spec.depth >= 1001 else torch.float32
    model = ra.create_model(name, num_classes=7).to(dtype)
    # the full depth, with the parameters the size count gives (test_complexity holds that
    # count to the golden numbers; there the 1202-layer nets are not built)
    assert tuple(len(stage) for stage in model.stages) == spec.layers
    assert _params(model) == counting.check_size(model.spec, spec.input_size, 10 ** 12,
                                                 10 ** 15)["params"]
    size = 8 if spec.input_size == 32 else 32  # any size works (global pooling)
    x = torch.randn(2, 3, size, size, dtype=dtype)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_every_variant_is_run_or_built():
    assert set(RUN) | set(BUILT) == set(ALL) and not set(RUN) & set(BUILT)
    assert {"plain1202", "resnet1202-C", "preresnet1001", "resnet18d", "resnet50-C",
            "preresnet110-relu-only", "resnet110-gate-excl-b3"} <= set(RUN)


@pytest.mark.parametrize("name", BUILT)
def test_every_other_depth_builds_to_its_layers(name):
    """The other depths of a structure run above: built at full depth (on the meta
    device), with the spec's blocks per stage and the parameters the size count gives."""
    spec = ra.get_spec(name)
    model = _meta(name, num_classes=7)
    assert tuple(len(stage) for stage in model.stages) == spec.layers
    assert sum(len(stage) for stage in model.stages) * (3 if spec.block.endswith(
        "bottleneck") else 2) + 2 == spec.depth
    params = counting.check_size(model.spec, spec.input_size, 10 ** 12, 10 ** 15)["params"]
    assert _params(model) == params


def test_issue_example_bottleneck_2222_100_classes():
    model = ra.create_model("resnet50-B", layers=(2, 2, 2, 2), num_classes=100).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 100)
    assert (logits < 0).any()  # logits, not probabilities
    assert model.spec.block == "bottleneck" and model.spec.depth == 26


def _shortcuts(model):
    return [b.downsample for b in model.blocks()]


def _is_projection(m):
    return isinstance(m, nn.Sequential) and isinstance(m[0], nn.Conv2d) and m[0].kernel_size == (1, 1)


def _params(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- He et al. (2015)
@pytest.mark.parametrize("name", ["resnet20-A", "resnet110-A", "resnet34-A", "resnet50-A"])
def test_option_a_has_no_parameters(name):
    model = _meta(name)
    shortcuts = [s for s in _shortcuts(model) if not isinstance(s, nn.Identity)]
    assert shortcuts and all(isinstance(s, ZeroPadShortcut) for s in shortcuts)
    assert sum(_params(s) for s in shortcuts) == 0
    plain = _meta(name.replace("resnet", "plain").replace("-A", ""))
    assert _params(model) == _params(plain)


def test_option_a_subsamples_and_zero_fills():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(out[:, 16:], torch.zeros(2, 16, 4, 4))
    assert ZeroPadShortcut(16, 32, 2).state_dict() == {}


@pytest.mark.parametrize("name, projections", [
    ("resnet20-B", 2), ("resnet56-B", 2), ("resnet18-B", 3), ("resnet34-B", 3),
    ("resnet50-B", 4), ("preresnet110", 2), ("preresnet164", 3), ("resnet164-B", 3)])
def test_option_b_projects_only_where_shape_changes(name, projections):
    model = _meta(name)
    proj = []
    for block in model.blocks():
        last = block.conv3 if hasattr(block, "conv3") else block.conv2
        changes = block.conv1.stride != (1, 1) or block.conv1.in_channels != last.out_channels
        assert _is_projection(block.downsample) == changes
        assert changes or isinstance(block.downsample, nn.Identity)
        proj.append(_is_projection(block.downsample))
    assert sum(proj) == projections


@pytest.mark.parametrize("name", ["resnet20-C", "resnet34-C", "resnet50-C", "resnet110-C"])
def test_option_c_projects_everywhere(name):
    model = _meta(name)
    assert all(_is_projection(s) for s in _shortcuts(model))


@pytest.mark.parametrize("name", ["plain20", "plain34", "plain50"])
def test_plain_nets_have_no_shortcut(name):
    model = _meta(name)
    assert all(s is None for s in _shortcuts(model))
    assert not any(isinstance(m, ZeroPadShortcut) for m in model.modules())


@pytest.mark.parametrize("plain, residual", [("plain20", "resnet20-A"),
                                             ("plain50", "resnet50-B")])
def test_residual_adds_identity_and_plain_does_not(plain, residual):
    """With every branch's last BN zeroed, a residual block passes relu(x) on; a plain
    block passes zeros. (The block is stage 1's second: the later stages are cut to one
    block, which leaves it as it is.)"""
    x = torch.rand(2, 16, 8, 8) if "20" in plain else torch.rand(2, 256, 8, 8)
    for name in (plain, residual):
        layers = (2,) + (1,) * (len(ra.get_spec(name).layers) - 1)
        model = ra.create_model(name, layers=layers).eval()
        block = model.stages[0][1]
        with torch.no_grad():
            block.branch_end().weight.zero_()
            out = block(x)
        expected = torch.relu(x) if name == residual else torch.zeros_like(x)
        assert torch.allclose(out, expected), name


def test_zero_init_residual_makes_blocks_identity():
    model = ra.create_model("resnet20-A", zero_init_residual=True).eval()
    assert all((b.bn2.weight == 0).all() for b in model.blocks())
    x = torch.rand(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.stages[0][0](x), x)
    default = ra.create_model("resnet20-A")
    assert all((b.bn2.weight == 1).all() for b in default.blocks())


@pytest.mark.parametrize("stride_in, conv", [("1x1", "conv1"), ("3x3", "conv2")])
def test_bottleneck_stride_placement(stride_in, conv):
    model = _meta("resnet50-B", stride_in=stride_in)
    first = model.stages[1][0]
    strides = {c: getattr(first, c).stride for c in ("conv1", "conv2", "conv3")}
    assert strides[conv] == (2, 2)
    assert sum(s == (2, 2) for s in strides.values()) == 1


def test_he_initialisation():
    torch.manual_seed(0)
    conv = ra.create_model("resnet110-A").stages[2][5].conv1  # 64 -> 64, 3x3
    fan_out = 64 * 9
    assert conv.weight.mean().abs() < 0.01
    assert abs(conv.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.05


@pytest.mark.parametrize("depth", [18, 50])
def test_state_dict_interchanges_with_torchvision(depth):
    """resnetD-B with stride_in="3x3" is torchvision's resnetD, weight for weight and
    output for output; only the key names differ (models.convert)."""
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    kwargs = {"stride_in": "3x3"} if depth >= 50 else {}
    ours = _to_be_loaded(lambda: ra.create_model(f"resnet{depth}-B", **kwargs)).eval()
    ours.load_state_dict(from_torchvision(tv.state_dict()), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x))
    back = _to_be_loaded(getattr(torchvision.models, f"resnet{depth}")).eval()
    back.load_state_dict(to_torchvision(ours.state_dict()), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(back(x), tv(x))


@pytest.mark.parametrize("name", ["resnet20-A", "resnet20-C", "plain20", "preresnet20",
                                  "resnet110-gate-excl", "resnet110-dropout-sc", "resnet18d"])
def test_pickle_and_state_dict_round_trip(name):
    torch.manual_seed(1)
    model = ra.create_model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    clone = pickle.loads(pickle.dumps(model))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = ra.create_model(name).eval()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(clone(x), ref)
        assert torch.equal(fresh(x), ref)


def test_in_chans_and_input_sizes():
    model = ra.create_model("resnet20-A", in_chans=1, num_classes=10).eval()
    with torch.no_grad():
        for size in (8, 28, 32, 40):
            assert model(torch.randn(1, 1, size, size)).shape == (1, 10)


def test_response_modules_are_3x3_layers():
    model = ra.create_model("resnet20-A")
    names = model.response_modules()
    assert len(names) == 19  # stem conv + 18 3x3 convs
    modules = dict(model.named_modules())
    assert all(isinstance(modules[n], nn.BatchNorm2d) for n in names)
    assert len(_meta("plain56").response_modules()) == 55
    assert len(_meta("resnet50-B").response_modules()) == 16
    pre = ra.create_model("preresnet20")
    assert len(pre.response_modules()) == 19
    assert all(isinstance(dict(pre.named_modules())[n], nn.Conv2d)
               for n in pre.response_modules())


# ---------------------------------------------------------------- He et al. (2016), Table 1
def _block(name, stage=0, index=1):
    torch.manual_seed(0)
    model = ra.create_model(name).eval()
    block = model.stages[stage][index]
    for m in block.modules():  # random BN statistics, so BN is not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return model, block


def _branch(block, x):
    """F(x) of a post-activation basic block in eval mode: conv-BN-ReLU-conv-BN."""
    return block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))


def _gate_params():
    """One 1x1 conv with bias per unit of ResNet-110 (18 per stage, 16/32/64 filters)."""
    per_stage = [(16, 16, 18), (16, 32, 1), (32, 32, 17), (32, 64, 1), (64, 64, 17)]
    return sum(n * (i * o + o) for i, o, n in per_stage)


@pytest.mark.parametrize("name, shortcut_scale, branch_scale", [
    ("resnet110-A", 1.0, 1.0), ("resnet110-scale-sc", 0.5, 1.0),
    ("resnet110-scale-both", 0.5, 0.5), ("resnet110-dropout-sc", 0.5, 1.0)])
def test_constant_scaling_and_dropout_shortcuts(name, shortcut_scale, branch_scale):
    """Table 1: y = relu(b F(x) + s x); dropout's shortcut is x x mask in training and
    0.5 x in evaluation ("statistically a scale of 0.5")."""
    model, block = _block(name)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        expected = torch.relu(branch_scale * _branch(block, x) + shortcut_scale * x)
        torch.testing.assert_close(block(x), expected)
    assert _params(model) == CIFAR_COUNTS[110]["A"][0]  # scaling adds no parameters
    if "dropout" in name:
        block.downsample.train()
        with torch.no_grad():
            kept = block.downsample(torch.ones(1000))
        assert set(kept.unique().tolist()) <= {0.0, 1.0} and 400 < kept.sum() < 600


@pytest.mark.parametrize("name, gate, bias", [
    ("resnet110-gate-excl", "exclusive", -6.0), ("resnet110-gate-excl-b7", "exclusive", -7.0),
    ("resnet110-gate-sc", "shortcut", 0.0), ("resnet110-gate-sc-b6", "shortcut", -6.0)])
def test_gating(name, gate, bias):
    """Table 1: g(x) = sigmoid(W_g x + b_g) by a 1x1 conv, b_g initialised to the row's
    value; exclusive: g F(x) + (1 - g) x; shortcut-only: F(x) + (1 - g) x."""
    model, block = _block(name)
    assert all((b.gate.bias == bias).all() for b in model.blocks())
    assert block.gate.kernel_size == (1, 1)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        g = torch.sigmoid(block.gate(x))
        f = _branch(block, x) * (g if gate == "exclusive" else 1.0)
        torch.testing.assert_close(block(x), torch.relu(f + (1 - g) * x))
    assert _params(model) == CIFAR_COUNTS[110]["A"][0] + _gate_params()


def test_one_by_one_conv_shortcut_is_option_c():
    model = _meta("resnet110-C")
    assert all(_is_projection(s) for s in _shortcuts(model))
    assert _params(model) == CIFAR_COUNTS[110]["C"][0]


# ---------------------------------------------------------------- He et al. (2016), Table 2
def test_bn_after_addition():
    """Fig. 4b: conv-BN-ReLU-conv, add, BN, ReLU."""
    model, block = _block("resnet110-bn-after-add")
    assert isinstance(block.bn2, nn.Identity) and isinstance(block.bn_post, nn.BatchNorm2d)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        f = block.conv2(torch.relu(block.bn1(block.conv1(x))))
        torch.testing.assert_close(block(x), torch.relu(block.bn_post(f + x)))
    # BN moved, not added: as many parameters as Table 2's original (option A)
    assert _params(model) == _params(_meta("resnet110-A"))


def test_relu_before_addition():
    """Fig. 4c: the branch ends in ReLU; nothing after the addition (outputs can be < 0)."""
    _, block = _block("resnet110-relu-before-add")
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        out = block(x)
        torch.testing.assert_close(out, torch.relu(_branch(block, x)) + x)
    assert (out < 0).any()


def test_relu_only_preactivation():
    """Fig. 4d: ReLU-conv-BN, ReLU-conv-BN, add; the input itself is left intact."""
    _, block = _block("preresnet110-relu-only")
    assert isinstance(block.pre_norm, nn.Identity)
    x = torch.randn(2, 16, 8, 8)
    x0 = x.clone()
    with torch.no_grad():
        f = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(torch.relu(x))))))
        torch.testing.assert_close(block(x), f + x)
    assert torch.equal(x, x0)


def test_full_preactivation_routing_follows_the_authors_code():
    """preresnet.lua: a stage's first unit pre-activates for branch and shortcut
    (both_preact); later units for the branch only; ImageNet's first unit not at all, its
    stem already ends in BN-ReLU (no_preact). The CIFAR stem has no BN."""
    cifar = ra.create_model("preresnet20")
    assert isinstance(cifar.stem.bn1, nn.Identity)
    assert [[b.preact_input for b in s] for s in cifar.stages] == [
        ["both", "branch", "branch"]] * 3
    imagenet = _meta("preresnet18")
    assert isinstance(imagenet.stem.bn1, nn.BatchNorm2d)
    assert [b.preact_input for b in imagenet.blocks()] == [
        "none", "branch", "both", "branch", "both", "branch", "both", "branch"]
    first = imagenet.stages[0][0]
    assert isinstance(first.pre_norm, nn.Identity) and isinstance(first.pre_act, nn.Identity)
    # numbers: the first CIFAR unit's identity shortcut takes BN-ReLU(x), not x
    _, block = _block("preresnet20", 0, 0)
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        pre = torch.relu(block.pre_norm(x))
        f = block.conv2(torch.relu(block.bn1(block.conv1(pre))))
        torch.testing.assert_close(block(x), f + pre)
    assert isinstance(_meta("preresnet110").final_norm.bn, nn.BatchNorm2d)


def _bottleneck_cifar_params(n, preact):
    """ResNet-164 by hand: stem 3x3x3x16 (+BN unless pre-activation), 3 stages of n
    bottlenecks (1x1, 3x3, 1x1 x4) with B projections (+BN unless pre-activation) where
    the shape changes, final BN (pre-activation), fc 256 -> 10."""
    def bn(c):
        return 2 * c
    total = 3 * 9 * 16 + (0 if preact else bn(16))
    c_in = 16
    for planes in (16, 32, 64):
        out = 4 * planes
        for j in range(n):
            total += c_in * planes + 9 * planes * planes + planes * out
            total += bn(c_in) + bn(planes) + bn(planes) if preact else bn(planes) * 2 + bn(out)
            if j == 0:
                total += c_in * out + (0 if preact else bn(out))
            c_in = out
    return total + (bn(256) if preact else 0) + 256 * 10 + 10


@pytest.mark.parametrize("name, preact", [("resnet164-B", False), ("preresnet164", True),
                                          ("resnet164-bn-after-add", False),
                                          ("resnet164-relu-before-add", False),
                                          ("preresnet164-relu-only", None)])
def test_resnet164_parameter_counts(name, preact):
    model = _meta(name)
    if preact is None:  # relu-only: a BN after the last conv (out) instead of before the
        # first (in): the counts differ where a stage starts, 16->64, 64->128, 128->256
        expected = _bottleneck_cifar_params(18, True) + sum(
            2 * (out - c_in) for c_in, out in ((16, 64), (64, 128), (128, 256)))
    else:
        expected = _bottleneck_cifar_params(18, preact)
    assert _params(model) == expected
    assert 1.65e6 < expected < 1.75e6  # the paper's "1.7M"


# ---------------------------------------------------------------- He et al. (2019), ResNet-D
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_d_is_timms(depth):
    """resnetDd computes timm's resnetDd function with its weights copied in order."""
    timm = pytest.importorskip("timm")
    ours = ra.create_model(f"resnet{depth}d").eval()
    theirs = _to_be_loaded(lambda: timm.models.resnet.__dict__[f"resnet{depth}d"](
        pretrained=False)).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert [v.shape for v in a.values()] == [v.shape for v in b.values()]
    theirs.load_state_dict(dict(zip(b, a.values())), strict=True)
    x = torch.randn(2, 3, 64, 64)  # 2x2 at the last stage: its avg-pool shortcut still pools
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    assert _params(ours) == _params(theirs)
    stem = ours.stem.conv1
    assert [m.out_channels for m in stem if isinstance(m, nn.Conv2d)] == [32, 32, 64]
    pools = [s[0] for s in _shortcuts(ours) if _is_projection(s) is False and
             isinstance(s, nn.Sequential)]
    assert pools and all(isinstance(p, nn.AvgPool2d) for p in pools)
