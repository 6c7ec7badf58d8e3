"""A CLI a person already knows: fast to start (it imports what a command needs, no more),
`train --help` with every setting, `--dry-run`, timm's `--model x --lr=y` habit,
`complexity --per-stage`, models and formats, one-line errors."""
import json

import pytest

from conftest import assert_usage_error, run_python

HEAVY = ("torch", "timm", "wandb", "pandas", "seaborn", "matplotlib", "fvcore", "sklearn")


def _imported(*argvs: list[str]) -> list[set[str]]:
    """Which heavy modules each CLI command imports, run one after another in one fresh
    interpreter: command i's set is what was loaded after it and not before it."""
    code = ("import sys\nfrom resnet_ablate.cli import main\nfor argv in %r:\n    try:\n"
            "        main(argv)\n    except SystemExit:\n        pass\n    print('IMPORTED', "
            "sorted(m for m in %r if m in sys.modules))" % ([list(a) for a in argvs], HEAVY))
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    after = [set(eval(li.split(" ", 1)[1])) for li in proc.stdout.splitlines()
             if li.startswith("IMPORTED")]
    assert len(after) == len(argvs), proc.stdout
    return [a - b for a, b in zip(after, [set(), *after])]


# One interpreter for all, the commands that may import less first: a module an earlier
# command loaded is charged to it and was allowed for it, so each command's own imports are
# within its `allowed` exactly when they would be in an interpreter of its own.
COMMANDS = [
    (["--help"], set()),
    (["train", "--help"], set()),
    (["sweep", "--help"], set()),
    (["models", "resnet56*"], {"torch"}),  # the registry builds no model, but its parts are
    (["train", "--dry-run", "model=resnet56-A"], {"torch"}),
]


def test_commands_import_only_what_they_need():
    """Start-up within 1.5x of `import torch` (benchmarks/cli_startup.py measures it):
    timm, wandb, pandas, seaborn, matplotlib and fvcore load only for commands that use
    them."""
    assert all(a <= b for (_, a), (_, b) in zip(COMMANDS, COMMANDS[1:]))  # the order
    for (argv, allowed), imported in zip(COMMANDS, _imported(*(c for c, _ in COMMANDS))):
        assert imported <= allowed, (argv, imported)


def test_train_help_lists_every_setting_with_type_default_and_meaning(cli_inproc):
    proc = cli_inproc("train", "--help")
    assert proc.returncode == 0
    from resnet_ablate.run.config import known_keys

    for key in known_keys():
        assert f"  {key} " in proc.stdout, key
    text = " ".join(proc.stdout.split())  # as wrapped for the terminal
    assert ("type: a number; default: he2015-cifar: 0.1; he2016-cifar: 0.1; "
            "he2015-imagenet: 0.1; demo: 0.1") in text
    assert "timm's habit works too" in proc.stdout


def test_train_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path, cli_inproc):
    proc = cli_inproc("train", "--model", "resnet56-A", "--lr=0.05", "--amp", "bf16",
                      "dataset=digits", f"runs_dir={tmp_path / 'runs'}", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    planned = json.loads(proc.stdout)
    rec = planned["record"]  # the run's record as known before any image is loaded
    assert rec["model"] == "resnet56-A" and rec["run"]["amp"] == "bf16"
    assert rec["protocol_fields"]["lr"] == 0.05 and rec["overrides"]["protocol"] == {"lr": 0.05}
    assert rec["depth"] == 56 and rec["protocol"] == "demo"
    # the data's classes and channels (described, not loaded); its content not yet read
    assert (rec["num_classes"], rec["in_chans"]) == (10, 1) and rec["data"]["fingerprint"] is None
    assert planned["run_id_in_a_sweep"].startswith("resnet56-A-s0-")
    assert not (tmp_path / "runs").exists()


def test_complexity_per_stage_sums_to_the_whole_net(cli_inproc):
    proc = cli_inproc("complexity", "resnet20-A", "--per-stage", "--no-fvcore", "--format",
                      "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["stage"] for r in rows] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert sum(r["params"] for r in rows) == 269_722
    assert rows[2]["output"] == "32x16x16"
    table = cli_inproc("complexity", "resnet56*", "--no-fvcore")
    assert "ours vs paper (params or MACs vs FLOPs)" in table.stdout
    assert "+0.4% (params)" in table.stdout


def test_models_lists_every_variant_with_its_factors(cli_inproc):
    proc = cli_inproc("models", "resnet3[24]-*", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["model"] for r in rows] == ["resnet32-A", "resnet32-B", "resnet32-C",
                                           "resnet34-A", "resnet34-B", "resnet34-C"]
    assert rows[0]["layers"] == "5/5/5" and rows[3]["stem"] == "imagenet"
    table = cli_inproc("models")
    import resnet_ablate as ra

    rows = table.stdout.splitlines()[2:]  # after the header and its rule: one per variant
    assert [r.split()[0] for r in rows] == ra.list_models()
    gated = json.loads(cli_inproc("models", "resnet110-gate-excl", "--format",
                                  "json").stdout)[0]
    assert gated["options"] == "gate=exclusive,gate_bias=-6.0"
    for fmt, marker in (("csv", "model,family,depth"), ("markdown", "| model"),
                        ("latex", "\\toprule")):
        assert marker in cli_inproc("models", "plain20", "--format", fmt).stdout


def test_bad_command_line_input_is_one_line_and_exit_2(cli_inproc):
    assert_usage_error(cli_inproc("models", "resnt56"), "no variant matches", "resnet56-")
    assert_usage_error(cli_inproc("complexity", "--format", "xml"), "invalid choice",
                       "markdown")
    assert_usage_error(cli_inproc("complexity", "resnet20-A", "--input-size", "0"),
                       "--input-size must be an integer in [1, 4096]")
    assert_usage_error(cli_inproc("frobnicate"), "invalid choice")
    assert_usage_error(cli_inproc(), "required")
    assert_usage_error(cli_inproc("sweep", "demo", "--only", "model"), "--only needs KEY=V1")


def test_version_and_help_name_the_version_and_every_command(cli_inproc, capsys):
    with pytest.raises(SystemExit):
        from resnet_ablate.cli import main

        main(["--version"])
    from resnet_ablate import __version__

    assert f"resnet-ablate {__version__}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "RESNET_ABLATE_DEBUG" in out and "reproduce" in out
