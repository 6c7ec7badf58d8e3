"""Time each probe (whole-probe seconds) for resnet20-A and resnet56-A on digits-sized
(8x8, 1 channel) and CIFAR-sized (32x32x3) inputs, each against a reference measured in
the same run: one eval-mode forward of the same batch (the "x eval" column), and the cost
of the demo's probes (the bundled demo experiment's `probes:` settings, on digits-sized
inputs of its split sizes) beside one demo training run's forward/backward steps.

Inputs are random tensors of the right shape (a probe's cost does not depend on the pixel
values, and this keeps the timing free of JPEG decoding). Settings are reduced from the
defaults so the whole run fits a shared 2-core CPU; the "work" column counts what each
probe did (forward evaluations, backward passes, Hessian-vector products), so a run at the
defaults scales from the s/unit column.

One torch thread by default: on a CPU shared with other jobs, torch's default of one thread
per core spin-waits behind them (measured here: a resnet56-A forward of 128 8x8 inputs took
2.7 s with 2 threads against 0.1 s with 1 while two training runs held the cores).

    python benchmarks/probe_cost.py [--batch 128] [--threads N] [--models resnet20-A,...]
        [--skip-grid] [--skip-demo]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import resnet_ablate as ra
from resnet_ablate.probes import PROBES
from resnet_ablate.probes.common import evaluate

INPUTS = {"digits 8x8x1": (1, 8), "cifar 32x32x3": (3, 32)}
SETTINGS = {
    "lesion": {"draws": 1, "num_batches": 1},
    "landscape": {"dims": 2, "points": 5, "num_batches": 1},
    "linear_path": {"points": 5, "num_batches": 1},
    "paths": {"samples": 2, "num_batches": 1},
    "hessian": {"max_iter": 10, "trace_iters": 10, "trace_tol": 0.0, "num_batches": 1},
}
DEMO_SPLITS = {"test": 359, "train": 1258}  # the demo's digits splits (protocol demo)
DEMO_ITERATIONS = 1200  # protocol demo


def work(name: str, r: dict) -> tuple[int, str]:
    """How much each probe did, in its natural unit."""
    if name == "lesion":
        n = 1 + sum(row["error"] is not None for row in r.get("single", [])) + len(
            r.get("delete_k", [])) + len(r.get("swap_k", []))
        return n, "evals"
    if name in ("landscape", "linear_path"):
        return r["arrays"]["loss"].size + (name == "landscape"), "evals"
    if name == "paths":
        return 1 + r["arrays"]["path_grad"].size, "backwards"
    return sum(r["eigen_iterations"]) + r["trace_samples"], "HVPs"


def batches_of(n: int, size: int, chans: int, side: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, size):
        m = min(size, n - start)
        out.append((torch.randn(m, chans, side, side, generator=g),
                    torch.randint(0, 10, (m,), generator=g)))
    return out


def seconds(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def run_probe(model, name: str, batches: list, settings: dict) -> dict:
    extra = {}
    if PROBES[name]["needs_initial"]:
        extra["initial"] = ra.create_model(model.spec.name, num_classes=10,
                                           in_chans=model.spec.in_chans).state_dict()
    return PROBES[name]["run"](model, batches, seed=0, **settings, **extra)


def grid(args) -> None:
    print(f"one batch of {args.batch} random inputs per probe; reference: one eval-mode "
          "forward of that batch")
    print("settings: " + "; ".join(f"{k} {v}" for k, v in SETTINGS.items()))
    rows = []
    for model_name in args.models.split(","):
        for label, (chans, size) in INPUTS.items():
            model = ra.create_model(model_name, num_classes=10, in_chans=chans).eval()
            batches = batches_of(args.batch, args.batch, chans, size)
            evaluate(model, batches)  # warm-up
            ref = seconds(lambda: evaluate(model, batches), 3)
            for name, settings in SETTINGS.items():
                start = time.perf_counter()
                r = run_probe(model, name, batches, settings)
                took = time.perf_counter() - start
                n, unit = work(name, r)
                rows.append((model_name, label, name, took, n, unit, took / ref))
                print(f"  {model_name:11s} {label:14s} {name:11s} {took:7.2f} s", flush=True)
    print()
    print(f"{'model':11s} {'input':14s} {'probe':11s} {'seconds':>8s} {'work':>14s} "
          f"{'s/unit':>8s} {'x eval':>8s}")
    for model_name, label, name, took, n, unit, ratio in rows:
        print(f"{model_name:11s} {label:14s} {name:11s} {took:8.2f} {n:>5d} {unit:8s} "
              f"{took / n:8.4f} {ratio:8.1f}")


def demo() -> None:
    """The demo experiment's probes as it runs them, against a demo training run."""
    from resnet_ablate.pipeline import load_experiment
    from resnet_ablate.probes.probing import parse_request

    exp = load_experiment("demo")
    print(f"\nthe demo's probes ({len(exp.probes)}), digits-sized inputs, its split sizes")
    total = 0.0
    for model_name in ("plain56", "resnet56-A"):
        model = ra.create_model(model_name, num_classes=10, in_chans=1)
        x, y = batches_of(128, 128, 1, 8)[0]
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        model.train()
        step()
        train_s = seconds(step, 5) * DEMO_ITERATIONS
        model.eval()
        for ref in exp.probes:
            if ref.only and model_name not in ref.only.get("model", [model_name]):
                continue
            request = parse_request(ref.name, ref.settings, seed=ref.seed)
            size = request.batch_size or 128
            data = batches_of(DEMO_SPLITS[request.probe.split], size, 1, 8)
            took = seconds(lambda: run_probe(model, ref.name, data, request.settings_dict()))
            runs = len(ref.only.get("seed", [0, 1, 2])) if ref.only else 3
            total += took * runs
            print(f"  {model_name:11s} {ref.name:10s} {took:6.2f} s per run x {runs} runs = "
                  f"{took * runs:6.1f} s; {100 * took / train_s:5.1f}% of one run's "
                  f"{DEMO_ITERATIONS} training steps ({train_s:.0f} s here)", flush=True)
    print(f"  the demo's probes in all: {total:.1f} s of compute (one thread)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--models", default="resnet20-A,resnet56-A")
    ap.add_argument("--skip-grid", action="store_true", help="only the demo's probes")
    ap.add_argument("--skip-demo", action="store_true", help="only the grid of probes")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_grid:
        grid(args)
    if not args.skip_demo:
        demo()


if __name__ == "__main__":
    main()
