"""Comparisons a reviewer accepts, through the tables that show them: intervals, Holm's
correction deciding the verdicts, seeds needed, runs that did not finish counted, the
paper's numbers compared like with like, design-space EDFs, and the 2016 ablations under
their own protocol. Each number is checked against the library called directly or a hand
computation."""
import json

from conftest import history_rows
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from resnet_ablate.analysis.compare import compare_caption, format_compare
from resnet_ablate.analysis.rundirs import RunSet
from resnet_ablate.analysis.stats import by_condition
from resnet_ablate.reference import FAIL_ABOVE, HE2016_TABLE1, HE2016_TABLE2
from test_analysis import _rows, _runs

T_975_DF2 = 4.302652729911275  # t_{0.975, 2} from a t table


def _compare(c, detect=None):
    t = by_condition(c.runs, detect=detect)
    return t, format_compare(t, "test err %", seeds=True).set_index("condition")


def _test_err_rows(family, depth, errs, shortcut="-", **extra):
    return [{**r, "final_test_err": e} for r, e in zip(_rows(family, depth, errs, shortcut,
                                                             **extra), errs)]


# Three depth steps, one per series: raw p = 0.026 (significant), 0.097, 0.60; Holm over
# the three: 0.078, 0.19, 0.60 (none significant).
HOLM_SET = (_test_err_rows("plain", 20, [5.0, 5.2, 5.1])
            + _test_err_rows("plain", 56, [5.6, 5.9, 5.5])
            + _test_err_rows("resnet", 20, [5.0, 5.6, 5.3], "A")
            + _test_err_rows("resnet", 56, [5.5, 6.1, 5.9], "A")
            + _test_err_rows("resnet", 20, [5.0, 5.9, 5.4], "B")
            + _test_err_rows("resnet", 56, [5.3, 6.1, 5.5], "B"))


def test_a_table_decides_by_holm_adjusted_p_not_the_raw_p():
    c = _runs(HOLM_SET)
    t, df = _compare(c)
    steps = {("plain", "-"): "plain-56", ("resnet", "A"): "ResNet-56",
             ("resnet", "B"): "ResNet-56 (B)"}
    raw = {}
    for (family, shortcut), label in steps.items():
        r = c.runs
        deep = r[(r.family == family) & (r.shortcut == shortcut) & (r.depth == 56)]
        shallow = r[(r.family == family) & (r.shortcut == shortcut) & (r.depth == 20)]
        raw[label] = stats.ttest_ind(deep.final_test_err, shallow.final_test_err,
                                     equal_var=False).pvalue
    _, holm, _, _ = multipletests(list(raw.values()), method="holm")
    assert min(raw.values()) < 0.05 < min(holm)  # raw significant, adjusted not
    for (label, p), q in zip(raw.items(), holm):
        row = df.loc[label]
        assert row["p (Welch)"] == f"{p:.3g}" and row["p (Holm)"] == f"{q:.3g}"
        assert row["verdict (Holm, alpha = 0.05)"] == "not shown different"
    assert "3 tests, Holm-adjusted (statsmodels multipletests)" in compare_caption(t)


def test_intervals_differences_and_improvement_by_hand():
    c = _runs(_test_err_rows("plain", 20, [5.0, 5.2, 5.1]) + _test_err_rows("plain", 56, [6.6, 6.9, 6.4]))
    _, df = _compare(c)
    x, y = np.array([6.6, 6.9, 6.4]), np.array([5.0, 5.2, 5.1])
    half = T_975_DF2 * x.std(ddof=1) / math.sqrt(3)
    row = df.loc["plain-56"]
    assert row["test err % mean [95% t CI]"] == f"{x.mean():.2f} [{x.mean() - half:.2f}, " \
                                               f"{x.mean() + half:.2f}]"
    va, vb = x.var(ddof=1) / 3, y.var(ddof=1) / 3
    dof = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    q = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    d = x.mean() - y.mean()
    assert row["Δ deeper - shallower [95% Welch CI]"] == f"{d:+.2f} [{d - q:+.2f}, {d + q:+.2f}]"
    assert row["vs"] == "plain-20"
    # every deeper run has the higher error: P(deeper < shallower) = 0 over 9 pairs, and the
    # exact two-sided p of 3 v 3 fully separated is 2 / C(6, 3) = 0.1: no bootstrap
    # interval of [0.00, 0.00] that would claim certainty
    assert row["P(deeper < shallower) (exact rank p)"] == "0.00 (exact p = 0.1)"
    one = by_condition(_runs(_test_err_rows("plain", 20, [5.0])).runs)
    assert format_compare(one, "test err %").iloc[0]["test err % mean [95% t CI]"] == "5.00 [n/a]"


