"""benchmarks/gpu_check.py (issue #30) on the CPU: its smoke run in a fresh process as the GPU
machines' image has it (no wandb, fvcore, duckdb or submitit installed), the arithmetic of its
report, and the CUDA-path fixes it came with (a resume loads its checkpoint onto the CPU; the
compile_mode run setting)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import REPO, assert_usage_error

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_report  # noqa: E402

# The GPU machines' image lacks these (KINDS.md's package list): the script must not need them.
NOT_ON_GPU_IMAGE = textwrap.dedent("""
    import sys
    class _Absent:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"wandb", "fvcore", "duckdb", "submitit"}:
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, _Absent())
""")


def test_smoke_run_writes_every_section(tmp_path):
    """The whole script, shrunk, in a subprocess: one JSON line with every section done and
    every number finite, the FLOP/s as a share of the measured peak, the kill-and-resume
    check bitwise equal, the markdown beside it."""
    (tmp_path / "absent").mkdir()
    (tmp_path / "absent" / "sitecustomize.py").write_text(NOT_ON_GPU_IMAGE)
    results = tmp_path / "out" / "gpu_check.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'absent'}{os.pathsep}{REPO}",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke",
                           "--results", str(results), "--work", str(tmp_path / "work")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = results.read_text().splitlines()
    assert len(lines) == 1 and not results.with_suffix(".partial.json").exists()
    r = json.loads(lines[0])
    assert r["smoke"] is True and r["all_finite"] is True
    assert {k: v["status"] for k, v in r["sections"].items()} == {
        k: "ok" for k in ("environment", "throughput", "end_to_end", "correctness",
                          "projection")}, json.dumps(r, indent=1)[:4000]
    assert r["environment"]["peak_tflops"]["fp32"] > 0
    measured = [t for t in r["throughput"]["rows"] if "images_per_s" in t]
    assert {t["config"] for t in measured} == {"reference", "fp32 contiguous",
                                               gpu_report.DEFAULT, "bf16 channels_last"}
    for t in measured:
        assert t["images_per_s"] > 0 and t["frac_peak"] > 0 and t["frac_bf16_peak"] > 0
        assert t["tflops"] == pytest.approx(t["images_per_s"] * 6 * 40_551_040 / 1e12)
    assert all(0 <= t["outside_share"] <= 1 for t in measured if t["config"] != "reference")
    e2e = r["end_to_end"]["runs"]
    assert e2e[0]["status"] == "finished" and e2e[0]["extrapolated_64k_s"] > e2e[0]["wall_s"]
    c = r["correctness"]
    assert c["resume"]["interrupted"] and c["resume"]["bitwise_equal"], c["resume"]
    assert c["torchrun"]["status"] == "finished" and c["uninterrupted"]["status"] == "finished"
    assert c["probes"]["lesion"]["device"] == "cpu" and c["probes"]["hessian"]["trace"] > 0
    p = r["projection"]
    assert len(p["runs"]) == 30 and p["seeds"] == 3  # fig6-table6, from its sweep files
    assert p["packing"]["2"] > 0 and p["wall_s_5_seeds"]["2"] >= p["longest_run_s"]
    assert r["goal"]["floor_s"] > 0
    text = results.with_suffix(".md").read_text()
    assert "| resnet20-A | fp32 channels_last (default) |" in text and "bitwise equal" in text


def test_sweep_files_give_the_experiments_plan():
    """Where W&B is absent the projection reads the sweep files: the same runs."""
    from resnet_ablate.pipeline import load_experiment, plan_experiment

    exp = load_experiment("fig6-table6")
    key = lambda p: json.dumps(p, sort_keys=True)  # noqa: E731
    planned = sorted(map(key, (r.params for r in plan_experiment(exp))))
    assert sorted(map(key, gpu_report.sweep_files_plan(exp))) == planned
    assert len(planned) == 30


def test_extrapolation_to_64k_iterations():
    sizes = {"train": 50_000, "test": 10_000}
    assert gpu_report.eval_images(2000, 1000, sizes) == 2 * 10_000 + 50_000 + 2 * 10_000
    assert gpu_report.eval_images(200, 1000, sizes) == 10_000 + 50_000 + 2 * 10_000
    held = {"train": 45_000, "val": 5_000, "test": 10_000}
    assert gpu_report.eval_images(64_000, 1000, held) == 64 * 15_000 + 45_000 + 10_000 + 5_000
    run = {"iterations": 2000, "eval_every": 1000, "sizes": sizes, "batch": 128,
           "startup_s": 5.0, "first_steps_extra_s": 2.0, "steady_images_per_s": 12_800.0,
           "train_time_s": 22.0, "loop_s": 31.0}  # 9 s evaluating 90,000 images
    assert gpu_report.extrapolate(run) == pytest.approx(5 + 2 + 640 + 710_000 * 1e-4)


def test_projection_of_the_sweep():
    macs = {"resnet20-A": 40_551_424, "resnet56-A": 125_485_696}
    e2e = [{"config": gpu_report.DEFAULT, "model": "resnet56-A", "iterations": 2000,
            "eval_every": 1000, "sizes": {"train": 50_000, "test": 10_000}, "startup_s": 8.0,
            "loop_s": 40.0, "train_time_s": 31.0}]
    import resnet_ablate as ra

    count = lambda m: macs.get(m) or ra.complexity(m, with_fvcore=False)["macs"]  # noqa: E731
    p = gpu_report.project({"resnet20-A": 20_000.0, "resnet56-A": 8_000.0}, e2e,
                           {1: 1.0, 2: 1.6, 4: None}, count, gpu_report.sweep_plan())
    by = {(r["model"], r["seed"]): r for r in p["runs"]}
    assert by["resnet56-A", 0]["measured"] and not by["resnet1202-A", 0]["measured"]
    train = 64_000 * 128 / 8_000
    evals = 710_000 * 9 / 90_000 / macs["resnet56-A"] * macs["resnet56-A"]
    assert by["resnet56-A", 1]["seconds"] == pytest.approx(8 + train + evals)
    assert by["resnet1202-A", 2]["seconds"] == p["longest_run_s"] > 10 * train
    assert p["wall_s_plan"][1] == pytest.approx(p["gpu_seconds"])
    assert p["wall_s_plan"][2] == pytest.approx(max(p["gpu_seconds"] / 1.6, p["longest_run_s"]))
    assert p["wall_s_5_seeds"][1] == pytest.approx(p["gpu_seconds"] * 5 / 3)
    assert p["wall_s_plan"][4] is None  # not measured: no figure


# ---------------------------------------------------------------------------- CUDA-path fixes
def test_resume_loads_the_checkpoint_onto_the_cpu(tmp_path, cli_inproc, monkeypatch):
    """A resume reads its checkpoint onto the CPU, never onto the run's device: the RNG
    states in it restore only from CPU tensors (torch.set_rng_state refuses a CUDA one), so a
    GPU run mapped there could not resume. The old code passed the run's device (on this CPU
    machine torch.device('cpu'): the test fails on it by that argument; the failure itself
    shows on a GPU, which benchmarks/gpu_check.py's resume check runs)."""
    words = ["model=resnet20-A", "model.layers=[1,1,1]", "dataset=digits", "iterations=4",
             "eval_every=4", "checkpoint_every=2", "responses=false", "wandb=disabled",
             "progress=off", f"runs_dir={tmp_path}", "run_id=r"]
    assert cli_inproc("train", *words).returncode == 0
    (tmp_path / "r" / "summary.json").unlink()  # as if killed after its last checkpoint
    seen, load = [], torch.load

    def recording(f, *args, **kwargs):
        if "ckpt-" in str(f):
            seen.append(kwargs.get("map_location"))
        return load(f, *args, **kwargs)
    monkeypatch.setattr(torch, "load", recording)
    resumed = cli_inproc("train", *words, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert seen and all(m == "cpu" for m in seen), seen
    state = load(sorted((tmp_path / "r" / "checkpoints").iterdir())[-1], map_location="cpu",
                 weights_only=True)
    with pytest.raises(TypeError, match="RNG state must be a torch.ByteTensor"):
        torch.set_rng_state(state["rng"]["torch"].to("meta"))  # what a device tensor meets


def test_compile_mode_reaches_torch_compile(tmp_path):
    """compile_mode=reduce-overhead: torch.compile's CUDA graphs (inductor's option, seen
    without compiling anything), recorded as a numerics setting; none without compile."""
    from resnet_ablate.run.config import parse_train_words
    from resnet_ablate.train.session import prepare

    def prepared(run_id, *words):
        prep = prepare(parse_train_words(["model=resnet20-A", "model.layers=[1,1,1]",
                                          "wandb=disabled", "progress=off",
                                          f"runs_dir={tmp_path}", f"run_id={run_id}", *words]))
        prep.rundir.release()
        return prep, json.loads((tmp_path / run_id / "config.json").read_text())["run"]

    prep, run = prepared("graphs", "compile=true", "compile_mode=reduce-overhead")
    assert prep.trainer.net.get_compiler_config()["triton.cudagraphs"] is True
    assert run["compile_mode"] == "reduce-overhead" and run["compile_backend"] == "inductor"
    prep, run = prepared("plain", "compile=true")
    assert prep.trainer.net.get_compiler_config()["triton.cudagraphs"] is False
    assert run["compile_mode"] == "default"
    assert prepared("eager")[1]["compile_mode"] is None


def test_compile_mode_needs_inductor(tmp_path, cli_inproc):
    proc = cli_inproc("train", "compile=true", "compile_backend=aot_eager",
                      "compile_mode=reduce-overhead", f"runs_dir={tmp_path / 'runs'}")
    assert_usage_error(proc, "compile_mode=reduce-overhead needs compile_backend=inductor")
    assert not (tmp_path / "runs").exists()
    assert_usage_error(cli_inproc("train", "compile_mode=fast"), "compile_mode",
                       "reduce-overhead")
