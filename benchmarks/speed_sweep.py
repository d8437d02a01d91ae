"""Speed sweep: forward (eval) and train-step time, achieved FLOP/s and fraction of the matmul peak.

Models: the presets, MONAI's BasicUNet as a peer (``pip install monai``, extra ``bench``), and the
PL-Net n x Ocs sweep. Variants are timed round-robin in one process, so before/after ratios share
the machine's load. Writes ``<out>/<tag>.json`` + ``.md`` and PNG plots (``benchplots.py``).

    python benchmarks/speed_sweep.py                       # default grid: a few minutes on 2 cores
    python benchmarks/speed_sweep.py --quick               # smoke run (~1 min)
    python benchmarks/speed_sweep.py --models plnet,plnet-small,basicunet --sizes 96 --batches 4 \\
        --modes train --variants eager,cl --repeats 5 --tag before_after
    python benchmarks/speed_sweep.py --sizes 224,96 --batches 1,16 --plan   # what the full grid costs

Full grid (both sizes and batches, all models, both modes) on a 2-core CPU is hours: PL-Net is 63
GMACs per 224 image, so one batch-16 train step is ~6 TFLOP, about a minute at 100 GFLOP/s.
``--plan`` prints every case's predicted time from the analytic MACs before running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from plsearch.nn.speed import matmul_peak_flops  # noqa: E402

SWEEP_STEPS = (1, 2, 3, 4)
SWEEP_OCS = (0.5, 1.0)
DEFAULT_MODELS = benchlib.PRESETS + benchlib.PEERS


def sweep_specs(steps: list[int], ocs: list[float]) -> list[str]:
    return [f"plnet:steps={n},ocs={o}" for n in steps for o in ocs]


def _csv(kind):
    return lambda text: [kind(v) for v in text.split(",") if v]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=_csv(str), default=list(DEFAULT_MODELS),
                    help="presets, basicunet, or spec strings such as plnet:steps=3,ocs=0.5")
    ap.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True,
                    help="add the PL-Net n x Ocs sweep (--steps, --ocs)")
    ap.add_argument("--steps", type=_csv(int), default=list(SWEEP_STEPS))
    ap.add_argument("--ocs", type=_csv(float), default=list(SWEEP_OCS))
    ap.add_argument("--sizes", type=_csv(int), default=[96])
    ap.add_argument("--batches", type=_csv(int), default=[1])
    ap.add_argument("--modes", type=_csv(str), default=["forward", "train"])
    ap.add_argument("--variants", type=_csv(str), default=["eager"],
                    help="eager or +-joined switches from " + ",".join(benchlib.FLAGS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--memory", action="store_true", help="also record each train step's peak memory")
    ap.add_argument("--quick", action="store_true", help="smoke run: 64 px, batch 1, presets only, 2 repeats")
    ap.add_argument("--plan", action="store_true", help="print the grid with predicted times and exit")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: process CPU seconds (use with --threads 1 on a shared machine)")
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--tag", default="")
    ap.add_argument("--no-plots", dest="plots", action="store_false")
    ap.add_argument("--replot", metavar="JSON", help="rewrite the .md and plots of an earlier run's JSON and exit")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.sweep, args.sizes, args.batches, args.repeats = list(benchlib.PRESETS), False, [64], [1], 2
    args.specs = list(args.models) + (sweep_specs(args.steps, args.ocs) if args.sweep else [])
    args.tag = args.tag or ("quick" if args.quick else "sweep")
    return args


def predicted_seconds(spec: str, size: int, batch: int, mode: str, flops: float) -> float | None:
    name, overrides = benchlib.parse_spec(spec)
    if name not in benchlib.PRESETS:
        return None
    macs = benchlib.plsearch.estimate(benchlib.plsearch.preset_config(name, **overrides), size).macs
    return (6 if mode == "train" else 2) * macs * batch / flops


def write(rows: list[dict], meta: dict, out: Path, tag: str, plots: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (out / f"{tag}.md").write_text(benchlib.markdown_table(rows, meta))
    print(benchlib.markdown_table(rows, meta))
    if plots:
        import benchplots

        for path in benchplots.plot_all(rows, meta, out, tag):
            print(f"wrote {path}", file=sys.stderr)


def replot(path: Path, plots: bool) -> int:
    data = json.loads(path.read_text())
    for r in data["rows"]:  # runs before the best-of-run reference kept only the alongside figure
        if not r.get("error") and "peak_alongside_flops" not in r:
            r["peak_alongside_flops"], r["frac_peak_alongside"] = r["peak_flops"], r["frac_peak"]
    benchlib.set_peak(data["rows"], data["meta"]["peak_best"])
    write(data["rows"], data["meta"], path.parent, path.stem, plots)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        return replot(Path(args.replot), args.plots)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    grid = [(s, size, b, mode) for size in args.sizes for b in args.batches for mode in args.modes for s in args.specs]
    if args.plan:
        flops = 0.4 * matmul_peak_flops(device)  # whole models reach roughly 40 % of it
        total = 0.0
        print(f"assumed throughput {flops / 1e9:.0f} GFLOP/s (40 % of the measured matmul peak)")
        for spec, size, b, mode in grid:
            t = predicted_seconds(spec, size, b, mode, flops)
            runs = (args.warmup + args.repeats) * len(args.variants)
            total += (t or 0) * runs
            print(f"{spec:28s} {mode:8s} {size:4d}px b{b:<3d} ~{t or float('nan'):8.2f} s/step x {runs}")
        print(f"total ~{total / 60:.0f} min (peers not included)")
        return 0

    load_before = [round(v, 2) for v in os.getloadavg()]
    print(f"{device}, {torch.get_num_threads()} threads, load {load_before}", file=sys.stderr)
    rows, peaks, t_start = [], [], time.perf_counter()
    macs_cache: dict[tuple, int] = {}
    for spec, size, batch, mode in grid:
        cases = []
        for v in args.variants:
            try:
                cases.append(benchlib.make_case(spec, v, mode, batch, size, device))
            except benchlib.NotApplicable as e:
                print(f"skipped: {e}", file=sys.stderr)
        if not cases:
            continue
        key = (spec, size)
        if key not in macs_cache:
            macs_cache[key] = benchlib.macs_per_image(benchlib.build_model(spec), size)
        params = benchlib.params_of(cases[0].model)
        times, peak = benchlib.time_interleaved(cases, device, args.repeats, args.warmup, clock=args.clock)
        peaks += peak
        for case in cases:
            r = benchlib.row(case, times[case.variant], size=size, batch=batch, macs_img=macs_cache[key],
                             peak_flops=statistics.median(peak), params=params)
            rows.append(r)
            if case.error:
                print(f"{spec:28s} {case.variant:14s} {mode:7s} failed: {case.error}", file=sys.stderr)
                continue
            if args.memory and mode == "train" and "compile" not in case.variant:  # tracker vs dynamo
                r["peak_memory_mb"] = benchlib.train_peak_memory_mb(case, device)
            print(f"{spec:28s} {case.variant:14s} {mode:7s} {size}px b{batch}: {r['time_ms']:9.1f} ms  "
                  f"{r['achieved_flops'] / 1e9:6.1f} GFLOP/s  {100 * r['frac_peak']:4.0f} % of the matmul alongside",
                  file=sys.stderr, flush=True)
        del cases
    benchlib.set_peak(rows, max(peaks))
    meta = {"machine": benchlib.machine(device), "peak_best": max(peaks), "peak_median": statistics.median(peaks),
            "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
            "convention": benchlib.CONVENTION, "clock": args.clock, "variants": args.variants, "argv": sys.argv[1:] if argv is None else argv,
            "seconds": time.perf_counter() - t_start}
    write(rows, meta, Path(args.out), args.tag, args.plots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
