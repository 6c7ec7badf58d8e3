"""Hostile input of issue 15, one class per test (each a row of docs/reliability.md): records
that name code never run it, the report escapes what runs recorded, signals during the final
save, crafted checkpoints, wrong-typed and float32-overflowing values, image folders with
bombs and symlink loops, stale decoded-image caches, YAML alias bombs, `--only` matching
nothing, W&B names W&B refuses, plugins that raise."""
import copy
import html.parser
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from conftest import assert_usage_error, history_rows, image_folder, run_cli, train_inproc

# A small finished run (two checkpoints kept) that the crafted records start from.
RUN = ["model=resnet20-A", "dataset=digits", "iterations=40", "eval_every=20",
       "checkpoint_every=20", "log_every=10", "progress=lines", "wandb=disabled"]
XSS = "'><img src=x onerror=alert(1)>"
UP = "../../x"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("small")
    train_inproc(*RUN, f"runs_dir={runs}", "run_id=base")
    return runs / "base"


def _copy_run(src: Path, runs: Path, run_id: str, edit=None, interrupted: bool = False) -> Path:
    """A copy of a run under another id; `edit(record)` changes its summary and config;
    `interrupted`: as if killed after its last checkpoint (no summary, weights, history)."""
    dst = runs / run_id
    shutil.copytree(src, dst)
    for name in ("summary.json", "config.json"):
        record = json.loads((dst / name).read_text())
        record["run_id"] = run_id
        if edit:
            edit(record)
        (dst / name).write_text(json.dumps(record))
    if interrupted:
        for name in ("summary.json", "model.pt", "history.parquet"):
            (dst / name).unlink()
    return dst


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------ 1. code from data
EVIL_PLUGIN = "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"


class _Evil:
    """A pickle that runs a command when loaded by pickle itself (never by weights_only)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_records_that_name_a_plugin_never_run_it(small_run, tmp_path, monkeypatch, cli_inproc):
    """figures, compare and sql read a record naming a plugin and run nothing of it;
    resume refuses it in one line that says how to name the plugin, and runs nothing.
    (In this process, the plugin importable from the working directory and sys.path: not
    imported, not in sys.modules after.)"""
    marker = tmp_path / "PLUGIN-RAN"
    plugin = tmp_path / "evil_blocks.py"
    plugin.write_text(EVIL_PLUGIN.format(marker=str(marker)))
    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # evil_blocks.py is importable from here

    def names_plugin(record):
        record["plugins"] = [str(plugin), "evil_blocks"]
    _copy_run(small_run, runs, "named", names_plugin)
    _copy_run(small_run, runs, "resumable", names_plugin, interrupted=True)
    for command in (["sql", runs, "select count(*) from history"],
                    ["figures", "--runs", runs, "--out", tmp_path / "f", "--figures", "fig6",
                     "--tables", "table6"],
                    ["compare", "--runs", runs]):
        proc = cli_inproc(*command)
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists() and "evil_blocks" not in sys.modules, command
    before = _tree(runs / "resumable")
    refused = cli_inproc("train", *RUN, f"runs_dir={runs}", "run_id=resumable", "resume=true")
    assert_usage_error(refused, "resume refused: run resumable was trained with plugin(s) "
                       f"{plugin}, evil_blocks, not loaded now", f"plugins={plugin},evil_blocks",
                       "RESNET_ABLATE_PLUGINS")
    assert not marker.exists() and _tree(runs / "resumable") == before
    assert "evil_blocks" not in sys.modules


def test_pickles_that_would_run_code_are_refused_everywhere_they_are_read(small_run,
                                                                         tmp_path, monkeypatch):
    """A checkpoint, a decoded-image cache and a timm pretrained file that are pickles of a
    command: weights_only refuses each (the checkpoint is skipped for the previous one, the
    cache rebuilt, timm raises); the command never runs."""
    marker = tmp_path / "PICKLE-RAN"
    evil = pickle.dumps({"format": 3, "model": _Evil(marker)})
    run = _copy_run(small_run, tmp_path / "runs", "r", interrupted=True)
    (run / "checkpoints" / "ckpt-00000040.pt").write_bytes(evil)
    from resnet_ablate.run.rundir import RunDir

    state = RunDir(tmp_path / "runs", "r").load_checkpoint()
    assert state["iteration"] == 20 and not marker.exists()
    # the decoded-image cache of an ImageFolder
    from resnet_ablate.data import folders

    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", 8, train=8)
    files = folders.list_images(root / "train", ["a", "b"])
    first = folders.decode(root / "train", files)
    [cache] = (tmp_path / "cache").glob("imagefolder-*.pt")
    cache.write_bytes(evil)
    again = folders.decode(root / "train", files)
    assert torch.equal(again.images, first.images) and not marker.exists()
    # timm's pretrained file (the README's way to load a run's model.pt)
    import timm

    bad = tmp_path / "model.pt"
    bad.write_bytes(evil)
    # timm re-raises torch's UnpicklingError as its own RuntimeError (timm >= 1.0.20)
    with pytest.raises((pickle.UnpicklingError, RuntimeError), match="[Ww]eights.only"):
        timm.create_model("ra_resnet20_a", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(bad)))
    assert not marker.exists()


def test_a_sweep_state_file_that_is_a_fifo_is_not_read_blocking(tmp_path):
    """The sweep runner reads runs/.sweeps/<name>.json back (failures refused at start);
    replaced by a FIFO, it is ignored at once (a blocking read would hang the sweep)."""
    from resnet_ablate.sweep import SweepRunner

    (tmp_path / ".sweeps").mkdir()
    os.mkfifo(tmp_path / ".sweeps" / "s.json")
    runner = SweepRunner([], tmp_path, "s")
    reader = threading.Thread(target=runner._recorded_failures, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive()


# ------------------------------------------------------------------ 2. the report
class _Page(html.parser.HTMLParser):
    """Every tag and attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


