"""Time each probe (whole-probe seconds) for resnet20-A and resnet56-A on digits-sized
(8x8, 1 channel) and CIFAR-sized (32x32x3) inputs.

Inputs are random tensors of the right shape (a probe's cost does not depend on the pixel
values, and this keeps the timing free of JPEG decoding). Settings are reduced from the
defaults so the whole run fits a shared 2-core CPU; the "work" column counts what each
probe did (forward evaluations, backward passes, Hessian-vector products), so a run at the
defaults scales from the s/unit column.

One torch thread by default: on a CPU shared with other jobs, torch's default of one thread
per core spin-waits behind them (measured here: a resnet56-A forward of 128 8x8 inputs took
2.7 s with 2 threads against 0.1 s with 1 while two training runs held the cores).

    python benchmarks/probe_cost.py [--batch 128] [--threads N] [--models resnet20-A,...]
"""
from __future__ import annotations

import argparse
import time

import torch

import resnet_ablate as ra
from resnet_ablate.probes import PROBES

INPUTS = {"digits 8x8x1": (1, 8), "cifar 32x32x3": (3, 32)}
SETTINGS = {
    "lesion": {"draws": 1, "num_batches": 1},
    "landscape": {"dims": 2, "points": 5, "num_batches": 1},
    "paths": {"samples": 2, "num_batches": 1},
    "hessian": {"max_iter": 10, "trace_iters": 10, "trace_tol": 0.0, "num_batches": 1},
}


def work(name: str, r: dict) -> tuple[int, str]:
    """How much each probe did, in its natural unit."""
    if name == "lesion":
        n = 1 + sum(row["error"] is not None for row in r["single"]) + len(r["delete_k"]) + len(
            r["swap_k"])
        return n, "evals"
    if name == "landscape":
        return r["arrays"]["loss"].size + 1, "evals"
    if name == "paths":
        return 1 + r["arrays"]["path_grad"].size, "backwards"
    return sum(r["eigen_iterations"]) + r["trace_samples"], "HVPs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--models", default="resnet20-A,resnet56-A")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, one batch of "
          f"{args.batch} random inputs per probe")
    print("settings: " + "; ".join(f"{k} {v}" for k, v in SETTINGS.items()))
    rows = []
    for model_name in args.models.split(","):
        for label, (chans, size) in INPUTS.items():
            model = ra.create_model(model_name, num_classes=10, in_chans=chans)
            g = torch.Generator().manual_seed(0)
            batches = [(torch.randn(args.batch, chans, size, size, generator=g),
                        torch.randint(0, 10, (args.batch,), generator=g))]
            for name, entry in PROBES.items():
                start = time.perf_counter()
                r = entry["run"](model, batches, seed=0, **SETTINGS[name])
                seconds = time.perf_counter() - start
                n, unit = work(name, r)
                rows.append((model_name, label, name, seconds, n, unit))
                print(f"  {model_name:11s} {label:14s} {name:9s} {seconds:7.2f} s", flush=True)
    print()
    print(f"{'model':11s} {'input':14s} {'probe':9s} {'seconds':>8s} {'work':>14s} "
          f"{'s/unit':>8s}")
    for model_name, label, name, seconds, n, unit in rows:
        print(f"{model_name:11s} {label:14s} {name:9s} {seconds:8.2f} {n:>5d} {unit:8s} "
              f"{seconds / n:8.4f}")


if __name__ == "__main__":
    main()
