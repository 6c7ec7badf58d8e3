"""Your own ablation, compared (#32): a plugin variant against a baseline from the CLI and
from Python alike (`compare --baseline/--pairs/--by`, `ra.compare`), a default table that
fits a terminal, labels that apply only where their paper's condition holds, and a report
that shows only what it has data for. The runs are run directories written through the
record's schema (tests/synthetic.py): compare reads summaries and imports no plugin, so a
plugin variant's records are all it sees."""
import json

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

import resnet_ablate as ra
from conftest import assert_usage_error
from resnet_ablate.run.rundir import RunDir
from synthetic import history, summary

# A user's squeeze-excite variant ("se20": resnet20-A's layers, block se_basic, as a plugin
# registers it) against resnet20-A, three seeds each; and resnet20-B beside them.
SE = [6.0, 6.3, 6.1]
BASE = [7.0, 7.4, 7.1]
B_OPTION = [6.9, 7.3, 7.0]


def _write(root, run_id, model, seed, err, **changes):
    s = summary(run_id, model="resnet20-A" if model == "se20" else model, seed=seed,
                test_err=err, **changes)
    if model == "se20":
        s["model"] = "se20"  # the plugin's name for it (the factors already say se_basic)
        s["plugins"] = ["se_blocks"]
    rundir = RunDir(root, run_id)
    rundir.path.mkdir(parents=True)
    rundir.summary_path.write_text(json.dumps(s))
    rundir.history_path.write_bytes(history(30, 10, seed).to_parquet())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("own") / "runs"
    for seed, (se, base, b) in enumerate(zip(SE, BASE, B_OPTION)):
        _write(root, f"se20-s{seed}", "se20", seed, se, block="se_basic")
        _write(root, f"resnet20-A-s{seed}", "resnet20-A", seed, base)
        _write(root, f"resnet20-B-s{seed}", "resnet20-B", seed, b)
    return root


def _welch(a, b):
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return np.mean(a) - np.mean(b), p


