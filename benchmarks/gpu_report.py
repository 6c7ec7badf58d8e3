"""The arithmetic and the tables of benchmarks/gpu_check.py, apart from its measuring: a
run's time extrapolated to the paper's 64,000 iterations, the fig6-table6 sweep projected
onto one GPU, the issue's goal against its floor, and the markdown of a result.

    python benchmarks/gpu_report.py RESULTS.jsonl     # the last line's tables again
"""
from __future__ import annotations

import json
import math
import statistics
import sys
import traceback
from pathlib import Path
from typing import Callable

TARGET = 64_000  # the paper's iterations on CIFAR-10 (He et al. 2015, Sec. 4.2)
GOAL_RESNET56_S, GOAL_SWEEP_S = 180, 1800  # the issue: ResNet-56 in 3 min, Table 6 in 30
DEFAULT = "fp32 channels_last (default)"


def eval_images(iterations: int, eval_every: int, sizes: dict) -> int:
    """Images a run evaluates: val and test at each evaluation point (every eval_every and
    at the end), then the final pass: training split, test split, Fig. 7's responses."""
    points = iterations // eval_every + (iterations % eval_every > 0)
    val, test = sizes.get("val", 0), sizes["test"]
    return points * (val + test) + sizes["train"] + test + (val or test)


def extrapolate(run: dict, target: int = TARGET) -> float:
    """A timed run's seconds at `target` iterations: startup and its first steps' extra
    (compilation, cuDNN's autotuning) once, training at its steady rate, evaluation in
    proportion to the images evaluated (checkpoints, at the same cadence, go with it)."""
    n, e, sizes = run["iterations"], run["eval_every"], run["sizes"]
    per_image = max(0.0, run["loop_s"] - run["train_time_s"]) / eval_images(n, e, sizes)
    return (run["startup_s"] + run["first_steps_extra_s"]
            + target * run["batch"] / run["steady_images_per_s"]
            + per_image * eval_images(target, e, sizes))


def sweep_plan(name: str = "fig6-table6") -> list[dict]:
    """The experiment's runs as `reproduce --dry-run` plans them; without W&B installed (the
    GPU machines' image; plan_experiment names each run's W&B command), the same runs read
    from its sweep files."""
    from resnet_ablate.pipeline import load_experiment, plan_experiment

    exp = load_experiment(name)
    try:
        return [r.params for r in plan_experiment(exp)]
    except ModuleNotFoundError:
        return sweep_files_plan(exp)


def sweep_files_plan(exp) -> list[dict]:
    """Each run of the experiment's sweeps (their `only:` subsets) once."""
    from resnet_ablate.sweep import load_sweep, plan

    found: dict[str, dict] = {}
    for ref in exp.sweeps:
        for p in plan(load_sweep(ref.file)):
            if all(str(p[k]) in map(str, v) for k, v in (ref.only or {}).items()):
                found.setdefault(json.dumps(p, sort_keys=True), p)
    return list(found.values())


def project(rates: dict[str, float], e2e: list[dict], packing: dict[int, float | None],
            macs: Callable[[str], int], plan: list[dict]) -> dict:
    """GPU-seconds of every planned run at the default numerics, and the sweep's wall time
    at k jobs per GPU: the total over the measured packing factor (k processes' images/s
    over one's), never below its longest run. Seconds per image are measured where measured,
    else read off a least-squares line against MACs through the measured models; evaluation
    costs ResNet-56's per image and MAC, startup the timed runs' median."""
    from resnet_ablate.run.config import parse_train_words

    cost = {m: (macs(m), 1 / r) for m, r in rates.items()}
    xs, ys = zip(*cost.values())
    line = statistics.linear_regression(xs, ys) if len(set(xs)) > 1 else None
    ref = next((r for r in e2e if r.get("config") == DEFAULT and "loop_s" in r), None)
    startup = statistics.median(r["startup_s"] for r in e2e if "startup_s" in r) if ref else 10.0
    sizes = ref["sizes"] if ref else {"train": 50_000, "test": 10_000}
    eval_cost = ((ref["loop_s"] - ref["train_time_s"]) / eval_images(
        ref["iterations"], ref["eval_every"], sizes) / macs(ref["model"])) if ref else 0.0
    runs, seeds = [], set()
    for params in plan:
        p, m = parse_train_words([f"{k}={v}" for k, v in params.items()]).protocol, params["model"]
        per = cost[m][1] if m in cost else (line.intercept + line.slope * macs(m) if line
                                            else ys[0] * macs(m) / xs[0])
        runs.append({"model": m, "seed": params["seed"], "measured": m in cost, "seconds":
                     startup + p.iterations * p.batch_size * per
                     + eval_images(p.iterations, p.eval_every, sizes) * eval_cost * macs(m)})
        seeds.add(params["seed"])
    total, longest = sum(r["seconds"] for r in runs), max(r["seconds"] for r in runs)
    out = {"runs": runs, "seeds": len(seeds), "gpu_seconds": total, "longest_run_s": longest}
    for label, scale in (("plan", 1.0), ("5_seeds", 5 / len(seeds))):
        out[f"wall_s_{label}"] = {k: (max(total * scale / f, longest) if f else None)
                                  for k, f in packing.items()}
    return out


