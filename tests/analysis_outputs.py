"""A fixed set of runs and everything the analysis says about them (compare in every metric,
the curves, the figures' captions, the tables, the report's findings), as JSON. Written once
by the DuckDB store at b7b6498 (tests/fixtures/analysis_before.json, the last commit before
analysis read run directories directly); tests/test_rundirs.py checks that run directories
give the same, number for number.

The runs: 5 models x 3 seeds (300 iterations, evaluations every 100), a rerun of a seed, a
diverged run, a run with a held-out split, a run evaluated off its interval (50, 120, 300),
and a history cut short."""
import contextlib
import io
import json
import math
from pathlib import Path

from resnet_ablate.run.rundir import RunDir
from synthetic import history, summary


def hist_write(rundir, h):
    (rundir.path / "history.parquet").write_bytes(h.to_parquet())

def run(root, run_id, h, **kw):
    rd = RunDir(root, run_id); rd.path.mkdir(parents=True, exist_ok=True)
    rd.summary_path.write_text(json.dumps(summary(run_id, **kw), indent=2))
    if h is not None:
        hist_write(rd, h)

def make(root):
    base = {"plain20": 9.0, "plain56": 14.0, "resnet20-A": 8.5, "resnet56-A": 7.0, "resnet110-A": 6.6}
    for m, b in base.items():
        for s in range(3):
            h = history(300, 100, seed=sum(map(ord, m)) * 10 + s)
            run(root, f"{m}-s{s}", h, model=m, seed=s, iterations=300, eval_every=100,
                test_err=b + 0.9 * s - (0.4 if s == 2 else 0), final_train_err_eval=b / 3 + s * 0.1,
                final_train_err=b / 2 + 0.3 * s, finished_at=f"2025-01-01T00:00:0{s}+0000")
    # a rerun of a seed, later
    run(root, "resnet20-A-s0-again", history(300, 100, seed=77), model="resnet20-A", seed=0,
        iterations=300, eval_every=100, test_err=8.0, finished_at="2025-02-01T00:00:00+0000")
    # a diverged run: NaN loss from 150, its last evaluation at 100
    h = history(300, 100, seed=5)
    cut = 150
    h.iteration, h.lr, h.train_loss, h.train_err = h.iteration[:cut], h.lr[:cut], h.train_loss[:cut], h.train_err[:cut]
    h.train_loss[-1] = float("nan"); h.evals = [e for e in h.evals if e["iteration"] <= 100]
    run(root, "plain56-s3", h, model="plain56", seed=3, iterations=300, eval_every=100, test_err=90.0,
        status="diverged", diverged_at=150, final_train_err=None, final_train_err_running=None)
    # a held-out split in the history
    h = history(300, 100, seed=9)
    for e in h.evals:
        e["val_err"], e["val_loss"] = e["test_err"] - 1.0, e["test_loss"] * 0.9
    run(root, "resnet56-A-s3", h, model="resnet56-A", seed=3, iterations=300, eval_every=100,
        test_err=7.5, final_val_err=6.0)
    # evaluations off the interval (50, 120, 300)
    h = history(300, 100, seed=11)
    h.evals = [{"iteration": i, "test_loss": 0.5 + i / 1000, "test_err": 20 - i / 30} for i in (50, 120, 300)]
    run(root, "resnet110-A-s3", h, model="resnet110-A", seed=3, iterations=300, eval_every=100, test_err=6.0)
    # a history cut short
    h = history(300, 100, seed=13)
    h.iteration, h.lr, h.train_loss, h.train_err = h.iteration[:200], h.lr[:200], h.train_loss[:200], h.train_err[:200]
    h.evals = [e for e in h.evals if e["iteration"] <= 200]
    run(root, "plain20-s3", h, model="plain20", seed=3, iterations=300, eval_every=100, test_err=9.9)

def rows(df):
    df = df.copy()
    out = []
    for r in df.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v.item() if hasattr(v, "item") else v) for k, v in r.items()})
    return out

def outputs(root: Path) -> dict:
    """Everything the analysis says about the runs under `root`, as JSON-able values."""
    make(root)
    from resnet_ablate.cli import main as cli
    res = {}
    for m in ("train", "test", "train_eval"):
        for extra in ([], ["--power"]):
            with contextlib.redirect_stdout(io.StringIO()) as t, contextlib.redirect_stderr(io.StringIO()) as e:
                code = cli(["compare", "--runs", str(root), "--metric", m, "--format", "csv", *extra])
            res[f"compare {m} {extra}"] = {"code": code, "out": t.getvalue(), "err": sorted(e.getvalue().replace(str(root), "ROOT").splitlines())}
    from resnet_ablate.analysis.rundirs import read_runs
    c = read_runs([root])
    for split in ("test", "val"):
        res[f"curves {split}"] = rows(c.curves(c.runs, split).sort_values(["run_id", "kind", "iteration"]))
        res[f"curves {split} thinned"] = rows(c.curves(c.runs, split, max_points=2).sort_values(["run_id", "kind", "iteration"]))
    res["responses"] = rows(c.responses.sort_values(["run_id", "index"]))
    res["has val"] = bool(c.has("val_err"))
    res["warnings"] = sorted(w.replace(str(root), "ROOT") for w in c.warnings)
    res["skipped"] = sorted((a.replace(str(root), "ROOT"), b) for a, b in c.skipped)
    res["runs"] = sorted(c.runs["run_id"])
    res["history thinned"] = rows(c.history(["train_err", "test_err"], max_points=7))
    from resnet_ablate.analysis.figures import FIGURE_BUILDERS, MissingRuns
    from resnet_ablate.analysis.tables import TABLE_BUILDERS
    for name, f in FIGURE_BUILDERS.items():
        try:
            fig, cap = f(c); res[f"figure {name}"] = cap
        except MissingRuns as why:
            res[f"figure {name}"] = f"missing: {why}"
    for name, f in TABLE_BUILDERS.items():
        if name == "table1":  # the architectures' counts: no run in it, 20 s of fvcore
            continue
        try:
            df, cap = f(c); res[f"table {name}"] = [df.to_csv(index=False), cap]
        except MissingRuns as why:
            res[f"table {name}"] = f"missing: {why}"
    from resnet_ablate.analysis.report import build
    rep = build(c, root.parent / "report", figures=["fig6"], tables=["table6"],
                progress=lambda m: None)
    res["findings"] = rep.findings
    for t in rep.tables:
        res[f"report table {t}"] = (root.parent / "report" / "tables" / f"{t}.csv").read_text() if (root.parent / "report" / "tables" / f"{t}.csv").exists() else None
    return json.loads(json.dumps(res, sort_keys=True, default=str))