def test_seeds_needed_in_compare_is_welchs_power_with_each_sides_spread():
    """The seeds column: the smallest n at which Welch's power (analysis.power, checked by
    simulation in test_inference) with each side's own spread reaches 0.8; the observed Δ
    is labelled post hoc, a named one by its size."""
    from resnet_ablate.analysis.power import welch_power

    a, b = [6.2, 6.9, 7.4, 6.5], [6.8, 7.5, 7.1, 7.7]
    c = _runs(_test_err_rows("resnet", 20, a, "A") + _test_err_rows("resnet", 56, b, "A"))
    sa, sb = np.std(b, ddof=1), np.std(a, ddof=1)  # the deeper (ResNet-56) side first
    for detect, column in ((None, "seeds needed (post hoc: the observed Δ)"),
                           (0.3, "seeds needed (Δ = 0.3)")):
        diff = abs(np.mean(a) - np.mean(b)) if detect is None else detect
        _, df = _compare(c, detect=detect)
        n = int(df.loc["ResNet-56", column])
        assert welch_power(n, sa, sb, diff) >= 0.8 > welch_power(n - 1, sa, sb, diff)
    assert n > 10  # 0.3 pp over this spread takes many seeds


def test_a_condition_whose_runs_all_diverged_has_a_row():
    rows = _test_err_rows("plain", 20, [5.0, 5.2]) + _test_err_rows("plain", 56, [0.0, 0.0, 0.0])
    c = _runs(rows)
    deep = c.runs["depth"] == 56
    c.runs.loc[deep, "status"] = "diverged"
    c.runs.loc[deep, "final_test_err"] = None
    c.runs.loc[c.runs.index[0], "status"] = "failed"  # one plain-20 run failed
    c.runs.loc[c.runs.index[0], "final_test_err"] = None
    t, df = _compare(c)
    assert df.loc["plain-56", "runs"] == "0 finished of 3 (3 diverged, 0 failed)"
    assert df.loc["plain-56", "test err % mean [95% t CI]"] == "all 3 diverged"
    assert df.loc["plain-20", "runs"] == "1 finished of 2 (0 diverged, 1 failed)"
    assert df.loc["plain-56", "verdict (Holm, alpha = 0.05)"] == \
        "no verdict (needs >= 2 runs each)"
    assert df.loc["plain-20", "verdict (Holm, alpha = 0.05)"] == "reference"  # of plain-56


def _he2016(rows):
    """Runs of He et al. (2016) variants under he2016-cifar (its warm-up field set)."""
    out = []
    for model, errs, status in rows:
        from resnet_ablate.variants.registry import get_spec

        f = get_spec(model).factors()
        for seed, e in enumerate(errs):
            out.append({"model": model, "family": f["family"], "depth": f["depth"],
                        "shortcut": f["shortcut"] or "-", "block": f["block"],
                        "stem": f["stem"], "final_test_err": e, "status": status,
                        "dataset": "cifar10", "protocol": "he2016-cifar", "seed": seed,
                        "protocol_fields.lr": 0.1, "protocol_fields.warmup_iterations": 400,
                        "params": 1, "macs": 1, "trained_on": "50000 training images",
                        **{k: json.dumps(f[k], sort_keys=True, separators=(",", ":"))
                           for k in ("options", "shortcut_options", "stem_options")}})
    frame = pd.DataFrame(out)
    frame["condition"] = frame["model"]
    frame["run_id"] = frame["model"] + "-" + frame["seed"].astype(str)
    return RunSet(frame)


