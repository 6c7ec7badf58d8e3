"""The probes' numbers against independent computations on tiny nets (8x8, one channel)."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnet_ablate as ra
from resnet_ablate.errors import InputError
from resnet_ablate.probes import PROBES, hessian, landscape, lesion, paths, run_probe
from resnet_ablate.probes.common import evaluate, network_units


def tiny(name: str = "resnet20-A", seed: int = 0, **kw) -> nn.Module:
    """A small net with non-trivial BN statistics and affine parameters (a fresh net's BN
    is the identity in eval mode, which would hide mistakes)."""
    torch.manual_seed(seed)
    m = ra.create_model(name, layers=(2, 2, 2), num_classes=10, in_chans=1, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(c, generator=g))
                mod.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=g))
                mod.bias.copy_(0.1 * torch.randn(c, generator=g))
    return m.eval()


def data(n_batches: int = 2, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n_batches)]


def snapshot(m: nn.Module):
    return {k: v.clone() for k, v in m.state_dict().items()}, list(m.modules())


def assert_unchanged(m: nn.Module, before) -> None:
    state, modules = before
    after = m.state_dict()
    assert list(after) == list(state)
    assert all(torch.equal(after[k], state[k]) for k in state)
    assert all(a is b for a, b in zip(m.modules(), modules)) and len(list(m.modules())) == len(
        modules)
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())
    assert all(p.grad is None for p in m.parameters())


def without_unit(m: nn.Module, stage: int, position: int) -> nn.Module:
    short = copy.deepcopy(m)
    blocks = [b for j, b in enumerate(short.stages[stage]) if j != position]
    short.stages[stage] = nn.Sequential(*blocks)
    return short


# ---------------------------------------------------------------------------- lesion
@pytest.mark.parametrize("name", ["resnet20-A", "preresnet20", "resnet164-B"])
def test_deleting_identity_unit_equals_net_without_it(name):
    m = tiny(name)
    batches = data()
    x = batches[0][0]
    short = without_unit(m, 0, 1)
    units = network_units(m, x, "lesion")
    assert units[1].shortcut_kind == "identity"
    with torch.no_grad():
        with lesion.deleted(m, [units[1]]):
            lesioned = m(x)
        assert torch.equal(lesioned, short(x))
        assert not torch.equal(m(x), short(x))  # the deletion was undone
    before = snapshot(m)
    m.train()  # the probe evaluates in eval mode and gives the flag back
    r = lesion.run(m, batches, seed=0, parts=["single"])
    assert m.training and all(mod.training for mod in m.modules())
    m.eval()
    assert_unchanged(m, before)
    row = r["single"][1]
    assert row["unit"] == "stages.0.1" and row["how"] == "shortcut only (identity)"
    assert (row["loss"], row["error"]) == evaluate(short, batches)
    assert (r["baseline"]["loss"], r["baseline"]["error"]) == evaluate(m, batches)


def test_residual_rows_and_reshaping_unit_keeps_its_shortcut():
    m = tiny("resnet20-A")
    batches = data()
    r = lesion.run(m, batches, seed=0, parts=["single"])
    how = [row["how"] for row in r["single"]]
    assert how == ["shortcut only (identity)", "shortcut only (identity)",
                   "shortcut only (zero-pad)", "shortcut only (identity)",
                   "shortcut only (zero-pad)", "shortcut only (identity)"]
    # a deleted reshaping unit outputs relu(zero-pad(x)): check against that by hand
    unit = m.stages[1][0]
    x = torch.relu(torch.randn(4, 16, 8, 8))
    with torch.no_grad(), lesion.deleted(m, [network_units(m, batches[0][0], "t")[2]]):
        out = unit(x)
    assert torch.equal(out, torch.relu(unit.downsample(x)))
    assert out.shape == (4, 32, 4, 4)


def test_plain_net_deletion_is_identity_and_reshaping_unit_not_deletable():
    m = tiny("plain20")
    batches = data()
    r = lesion.run(m, batches, seed=3, draws=4)
    rows = {row["unit"]: row for row in r["single"]}
    assert rows["stages.0.1"]["how"] == "identity (plain: no shortcut)"
    assert (rows["stages.0.1"]["loss"], rows["stages.0.1"]["error"]) == evaluate(
        without_unit(m, 0, 1), batches)
    for name in ("stages.1.0", "stages.2.0"):
        assert rows[name]["how"] == "not deletable (changes shape, no shortcut)"
        assert rows[name]["error"] is None and rows[name]["loss"] is None
    assert r["deletable"] == 4
    drawn = {u for row in r["delete_k"] for u in row["units"]}
    assert drawn <= {"stages.0.0", "stages.0.1", "stages.1.1", "stages.2.1"}
    assert [row["k"] for row in r["delete_k"]] == [k for k in (1, 2, 3, 4) for _ in range(4)]
    assert all(len(set(row["units"])) == row["k"] for row in r["delete_k"])


def test_random_deletions_and_swaps_are_seeded_and_measured():
    m = tiny()
    batches = data()
    a = lesion.run(m, batches, seed=7, draws=3, parts=["delete_k", "swap_k"])
    b = lesion.run(m, batches, seed=7, draws=3, parts=["delete_k", "swap_k"])
    c = lesion.run(m, batches, seed=8, draws=3, parts=["delete_k", "swap_k"])
    assert a["delete_k"] == b["delete_k"] and a["swap_k"] == b["swap_k"]
    assert [r["units"] for r in a["delete_k"]] != [r["units"] for r in c["delete_k"]]
    # all six units deleted: the net is its shortcuts only, every draw the same
    last = [r for r in a["delete_k"] if r["k"] == 6]
    assert len({r["error"] for r in last}) == 1
    assert np.array_equal(a["arrays"]["delete_k_error"][-1], [last[0]["error"]] * 3)
    # a swap row's error equals the net with those two units swapped by hand
    row = next(r for r in a["swap_k"] if r["k"] == 1)
    (u, v), = row["pairs"]
    s, i, j = int(u.split(".")[1]), int(u.split(".")[2]), int(v.split(".")[2])
    other = copy.deepcopy(m)
    blocks = list(other.stages[s])
    blocks[i], blocks[j] = blocks[j], blocks[i]
    other.stages[s] = nn.Sequential(*blocks)
    assert (row["loss"], row["error"]) == evaluate(other, batches)
    n = 6
    assert row["kendall_tau"] == pytest.approx(1 - 2 * (2 * abs(i - j) - 1) / (n * (n - 1) / 2))


def test_swaps_skipped_where_no_stage_has_two_shape_preserving_units():
    m = tiny("resnet164-B")  # bottlenecks, two units a stage: each stage's first reshapes
    r = lesion.run(m, data(1), seed=0, draws=1, delete_ks=[1])
    assert r["swap_k"] == [] and r["swap_k_skipped"].startswith("no stage has two")
    assert [row["how"] for row in r["single"]][:2] == ["shortcut only (projection)",
                                                       "shortcut only (identity)"]


def test_swap_pairs_of_a_draw_are_distinct_and_tau_is_scipys():
    """Veit et al. Fig. 5b: k pairs drawn without replacement (a pair drawn twice swaps back
    and reorders nothing; drawn with replacement, all 20 draws of k=6 of a stage's 6 pairs
    held one twice)."""
    from scipy.stats import kendalltau

    m = tiny()  # two units a stage: stage 0's pair, and none in the reshaping stages
    m2 = ra.create_model("resnet20-A", layers=(4, 1, 1), num_classes=10, in_chans=1).eval()
    r = lesion.run(m2, data(1), seed=0, draws=20, parts=["swap_k"], swap_ks=[6])
    assert len(r["swap_k"]) == 20
    for row in r["swap_k"]:
        assert len({tuple(p) for p in row["pairs"]}) == 6, row["pairs"]
    with pytest.raises(InputError, match="swap_ks go up to the 6 distinct pairs"):
        lesion.run(m2, data(1), seed=0, parts=["swap_k"], swap_ks=[7])
    order = [2, 0, 1, 3, 5, 4]
    assert lesion.kendall_tau(order) == pytest.approx(kendalltau(order, range(6)).statistic)
    assert lesion.run(m, data(1), seed=0, draws=1, parts=["swap_k"])["swap_k"]


def test_kendall_tau():
    assert lesion.kendall_tau([0, 1, 2, 3]) == 1.0
    assert lesion.kendall_tau([3, 2, 1, 0]) == -1.0
    assert lesion.kendall_tau([1, 0, 2, 3]) == pytest.approx(1 - 2 / 6)


# ---------------------------------------------------------------------------- landscape
def test_filter_normalisation():
    m = tiny()
    params = list(m.parameters())
    d = landscape.filter_normalized_direction(params, torch.Generator().manual_seed(5))
    checked = 0
    for w, di in zip(params, d):
        if w.dim() <= 1:
            assert torch.count_nonzero(di) == 0  # BN and bias: zero direction
        else:
            assert torch.allclose(di.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1),
                                  rtol=1e-5, atol=1e-7)
            assert not torch.allclose(di, w)
            checked += 1
    assert checked == sum(w.dim() > 1 for w in params) and checked > 10
    again = landscape.filter_normalized_direction(params, torch.Generator().manual_seed(5))
    other = landscape.filter_normalized_direction(params, torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(d, again))
    assert not all(torch.equal(a, b) for a, b in zip(d, other))
    keep = landscape.filter_normalized_direction(params, torch.Generator().manual_seed(5),
                                                 ignore="none")
    assert all(torch.equal(k, w) for k, w in zip(keep, params) if w.dim() <= 1)


def test_landscape_center_equals_model_loss_and_weights_are_restored():
    m = tiny()
    batches = data()
    before = snapshot(m)
    r = landscape.run(m, batches, seed=1, points=5, span=[-0.5, 0.5])
    assert_unchanged(m, before)
    loss, error = evaluate(m, batches)  # the model is in eval mode: the probe's BN mode
    assert r["x"] == r["y"] == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert r["arrays"]["loss"].shape == (5, 5)
    assert r["arrays"]["loss"][2, 2] == loss == r["center"]["loss"]
    assert r["arrays"]["error"][2, 2] == error
    assert r["arrays"]["loss"].std() > 0.01  # the directions move the loss


def test_batch_bn_mode_uses_batch_statistics_and_leaves_running_ones():
    m = tiny()
    batches = data()
    before = snapshot(m)
    r = landscape.run(m, batches, seed=1, dims=1, points=3, bn="batch")
    assert_unchanged(m, before)  # running mean/var and num_batches_tracked included
    train = copy.deepcopy(m).train()  # batch statistics (its own buffers drift: a copy)
    assert r["center"]["loss"] == pytest.approx(evaluate(train, batches)[0], rel=1e-6)
    assert r["center"]["loss"] != pytest.approx(evaluate(m, batches)[0], rel=1e-3)
    assert r["arrays"]["loss"][1] == r["center"]["loss"]


def test_landscape_point_equals_displaced_copy():
    m = tiny()
    batches = data(1)
    r = landscape.run(m, batches, seed=2, dims=1, points=3, span=[-1, 1])
    d = landscape.filter_normalized_direction(list(m.parameters()),
                                              torch.Generator().manual_seed(2))
    moved = copy.deepcopy(m)
    with torch.no_grad():
        for p, di in zip(moved.parameters(), d):
            p.add_(di, alpha=1.0)
    assert r["arrays"]["loss"].shape == (3,)
    assert r["arrays"]["loss"][2] == pytest.approx(evaluate(moved, batches)[0], rel=1e-6)


def test_landscape_sharpness_is_the_loss_rise_at_the_stated_radius():
    """Li et al.'s directions; the rise of the loss at +-r along each, over the centre's, in
    absolute loss (the sentence's number: not a ratio to the centre loss)."""
    m = tiny()
    batches = data(1)
    r = landscape.run(m, batches, seed=3, points=3, radius=0.25)
    g = torch.Generator().manual_seed(3)
    params = list(m.parameters())
    d1, d2 = (landscape.filter_normalized_direction(params, g) for _ in range(2))
    rim = []
    for d, a in ((d1, -0.25), (d1, 0.25), (d2, -0.25), (d2, 0.25)):
        moved = copy.deepcopy(m)
        with torch.no_grad():
            for p, di in zip(moved.parameters(), d):
                p.add_(di, alpha=a)
        rim.append(evaluate(moved, batches)[0])
    sh = r["sharpness"]
    assert sh["radius"] == 0.25 and sh["losses"] == pytest.approx(rim, rel=1e-6)
    centre = r["center"]["loss"]
    assert sh["rise_mean"] == pytest.approx(np.mean(rim) - centre, rel=1e-6)
    assert sh["rise_max"] == pytest.approx(max(rim) - centre, rel=1e-6)
    assert r["curvature"] is None and "curvature_ratio" not in r["arrays"]


def test_curvature_map_is_li_et_als_extreme_hessian_eigenvalues():
    """Li et al. Fig. 7, as their min_max_hessian_eigs: at the centre of a 3 x 3 grid the
    dense Hessian's eigenvalue of largest magnitude and its most negative one."""
    model = MLP().double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=g)
    eig = torch.linalg.eigvalsh(dense_hessian(model, x, y))
    assert eig.min() < 0 < eig.max()  # indefinite: both ends of the spectrum matter
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = landscape.run(model, [(x, y)], seed=0, points=3, curvature=3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    a = r["arrays"]
    assert a["hessian_max"].shape == a["hessian_min"].shape == a["curvature_ratio"].shape \
        == (3, 3) and r["curvature"] == {"points": 3, "x": [-1.0, 0.0, 1.0]}
    top = float(eig[eig.abs().argmax()])
    assert a["hessian_max"][1, 1] == pytest.approx(top, rel=2e-2)
    assert a["hessian_min"][1, 1] == pytest.approx(float(eig.min()), rel=2e-2)
    assert a["curvature_ratio"][1, 1] == pytest.approx(abs(float(eig.min()) / top), rel=5e-2)
    assert np.isfinite(a["curvature_ratio"]).all()


def test_linear_path_endpoints():
    final = tiny(seed=0)
    init = tiny(seed=4)
    batches = data()
    start, end = copy.deepcopy(init.state_dict()), copy.deepcopy(final.state_dict())
    before = snapshot(final)
    r = landscape.linear_path(final, start, end, batches, points=3, bn="eval")
    assert_unchanged(final, before)
    assert r["alpha"] == [0.0, 0.5, 1.0]
    assert r["arrays"]["loss"][0] == evaluate(init, batches)[0]
    assert r["arrays"]["loss"][2] == evaluate(final, batches)[0]
    assert r["arrays"]["loss"][1] not in (r["arrays"]["loss"][0], r["arrays"]["loss"][2])


# ---------------------------------------------------------------------------- hessian
class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 3)  # 51 parameters

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def dense_hessian(model: nn.Module, x, y) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(theta):
        parts = torch.split(theta, [math.prod(s) for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)
    return torch.autograd.functional.hessian(loss, flat)


def test_power_iteration_and_hutchinson_match_dense_hessian():
    model = MLP().double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=g)
    H = dense_hessian(model, x, y)
    eig = torch.linalg.eigvalsh(H)
    by_size = eig[eig.abs().argsort(descending=True)]
    r = hessian.run(model, [(x, y)], seed=0, top_n=2, max_iter=2000, tol=1e-10,
                    trace_iters=3000, trace_tol=0.0)
    assert r["num_params"] == 51 and all(r["eigen_converged"])
    assert r["top_eigenvalues"][0] == pytest.approx(float(by_size[0]), rel=1e-5)
    assert r["top_eigenvalues"][1] == pytest.approx(float(by_size[1]), rel=1e-3)
    trace = float(torch.trace(H))
    assert r["trace_samples"] == 3000
    assert abs(r["trace"] - trace) < 4 * r["trace_stderr"]
    assert r["trace"] == pytest.approx(trace, rel=0.05)
    assert all(p.grad is None for p in model.parameters())


