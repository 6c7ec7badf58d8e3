"""From small real runs to the paper's figures and tables: read in place, compare, figures,
reproduce; one condition is one group, a seed counts once, the paper's numbers compared
like with like, and what the report says it measured."""
import json
import re
import shutil

import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from conftest import assert_usage_error, history_rows
from resnet_ablate.analysis.rundirs import EXIT_SKIPPED, RunSet, read_runs
from resnet_ablate.analysis.report import degradation_findings
from resnet_ablate.analysis.stats import by_condition
from resnet_ablate.run.rundir import parquet_bytes
from resnet_ablate.analysis.vocab import labels


def test_reproduce_writes_every_figure_and_table(mini):
    root, proc = mini
    report = root / "report"
    for name in ("fig1", "fig4", "fig6", "fig7", "error_vs_depth", "error_vs_macs",
                 "error_vs_params", "ablation"):
        for ext in ("png", "pdf"):
            assert (report / "figures" / f"{name}.{ext}").stat().st_size > 5000, name
    for ext in ("md", "csv", "tex"):
        assert (report / "tables" / f"compare.{ext}").stat().st_size > 100
    for name in ("table1", "table2", "table6"):  # the paper's ImageNet and CIFAR-10 tables
        assert not (report / "tables" / f"{name}.md").exists(), name  # digits here: skipped
    index = (report / "index.md").read_text()
    assert "![fig6](figures/fig6.png)" in index and "tables/compare.csv" in index
    assert "table2: needs ImageNet runs" in index  # skipped with a note, not faked
    assert "table6: the paper's cifar10 numbers; these runs are on digits" in index
    assert "table1: the paper's ImageNet architectures; these runs have no ImageNet-stem " \
           "net (they are on digits)" in index
    assert "beside the paper" not in index  # no paper number is drawn for digits runs
    assert "resnet-ablate reproduce" in index and "resnet-ablate sweep" in index
    assert "- torch: " in index and "- seaborn: " in index
    html = (report / "index.html").read_text()
    assert '<img src="figures/fig1.png" alt="' in html and "<table" in html
    assert "\\toprule" in (report / "tables" / "compare.tex").read_text()
    runs = pd.read_parquet(report / "data" / "runs.parquet")
    assert len(runs) == 8 and set(runs["status"]) == {"finished"}
    assert runs["condition"].nunique() == 4


def test_every_figure_and_table_says_n_what_differs_and_which_error(mini):
    root, _ = mini
    index = (root / "report" / "index.md").read_text()
    sections = index.split("\n## ")
    for name in ("fig1", "fig6", "error_vs_depth", "compare"):
        section = next(s for s in sections if f"{name}." in s or f"({name}" in s
                       or f"/{name}" in s)
        assert "n = 2 seed(s) per condition" in section, name
        assert "conditions differ in:" in section, name
    fig6 = next(s for s in sections if "figures/fig6.png" in s)
    assert "left: plain (plain-20, plain-56); right: ResNet (ResNet-20, ResNet-56)" in fig6
    assert "Training error is the paper's" in fig6


def _unescaped(markdown: str) -> str:
    """Markdown text as it reads: the report escapes [ ] * | ... of recorded values."""
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>~])", r"\1", markdown)


def test_markdown_and_html_show_the_same_numbers(mini):
    root, _ = mini
    md = (root / "report" / "tables" / "compare.md").read_text()
    html = (root / "report" / "index.html").read_text()
    cells = [_unescaped(c.strip()) for line in md.splitlines()[2:]
             for c in re.split(r"(?<!\\)\|", line) if "[" in c]
    assert cells and all(c in html for c in cells)
    assert "+-" not in md and "+-" not in html