def _exact_rank_p(x, y):
    """The two-sided p of the rank test of U = #(x < y) + ½ #(x = y), by enumerating every
    split of the pooled runs (ties and +inf, a diverged run, included)."""
    from itertools import combinations

    pooled = list(x) + list(y)
    u = lambda a, b: sum((i < j) + 0.5 * (i == j) for i in a for j in b)  # noqa: E731
    seen = u(x, y)
    null = []
    for idx in combinations(range(len(pooled)), len(x)):
        a = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(len(pooled)) if i not in idx]
        null.append(u(a, b))
    null = np.array(null)
    return min(1.0, 2 * min(np.mean(null <= seen + 1e-9), np.mean(null >= seen - 1e-9)))


def test_he2016_table1_medians_fail_rows_and_rank_tests_against_the_original():
    """The 2016 tables show medians of 5 that count a diverged run as a failure, so they
    test that statistic: the exact rank test, diverged runs tied as the worst, Holm over
    the table. The original ResNet-110 row is He et al. (2015)'s mean of 5 (6.61 ± 0.16),
    set beside our mean, not a median of 5; our medians say their own n."""
    from resnet_ablate.analysis.tables import he2016_table1

    c = _he2016([("resnet110-A", [6.5, 6.9, 6.7, 7.3, 6.6], "finished"),
                 ("resnet110-gate-excl", [9.0, 9.4, 8.8], "finished"),
                 ("resnet110-gate-excl-b3", [None, None, None], "diverged"),
                 ("resnet110-scale-both", [12.0, 13.1, 25.0], "finished"),
                 ("plain110", [80.0, 85.0, 90.0], "finished")])
    df, caption = he2016_table1(c)
    df = df.set_index("model")
    # the paper's order: original, constant scaling 0/1 (a plain net), 0.5/0.5, gating
    assert list(df["case (the paper's row)"]) == [
        HE2016_TABLE1[m][0] for m in ("resnet110-A", "plain110", "resnet110-scale-both",
                                      "resnet110-gate-excl-b3", "resnet110-gate-excl")]
    orig = df.loc["ResNet-110"]
    orig_errs = [6.5, 6.9, 6.7, 7.3, 6.6]
    assert orig["paper (how it was computed)"] == \
        "6.61 (mean of 5, ± 0.16; He et al. 2015, Table 6)"
    assert orig["ours, as the paper reports"] == \
        f"mean of 5: {np.mean(orig_errs):.2f} (± {np.std(orig_errs, ddof=1):.2f})"
    assert orig["Δ (like with like)"] == f"{np.mean(orig_errs) - 6.61:+.2f} (means)"
    scaled = df.loc["ResNet-110 (scaled, branch_scale=0.5, scale=0.5)"]
    assert scaled["ours, as the paper reports"] == "median of 3: 13.10"  # ours: of 3
    assert scaled["paper (how it was computed)"] == "12.35 (median of 5)"  # theirs: of 5
    assert scaled["Δ (like with like)"] == f"{13.1 - 12.35:+.2f} (medians)"
    plain = df.loc["plain-110"]
    assert plain["ours, as the paper reports"] == f"fail (median of 3: 85.00 > {FAIL_ABOVE:g}%)"
    assert plain["paper (how it was computed)"] == "fail (> 20%, median of 5)"
    assert plain["Δ (like with like)"] == "both fail"
    gone = df.loc["ResNet-110 (gate=exclusive, gate_bias=-3.0)"]
    assert gone["runs"] == "0 finished of 3 (3 diverged, 0 failed)"
    assert gone["ours, as the paper reports"] == "fail (median of 3, 3 diverged: the median run diverged)"
    # every ablation row tested against the original, the diverged one too (its runs rank
    # as the worst): the exact rank test of the statistic shown, Holm over the four
    inf = float("inf")
    rows = {"plain-110": [80.0, 85.0, 90.0],
            "ResNet-110 (scaled, branch_scale=0.5, scale=0.5)": [12.0, 13.1, 25.0],
            "ResNet-110 (gate=exclusive, gate_bias=-3.0)": [inf, inf, inf],
            "ResNet-110 (gate=exclusive, gate_bias=-6.0)": [9.0, 9.4, 8.8]}
    raw = [_exact_rank_p(v, orig_errs) for v in rows.values()]
    holm = multipletests(raw, method="holm")[1]
    for label, p, q in zip(rows, raw, holm):
        assert df.loc[label, "p (Mann-Whitney, exact)"] == f"{p:.3g}"
        assert df.loc[label, "p (Holm)"] == f"{q:.3g}"
        assert df.loc[label, "P(ablation < original) (exact rank p)"] == f"0.00 (exact p = {p:.2g})"
    assert raw[0] == pytest.approx(2 / math.comb(8, 3))  # 3 v 5, fully separated
    assert df.loc["plain-110", "Δ median ablation - original"] == f"{85.0 - 6.7:+.2f}"
    assert df.loc["ResNet-110 (gate=exclusive, gate_bias=-3.0)",
                  "Δ median ablation - original"] == "n/a"  # a median that diverged
    assert "4 tests, Holm-adjusted (statsmodels multipletests)" in caption
    assert "He et al. (2015)'s mean of 5 runs" in caption and "exact Mann-Whitney" in caption
    assert "median accuracy of 5 runs" in caption and "50000 training images" in \
        set(df["trained on"])


