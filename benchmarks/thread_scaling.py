"""Two single-threaded workers or one two-threaded process? The measurement behind the search's
default worker count (``plsearch.search.workers.default_workers``, ``SMALL_STEP_MACS``).

For PL-Net train steps of growing size (forward, Dice over every stage, backward, Adam), it times on
an otherwise idle machine, wall clock:

- ``threads``: one process with ``--cores`` threads doing ``2 x steps`` steps;
- ``workers``: ``--cores`` processes with one thread each doing ``steps`` steps side by side
  (the same total work; a search's trials run this way).

``workers / threads`` throughput above 1 means separate workers get more trials done per second.

    python benchmarks/thread_scaling.py            # ~2 minutes on an idle 2-core machine

Writes ``docs/speed/thread_scaling.md``. Not for a busy machine: other load lands on one side only.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (label, image size, batch, base width): the shipped CPU fidelities and a larger one
SIZES = [("32 px b8 (default space)", 32, 8, 4), ("64 px b8 (dsb2018 space)", 64, 8, 4), ("96 px b16", 96, 16, 4)]


def _steps(size: int, batch: int, width: int, steps: int, threads: int, start: object = None) -> float:
    import torch

    torch.set_num_threads(threads)
    from plsearch.config.presets import preset_config
    from plsearch.config.schema import TrainConfig
    from plsearch.nn.model import PLNet
    from plsearch.train.fit import make_optimizer
    from plsearch.train.losses import deep_supervision_loss

    torch.manual_seed(0)
    model = PLNet.from_config(preset_config("plnet", base_width=width)).train()
    opt = make_optimizer(model, TrainConfig(lr=1e-3))
    x, y = torch.rand(batch, 3, size, size), torch.rand(batch, size, size) > 0.7

    def step() -> None:
        loss = deep_supervision_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: plan, kernels, optimizer state
    if start is not None:
        start.wait()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t0


def _worker(args: tuple, q: object) -> None:
    q.put(_steps(*args))  # type: ignore[attr-defined]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seconds", type=float, default=5.0, help="target wall seconds per measurement")
    p.add_argument("--docs", type=Path, default=ROOT / "docs/speed")
    args = p.parse_args()
    from plsearch.config.presets import preset_config
    from plsearch.config.schema import ModelConfig  # noqa: F401  (fail early outside the repo)
    from plsearch.graph.wiring import estimate

    ctx = mp.get_context("spawn")
    rows = []
    for label, size, batch, width in SIZES:
        probe = _steps(size, batch, width, 2, 1)
        steps = max(2, round(args.seconds / max(probe / 2, 1e-3) / 2))
        t_threads = _steps(size, batch, width, args.cores * steps, args.cores)
        q, start = ctx.Queue(), ctx.Event()
        job = (size, batch, width, steps, 1, start)
        procs = [ctx.Process(target=_worker, args=(job, q)) for _ in range(args.cores)]
        for pr in procs:
            pr.start()
        time.sleep(3 + 2 * probe)  # every worker built its model and warmed up
        t0 = time.perf_counter()
        start.set()
        [q.get() for _ in procs]
        t_workers = time.perf_counter() - t0
        for pr in procs:
            pr.join()
        macs = 3 * batch * estimate(preset_config("plnet", base_width=width), size).macs
        row = dict(label=label, step_gmacs=macs / 1e9, steps=args.cores * steps, threads_s=t_threads,
                   workers_s=t_workers, ratio=t_threads / t_workers, load=os.getloadavg()[0])
        rows.append(row)
        print(f"{label:26s} {macs / 1e9:6.2f} GMAC/step  {args.cores} threads {t_threads:6.1f} s  "
              f"{args.cores} workers {t_workers:6.1f} s  workers/threads throughput {row['ratio']:.2f}x", flush=True)
    lines = [f"PL-Net train step (plnet preset), {args.cores} cores, wall clock, same total steps each way; "
             f"load average at the end {os.getloadavg()[0]:.2f}\n",
             "| fidelity | GMAC per step | steps | one process, all threads (s) | one worker per core (s) | "
             "throughput, workers / threads |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['step_gmacs']:.2f} | {r['steps']} | {r['threads_s']:.1f} | "
                     f"{r['workers_s']:.1f} | {r['ratio']:.2f}x |")
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "thread_scaling.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
