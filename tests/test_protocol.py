"""Protocols, overrides and the learning-rate schedule, number for number."""
import pytest
import torch

from resnet_ablate.run.config import parse_train_words
from resnet_ablate.run.protocol import (DEMO, HE2015_CIFAR, HE2015_IMAGENET, HE2016_CIFAR,
                                        apply_overrides)
from resnet_ablate.train.schedule import Schedule


def test_he2015_cifar_is_the_paper():
    p = HE2015_CIFAR
    assert (p.batch_size, p.lr, p.momentum, p.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (p.iterations, p.milestones, p.lr_gamma) == (64_000, (32_000, 48_000), 0.1)
    # the reported models trained on all 50k ("trained on the training set"); the 45k/5k
    # split is where the schedule "is determined" (val_size=5000)
    assert (p.val_size, p.pad, p.crop, p.flip) == (0, 4, 32, True)
    assert p.normalize == "per_pixel_mean" and p.test_view == "single"
    assert (p.warmup_lr, p.warmup_until_train_err, p.warmup_max_iterations,
            p.warmup_iterations, p.warmup_window, p.warmup_min_depth) == (
        0.01, 0.8, 0, 0, 10, 110)  # a condition, no cap
    assert round(p.iterations * p.batch_size / 45_000) == 182  # "about 182 epochs" of 45k


def test_he2016_cifar_warms_up_400_iterations_at_every_depth():
    """He et al. (2016), appendix: "a smaller learning rate of 0.01 at the beginning 400
    iterations and go back to 0.1 after that", whatever the error, for all CIFAR nets."""
    p = HE2016_CIFAR
    assert (p.warmup_iterations, p.warmup_lr, p.warmup_min_depth) == (400, 0.01, 1)
    assert {k: v for k, v in p.fields().items() if v != HE2015_CIFAR.fields()[k]} == {
        "warmup_iterations": 400, "warmup_min_depth": 1}
    lrs, schedule = _lrs(p, depth=20, errors=lambda it: 0.95, n=1000)  # high error: no matter
    assert schedule.warmup_end == 400
    assert lrs[399] == pytest.approx(0.01) and lrs[400] == pytest.approx(0.1)
    lrs, schedule = _lrs(p, depth=164, errors=lambda it: 0.1, n=1000)  # low error: no matter
    assert schedule.warmup_end == 400 and lrs[399] == pytest.approx(0.01)


def test_he2015_imagenet_is_the_paper():
    p = HE2015_IMAGENET
    assert (p.batch_size, p.lr, p.weight_decay, p.momentum) == (256, 0.1, 1e-4, 0.9)
    assert (p.iterations, p.lr_schedule, p.scale_range, p.crop) == (600_000, "plateau",
                                                                    (256, 480), 224)
    assert p.color_pca and p.flip and p.test_view == "10crop"
    # the plateau reads 10k held-out training images, never the reported val/ split; the
    # loader subtracts what the protocol says
    assert (p.val_size, p.normalize, p.plateau_patience) == (10_000, "per_channel_mean", 5)


def test_demo_milestones_at_the_papers_proportions():
    assert DEMO.milestones == (DEMO.iterations // 2, DEMO.iterations * 3 // 4)


def _lrs(protocol, depth, errors=None, n=None):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=protocol.lr)
    schedule = Schedule(opt, protocol, depth)
    lrs = []
    for it in range(1, (n or protocol.iterations) + 1):
        lrs.append(schedule.lr)
        opt.step()
        schedule.after_iteration(it, errors(it) if errors is not None else None)
    return lrs, schedule


def test_step_schedule_divides_by_10_at_32k_and_48k():
    lrs, schedule = _lrs(HE2015_CIFAR, depth=56)
    assert schedule.warmup_end is None and not schedule.in_warmup()  # no warm-up below 110
    assert lrs[0] == lrs[31_999] == pytest.approx(0.1)  # iterations 1..32000
    assert lrs[32_000] == lrs[47_999] == pytest.approx(0.01)  # 32001..48000
    assert lrs[48_000] == lrs[-1] == pytest.approx(0.001)
    assert len(lrs) == 64_000


def test_resnet110_warmup_ends_when_training_error_is_below_80pct():
    # Training error falls below 80% at iteration 150: the next iteration runs at 0.1, and
    # the schedule is the paper's afterwards (the known pitfall would keep 0.01).
    errors = lambda it: 0.9 if it < 150 else 0.5  # noqa: E731
    lrs, schedule = _lrs(HE2015_CIFAR, depth=110, errors=errors, n=33_000)
    # The mean of the last 10 mini-batches, m of them at 0.5: (0.5m + 0.9(10 - m)) / 10 < 0.8
    # first holds for m = 3, at iteration 152.
    assert HE2015_CIFAR.warmup_window == 10 and schedule.warmup_end == 152
    k = schedule.warmup_end
    assert all(lr == pytest.approx(0.01) for lr in lrs[:k])
    assert lrs[k] == pytest.approx(0.1)
    assert lrs[31_999] == pytest.approx(0.1) and lrs[32_000] == pytest.approx(0.01)


def test_warmup_lasts_until_the_condition_holds_with_no_silent_cap():
    """"until the training error is below 80% (about 400 iterations)": the parenthesis is
    not a cap. Above 80% for 3,000 iterations, the warm-up goes on for 3,000."""
    import dataclasses

    errors = lambda it: 0.95 if it <= 3000 else 0.5  # noqa: E731
    lrs, schedule = _lrs(HE2015_CIFAR, depth=1202, errors=errors, n=4000)
    # the mean of the last 10 mini-batches, m of them at 0.5: (0.5m + 0.95(10 - m)) / 10 < 0.8
    # first holds for m = 4, at iteration 3004; iteration 3005 runs at 0.1
    assert schedule.warmup_end == 3004 and not schedule.warmup_capped
    assert lrs[3003] == pytest.approx(0.01) and lrs[3004] == pytest.approx(0.1)
    capped = dataclasses.replace(HE2015_CIFAR, warmup_max_iterations=400)
    lrs, schedule = _lrs(capped, depth=1202, errors=lambda it: 0.95, n=1000)
    assert schedule.warmup_end == 400 and schedule.warmup_capped  # named, recorded
    assert lrs[399] == pytest.approx(0.01) and lrs[400] == pytest.approx(0.1)


@pytest.mark.parametrize("patience", [1, 5])
def test_plateau_cuts_at_the_patience_th_evaluation_without_improvement(patience):
    import dataclasses

    p = dataclasses.replace(HE2015_IMAGENET, plateau_patience=patience)
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=p.lr)
    schedule = Schedule(opt, p, depth=50)
    lrs = []
    for it, err in enumerate([50.0, 40.0] + [40.0] * 10):  # improves twice, then stalls
        schedule.after_evaluation(it, err)
        lrs.append(schedule.lr)
    stalled = lrs[2:]
    assert stalled[:patience - 1] == [pytest.approx(0.1)] * (patience - 1)
    assert stalled[patience - 1] == pytest.approx(0.01)  # the patience-th stalled evaluation