def test_table6_best_of_n_only_beside_a_best_of_the_same_n():
    from resnet_ablate.analysis.tables import table6

    for errs, best in (([6.5, 6.9, 6.7], "n differ: best of 3 vs best of 5"),
                       ([6.5, 6.9, 6.7, 6.4, 6.8], f"{6.4 - 6.43:+.2f}")):
        c = _runs([{"family": "resnet", "depth": 110, "shortcut": "A", "final_test_err": e,
                    "final_train_err": 0.1} for e in errs])
        c.runs["model"] = "resnet110-A"
        row = table6(c)[0].iloc[0]
        assert row["paper (how it was computed)"] == "6.43 best of 5 (6.61 ± 0.16)"
        assert row["Δ best (same n)"] == best
        assert row["Δ (like with like)"] == f"{np.mean(errs) - 6.61:+.2f} (means)"
        assert row["trained on"] == "50000"


def test_the_2016_tables_and_sweeps_are_the_papers():
    from resnet_ablate.pipeline import load_experiment
    from resnet_ablate.sweep import load_sweep
    from resnet_ablate.variants.registry import get_spec

    for model in HE2016_TABLE2:  # Table 2's ResNet-110 rows are option A, as its 6.61%
        spec = get_spec(model)
        assert spec.shortcut == ("A" if spec.depth == 110 else "B"), model
    assert get_spec("plain110").shortcut is None  # "constant scaling 0/1: a plain net"
    assert {f"resnet110-gate-excl-b{b}" for b in range(6)} <= set(HE2016_TABLE1)
    assert all(dict(get_spec(f"resnet110-gate-excl-b{b}").options) ==
               {"gate": "exclusive", "gate_bias": float(-b)} for b in range(6))
    for name, table in (("he2016-table1", HE2016_TABLE1), ("he2016-table2", HE2016_TABLE2)):
        sweep = load_sweep(name)
        assert sweep.parameters["model"]["values"] == list(table)  # the paper's order
        assert sweep.parameters["protocol"] == {"value": "he2016-cifar"}
        assert load_experiment(name).protocol == "he2016-cifar"


