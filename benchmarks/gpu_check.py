"""The harness on a GPU (issue #30): one prepared script, run once on an H100/H200 in about
nine minutes; `--smoke` (automatic without CUDA) shrinks every size to run on a CPU.

    python benchmarks/gpu_check.py [--data DIR|FILE.tgz] [--results FILE] [--budget 540]

Sections, each timed and guarded (a failure is recorded and the rest still runs; an item
that would overrun its section's share of --budget is skipped and says so): environment
(device, driver, the device's own matmul peak); throughput (ResNet-56/20/110-A and plain-56
at batch 128: train_throughput.py's torchvision DataLoader reference and harness, eager fp32,
channels_last, bf16, torch.compile, compile with CUDA graphs: images/s, ms/step, GPU memory,
6 x MACs FLOP/s as a share of the peak, the share outside fwd/bwd/step); end_to_end
(`resnet-ablate train` timed whole, extrapolated to 64,000 iterations); correctness
(deterministic kill-and-resume bitwise, one-process torchrun, lesion and Hessian probes);
projection (`reproduce fig6-table6` on this GPU at 1/2/4 concurrent jobs, measured). One
dated JSON line goes to --results, its markdown beside it (.md); <results>.partial.json
holds the sections done so far.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from gpu_report import (DEFAULT, TARGET, clean, error_line, extrapolate, finite, goal,
                        markdown, project, sweep_plan)
from train_throughput import CIFAR_JPG, harness, reference, sync  # beside this file

from resnet_ablate.data.catalog import get_dataset
from resnet_ablate.io import atomic_write_json, atomic_write_text
from resnet_ablate.models.counting import check_size
from resnet_ablate.variants.registry import get_spec

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {  # label: (channels_last, compile, amp, compile mode)
    "fp32 contiguous": (False, False, False, None), DEFAULT: (True, False, False, None),
    "bf16 channels_last": (True, False, True, None),
    "compile fp32": (True, True, False, "default"), "compile bf16": (True, True, True, "default"),
    "compile bf16 + CUDA graphs": (True, True, True, "reduce-overhead")}
WORDS = {"bf16 channels_last": ["amp=bf16"], "compile fp32": ["compile=true"],
         "compile bf16": ["amp=bf16", "compile=true"],
         "compile bf16 + CUDA graphs": ["amp=bf16", "compile=true", "compile_mode=reduce-overhead"]}
SHARES = {"environment": 0.06, "throughput": 0.36, "end_to_end": 0.28, "correctness": 0.14,
          "projection": 0.16}  # of --budget; time a section leaves goes to the later ones


@dataclasses.dataclass(frozen=True)
class Plan:
    models: tuple[str, ...]  # throughput, in order of priority
    steps: int  # timed steps of each configuration
    workers: int  # the reference DataLoader's
    compiled: bool  # the compile configurations (inductor's C++ build is minutes on a CPU)
    e2e: tuple[tuple[str, int], ...]  # (model, iterations) timed end to end
    small: tuple[str, ...]  # train words of every CLI run (the smoke's tiny net and batch)
    check_iterations: int  # the deterministic resume check's runs
    probes: dict = dataclasses.field(default_factory=dict)  # probe settings (GPU: their defaults)
    jobs: tuple[int, ...] = (1, 2, 4)  # concurrent training processes measured
    synthetic: tuple[int, int] = (50_000, 10_000)  # the fallback CIFAR-10's train/test images
    matmul: int = 8192
    budget: float = 540.0


GPU = Plan(("resnet56-A", "resnet20-A", "resnet110-A", "plain56"), 100, 8, True,
           (("resnet56-A", 2000), ("resnet110-A", 200), ("resnet1202-A", 200)), (), 400)
SMOKE = Plan(("resnet20-A",), 2, 0, False, (("resnet20-A", 12),),
             ("model.layers=[1,1,1]", "batch_size=32"), 40,
             {"lesion": {"num_batches": 1, "draws": 1, "delete_ks": [1], "swap_ks": [1]},
              "hessian": {"max_iter": 2, "trace_iters": 2}}, (2,), (1280, 128), 1024, 900.0)


class Check:
    """What every section shares: the plan, the device, the data, the clock."""

    def __init__(self, plan: Plan, device: torch.device, work: Path, dataset: str,
                 data_dir: str) -> None:
        self.plan, self.device, self.work, self.dataset, self.data_dir = (
            plan, device, work, dataset, data_dir)
        self.data_words = [f"dataset={dataset}", f"data_dir={data_dir}",
                           "protocol=he2015-cifar", *plan.small]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.start, self.deadline, self.images, self.results = time.monotonic(), 0.0, None, {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str) -> None:
        remaining = sum(v for k, v in SHARES.items() if k not in self.results)
        total_left = self.plan.budget - (time.monotonic() - self.start)
        self.deadline = time.monotonic() + max(0.0, total_left) * SHARES[name] / remaining


# ---------------------------------------------------------------------------- data, peak
def synthetic_cifar(root: Path, train: int, test: int) -> None:
    """CIFAR-10-shaped random pixels in torchvision's format (where the JPEG copy is not)."""
    import pickle

    import numpy as np

    folder, rng = root / "cifar-10-batches-py", np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": train // 5 for i in range(1, 6)} | {"test_batch": test}
    for name, n in batches.items():
        (folder / name).write_bytes(pickle.dumps({"data": rng.integers(
            0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))


def open_data(arg: str | None, work: Path, plan: Plan, smoke: bool) -> tuple[str, str, str]:
    """(dataset, data_dir, what): the CIFAR-10 JPEG copy (a folder, or a .tgz of it unpacked
    here), else random pixels of CIFAR-10's shape."""
    if arg is None and not smoke and CIFAR_JPG.is_dir():
        arg = str(CIFAR_JPG)
    if arg and arg.endswith((".tgz", ".tar.gz")):
        with tarfile.open(arg) as tar:
            tar.extractall(work / "data", filter="data")
        arg = str(next(p.parent for p in sorted((work / "data").rglob("train")) if p.is_dir()))
    if arg:
        return "imagefolder", arg, f"CIFAR-10 JPEG copy ({arg})"
    synthetic_cifar(work / "cifar10", *plan.synthetic)
    train, test = plan.synthetic
    return "cifar10", str(work / "cifar10"), (f"random pixels of CIFAR-10's shape ({train} + "
                                              f"{test} images; the JPEG copy was not given)")


def matmul_peak(device: torch.device, kind: str, n: int) -> float:
    """TFLOP/s of n x n x n matrix products (2 n^3 FLOP each): ten timed after three."""
    dtype = torch.bfloat16 if kind == "bf16" else torch.float32
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if kind == "tf32" else "highest")
    try:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        for _ in range(3):
            a @ b
        sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        return 2 * n ** 3 * 10 / (time.perf_counter() - start) / 1e12
    finally:
        torch.set_float32_matmul_precision(before)


def environment(ck: Check) -> dict:
    d = ck.device
    out = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": d.type,
           "python": platform.python_version(), "cores": os.cpu_count(),
           "threads": torch.get_num_threads()}
    if d.type == "cuda":
        p = torch.cuda.get_device_properties(d)
        smi = guarded(lambda: {"driver": subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True).stdout.strip()})
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2 ** 30, 1),
                   sms=p.multi_processor_count, driver=smi.get("driver") or smi.get("error"),
                   cudnn=torch.backends.cudnn.version(), cudnn_tf32=torch.backends.cudnn.allow_tf32)
    else:
        out["cpu"] = platform.processor() or platform.machine()
    kinds = ("bf16", "tf32", "fp32") if d.type == "cuda" else ("bf16", "fp32")
    out["peak_tflops"] = {k: matmul_peak(d, k, ck.plan.matmul) for k in kinds}
    start = time.perf_counter()
    ck.images = get_dataset(ck.dataset).load(ck.data_dir, False)  # cold: a fresh decode cache
    out["data_load_s"] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------- 1. throughput
