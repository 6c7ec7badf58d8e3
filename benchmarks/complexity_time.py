"""Time `ra.complexity` over every registered variant (goal: under 60 s on 2 CPU cores).

Prints the total, the share of fvcore's jit trace (measured in the same run by counting
again without it), and the slowest variants.
    python benchmarks/complexity_time.py [PATTERN]
"""
from __future__ import annotations

import sys
import time

import torch

import resnet_ablate as ra


def main() -> None:
    pattern = sys.argv[1] if len(sys.argv) > 1 else "*"
    names = ra.list_models(pattern)
    timings = {}
    start = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        ra.complexity(name)
        timings[name] = time.perf_counter() - t
    total = time.perf_counter() - start
    start = time.perf_counter()
    for name in names:
        ra.complexity(name, with_fvcore=False)
    hooks_only = time.perf_counter() - start
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(names)} variants")
    print(f"complexity of all variants: {total:.1f} s (goal < 60 s): "
          f"{'OK' if total < 60 else 'TOO SLOW'}")
    print(f"without fvcore: {hooks_only:.1f} s; fvcore's share: "
          f"{100 * (1 - hooks_only / total):.0f}%")
    print("slowest:", ", ".join(f"{n} {s:.1f}s" for n, s in
                                sorted(timings.items(), key=lambda kv: -kv[1])[:5]))


if __name__ == "__main__":
    main()