def test_report_states_what_was_measured(mini):
    """The findings quote the measured means (the paper's training error) with their 95%
    t-intervals, and Welch's p with its Holm-adjusted value, never a fixed sentence."""
    root, proc = mini
    r = read_runs([root / "runs"]).runs
    p56 = r[(r["family"] == "plain") & (r["depth"] == 56)]["final_train_err"]
    p20 = r[(r["family"] == "plain") & (r["depth"] == 20)]["final_train_err"]
    index = _unescaped((root / "report" / "index.md").read_text())
    for label, v in (("plain-56", p56), ("plain-20", p20)):
        lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
        lo, hi = max(lo, 0.0), min(hi, 100.0)  # an error rate's interval stays in [0, 100]
        assert f"{label} {v.mean():.2f}% [{lo:.2f}, {hi:.2f}]" in index
    p = stats.ttest_ind(p56, p20, equal_var=False).pvalue
    assert f"Welch p = {p:.3g}, Holm-adjusted p = " in index
    assert "3 tests, Holm-adjusted (statsmodels multipletests)" in index
    assert "option A" in index and "the paper's (train mode" in index
    assert "plain-56" in proc.stdout  # the findings are printed too


def test_reproduce_twice_runs_nothing_new(mini, cli_inproc):
    """The same experiment again (its report cut to one figure: the runs are the point)."""
    root, _ = mini
    stamps = {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/summary.json")}
    text = (root / "mini.yaml").read_text()
    assert text.count("\nfigures: [") == text.count("\ntables: [") == 1
    again_yaml = root / "mini-again.yaml"
    again_yaml.write_text(re.sub(r"\nfigures: \[.*\]\ntables: \[.*\]\n",
                                 "\nfigures: [fig1]\ntables: []\n", text))
    assert "figures: [fig1]" in again_yaml.read_text()
    again = cli_inproc("reproduce", again_yaml, "--runs-dir", root / "runs", "--out",
                       root / "report2")
    assert again.returncode == 0, again.stderr
    assert "8 runs, 0 to run" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").glob("*/summary.json")} == stamps
    assert (root / "report2" / "figures" / "fig1.png").exists()


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_compare_reports_mean_std_and_welch(mini, cli_inproc):
    root, _ = mini
    proc = cli_inproc("compare", "--runs", root / "runs", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["condition"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"plain-20", "plain-56", "ResNet-20", "ResNet-56"}
    c = read_runs([root / "runs"]).runs
    a = c[(c["family"] == "resnet") & (c["depth"] == 56)]["final_test_err"]
    b = c[(c["family"] == "resnet") & (c["depth"] == 20)]["final_test_err"]
    row = rows["ResNet-56"]
    lo, hi = stats.t.interval(0.95, 1, loc=a.mean(), scale=stats.sem(a)) if a.std() else \
        (a.mean(), a.mean())
    lo, hi = max(lo, 0.0), min(hi, 100.0)
    assert row["runs"] == "2 finished of 2 (0 diverged, 0 failed)"
    assert row["test err % mean [95% t CI]"] == f"{a.mean():.2f} [{lo:.2f}, {hi:.2f}]"
    assert row["std"] == f"{a.std():.2f}" and not any(k.startswith("seeds") for k in row)
    if a.std() == 0 and b.std() == 0:
        assert row["verdict (Holm, alpha = 0.05)"] == "undefined (no variance)"
    else:
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
        assert row["p (Welch)"] == f"{p:.3g}"
    text = cli_inproc("compare", "--runs", root / "runs", "--metric", "train")
    assert "Welch's t-test" in text.stdout and "the paper's (train mode" in text.stdout
    assert "Holm-adjusted (statsmodels multipletests)" in text.stdout


def _copy(src, dst, **changes):
    """A copy of a run, its summary changed (another run_id, seed, lr ...)."""
    shutil.copytree(src, dst)
    s = json.loads((dst / "summary.json").read_text())
    s["run_id"] = dst.name
    for key, value in changes.items():
        if key.startswith("protocol_fields."):
            s["protocol_fields"][key.split(".", 1)[1]] = value
        else:
            s[key] = value
    (dst / "summary.json").write_text(json.dumps(s))
    return s


def test_one_condition_one_group_one_sample_per_seed(mini, tmp_path, cli_inproc):
    """An lr override is another condition; a rerun of a seed under another run_id counts
    once, with a warning naming both: two groups of n=2."""
    root, _ = mini
    runs = tmp_path / "runs"
    r56 = sorted((root / "runs").glob("resnet56-A-s*"))
    for src in r56:
        shutil.copytree(src, runs / src.name)
    for seed, src in enumerate(r56):  # the same net at lr=0.05: another condition
        _copy(src, runs / f"lr005-s{seed}", **{"protocol_fields.lr": 0.05,
                                               "final_test_err": 50.0 + seed})
    _copy(r56[0], runs / "rerun-s0")  # seed 0 again, under another name
    proc = cli_inproc("compare", "--runs", runs, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert sorted(r["condition"] for r in rows) == ["ResNet-56 (lr=0.05)", "ResNet-56 (lr=0.1)"]
    assert [r["runs"] for r in rows] == ["2 finished of 2 (0 diverged, 0 failed)"] * 2
    assert "same condition" in proc.stderr and "rerun-s0" in proc.stderr
    assert "counted once" in proc.stderr


def _runs(rows):
    base = {"dataset": "cifar10", "protocol": "he2015-cifar", "status": "finished",
            "final_test_err": 10.0, "block": "basic", "stem": "cifar",
            "protocol_fields.lr": 0.1, "params": 1, "macs": 1, "trained_on": "50000"}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["condition"] = frame["family"] + frame["depth"].astype(str) + frame["shortcut"] \
        + frame["protocol_fields.lr"].astype(str)
    frame["seed"] = frame.groupby("condition").cumcount()
    frame["run_id"] = frame["condition"] + "-" + frame["seed"].astype(str)
    frame["model"] = [f"plain{d}" if f == "plain" else f"resnet{d}-{s}"
                      for f, d, s in zip(frame["family"], frame["depth"], frame["shortcut"])]
    return RunSet(frame)


def _rows(family, depth, errs, shortcut="-", **extra):
    return [{"family": family, "depth": depth, "shortcut": shortcut, "final_train_err": e,
             **extra} for e in errs]


def test_findings_follow_the_numbers():
    clear = _runs(_rows("plain", 20, [1.0, 1.2, 0.9]) + _rows("plain", 56, [8.0, 8.5, 7.9])
                  + _rows("resnet", 20, [1.0, 1.1, 0.9], "A")
                  + _rows("resnet", 56, [0.5, 0.6, 0.4], "A"))
    text = " ".join(degradation_findings(clear))
    assert "plain-56 8.13% [7.33, 8.93] vs plain-20 1.03% [0.65, 1.41] (Δ +7.10 [+6.43, " \
           "+7.77], Welch p = " in text
    assert "3 tests, Holm-adjusted (statsmodels multipletests)" in text
    assert "the deeper plain net trains worse: degradation observed" in text
    assert "residual learning fixes it: ResNet-56 trains better than plain-56 and better " \
           "than ResNet-20" in text
    none = _runs(_rows("plain", 20, [5.0, 5.2]) + _rows("plain", 56, [1.0, 1.1])
                 + _rows("resnet", 20, [1.0, 1.1], "A") + _rows("resnet", 56, [1.0, 1.2], "A"))
    text = " ".join(degradation_findings(none))
    assert "the deeper plain net trains better: no degradation" in text
    assert "ResNet-56 is not shown different from plain-56" in text
    single = _runs(_rows("plain", 20, [24.0]) + _rows("plain", 56, [66.0])
                   + _rows("resnet", 20, [24.0], "A") + _rows("resnet", 56, [43.0], "A"))
    text = " ".join(degradation_findings(single))
    # one run a side: no test, and no direction either (not "worse", "helps", "fixes")
    assert text.count("single runs: no test, no verdict") == 3
    assert "no verdict on degradation" in text and "no verdict on residual learning" in text
    for word in ("helps", "fixes", "worse than", "better than", "degradation observed"):
        assert word not in text, word
    flat = _runs(_rows("plain", 20, [1.0, 1.0]) + _rows("plain", 56, [9.0, 9.0])
                 + _rows("resnet", 20, [1.0, 1.0], "A") + _rows("resnet", 56, [1.0, 1.0], "A"))
    text = " ".join(degradation_findings(flat))
    assert "Welch's test undefined" in text and "degradation observed" not in text


# The demo's own numbers (README, c0008d4): ResNet-56 0.23% [-0.39, 0.85] over 3 seeds vs
# ResNet-20 0.00% [0.00, 0.00], Welch p 0.255, every ResNet-56 seed worse.
DEMO = (_rows("plain", 20, [0.0, 0.03, 0.03]) + _rows("plain", 56, [45.0, 52.5, 59.3])
        + _rows("resnet", 20, [0.0, 0.0, 0.0], "A")
        + _rows("resnet", 56, [0.05, 0.15, 0.5], "A"))


def test_no_equivalence_from_absence_of_evidence():
    """The demo's ResNet-56 vs ResNet-20: not shown different with 3 and 3 seeds, which
    is not "no worse"; "no worse" comes only from a non-inferiority test against a stated
    margin, and is said only when that test rejects."""
    c = _runs(DEMO)
    text = " ".join(degradation_findings(c))
    p = stats.ttest_ind([0.05, 0.15, 0.5], [0.0, 0.0, 0.0], equal_var=False).pvalue
    assert 0.2 < p < 0.3  # the demo's 0.255, in kind
    assert "no worse than ResNet-20" not in text and "fixes it" not in text
    assert "residual learning helps: ResNet-56 trains better than plain-56; vs ResNet-20 " \
           "not shown different with 3 and 3 seeds (Δ +0.23 [" in text
    assert "no margin stated, so no claim of 'no worse'" in text
    assert "ResNet-56 0.23% [0.00, " in text  # an error rate's interval: never below 0
    assert "P(ResNet-56 < ResNet-20) = 0.00 (exact p = 0.1)" in text  # every seed worse
    assert "post hoc, from the observed Δ" in text
    # a stated margin: no worse within 1 pp (the upper one-sided 95% bound is below 1) ...
    wide = " ".join(degradation_findings(c, margin=1.0))
    assert "no worse than ResNet-20 (non-inferiority at the stated margin of 1)" in wide
    # ... but not within 0.1 pp
    tight = " ".join(degradation_findings(c, margin=0.1))
    assert "not shown no worse than it by the stated margin of 0.1" in tight
    assert "fixes it" not in tight


def test_findings_never_pool_option_a_with_option_b():
    c = _runs(_rows("plain", 20, [1.0, 1.2]) + _rows("plain", 56, [8.0, 8.5])
              + _rows("resnet", 20, [1.0, 1.1], "A") + _rows("resnet", 56, [0.5, 0.6], "A")
              + _rows("resnet", 20, [3.0, 3.1], "B") + _rows("resnet", 56, [9.0, 9.5], "B"))
    findings = [f for f in degradation_findings(c) if f.startswith("**")]
    assert len(findings) == 2
    assert "option A" in findings[0] and "ResNet-56 0.55" in findings[0]
    assert "option B" in findings[1] and "ResNet-56 (B) 9.25" in findings[1]


def test_labels_say_how_conditions_that_share_a_name_differ():
    c = _runs(_rows("resnet", 56, [1.0], "A") + _rows("resnet", 56, [2.0], "A",
                                                      **{"protocol_fields.lr": 0.05}))
    assert sorted(labels(c.runs)) == ["ResNet-56 (lr=0.05)", "ResNet-56 (lr=0.1)"]
    t = by_condition(c.runs)
    assert len(t) == 2 and list(t["n"]) == [1, 1]


def test_broken_run_directories_are_skipped_the_rest_read(mini, tmp_path, cli_inproc):
    root, _ = mini
    runs = tmp_path / "runs"
    good = sorted((root / "runs").glob("plain20-*"))[:2]
    for g in good:
        shutil.copytree(g, runs / g.name)
    broken = runs / "truncated"
    shutil.copytree(good[0], broken)
    text = (broken / "summary.json").read_text()
    (broken / "summary.json").write_text(text[: len(text) // 2])
    (runs / "unfinished" / "checkpoints").mkdir(parents=True)
    (runs / "unfinished" / "checkpoints" / "ckpt-00000010.pt").write_bytes(b"x")
    (runs / "empty").mkdir()
    (runs / "no-keys").mkdir()
    (runs / "no-keys" / "summary.json").write_text('{"status": "finished"}')
    for name, change in (("wrong-type", {"depth": "deep"}), ("not-a-map",
                                                            {"split_sizes": [1, 2]})):
        shutil.copytree(good[0], runs / name)
        s = json.loads((runs / name / "summary.json").read_text())
        (s["data"] if name == "not-a-map" else s).update(change)
        (runs / name / "summary.json").write_text(json.dumps(s))
    bad_history = runs / "bad-history"
    shutil.copytree(good[1], bad_history)
    (bad_history / "history.parquet").write_bytes(b"\x00\xff garbage \x00\n\"unclosed")
    short = runs / "short-history"
    s = _copy(good[1], short, seed=7)
    rows = history_rows(short)
    (short / "history.parquet").write_bytes(parquet_bytes(pa.Table.from_pandas(
        rows[rows["iteration"] <= 10], preserve_index=False)))
    proc = cli_inproc("figures", "--runs", runs, "--out", tmp_path / "rep", "--figures",
                      "fig1", "--tables", "table6")
    assert proc.returncode == EXIT_SKIPPED, proc.stderr  # some skipped, the rest read
    skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 5, proc.stderr
    waiting = [line for line in proc.stderr.splitlines() if "not read" in line]
    assert len(waiting) == 2 and any("unfinished (checkpoints" in s for s in waiting)
    assert any("not JSON" in s for s in skipped)
    assert any("lacks run_id" in s for s in skipped)
    assert any("depth must be an integer; got 'deep'" in s for s in skipped)
    assert any("data.split_sizes must be a mapping" in s for s in skipped)
    assert any("bad-history: history.parquet is not a Parquet file" in s for s in skipped)
    assert any("history.parquet ends at iteration 10, the summary says 20" in line
               for line in proc.stderr.splitlines())
    c = read_runs([runs])
    # bad-history is a copy of good[1] (the same summary): good[1]'s history counts
    assert sorted(c.runs["run_id"]) == sorted([g.name for g in good] + ["short-history"])
    assert c.dirs[good[1].name].path == runs / good[1].name
    history = c.history()
    for metric in ("train_err", "train_loss", "lr", "val_err", "test_err"):
        assert history[metric].notna().any(), metric
    assert set(history["granularity"]) == {"iteration"}
    assert len(c.responses) > 0 and set(c.responses.columns) == {"run_id", "index", "layer",
                                                                 "std"}


def test_figures_with_missing_runs_are_skipped_not_faked(mini, tmp_path, cli_inproc):
    root, _ = mini
    runs = tmp_path / "runs"
    for g in (root / "runs").glob("resnet*"):
        shutil.copytree(g, runs / g.name)
    proc = cli_inproc("figures", "--runs", runs, "--out", tmp_path / "rep", "--figures", "fig1",
                      "fig6", "--tables", "table6")
    assert proc.returncode == 0, proc.stderr
    assert "skipped fig1: needs finished runs of plain20 and plain56" in proc.stdout
    assert not (tmp_path / "rep" / "figures" / "fig1.png").exists()
    assert (tmp_path / "rep" / "figures" / "fig6.png").exists()


def test_the_bundled_paper_report_draws_the_papers_figures(mini, tmp_path, cli_inproc):
    root, _ = mini
    proc = cli_inproc("figures", "--runs", root / "runs", "--out", tmp_path / "paper",
                      "--report", "paper")
    assert proc.returncode == 0, proc.stderr
    index = (tmp_path / "paper" / "index.md").read_text()
    assert index.startswith("# Deep Residual Learning for Image Recognition")
    assert (tmp_path / "paper" / "figures" / "fig6.png").exists()


def test_bad_analysis_input_is_one_line_and_writes_nothing(tmp_path, cli_inproc):
    assert_usage_error(cli_inproc("figures", "--runs", tmp_path / "nope"), "does not exist")
    assert_usage_error(cli_inproc("compare", "--runs", tmp_path), "no finished runs")
    assert_usage_error(cli_inproc("figures", "--runs", tmp_path, "--figures", "fig9"),
                       "invalid choice")
    assert_usage_error(cli_inproc("figures", "--runs", tmp_path, "--report", "nope"),
                       "unknown report 'nope'", "paper")
    assert_usage_error(cli_inproc("reproduce", "fig99"), "unknown experiment 'fig99'",
                       "fig6-table6")


@pytest.mark.parametrize("body, fragment", [
    ("sweeps: [\n", "not valid YAML"),
    ("- just a list\n", "names its sweeps"),
    ("sweeps: []\n", "names its sweeps"),
    ("sweeps: [{only: {model: [plain20]}}]\n", "each sweep is a name or"),
    ("sweeps: [demo]\nfigures: [fig9]\n", "unknown figure 'fig9'"),
    ("sweeps: [demo]\ntables: table6\n", "tables must be a list of names"),
    ("sweeps: [{file: demo, only: {model: plain20}}]\n", "only: must map parameters to lists"),
    ("sweeps: [no-such-sweep]\n", "unknown sweep 'no-such-sweep'"),
])
def test_malformed_experiment_is_one_line(tmp_path, cli_inproc, body, fragment):
    path = tmp_path / "exp.yaml"
    path.write_text(body)
    assert_usage_error(cli_inproc("reproduce", path, "--dry-run"), fragment)


def test_imagenet_tables_put_ours_beside_the_paper():
    from resnet_ablate.analysis.tables import table2, table3

    rows = [{"model": f"resnet34-{s}", "family": "resnet", "depth": 34, "shortcut": s,
             "final_test_err": e, "final_test_top5_err": t5, "protocol": "he2015-imagenet",
             "dataset": "imagefolder", "status": "finished", "seed": i, "lr": lr}
            for i, (s, e, t5, lr) in enumerate((("A", 25.0, 7.8, 0.1), ("A", 25.4, 7.6, 0.1),
                                                ("B", 24.6, 7.5, 0.1), ("A", 30.0, 9.0, 0.05)))]
    rows.append({"model": "plain18", "family": "plain", "depth": 18, "shortcut": "-",
                 "final_test_err": 28.0, "final_test_top5_err": 9.9,
                 "protocol": "he2015-imagenet", "dataset": "imagefolder", "status": "finished",
                 "seed": 0, "lr": 0.1})
    frame = pd.DataFrame(rows)
    frame["protocol_fields.lr"] = frame.pop("lr")
    frame["condition"] = frame["model"] + frame["protocol_fields.lr"].astype(str)
    c = RunSet(frame)
    t3 = table3(c)[0].set_index("model")
    # the lr=0.05 run is its own row
    assert t3.loc["ResNet-34 (lr=0.1)", "runs"] == "2 finished of 2 (0 diverged, 0 failed)"
    lo, hi = stats.t.interval(0.95, 1, loc=25.2, scale=stats.sem([25.0, 25.4]))
    assert t3.loc["ResNet-34 (lr=0.1)", "top-1 err % mean [95% t CI]"] == \
        f"25.20 [{lo:.2f}, {hi:.2f}]"
    assert t3.loc["ResNet-34 (lr=0.05)", "top-1 err % mean [95% t CI]"] == "30.00 [n/a]"
    assert t3.loc["ResNet-34 (lr=0.1)", "top-1 (paper)"] == "25.03"
    assert t3.loc["ResNet-34 (lr=0.1)", "top-5 err %"] == "7.70"
    assert t3.loc["ResNet-34 (B)", "top-5 (paper)"] == "7.46"
    assert t3.loc["ResNet-152 (B)", "runs"] == "none"
    t2 = table2(c)[0].set_index("model")
    assert t2.loc["plain-18", "top-1 err % mean [95% t CI]"] == "28.00 [n/a]"
    assert t2.loc["plain-18", "top-1 (paper)"] == "27.94"


def test_he2016_tables_beside_the_paper():
    from resnet_ablate.analysis.tables import he2016_table1

    rows = [{"family": "resnet", "depth": 110, "shortcut": "A", "final_test_err": e,
             "final_train_err": 0.1, "options": json.dumps(opts, sort_keys=True,
                                                            separators=(",", ":"))}
            for e, opts in ((9.0, {"gate": "exclusive", "gate_bias": -6.0}),
                            (9.4, {"gate": "exclusive", "gate_bias": -6.0}))]
    c = _runs(rows)
    c.runs["model"] = "resnet110-gate-excl"
    c.runs["condition"] = "g"
    c.runs["seed"] = [0, 1]
    df, caption = he2016_table1(c)
    row = df.iloc[0]
    assert row["case (the paper's row)"] == "exclusive gating, b_g = -6 (Fig. 2c)"
    assert row["paper (how it was computed)"] == "8.70 (median of 5)"
    assert row["ours, as the paper reports"] == "median of 2: 9.20"
    assert row["Δ (like with like)"] == "+0.50 (medians)"
    assert "'fail' = test error above 20%, He et al. (2016)'s word" in caption
    assert "medians of 5 runs" in caption


def test_compare_power_detect_and_bootstrap(mini, cli_inproc):
    """compare --detect 0.3 --interval bootstrap: each step's seeds needed is Welch's
    (analysis.power) over each side's spread, each mean's interval scipy's seeded
    bootstrap, marked "*" at 2 runs (below its 95%)."""
    from resnet_ablate.analysis.inference import ERROR_BOUNDS, mean_ci
    from resnet_ablate.analysis.power import seeds_needed

    root, _ = mini
    proc = cli_inproc("compare", "--runs", root / "runs", "--detect", "0.3", "--interval",
                      "bootstrap", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["condition"]: r for r in json.loads(proc.stdout)}
    c = read_runs([root / "runs"]).runs
    deep = c[(c["family"] == "plain") & (c["depth"] == 56)]["final_test_err"].tolist()
    shallow = c[(c["family"] == "plain") & (c["depth"] == 20)]["final_test_err"].tolist()
    want = seeds_needed(deep, shallow, detect=0.3)
    assert rows["plain-56"]["seeds needed (Δ = 0.3)"] == ("n/a" if want is None else f"{want:,}")
    cell = rows["plain-56"]["test err % mean [95% bootstrap CI]"]
    assert cell == mean_ci(deep, method="bootstrap", bounds=ERROR_BOUNDS).format()
    assert cell.endswith("]*")
    for bad in ("-1", "nan", "1e300", "1e-30"):
        assert_usage_error(cli_inproc("compare", "--runs", root / "runs", "--detect", bad),
                           "--detect must be a difference in percentage points of error in "
                           "[0.001, 100]")


def test_figures_edf_of_a_factor(mini, tmp_path, cli_inproc):
    root, _ = mini
    out = tmp_path / "edf"
    proc = cli_inproc("figures", "--runs", root / "runs", "--out", out, "--figures", "fig1",
                      "--tables", "table6", "--edf", "family")
    assert proc.returncode == 0, proc.stderr
    assert (out / "figures" / "edf-family.png").stat().st_size > 5000
    from resnet_ablate.analysis.edf import ks as edf_ks

    c = read_runs([root / "runs"]).runs
    errs = {f: g["final_test_err"].tolist() for f, g in c.groupby("family")}
    ks = edf_ks(errs["plain"], errs["resnet"])  # scipy's, or by permutation with ties
    table = (out / "tables" / "edf-family.md").read_text()
    assert f"{ks.statistic:.3f}" in table and f"{ks.p:.3g}" in table
    assert f"KS D = {ks.statistic:.2f}, p = {ks.p:.3g}" in (out / "index.md").read_text()
    bad = tmp_path / "bad"
    assert_usage_error(cli_inproc("figures", "--runs", root / "runs", "--out", bad, "--edf",
                                  "colour"), "not a factor of the runs", "family")
    assert not bad.exists()  # refused before anything was written


def test_sweep_plans_only_the_missing_seeds_for_a_pair(mini, cli_inproc):
    """sweep --seeds-for plain56,plain20: seeds per model = seeds_needed from the two
    finished runs of each (capped at 20); the two done are skipped, the rest planned."""
    from resnet_ablate.analysis.power import seeds_needed
    from resnet_ablate.sweep.scheduler import MAX_PLANNED_SEEDS

    root, _ = mini
    c = read_runs([root / "runs"]).runs
    err = {m: g["final_test_err"].tolist() for m, g in c.groupby("model")}
    n = seeds_needed(err["plain56"], err["plain20"])
    n = 2 if n is None else min(n, MAX_PLANNED_SEEDS)
    proc = cli_inproc("sweep", root / "mini-sweep.yaml", "--runs-dir", root / "runs",
                      "--seeds-for", "plain56,plain20", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("plain", "resnet"))]
    assert len(lines) == 2 * n and not any(line.startswith("resnet") for line in lines)
    assert sum(" skip " in line for line in lines) == 4  # seeds 0 and 1 of each: finished
    assert "--seeds-for plain56,plain20" in proc.stdout
    assert_usage_error(cli_inproc("sweep", root / "mini-sweep.yaml", "--runs-dir",
                                  root / "runs", "--seeds-for", "plain56,plain99"),
                       "'plain99' is not one of the sweep's models")