def test_schedule_state_round_trips():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = Schedule(opt, HE2015_CIFAR, 110)
    for it in range(1, 13):
        opt.step()
        schedule.after_iteration(it, 0.1)
    assert schedule.warmup_end == 10
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule2 = Schedule(opt2, HE2015_CIFAR, 110)
    assert schedule2.warmup_end is None
    opt2.load_state_dict(opt.state_dict())  # the optimizer holds the current lr
    schedule2.load_state_dict(schedule.state_dict())
    assert schedule2.factor.__dict__ == schedule.factor.__dict__
    assert schedule2.torch.last_epoch == 12 and schedule2.lr == pytest.approx(0.1)


def test_overrides_are_typed_and_recorded():
    req = parse_train_words(["model=resnet110-A", "dataset=cifar10", "lr=0.05",
                             "milestones=[100,200]", "iterations=3e2", "flip=false",
                             "model.zero_init_residual=true", "seed=3"])
    assert req.protocol.name == "he2015-cifar"
    assert (req.protocol.lr, req.protocol.milestones, req.protocol.iterations) == \
        (0.05, (100, 200), 300)
    assert req.protocol.flip is False and req.config.seed == 3
    assert req.model_overrides == {"zero_init_residual": True}
    assert req.protocol_overrides == {"lr": 0.05, "milestones": [100, 200],
                                      "iterations": 300, "flip": False}
    assert parse_train_words(["milestones=100,200"]).protocol.milestones == (100, 200)
    assert parse_train_words([]).protocol == DEMO  # digits -> the demo protocol
    timm_habit = parse_train_words(["--model", "resnet56-A", "--lr=0.05", "--amp", "bf16",
                                    "--deterministic", "--batch-size", "64"])
    assert (timm_habit.config.model, timm_habit.protocol.lr, timm_habit.config.amp,
            timm_habit.config.deterministic, timm_habit.protocol.batch_size) == (
        "resnet56-A", 0.05, "bf16", True, 64)


