"""resnet-ablate's variants as timm models, checked the way timm checks its own.

The generic tests of timm's tests/test_models.py (forward, backward, default cfgs,
TorchScript, features_only, forward_intermediates, FX forward and backward) re-created
here, run over a representative set drawn from the registry: the shallowest variant of
every (family, block, shortcut, stem, options) combination, so a newly registered kind of
variant is tested for free. Plus the rest of the contract: pretrained_cfg, data config,
loading a run's model.pt through timm (a digits run too), timm's train.py flags through
timm.create_model, one step of timm's own training pieces, lazy import.
"""
import math

import pytest
import torch

import resnet_ablate as ra

timm = pytest.importorskip("timm")
from timm.layers import DropBlock2d, DropPath, set_layer_config  # noqa: E402
from timm.layers._fx import create_feature_extractor, get_graph_node_names  # noqa: E402
from timm.models import get_notrace_functions, get_notrace_modules  # noqa: E402

from conftest import run_python  # noqa: E402

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
# timm's tests/test_models.py caps each check's input size (forward 384 px, backward,
# TorchScript and FX 128, features 96); these checks are about shapes, gradients and
# equality, not resolution, so the ImageNet nets run smaller still (CIFAR's 32 px stays):
# 128 px forward at full depth, 64 px (2x2 at the last stage) for the rest. Only
# default_cfgs runs the default 224 px: the pool size is defined there.
TARGET_FWD, TARGET_BWD, TARGET_FEAT = 128, 64, 64


@pytest.fixture
def legacy_jit():
    """TorchScript's executor without profiling, as timm's own tests/test_models.py sets it
    ("legacy executor is too slow to compile large models for unit tests"): the first call
    of a scripted model then runs it instead of profiling it. Restored afterwards."""
    executor = torch._C._jit_set_profiling_executor(True)
    mode = torch._C._jit_set_profiling_mode(False)
    yield
    torch._C._jit_set_profiling_mode(mode)
    torch._C._jit_set_profiling_executor(executor)


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
    from resnet_ablate.variants.parts import BLOCKS, SHORTCUTS

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
    """At the default input size (the pool size does not depend on depth: short models).
    One image through the features; the heads' shapes after that from an empty batch of
    the same size (the same shapes, no arithmetic)."""
    model = _short(model_name).eval()
    state_dict = model.state_dict()
    cfg = model.pretrained_cfg
    pool_size, input_size = cfg["pool_size"], cfg["input_size"]
    x = torch.randn(1, *input_size)
    out = model.forward_features(x)
    assert out.shape[-2:] == pool_size
    assert model.forward_head(out, pre_logits=True).shape == (1, model.num_features)
    empty = x[:0]
    model.reset_classifier(0)
    out = model(empty)
    assert out.dim() == 2 and out.shape[-1] == model.num_features == model.head_hidden_size
    model.reset_classifier(0, "")
    out = model(empty)
    assert out.dim() == 4 and out.shape[-2:] == pool_size
    model = _short(model_name, num_classes=0, global_pool="").eval()
    assert model(empty).shape[-2:] == pool_size
    assert cfg["classifier"] + ".weight" in state_dict
    assert cfg["first_conv"] + ".weight" in state_dict


@pytest.mark.parametrize("model_name", MODELS)
def test_model_forward_torchscript(model_name, legacy_jit):
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