class PerSample(nn.Module):
    """Sample i's logits are theta_i * c: the loss has a diagonal Hessian."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.linspace(-1.0, 2.0, n, dtype=torch.float64))
        self.register_buffer("c", torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))

    def forward(self, onehot):
        return (onehot @ self.theta)[:, None] * self.c


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    """Rademacher v has v_i^2 = 1, so v.Hv = tr H for every sample when H is diagonal."""
    n = 6
    model = PerSample(n)
    x, y = torch.eye(n, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    H = dense_hessian(model, x, y)
    assert torch.count_nonzero(H - torch.diag(torch.diag(H))) == 0
    r = hessian.run(model, [(x, y)], seed=3, top_n=1, max_iter=500, tol=1e-12,
                    trace_iters=5, trace_tol=0.0)
    assert r["arrays"]["trace_samples"] == pytest.approx([float(torch.trace(H))] * 5, rel=1e-12)
    assert r["top_eigenvalues"][0] == pytest.approx(float(torch.diag(H).abs().max()), rel=1e-8)
    stop = hessian.run(model, [(x, y)], seed=3, top_n=0, trace_iters=50)  # PyHessian's rule
    assert stop["trace_samples"] == 2


def test_hessian_over_batches_is_the_subset_mean():
    model = MLP().double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=g)
    whole = hessian.run(model, [(x, y)], seed=0, max_iter=500, tol=1e-10, trace_iters=0)
    split = hessian.run(model, [(x[:8], y[:8]), (x[8:], y[8:])], seed=0, num_batches=None,
                        max_iter=500, tol=1e-10, trace_iters=0)
    assert split["top_eigenvalues"][0] == pytest.approx(whole["top_eigenvalues"][0], rel=1e-6)
    top = float(torch.linalg.eigvalsh(dense_hessian(model, x, y)).abs().max())
    assert abs(whole["top_eigenvalues"][0]) == pytest.approx(top, rel=1e-5)


# ---------------------------------------------------------------------------- paths
def test_path_length_distribution_is_binomial():
    m = tiny()
    units = network_units(m, data(1)[0][0], "paths")
    lengths, share = paths.length_distribution(units)
    assert lengths == list(range(7)) and sum(share) == pytest.approx(1.0)
    assert share == [math.comb(6, k) / 64 for k in range(7)]
    plain = network_units(tiny("plain20"), data(1)[0][0], "paths")
    assert paths.length_distribution(plain) == ([6], [1.0])


def _first_unit_grad(m, x, y):
    grabbed = {}

    def hook(module, inputs):
        grabbed["x"] = inputs[0].detach().requires_grad_(True)
        return (grabbed["x"],)
    h = m.stages[0][0].register_forward_pre_hook(hook)
    try:
        loss = F.cross_entropy(m(x), y, reduction="sum")
        return torch.autograd.grad(loss, grabbed["x"])[0]
    finally:
        h.remove()


@pytest.mark.parametrize("name", ["resnet20-A", "resnet20-B"])
def test_all_branches_is_the_ordinary_gradient_and_single_paths_sum_to_it(name):
    m = tiny(name).double()
    x, y = data(1, size=4)[0]
    x = x.double()
    ordinary = _first_unit_grad(m, x, y)
    units = network_units(m, x, "paths")
    n = len(units)
    with paths.gated(m, units) as gates:
        loss = F.cross_entropy(m(x), y, reduction="sum")
        gates.set_path(range(n), "branches")
        (all_branches,) = torch.autograd.grad(loss, gates.inputs[0], retain_graph=True)
        total = torch.zeros_like(ordinary)
        lengths = []
        for code in range(2 ** n):
            chosen = [i for i in range(n) if code >> i & 1]
            gates.set_path(chosen, "path")
            (g,) = torch.autograd.grad(loss, gates.inputs[0], retain_graph=True)
            total += g
            lengths.append(len(chosen))
    assert torch.equal(all_branches, ordinary)
    assert torch.allclose(total, ordinary, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(g, ordinary)  # one path is not the whole gradient
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())


def test_paths_probe_numbers():
    m = tiny()
    batches = data(1)
    x, y = batches[0]
    before = snapshot(m)
    r = paths.run(m, batches, seed=0, samples=3, bn="eval", lengths=[0, 3, 6])
    assert_unchanged(m, before)
    ordinary = _first_unit_grad(m, x, y)
    unit0 = r["unit_grad_norm"][0]["grad_norm"]
    assert unit0 == pytest.approx(float(ordinary.flatten(1).norm(dim=1).mean()), rel=1e-6)
    assert r["arrays"]["path_grad"].shape == (3, 3)
    assert r["arrays"]["path_grad"][0].std() == 0  # length 0: one path, all shortcuts
    assert r["arrays"]["path_grad"][2].std() == 0  # length n: one path, all branches
    share = dict(zip(*r["length_distribution"].values()))
    gbl = r["gradient_by_length"]
    assert gbl["total"] == pytest.approx([mu * share[k] for mu, k in zip(gbl["mean"],
                                                                          gbl["length"])])
    m.set_grad_checkpointing(True)  # its backward recomputation must not re-run the gates
    again = paths.run(m, batches, seed=0, samples=3, bn="eval", lengths=[0, 3, 6])
    assert m.grad_checkpointing
    assert np.array_equal(again["arrays"]["path_grad"], r["arrays"]["path_grad"])


# ---------------------------------------------------------------------------- table, inputs
def test_table_and_json_results():
    assert {"lesion", "landscape", "linear_path", "paths", "hessian"} <= set(PROBES)
    m = tiny()
    small = {"lesion": {"draws": 1, "delete_ks": [1, 6], "swap_ks": [1]},
             "landscape": {"points": 3}, "paths": {"samples": 1, "lengths": [2]},
             "hessian": {"max_iter": 3, "trace_iters": 2}, "linear_path": {"points": 3}}
    for name in small:
        entry = PROBES[name]
        assert entry["defaults"] == {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in vars(entry["settings"]()).items()}
        extra = {"initial": tiny(seed=4).state_dict()} if entry["needs_initial"] else {}
        r = run_probe(name, m, data(1), seed=0, **small[name], **extra)
        assert r["probe"] == name and r["seed"] == 0
        assert {k: r["settings"][k] for k in small[name]} == small[name]
        json.dumps({k: v for k, v in r.items() if k != "arrays"})
        assert all(isinstance(a, np.ndarray) for a in r["arrays"].values())


@pytest.mark.parametrize("name, settings, words", [
    ("landscape", {"points": 1000}, "points must be an integer 2..201"),
    ("landscape", {"span": [1, -1]}, "low < high"),
    ("landscape", {"resolution": 21}, "unknown setting 'resolution'"),
    ("lesion", {"draws": 0}, "draws must be an integer 1..1000"),
    ("lesion", {"delete_ks": [7]}, "up to the 6 deletable units"),
    ("lesion", {"parts": ["single", "shuffle"]}, "parts must be one of"),
    ("paths", {"lengths": [9]}, "path lengths of this net are 0..6"),
    ("paths", {"bn": "train"}, "bn must be one of eval, batch"),
    ("hessian", {"max_iter": 0}, "max_iter must be an integer 1..100000"),
    ("hessian", {"top_n": 0, "trace_iters": 0}, "nothing to compute"),
    ("landscape", {"span": [0, 1e300]}, "span must be a finite number in [-10, 10]"),
    ("landscape", {"span": [-1e300, 0]}, "span must be a finite number in [-10, 10]"),
    ("landscape", {"radius": 0}, "radius must be a finite number in (0, 10]"),
    ("landscape", {"radius": 1e300}, "radius must be a finite number in (0, 10]"),
    ("landscape", {"curvature": 1}, "curvature must be an integer 2..21"),
    ("linear_path", {"span": [0, 1e300], "initial": {}}, "span must be a finite number in [-10, 10]"),
    ("hessian", {"tol": 1e300}, "tol must be a finite number in [0, 1]"),
])
def test_bad_settings_are_one_line_input_errors(name, settings, words):
    with pytest.raises(InputError) as err:
        run_probe(name, tiny(), data(1), seed=0, **settings)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_model_batches_and_probe_name():
    with pytest.raises(InputError, match="needs a resnet_ablate ResNet"):
        lesion.run(MLP(), [(torch.randn(2, 4), torch.tensor([0, 1]))], seed=0)
    with pytest.raises(InputError, match="no batches given"):
        landscape.run(tiny(), [], seed=0)
    with pytest.raises(InputError, match="unknown probe 'lesions'"):
        run_probe("lesions", tiny(), data(1), seed=0)


# ---------------------------------------------------------------------------- registry
def test_linear_path_of_the_models_own_state_dict():
    """final= the model's live state_dict (whose tensors the path overwrites) gives the
    same path as a copy of it (it did not: the end point aliased the moving weights)."""
    final, init = tiny(seed=0), tiny(seed=4)
    batches = data()
    copied = landscape.linear_path(final, init.state_dict(), copy.deepcopy(final.state_dict()),
                                   batches, points=3, bn="eval")
    live = landscape.linear_path(final, init.state_dict(), final.state_dict(), batches,
                                 points=3, bn="eval")
    assert np.array_equal(live["arrays"]["loss"], copied["arrays"]["loss"])
    r = landscape.run_linear_path(final, batches, seed=3, initial=init.state_dict(), points=3,
                                  bn="eval")
    assert r["probe"] == "linear_path" and r["seed"] == 3 and r["alpha"] == [0.0, 0.5, 1.0]
    assert r["end_loss"] == evaluate(final, batches)[0]
    assert r["start_loss"] == evaluate(init, batches)[0]


def test_register_probe_through_the_one_registry():
    from dataclasses import dataclass

    from resnet_ablate.probes.registry import REGISTRY
    from resnet_ablate.registry import Registry

    assert isinstance(REGISTRY, Registry)

    @dataclass(frozen=True)
    class Scale:
        factor: float = 2.0

    @ra.register_probe("test_sum_of_logits", settings=Scale, paper="test", claim="test")
    def summed(model, batches, *, seed, factor):
        x, _ = next(iter(batches))
        with torch.no_grad():
            return {"probe": "test_sum_of_logits", "value": factor * float(model(x).sum())}

    m = tiny()
    x = data(1)[0][0]
    with torch.no_grad():
        expected = 3.0 * float(m(x).sum())
    assert run_probe("test_sum_of_logits", m, data(1), seed=0, factor=3.0)["value"] == expected
    assert PROBES["test_sum_of_logits"]["defaults"] == {"factor": 2.0}
    with pytest.raises(InputError, match="probe 'test_sum_of_logits' is already registered"):
        ra.register_probe("test_sum_of_logits")(summed)
    with pytest.raises(InputError, match="split must be one of train, test"):
        ra.register_probe("test_other", split="val")
    with pytest.raises(InputError, match="every setting needs a default"):
        @dataclass(frozen=True)
        class NoDefault:
            eps: float

        ra.register_probe("test_other", settings=NoDefault)
    assert "test_other" not in PROBES
