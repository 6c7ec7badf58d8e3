"""Start-up time of the CLI against `python -c "import torch"`, measured in one run (goal:
`resnet-ablate --help`, `models` and `train --help` within 1.5x of importing torch).

    python benchmarks/cli_startup.py [--repeat 5]

Prints each command's median wall time and its ratio to the torch import.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "resnet-ablate --help": [sys.executable, "-m", "resnet_ablate", "--help"],
    "resnet-ablate models": [sys.executable, "-m", "resnet_ablate", "models"],
    "resnet-ablate train --help": [sys.executable, "-m", "resnet_ablate", "train", "--help"],
    "resnet-ablate complexity resnet20-A --no-fvcore": [
        sys.executable, "-m", "resnet_ablate", "complexity", "resnet20-A", "--no-fvcore"],
}
GOAL = 1.5


def median_time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    median_time(COMMANDS['python -c "import torch"'], 1)  # warm the file cache
    times = {name: median_time(cmd, args.repeat) for name, cmd in COMMANDS.items()}
    base = times['python -c "import torch"']
    print(f"median of {args.repeat} runs each; goal: within {GOAL}x of importing torch")
    for name, t in times.items():
        ratio = t / base
        goal = "" if "complexity" in name or "torch" in name else (
            "  OK" if ratio <= GOAL else "  MISSED")
        print(f"  {name:<48} {t:6.2f} s  x{ratio:4.2f}{goal}")


if __name__ == "__main__":
    main()