def goal(results: dict, resnet56_macs: int) -> dict:
    """The issue's goal against its floor: 64,000 x 128 images of ResNet-56 at 6 x MACs
    FLOP each, at the device's measured bf16 peak."""
    peak = results.get("environment", {}).get("peak_tflops", {}).get("bf16")
    out = {"resnet56_macs": resnet56_macs,
           "floor_s": TARGET * 128 * resnet56_macs * 6 / (peak * 1e12) if peak else None}
    e2e = [r for r in results.get("end_to_end", {}).get("runs", [])
           if r.get("model") == "resnet56-A" and r.get("extrapolated_64k_s")]
    if e2e:
        best = min(e2e, key=lambda r: r["extrapolated_64k_s"])
        out.update(resnet56_64k_s=best["extrapolated_64k_s"], resnet56_config=best["config"],
                   resnet56_x_goal=best["extrapolated_64k_s"] / GOAL_RESNET56_S)
    walls = [w for w in results.get("projection", {}).get("wall_s_5_seeds", {}).values() if w]
    if walls:
        out.update(sweep_5_seeds_s=min(walls), sweep_x_goal=min(walls) / GOAL_SWEEP_S)
    return out


def clean(obj):
    """The result as JSON holds it: a non-finite number becomes null (finite() says so)."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def finite(obj) -> bool:
    """Every number in a result is finite (JSON has no NaN; the test reads this)."""
    if isinstance(obj, dict):
        return all(finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(finite(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


def error_line(exc: BaseException) -> str:
    """An exception in one line, with where it was raised."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    return (f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]
            + "".join(f" (at {Path(f.filename).name}:{f.lineno})" for f in where))


# ---------------------------------------------------------------------------- markdown
def _f(value, digits: int = 0, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * scale:,.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *["| " + " | ".join(map(str, r)) + " |" for r in rows], ""]


def _throughput_row(t: dict) -> list[str]:
    if "images_per_s" not in t:
        return [t["model"], t["config"], t.get("skipped") or str(t.get("error"))[:120],
                *["-"] * 7]
    return [t["model"], t["config"], _f(t["images_per_s"]), _f(t["ms_per_step"], 2),
            f"{t['tflops']:.3g}", _f(t["frac_peak"], 1, 100) + "%",
            _f(t["frac_bf16_peak"], 2, 100) + "%", _f(t.get("outside_share"), 1, 100) + "%",
            _f(t.get("memory_gib"), 2), _f(t["wall_s"], 1)]


def _correctness(c: dict) -> list[str]:
    def said(d: dict) -> str:
        return "; ".join(f"{k} {_f(v, 4) if isinstance(v, float) else v}" for k, v in d.items()
                         if v is not None)
    r, probes = c.get("resume", {}), c.get("probes", {})
    return [f"- deterministic=true, killed (SIGKILL) and resumed vs never stopped: "
            f"{'bitwise equal' if r.get('bitwise_equal') else 'NOT equal'}; {said(r)}",
            f"- uninterrupted run: {said(c.get('uninterrupted', {}))}",
            f"- one-process torchrun: {said(c.get('torchrun', {}))}",
            *[f"- probe {k}: {said(v)}" for k, v in probes.items()]]