SAFE_LINK = re.compile(r"(figures|tables)/[A-Za-z0-9_-]+\.(png|pdf|csv|tex)")
PAGE_TAGS = {"meta", "title", "style", "h1", "h2", "p", "ul", "li", "strong", "img", "a",
             "table", "thead", "tbody", "tr", "th", "td", "pre", "code"}  # code: the commands


def _assert_inert(page: str) -> None:
    """No tag or attribute but the report's own; every link and image a report file."""
    parser = _Page()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert tag in PAGE_TAGS, (tag, attrs)
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        for key in ("src", "href"):
            if key in attrs:
                assert SAFE_LINK.fullmatch(attrs[key]), (tag, attrs)


def test_the_report_escapes_every_value_a_run_recorded(small_run, tmp_path, cli_inproc):
    """Markup and paths in every recorded name that reaches the page or a file name: the
    HTML page and the Markdown (rendered by a CommonMark renderer) show them as text, every
    file stays inside --out, named by a slug."""
    runs = tmp_path / "runs"

    def hostile_names(record):  # the factors a figure draws by stay valid
        record["dataset"] = XSS + UP
        record["protocol"] = UP + XSS
        record["trained_on"] = XSS
        record["data"]["fingerprint"] = XSS
        record["data"]["val_source"] = "[link](javascript:alert(1)) | cell"

    def hostile_labels(record):  # names that reach labels, captions and table cells
        hostile_names(record)
        record["model"] = XSS + "m"
        record["block"] = "<script>alert(1)</script>" + UP + r" $\bogus{$"  # mathtext
        record["stem"] = XSS
        record["options"] = {"x": "![i](http://evil/x.png)"}

    _copy_run(small_run, runs, "normal")
    _copy_run(small_run, runs, "names", hostile_names)
    _copy_run(small_run, runs, "labels", hostile_labels)
    _copy_run(small_run, runs, XSS.replace(" ", "_").replace("/", "_"))  # its directory name
    out = tmp_path / "nested" / "out"
    before = _tree(tmp_path)
    proc = cli_inproc("figures", "--runs", runs, "--out", out, "--figures", "fig6", "fig7",
                      "ablation", "error_vs_depth", "--tables", "table6", "--title", XSS)
    # a run id no folder can have (a summary's too: tests/test_rundirs.py) is that run
    # skipped, in one line, exit 3; every other hostile value is drawn as text
    skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert proc.returncode == 3 and len(skipped) == 1 and "run_id must be" in skipped[0], \
        proc.stderr
    outside = [p for p in _tree(tmp_path) if p not in before and not p.startswith("nested")]
    assert outside == [] and not (tmp_path / "x").exists()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert len(figures) >= 6 and all(re.fullmatch(r"[A-Za-z0-9_-]+\.(png|pdf)", f)
                                     for f in figures), figures
    assert any(f.startswith("fig6-img_src_x_onerror_alert_1_x-x_img_src_x_onerror_alert_1-")
               for f in figures), figures
    page = (out / "index.html").read_text()
    _assert_inert(page)
    assert "&#x27;&gt;&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    from markdown_it import MarkdownIt

    for md in [out / "index.md", *(out / "tables").glob("*.md")]:
        _assert_inert(MarkdownIt("commonmark").enable("table").render(md.read_text()))
    rendered = MarkdownIt("commonmark").enable("table").render((out / "index.md").read_text())
    assert "'&gt;&lt;img src=x onerror=alert(1)&gt;" in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;../../x" in rendered


