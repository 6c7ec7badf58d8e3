"""Training runs end to end: the demo command with W&B offline read back by W&B, resume
bit for bit after SIGKILL/SIGTERM (tensor and loader modes), corrupt checkpoints, the
resume identity, DDP with gloo, W&B failing, divergence, the two training errors."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import SMALL, assert_usage_error, history_rows, run_cli, train_inproc


def _cmd(*words):
    return [sys.executable, "-m", "resnet_ablate", "train", *words]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)


def _assert_same_run(a: Path, b: Path) -> None:
    """Bitwise: weights, per-iteration history and every final metric."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert history_rows(a).equals(history_rows(b))
    sa, sb = _summary(a), _summary(b)
    for key in sa:
        if key.startswith(("final_", "best_", "layer_responses")) or key in (
                "iterations", "status", "images_seen", "condition"):
            assert sa[key] == sb[key], key


def _start(runs: Path, run_id: str, *extra, words=SMALL) -> subprocess.Popen:
    return subprocess.Popen(_cmd(*words, f"runs_dir={runs}", f"run_id={run_id}", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_iteration(proc: subprocess.Popen, at_least: int, total: int = 80) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if f"/{total} " in line and "iter " in line:
            it = int(line.split("iter ")[1].split("/")[0])
            if it >= at_least:
                return lines
    raise AssertionError("run ended early:\n" + "".join(lines))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every resumed run must equal, bit for bit (in this process:
    the kill, the signal and the restart are what stay in real processes)."""
    runs = tmp_path_factory.mktemp("reference")
    train_inproc(*SMALL, f"runs_dir={runs}", "run_id=ref", "progress=off")
    return runs / "ref"


def test_demo_protocol_run_with_offline_wandb(tmp_path):
    """`train model=resnet20-A dataset=digits protocol=demo`, W&B offline for real; the
    demo's 1,200 iterations cut to 100 with its milestones at the same 1/2 and 3/4."""
    proc = run_cli("train", "model=resnet20-A", "dataset=digits", "protocol=demo",
                   "iterations=100", "milestones=[50,75]", "eval_every=25",
                   f"runs_dir={tmp_path}", "run_id=demo", "wandb=offline", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "demo"
    s = _summary(run)
    for key in ("run_id", "model", "family", "depth", "shortcut", "block", "dataset",
                "protocol", "seed", "status", "iterations", "final_train_err", "final_val_err",
                "final_test_err", "params", "macs", "condition", "plugins"):
        assert key in s, key  # the public contract: top-level keys
    assert s["run"]["deterministic"] is False and s["data"]["fingerprint"].startswith("digits:")
    assert (s["status"], s["iterations"], s["protocol"], s["depth"]) == ("finished", 100,
                                                                        "demo", 20)
    assert s["final_test_err"] < 25 and s["final_train_err"] < 25  # it learned (chance: 90)
    assert s["params"] == 269_434 and s["data"]["split_sizes"] == {"train": 1258, "val": 180,
                                                           "test": 359}
    assert [r["index"] for r in s["layer_responses"]] == list(range(1, 20))
    rows = history_rows(run)
    assert len(rows) == 100 and list(rows.columns[:4]) == ["iteration", "lr", "train_loss",
                                                           "train_err"]
    assert rows["test_err"].notna().sum() == 4  # test error every 25
    lr = dict(zip(rows["iteration"], rows["lr"]))
    assert lr[1] == lr[50] == pytest.approx(0.1)
    assert lr[51] == lr[75] == pytest.approx(0.01)
    assert lr[76] == lr[100] == pytest.approx(0.001)
    # the paper's training error: the mean mini-batch error of the last interval (76-100)
    errs = list(rows.loc[rows["iteration"] > 75, "train_err"])
    assert s["final_train_err"] == s["final_train_err_running"] == pytest.approx(
        sum(errs) / len(errs))
    assert 0 <= s["final_train_err_eval"] < 25 and "train-mode" in s["train_err_definition"]
    assert s["warmup_end"] is None and s["warmup_capped"] is False  # 20 layers: no warm-up

    # The offline W&B run, read back with W&B's own reader.
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    wandb_bin = Path(sys.executable).with_name("wandb")
    back = subprocess.run([str(wandb_bin), "leet", "inspect", "--summary", "--json",
                           str(offline[0])], capture_output=True, text=True, timeout=120)
    assert back.returncode == 0, back.stderr
    w = json.loads(back.stdout)
    assert w["state"] == "finished" and w["run_id"] == "demo"
    config = w["config"]  # the record's projection, nested as the record is
    assert config["model"] == "resnet20-A" and config["depth"] == 20
    assert config["protocol_fields"]["lr"] == 0.1 and config["params"] == 269_434
    assert config["protocol"] == "demo" and "name" not in config["protocol_fields"]
    assert config["run"] == {**s["run"], "compile_backend": None} or config["run"] == s["run"]
    assert config["data"]["data_dir"] == "data" and config["data"]["fingerprint"] == \
        s["data"]["fingerprint"] and config["condition"] == s["condition"]
    assert not {"runs_dir", "overrides", "versions", "env"} & set(config)  # bookkeeping stays
    assert config["settings"] == {"log_every": 100}  # the window of W&B's training means
    assert w["summary"]["final_test_err"] == pytest.approx(s["final_test_err"])
    assert w["summary"]["iteration"] == 100
    records = subprocess.run([str(wandb_bin), "leet", "inspect", "--json", str(offline[0])],
                             capture_output=True, text=True, timeout=120).stdout
    run_record = next(json.loads(line) for line in records.splitlines()
                      if '"type":"run"' in line)["run"]
    assert run_record["job_type"] == "train"
    assert {"family:resnet", "depth:20", "shortcut:A", "block:basic", "protocol:demo"} <= set(
        run_record["tags"])
    assert "layer_responses" in records and "table-file" in records.replace("_", "-")


def test_sigkill_then_resume_is_bitwise_identical(tmp_path, reference, cli_inproc):
    proc = _start(tmp_path, "killed")
    _wait_for_iteration(proc, 50)  # past the checkpoint at 40, short of the next
    proc.kill()
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = cli_inproc("train", *SMALL, f"runs_dir={tmp_path}", "run_id=killed",
                         "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration" in resumed.stderr
    _assert_same_run(reference, tmp_path / "killed")


def test_sigterm_checkpoints_where_it_stops(tmp_path, reference, cli_inproc):
    proc = _start(tmp_path, "term")
    _wait_for_iteration(proc, 25)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "SIGTERM received" in out and "resume=true run_id=term" in out
    run = tmp_path / "term"
    assert not (run / "summary.json").exists()
    stopped = int(out.split("stopped at iteration ")[1].split(";")[0])
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert 25 <= stopped < 80 and ckpts[-1] == f"ckpt-{stopped:08d}.pt"
    (run / "checkpoints" / f".ckpt-{stopped + 1:08d}.pt.x.tmp").write_bytes(b"half")
    resumed = cli_inproc("train", *SMALL, f"runs_dir={tmp_path}", "run_id=term",
                         "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at iteration {stopped}" in resumed.stderr
    assert not list(run.rglob("*.tmp"))  # a killed save's leftovers are cleaned
    _assert_same_run(reference, run)


LOADER = ["model=resnet18-A", "dataset=imagefolder", "scale_range=[36,44]", "crop=32",
          "batch_size=16", "iterations=16", "eval_every=8", "checkpoint_every=6",
          "log_every=2", "num_workers=2", "val_size=20", "responses=false", "progress=lines",
          "wandb=disabled"]


@pytest.fixture(scope="module")
def large_images(tmp_path_factory):
    """An ImageFolder of 80 px images (digits, upscaled): the loader mode's data."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("large")
    d = load_digits()
    for i in range(200):
        split = "val" if i % 4 == 0 else "train"
        folder = root / split / str(d.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).resize((80, 80))
        img.save(folder / f"{i}.png")
    return root


def test_loader_mode_resume_after_sigkill_is_bitwise(tmp_path, large_images, cli_inproc):
    """DataLoader workers: every augmentation is drawn from (seed, epoch, index), so a run
    killed and resumed ends equal to one that never stopped."""
    words = [*LOADER, f"data_dir={large_images}"]
    ref = cli_inproc("train", *words, f"runs_dir={tmp_path}", "run_id=ref")
    assert ref.returncode == 0, ref.stderr
    s = _summary(tmp_path / "ref")
    assert (s["data"]["mode"], s["protocol"], s["final_test_view"]) == ("loader",
                                                                    "he2015-imagenet", "10crop")
    assert s["data"]["split_sizes"] == {"train": 130, "val": 20, "test": 50}
    proc = _start(tmp_path, "killed", words=words)
    _wait_for_iteration(proc, 8, total=16)  # past the checkpoint at 6
    proc.kill()
    proc.wait()
    resumed = cli_inproc("train", *words, f"runs_dir={tmp_path}", "run_id=killed",
                         "resume=true", "num_workers=0")  # workers change nothing
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration" in resumed.stderr  # from a checkpoint, not from scratch
    _assert_same_run(tmp_path / "ref", tmp_path / "killed")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run killed after its first checkpoint, and then one more checkpoint (a corrupt
    newest one falls back to it)."""
    runs = tmp_path_factory.mktemp("interrupted")
    proc = _start(runs, "r")
    _wait_for_iteration(proc, 25)
    proc.kill()
    proc.wait()
    return runs


def test_checkpoint_loads_without_unpickling_code(reference):
    ckpt = sorted((reference / "checkpoints").glob("ckpt-*.pt"))[-1]
    state = torch.load(ckpt, weights_only=True)  # raises if anything but data is inside
    assert state["iteration"] == 80 and not any(k.startswith("module.") for k in state["model"])
    assert {"model", "optimizer", "schedule", "data", "rng", "history", "identity"} <= set(state)


def test_corrupt_newest_checkpoint_falls_back(tmp_path, reference, cli_inproc):
    proc = _start(tmp_path, "corrupt")
    _wait_for_iteration(proc, 65)  # checkpoints at 40 and 60
    proc.kill()
    proc.wait()
    ckpts = sorted((tmp_path / "corrupt" / "checkpoints").glob("ckpt-*.pt"))
    assert [p.name for p in ckpts] == ["ckpt-00000040.pt", "ckpt-00000060.pt"]
    data = ckpts[-1].read_bytes()
    ckpts[-1].write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    resumed = cli_inproc("train", *SMALL, f"runs_dir={tmp_path}", "run_id=corrupt",
                         "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "ckpt-00000060.pt is unreadable" in resumed.stderr
    assert "resuming at iteration 40" in resumed.stderr
    _assert_same_run(reference, tmp_path / "corrupt")


@pytest.mark.parametrize("change, message", [
    ("model=resnet32-A", "depth: checkpoint 20, now 32"),
    ("lr=0.05", "protocol_fields.lr: checkpoint 0.1, now 0.05"),
    ("seed=1", "seed: checkpoint 0, now 1"),
    ("amp=bf16", "run.amp: checkpoint 'off', now 'bf16'"),
    ("channels_last=false", "run.channels_last: checkpoint True, now False"),
    ("deterministic=true", "run.deterministic: checkpoint False, now True"),
])
def test_resume_with_other_settings_is_refused(interrupted, cli_inproc, change, message):
    words = [w for w in SMALL if w.split("=")[0] != change.split("=")[0]]
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (interrupted / "r").rglob("*"))
    refused = cli_inproc("train", *words, change, f"runs_dir={interrupted}", "run_id=r",
                         "resume=true")
    assert_usage_error(refused, "resume refused", message)
    after = sorted((p.name, p.stat().st_mtime_ns) for p in (interrupted / "r").rglob("*"))
    assert after == before  # nothing written


def test_resume_under_another_network_version_is_refused(interrupted, tmp_path, cli_inproc):
    """A run begun by a harness whose networks compute another function (its config.json's
    versions.network; variants/paper.py NETWORK_CHANGES) is refused like a model change,
    whatever resume_numerics says; under its own network version it resumes."""
    import shutil

    from resnet_ablate import __version__
    from resnet_ablate.variants.paper import network_version

    runs = tmp_path / "runs"
    shutil.copytree(interrupted / "r", runs / "r")
    config_path = runs / "r" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["versions"]["network"] == network_version(__version__)
    config["versions"]["network"] = "0.1.0"  # as a run begun under resnet-ablate 0.1.x
    config_path.write_text(json.dumps(config))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (runs / "r").rglob("*"))
    refused = cli_inproc("train", *SMALL, f"runs_dir={runs}", "run_id=r", "resume=true",
                         "resume_numerics=any")
    assert_usage_error(refused, "resume refused", "versions.network: run '0.1.0', now "
                       f"'{network_version(__version__)}'", "start a new run")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (runs / "r").rglob("*")) == before
    config["versions"]["network"] = network_version(__version__)
    config_path.write_text(json.dumps(config))
    resumed = cli_inproc("train", *SMALL, f"runs_dir={runs}", "run_id=r", "resume=true")
    assert resumed.returncode == 0, resumed.stderr


def test_existing_run_is_not_overwritten(interrupted, cli_inproc):
    proc = cli_inproc("train", *SMALL, f"runs_dir={interrupted}", "run_id=r")
    assert_usage_error(proc, "already exists with checkpoints", "resume=true")


def test_ddp_two_cpu_processes_with_gloo(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--standalone", "-m", "resnet_ablate", "train", "model=resnet20-A",
         "dataset=digits", "iterations=60", "eval_every=30", "log_every=15",
         f"runs_dir={tmp_path}", "run_id=ddp", "wandb=offline", "progress=lines"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "ddp"
    s = _summary(run)
    assert (s["status"], s["run"]["world_size"], s["iterations"]) == ("finished", 2, 60)
    assert s["replicas_in_sync"] is True  # both ranks ended with the same weights
    assert s["images_seen"] == 60 * 128  # the global batch, shared by the two ranks
    assert s["final_test_err"] < 30  # it learned
    assert len(history_rows(run)) == 60
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1  # rank 0 logs alone
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]
    assert proc.stdout.count("finished 60 iterations") == 1


def test_wandb_that_cannot_start_does_not_stop_training(tmp_path):
    env = {"WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc"), "WANDB_MODE": "",
           "WANDB_DIR": str(tmp_path)}
    proc = run_cli("train", *TINY, "iterations=10", "eval_every=10",
                   f"runs_dir={tmp_path}", "run_id=w", "wandb=online", env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "resnet-ablate: warning: W&B"
                in line]
    assert len(warnings) == 1, proc.stderr
    s = _summary(tmp_path / "w")
    assert s["status"] == "finished"


def test_wandb_with_an_unreachable_server_falls_back_to_offline_quickly(tmp_path):
    """Online with a key but no server: a few seconds, one warning, an offline run kept for
    a later `wandb sync`, never W&B's 90 s stall."""
    import time

    env = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9",
           "WANDB_MODE": "", "WANDB_INIT_TIMEOUT": "5"}
    start = time.perf_counter()
    proc = run_cli("train", *TINY, "iterations=10", "eval_every=10",
                   f"runs_dir={tmp_path}", "run_id=u", "wandb=online", env=env)
    took = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    s = _summary(tmp_path / "u")
    assert s["wandb"]["mode"] == "offline" and "online_fallback" in s["wandb"]
    assert proc.stderr.count("W&B online did not start") == 1
    assert list((tmp_path / "u" / "wandb").glob("offline-run-*"))
    assert took < 85, took  # W&B on its own waits 90 s: a margin for a loaded machine


# Where a test is about W&B, not the net: resnet20-A's parts at one block per stage.
TINY = ["model=resnet20-A", "model.layers=[1,1,1]", "responses=false"]


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_wandb_dying_mid_run_does_not_stop_training(tmp_path):
    proc = subprocess.Popen(_cmd(*TINY, "iterations=60", "eval_every=30",
                                 "log_every=10", "progress=lines", "wandb=offline",
                                 f"runs_dir={tmp_path}", "run_id=wd"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "iter 20/60" in line:
            break
    cores = [p for p in _children(proc.pid)
             if "wandb-core" in Path(f"/proc/{p}/cmdline").read_text()]
    assert cores, "".join(lines)
    for p in cores:
        os.kill(p, signal.SIGKILL)
    out = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert out.count("resnet-ablate: warning: W&B") == 1, out
    assert "Traceback" not in out
    s = _summary(tmp_path / "wd")
    assert s["status"] == "finished" and s["iterations"] == 60
    assert len(history_rows(tmp_path / "wd")) == 60


def test_divergence_ends_the_run_with_status_diverged(tmp_path, cli_inproc):
    proc = cli_inproc("train", "model=resnet20-A", "lr=1e6", "iterations=50", "log_every=5",
                      f"runs_dir={tmp_path}", "run_id=nan", "wandb=disabled")
    assert proc.returncode == 0, proc.stderr
    s = _summary(tmp_path / "nan")
    assert s["status"] == "diverged" and 1 <= s["diverged_at"] <= 50
    assert s["iterations"] >= s["diverged_at"] and s["final_train_err"] is None
    assert "diverged at iteration" in proc.stdout


def test_warmup_for_110_layers_ends_by_the_training_error(tmp_path, cli_inproc):
    """resnet110-A on digits: warm-up at 0.01 until the mini-batch error is below 80%,
    then 0.1; the iteration it ended at is in the summary and the history's lr."""
    proc = cli_inproc("train", "model=resnet110-A", "iterations=40", "eval_every=40",
                      "log_every=20", "responses=false", "progress=lines",
                      f"runs_dir={tmp_path}", "run_id=w", "wandb=disabled")
    assert proc.returncode == 0, proc.stderr
    s = _summary(tmp_path / "w")
    end = s["warmup_end"]
    assert end is not None and 10 <= end < 40 and s["warmup_capped"] is False
    rows = history_rows(tmp_path / "w")
    lrs = dict(zip(rows["iteration"], rows["lr"]))
    errs = dict(zip(rows["iteration"], rows["train_err"]))
    assert lrs[end] == pytest.approx(0.01) and lrs[end + 1] == pytest.approx(0.1)
    assert sum(errs[i] for i in range(end - 9, end + 1)) / 10 < 80  # the condition held
    assert "warm-up ends at iteration" in proc.stderr


def test_bf16_autocast_contiguous_deterministic_and_progress_bar(tmp_path, cli_inproc):
    proc = cli_inproc("train", "model=resnet20-A", "model.layers=[1,1,1]", "responses=false",
                      "iterations=10", "eval_every=5", "log_every=5", "amp=bf16",
                      "channels_last=false", "deterministic=true", "progress=bar",
                      f"runs_dir={tmp_path}", "run_id=amp", "wandb=disabled")
    assert proc.returncode == 0, proc.stderr
    torch.use_deterministic_algorithms(False)
    s = _summary(tmp_path / "amp")
    assert (s["status"], s["run"]["amp"], s["run"]["channels_last"], s["run"]["deterministic"]) == (
        "finished", "bf16", False, True)
    assert "10/10" in proc.stderr and "img/s" in proc.stderr  # tqdm's bar with our postfix
    assert "training split" in proc.stderr  # the final whole-split pass shows progress


def test_a_compiled_run_trains_and_saves_weights_without_the_prefix(tmp_path, cli_inproc):
    """The harness around torch.compile (wrapped module, weights saved without its
    prefix); aot_eager traces and compiles the graphs without inductor's C++ build (~30 s
    of a cold cache), which is torch's to test."""
    assert_usage_error(cli_inproc("train", "compile=true", "compile_backend=nope",
                                  f"runs_dir={tmp_path}"), "unknown compile_backend 'nope'",
                       "aot_eager", "inductor")
    proc = cli_inproc("train", "model=resnet20-A", "model.layers=[1,1,1]", "iterations=4",
                      "eval_every=4", "compile=true", "compile_backend=aot_eager",
                      "responses=false", f"runs_dir={tmp_path}", "run_id=c", "wandb=disabled")
    assert proc.returncode == 0, proc.stderr
    s = _summary(tmp_path / "c")
    assert s["run"]["compile"] is True and s["status"] == "finished"
    assert json.loads((tmp_path / "c" / "config.json").read_text())["run"]["compile_backend"] == \
        "aot_eager"
    assert not any(k.startswith("_orig_mod.") for k in _weights(tmp_path / "c"))