def test_the_se_variant_against_resnet20_from_the_cli_and_from_python(runs, cli_inproc):
    """compare --baseline resnet20-A: every other condition against it, Holm over the two
    tests, the count in the caption; the same numbers from ra.compare and --pairs."""
    proc = cli_inproc("compare", "--runs", runs, "--baseline", "resnet20-A", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["condition"]: r for r in json.loads(proc.stdout)}
    se = rows["ResNet-20 (se_basic)"]
    diff, p_se = _welch(SE, BASE)
    _, p_b = _welch(B_OPTION, BASE)
    holm = multipletests([p_b, p_se], method="holm")[1]
    va, vb = np.var(SE, ddof=1) / 3, np.var(BASE, ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert se["vs"] == "ResNet-20"
    assert se["Δ row - ResNet-20 [95% Welch CI]"] == \
        f"{diff:+.2f} [{diff - half:+.2f}, {diff + half:+.2f}]"
    assert se["p (Welch)"] == f"{p_se:.3g}" and se["p (Holm)"] == f"{holm[1]:.3g}"
    assert se["verdict (Holm, alpha = 0.05)"] == ("better" if holm[1] < 0.05 else
                                                  "not shown different")
    assert se["P(row < ResNet-20) (exact rank p)"] == "1.00 (exact p = 0.1)"
    assert rows["ResNet-20"]["p (Holm)"] == ""  # the baseline itself: no test
    assert rows["ResNet-20"]["verdict (Holm, alpha = 0.05)"] == "reference"
    # Python: the same table and its caption
    df_py, caption = ra.compare(str(runs), baseline="resnet20-A")
    py = df_py.set_index("condition").loc["ResNet-20 (se_basic)"]
    for key in ("Δ row - ResNet-20 [95% Welch CI]", "p (Holm)", "verdict (Holm, alpha = 0.05)"):
        assert py[key] == se[key]
    assert "2 tests, Holm-adjusted (statsmodels multipletests)" in caption
    assert "every other condition against ResNet-20 (--baseline)" in caption
    # --pairs names one pair: one test, no correction to share
    one = cli_inproc("compare", "--runs", runs, "--pairs", "se20:resnet20-A", "--format",
                     "json")
    pair = {r["condition"]: r for r in json.loads(one.stdout)}["ResNet-20 (se_basic)"]
    assert pair["p (Holm)"] == pair["p (Welch)"] == f"{p_se:.3g}"
    df_pairs, caption = ra.compare(ra.read_runs([str(runs)]), pairs="se20:resnet20-A")
    assert "1 test, Holm-adjusted" in caption


def test_the_default_table_fits_100_columns_and_wide_keeps_the_rest(runs, cli_inproc):
    proc = cli_inproc("compare", "--runs", runs, "--baseline", "resnet20-A")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("\n\n")[0].splitlines()
    assert max(len(line) for line in table) <= 100, table
    assert table[0].split() == ["condition", "n", "mean", "[95%", "CI]", "Δ", "vs",
                                "ResNet-20", "p", "(Holm)", "verdict"]
    assert any(line.startswith("ResNet-20 (se_basic)") for line in table)
    assert "--wide or --columns for the rest" in proc.stdout
    wide = cli_inproc("compare", "--runs", runs, "--baseline", "resnet20-A", "--wide")
    assert "paper (how it was computed)" in wide.stdout and "p (Welch)" in wide.stdout
    picked = cli_inproc("compare", "--runs", runs, "--baseline", "resnet20-A", "--columns",
                        "condition,p,prob", "--format", "csv")
    assert picked.stdout.splitlines()[0] == \
        "condition,p (Welch),P(row < ResNet-20) (exact rank p)"
    every = cli_inproc("compare", "--runs", runs, "--format", "csv")
    assert "paper (how it was computed)" in every.stdout.splitlines()[0]  # CSV: every column
    assert_usage_error(cli_inproc("compare", "--runs", runs, "--columns", "colour"),
                       "--columns 'colour' is not a column; allowed: condition")


def test_long_labels_are_shortened_to_fit():
    from resnet_ablate.analysis.compare import format_compare, narrow
    from resnet_ablate.analysis.stats import by_condition
    from resnet_ablate.formatting import render
    from test_analysis import _runs

    rows = [{"family": "resnet", "depth": d, "shortcut": "A", "final_test_err": e,
             "options": json.dumps({"gate": "exclusive", "gate_bias": -6.0,
                                    "note": "a very long option value for a label"})}
            for d, errs in ((20, [7.0, 7.4, 7.1]), (56, [6.0, 6.3, 6.1])) for e in errs]
    t = by_condition(_runs(rows).runs)
    out = render(narrow(format_compare(t, "test err %"), "shallower"), "table")
    assert max(map(len, out.splitlines())) <= 100
    assert "…" in out


def test_by_a_factor_compares_within_equal_other_factors(runs, cli_inproc):
    """--by shortcut: resnet20-B against resnet20-A (equal in every other factor); the SE
    variant differs in its block too, so it is not in that comparison."""
    proc = cli_inproc("compare", "--runs", runs, "--by", "shortcut", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["condition"]: r for r in json.loads(proc.stdout)}
    _, p = _welch(B_OPTION, BASE)
    tested = {k: r for k, r in rows.items() if r["p (Welch)"]}
    assert list(tested) == ["ResNet-20 (B)"] and tested["ResNet-20 (B)"]["p (Welch)"] == f"{p:.3g}"
    assert tested["ResNet-20 (B)"]["vs"] == "ResNet-20"
    by_block = cli_inproc("compare", "--runs", runs, "--by", "block", "--format", "json")
    rows = {r["condition"]: r for r in json.loads(by_block.stdout)}
    assert rows["ResNet-20 (se_basic)"]["vs"] == "ResNet-20"  # se_basic vs basic, option A
    _, caption = ra.compare(str(runs), by="shortcut", baseline="B")
    assert "each shortcut against shortcut=B (--by shortcut): 1 test" in caption
    assert_usage_error(cli_inproc("compare", "--runs", runs, "--by", "colour"),
                       "--by 'colour' is not a factor of these runs; allowed:")
    assert_usage_error(cli_inproc("compare", "--runs", runs, "--baseline", "resnet99-A"),
                       "--baseline 'resnet99-A' names no condition", "se20")
    assert_usage_error(cli_inproc("compare", "--runs", runs, "--pairs", "se20"),
                       "--pairs takes A:B pairs")


def test_the_depth_steps_stay_the_default():
    from test_analysis import _runs, _rows

    c = _runs([{**r, "final_test_err": e} for r, e in zip(
        _rows("plain", 20, [5.0, 5.2, 5.1]) + _rows("plain", 56, [6.6, 6.9, 6.4]),
        [5.0, 5.2, 5.1, 6.6, 6.9, 6.4])])
    df, caption = ra.compare(c)
    assert "each depth step of a series against the next shallower: 1 test" in caption
    assert df.set_index("condition").loc["plain-56", "vs"] == "plain-20"


@pytest.mark.parametrize("value", ["1e300", "1e-30", "0", "nan", "inf"])
def test_detect_and_margin_ranges_are_checked_where_read(runs, cli_inproc, tmp_path, value):
    """#28.7: --detect (compare and sweep --seeds-for) and --margin in [0.001, 100]
    percentage points, one line each, exit 2, before anything is read or planned."""
    allowed = "in percentage points of error in [0.001, 100]"
    assert_usage_error(cli_inproc("compare", "--runs", runs, "--detect", value),
                       f"--detect must be a difference {allowed}")
    assert_usage_error(cli_inproc("compare", "--runs", runs, "--margin", value),
                       f"--margin must be a difference {allowed}")
    assert_usage_error(cli_inproc("figures", "--runs", runs, "--margin", value, "--out",
                                  tmp_path / "rep"), f"--margin must be a difference {allowed}")
    assert not (tmp_path / "rep").exists()
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\nmethod: grid\ncommand: [\"${env}\", resnet-ablate, train, "
                     "\"${args_no_hyphens}\"]\nparameters:\n  model: {values: [plain20, "
                     "resnet20-A]}\n  seed: {values: [0, 1]}\n")
    assert_usage_error(cli_inproc("sweep", sweep, "--runs-dir", tmp_path / "r",
                                  "--seeds-for", "plain20,resnet20-A", "--detect", value,
                                  "--dry-run"), f"--detect must be a difference {allowed}")
    from resnet_ablate.errors import InputError
    from resnet_ablate.sweep import load_sweep
    from resnet_ablate.sweep.scheduler import plan_seeds_for

    with pytest.raises(InputError, match=r"\[0\.001, 100\]"):
        plan_seeds_for(load_sweep(str(sweep)), tmp_path / "r", [("plain20", "resnet20-A")],
                       detect=float(value), log=lambda m: None)


def test_fail_is_written_only_under_he2016s_condition(runs):
    """'fail' (He et al. 2016: test error above 20%) beside a run of that paper's
    condition only: a short digits run at 52% is a mean of 3, and no caption explains a
    word it does not use."""
    from test_analysis import _runs, _rows

    short = _runs([{**r, "final_test_err": e, "dataset": "digits", "protocol": "demo"}
                   for r, e in zip(_rows("plain", 56, [45.0, 52.5, 59.3]), [45.0, 52.5, 59.3])])
    df, caption = ra.compare(short)
    row = df.iloc[0]
    assert row["ours, as the paper reports"] == "mean of 3: 52.27"
    assert not any(str(v).startswith("fail") or "both fail" in str(v) for v in row.values)
    assert "'fail'" not in caption
    fig, fig_caption = ra.figures.ablation(_runs(
        [{**r, "final_test_err": e, "dataset": "digits", "protocol": "demo"}
         for r, e in zip(_rows("plain", 56, [45.0, 52.5]) + _rows("resnet", 56, [3.0, 4.0],
                                                                  "A"),
                         [45.0, 52.5, 3.0, 4.0])]))
    assert "fail" not in fig_caption and "diamonds" not in fig_caption  # nothing drawn
    assert "dots" not in fig_caption


def test_a_cifar_report_has_no_imagenet_table_and_the_api_skips_as_the_cli(runs, tmp_path):
    """Table 1 is ImageNet's architectures: not in a CIFAR-10 report; Table 6 is CIFAR-10's
    numbers: ra.tables.table6 on digits is skipped as the report skips it."""
    from resnet_ablate.analysis.figures import MissingRuns
    from resnet_ablate.analysis.report import build
    from test_analysis import _runs, _rows

    c = ra.read_runs([str(runs)])  # CIFAR-10 runs (synthetic records)
    report = build(c, tmp_path / "rep", figures=[], tables=["table1", "table6"],
                   progress=lambda m: None)
    assert "table1" not in report.tables and "table6" in report.tables
    assert ("table1", "the paper's ImageNet architectures; these runs have no ImageNet-stem "
                      "net (they are on cifar10)") in report.skipped
    with pytest.raises(MissingRuns, match="ImageNet architectures"):
        ra.tables.table1(c)
    assert len(ra.tables.table1()[0]) == 5  # the counts alone: no run needed
    digits = _runs([{**r, "dataset": "digits"} for r in _rows("plain", 20, [5.0, 5.2])])
    with pytest.raises(MissingRuns, match="cifar10 numbers; these runs are on digits"):
        ra.tables.table6(digits)
    _, caption = ra.tables.table6(c)  # short runs: no paper number drawn, and it says so
    assert "no paper number is drawn" in caption and "beside He et al." not in caption
