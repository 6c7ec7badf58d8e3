"""The probes' findings follow from their evidence, on a fair sample, safely read: one
sample per (condition, seed) on every path, sentences only over nets probed alike, the
landscape's sharpness beside its centre loss, the Hessian's flags, nets that did not train
named so, a stratified sample of a class-sorted folder, records that cannot be read
skipped one line each, a full disk and a second process while a record is written."""
from __future__ import annotations

import copy
import fcntl
import io
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import image_folder, run_cli
from resnet_ablate.analysis import probe_figures as pf
from resnet_ablate.analysis import why

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TRAIN = ["model.layers=[1,1,1]", "dataset=digits", "protocol=demo", "iterations=40",
         "eval_every=20", "log_every=20", "progress=off", "wandb=disabled", "seed=0"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """plain-8 and ResNet-8 (option A) on digits, 40 iterations, seed 0: both train."""
    from resnet_ablate.cli import main

    root = tmp_path_factory.mktemp("pair")
    for model in ("plain20", "resnet20-A"):
        assert main(["train", f"model={model}", *TRAIN, f"runs_dir={root}",
                     f"run_id={model}"]) == 0
    return {"plain": root / "plain20", "resnet": root / "resnet20-A"}


def _copy(run: Path, dest: Path, name: str | None = None, **summary) -> Path:
    out = Path(shutil.copytree(run, dest / (name or run.name),
                               ignore=shutil.ignore_patterns("wandb", "probes", "checkpoints")))
    if summary or name:
        path = out / "summary.json"
        s = json.loads(path.read_text())
        s.update(summary, **({"run_id": name} if name else {}))
        path.write_text(json.dumps(s))
    return out


def _runs(pair, dest: Path) -> tuple[Path, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return _copy(pair["plain"], dest), _copy(pair["resnet"], dest)


def _record(run: Path, probe: str) -> tuple[Path, dict]:
    (path,) = sorted((run / "probes").glob(f"{probe}-*.json"))
    return path, json.loads(path.read_text())


def _rise(rec: dict) -> float:
    r = rec["result"]
    keep = [u["error"] for u in r["single"] if u["how"] in (
        "shortcut only (identity)", "identity (plain: no shortcut)")]
    return 100 * (np.mean(keep) - r["baseline"]["error"])


# ---------------------------------------------------------------------------- #31.1
def test_a_rerun_of_a_seed_is_one_sample_on_every_path(pair, tmp_path, cli_inproc):
    """A rerun of ResNet-8's seed 0 (finished later, other weights): the `probe` command's
    findings, the tables and the section count it once, as the run compare counts (the
    latest), not as a second seed."""
    runs = tmp_path / "runs"
    plain, resnet = _runs(pair, runs)
    rerun = _copy(pair["resnet"], runs, "rerun", finished_at="2999-01-01T00:00:00+0000")
    state = torch.load(rerun / "model.pt", weights_only=True)
    key = next(k for k in state if k.endswith("conv1.weight") and "stages.0" in k)
    state[key] = state[key] * 1.05  # other weights: other lesion numbers
    torch.save(state, rerun / "model.pt")
    proc = cli_inproc("probe", "lesion", "--runs", runs, "--set", "parts=single",
                      "--wandb", "disabled")
    assert proc.returncode == 0, proc.stderr
    rises = {run.name: _rise(_record(run, "lesion")[1]) for run in (plain, resnet, rerun)}
    assert rises["rerun"] != rises["resnet20-A"]
    items = pf.load([plain, resnet, rerun])
    row = why.table(items, "lesion").set_index("condition").loc["ResNet-8"]
    assert row["seeds"] == 1 and row["delete one unit: mean rise (pp)"] == \
        f"{rises['rerun']:.2f}"
    tidy = why.frame(items)
    assert set(tidy[tidy["sample"]]["run_id"]) == {"plain20", "rerun"}
    (finding,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("Lesion")]
    assert f"ResNet-8 raises test error by {rises['rerun']:.2f} pp" in finding
    assert "over 1 and 1 seed(s)" in finding
    assert "records of run resnet20-A are not counted" in proc.stderr and "as rerun" in \
        proc.stderr
    sections, found = why.why_it_works([plain, resnet, rerun], tmp_path / "out",
                                       progress=lambda m: None)
    assert found == [finding]
    table = next(s["body"] for s in sections if s["kind"] == "table"
                 and s["name"] == "why-lesion")
    assert list(table["seeds"]) == [1, 1]


# ---------------------------------------------------------------------------- #31.3
def _shifted(p: pf.Probed, c: float) -> pf.Probed:
    """The record's loss surface moved up by c: the same shape, a worse fit."""
    rec = copy.deepcopy(p.rec)
    rec["result"]["center"]["loss"] += c
    if "sharpness" in rec["result"]:
        rec["result"]["sharpness"]["losses"] = [v + c for v in
                                                rec["result"]["sharpness"]["losses"]]
    return replace(p, rec=rec, arrays={**p.arrays, "loss": p.arrays["loss"] + c})


def test_the_landscape_sentence_does_not_move_with_the_centre_loss(pair, tmp_path, cli_inproc):
    """Li et al. (2018): the sharpness at a stated radius, in absolute loss, beside the
    centre loss; a surface moved up by 5 (a worse fit, the same shape) changes the centre
    loss the sentence prints and nothing else (the ratio to the centre loss it printed
    moved 8-36x with the span). A net that did not train is named so, no minimiser."""
    runs = _runs(pair, tmp_path / "runs")
    proc = cli_inproc("probe", "landscape", "--runs", *runs, "--set", "points=3",
                      "num_batches=1", "batch_size=200", "--wandb", "disabled")
    assert proc.returncode == 0, proc.stderr
    items = pf.load(runs)
    (sentence,) = why.landscape_findings(items)
    assert "at filter-normalised radius r = 0.1 the training loss rises by" in sentence
    for p in items:
        sh = p.result["sharpness"]
        assert f"{sh['rise_mean']:.3g} (max {sh['rise_max']:.3g}) for {p.label}, above a " \
               f"centre loss of {p.result['center']['loss']:.3g}" in sentence
    without_centre = lambda s: re.sub(r"centre loss of \S+", "", s)  # noqa: E731
    (moved,) = why.landscape_findings([_shifted(p, 5.0) for p in items])
    assert moved != sentence and without_centre(moved) == without_centre(sentence)
    # a record from before the sharpness field: the grid's nearest points (r = 1 here)
    old = [replace(p, rec={**p.rec, "result": {k: v for k, v in p.result.items()
                                              if k != "sharpness"}}) for p in items]
    (a,), (b,) = why.landscape_findings(old), why.landscape_findings(
        [_shifted(p, 5.0) for p in old])
    assert "radius r = 1 " in a and without_centre(a) == without_centre(b)
    # plain-8 at 60% centre training error (chance: 90%) did not train
    failed = [replace(p, rec=copy.deepcopy(p.rec)) for p in items]
    for p in failed:
        if p.run["family"] == "plain":
            p.rec["result"]["center"]["error"] = 0.6
    (named,) = why.landscape_findings(failed)
    assert "which is no minimiser: plain-8 did not train (centre training error 60.00%, at " \
           "least half of chance error, 90%)" in named
    # the figure: Li et al.'s fixed contour levels in both panels, whatever their scale
    plain_up = [_shifted(p, 5.0) if p.run["family"] == "plain" else p for p in items]
    (_, (fig, caption)), = pf.landscape_figures(plain_up)
    contours = [c for ax in fig.axes for c in ax.collections if hasattr(c, "levels")]
    assert len(contours) == 2
    for c in contours:
        assert np.array_equal(c.levels, pf.LEVELS)
    assert "fixed levels" in caption


# ---------------------------------------------------------------------------- #31.4
def test_nets_probed_differently_never_share_a_sentence(pair, tmp_path, cli_inproc):
    plain, resnet = _runs(pair, tmp_path / "runs")
    for run, batch in ((plain, 64), (resnet, 128)):
        proc = cli_inproc("probe", "lesion", "--runs", run, "--set", "parts=single",
                          f"batch_size={batch}", "--wandb", "disabled")
        assert proc.returncode == 0, proc.stderr
    (only,) = why.lesion_findings(pf.load([plain, resnet]))
    assert "raises test error" not in only
    assert "plain-8 and ResNet-8 were probed differently (`parts=[\"single\"] " \
           "batch_size=64` and `parts=[\"single\"] batch_size=128`), so they are not " \
           "compared" in only
    # probed alike as well: that pair is compared, naming its settings; the other apart
    proc = cli_inproc("probe", "lesion", "--runs", plain, resnet, "--set", "parts=single",
                      "batch_size=128", "--wandb", "disabled")
    assert proc.returncode == 0, proc.stderr
    found = why.lesion_findings(pf.load([plain, resnet]))
    assert len(found) == 1 and "batch_size=64" not in found[0]
    assert "probed with `parts=[\"single\"] batch_size=128`: deleting one unit of " \
           "ResNet-8 raises test error by" in found[0]
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("Lesion")] == found


# ---------------------------------------------------------------------------- #31.9
def test_the_hessian_says_what_did_not_converge_and_its_trace_error(pair, tmp_path,
                                                                    cli_inproc):
    runs = _runs(pair, tmp_path / "runs")
    proc = cli_inproc("probe", "hessian", "--runs", *runs, "--set", "max_iter=1",
                      "trace_iters=4", "batch_size=64", "--wandb", "disabled")
    assert proc.returncode == 0, proc.stderr
    items = pf.load(runs)
    (sentence,) = why.hessian_findings(items)
    assert "the eigenvalue of largest magnitude (power iteration)" in sentence
    assert sentence.count("(1 of 1 did not converge in 1 iterations: last estimates)") == 2
    for p in items:
        assert f"Monte-Carlo s.e. {p.result['trace_stderr']:.3g}" in sentence
    table = why.table(items, "hessian")
    assert list(table["power iteration converged"]) == ["0 of 1", "0 of 1"]
    assert all(table["trace MC s.e."])
    from resnet_ablate.probes import get_probe

    columns, rows = get_probe("hessian").rows(items[0].result)
    assert rows[0][0] == "eigenvalue_1 (largest magnitude)" and rows[0][2].startswith(
        "NOT converged (1 iterations)") and "MC s.e." in rows[1][2]
    drawn = [replace(p, rec=copy.deepcopy(p.rec)) for p in items]
    for p, top in zip(drawn, (2.0, 3.0)):
        p.rec["result"].update(top_eigenvalues=[top], trace=10 * top)
    fig, _ = pf.hessian_figure(drawn)
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]
    assert fig.axes[0].get_ylabel() == "eigenvalue of largest magnitude"
    drawn[0].rec["result"].update(top_eigenvalues=[-3.0], trace=-10.0)  # never on a log axis
    fig, _ = pf.hessian_figure(drawn)
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]