def markdown(r: dict) -> str:
    env = r.get("environment", {})
    peaks = env.get("peak_tflops", {})
    where = f"{env.get('gpu') or env.get('cpu', '?')} ({r['date']}"
    lines = [f"### {where}{', smoke' if r['smoke'] else ''})",
             "", f"driver {env.get('driver', '-')}, torch {env.get('torch')}, CUDA "
             f"{env.get('cuda')}, cuDNN {env.get('cudnn', '-')}, {env.get('cores')} cores; "
             "measured matmul peak " + ", ".join(f"{k} {v:.3g}" for k, v in peaks.items())
             + f" TFLOP/s; data: {r.get('data')} (loaded in {_f(env.get('data_load_s'), 1)} s)",
             ""]
    lines += ["Training throughput at batch 128 (images/s; FLOP/s = 6 x MACs x images/s, as a "
              "share of the peak of its own arithmetic and of bf16's):", ""]
    lines += _table(["model", "configuration", "img/s", "ms/step", "TFLOP/s", "of peak",
                     "of bf16 peak", "outside fwd/bwd/step", "GPU GiB", "wall s"],
                    [_throughput_row(t) for t in r.get("throughput", {}).get("rows", [])])
    e2e = r.get("end_to_end", {}).get("runs", [])
    lines += ["End to end (`resnet-ablate train`, evaluation and checkpoints included), "
              f"extrapolated to {TARGET:,} iterations:", ""]
    lines += _table(["model", "configuration", "iterations", "wall s", "startup s",
                     "steady img/s", "64k extrapolated", "status"],
                    [[e.get("model"), e.get("config"), e.get("iterations", "-"),
                      _f(e.get("wall_s"), 1), _f(e.get("startup_s"), 1),
                      _f(e.get("steady_images_per_s")),
                      _f(e.get("extrapolated_64k_s"), 1, 1 / 60) + " min",
                      e.get("status") or e.get("skipped") or str(e.get("error"))[:80]]
                     for e in e2e])
    lines += ["Correctness on the device:", "", *_correctness(r.get("correctness", {})), ""]
    p = r.get("projection", {})
    lines += [f"`reproduce fig6-table6` on this one device ({len(p.get('runs', []))} runs, "
              f"{p.get('seeds')} seeds; {_f(p.get('gpu_seconds'), 1, 1 / 3600)} GPU-hours at "
              "the default numerics; packing measured with concurrent processes):", ""]
    lines += _table(["jobs per GPU", "packing (x one's img/s)", "wall, the plan",
                     "wall, 5 seeds"],
                    [[k, _f(f, 2), _f(p.get("wall_s_plan", {}).get(k), 1, 1 / 60) + " min",
                      _f(p.get("wall_s_5_seeds", {}).get(k), 1, 1 / 60) + " min"]
                     for k, f in p.get("packing", {}).items()])
    g = r.get("goal", {})
    lines += [f"Goal: ResNet-56, 64k iterations in {GOAL_RESNET56_S} s (floor at the measured "
              f"bf16 peak: {_f(g.get('floor_s'), 1)} s); measured "
              f"{_f(g.get('resnet56_64k_s'), 0)} s ({g.get('resnet56_config', '-')}), "
              f"x{_f(g.get('resnet56_x_goal'), 1)} the goal. Table 6 with 5 seeds in "
              f"{GOAL_SWEEP_S // 60} min: projected {_f(g.get('sweep_5_seeds_s'), 1, 1 / 60)} "
              f"min, x{_f(g.get('sweep_x_goal'), 1)} the goal.", ""]
    lines += ["Sections: " + ", ".join(f"{k} {v['status']} ({_f(v['seconds'], 0)} s)"
                                       for k, v in r.get("sections", {}).items()), ""]
    lines += [f"- {k} failed: {r[k]['error']}" for k in (*r.get("sections", {}), "goal")
              if isinstance(r.get(k), dict) and "error" in r[k]]
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(markdown(json.loads(f.read().strip().splitlines()[-1])))
