"""Collect at sweep scale: N synthetic runs of 64,000 iterations (a summary.json built
through the run record's schema, a history.csv in the harness's own format, ~3.4 MB each)
collected into the store, at N = 100, 300 and 1,000; then an incremental collect after one
new run and after one changed run, `compare` and Fig. 6 from the store. Each step runs in a
fresh process of its own, which reports the wall and CPU time of its work (its imports
timed apart), its peak RSS and the machine's load (1-minute average) as it started. For
the ratios, in the same run: today's in-memory collect (the last in-memory collect.py,
loaded from git at OLD_COLLECT, at --old-at runs, a size it survives) and the alternatives
the store was chosen over: pyarrow streaming the same CSVs into one Parquet file (the
floor: parsing alone), and write-to-temp-then-rename (copying the store file and its
history parts) to make an update atomic.

    python benchmarks/collect_scale.py [--sizes 100 300 1000] [--old-at 100] [--root DIR]
                                       [--iterations 64000]

--iterations: fewer rows per run, where generating and collecting 1,000 full-length runs
does not fit the time at hand (the table says which length each row had).

Targets (issue 17, 2 cores): 1,000 runs collected in < 60 s and < 1 GB RSS; incremental
< 2 s; compare and Fig. 6 < 10 s. Needs ~1.1 x 3.4 MB x N of disk (checked first).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

EVAL_EVERY, TEMPLATES = 1000, 8
# The commit before the store: its collect.py built every history row as a Python dict.
OLD_COLLECT = "01f21254e6bed57fcd55062a344b8e91d6b85933"

# Each step: a child process that times its imports and its work and prints one JSON line;
# peak RSS is the kernel's high-water mark of this process image (VmHWM: ru_maxrss would
# carry the forking parent's).
_CHILD = r"""
import json, os, re, resource, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
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
    "collect": "from pathlib import Path\nfrom resnet_ablate.analysis.collect import collect",
    "compare": "import contextlib, io\nfrom resnet_ablate.cli import main\n"
               "import resnet_ablate.analysis.stats, resnet_ablate.analysis.collect",
    "fig6": "import io\nfrom resnet_ablate.analysis.collected import open_collected\n"
            "from resnet_ablate.analysis.figures import fig6",
    "old": "import importlib.util\nfrom pathlib import Path\n"
           "import resnet_ablate.analysis.collect",
    "pyarrow": "from pathlib import Path\nimport pyarrow as pa, pyarrow.csv as pc, "
               "pyarrow.parquet as pq\nfrom resnet_ablate.analysis.store import HISTORY_TYPES",
    "copy": "import shutil",
}
STEPS = {
    "collect": """
c = collect([Path(sys.argv[1])], store=sys.argv[2])
out = {"runs": len(c.runs)}
""",
    "compare": """
with contextlib.redirect_stdout(io.StringIO()) as text:
    code = main(["compare", "--store", sys.argv[2]])
out = {"code": code, "rows": len(text.getvalue().splitlines())}
""",
    "fig6": """
c = open_collected(sys.argv[2])
fig, caption = fig6(c)
fig.savefig(io.BytesIO(), format="png", dpi=150)
out = {"runs": len(c.runs)}
""",
    "old": """
spec = importlib.util.spec_from_file_location("resnet_ablate.analysis._main_collect",
                                              sys.argv[2])
old = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)
c = old.collect([Path(sys.argv[1])])
out = {"runs": len(c.runs), "history_rows": len(c.history)}
""",
    "pyarrow": """
types = {c: pa.int64() if t == "BIGINT" else pa.float64() for c, t in HISTORY_TYPES.items()}
writer = None
for d in sorted(Path(sys.argv[1]).iterdir()):
    t = pc.read_csv(d / "history.csv", convert_options=pc.ConvertOptions(column_types=types))
    t = t.append_column("run_id", pa.repeat(d.name, len(t)))
    writer = writer or pq.ParquetWriter(sys.argv[2], t.schema)
    writer.write_table(t)
writer.close()
out = {"mb": os.path.getsize(sys.argv[2]) / 2**20}
""",
    "copy": """
parts = sys.argv[2] + ".history"
shutil.copyfile(sys.argv[2], sys.argv[2] + ".copy")
shutil.copytree(parts, parts + ".copy")
for p in [sys.argv[2] + ".copy"] + [os.path.join(parts + ".copy", n)
                                    for n in os.listdir(parts + ".copy")]:
    with open(p, "rb") as f:
        os.fsync(f.fileno())
os.replace(sys.argv[2] + ".copy", sys.argv[2] + ".copied")
out = {"mb": (os.path.getsize(sys.argv[2]) + sum(
    os.path.getsize(os.path.join(parts, n)) for n in os.listdir(parts))) / 2**20}
os.remove(sys.argv[2] + ".copied")
shutil.rmtree(parts + ".copy")
""",
}


def child(step: str, *args: str, timeout: int = 1800) -> dict:
    code = _CHILD.format(repo=str(REPO), tests=str(REPO / "tests"), imports=IMPORTS[step],
                         body=STEPS[step])
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load}


def store_mb(store: Path) -> float:
    """The store file and its history parts (resnet_ablate.analysis.parts)."""
    parts = store.with_name(store.name + ".history")
    files = [store, *(parts.iterdir() if parts.is_dir() else [])]
    return sum(p.stat().st_size for p in files) / 2**20