# ---------------------------------------------------------------------------- #31.10
def test_the_lesion_compares_only_nets_that_trained(pair, tmp_path, cli_inproc):
    runs = _runs(pair, tmp_path / "runs")
    proc = cli_inproc("probe", "lesion", "--runs", *runs, "--set", "parts=single",
                      "--wandb", "disabled")
    assert proc.returncode == 0, proc.stderr
    items = pf.load(runs)
    (both,) = why.lesion_findings(items)
    assert "deleting one unit of ResNet-8 raises test error by" in both
    failed = [replace(p, rec=copy.deepcopy(p.rec)) for p in items]
    for p in failed:
        if p.run["family"] == "plain":  # the demo's plain-56: 52% test error, 10 classes
            p.rec["result"]["baseline"]["error"] = 0.52
    (sentence,) = why.lesion_findings(failed)
    assert "plain-8 did not train (intact test error 52.00%, at least half of chance " \
           "error, 90%)" in sentence
    assert "measures a net that failed to train, not one that relies on every layer" in \
        sentence and "raises test error by" not in sentence


# ---------------------------------------------------------------------------- #31.11
def test_fig_5b_is_error_against_kendall_tau_and_the_barrier_is_entezaris(pair, tmp_path,
                                                                          cli_inproc):
    runs = _runs(pair, tmp_path / "runs")
    assert cli_inproc("probe", "lesion", "--runs", *runs, "--set", "parts=single",
                      "--wandb", "disabled").returncode == 0
    items = pf.load(runs)
    swaps = [{"k": k, "draw": d, "pairs": [["stages.0.0", "stages.0.1"]] * k,
              "kendall_tau": tau, "error": err, "loss": 1.0}
             for k, d, tau, err in ((1, 0, 0.9, 0.3), (1, 1, 0.8, 0.4), (2, 0, 0.5, 0.6),
                                    (2, 1, 0.4, 0.7))]
    for p in items:
        p.rec["result"]["swap_k"] = swaps
    fig, caption = pf.lesion_figure(items)
    ax = fig.axes[-1]
    assert "Kendall tau" in ax.get_xlabel() and "Fig. 5b" in ax.get_title()
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == pytest.approx([0.85, 0.45])
    assert list(line.get_ydata()) == pytest.approx([35.0, 65.0])
    assert "Kendall tau" in caption
    # the loss barrier: Entezari et al. (2022), the largest rise above the chord
    rec = {"probe": "linear_path", "run_id": "x", "digest": "d", "settings_digest": "s",
           "settings": {"points": 5, "span": [0.0, 1.0], "bn": "batch", "num_batches": None},
           "seed": 0, "weights": "final", "data": {"split": "train", "batch_size": 8},
           "model": "plain20", "condition": "c", "result": {
               "alpha": [0.0, 0.25, 0.5, 0.75, 1.0], "start_loss": 2.0, "end_loss": 0.1,
               "max_loss": 2.0}}
    loss = np.array([2.0, 1.8, 1.5, 0.2, 0.1])  # the chord: 2 - 1.9 alpha
    path = pf.Probed(None, rec, {"loss": loss}, {**items[0].run, "seed": 0}, "plain-8")
    assert why.barrier(path) == pytest.approx(0.45)
    table = why.table([path], "linear_path")
    assert table.loc[0, "loss barrier (Entezari et al. 2022)"] == "0.45"


