"""Every registered variant builds, runs forward and backward, and keeps the paper's semantics."""
import io
import pickle

import pytest
import torch
import torchvision
from torch import nn

import resnet_ablate as ra
from resnet_ablate.models import ZeroPadShortcut

SLOW_DEPTHS = {1202, 1001, 101, 152, 200}


def _param(name):
    marks = [pytest.mark.slow] if ra.get_spec(name).depth in SLOW_DEPTHS else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in ra.list_models()])
def test_forward_backward(name):
    torch.manual_seed(0)
    spec = ra.get_spec(name)
    # Gradients of 1000+-layer nets without a clean identity path (plain, option C) explode
    # at initialisation (about 1e88 at the stem of plain1202): past float32, within float64.
    dtype = torch.float64 if spec.depth >= 1001 else torch.float32
    model = ra.create_model(name, num_classes=7).to(dtype)
    size = 16 if spec.stem == "cifar" else 64  # small inputs: any size works (global pooling)
    x = torch.randn(2, 3, size, size, dtype=dtype)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_issue_example_bottleneck_2222_100_classes():
    model = ra.create_model("resnet50-B", layers=(2, 2, 2, 2), num_classes=100).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 100)
    assert (logits < 0).any()  # logits, not probabilities
    assert not torch.allclose(logits.sum(), torch.tensor(1.0))
    assert model.spec.block == "bottleneck" and model.spec.depth == 26


def _shortcuts(model):
    return [b.downsample for b in model.blocks()]


def _is_projection(m):
    return isinstance(m, nn.Sequential) and isinstance(m[0], nn.Conv2d) and m[0].kernel_size == (1, 1)


@pytest.mark.parametrize("name", ["resnet20-A", "resnet110-A", "resnet34-A", "resnet50-A"])
def test_option_a_has_no_parameters(name):
    model = ra.create_model(name)
    shortcuts = [s for s in _shortcuts(model) if s is not None]
    assert shortcuts and all(isinstance(s, ZeroPadShortcut) for s in shortcuts)
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0
    plain = ra.create_model(name.replace("resnet", "plain").replace("-A", ""))
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in plain.parameters())


def test_option_a_subsamples_and_zero_fills():
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(out[:, 16:], torch.zeros(2, 16, 4, 4))
    assert ZeroPadShortcut(16, 32, 2).state_dict() == {}


@pytest.mark.parametrize("name, projections", [
    ("resnet20-B", 2), ("resnet56-B", 2), ("resnet18-B", 3), ("resnet34-B", 3),
    ("resnet50-B", 4), ("preresnet110", 2), ("preresnet164", 3)])
def test_option_b_projects_only_where_shape_changes(name, projections):
    model = ra.create_model(name)
    proj = []
    for block in model.blocks():
        changes = block.conv1.stride != (1, 1) or block.conv1.in_channels != (
            block.conv3.out_channels if hasattr(block, "conv3") else block.conv2.out_channels)
        assert _is_projection(block.downsample) == changes
        proj.append(_is_projection(block.downsample))
    assert sum(proj) == projections


@pytest.mark.parametrize("name", ["resnet20-C", "resnet34-C", "resnet50-C"])
def test_option_c_projects_everywhere(name):
    model = ra.create_model(name)
    assert all(_is_projection(s) for s in _shortcuts(model))


@pytest.mark.parametrize("name", ["plain20", "plain34", "plain50"])
def test_plain_nets_have_no_shortcut(name):
    model = ra.create_model(name)
    assert all(s is None for s in _shortcuts(model))
    assert not any(isinstance(m, ZeroPadShortcut) for m in model.modules())


@pytest.mark.parametrize("plain, residual", [("plain20", "resnet20-A"),
                                             ("plain50", "resnet50-B")])
def test_residual_adds_identity_and_plain_does_not(plain, residual):
    """With every branch's last BN zeroed, a residual block passes relu(x) on; a plain
    block passes zeros."""
    x = torch.rand(2, 16, 8, 8) if "20" in plain else torch.rand(2, 256, 8, 8)
    for name in (plain, residual):
        model = ra.create_model(name).eval()
        block = model.layer1[1]
        with torch.no_grad():
            block.last_norm().weight.zero_()
            out = block(x)
        expected = torch.relu(x) if name == residual else torch.zeros_like(x)
        assert torch.allclose(out, expected), name


def test_zero_init_residual_makes_blocks_identity():
    model = ra.create_model("resnet20-A", zero_init_residual=True).eval()
    assert all((b.bn2.weight == 0).all() for b in model.blocks())
    x = torch.rand(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.layer1[0](x), x)
    default = ra.create_model("resnet20-A")
    assert all((b.bn2.weight == 1).all() for b in default.blocks())


@pytest.mark.parametrize("stride_in, conv", [("1x1", "conv1"), ("3x3", "conv2")])
def test_bottleneck_stride_placement(stride_in, conv):
    model = ra.create_model("resnet50-B", stride_in=stride_in)
    first = model.layer2[0]
    strides = {c: getattr(first, c).stride for c in ("conv1", "conv2", "conv3")}
    assert strides[conv] == (2, 2)
    assert sum(s == (2, 2) for s in strides.values()) == 1


def test_he_initialisation():
    torch.manual_seed(0)
    conv = ra.create_model("resnet1202-A").layer3[5].conv1  # 64 -> 64, 3x3
    fan_out = 64 * 9
    assert conv.weight.mean().abs() < 0.01
    assert abs(conv.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.03


@pytest.mark.parametrize("depth", [18, 50])
def test_state_dict_interchanges_with_torchvision(depth):
    """resnetD-B with stride_in="3x3" is torchvision's resnetD, key for key and output for
    output."""
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    kwargs = {"stride_in": "3x3"} if depth >= 50 else {}
    ours = ra.create_model(f"resnet{depth}-B", **kwargs).eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x))


@pytest.mark.parametrize("name", ["resnet20-A", "resnet20-C", "plain20", "preresnet20"])
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
    assert len(ra.create_model("plain56").response_modules()) == 55
    assert len(ra.create_model("resnet50-B").response_modules()) == 16
    assert len(ra.create_model("preresnet20").response_modules()) == 19