@pytest.mark.parametrize("words, message", [
    (["lr=fast"], "lr: expected a number; got 'fast'"),
    (["iterations=1.5"], "iterations: expected an integer"),
    (["flip=maybe"], "flip: expected true or false"),
    (["milestones=[1,x]"], "milestones"),
    (["milestones=[200,100]"], "increasing"),
    (["batch_size=0"], "batch_size must be an integer in [1, 65,536]; got 0"),
    (["learning_rate=0.1"], "unknown train key 'learning_rate'"),
    (["lr"], "expected key=value"),
    (["protocol=he2016"], "unknown protocol 'he2016'; closest: he2016-cifar"),
    (["dataset=mnist"], "dataset: expected one of digits, cifar10"),
    (["model.depth=20"], "unknown model override 'model.depth'"),
    (["device=tpu"], "device: expected one of auto, cpu, cuda"),
    (["run_id=../x"], "run_id must be 1-128 ASCII letters, digits"),
    (["run_id=caf\u00e9"], "run_id must be 1-128 ASCII letters"),
    (["run_id=a\x07b"], "run_id must be 1-128 ASCII"),
    (["momentum=nan"], "momentum must be a finite number"),
    (["lr=inf"], "lr must be a finite number"),
    (["lr=-0.1"], "lr must be in (0, 1e+06]"),
    (["lr=1e300"], "lr must be in (0, 1e+06]; got 1e+300"),
    (["weight_decay=1e300"], "weight_decay must be in [0, 10]"),
    (["num_workers=100000"], "num_workers must be in [0, "),
    (["momentum=1.5"], "momentum must be in [0, 1)"),
    (["weight_decay=-1"], "weight_decay must be in [0, 10]"),
    (["iterations=1e300"], "iterations must be an integer in [1, 1,000,000,000]"),
    (["batch_size=10000000"], "batch_size must be an integer in [1, 65,536]"),
    (["warmup_until_train_err=80"], "warmup_until_train_err is a fraction"),
    (["scale_range=[480,256]"], "scale_range must be [min, max]"),
    (["seed=-1"], "seed must be >= 0"),
    (["--lr"], "--lr needs a value"),
])
def test_bad_protocol_overrides_are_refused_with_the_allowed_range(words, message):
    from resnet_ablate.errors import InputError

    with pytest.raises(InputError) as info:
        parse_train_words(words)
    assert message in str(info.value)


def test_none_is_a_run_id_not_a_null():
    assert parse_train_words(["run_id=none"]).config.run_id == "none"


def test_every_setting_has_help_with_type_and_default():
    from resnet_ablate.run.config import settings_help

    rows = settings_help()
    keys = [r[0] for r in rows]
    assert {"model", "lr", "milestones", "deterministic", "model.options"} <= set(keys)
    assert all(r[1] and r[2] and r[3] for r in rows)
    lr = next(r for r in rows if r[0] == "lr")
    assert "he2015-cifar: 0.1" in lr[2] and "demo: 0.1" in lr[2]
    helps = {r[0]: r[3] for r in rows}  # the protocol's own words, declared on its fields
    assert helps["warmup_iterations"].startswith("a warm-up of exactly")


def test_apply_overrides_refuses_name():
    with pytest.raises(ValueError, match="unknown protocol field 'name'"):  # InputError
        apply_overrides(HE2015_CIFAR, {"name": "x"})


@pytest.mark.parametrize("words, message", [
    (["learning_rate=0.05"], "unknown train key 'learning_rate'; did you mean lr? (lr=0.05)"),
    (["--learning-rate", "0.05"], "did you mean lr? (lr=0.05)"),
    (["wd=5e-4"], "did you mean weight_decay? (weight_decay=5e-4)"),
    # epochs: the iterations they are under the protocol, of the training images it trains on
    (["epochs=10"], "unknown train key 'epochs'; did you mean iterations=99? (the paper "
                    "counts iterations: 10 epochs of 1,258 digits training images at "
                    "batch_size 128 under demo)"),
    (["--epochs", "10", "dataset=cifar10"], "did you mean iterations=3907? (the paper counts "
                                            "iterations: 10 epochs of 50,000 cifar10 training "
                                            "images at batch_size 128 under he2015-cifar)"),
    (["dataset=cifar10", "val_size=5000", "batch_size=64", "--epochs=182"],
     "did you mean iterations=127969? (the paper counts iterations: 182 epochs of 45,000"),
    (["warmup_epochs=5"], "did you mean warmup_iterations? (in iterations, not epochs"),
])
def test_habits_of_other_trainers_get_did_you_mean(words, message):
    from resnet_ablate.errors import InputError

    with pytest.raises(InputError) as info:
        parse_train_words(words)
    assert message in str(info.value)


def test_epochs_is_one_line_exit_2_with_the_iterations(cli_inproc):
    from conftest import assert_usage_error

    assert_usage_error(cli_inproc("train", "--epochs", "10", "--dry-run"),
                       "did you mean iterations=99?")


def test_milestones_past_the_last_iteration_warn_in_one_line(tmp_path, cli_inproc):
    """`milestones=300,450 iterations=200`: one warning line from --dry-run and from a run
    that shows no progress; milestones inside the run say nothing."""
    warning = ("resnet-ablate: warning: milestones 300, 450 are at or beyond the last "
               "iteration (200): the step schedule never divides the lr there")
    dry = cli_inproc("train", "model=resnet20-A", "milestones=300,450", "iterations=200",
                     "--dry-run")
    assert dry.returncode == 0 and dry.stderr.splitlines() == [warning], dry.stderr
    one = cli_inproc("train", "model=resnet20-A", "milestones=150,450", "iterations=200",
                     "--dry-run")
    assert "milestone 450 is at or beyond the last iteration (200)" in one.stderr
    assert cli_inproc("train", "milestones=100,150", "iterations=200", "--dry-run").stderr == ""
    run = cli_inproc("train", "model=plain20", "model.layers=[1,1,1]", "milestones=5",
                     "iterations=2", "eval_every=2", "progress=off", "wandb=disabled",
                     "responses=false", f"runs_dir={tmp_path}", "run_id=w")
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        "resnet-ablate: warning: milestone 5 is at or beyond the last iteration (2): the step "
        "schedule never divides the lr there"]