def test_markdown_text_and_slugs():
    from resnet_ablate.analysis.report import _fence, md_text, slug

    assert md_text("a_b_c *x* [l](u) <b> | `c` & # h\nnext") == \
        "a_b_c \\*x\\* \\[l\\](u) &lt;b&gt; \\| \\`c\\` &amp; # h next"
    assert md_text("# heading") == "\\# heading" and md_text("_x_") == "\\_x\\_"
    assert [slug(v) for v in (UP, "..", "", "a/b'c\"d", "he2015-cifar", "x" * 99)] == [
        "x", "x", "x", "a_b_c_d", "he2015-cifar", "x" * 40]
    assert _fence(["a ```` b"]) == "`````"


def test_csv_tables_never_hand_a_spreadsheet_a_formula():
    """A recorded name that starts like a formula (=, +, -, @, tab, CR) is written with a
    leading ' in every CSV table (the report's tables/*.csv, `--format csv`), headers too;
    numbers, text that is a plain number and the harness's signed statistics (a sign, a
    digit, no function call or DDE link) stay as they are; a CR, which the writer does not
    quote, becomes a quoted newline instead of a split row."""
    import csv
    import io

    from resnet_ablate.formatting import render

    hostile = ["=HYPERLINK(\"http://evil\",\"x\")", "=1+1", "+cmd|' /C calc'!A0",
               "-1+HYPERLINK(\"http://evil\")", "-2+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1",
               "\r=1"]
    stats = ["-1.33 [-6.05, +3.39] (vs 20)", "+0.4%", "+1.00 [n/a] (vs 20)", "-0.31"]
    rows = [{"model": name, "delta": -0.31, "stat": stat, "n": -2, "e": "1e-3"}
            for name in hostile for stat in stats[:1]]
    rows += [{"model": "resnet20-A", "delta": None, "stat": stat, "n": 3, "e": "-inf"}
             for stat in stats]
    back = list(csv.reader(io.StringIO(render(rows, "csv"), newline="")))
    assert back[0] == ["model", "delta", "stat", "n", "e"]
    assert [r[0] for r in back[1:len(hostile) + 1]] == ["'" + h for h in hostile[:-1]] + [
        "'\n=1"]
    assert all(r[1:] == ["-0.31", stats[0], "-2", "1e-3"] for r in back[1:len(hostile) + 1])
    assert [r[2] for r in back[len(hostile) + 1:]] == stats  # the harness's own, unchanged
    assert back[-1] == ["resnet20-A", "", "-0.31", "3", "-inf"]
    header = list(csv.reader(io.StringIO(render([{"=cmd": 1}], "csv"))))[0]
    assert header == ["'=cmd"]