def test_pre_activation_labels_hide_the_presets_own_options():
    from resnet_ablate.analysis.vocab import base_label
    from resnet_ablate.variants.registry import get_spec

    def label(model):
        f = get_spec(model).factors()
        return base_label({**f, "shortcut": f["shortcut"] or "-",
                           **{k: json.dumps(f[k]) for k in ("options", "stem_options",
                                                            "shortcut_options")}})
    assert label("preresnet164") == "PreResNet-164"
    assert label("preresnet110-A") == "PreResNet-110 (A)"
    assert label("preresnet110-relu-only") == "PreResNet-110 (A, order=relu_only)"


def test_edf_and_ks_figure_data_are_scipys():
    from resnet_ablate.analysis.figures import edf_data, edf_figure, edf_table

    rng = np.random.default_rng(0)
    plain, res = rng.normal(30, 10, 12).round(2), rng.normal(8, 3, 15).round(2)
    c = _runs(_test_err_rows("plain", 20, list(plain)) + _test_err_rows("resnet", 20, list(res), "A"))
    spaces, pairs = edf_data(c, "family")
    for name, values in (("plain", plain), ("resnet", res)):
        cdf = stats.ecdf(values).cdf
        assert list(spaces[name].x) == pytest.approx(list(cdf.quantiles))
        assert list(spaces[name].F) == pytest.approx(list(cdf.probabilities))
    want = stats.ks_2samp(plain, res)
    (a, b, k), = pairs
    assert (a, b, k.method) == ("plain", "resnet", "exact")  # no ties: scipy's exact KS
    assert (k.statistic, k.p) == pytest.approx((want.statistic, want.pvalue), rel=1e-12)
    fig, caption = edf_figure(c, "family")
    for line, values in zip(fig.axes[0].lines, (plain, res)):
        x, y = line.get_data()
        cdf = stats.ecdf(values).cdf
        assert list(x[1:]) == pytest.approx(list(cdf.quantiles))
        assert list(y[1:]) == pytest.approx(list(cdf.probabilities))
        assert y[0] == 0 and line.get_drawstyle() == "steps-post"
    assert f"KS D = {want.statistic:.2f}, p = {want.pvalue:.3g}" in caption
    table = edf_table(c, "family").set_index("design space")
    assert table.loc["plain vs resnet", "KS D"] == f"{want.statistic:.3f}"
    assert table.loc["family=plain", "median"] == f"{np.median(plain):.2f}"


def test_edf_of_an_unknown_factor_is_refused_in_one_line():
    from resnet_ablate.analysis.figures import check_edf_factor
    from resnet_ablate.errors import InputError

    c = _runs(_test_err_rows("plain", 20, [5.0]))
    with pytest.raises(InputError, match="not a factor of the runs; allowed: .*family"):
        check_edf_factor(c.runs, "colour")


def test_he2016_warmup_ends_at_400_whatever_the_error(tmp_path, cli_inproc):
    """He et al. (2016), appendix: lr 0.01 for "the beginning 400 iterations", then 0.1. The
    preset says 400; a run ends its fixed warm-up at the preset's count, which a run of it
    shows at 50 (the same field, set on the command line: 60 steps, not 420). The 2015
    condition (training error below warmup_until_train_err) is met at once here (threshold
    100%) and ignored: the warm-up still ends at the count. Digits need the demo's 8 px
    crop; the schedule is the test, not the fit: mini-batches of 4, not 128."""
    from resnet_ablate.run.protocol import get_protocol

    preset = get_protocol("he2016-cifar")
    assert (preset.warmup_iterations, preset.warmup_lr, preset.lr) == (400, 0.01, 0.1)
    proc = cli_inproc("train", "protocol=he2016-cifar", "dataset=digits", "model=resnet20-A",
                      "model.layers=[1,1,1]", "crop=8", "pad=1", "flip=false",
                      "warmup_iterations=50", "batch_size=4", "iterations=60", "eval_every=60",
                      "warmup_until_train_err=1.0", "log_every=20", "responses=false",
                      "progress=off", f"runs_dir={tmp_path}", "run_id=w", "wandb=disabled")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert s["warmup_end"] == 50 and s["warmup_capped"] is False
    rows = history_rows(tmp_path / "w")
    lrs = dict(zip(rows["iteration"], rows["lr"]))
    assert lrs[50] == pytest.approx(0.01) and lrs[51] == pytest.approx(0.1)
    assert all(lrs[i] == pytest.approx(0.01) for i in range(1, 51))
    assert all(lrs[i] == pytest.approx(0.1) for i in range(51, 61))


