"""From small real runs to the paper's figures and tables: collect, compare, figures,
reproduce; and what the report says it measured."""
import json
import shutil

import pandas as pd
import pytest
from scipy import stats

from conftest import assert_usage_error, run_cli
from resnet_ablate.analysis.collect import collect_local, load_collected
from resnet_ablate.analysis.report import degradation_findings
from resnet_ablate.analysis.collect import Collected

SWEEP = """
name: mini
method: grid
command: ["${env}", resnet-ablate, train, "${args_no_hyphens}"]
parameters:
  model: {values: [plain20, plain56, resnet20-A, resnet56-A]}
  seed: {values: [0, 1]}
  iterations: {value: 60}
  eval_every: {value: 20}
  log_every: {value: 20}
  progress: {value: "off"}
"""

EXPERIMENT = """
name: mini
title: "Mini: plain vs residual at 20 and 56 layers"
paper: "He et al. (2015), Fig. 1 and 6 in miniature"
protocol: demo
sweeps:
  - file: {sweep}
figures: [fig1, fig4, fig6, fig7, error_vs_depth, error_vs_macs, error_vs_params]
tables: [table1, table6, table2]
"""


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A real experiment: 8 short runs (4 models x 2 seeds) on digits, then its report."""
    root = tmp_path_factory.mktemp("mini")
    (root / "mini-sweep.yaml").write_text(SWEEP)
    (root / "mini.yaml").write_text(EXPERIMENT.format(sweep=root / "mini-sweep.yaml"))
    proc = run_cli("reproduce", root / "mini.yaml", "--runs-dir", root / "runs", "--out",
                   root / "report", "--jobs", "2", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


def test_reproduce_writes_every_figure_and_table(mini):
    root, proc = mini
    report = root / "report"
    for name in ("fig1", "fig4", "fig6", "fig7", "error_vs_depth", "error_vs_macs",
                 "error_vs_params"):
        for ext in ("png", "pdf"):
            assert (report / "figures" / f"{name}.{ext}").stat().st_size > 5000, name
    for name in ("table1", "table6", "compare"):
        for ext in ("md", "csv", "tex"):
            assert (report / "tables" / f"{name}.{ext}").stat().st_size > 100, name
    assert not (report / "tables" / "table2.md").exists()  # no ImageNet runs: skipped
    index = (report / "index.md").read_text()
    assert "![fig6](figures/fig6.png)" in index and "tables/table6.csv" in index
    assert "table2: needs ImageNet runs" in index  # skipped with a note, not faked
    assert "resnet-ablate reproduce" in index and "resnet-ablate sweep" in index
    assert "- torch: " in index and "- seaborn: " in index
    html = (report / "index.html").read_text()
    assert "<img src='figures/fig1.png'>" in html and "<table" in html
    assert "\\begin{tabular}" in (report / "tables" / "table6.tex").read_text()
    runs = pd.read_parquet(report / "data" / "runs.parquet")
    assert len(runs) == 8 and set(runs["status"]) == {"finished"}


def test_report_states_what_was_measured(mini):
    """The findings quote the measured means, never a fixed sentence."""
    root, proc = mini
    c = collect_local(root / "runs")
    r = c.runs
    p56 = r[(r["family"] == "plain") & (r["depth"] == 56)]["final_train_err"].astype(float)
    p20 = r[(r["family"] == "plain") & (r["depth"] == 20)]["final_train_err"].astype(float)
    index = (root / "report" / "index.md").read_text()
    assert f"plain-56 {p56.mean():.2f}% ± {p56.std():.2f}" in index
    assert f"plain-20 {p20.mean():.2f}% ± {p20.std():.2f}" in index
    p = stats.ttest_ind(p56, p20, equal_var=False).pvalue
    assert f"p = {p:.3g}" in index
    assert "residual learning" in index and ("degradation observed" in index or
                                             "no degradation" in index)
    assert "plain-56" in proc.stdout  # the findings are printed too


def test_reproduce_twice_runs_nothing_new(mini):
    root, _ = mini
    stamps = {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/summary.json")}
    again = run_cli("reproduce", root / "mini.yaml", "--runs-dir", root / "runs", "--out",
                    root / "report2", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "8 runs, 0 to run" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/summary.json")} == stamps
    assert (root / "report2" / "figures" / "fig1.png").exists()


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_compare_reports_mean_std_and_welch(mini, cli_inproc):
    root, _ = mini
    proc = cli_inproc("compare", "--runs", root / "runs", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {(r["variant"], r["depth"]): r for r in json.loads(proc.stdout)}
    assert set(rows) == {("plain", 20), ("plain", 56), ("resnet-A", 20), ("resnet-A", 56)}
    c = collect_local(root / "runs").runs
    a = c[(c["variant"] == "resnet-A") & (c["depth"] == 56)]["final_test_err"].astype(float)
    b = c[(c["variant"] == "resnet-A") & (c["depth"] == 20)]["final_test_err"].astype(float)
    row = rows[("resnet-A", 56)]
    assert row["n"] == 2 and row["test err %"] == f"{a.mean():.2f} +- {a.std():.2f}"
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert row["p (Welch)"] == ("" if p != p else f"{p:.3g}")
    text = cli_inproc("compare", "--runs", root / "runs")
    assert "Welch's t-test" in text.stdout


def test_collect_skips_broken_run_directories(mini, tmp_path, cli_inproc):
    root, _ = mini
    runs = tmp_path / "runs"
    good = sorted((root / "runs").glob("mini-*"))[:2]
    for g in good:
        shutil.copytree(g, runs / g.name)
    broken = runs / "truncated"
    shutil.copytree(good[0], broken)
    text = (broken / "summary.json").read_text()
    (broken / "summary.json").write_text(text[: len(text) // 2])
    (runs / "unfinished" / "checkpoints").mkdir(parents=True)
    (runs / "empty").mkdir()
    (runs / "no-keys").mkdir()
    (runs / "no-keys" / "summary.json").write_text('{"status": "finished"}')
    bad_history = runs / "bad-history"
    shutil.copytree(good[1], bad_history)
    (bad_history / "history.csv").write_bytes(b"\x00\xff garbage \x00\n\"unclosed")
    proc = cli_inproc("collect", "--runs", runs, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 5, proc.stderr
    assert any("unfinished" in s for s in skipped) and any("JSONDecodeError" in s
                                                          for s in skipped)
    assert any("lacks run_id" in s for s in skipped)
    c = load_collected(tmp_path / "out")
    assert sorted(c.runs["run_id"]) == sorted(g.name for g in good)
    assert set(c.history["metric"]) >= {"train_err", "train_loss", "lr", "val_err", "test_err"}
    assert len(c.responses) > 0 and set(c.responses.columns) == {"run_id", "index", "layer",
                                                                 "std"}


def test_figures_with_missing_runs_are_skipped_not_faked(mini, tmp_path, cli_inproc):
    root, _ = mini
    runs = tmp_path / "runs"
    for g in (root / "runs").glob("mini-resnet*"):
        shutil.copytree(g, runs / g.name)
    proc = cli_inproc("figures", "--runs", runs, "--out", tmp_path / "rep", "--figures", "fig1",
                   "fig6", "--tables", "table6")
    assert proc.returncode == 0, proc.stderr
    assert "skipped fig1: needs finished runs of plain20 and plain56" in proc.stdout
    assert not (tmp_path / "rep" / "figures" / "fig1.png").exists()
    assert (tmp_path / "rep" / "figures" / "fig6.png").exists()


def test_analysis_bad_input(tmp_path, cli_inproc):
    assert_usage_error(cli_inproc("figures", "--runs", tmp_path / "nope"), "does not exist")
    assert_usage_error(cli_inproc("compare", "--runs", tmp_path), "no finished runs")
    assert_usage_error(cli_inproc("figures", "--runs", tmp_path, "--figures", "fig9"),
                       "invalid choice")
    assert_usage_error(cli_inproc("reproduce", "fig99"), "unknown experiment 'fig99'; known:")


def _runs(rows):
    base = {"dataset": "cifar10", "protocol": "he2015-cifar", "status": "finished",
            "final_test_err": 10.0}
    return Collected(pd.DataFrame([{**base, **r} for r in rows]), pd.DataFrame(),
                     pd.DataFrame())


def _rows(family, depth, errs, shortcut="-"):
    return [{"family": family, "depth": depth, "shortcut": shortcut, "final_train_err": e}
            for e in errs]


def test_findings_follow_the_numbers():
    clear = _runs(_rows("plain", 20, [1.0, 1.2, 0.9]) + _rows("plain", 56, [8.0, 8.5, 7.9])
                  + _rows("resnet", 20, [1.0, 1.1, 0.9], "A")
                  + _rows("resnet", 56, [0.5, 0.6, 0.4], "A"))
    text = " ".join(degradation_findings(clear))
    assert "plain-56 8.13% ± 0.32 vs plain-20 1.03% ± 0.15 (Welch's t-test p = " in text
    assert "the deeper plain net trains worse: degradation observed" in text
    assert "residual learning fixes it: ResNet-56 trains better than plain-56" in text
    none = _runs(_rows("plain", 20, [5.0, 5.2]) + _rows("plain", 56, [1.0, 1.1])
                 + _rows("resnet", 20, [1.0, 1.1], "A") + _rows("resnet", 56, [1.0, 1.2], "A"))
    text = " ".join(degradation_findings(none))
    assert "the deeper plain net trains better: no degradation" in text
    assert "ResNet-56 does not train better than plain-56" in text
    single = _runs(_rows("plain", 20, [24.0]) + _rows("plain", 56, [66.0])
                   + _rows("resnet", 20, [24.0], "A") + _rows("resnet", 56, [43.0], "A"))
    text = " ".join(degradation_findings(single))
    assert "single runs: not tested for significance" in text
    assert "helps but does not fully fix it here" in text
    assert "but worse than ResNet-20" in text


def test_imagenet_tables_put_ours_beside_the_paper():
    from resnet_ablate.analysis.tables import table2, table3

    rows = [{"family": "resnet", "depth": 34, "shortcut": s, "final_test_err": e,
             "final_test_top5_err": t5, "protocol": "he2015-imagenet", "status": "finished"}
            for s, e, t5 in (("A", 25.0, 7.8), ("A", 25.4, 7.6), ("B", 24.6, 7.5))]
    rows.append({"family": "plain", "depth": 18, "shortcut": "-", "final_test_err": 28.0,
                 "final_test_top5_err": 9.9, "protocol": "he2015-imagenet",
                 "status": "finished"})
    c = Collected(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame())
    t3 = table3(c).set_index("model")
    assert t3.loc["ResNet-34", "runs"] == 2
    assert t3.loc["ResNet-34", "top-1 err %"] == "25.20 ± 0.28"
    assert t3.loc["ResNet-34", "top-1 (paper)"] == "25.03"
    assert t3.loc["ResNet-34", "top-5 err %"] == "7.70"
    assert t3.loc["ResNet-34 (B)", "top-5 (paper)"] == "7.46"
    assert t3.loc["ResNet-152 (B)", "runs"] == 0 and t3.loc["ResNet-152 (B)", "top-1 err %"] == ""
    t2 = table2(c).set_index("model")
    assert t2.loc["plain-18", "top-1 err %"] == "28.00" and t2.loc["plain-18", "top-1 (paper)"] == "27.94"
