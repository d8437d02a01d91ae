"""Pruning benchmark: hypervolume of the validation front against trial CPU-seconds, none vs dominance vs asha.

Each (method, seed) run searches the same space (default ``search_spaces/ipl_epl_dsb2018.yaml``) with
its own study, one trial at a time, until its trials have used ``--budget`` CPU-seconds (process time
of one thread, so parallel runs on a shared machine do not distort it). After every trial the
hypervolume of the feasible trained trials is taken in (MACs / bound, val Dice) with a fixed reference
point (MACs at the space's MACs bound, Dice at the trivial predictors' val Dice), so a degenerate
net adds nothing. Each final front is also scored at a higher fidelity (``--high KEY=VALUE``): its
points are retrained there (cached by config, shared between methods) and the front's hypervolume is
recomputed with those Dice values, since a pruner that stops slow starters can look good at its own
fidelity and be wrong.

Resumable at two levels: a killed run continues its study (``<out>/<method>-s<seed>/study.db``, the
trial CPU-seconds in ``cpu.jsonl`` beside it); finished runs are rows of ``--rows`` (a small committed
JSONL file, default ``docs/bench/pruning_hv.jsonl``) and are skipped. ``--report`` only redraws the
table and plot from the rows.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/pruning_hv.py --data ../shared/data/dsb2018 \\
        --methods none,dominance,asha --seeds 0 --budget 600 --high train.epochs=27
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
METHODS = {"none": False, "dominance": {"name": "dominance", "n_startup_trials": 3, "n_warmup_epochs": 1,
                                        "min_delta": 0.02},
           "asha": {"name": "asha", "min_epochs": 3, "eta": 3},  # rung after epoch 3 of 9
           "asha1": {"name": "asha", "min_epochs": 1, "eta": 3}}  # rungs after epochs 1 and 3


def hypervolume(points: list[tuple[float, float]], x_ref: float, y_ref: float) -> float:
    """Area dominated by ``(x, y)`` points (x minimised, y maximised) within ``x <= x_ref, y >= y_ref``."""
    pts = sorted((x, y) for x, y in points if x < x_ref and y > y_ref)
    area, best = 0.0, y_ref
    for i, (x, y) in enumerate(pts):  # sweep x upward: each step adds the strip up to the next x
        best = max(best, y)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else x_ref
        area += (nxt - x) * (best - y_ref)
    return area / (x_ref * (1.0 - y_ref))  # normalised: 1.0 = a zero-cost net with Dice 1


def _space(path: Path, method: str, seed: int, n_trials: int) -> Any:
    import yaml

    from plsearch.search.space import parse_space

    raw = yaml.safe_load(path.read_text())
    raw["pruning"] = METHODS[method]
    raw["references"] = False
    raw["timeout"] = None
    raw["seed"], raw["n_trials"] = seed, n_trials
    return parse_space(raw, name=f"{path.stem}-{method}-s{seed}", base_dir=path.parent)


def _cpu_rows(path: Path) -> dict[int, float]:
    if not path.is_file():
        return {}
    return {r["number"]: r["cpu_s"] for r in map(json.loads, path.read_text().splitlines()) if r}


def run_one(args: argparse.Namespace, method: str, seed: int) -> dict:
    """Search until ``args.budget`` trial CPU-seconds are spent; returns the row (without high-fidelity scores)."""
    from plsearch.search import run_search

    out = Path(args.out) / f"{method}-s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    cpu_file = out / "cpu.jsonl"
    extra = {"data.root": str(Path(args.data).resolve())} if args.data else {}
    from plsearch.search.study import check_inputs

    check_inputs(_space(Path(args.space), method, seed, 1), extra)  # loads the data once, outside trial CPU time
    n = 0
    while sum(_cpu_rows(cpu_file).values()) < args.budget and n < args.max_trials:
        n = len(_cpu_rows(cpu_file)) + 1
        clock = [time.process_time()]

        def on_trial(rec: dict, clock: list[float] = clock) -> None:
            now = time.process_time()
            with open(cpu_file, "a") as f:
                f.write(json.dumps({"number": rec["number"], "cpu_s": round(now - clock[0], 3)}) + "\n")
            clock[0] = now

        run_search(_space(Path(args.space), method, seed, n), out_dir=out, extra=extra, references=False,
                   on_trial=on_trial, on_event=lambda m: print(f"[{method} s{seed}] {m}", flush=True))
        print(f"[{method} s{seed}] trial {n}: {sum(_cpu_rows(cpu_file).values()):.0f} of {args.budget} CPU-s",
              flush=True)
    return summarize_run(out, method, seed, args)


def _study_records(out: Path) -> tuple[list[dict], Any]:
    from plsearch.report.study import load_study
    from plsearch.search.records import study_records

    study = load_study(out_dir=out)
    return study_records(study), study


def summarize_run(out: Path, method: str, seed: int, args: argparse.Namespace) -> dict:
    from plsearch.search.objective import load_data
    from plsearch.train.metrics import trivial_dice

    records, study = _study_records(out)
    space = study.user_attrs.get("plsearch:space") or {}
    cpu = _cpu_rows(out / "cpu.jsonl")
    bound = float(args.macs_bound) if args.macs_bound else _macs_bound(space)
    cfg = next(r["config"] for r in records if r.get("config"))
    from plsearch.config.schema import DataConfig, from_dict

    floor = trivial_dice(load_data(from_dict(DataConfig, cfg["data"]), 1)["val"].masks)["best"]
    curve, cum, pts, front_recs = [], 0.0, [], {}
    for r in sorted(records, key=lambda r: r["number"]):
        cum += cpu.get(r["number"], 0.0)
        m = r.get("metrics") or {}
        if r["state"] == "COMPLETE" and r.get("feasible") and m.get("val_dice") is not None:
            pts.append((r["profile"]["macs"] / bound, float(m["val_dice"])))
            front_recs[r["number"]] = r
        curve.append((round(cum, 2), round(hypervolume(pts, 1.0, floor), 5)))
    front = []
    for number, r in front_recs.items():
        x, y = r["profile"]["macs"] / bound, r["metrics"]["val_dice"]
        if not any(x2 <= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in pts):
            front.append({"number": number, "macs": r["profile"]["macs"], "params": r["profile"]["params"],
                          "val_dice": y, "config": r["config"]})
    return {"method": method, "seed": seed, "space": Path(args.space).name, "budget_cpu_s": args.budget,
            "macs_bound": bound, "floor": floor, "trials": len(records),
            "pruned": sum(r["state"] == "PRUNED" for r in records),
            "degenerate": sum(str(r.get("fail_reason") or "").startswith("degenerate") for r in records),
            "total_cpu_s": round(cum, 1), "curve": curve, "final_hv": curve[-1][1] if curve else 0.0, "front": front}


def _macs_bound(space: dict) -> float:
    cons = space.get("constraints") or {}
    v = cons.get("macs")
    if isinstance(v, (int, float, str)):
        return float(v)
    from plsearch.search.budgets import resolve_budget

    fixed = {**{k: v for k, v in space.items() if "." in k and not isinstance(v, (dict, list))},
             **(space.get("fidelity") or {})}
    return resolve_budget("macs", v, fixed)[0]


def score_high(row: dict, args: argparse.Namespace, cache_path: Path) -> None:
    """Retrain each front point at the high fidelity (cached by config) and add ``high_hv`` to ``row``."""
    from plsearch.config.gate import parse_sets
    from plsearch.config.schema import RunConfig
    from plsearch.search.objective import train_and_score
    from plsearch.search.references import config_key

    cache = {}
    if cache_path.is_file():
        cache = {r["key"]: r for r in map(json.loads, cache_path.read_text().splitlines()) if r}
    sets = parse_sets(args.high)
    pts = []
    for p in row["front"]:
        d = json.loads(json.dumps(p["config"]))
        for path, value in sets.items():
            group, key = path.split(".", 1)
            d[group][key] = value
        cfg = RunConfig.from_dict(d)
        key = config_key(cfg)
        if key not in cache:
            t0 = time.process_time()
            m = train_and_score(cfg, {"params": p["params"], "macs": p["macs"]})
            cache[key] = {"key": key, "val_dice": m["val_dice"], "cpu_s": round(time.process_time() - t0, 1),
                          "high": args.high}
            with open(cache_path, "a") as f:
                f.write(json.dumps(cache[key]) + "\n")
        p["high_val_dice"] = cache[key]["val_dice"]
        pts.append((p["macs"] / row["macs_bound"], p["high_val_dice"]))
    row["high"] = args.high
    row["high_hv"] = round(hypervolume(pts, 1.0, row["floor"]), 5)


def hv_at(curve: list[list[float]], cpu: float) -> float:
    best = 0.0
    for c, hv in curve:
        if c > cpu:
            break
        best = hv
    return best


def table(rows: list[dict]) -> str:
    """Markdown: per method, final HV, CPU-s, and the CPU-s each takes to reach 95 % of none's final HV."""
    by = {m: [r for r in rows if r["method"] == m] for m in METHODS}
    target = {r["seed"]: 0.95 * r["final_hv"] for r in by["none"]}
    budget = {r["seed"]: r["total_cpu_s"] for r in by["none"]}
    head = ("| method | seeds | trials (pruned, degenerate) | final HV | high-fidelity HV | CPU-s | "
            "CPU-s to 95 % of none's final HV | as % of none's CPU-s |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]

    def ms(xs: list[float], fmt: str = "{:.3f}") -> str:
        xs = [x for x in xs if x is not None and not math.isnan(x)]
        if not xs:
            return "-"
        return fmt.format(statistics.mean(xs)) + (f" ± {fmt.format(statistics.stdev(xs))}" if len(xs) > 1 else "")

    for m, rs in by.items():
        if not rs:
            continue
        reach, frac = [], []
        for r in rs:
            t = target.get(r["seed"])
            hit = next((c for c, hv in r["curve"] if t is not None and hv >= t), None)
            reach.append(hit if hit is not None else math.nan)
            frac.append(100 * hit / budget[r["seed"]] if hit is not None and budget.get(r["seed"]) else math.nan)
        lines.append(f"| {m} | {len(rs)} | {ms([r['trials'] for r in rs], '{:.1f}')} "
                     f"({ms([r['pruned'] for r in rs], '{:.1f}')}, {ms([r['degenerate'] for r in rs], '{:.1f}')}) | "
                     f"{ms([r['final_hv'] for r in rs])} | {ms([r.get('high_hv') for r in rs])} | "
                     f"{ms([r['total_cpu_s'] for r in rs], '{:.0f}')} | {ms(reach, '{:.0f}')} | {ms(frac, '{:.0f}')} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> Path:
    import numpy as np

    from plsearch.plots.study import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    colors = {"none": "tab:gray", "dominance": "tab:orange", "asha": "tab:blue", "asha1": "tab:cyan"}
    for m, color in colors.items():
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        grid = np.linspace(0, max(r["curve"][-1][0] if r["curve"] else 0.0 for r in rs), 200)
        ys = np.array([[hv_at(r["curve"], g) for g in grid] for r in rs])
        ax.plot(grid, ys.mean(0), color=color, label=f"{m} ({len(rs)} seed{'s' if len(rs) > 1 else ''})")
        if len(rs) > 1:
            ax.fill_between(grid, ys.min(0), ys.max(0), color=color, alpha=0.2)
    ax.set_xlabel("cumulative trial CPU-seconds (one thread)")
    ax.set_ylabel("hypervolume of the validation front (normalised)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("pruning: hypervolume against training cost (mean, band = min..max over seeds)")
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default=str(REPO / "search_spaces" / "ipl_epl_dsb2018.yaml"))
    p.add_argument("--data", default="", help="data folder (default: the space's data.root)")
    p.add_argument("--methods", default="none,dominance,asha")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", type=float, default=600.0, help="trial CPU-seconds per run")
    p.add_argument("--max-trials", type=int, default=200)
    p.add_argument("--macs-bound", type=float, default=0.0, help="HV reference MACs (default: the space's bound)")
    p.add_argument("--high", nargs="*", default=[], help="KEY=VALUE of the high fidelity; none: skip scoring")
    p.add_argument("--out", default=str(REPO / "results" / "bench" / "pruning_hv"))
    p.add_argument("--rows", default=str(REPO / "docs" / "bench" / "pruning_hv.jsonl"))
    p.add_argument("--report", action="store_true", help="only redraw the table and plot from --rows")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rows_path = Path(args.rows)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line] if rows_path.is_file() else []
    if not args.report:
        done = {(r["method"], r["seed"]) for r in rows}
        for seed in [int(s) for s in args.seeds.split(",")]:
            for method in args.methods.split(","):
                if (method, seed) in done:
                    continue
                row = run_one(args, method, seed)
                if args.high:
                    score_high(row, args, Path(args.out) / "high.jsonl")
                with open(rows_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
    done = {(r["method"], r["seed"]) for r in rows}
    partial = []
    for d in sorted(Path(args.out).glob("*-s*")) if Path(args.out).is_dir() else ():
        method, _, seed = d.name.rpartition("-s")
        if method in METHODS and seed.isdigit() and (method, int(seed)) not in done and (d / "cpu.jsonl").is_file():
            partial.append({**summarize_run(d, method, int(seed), args), "partial": True})
    md = table(rows + partial)
    if partial:
        md += ("\nUnfinished runs (below their CPU budget, not in the rows file): "
               + ", ".join(f"{r['method']} s{r['seed']} at {r['total_cpu_s']:.0f} CPU-s" for r in partial) + ".\n")
    rows = rows + partial
    (rows_path.with_suffix(".md")).write_text(md)
    print(md)
    print(plot(rows, rows_path.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
