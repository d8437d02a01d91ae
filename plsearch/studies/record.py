"""Record a truth table in chunks: run what the table lacks through the run queue (``plsearch.studies.runs``), append
each finished run's rows to the table at once, stop when a CPU budget is spent.

A chunk can stop anywhere (a session ending, Ctrl-C): rows already appended stay, a rerun skips them, and the
runs study in ``--out`` continues an interrupted run from its ``last.pt`` (on a fresh machine it starts over).
The budget is predicted per run before it starts: from the table's own rows once three of them exist (their
recorded CPU-seconds against MACs), else from a few timed training steps (``measure_costs``); the analytic
throughput of ``plsearch.studies.runplan`` underestimates tiny networks, so it is printed only beside them.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from plsearch.studies.table import (
    TableError,
    TablePlan,
    Want,
    append_rows,
    make_row,
    pending,
    read_rows,
    revision,
    share_row,
    wave,
)

if TYPE_CHECKING:  # pragma: no cover
    from plsearch.config.schema import RunConfig
    from plsearch.studies.runs import Job, Runs

__all__ = ["CostModel", "fill", "measure_costs", "plan_report", "predict", "record", "table_lock"]


@contextmanager
def table_lock(table: Path) -> Iterator[None]:
    """One recorder per table: an advisory lock beside it (``<table>.lock``, the holder's pid inside)."""
    path = table.with_name(table.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise TableError(f"another recorder (pid {holder}) is writing {table}; wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


# -- cost -------------------------------------------------------------------------------------------------


class CostModel:
    """Predicted CPU-seconds of a run (training and evaluation), linear in its MACs."""

    def __init__(self, a: float, b: float, source: str) -> None:
        self.a, self.b, self.source = a, b, source

    def __call__(self, macs: float) -> float:
        return max(self.a + self.b * macs, 0.2 * self.a if self.a > 0 else 1.0)

    @staticmethod
    def fit(points: Sequence[tuple[float, float]], source: str) -> CostModel:
        import numpy as np

        x, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
        if len(set(x.tolist())) < 2:
            return CostModel(float(y.mean()), 0.0, source)
        b, a = np.polyfit(x, y, 1)
        return CostModel(float(a), max(float(b), 0.0), source)

    @staticmethod
    def from_rows(rows: Sequence[Mapping[str, Any]]) -> CostModel | None:
        runs = {r["run"]: r for r in rows if r.get("train_cpu_seconds") and not r.get("fail_reason")}
        pts = [
            (float(r["macs"]), float(r["train_cpu_seconds"]) + float(r["eval_cpu_seconds"] or 0)) for r in runs.values()
        ]
        return CostModel.fit(pts, f"{len(pts)} recorded runs") if len(pts) >= 3 else None


def _steps_and_sizes(cfg: RunConfig) -> tuple[int, dict[str, int]]:
    from plsearch.studies.runplan import split_sizes

    n, t = split_sizes(cfg), cfg.train
    steps = max(1, n["train"] // t.batch_size) if n["train"] > t.batch_size else 1
    return (min(steps, t.max_steps_per_epoch) if t.max_steps_per_epoch else steps), n


def measure_costs(configs: Sequence[RunConfig], n_points: int, steps: int = 3) -> CostModel:
    """Time ``steps`` training steps and one evaluation batch (one thread, process CPU) of three of
    ``configs`` (fewest, median and most MACs) and fit a run's CPU-seconds against MACs."""
    import torch

    from plsearch.graph.wiring import estimate
    from plsearch.nn.model import PLNet

    ordered = sorted(configs, key=lambda c: estimate(c.model, c.data.image_size).macs)
    picks = [ordered[0], ordered[len(ordered) // 2], ordered[-1]] if len(ordered) >= 3 else list(ordered)
    points = []
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cfg in picks:
            m, t, size = cfg.model, cfg.train, cfg.data.image_size
            shape = (size,) * m.spatial_dims
            net = PLNet.from_config(m)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            x = torch.randn(t.batch_size, m.in_channels, *shape)
            net.train()

            def step(net: Any = net, opt: Any = opt, x: Any = x) -> None:
                out = net(x)
                loss = sum(o.float().mean() for o in (out if isinstance(out, list) else [out]))
                opt.zero_grad()
                loss.backward()
                opt.step()

            step()
            t0 = time.process_time()
            for _ in range(steps):
                step()
            per_step = (time.process_time() - t0) / steps
            net.eval()
            xe = torch.randn(min(t.eval_batch_size, 16), m.in_channels, *shape)
            with torch.no_grad():
                net(xe)
                t0 = time.process_time()
                net(xe)
            per_image = (time.process_time() - t0) / xe.shape[0]
            n_steps, n = _steps_and_sizes(cfg)
            secs = t.epochs * (n_steps * per_step + n["val"] * per_image) + n_points * n["test"] * per_image
            points.append((float(estimate(m, size).macs), secs))
    finally:
        torch.set_num_threads(old)
    return CostModel.fit(points, f"{len(points)} configs timed for {steps} steps")


def predict(jobs: Sequence[Job], rows: Sequence[Mapping[str, Any]], plan: TablePlan) -> tuple[list[float], str]:
    """Each job's predicted CPU-seconds and where the figure comes from."""
    from plsearch.graph.wiring import estimate

    model = CostModel.from_rows(rows) or measure_costs([j.config for j in jobs], len(plan.test_epochs))
    return [model(estimate(j.config.model, j.config.data.image_size).macs) for j in jobs], model.source


def plan_report(plan: TablePlan, rows: Sequence[Mapping[str, Any]], workers: int) -> list[str]:
    """``--plan``: runs left per kind, predicted CPU-hours (measured model) beside the analytic figure."""
    from plsearch.studies.runplan import run_flops

    wants, blocked = pending(plan, rows)
    jobs = _unique_jobs(wants)
    if not jobs:
        return [f"nothing left to run ({len(rows)} rows recorded, {blocked} waiting on a rate)"]
    secs, source = predict(jobs, rows, plan)
    kind_of = {w.job.key: w.kind for w in reversed(wants)}
    lines = []
    for kind in sorted({kind_of[j.key] for j in jobs}):
        idx = [i for i, j in enumerate(jobs) if kind_of[j.key] == kind]
        analytic = sum(run_flops(jobs[i].config) for i in idx) / 0.03e12
        lines.append(
            f"{kind:<8} {len(idx):4d} runs  ~{sum(secs[i] for i in idx) / 3600:6.2f} CPU-h measured"
            f"  (analytic at 0.03 TFLOP/s: {analytic / 3600:.2f} h)"
        )
    total = sum(secs)
    lines.append(
        f"total {len(jobs)} runs ~{total / 3600:.2f} CPU-h ({source}); ~{total / 3600 / workers:.2f} h wall at "
        f"{workers} worker(s); {blocked} more rows wait on a rate the rule has not chosen yet"
    )
    return lines


# -- recording --------------------------------------------------------------------------------------------


def _unique_jobs(wants: Sequence[Want]) -> list[Job]:
    seen: dict[str, Job] = {}
    for w in wants:
        seen.setdefault(w.job.key, w.job)
    return list(seen.values())


def fill(plan: TablePlan, table: Path, runs: Runs | None, rev: str) -> int:
    """Append every row the table lacks whose run is finished (in the runs study, or already in the table
    under another row); repeats until nothing more fills (a finished rate probe can unlock seed rows).
    Returns how many rows were added."""
    from plsearch.studies.runs import results

    added = 0
    while True:
        rows = read_rows(table)
        recorded = {r["run"]: r for r in rows}
        finished = {r["key"]: r for r in results(runs)} if runs is not None else {}
        wants, _ = pending(plan, rows)
        new = []
        done: set[tuple[str, str, int]] = set()
        for w in wants:
            if (w.kind, w.label, w.seed) in done:
                continue
            if w.job.key in recorded:
                new.append(share_row(w, recorded[w.job.key]))
            elif w.job.key in finished:
                new.append(make_row(w, finished[w.job.key], rev))
                recorded[w.job.key] = new[-1]
            else:
                continue
            done.add((w.kind, w.label, w.seed))
        if not new:
            return added
        append_rows(table, new)
        added += len(new)


def record(
    plan: TablePlan,
    table: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    storage: str | None = None,
    max_cpu_hours: float | None = None,
    say: Callable[[str], None] = lambda s: None,
    on_line: Callable[[int, str, bool], None] | None = None,
) -> dict[str, Any]:
    """Run the rows ``table`` lacks (at most ``max_cpu_hours`` of predicted CPU, always at least one run),
    appending rows as runs finish. Returns ``{"added", "runs", "predicted_cpu_hours", "left"}``."""
    from plsearch.studies.runs import launch_workers, open_runs, submit, work

    table = Path(table)
    rev = revision()
    rows = read_rows(table)
    if rows and {r.get("revision") for r in rows} != {rev}:
        old = sorted({str(r.get("revision")) for r in rows})
        raise TableError(
            f"table {table} was recorded at revision {', '.join(old)}; this checkout is {rev}: record from a "
            f"worktree pinned there (git worktree add ../plsearch-table {old[0].split('+')[0]})"
        )
    budget = math.inf if max_cpu_hours is None else max_cpu_hours * 3600
    start = len(rows)
    with table_lock(table):
        runs = open_runs(out, f"table-{table.name.split('.')[0]}", storage=storage)
        added, spent, ran = fill(plan, table, runs, rev), 0.0, 0
        while True:
            rows = read_rows(table)
            jobs = _unique_jobs(wave(plan, rows))
            if not jobs:
                break
            costs, source = predict(jobs, rows, plan)
            pick: list[Job] = []
            for job, c in zip(jobs, costs):
                if spent + c > budget and (pick or spent > 0):
                    break
                pick.append(job)
                spent += c
            if not pick:
                break
            say(
                f"chunk: {len(pick)} of {len(jobs)} runs left (~{sum(costs[: len(pick)]) / 3600:.2f} CPU-h predicted "
                f"from {source}), {workers} worker(s)"
            )
            submit(runs, pick)

            def tick() -> None:
                n = fill(plan, table, runs, rev)
                if n:
                    say(f"table: +{n} rows ({len(read_rows(table))} in {table})")

            if workers > 1:
                launch_workers(runs, workers, on_line=on_line, on_tick=tick)
            work(runs, on_done=lambda _row: tick())  # in this process: one worker, or what a dead worker left
            added += fill(plan, table, runs, rev)
            ran += len(pick)
            if spent >= budget:
                break
        left = len(_unique_jobs(pending(plan, read_rows(table))[0]))
        added = len(read_rows(table)) - start
    return {"added": added, "runs": ran, "predicted_cpu_hours": spent / 3600, "left": left}