def test_ablation_figure_draws_every_depth_with_t_intervals():
    """Table 2's two halves (ResNet-110 and ResNet-164) each get a panel; a bar's error bar
    is the 95% t-interval of its mean; a variant whose runs all diverged is drawn as such."""
    from matplotlib.collections import LineCollection

    from resnet_ablate.analysis.figures import ablation

    c = _he2016([("resnet110-A", [6.5, 6.9, 6.7], "finished"),
                 ("resnet110-bn-after-add", [8.0, 8.4, 8.3], "finished"),
                 ("resnet110-relu-before-add", [None, None, None], "diverged"),
                 ("resnet164-B", [5.9, 6.1], "finished"),
                 ("preresnet164", [5.4, 5.6, 5.5], "finished")])
    fig, caption = ablation(c)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Test error by variant, 110 layers", "Test error by variant, 164 layers"]
    assert "95% t-intervals" in caption and "110, 164 layers" in caption
    top = fig.axes[0]
    assert any(t.get_text() == "all 3 diverged" for t in top.texts)
    bars = [seg for coll in top.collections if isinstance(coll, LineCollection)
            for seg in coll.get_segments()]
    x = np.array([6.5, 6.9, 6.7])
    half = T_975_DF2 * x.std(ddof=1) / math.sqrt(3)
    assert any(seg[0][0] == pytest.approx(x.mean() - half) and
               seg[1][0] == pytest.approx(x.mean() + half) for seg in bars)


def test_planned_runs_without_a_record_count_as_not_run():
    """In a `reproduce` report the experiment's plan counts too: a planned seed that left
    no record is 'not run' in its condition's row (matched by the sweep's run name)."""
    c = _runs(_test_err_rows("plain", 20, [5.0, 5.2]))
    c.runs["run_id"] = ["plain20-s0-0123abcd", "plain20-s1-0123abcd"]
    planned = pd.DataFrame({"run_id": ["plain20-s0-0123abcd", "plain20-s1-0123abcd",
                                       "plain20-s2-0123abcd", "plain56-s0-99999999"]})
    t = by_condition(c.runs, planned=planned)
    assert str(t.iloc[0]["counts"]) == "2 finished of 3 (0 diverged, 0 failed, 1 not run)"
    assert len(t) == 1  # plain56 left no record of any seed: no condition to count it in