def _create_fx_model(model, train=False):
    """timm's tests/test_models.py `_create_fx_model`: torchvision's feature extractor with
    timm's tracer settings, returning the last node."""
    from torchvision.models.feature_extraction import create_feature_extractor as create
    from torchvision.models.feature_extraction import get_graph_node_names as nodes

    tracer_kwargs = dict(leaf_modules=get_notrace_modules(),
                         autowrap_functions=get_notrace_functions(), param_shapes_constant=True)
    train_nodes, eval_nodes = nodes(model, tracer_kwargs=tracer_kwargs)
    return create(model, train_return_nodes=[train_nodes[-1]],
                  eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


def _flags_sample() -> list[str]:
    """Every family, block and stem once (from the registry), at their shortest."""
    seen: dict[tuple, str] = {}
    for name in MODELS:
        s = ra.get_spec(name[3:])
        seen.setdefault((s.family, s.block, s.stem), name)
    return sorted(seen.values())


def _marked(names: list[str]) -> list:
    """ImageNet-sized nets (a 224-px stem) marked slow: `make test-fast` skips them."""
    return [n if ra.get_spec(n[3:]).stem == "cifar" else pytest.param(n, marks=pytest.mark.slow)
            for n in names]


SAMPLE = _flags_sample()


@pytest.mark.parametrize("model_name", _marked(SAMPLE))
def test_model_forward_fx_torchscript(model_name, legacy_jit):
    """timm's test_model_forward_fx_torchscript: trace, script the traced module, run. (It
    failed on every model while the model module postponed its annotations: FX copied
    forward()'s string annotation into code TorchScript could not resolve.)"""
    with set_layer_config(scriptable=True):
        model = _short(model_name).eval()
    scripted = torch.jit.script(_create_fx_model(model))
    x = torch.randn(1, *_input_size(model, TARGET_BWD))
    with torch.inference_mode():
        outputs = torch.cat(tuple(scripted(x).values()))
        expected = model(x)
    assert outputs.shape[0] == 1
    assert not torch.isnan(outputs).any(), "Output included NaNs"
    torch.testing.assert_close(outputs, expected)


# What timm's train.py passes to create_model (train.py, `model = create_model(...)`), with
# its defaults: the flags a user did not give are None, which timm drops.
TRAIN_PY_DEFAULTS = dict(pretrained=False, in_chans=3, num_classes=None, drop_rate=0.0,
                         drop_path_rate=None, drop_block_rate=None, global_pool=None,
                         bn_momentum=None, bn_eps=None, scriptable=False, checkpoint_path="")


@pytest.mark.parametrize("model_name", _marked(SAMPLE))
def test_timm_train_py_flags(model_name):
    """--drop-path, --drop-block, --gp, --bn-momentum, --bn-eps as train.py passes them."""
    spec = ra.get_spec(model_name[3:])
    base = _short(model_name, **{k: v for k, v in TRAIN_PY_DEFAULTS.items()
                                 if k != "pretrained"}).eval()
    plain = spec.shortcut is None
    flags = dict(TRAIN_PY_DEFAULTS, drop_path_rate=None if plain else 0.2,
                 drop_block_rate=0.1, global_pool="catavgmax", bn_momentum=0.01, bn_eps=1e-3)
    model = _short(model_name, **{k: v for k, v in flags.items() if k != "pretrained"})
    units = model.blocks()
    paths = [getattr(b, "drop_path", None) for b in units]
    if plain:
        assert paths == [None] * len(units)
    else:  # timm's linear rule: 0 at the first unit (none made), 0.2 at the last
        assert paths[0] is None and all(isinstance(p, DropPath) for p in paths[1:])
        rates = [p.drop_prob for p in paths[1:]]
        assert rates == pytest.approx([0.2 * i / (len(units) - 1) for i in range(1, len(units))])
    stages = len(spec.layers)
    for i, stage in enumerate(model.stages):  # DropBlock in the last two stages, as timm's
        blocks = {type(b.drop_block) for b in stage}
        assert blocks == ({DropBlock2d} if i >= stages - 2 else {type(None)}), (i, blocks)
    assert model.stages[-1][0].drop_block.block_size == 3
    assert model.stages[-2][0].drop_block.block_size == 5
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    assert model.fc.in_features == 2 * model.num_features  # catavgmax: avg and max side by side
    # The flags add no parameters: the same weights load; in eval mode DropPath and DropBlock
    # do nothing, so only the pooling (and BN's eps) tell the two apart.
    assert set(model.state_dict()) == set(base.state_dict())
    x = torch.randn(2, *_input_size(model, TARGET_BWD))
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        c = model.num_features
        torch.testing.assert_close(pooled[:, :c], features.mean((2, 3)))
        torch.testing.assert_close(pooled[:, c:], features.amax((2, 3)))
    model.train()
    out = model(x)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("pool,width", [("avg", 1), ("max", 1), ("avgmax", 1),
                                        ("catavgmax", 2), ("", 0)])
def test_global_pool_is_timms_adaptive_pool(pool, width):
    from timm.layers import SelectAdaptivePool2d

    model = timm.create_model("ra_resnet20_a", global_pool=pool, num_classes=0 if not pool
                              else 10).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    with torch.no_grad():
        got = model.forward_head(features, pre_logits=True)
    if not pool:
        assert got.shape == features.shape  # unpooled
        return
    if pool != "avg":  # timm's own layer; avg is the same function without importing timm
        assert isinstance(model.head_pool, SelectAdaptivePool2d)
    expected = SelectAdaptivePool2d(pool_type=pool, flatten=True)(features)
    torch.testing.assert_close(got, expected)
    assert model.fc.in_features == 64 * width and model(x).shape == (2, 10)
    model.reset_classifier(5, "catavgmax")
    assert model.fc.in_features == 128 and model(x).shape == (2, 5)


def test_drop_path_drops_the_residual_branch_only_in_training():
    torch.manual_seed(0)
    model = timm.create_model("ra_resnet20_a", drop_path_rate=0.5)
    reference = timm.create_model("ra_resnet20_a")
    reference.load_state_dict(model.state_dict())
    x = torch.randn(8, 3, 32, 32)
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))  # eval: every branch kept
        model.train(), reference.train()
        assert not torch.allclose(model(x), reference(x))  # training: some branches dropped
    unit = model.stages[0][1]  # one unit alone: its output is relu(x) or relu(F(x) + x)
    unit.drop_path.drop_prob = 1.0 - 1e-9  # (DropPath rescales kept branches by 1/(1-p))
    h = torch.randn(4, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(unit(h), torch.relu(h))


def test_flags_that_cannot_apply_say_so_in_one_line():
    with pytest.raises(ValueError, match="plain20 is a plain net") as err:
        timm.create_model("ra_plain20", drop_path_rate=0.1)
    assert "\n" not in str(err.value)
    timm.create_model("ra_plain20", drop_path_rate=0.0, drop_block_rate=0.1)  # plain: fine
    for kwargs, fragment in ((dict(global_pool="median"), "global_pool must be one of"),
                             (dict(drop_path_rate=1.5), "drop_path_rate must be in [0, 1)"),
                             (dict(drop_block_rate=-0.1), "drop_block_rate must be in"),
                             (dict(bn_momentum=0.0), "bn_momentum must be in (0, 1]"),
                             (dict(bn_eps=-1.0), "bn_eps must be a positive number")):
        with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[")):
            timm.create_model("ra_resnet20_a", **kwargs)


def test_one_step_of_timms_training_loop():
    """timm's own pieces around an ra_ model, as train.py uses them: create_optimizer_v2,
    a timm loss, the scheduler, ModelEmaV3, accuracy and AverageMeter. A few steps on one
    batch must fit it (the loss falls)."""
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import AverageMeter, ModelEmaV3, accuracy, dispatch_clip_grad

    torch.manual_seed(0)
    model = timm.create_model("ra_resnet20_a", **dict(
        {k: v for k, v in TRAIN_PY_DEFAULTS.items() if k != "pretrained"},
        drop_path_rate=0.05, num_classes=10))
    optimizer = create_optimizer_v2(model, opt="sgd", lr=0.05, momentum=0.9,
                                    weight_decay=1e-4)
    scheduler, epochs = create_scheduler_v2(optimizer, sched="step", num_epochs=4,
                                            decay_epochs=2, decay_rate=0.1)
    ema = ModelEmaV3(model, decay=0.9)
    loss_fn = LabelSmoothingCrossEntropy(smoothing=0.1)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    losses, meter = [], AverageMeter()
    for epoch in range(epochs):
        model.train()
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        dispatch_clip_grad(model.parameters(), value=5.0)
        optimizer.step()
        ema.update(model, step=epoch)
        scheduler.step(epoch + 1)
        losses.append(loss.item())
        meter.update(loss.item(), x.size(0))
    assert epochs == 4 and losses[-1] < losses[0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.01)
    model.eval()
    with torch.no_grad():
        top1, top5 = accuracy(model(x), y, topk=(1, 5))
    assert 0 <= top1.item() <= top5.item() <= 100
    assert meter.count == 4 * 16 and meter.avg == pytest.approx(sum(losses) / 4)
    assert not torch.equal(ema.module.fc.weight, model.fc.weight)


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
    model = timm.create_model("ra_resnet20_a", num_classes=100, in_chans=1, drop_rate=0.2,
                              **{k: v for k, v in TRAIN_PY_DEFAULTS.items()
                                 if k not in ("pretrained", "in_chans", "drop_rate", "num_classes")})
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


def test_a_digits_runs_model_pt_loads_through_timm_as_the_readme_says(tmp_path, cli_inproc):
    """A real digits run (1 channel, 8 px, with a model override): pretrained=True and the
    file overlay alone build the network it trained; timm's data config says 1x8x8."""
    proc = cli_inproc("train", "model=resnet20-A", "model.layers=[1,1,1]", "dataset=digits",
                      "iterations=4", "eval_every=4", "responses=false", "wandb=disabled",
                      "progress=off", f"runs_dir={tmp_path}", "run_id=d")
    assert proc.returncode == 0, proc.stderr
    weights = tmp_path / "d" / "model.pt"
    model = timm.create_model("ra_resnet20_a", pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(weights))).eval()
    assert model.spec.layers == (1, 1, 1) and model.stem.conv1.in_channels == 1
    cfg = timm.data.resolve_model_data_config(model)
    assert cfg["input_size"] == (1, 8, 8) and len(cfg["mean"]) == len(cfg["std"]) == 1
    assert model.pretrained_cfg["num_classes"] == 10 and model.pretrained_cfg["pool_size"] == (2, 2)
    trained = ra.create_model("resnet20-A", layers=(1, 1, 1), in_chans=1).eval()
    trained.load_state_dict(torch.load(weights, weights_only=True))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), trained(x))
    # timm's train.py --pretrained-path: in_chans=3 and a new head; timm adapts the stem
    tuned = timm.create_model("ra_resnet20_a", pretrained=True, in_chans=3, num_classes=5,
                              pretrained_cfg_overlay=dict(file=str(weights), num_classes=-1))
    assert tuned.stem.conv1.in_channels == 3 and tuned.fc.out_features == 5
    with pytest.raises(ValueError, match="a run of 'resnet20-A'"):
        timm.create_model("ra_resnet56_a", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(weights)))