# ------------------------------------------------------------------ 4. figures' side
def test_figures_draw_a_history_read_twice_once(small_run, tmp_path):
    """A run's history rows twice (a file written so by hand, or W&B's rows of a resumed
    run) and an evaluation at iteration 0: the curves have one point per evaluation, the
    figure is drawn (it crashed on duplicate bin edges)."""
    import pandas as pd
    import pyarrow as pa

    from resnet_ablate.analysis import figures, report
    from resnet_ablate.analysis.rundirs import read_runs
    from resnet_ablate.run.rundir import parquet_bytes

    runs = tmp_path / "runs"
    for depth, run_id in ((20, "r20"), (56, "r56")):
        _copy_run(small_run, runs, run_id, lambda r, d=depth: r.update(depth=d))
    c = read_runs([runs])
    once = figures.curves(c, figures._done(c))
    for run_id in ("r20", "r56"):
        rows = history_rows(runs / run_id)
        zero = rows[rows["test_err"].notna()].head(1).assign(iteration=0, train_err=None)
        both = pd.concat([zero, rows, rows]).sort_values("iteration", kind="stable")
        (runs / run_id / "history.parquet").write_bytes(parquet_bytes(
            pa.Table.from_pandas(both, preserve_index=False)))
    twice = read_runs([runs])
    drawn = figures.curves(twice, figures._done(twice))
    assert len(once) == 2 * (2 + 2) and len(drawn) == len(once) + 2  # + the points at 0
    assert not drawn.duplicated(["run_id", "kind", "iteration"]).any()
    built = report.build(twice, tmp_path / "out", figures=["fig6"], tables=[],
                         progress=lambda _: None)
    assert built.figures == ["fig6"] and (tmp_path / "out" / "figures" / "fig6.png").stat().st_size


# ------------------------------------------------------------------ 6. signals at the save
def test_sigterm_during_the_final_save_waits_for_the_files(tmp_path):
    """Two SIGTERMs (a scheduler's preemption, then its second try) land while the final
    checkpoint and model.pt are written: 12M parameters on a 16-image folder, so the save
    lasts long enough to be seen (its temporary files). The run ends finished, exit 0,
    with every file complete and consistent."""
    data = image_folder(tmp_path / "imgs", 8, mode="L", train=8)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnet_ablate", "train", "model=resnet20-A",
         "dataset=imagefolder", f"data_dir={data}", "model.widths=[16,32,512]", "crop=8",
         "pad=1", "batch_size=8", "iterations=2", "eval_every=2", "val_size=0",
         "checkpoint_every=0", "responses=false", "wandb=disabled", "progress=lines",
         f"runs_dir={runs}", "run_id=s"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "RESNET_ABLATE_CACHE": str(tmp_path / "cache")})
    run, sent = runs / "s", []
    deadline = time.monotonic() + 300
    while proc.poll() is None and len(sent) < 2 and time.monotonic() < deadline:
        where = [run / "checkpoints", run][len(sent)]  # the checkpoint's, then model.pt's
        pattern = ".ckpt-" if not sent else ".model.pt."
        if where.is_dir() and any(n.startswith(pattern) and n.endswith(".tmp")
                                  for n in os.listdir(where)):
            proc.send_signal(signal.SIGTERM)
            sent.append(pattern)
        time.sleep(0.001)
    out = proc.communicate(timeout=300)[0]
    assert sent == [".ckpt-", ".model.pt."], ("the save ended unseen", sent, out)
    assert proc.returncode == 0, out
    assert out.count("SIGTERM received while the run's files are written") == 2, out
    assert "Traceback" not in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 2
    assert len(history_rows(run)) == 2
    model = torch.load(run / "model.pt", weights_only=True)
    [ckpt] = (run / "checkpoints").glob("ckpt-*.pt")
    state = torch.load(ckpt, weights_only=True)
    assert state["iteration"] == 2 and model.keys() == state["model"].keys()
    assert all(torch.equal(model[k], state["model"][k]) for k in model)
    assert not list(run.rglob("*.tmp"))