# ---------------------------------------------------------------------------- #32.4
def test_a_stratified_probe_sample_on_a_class_sorted_folder(tmp_path, monkeypatch, cli_inproc):
    """An ImageFolder lists its images class by class: the first batch of its test split
    is one class, and the probe says so; num_images draws a seeded, class-stratified
    sample, records which images, and its intact error is the net's on those images."""
    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", 8, mode="L", train=8, test=6)
    runs = tmp_path / "runs"
    assert cli_inproc("train", "model=resnet20-A", "model.layers=[1,1,1]",
                      "dataset=imagefolder", f"data_dir={root}", "crop=8", "pad=1",
                      "batch_size=8", "iterations=2", "eval_every=2", "val_size=0",
                      "wandb=disabled", "progress=off", f"runs_dir={runs}",
                      "run_id=r").returncode == 0
    run = runs / "r"
    first = cli_inproc("probe", "lesion", "--runs", run, "--set", "parts=single",
                       "num_batches=1", "batch_size=6", "--wandb", "disabled")
    assert first.returncode == 0, first.stderr
    _, rec = _record(run, "lesion")
    assert rec["data"]["class_counts"] == [6, 0] and rec["data"]["sample"] is None
    assert "read 6 images with uneven class counts (6 0; 1 of 2 classes missing)" in \
        rec["data"]["warning"]
    assert "warning: probe lesion of run r read 6 images with uneven" in first.stdout
    shutil.rmtree(run / "probes")
    fair = cli_inproc("probe", "lesion", "--runs", run, "--set", "parts=single",
                      "num_images=8", "batch_size=4", "--wandb", "disabled")
    assert fair.returncode == 0, fair.stderr
    assert "warning" not in fair.stdout + fair.stderr
    _, rec = _record(run, "lesion")
    d = rec["data"]
    assert d["num_images"] == 8 and d["images"] == 8 and d["class_counts"] == [4, 4]
    assert d["warning"] is None and d["sample"]["seed"] == 0
    assert "class-stratified" in d["sample"]["rule"]
    idx = d["sample"]["indices"]
    assert len(set(idx)) == 8 and all(0 <= i < 12 for i in idx)
    assert sorted(i // 6 for i in idx) == [0, 0, 0, 0, 1, 1, 1, 1]  # class-sorted: 6 each
    # the intact error is the net's own on exactly those images
    from resnet_ablate.data.tensor import centre_crop, normalise
    from resnet_ablate.models import ResNet
    from resnet_ablate.probes.probing import DataCache, open_run

    target = open_run(run)
    data = DataCache(torch.device("cpu")).get(target, 4)
    test = data.splits["test"]
    x = centre_crop(normalise(test.images[idx], data.mean), data.input_size)
    model = ResNet(target.spec)
    model.load_state_dict(target.weights)
    with torch.no_grad():
        wrong = (model.eval()(x).argmax(1) != test.labels[idx]).float().mean().item()
    assert rec["result"]["baseline"]["error"] == pytest.approx(wrong, abs=1e-9)
    # the same images again, whatever the probe's seed: the same draw
    again = cli_inproc("probe", "lesion", "--runs", run, "--set", "parts=single",
                       "num_images=8", "batch_size=4", "--seed", "5", "--wandb", "disabled")
    assert again.returncode == 0
    assert {json.dumps(json.loads(p.read_text())["data"]["sample"]) for p in
            (run / "probes").glob("lesion-*.json")} == {json.dumps(d["sample"])}
    # the bundled why-residual experiment draws its samples so
    from resnet_ablate.pipeline import load_experiment

    exp = load_experiment("why-residual")
    assert all(p.settings.get("num_images") for p in exp.probes if p.name != "lesion")


# ---------------------------------------------------------------------------- #28.2
def _bad_records(run: Path) -> list[str]:
    """Five broken lesion records beside the run's good one (other digests)."""
    good, rec = _record(run, "lesion")
    folder = good.parent
    text = good.read_text()

    def put(tag: str, record: dict | str, npz: bytes | None = None) -> str:
        name = f"lesion-bad{tag}"
        if npz is not None:
            (folder / f"{name}.npz").write_bytes(npz)
            import hashlib

            record["arrays"] = {"file": f"{name}.npz", "shapes": {"delete_k_error": [1, 1]},
                                "sha256": hashlib.sha256(npz).hexdigest()}
        (folder / f"{name}.json").write_text(record if isinstance(record, str) else
                                             json.dumps(record))
        return name

    typed = json.loads(text)
    typed["result"]["baseline"]["error"] = "0.5"
    ranged = json.loads(text)
    ranged["settings"]["draws"] = 10 ** 9
    buf = io.BytesIO()
    np.savez(buf, delete_k_error=np.array([[{"run": "code"}]], dtype=object))
    huge = io.BytesIO()
    with zipfile.ZipFile(huge, "w") as z, z.open("delete_k_error.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (100_000, 100_000)})  # 75 GiB
        f.write(b"\0" * 64)
    deep = text.replace('"result": {', '"result": {"deep": ' + "[" * 100_000 +
                        "]" * 100_000 + ", ", 1)
    return [put("typed", typed), put("ranged", ranged),
            put("pickle", json.loads(text), buf.getvalue()),
            put("huge", json.loads(text), huge.getvalue()), put("deep", deep)]


def test_records_that_cannot_be_read_are_skipped_one_line_each(pair, tmp_path, cli_inproc):
    runs = _runs(pair, tmp_path / "runs")
    words = ["--set", "parts=single,delete_k", "delete_ks=[1]", "draws=1", "--wandb",
             "disabled"]
    assert cli_inproc("probe", "lesion", "--runs", *runs, *words).returncode == 0
    bad = _bad_records(runs[0])
    proc = cli_inproc("probe", "lesion", "--runs", *runs, *words)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 5 and "Traceback" not in proc.stderr
    why_not = {"typed": "record.result.baseline.error must be a fraction in [0, 1]; got "
                        "'0.5'",
               "ranged": "lesion: draws must be an integer 1..1000; got 1000000000",
               "pickle": "array delete_k_error is of dtype object (numbers only",
               "huge": "array delete_k_error claims shape [100000, 100000], the record [1, 1]",
               "deep": "is nested too deeply"}
    for name, line in zip(sorted(bad), sorted(lines)):
        assert line.startswith(f"resnet-ablate: skipped {runs[0] / 'probes' / name}.json: ")
        assert why_not[name[len("lesion-bad"):]] in line, line
    (finding,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("Lesion")]
    assert "ResNet-8 raises test error by" in finding  # the rest reported
    notes: list[str] = []
    out = tmp_path / "out"
    sections, found = why.why_it_works(runs, out, progress=lambda m: None, notes=notes)
    assert len(notes) == 5 and found == [finding]
    skipped = next(s for s in sections if s["title"].startswith("Probe records skipped"))
    assert len(skipped["body"]) == 5
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert (out / "figures" / "why-lesion.png").stat().st_size > 1000


# ---------------------------------------------------------------------------- #28.8
def test_a_full_disk_while_a_record_is_written_is_one_line_and_leaves_nothing(pair, tmp_path,
                                                                               cli_inproc):
    plain, resnet = _runs(pair, tmp_path / "runs")
    words = ["probe", "lesion", "--set", "parts=single,delete_k", "delete_ks=[1]", "draws=1",
             "--wandb", "disabled"]
    assert cli_inproc(*words[:2], "--runs", plain, *words[2:]).returncode == 0
    npz, = (plain / "probes").glob("*.npz")
    js, = (plain / "probes").glob("*.json")
    assert npz.stat().st_size < js.stat().st_size
    limit = (npz.stat().st_size + js.stat().st_size) // 2  # the .npz fits, the .json not

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as a full disk's ENOSPC

    proc = subprocess.run([sys.executable, "-m", "resnet_ablate", *words[:2], "--runs",
                           str(resnet), *words[2:]], preexec_fn=small_disk,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ONE_THREAD})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "cannot write the probe record" in lines[0] and "File too large" in lines[0]
    assert "nothing of it was kept" in lines[0]
    assert [p.name for p in (resnet / "probes").iterdir() if not p.name.endswith(".lock")] \
        == []


def test_a_record_another_process_is_writing_is_skipped(pair, tmp_path, cli_inproc):
    """Two probes of one run never both write one record: the second finds its lock held,
    says so and skips it (exit 75, as train), and the record is then written whole."""
    first, _ = _runs(pair, tmp_path / "a")
    second, _ = _runs(pair, tmp_path / "b")
    words = ["lesion", "--set", "parts=single", "--wandb", "disabled"]
    assert cli_inproc("probe", words[0], "--runs", first, *words[1:]).returncode == 0
    (path, rec) = _record(first, "lesion")
    (second / "probes").mkdir()
    fd = os.open(second / "probes" / f".lesion-{rec['digest']}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a probe of it in flight holds it
        busy = run_cli("probe", words[0], "--runs", second, *words[1:], env=ONE_THREAD)
    finally:
        os.close(fd)
    assert busy.returncode == 75, busy.stdout + busy.stderr
    assert "skipped: another process is probing it" in busy.stdout
    assert "1 being written by another process" in busy.stdout
    assert not list((second / "probes").glob("*.json"))
    done = cli_inproc("probe", words[0], "--runs", second, *words[1:])
    assert done.returncode == 0 and "1 record(s) written" in done.stdout
    _, again = _record(second, "lesion")
    assert again["digest"] == rec["digest"] and again["result"] == rec["result"]


def test_a_record_that_fails_its_checks_is_probed_again(pair, tmp_path, cli_inproc):
    """`probe` does not keep a record the analysis would skip (an older version's swap draws
    with a pair twice, a field of the wrong type): it probes it again and says so."""
    plain, _ = _runs(pair, tmp_path / "runs")
    words = ["probe", "lesion", "--runs", plain, "--set", "parts=single", "--wandb", "disabled"]
    assert cli_inproc(*words).returncode == 0
    path, rec = _record(plain, "lesion")
    good = rec["result"]["baseline"]["error"]
    rec["result"]["baseline"]["error"] = str(good)
    path.write_text(json.dumps(rec))
    again = cli_inproc(*words)
    assert again.returncode == 0, again.stderr
    assert f"probing again: {path} fails its checks (record.result.baseline.error must be " \
           "a fraction in [0, 1]" in again.stdout and "1 record(s) written" in again.stdout
    assert _record(plain, "lesion")[1]["result"]["baseline"]["error"] == good


@pytest.mark.parametrize("mode", ["tensor", "loader"])
def test_a_sample_is_the_splits_own_images_as_its_eval_batches_prepare_them(tmp_path, monkeypatch,
                                                                           mode):
    """sample.subset_batches: the images at the indices, prepared exactly as the split's
    eval_batches prepares them, in either data mode."""
    import dataclasses

    from resnet_ablate.data import DataSettings
    from resnet_ablate.data.catalog import open_run_data
    from resnet_ablate.probes import sample
    from resnet_ablate.run.protocol import DEMO, HE2015_IMAGENET

    monkeypatch.setenv("RESNET_ABLATE_CACHE", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", 80 if mode == "loader" else 8, train=6, test=4)
    protocol = dataclasses.replace(HE2015_IMAGENET, val_size=0, batch_size=4, crop=64,
                                   scale_range=(64, 72)) if mode == "loader" else \
        dataclasses.replace(DEMO, val_size=0, batch_size=4, crop=8)
    data = open_run_data("imagefolder", str(root), False, mode, DataSettings(
        protocol=protocol, device=torch.device("cpu"), seed=0, eval_batch_size=3,
        num_workers=0))
    x_all = torch.cat([x for x, _ in data.eval_batches("test", sharded=False)])
    y_all = torch.cat([y for _, y in data.eval_batches("test", sharded=False)])
    labels = sample.split_labels(data, "test")
    assert torch.equal(labels, y_all) and labels.tolist() == [0] * 4 + [1] * 4
    idx = sample.stratified(labels, 4, data.num_classes)
    assert sorted(labels[idx].tolist()) == [0, 0, 1, 1]
    got = list(sample.subset_batches(data, "test", idx, 3))
    assert [len(y) for _, y in got] == [3, 1]
    assert torch.equal(torch.cat([x for x, _ in got]), x_all[idx])
    assert torch.equal(torch.cat([y for _, y in got]), y_all[idx])