@functools.cache
def macs(name: str) -> int:
    """Conv + fc multiply-adds per 32x32 image, counted on the meta device (in no time)."""
    return check_size(get_spec(name), 32, 10 ** 12, 10 ** 12)["macs"]


def peak_of(ck: Check, amp: bool) -> float:
    """bf16's peak, else TF32's on a GPU (cuDNN's fp32 convolutions use it), fp32's on a CPU."""
    peaks = ck.results["environment"]["peak_tflops"]
    return peaks["bf16"] if amp else peaks.get("tf32", peaks["fp32"])


def measure(ck: Check, name: str, config: str) -> dict:
    cl, comp, amp, mode = CONFIGS.get(config, (False, False, False, None))
    gc.collect()
    if ck.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    start, row = time.perf_counter(), {"model": name, "config": config}
    if config == "reference":
        speed, share = reference(name, ck.images, ck.device, ck.plan.steps, ck.plan.workers), None
    else:  # harness() takes no compile mode: reduce-overhead is this one inductor option
        with torch._inductor.config.patch({"triton.cudagraphs": mode == "reduce-overhead"}):
            speed, share = harness(name, ck.images, ck.device, ck.plan.steps, cl, comp, amp)
    sync(ck.device)
    flops = speed * 6 * macs(name) / 1e12
    row.update(images_per_s=speed, ms_per_step=128e3 / speed, outside_share=share,
               tflops=flops, frac_peak=flops / peak_of(ck, amp),
               frac_bf16_peak=flops / ck.results["environment"]["peak_tflops"]["bf16"],
               wall_s=time.perf_counter() - start)
    if ck.device.type == "cuda":
        row["memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    if comp:
        c = torch._dynamo.utils.counters
        row.update(graphs=c["stats"]["unique_graphs"], graph_breaks=sum(c["graph_break"].values()),
                   cudagraph_skips=c["inductor"].get("cudagraph_skips", 0))
    return row


def throughput(ck: Check) -> dict:
    eager = ["reference", "fp32 contiguous", DEFAULT, "bf16 channels_last"]
    compiled = [c for c in CONFIGS if CONFIGS[c][1]] if ck.plan.compiled else []
    items = [(m, c) for m in ck.plan.models for c in eager]
    items += [(m, c) for m in ck.plan.models for c in reversed(compiled)]
    rows, reserve = [], 60.0  # seconds a compiled configuration needs (then: as measured)
    for name, config in items:
        compiling = CONFIGS.get(config, (0, 0))[1]
        if ck.left() < (reserve if compiling else 5.0):
            rows.append({"model": name, "config": config, "skipped": "budget"})
            continue
        rows.append({"model": name, "config": config,
                     **guarded(lambda: measure(ck, name, config))})
        if compiling and "wall_s" in rows[-1]:  # the next compilation costs about as much
            reserve = 1.5 * rows[-1]["wall_s"]
    rows += [{"model": m, "config": c, "skipped": "CPU smoke: inductor's C++ build takes "
              "minutes"} for m in ck.plan.models for c in CONFIGS if CONFIGS[c][1]
             and not ck.plan.compiled]
    return {"batch": 128, "steps": ck.plan.steps, "rows": rows}


# ---------------------------------------------------------------------------- 2. end to end
RATE = re.compile(r"iter (\d+)/\d+ .* (\d+(?:\.\d+)?) img/s")


def train_cmd(ck: Check, run_id: str, words: list[str], *launcher: str) -> list[str]:
    return [sys.executable, "-m", *(launcher or ["resnet_ablate"]), "train", *ck.data_words,
            *words, f"runs_dir={ck.work / 'runs'}", f"run_id={run_id}", "wandb=disabled",
            "progress=lines"]


def train_cli(ck: Check, run_id: str, words: list[str], timeout: float) -> dict:
    """`resnet-ablate train` in a subprocess, timed: startup (to config.json, written once
    the data and model are ready), the loop (to summary.json), the training clock, and the
    steady rate (median img/s of the later half of its logged windows)."""
    runs, start = ck.work / "runs", time.time()
    proc = subprocess.run(train_cmd(ck, run_id, words), env=ck.env, capture_output=True,
                          text=True, timeout=max(1.0, timeout))
    out = {"run_id": run_id, "words": words, "rc": proc.returncode, "wall_s": time.time() - start}
    run = runs / run_id
    if (run / "summary.json").exists():
        s = json.loads((run / "summary.json").read_text())
        rates = [float(r) for _, r in RATE.findall(proc.stderr)]
        steady = statistics.median(rates[len(rates) // 2:]) if rates else s["images_per_sec"]
        batch = s["protocol_fields"]["batch_size"]
        out.update(status=s["status"], model=s["model"], iterations=s["iterations"],
                   batch=batch, eval_every=s["protocol_fields"]["eval_every"],
                   sizes=s["data"]["split_sizes"], train_time_s=s["train_time_s"],
                   steady_images_per_s=steady, final_test_err=s.get("final_test_err"),
                   startup_s=(run / "config.json").stat().st_mtime - start,
                   loop_s=(run / "summary.json").stat().st_mtime
                   - (run / "config.json").stat().st_mtime)
        out["first_steps_extra_s"] = max(0.0, s["train_time_s"] - s["iterations"] * batch / steady)
    if proc.returncode:
        out["error"] = proc.stderr.strip().splitlines()[-5:]
    return out


def fastest(ck: Check, model: str) -> str | None:
    rows = [r for r in ck.results.get("throughput", {}).get("rows", [])
            if r["model"] == model and r.get("images_per_s") and r["config"] in WORDS]
    return max(rows, key=lambda r: r["images_per_s"])["config"] if rows else None


def end_to_end(ck: Check) -> dict:
    """The default numerics, then the fastest other configuration of section 1 (ResNet-56:
    the goal's), then the deeper nets."""
    (model, n), *deeper = ck.plan.e2e
    best = fastest(ck, model)
    plan = [(model, n, DEFAULT), *([(model, n, best)] if best else []),
            *[(m, k, DEFAULT) for m, k in deeper]]
    runs = []
    for model, n, config in plan:
        if ck.left() < (100 if CONFIGS[config][1] else 30):  # a compilation takes a minute
            runs.append({"model": model, "config": config, "skipped": "budget"})
            continue
        run = {"model": model, "config": config, **guarded(lambda: train_cli(
            ck, f"e2e-{model}-{n}-{len(runs)}", [f"model={model}", f"iterations={n}",
                                                 *WORDS.get(config, [])], min(ck.left(), 300)))}
        if run.get("status") == "finished":
            run["extrapolated_64k_s"] = extrapolate(run)
        runs.append(run)
    return {"target_iterations": TARGET, "runs": runs}


# ---------------------------------------------------------------------------- 3. correctness
def same_run(a: Path, b: Path) -> bool:
    """Bitwise: final weights, per-iteration history, final test error."""
    wa, wb = (torch.load(p / "model.pt", weights_only=True) for p in (a, b))
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    return (wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
            and pq.read_table(a / "history.parquet").equals(pq.read_table(b / "history.parquet"))
            and sa["final_test_err"] == sb["final_test_err"])


def killed_and_resumed(ck: Check, words: list[str], n: int) -> dict:
    """SIGKILL past the checkpoint at n/2 (as a preempted job dies), then resume=true."""
    runs = ck.work / "runs"
    proc = subprocess.Popen(train_cmd(ck, "det-killed", words), env=ck.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    timer = threading.Timer(max(1.0, ck.left()), proc.kill)
    timer.start()
    killed_at = None
    for line in proc.stdout:
        m = RATE.search(line)
        if m and int(m.group(1)) >= 0.6 * n:
            proc.send_signal(signal.SIGKILL)
            killed_at = int(m.group(1))
            break
    proc.wait()
    timer.cancel()
    if killed_at is None or (runs / "det-killed" / "summary.json").exists():
        return {"interrupted": False, "note": "the run ended before it could be killed"}
    resumed = train_cli(ck, "det-killed", [*words, "resume=true"], ck.left())
    return {"interrupted": True, "killed_after_iteration": killed_at, "rc": resumed["rc"],
            "error": resumed.get("error"), "bitwise_equal": resumed["rc"] == 0 and same_run(
                runs / "det-ref", runs / "det-killed")}


def correctness(ck: Check) -> dict:
    n = ck.plan.check_iterations
    words = ["model=resnet20-A", f"iterations={n}", f"eval_every={n // 2}",
             f"checkpoint_every={n // 4}", "log_every=5", "deterministic=true"]
    out: dict = {}
    ref = guarded(lambda: train_cli(ck, "det-ref", words, ck.left()))
    out["uninterrupted"] = {k: ref.get(k) for k in ("rc", "status", "wall_s", "error")}
    out["resume"] = guarded(lambda: killed_and_resumed(ck, words, n))

    def torchrun() -> dict:  # a world of one: no DDP wrapper (train/distributed.from_env)
        start = time.time()
        cmd = train_cmd(ck, "torchrun", ["model=resnet20-A", f"iterations={n // 4}"],
                        "torch.distributed.run", "--standalone", "--nproc-per-node=1", "-m",
                        "resnet_ablate")
        proc = subprocess.run(cmd, env=ck.env, capture_output=True, text=True,
                              timeout=max(1.0, ck.left()))
        done = ck.work / "runs" / "torchrun" / "summary.json"
        return {"rc": proc.returncode, "wall_s": time.time() - start,
                "status": json.loads(done.read_text())["status"] if done.exists() else None,
                "error": proc.stderr.strip().splitlines()[-3:] if proc.returncode else None}
    out["torchrun"] = guarded(torchrun)
    out["probes"] = {name: guarded(lambda: probe(ck, name)) if ref.get("status") == "finished"
                     else {"error": "no finished run to probe"} for name in ("lesion", "hessian")}
    return out


def probe(ck: Check, name: str) -> dict:
    """One probe (in this process, as `train probes=` runs them) of the finished run."""
    from resnet_ablate.probes.probing import parse_request, probe_runs

    (o,) = probe_runs([parse_request(name, ck.plan.probes.get(name))],
                      [ck.work / "runs" / "det-ref"], device=ck.device.type, wandb="disabled",
                      log=lambda _m: None)
    r = o.record["result"]
    return {"seconds": o.seconds, "device": o.record["device"], **(
        {"baseline_error": r["baseline"]["error"]} if name == "lesion" else
        {"top_eigenvalue": r["top_eigenvalues"][0], "trace": r["trace"]})}


# ---------------------------------------------------------------------------- 4. projection
def concurrent_rate(ck: Check, k: int, model: str, steps: int) -> float:
    """Images/s of k training processes sharing the device, started together (each waits
    for the others to be ready), summed; they share the cores as sweep jobs do."""
    ready = Path(tempfile.mkdtemp(dir=ck.work, prefix=f"ready{k}-"))
    cmd = [sys.executable, __file__, "--worker", model, "--dataset", ck.dataset, "--data",
           ck.data_dir, "--steps", str(steps), "--ready", str(ready), "--together", str(k)]
    env = {**ck.env, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // k))}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(k)]
    try:
        outs = [p.communicate(timeout=max(1.0, ck.left()))[0] for p in procs]
    finally:  # none outlives its section (a finished one is left alone)
        for p in procs:
            p.kill()
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a worker of {k} failed (exit {[p.returncode for p in procs]})")
    return sum(json.loads(o.strip().splitlines()[-1])["images_per_s"] for o in outs)


def worker(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images = get_dataset(args.dataset).load(args.data, False)
    Path(args.ready, str(os.getpid())).touch()
    while len(list(Path(args.ready).iterdir())) < args.together:
        time.sleep(0.05)
    speed, _ = harness(args.worker, images, device, args.steps, True, False, False)
    print(json.dumps({"images_per_s": speed}))
    return 0


def projection(ck: Check) -> dict:
    rows = ck.results.get("throughput", {}).get("rows", [])
    e2e = ck.results.get("end_to_end", {}).get("runs", [])
    rates = {r["model"]: r["images_per_s"] for r in rows
             if r["config"] == DEFAULT and r.get("images_per_s")}
    rates |= {r["model"]: r["steady_images_per_s"] for r in e2e
              if r.get("config") == DEFAULT and "steady_images_per_s" in r
              and r["model"] not in rates}
    model, measured, out = ck.plan.models[0], {}, {"images_per_s": rates}
    for k in ck.plan.jobs:
        try:
            measured[k] = (concurrent_rate(ck, k, model, ck.plan.steps)
                           if ck.left() > 15 and model in rates else None)
        except Exception as exc:  # noqa: BLE001
            measured[k], out[f"jobs_{k}_error"] = None, error_line(exc)
    base = measured.get(1) or rates.get(model)
    out["packing_images_per_s"] = measured
    out["packing"] = {k: (v / base if v and base else None) for k, v in measured.items()}
    if not rates:
        return {**out, "error": "no measured rate to project from"}
    return {**out, **project(rates, e2e, out["packing"], macs, sweep_plan())}


def guarded(fn) -> dict:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001  recorded; the section goes on
        return {"error": error_line(exc)}


SECTIONS = {"environment": environment, "throughput": throughput, "end_to_end": end_to_end,
            "correctness": correctness, "projection": projection}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="the CIFAR-10 JPEG copy: a folder or a .tgz of it "
                                   "(default: ../shared/data/cifar10-jpg if there, else random "
                                   "pixels of its shape)")
    ap.add_argument("--results", type=Path, help="the JSON-lines file to append to (default: "
                    "benchmarks/results/gpu_check.jsonl; a temporary one under --smoke)")
    ap.add_argument("--budget", type=float, help="seconds in all (default: 540; smoke: 900, a cap)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (automatic without CUDA)")
    ap.add_argument("--work", type=Path, help="where runs go (default: a temporary folder)")
    for name, kind in (("--worker", str), ("--dataset", str), ("--ready", str),
                       ("--steps", int), ("--together", int)):  # one of concurrent_rate's
        ap.add_argument(name, type=kind, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    smoke = args.smoke or device.type != "cuda"
    plan = dataclasses.replace(SMOKE if smoke else GPU, **({"budget": args.budget}
                                                           if args.budget else {}))
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    results = args.results or (Path(tempfile.gettempdir()) / "gpu_check-smoke.jsonl" if smoke
                               else REPO / "benchmarks" / "results" / "gpu_check.jsonl")
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # a cold decode cache, shared by runs
    dataset, data_dir, what = open_data(args.data, work, plan, smoke)
    ck = Check(plan, device, work, dataset, data_dir)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "smoke": smoke, "data": what,
           "budget_s": plan.budget, "sections": {}}
    partial = results.with_suffix(".partial.json")
    print(f"gpu_check on {device} ({'smoke' if smoke else 'full'}); data: {what}; work: {work}",
          flush=True)
    for name, section in SECTIONS.items():  # one section's failure: the rest still run
        ck.section(name)
        start = time.monotonic()
        ck.results[name] = out[name] = guarded(lambda: section(ck))
        status = "error" if "error" in out[name] else "ok"
        out["sections"][name] = {"status": status, "seconds": time.monotonic() - start}
        print(f"  {name}: {status} in {out['sections'][name]['seconds']:.0f} s", flush=True)
        atomic_write_json(partial, clean(out))
    out["goal"] = guarded(lambda: goal(out, macs("resnet56-A")))
    out["all_finite"] = finite(out)
    old = results.read_text() if results.exists() else ""
    atomic_write_text(results, old + json.dumps(clean(out), default=str) + "\n")
    text = markdown(out)
    atomic_write_text(results.with_suffix(".md"), text)
    partial.unlink(missing_ok=True)
    print(f"\n{text}\nappended to {results}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