def test_sigterm_to_the_process_group_in_loader_mode_saves_the_run(tmp_path, cli_inproc):
    """A scheduler (and Ctrl-C) signals every process of the job: DataLoader workers leave
    it to the main process, which checkpoints and exits 143 (a worker killed by it used to
    fail the run with a traceback, its iterations lost); resume then ends the run."""
    data = image_folder(tmp_path / "imgs", 80, train=8)
    words = ["model=resnet20-A", "dataset=imagefolder", f"data_dir={data}",
             "scale_range=[36,44]", "crop=32", "batch_size=4", "iterations=30",
             "eval_every=30", "checkpoint_every=0", "log_every=1", "num_workers=2",
             "val_size=0", "lr_schedule=step", "responses=false", "progress=lines",
             "wandb=disabled", f"runs_dir={tmp_path / 'runs'}", "run_id=g"]
    proc = subprocess.Popen([sys.executable, "-m", "resnet_ablate", "train", *words],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "iter 3/30" in line:
                os.killpg(proc.pid, signal.SIGTERM)
                break
        out = "".join(lines) + proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, out
    assert "Traceback" not in out and "stopped at iteration" in out
    [ckpt] = (tmp_path / "runs" / "g" / "checkpoints").glob("ckpt-*.pt")
    assert torch.load(ckpt, weights_only=True)["iteration"] >= 3
    resumed = cli_inproc("train", *words, "resume=true")  # the resume: in this process
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "runs" / "g" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["iterations"] == 30


# ------------------------------------------------------------------ 7. crafted checkpoints
def _mutations():
    def momentum(s):
        s["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(2)
    return {
        "no optimizer": (lambda s: s.pop("optimizer"), "field 'optimizer' is missing"),
        "iteration a string": (lambda s: s.update(iteration="40"), "'iteration' is a str"),
        "no data.epoch": (lambda s: s["data"].pop("epoch"), "'data.epoch' is missing"),
        "model tensor missing": (lambda s: s["model"].pop("fc.weight"),
                                 "missing ['fc.weight']"),
        "model tensor reshaped": (lambda s: s["model"].update({"fc.bias": torch.zeros(3)}),
                                  "'model.fc.bias' is a torch.float32 tensor of shape (3,)"),
        "rng of another size": (lambda s: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
                                "'rng.torch' is a torch.uint8 tensor of shape (3,)"),
        "momentum reshaped": (momentum, "'optimizer.state.0.momentum_buffer'"),
        "no param_groups": (lambda s: s["optimizer"].pop("param_groups"),
                            "'optimizer.param_groups' is missing"),
        "schedule emptied": (lambda s: s.update(schedule={}), "'schedule.last_epoch'"),
        "history shorter": (lambda s: s["history"].update(lr=torch.zeros(3, dtype=torch.float64)),
                            "one row per iteration"),
        "iteration beyond the history": (lambda s: s.update(iteration=10 ** 6),
                                         "one row per iteration"),
        "evals without iteration": (lambda s: s["history"].update(evals=[{"x": 1}]),
                                    "'history.evals'"),
        "counters emptied": (lambda s: s.update(counters={}), "'counters.train_time'"),
        "best emptied": (lambda s: s.update(best={}), "'best.val_err'"),
    }


@pytest.fixture(scope="module")
def like(small_run, tmp_path_factory):
    """What this run's trainer saves: the template a checkpoint is checked against."""
    from resnet_ablate.run.config import parse_train_words
    from resnet_ablate.train.session import checkpoint_like, prepare

    runs = tmp_path_factory.mktemp("like")
    prep = prepare(parse_train_words([*RUN, f"runs_dir={runs}", "run_id=t"]))
    prep.rundir.release()
    return checkpoint_like(prep.trainer)


@pytest.mark.parametrize("case", list(_mutations()))
def test_a_checkpoint_with_missing_or_wrong_typed_fields_is_unreadable(small_run, like,
                                                                       tmp_path, capsys, case):
    from resnet_ablate.run.rundir import RunDir, _check_checkpoint

    mutate, message = _mutations()[case]
    run = _copy_run(small_run, tmp_path, "r", interrupted=True)
    newest = run / "checkpoints" / "ckpt-00000040.pt"
    state = torch.load(newest, weights_only=True)
    _check_checkpoint(copy.deepcopy(state), like)  # as saved, it passes
    mutate(state)
    torch.save(state, newest)
    loaded = RunDir(tmp_path, "r").load_checkpoint(like=like)
    assert loaded["iteration"] == 20  # the previous one
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ckpt-00000040.pt is unreadable" in err[0], err
    assert message in err[0], err[0]


def test_resume_past_a_crafted_checkpoint_and_none_left(small_run, tmp_path, cli_inproc):
    """Through `train resume=true`: the newest crafted one skipped for the previous, which
    the run continues from to the end; both crafted: one line, exit 2, nothing written."""
    run = _copy_run(small_run, tmp_path, "r", interrupted=True)
    newest = run / "checkpoints" / "ckpt-00000040.pt"
    state = torch.load(newest, weights_only=True)
    state["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(2)
    torch.save(state, newest)
    resumed = cli_inproc("train", *RUN, f"runs_dir={tmp_path}", "run_id=r", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "ckpt-00000040.pt is unreadable" in resumed.stderr
    assert "resuming at iteration 20" in resumed.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    both = _copy_run(small_run, tmp_path, "both", interrupted=True)
    for ckpt in (both / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, weights_only=True)
        del state["counters"]
        torch.save(state, ckpt)
    before = [(p, p.stat().st_mtime_ns) for p in sorted(both.rglob("*"))]
    refused = cli_inproc("train", *RUN, f"runs_dir={tmp_path}", "run_id=both", "resume=true")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 3 and all("is unreadable" in line for line in lines[:2])
    assert "no readable checkpoint in" in lines[2] and "Traceback" not in refused.stderr
    assert [(p, p.stat().st_mtime_ns) for p in sorted(both.rglob("*"))] == before


# ------------------------------------------------------------------ 8. values
@pytest.mark.parametrize("words, fragment", [
    (['model.options={"branch_scale": "abc"}'], "option branch_scale must be a number"),
    (["model=resnet110-dropout-sc", 'model.shortcut_options={"p": "x"}'],
     "shortcut 'dropout' option p must be a number"),
    (["model=resnet110-gate-excl", 'model.options={"gate_bias": "x"}'],
     "option gate_bias must be a number"),
    (['model.options={"branch_scale": 1e300}'], "must be within float32's range"),
    (["model=resnet110-gate-excl", 'model.options={"gate_bias": -1e39}'],
     "must be within float32's range"),
    (["lr=1e300"], "lr must be in (0, 1e+06]"),
    (["weight_decay=1e300"], "weight_decay must be in [0, 10]"),
    (["warmup_lr=1e300"], "warmup_lr must be in (0, 1e+06]"),
    (["num_workers=1000000"], "num_workers must be in [0, "),
])
def test_values_of_the_wrong_type_or_beyond_float32_are_refused(tmp_path, cli_inproc, words,
                                                                fragment):
    proc = cli_inproc("train", f"runs_dir={tmp_path / 'runs'}", "wandb=disabled", *words)
    assert_usage_error(proc, fragment)
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ 9. image folders
def _bomb(root: Path) -> None:
    """A 400-megapixel PNG of a few kB: over twice PIL's MAX_IMAGE_PIXELS."""
    from PIL import Image

    Image.new("1", (20000, 20000)).save(root / "train" / "a" / "9.png")


def _loop(root: Path) -> None:
    os.symlink("9x.png", root / "train" / "a" / "9.png")
    os.symlink("9.png", root / "train" / "a" / "9x.png")


def _class_loop(root: Path) -> None:
    os.symlink("c", root / "train" / "c")


def _dangling(root: Path) -> None:
    os.symlink("nowhere.png", root / "train" / "a" / "9.png")


def _fifo(root: Path) -> None:
    os.mkfifo(root / "train" / "a" / "9.png")


@pytest.mark.parametrize("mode", ["tensor", "loader"])
@pytest.mark.parametrize("make, named, why", [
    (_bomb, "train/a/9.png", "DecompressionBombError"),
    (_loop, "train/a/9.png", "a symlink loop"),
    (_class_loop, "train/c", "a symlink loop"),
    (_dangling, "train/a/9.png", "a symlink to nothing"),
    (_fifo, "train/a/9.png", "not a regular file"),
])
def test_bombs_and_bad_links_among_the_images_are_named(tmp_path, monkeypatch, cli_inproc,
                                                       mode, make, named, why):
    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", 80 if mode == "loader" else 8, train=8)
    make(root)
    words = (["model=resnet18-A", "scale_range=[36,44]", "crop=32", "num_workers=0"]
             if mode == "loader" else ["crop=8", "pad=1"])
    start = time.perf_counter()
    proc = cli_inproc("train", "dataset=imagefolder", f"data_dir={root}", *words,
                      "batch_size=4", "val_size=2", "iterations=2", "wandb=disabled",
                      f"runs_dir={tmp_path / 'runs'}")
    assert_usage_error(proc, f"{root / named}: ", why)
    assert time.perf_counter() - start < 60  # never decoded, never blocked
    assert not (tmp_path / "runs").exists()


def test_an_image_over_the_bomb_limit_but_under_twice_it_is_refused_too(tmp_path):
    """PIL only warns between MAX_IMAGE_PIXELS and twice that (and decodes): refused."""
    from PIL import Image

    from resnet_ablate.data.folders import open_image
    from resnet_ablate.errors import InputError

    path = tmp_path / "big.png"
    Image.new("1", (10000, 10000)).save(path)  # 100M pixels: 1.12x the limit
    with pytest.raises(InputError, match=r"big.png: not a readable image "
                                         r"\(DecompressionBombWarning: Image size"):
        open_image(path)


def test_the_decoded_image_cache_is_not_stale_after_a_same_size_same_mtime_rewrite(
        tmp_path, monkeypatch):
    """Pixels rewritten in place, size and mtime set back (os.utime): the inode's ctime
    changed, so the cache misses and the new pixels are decoded; unchanged files hit it."""
    from PIL import Image

    from resnet_ablate.data import folders

    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(3):  # PPM: raw pixels, so any two images of a size have one length
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / "train" / cls / f"{i}.ppm")
    files = folders.list_images(root / "train", ["a", "b"])
    first = folders.decode(root / "train", files)
    [cache] = (tmp_path / "cache").glob("*.pt")
    written = cache.stat().st_ino
    assert torch.equal(folders.decode(root / "train", files).images, first.images)
    assert cache.stat().st_ino == written  # a hit: read, not written again
    target = root / "train" / "b" / "1.ppm"
    st = target.stat()
    time.sleep(0.02)  # past the filesystem clock's tick: ctime must move
    Image.new("RGB", (8, 8), (0, 255, 0)).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    second = folders.decode(root / "train", files)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # a miss: a new key
    assert second.images[4, :, 0, 0].tolist() == [0, 255, 0]  # b/1.ppm, the new pixels
    assert first.images[4, :, 0, 0].tolist() == [40, 0, 0]
    assert torch.equal(second.images[:4], first.images[:4])
    relabelled = [(path, 1 - label) for path, label in files]  # a class folder added first
    assert folders.cache_key(root / "train", relabelled) != folders.cache_key(root / "train",
                                                                              files)


# ------------------------------------------------------------------ 10. sweep files
def _billion_laughs() -> str:
    lines = ["name: lol", "method: grid", "parameters:", "  seed: {values: [0]}", "x:",
             '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"  # 9**9: 387 million strings


def test_a_yaml_alias_bomb_is_refused_in_a_second_with_bounded_memory(tmp_path):
    from resnet_ablate.bundled import load_yaml
    from resnet_ablate.errors import InputError

    path = tmp_path / "lol.yaml"
    path.write_text(_billion_laughs())
    start = time.process_time()  # CPU time: what another engineer's load cannot inflate
    with pytest.raises(InputError, match="expands to over 100,000 values"):
        load_yaml("sweeps", path)
    took = time.process_time() - start
    tracemalloc.start()  # (slows what it traces: timed apart)
    with pytest.raises(InputError, match="expands to over 100,000 values"):
        load_yaml("sweeps", path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert took < 1.0 and peak < 20 * 2 ** 20, (took, peak)
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\nparameters:\n  seed: {values: " + "[" * 20000
                    + "]" * 20000 + "}\n")
    with pytest.raises(InputError, match="deep.yaml: nested too deeply"):
        load_yaml("sweeps", deep)
    normal = tmp_path / "anchors.yaml"
    normal.write_text("base: &base {iterations: {value: 30}, seed: {values: [0, 1]}}\n"
                      "parameters:\n  <<: *base\n  model: {values: [plain20]}\n"
                      "again: *base\n")
    _, data = load_yaml("sweeps", normal)
    assert data["parameters"] == {"iterations": {"value": 30}, "seed": {"values": [0, 1]},
                                  "model": {"values": ["plain20"]}}
    assert data["again"] == data["base"]


def test_only_that_matches_no_run_says_so(tmp_path, cli_inproc):
    proc = cli_inproc("sweep", "demo", "--only", "model=plain21", "--runs-dir",
                      tmp_path / "runs")
    assert_usage_error(proc, "only model=plain21 matches none of its 12 runs",
                       "model: plain20, plain56, resnet20-A, resnet56-A")
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("name: e\ntitle: e\nprotocol: demo\nsweeps:\n"
                          "  - {file: demo, only: {seed: [7]}}\nfigures: [fig1]\ntables: []\n")
    proc = cli_inproc("reproduce", experiment, "--runs-dir", tmp_path / "runs",
                      "--out", tmp_path / "report")
    assert_usage_error(proc, "only seed=7 matches none of its 12 runs", "seed: 0, 1, 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]


# ------------------------------------------------------------------ 11. W&B names
NAMES = ["runs", "my project", "a.b-c_d", "x" * 128, "x" * 129, "résumé", "a\tb", "a\x00b",
         *(f"a{c}b" for c in "/\\#?%:;,'\"<>|*@!&")]


@pytest.mark.parametrize("name", NAMES)
def test_project_names_are_refused_as_wandb_itself_refuses_them(name):
    """Against the installed wandb's own validation (wandb.Settings): every name W&B
    refuses is refused before training; the only others refused are control characters."""
    import wandb

    from resnet_ablate.errors import InputError
    from resnet_ablate.tracking import check_names

    try:
        wandb.Settings(project=name)
        wandb_refuses = False
    except Exception:  # noqa: BLE001  pydantic's ValidationError wraps W&B's UsageError
        wandb_refuses = True
    try:
        check_names(name, "", "")
        we_refuse = False
    except InputError:
        we_refuse = True
    assert we_refuse == (wandb_refuses or not name.isprintable()), (name, wandb_refuses)


def test_wandb_names_are_refused_before_training_and_tags_fit(tmp_path, cli_inproc):
    import wandb

    from resnet_ablate.tracking import tags

    for words, fragment in ((["wandb_project=team/project"], "W&B refuses '/'"),
                            (["wandb_entity=a:b"], "W&B refuses ':'"),
                            (["wandb_project=" + "p" * 129], "at most 128 characters")):
        proc = cli_inproc("train", f"runs_dir={tmp_path / 'runs'}", "wandb=offline", *words)
        assert_usage_error(proc, fragment)
        assert not (tmp_path / "runs").exists()
    long = tags({"family": "resnet", "depth": 20, "shortcut": "A", "block": "b" * 100,
                 "protocol": "demo"})
    assert wandb.Settings(run_tags=long).run_tags == tuple(long)  # W&B takes 1-64 chars
    assert long[3] == "block:" + "b" * 58


# ------------------------------------------------------------------ 12. plugins that raise
BROKEN = {"p_value": "raise ValueError('bad value')\n", "p_exit": "import sys\nsys.exit(3)\n",
          "p_syntax": "def f(:\n", "p_kbd": "raise KeyboardInterrupt\n"}


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch):
    for name, code in BROKEN.items():
        (tmp_path / f"{name}.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name, error", [("p_value", "ValueError: bad value"),
                                         ("p_exit", "SystemExit: 3"),
                                         ("p_syntax", "SyntaxError: invalid syntax"),
                                         ("p_value.py", "ValueError: bad value")])
def test_a_plugin_that_raises_is_one_line_naming_it(broken_plugins, cli_inproc, name, error):
    proc = cli_inproc("train", f"plugins={name}", "wandb=disabled",
                      f"runs_dir={broken_plugins / 'runs'}")
    assert_usage_error(proc, f"plugin {name!r} could not be loaded: {error}")
    assert not (broken_plugins / "runs").exists()
    assert not any(m.startswith(("p_", "resnet_ablate_plugin_p_")) for m in sys.modules)


def test_a_plugin_interrupted_by_the_user_still_interrupts(broken_plugins):
    from resnet_ablate.variants import plugins

    with pytest.raises(KeyboardInterrupt):
        plugins.load(["p_kbd"])


def test_broken_plugins_in_the_environment_leave_other_commands_working(broken_plugins):
    env = {"RESNET_ABLATE_PLUGINS": "p_value,p_exit,p_syntax"}
    helped = run_cli("--help", cwd=broken_plugins, env=env)
    assert helped.returncode == 0 and "COMMAND" in helped.stdout, helped.stderr
    listed = run_cli("models", "resnet20-A", cwd=broken_plugins, env=env)
    assert listed.returncode == 0 and "resnet20-A" in listed.stdout, listed.stderr
    warnings = [line for line in listed.stderr.splitlines() if line.strip()]
    assert len(warnings) == 3 and all("warning: plugin 'p_" in w for w in warnings), warnings
    assert "SystemExit: 3" in warnings[1] and "SyntaxError" in warnings[2]
