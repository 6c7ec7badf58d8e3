"""resnet-ablate's variants as timm models, checked the way timm checks its own.

The generic tests of timm's tests/test_models.py (forward, backward, default cfgs,
TorchScript, features_only, forward_intermediates, FX forward and backward) re-created
here, run over a representative set drawn from the registry: the shallowest variant of
every (family, block, shortcut, stem, options) combination, so a newly registered kind of
variant is tested for free. Plus the rest of the contract: pretrained_cfg, data config,
loading a run's model.pt through timm, lazy import.
"""
import math
import subprocess
import sys

import pytest
import torch

import resnet_ablate as ra

timm = pytest.importorskip("timm")
from timm.layers import set_layer_config  # noqa: E402
from timm.layers._fx import create_feature_extractor, get_graph_node_names  # noqa: E402

from resnet_ablate.models.timm_models import timm_name  # noqa: E402


def _representatives() -> list[str]:
    chosen: dict[tuple, str] = {}
    for name in ra.list_models():
        s = ra.get_spec(name)
        key = (s.family, s.block, s.shortcut, s.stem, s.options, s.shortcut_options,
               s.stem_options, s.stride_in)
        if key not in chosen or s.depth < ra.get_spec(chosen[key]).depth:
            chosen[key] = name
    return [timm_name(n) for n in chosen.values()]


MODELS = _representatives()
# timm's size targets: forward at most 384 px, backward/TorchScript/FX 128, features 96.
TARGET_FWD, TARGET_BWD, TARGET_FEAT = 384, 128, 96


def _short(model_name, **kwargs):
    """The model with at most two blocks per stage (first and later units are still both
    there): the same code paths as the full depth, in a fraction of the time."""
    layers = tuple(min(n, 2) for n in ra.get_spec(model_name[3:]).layers)
    return timm.create_model(model_name, pretrained=False, layers=layers, **kwargs)


def _input_size(model, target):
    size = model.pretrained_cfg["input_size"]
    return tuple(min(s, target) for s in size) if max(size) > target else size


def test_representatives_cover_every_part():
    specs = [ra.get_spec(n[3:]) for n in MODELS]
    from resnet_ablate.variants.registry import BLOCKS, SHORTCUTS

    assert {s.block for s in specs} == set(BLOCKS.names()) - {"test_block"}
    assert {s.shortcut for s in specs} - {None} >= set(SHORTCUTS.names()) - {"test_sc"}
    assert {s.stem for s in specs} >= {"cifar", "imagenet", "deep"}
    assert {s.family for s in specs} >= {"plain", "resnet", "preresnet"}


@pytest.mark.parametrize("model_name", MODELS)
def test_model_forward(model_name):
    model = timm.create_model(model_name, pretrained=False).eval()
    x = torch.randn(1, *_input_size(model, TARGET_FWD))
    out = model(x)
    assert out.shape[0] == 1
    assert not torch.isnan(out).any()


@pytest.mark.parametrize("model_name", MODELS)
def test_model_backward(model_name):
    model = _short(model_name, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    x = torch.randn(2, *_input_size(model, TARGET_BWD))
    out = model(x)
    out.mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"No gradient for {n}"
    assert sum(p.grad.numel() for p in model.parameters()) == num_params
    assert out.shape[-1] == 42
    assert not torch.isnan(out).any()


@pytest.mark.parametrize("model_name", MODELS)
@torch.no_grad()
def test_model_default_cfgs(model_name):
    """At the default input size (the pool size does not depend on depth: short models)."""
    model = _short(model_name).eval()
    state_dict = model.state_dict()
    cfg = model.pretrained_cfg
    pool_size, input_size = cfg["pool_size"], cfg["input_size"]
    x = torch.randn(1, *input_size)
    out = model.forward_features(x)
    assert out.shape[-2:] == pool_size
    model.reset_classifier(0)
    out = model(x)
    assert out.dim() == 2 and out.shape[-1] == model.num_features == model.head_hidden_size
    model.reset_classifier(0, "")
    out = model(x)
    assert out.dim() == 4 and out.shape[-2:] == pool_size
    model = _short(model_name, num_classes=0, global_pool="").eval()
    assert model(x).shape[-2:] == pool_size
    assert cfg["classifier"] + ".weight" in state_dict
    assert cfg["first_conv"] + ".weight" in state_dict
    pre = _short(model_name).eval()
    assert pre.forward_head(pre.forward_features(x), pre_logits=True).shape == (1, pre.num_features)


@pytest.mark.parametrize("model_name", MODELS)
def test_model_forward_torchscript(model_name):
    with set_layer_config(scriptable=True):
        model = _short(model_name).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, *_input_size(model, TARGET_BWD))
    out = scripted(x)
    assert out.shape[0] == 1 and not torch.isnan(out).any()
    with torch.no_grad():
        torch.testing.assert_close(out, model(x))