def test_each_quote_is_credited_and_figures_use_the_tables_intervals():
    """#31.12: the papers' words credited to the paper they come from (He et al. 2015's
    'best (mean±std)' and 45k/5k split, He et al. 2016's 'fail'), the default val_size=0
    said beside the 45k/5k; no title claims a paper number it may not draw; and a figure's
    error bars are the tables' intervals (one convention, within [0, 100])."""
    from resnet_ablate.analysis import names
    from resnet_ablate.analysis.figures import ablation
    from resnet_ablate.analysis.stats import paper_note
    from resnet_ablate.analysis.tables import he2016_table1, table6

    c = _runs(_test_err_rows("resnet", 20, [8.5, 8.9, 8.7], "A")
              + _test_err_rows("resnet", 56, [0.0, 0.0, 0.7], "A"))
    _, caption = table6(c)
    assert "He et al. (2015)'s Table 6" in caption and "'best (mean±std)'" in caption
    assert "He et al. (2015) determined the schedule 'on a 45k/5k train/val split' " \
           "(Section 4.2)" in caption
    assert "val_size=0, the default: all 50k" in caption
    _, caption = he2016_table1(_he2016([("resnet110-A", [6.5, 6.9], "finished"),
                                        ("plain110", [80.0, 85.0], "finished")]))
    assert "He et al. (2016)'s word (Table 1: \"We report 'fail' when the test error is " \
           "higher than 20%\")" in caption
    assert "He et al. (2016)'s word" in paper_note()
    titles = {**names.FIGURE_TITLES, **names.TABLE_TITLES}
    # only Table 1's, whose paper FLOPs are drawn whatever the runs
    assert [k for k, t in titles.items() if "beside the paper" in t] == ["table1"]
    # the ablation figure's bar for ResNet-56 = the compare table's interval, clipped at 0
    c = _runs(_test_err_rows("resnet", 56, [0.0, 0.0, 0.7], "A")
              + _test_err_rows("plain", 56, [5.0, 6.0, 7.0]))
    _, df = _compare(c)
    assert df.loc["ResNet-56", "test err % mean [95% t CI]"] == "0.23 [0.00, 1.24]"
    from matplotlib.collections import LineCollection

    fig, _ = ablation(c)
    segments = [seg for coll in fig.axes[0].collections if isinstance(coll, LineCollection)
                for seg in coll.get_segments()]
    x = np.array([0.0, 0.0, 0.7])
    half = T_975_DF2 * x.std(ddof=1) / math.sqrt(3)
    assert any(seg[0][0] == pytest.approx(0.0) and seg[1][0] == pytest.approx(x.mean() + half)
               for seg in segments)


def test_the_complexity_normalized_edf_is_an_option_of_the_figure_and_table():
    """edf_figure(c, factor, normalize="macs"): Radosavovic et al. (2019), Sec. 3.2's EDF,
    each of the 4 equal bins of the common MACs range weighing 1/4 in each space; the
    table's quartiles are the weighted EDF's, and a space missing from a bin is a skip
    with its reason, not a wrong curve."""
    from resnet_ablate.analysis.edf import complexity_bins, normalized_edf
    from resnet_ablate.analysis.figures import MissingRuns, edf_data, edf_figure, edf_table

    plain = [30.0, 31.0, 20.0, 22.0, 40.0, 41.0, 50.0, 12.0]
    res = [8.0, 9.0, 7.0, 6.5, 5.0, 5.5, 4.0, 4.5]
    macs = [1.0, 1.5, 2.5, 3.0, 4.5, 5.0, 6.5, 7.0]
    c = _runs([{**r, "macs": m} for r, m in zip(
        _test_err_rows("plain", 20, plain) + _test_err_rows("resnet", 20, res, "A"),
        macs + macs)])
    spaces, pairs = edf_data(c, "family", normalize="macs")
    _, idx = complexity_bins({"plain": np.array(macs), "resnet": np.array(macs)})
    want = normalized_edf(plain, idx["plain"])
    assert list(spaces["plain"].F) == pytest.approx(list(want.F)) and spaces["plain"].weighted
    (_, _, k), = pairs
    assert k.method == "permutation within bins"
    fig, caption = edf_figure(c, "family", normalize="macs")
    assert "normalised for MACs (Sec. 3.2)" in caption and "within complexity" in caption
    table = edf_table(c, "family", normalize="macs").set_index("design space")
    assert table.loc["family=plain", "median"] == f"{want.quantile(0.5):.2f}"
    lopsided = _runs([{**r, "macs": m} for r, m in zip(
        _test_err_rows("plain", 20, plain) + _test_err_rows("resnet", 20, res, "A"),
        macs + [1.0] * 7 + [7.0])])
    with pytest.raises(MissingRuns, match="design space resnet has no model with complexity"):
        edf_data(lopsided, "family", normalize="macs")
