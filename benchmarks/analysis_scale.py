"""Analysis at sweep scale, straight from run directories: N synthetic runs of the harness's
own format (a summary.json built through the run record's schema, a history.parquet written
by the harness's History), then the first `compare` and the first Fig. 6, each from cold in
a fresh process of its own: wall and CPU time of the work (imports timed apart), peak RSS
and the machine's load (1-minute average) as it started. Also the histories' size on disk
against the same rows as CSV (the format before history.parquet).

    python benchmarks/analysis_scale.py [--sizes 100 1000] [--design-space 10000]
                                        [--iterations 64000] [--root DIR]

--design-space N: N runs of 2,000 iterations (a design-space sample's length), compare only.
Targets (issue "The runs are the data", 2 cores): 1,000 runs x 64,000 iterations, compare
and Fig. 6 each < 5 s and < 500 MB; 10,000 runs x 2,000 iterations, compare < 10 s. Each
result is appended, dated, to benchmarks/results/analysis_scale.jsonl. Needs about
1.5 MB x N of disk at 64,000 iterations (checked first). The page cache holds the files just
written: "cold" is a fresh process, not a cold disk.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
RESULTS = REPO / "benchmarks" / "results" / "analysis_scale.jsonl"
EVAL_EVERY, TEMPLATES = 1000, 8

# Each step: a child process that times its imports and its work and prints one JSON line;
# peak RSS is the kernel's high-water mark of this process image (VmHWM).
_CHILD = r"""
import json, os, re, sys, time
sys.path[:0] = [{repo!r}]
t0 = time.time()
{imports}
t1, c1 = time.time(), time.process_time()
{body}
hwm = re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read())
print(json.dumps({{"imports": t1 - t0, "wall": time.time() - t1,
                   "cpu": time.process_time() - c1, "rss_mb": int(hwm.group(1)) / 1024,
                   **out}}))
"""
IMPORTS = {
    "compare": "import contextlib, io\nfrom resnet_ablate.cli import main\n"
               "import resnet_ablate.analysis.stats, resnet_ablate.analysis.rundirs",
    "fig6": "import io\nfrom resnet_ablate.analysis.rundirs import read_runs\n"
            "from resnet_ablate.analysis.figures import fig6",
}
STEPS = {
    "compare": """
with contextlib.redirect_stdout(io.StringIO()) as text:
    code = main(["compare", "--runs", sys.argv[1]])
out = {"code": code, "rows": len(text.getvalue().splitlines())}
""",
    "fig6": """
c = read_runs([sys.argv[1]])
fig, caption = fig6(c)
fig.savefig(io.BytesIO(), format="png", dpi=150)
out = {"runs": len(c.runs)}
""",
}


def child(step: str, runs: Path, timeout: int = 1800) -> dict:
    code = _CHILD.format(repo=str(REPO), imports=IMPORTS[step], body=STEPS[step])
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(runs)], capture_output=True,
                          text=True, timeout=timeout)
    whole = time.perf_counter() - start  # the fresh process, start to exit
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load,
            "process": whole}


def generate(runs: Path, n: int, iterations: int) -> tuple[int, int]:
    """n runs (4 models x n/4 seeds) sharing TEMPLATES histories; (history bytes as Parquet,
    as CSV) over all n."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from synthetic import MODELS, history, write_run

    files = [history(iterations, min(EVAL_EVERY, iterations), seed=k).to_parquet()
             for k in range(TEMPLATES)]
    csv = []
    for f in files:
        buf = io.BytesIO()
        pcsv.write_csv(pq.read_table(pa.BufferReader(f)), buf)
        csv.append(len(buf.getvalue()))
    for i in range(n):
        write_run(runs, f"run-{i:05d}", model=MODELS[i % len(MODELS)], seed=i // len(MODELS),
                  iterations=iterations, eval_every=min(EVAL_EVERY, iterations),
                  test_err=5.0 + i % 7, history_bytes=files[i % TEMPLATES])
    return (sum(len(files[i % TEMPLATES]) for i in range(n)),
            sum(csv[i % TEMPLATES] for i in range(n)))


def measure(root: Path, n: int, iterations: int, steps: list[str]) -> dict:
    runs = root / f"runs-{n}x{iterations}"
    t = time.time()
    parquet, csv = generate(runs, n, iterations)
    print(f"# {n} runs x {iterations:,} iterations written in {time.time() - t:.0f} s",
          flush=True)
    row = {"runs": n, "iterations": iterations, "parquet_mb": parquet / 2**20,
           "csv_mb": csv / 2**20}
    for step in steps:
        row[step] = child(step, runs)
    shutil.rmtree(runs, ignore_errors=True)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--design-space", type=int, default=10_000, metavar="N",
                    help="N runs of 2,000 iterations, compare only (0: none)")
    ap.add_argument("--iterations", type=int, default=64_000)
    ap.add_argument("--root", type=Path, default=None, help="where the runs go (default /tmp)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="analysis-scale-", dir=args.root))
    need = int(1.6e6 * args.iterations / 64_000 * max(args.sizes or [0]))
    if shutil.disk_usage(root).free < need:
        raise SystemExit(f"needs {need / 1e9:.1f} GB free in {root}")
    rows = []
    try:
        for n in sorted(args.sizes):
            rows.append(measure(root, n, args.iterations, ["compare", "fig6"]))
        if args.design_space:
            rows.append(measure(root, args.design_space, 2000, ["compare"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    stamp = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
             "cores": os.cpu_count(), "python": platform.python_version(),
             "command": " ".join(["python", *sys.argv])}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        for row in rows:
            f.write(json.dumps({**stamp, **row}) + "\n")
    report(rows)


def report(rows: list[dict]) -> None:
    print("\n| runs x iterations | step | whole process s | of it: work s, imports s | CPU s "
          "| peak RSS MB | load |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        for step in ("compare", "fig6"):
            if step in row:
                m = row[step]
                print(f"| {row['runs']:,} x {row['iterations']:,} | {step} | "
                      f"{m['process']:.1f} | {m['wall']:.1f}, {m['imports']:.1f} | "
                      f"{m['cpu']:.1f} | {m['rss_mb']:.0f} | {m['load']:.1f} |")
    print("\n| runs x iterations | histories as Parquet MB | as CSV MB | ratio |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['runs']:,} x {row['iterations']:,} | {row['parquet_mb']:,.0f} | "
              f"{row['csv_mb']:,.0f} | {row['csv_mb'] / row['parquet_mb']:.1f}x |")


if __name__ == "__main__":
    main()
