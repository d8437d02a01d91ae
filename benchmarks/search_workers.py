"""Throughput of ``python -m plsearch.search --workers N`` on this machine, and the framework's overhead per trial.

Runs the tiny search (search_spaces/tiny.yaml, with ``model.ocs`` made continuous so that no trial is
a duplicate that skips training) with 1, 2 and 4 workers sharing a journal file, each from scratch
in its own folder, as a user would (one ``python -m plsearch.search`` command each), and reports:

- trials per minute over the whole command (process start-up and data included) and in steady state
  (trials / time from the first trial's start to the last one's end);
- the framework's overhead per trial: the time of a trial (ask to tell) outside ``fit`` (training
  and validation), i.e. ``seconds - metrics.train_seconds`` from trials.jsonl, as a share of the
  trial's time: sampling, config build, analytic cost, model build, duplicate check, pruning
  look-ups, storage writes and journal locking; plus the time between trials of a worker (records
  and Pareto files, stale-trial check, counting, asking), from the steady-state span; "framework"
  is both, per trial, and its share of a worker's time per trial.

    python benchmarks/search_workers.py                       # 64 trials per setting, ~1 min on 2 idle cores
    python benchmarks/search_workers.py --workers 1 2 4 8 --n-trials 32 --out results/search_workers

Writes OUT/results.md and OUT/results.json (OUT defaults to results/search_workers, gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def bench_space(out: Path) -> Path:
    """tiny.yaml with a continuous ``model.ocs`` (no duplicate configs), written to OUT/space/tiny.yaml."""
    space = yaml.safe_load((REPO / "search_spaces" / "tiny.yaml").read_text())
    space["model.ocs"] = {"low": 0.5, "high": 1.0}
    path = out / "space" / "tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def run(workers: int, n_trials: int, space: Path, out: Path) -> dict:
    folder = out / f"workers_{workers}"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    cmd = [sys.executable, "-m", "plsearch.search", "--space", str(space), "--out", str(folder), "--n-trials",
           str(n_trials), "--workers", str(workers), "--storage", str(folder / "study.journal"),
           "--no-references", "--no-plots"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"workers={workers} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    records = [json.loads(x) for x in (folder / "trials.jsonl").read_text().splitlines()]
    counted = [r for r in records if not r.get("requeued") and not r.get("surplus")]
    trained = [r for r in counted if r.get("seconds") and (r.get("metrics") or {}).get("train_seconds") is not None
               and r.get("duplicate_of") is None]
    secs = [r["seconds"] for r in trained]
    fit = [r["metrics"]["train_seconds"] for r in trained]
    share = [(s - f) / s for s, f in zip(secs, fit)]
    from datetime import datetime

    starts = [datetime.fromisoformat(r["datetime_start"]).timestamp() for r in counted]
    ends = [s + r["seconds"] for s, r in zip(starts, counted)]
    span = max(ends) - min(starts)
    # between trials (tell -> next ask: records, stale check, count, ask) per worker, on average
    gap = max(0.0, span * workers / len(counted) - statistics.mean(r["seconds"] for r in counted))
    outside = statistics.mean(s - f for s, f in zip(secs, fit)) + gap
    return {"workers": workers, "trials": len(counted), "trained": len(trained), "wall_s": round(wall, 1),
            "per_min_wall": round(60 * len(counted) / wall, 1), "per_min_steady": round(60 * len(counted) / span, 1),
            "median_trial_s": round(statistics.median(secs), 2), "median_fit_s": round(statistics.median(fit), 2),
            "overhead_median_pct": round(100 * statistics.median(share), 1),
            "overhead_total_pct": round(100 * (sum(secs) - sum(fit)) / sum(secs), 1),
            "overhead_median_s": round(statistics.median(s - f for s, f in zip(secs, fit)), 3),
            "gap_s": round(gap, 3), "framework_s": round(outside, 3),
            "framework_pct": round(100 * outside / (statistics.mean(secs) + gap), 1),
            "command": shlex.join(cmd[1:])}


def table(rows: list[dict]) -> str:
    head = ("| workers | trials | wall s | trials/min (wall) | trials/min (steady) | median trial s | median fit s "
            "| in-trial overhead median s (%) | in-trial overhead total % | between trials s | framework s (%) |")
    lines = [head, "|" + "|".join(["---:"] * 11) + "|"]
    for r in rows:
        lines.append(f"| {r['workers']} | {r['trials']} | {r['wall_s']} | {r['per_min_wall']} | {r['per_min_steady']} "
                     f"| {r['median_trial_s']} | {r['median_fit_s']} | {r['overhead_median_s']} "
                     f"({r['overhead_median_pct']}) | {r['overhead_total_pct']} | {r['gap_s']} "
                     f"| {r['framework_s']} ({r['framework_pct']}) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--n-trials", type=int, default=64)
    p.add_argument("--out", default=str(REPO / "results" / "search_workers"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = bench_space(out)
    meta = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_before": os.getloadavg(), "n_trials": args.n_trials}
    rows = []
    for w in args.workers:
        rows.append(run(w, args.n_trials, space, out))
        print(f"workers {w}: {rows[-1]['per_min_wall']} trials/min (wall), overhead {rows[-1]['overhead_median_pct']}% "
              f"of a trial (median)", flush=True)
    meta["load_after"] = os.getloadavg()
    text = (f"# Search throughput with --workers (journal file)\n\n{meta['cpus']} CPUs, {meta['platform']}, "
            f"{args.n_trials} trials per setting, load average before/after "
            f"{meta['load_before'][0]:.2f}/{meta['load_after'][0]:.2f}\n\n" + table(rows)
            + f"\nCommand per row: `python {rows[0]['command']}` (with that row's --workers)\n")
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