@pytest.mark.parametrize("model_name", MODELS)
def test_model_forward_features(model_name):
    model = _short(model_name, features_only=True).eval()
    channels = model.feature_info.channels()
    assert len(channels) >= 4
    x = torch.randn(1, *_input_size(model, TARGET_FEAT))
    outs = model(x)
    assert len(outs) == len(channels)
    for c, r, o in zip(channels, model.feature_info.reduction(), outs):
        assert o.shape[1] == c and o.shape[0] == 1 and not torch.isnan(o).any()
        assert o.shape[-1] <= math.ceil(x.shape[-1] / r) + 1
    picked = _short(model_name, features_only=True, out_indices=(1, -1))
    assert len(picked(x)) == 2


@pytest.mark.parametrize("model_name", MODELS)
def test_model_forward_intermediates(model_name):
    model = _short(model_name).eval()
    info = timm.models.FeatureInfo(model.feature_info, list(range(len(model.feature_info))))
    x = torch.randn(1, *_input_size(model, TARGET_FEAT))
    final, inter = model.forward_intermediates(x)
    assert len(inter) == len(info.channels())
    for c, r, o in zip(info.channels(), info.reduction(), inter):
        assert o.shape[1] == c
        assert o.shape[-1] <= math.ceil(x.shape[-1] / r) + 1
    torch.testing.assert_close(final, model.forward_features(x))
    last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [o.shape for o in last2] == [o.shape for o in inter[-2:]]


def _fx(model, train=False):
    train_nodes, eval_nodes = get_graph_node_names(model)
    nodes = train_nodes if train else eval_nodes
    return create_feature_extractor(model, return_nodes=[nodes[-1]])


@pytest.mark.parametrize("model_name", MODELS)
def test_model_forward_fx(model_name):
    model = _short(model_name).eval()
    x = torch.randn(1, *_input_size(model, TARGET_BWD))
    with torch.no_grad():
        expected = model(x)
        got = tuple(_fx(model)(x).values())[0]
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("model_name", MODELS)
def test_model_backward_fx(model_name):
    model = _short(model_name, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    fx = _fx(model, train=True)
    out = tuple(fx(torch.randn(2, *_input_size(model, TARGET_BWD))).values())[0]
    out.mean().backward()
    assert sum(p.grad.numel() for p in fx.parameters() if p.grad is not None) == num_params


def test_every_variant_is_registered_with_timm():
    names = set(timm.list_models("ra_*"))
    assert {timm_name(n) for n in ra.list_models()} <= names
    assert "ra_resnet56_a" in names and "ra_plain20" in names and "ra_resnet50d" in names


def test_pretrained_cfg_and_data_config():
    cifar = timm.create_model("ra_resnet56_a")
    cfg = timm.data.resolve_model_data_config(cifar)
    assert cfg["input_size"] == (3, 32, 32) and cfg["crop_pct"] == 1.0
    assert cfg["mean"] == pytest.approx((0.4914, 0.4822, 0.4465)) and cfg["std"] == (1, 1, 1)
    assert cifar.pretrained_cfg["pool_size"] == (8, 8)
    assert cifar.pretrained_cfg["num_classes"] == 10
    imagenet = timm.create_model("ra_resnet50_b")
    cfg = timm.data.resolve_model_data_config(imagenet)
    assert cfg["input_size"] == (3, 224, 224) and imagenet.pretrained_cfg["pool_size"] == (7, 7)
    assert imagenet.pretrained_cfg["first_conv"] == "stem.conv1"
    assert timm.create_model("ra_resnet50d").pretrained_cfg["first_conv"] == "stem.conv1.0"


def test_timm_create_model_with_overrides():
    model = timm.create_model("ra_resnet20_a", num_classes=100, in_chans=1, drop_rate=0.2)
    assert model.fc.out_features == 100 and model.stem.conv1.in_channels == 1
    assert model.drop_rate == 0.2
    model.train()
    x = torch.randn(4, 1, 32, 32)
    assert not torch.equal(model(x), model(x))  # dropout before the fc in training
    model.eval()
    assert torch.equal(model(x), model(x))
    with pytest.raises(ValueError, match="unknown model override"):
        timm.create_model("ra_resnet20_a", colour="red")


def test_loading_a_run_model_pt_through_timm(tmp_path):
    """A run's model.pt (a state_dict) loads with pretrained=True and a file overlay."""
    trained = ra.create_model("resnet20-A", in_chans=1).eval()
    path = tmp_path / "model.pt"
    torch.save(trained.state_dict(), path)
    loaded = timm.create_model("ra_resnet20_a", pretrained=True, in_chans=1,
                               pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), trained(x))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = timm.create_model("ra_resnet20_a").train()
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_timm_is_imported_only_when_needed():
    code = ("import sys, resnet_ablate as ra; ra.list_models(); ra.create_model('resnet20-A');"
            "from resnet_ablate.cli import main; main(['models', 'resnet56*']);"
            "assert 'timm' not in sys.modules, 'timm imported';"
            "import timm; print(timm.create_model('ra_resnet56_a').num_features)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "64"