def remove_store(store: Path) -> None:
    for p in (store, store.with_name(store.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(store.with_name(store.name + ".history"), ignore_errors=True)


def generate(runs: Path, start: int, stop: int, texts: list[str], iterations: int) -> None:
    from synthetic import MODELS, write_run

    for i in range(start, stop):
        write_run(runs, f"run-{i:05d}", model=MODELS[i % len(MODELS)], seed=i // len(MODELS),
                  iterations=iterations, eval_every=EVAL_EVERY, test_err=5.0 + i % 7,
                  history_text=texts[i % len(texts)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--old-at", type=int, default=100, help="today's collect at this size")
    ap.add_argument("--root", type=Path, default=None, help="where the runs go (default /tmp)")
    ap.add_argument("--iterations", type=int, default=64_000, help="history rows per run")
    args = ap.parse_args()
    its = args.iterations
    sizes = sorted(args.sizes)
    root = Path(tempfile.mkdtemp(prefix="collect-scale-", dir=args.root))
    # the runs, the store, the Parquet file and a copy of the store
    need = int(1.1 * 3.6e6 * its / 64_000 * (sizes[-1] + 2) * 1.5)
    free = shutil.disk_usage(root).free
    if free < need:
        raise SystemExit(f"needs {need / 1e9:.1f} GB free in {root}, has {free / 1e9:.1f}")
    runs, store, parquet = root / "runs", root / "store.duckdb", root / "history.parquet"
    old_py = root / "main_collect.py"
    old_py.write_text(subprocess.run(
        ["git", "show", f"{OLD_COLLECT}:resnet_ablate/analysis/collect.py"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout)
    from synthetic import history

    t = time.time()
    texts = [history(its, min(EVAL_EVERY, its), seed=k).to_csv() for k in range(TEMPLATES)]
    print(f"# {TEMPLATES} history templates of {its:,} iterations "
          f"({len(texts[0]) / 1e6:.1f} MB each) in {time.time() - t:.0f} s; runs in {runs}",
          flush=True)
    rows, have = [], 0
    try:
        for n in sizes:
            t = time.time()
            generate(runs, have, n, texts, its)
            have = n
            print(f"# {n} runs written in {time.time() - t:.0f} s", flush=True)
            row = {"runs": n, "iterations": its}
            remove_store(store)
            row["full"] = child("collect", runs, store)
            row["store_mb"] = store_mb(store)
            if n == args.old_at:
                row["old"] = child("old", runs, old_py)
            row["pyarrow"] = child("pyarrow", runs, parquet)
            parquet.unlink(missing_ok=True)
            generate(runs, have, have + 1, texts[1:], its)  # one new run
            have += 1
            row["incremental"] = child("collect", runs, store)
            (runs / "run-00003" / "history.csv").write_text(texts[-1])  # one changed run
            row["changed"] = child("collect", runs, store)
            row["copy"] = child("copy", runs, store)
            row["compare"] = child("compare", runs, store)
            row["fig6"] = child("fig6", runs, store)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(rows, args.old_at)


def report(rows: list[dict], old_at: int) -> None:
    print("\n| runs x iterations | step | wall s | CPU s | imports s | peak RSS MB | note |")
    print("|---:|---|---:|---:|---:|---:|---|")
    names = {"full": "full collect (new store)", "old": "today's collect (main, in memory)",
             "pyarrow": "pyarrow: CSVs -> one Parquet", "incremental": "collect after 1 new run",
             "changed": "collect after 1 changed run", "copy": "copy the store (temp+rename)",
             "compare": "compare --store (whole command)", "fig6": "Fig. 6 from the store"}
    for row in rows:
        for key, name in names.items():
            if key not in row:
                continue
            m = row[key]
            note = (f"store {row['store_mb']:.0f} MB" if key == "full" else
                    f"{m['mb']:.0f} MB" if "mb" in m else "")
            note = f"{note}{'; ' if note else ''}load {m['load']:.1f}"
            print(f"| {row['runs']} x {row['iterations']:,} | {name} | {m['wall']:.1f} | "
                  f"{m['cpu']:.1f} | {m['imports']:.1f} | {m['rss_mb']:.0f} | {note} |")
    old = next((r for r in rows if "old" in r), None)
    if old:
        print(f"\nAt {old_at} runs, the store's collect against today's: "
              f"{old['old']['wall'] / old['full']['wall']:.1f}x faster (wall), "
              f"{old['old']['cpu'] / old['full']['cpu']:.1f}x less CPU, "
              f"{old['old']['rss_mb'] / old['full']['rss_mb']:.1f}x less peak memory; "
              f"against pyarrow to Parquet: {old['full']['wall'] / old['pyarrow']['wall']:.1f}x "
              "the time.")
    big = rows[-1]
    rss = ", ".join(f"{r['full']['rss_mb']:.0f}" for r in rows)
    sizes = ", ".join(str(r["runs"]) for r in rows)
    print(f"At {big['runs']} runs: incremental {big['incremental']['wall']:.1f} s vs "
          f"copying the store for a temp+rename update {big['copy']['wall']:.1f} s; "
          f"full collect peak RSS {rss} MB at {sizes} runs.")


if __name__ == "__main__":
    main()