def test_gradient_checkpointing_recomputes_blocks_and_gives_the_same_gradients():
    """With checkpointing on, each block's forward runs again in the backward pass (its
    activations were not kept), and the gradients are the ones without."""
    torch.manual_seed(0)
    model = timm.create_model("ra_resnet20_a").train()
    blocks = list(model.blocks())
    calls = []
    for b in blocks:  # (a forward hook would not see the recomputation)
        b.forward = (lambda f: lambda *a, **k: calls.append(1) or f(*a, **k))(b.forward)
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    assert len(calls) == len(blocks) == 9
    model.zero_grad()
    calls.clear()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    assert len(calls) == 2 * len(blocks)  # forward, then recomputed in the backward
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_timm_is_imported_only_when_needed():
    code = ("import sys, resnet_ablate as ra; ra.list_models(); ra.create_model('resnet20-A');"
            "from resnet_ablate.cli import main; main(['models', 'resnet56*']);"
            "assert 'timm' not in sys.modules, 'timm imported';"
            "import timm; print(timm.create_model('ra_resnet56_a').num_features)")
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "64"


def test_timms_validation_folder_is_the_held_out_split(tmp_path):
    """timm's ImageFolder layout names the held-out split validation/: it is val/ here,
    the reported split when there is no test/; val/ and validation/ together are refused."""
    import numpy as np
    from PIL import Image

    from resnet_ablate.data import folders

    def tree(root, *split_names):
        for split in split_names:
            for c in ("cat", "dog"):
                (root / split / c).mkdir(parents=True)
                for i in range(3):
                    Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(
                        root / split / c / f"{i}.png")
        return root

    timm_style = tree(tmp_path / "a", "train", "validation")
    found = folders.splits(timm_style)
    assert found == {"train": timm_style / "train", "val": timm_style / "validation"}
    assert folders.test_dir(found) == timm_style / "validation"
    listed = folders.listing(found, folders.classes_of(found["train"]))
    assert len(listed["test"]) == 6 and "val" not in listed
    both = tree(tmp_path / "b", "train", "validation", "test")
    listed = folders.listing(folders.splits(both), ["cat", "dog"])
    assert {k: len(v) for k, v in listed.items()} == {"train": 6, "test": 6, "val": 6}
    assert listed["val"][0][0].parts[-3] == "validation"
    tree(tmp_path / "c", "train", "val", "validation")
    with pytest.raises(ValueError, match="both val/ and validation/"):
        folders.splits(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"val/ \(or validation/\)"):
        folders.splits(tree(tmp_path / "d", "train"))
