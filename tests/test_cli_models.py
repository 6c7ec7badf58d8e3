"""`resnet-ablate models` and the CLI's handling of bad input."""
import json

from conftest import assert_usage_error


def test_models_lists_factors(cli):
    proc = cli("models", "resnet3[24]-*", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["model"] for r in rows] == ["resnet32-A", "resnet32-B", "resnet32-C",
                                           "resnet34-A", "resnet34-B", "resnet34-C"]
    assert rows[0]["layers"] == "5/5/5" and rows[3]["stem"] == "imagenet"
    table = cli("models")
    assert table.returncode == 0
    import resnet_ablate as ra
    rows = table.stdout.splitlines()[2:]  # after the header and its rule: one per variant
    assert [r.split()[0] for r in rows] == ra.list_models()


def test_unknown_pattern_names_closest(cli):
    assert_usage_error(cli("models", "resnt56"), "no variant matches", "resnet56-")


def test_bad_format_is_one_line(cli_inproc):
    assert_usage_error(cli_inproc("complexity", "--format", "xml"), "invalid choice",
                       "markdown")


def test_bad_input_size(cli_inproc):
    assert_usage_error(cli_inproc("complexity", "resnet20-A", "--input-size", "0"),
                       "positive")


def test_unknown_command(cli_inproc):
    assert_usage_error(cli_inproc("frobnicate"), "invalid choice")


def test_missing_subcommand(cli_inproc):
    assert_usage_error(cli_inproc(), "required")
