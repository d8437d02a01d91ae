"""Predicted cost of a list of runs, before any of them starts (``--plan`` of confirm and the ablation).

Training cost is counted analytically: a train step costs about 3 forward passes (forward + backward
at about twice the forward), each ``estimate(model, size).macs`` multiply-adds per image, 2 FLOPs
each; every epoch also validates once, and a run with a test curve also evaluates the test split.
Time is that over an assumed throughput (say which, and that early stopping can only shorten it).
Small nets (CPU fidelities, widths of a few channels) run far below any such rate because per-step
overhead dominates: there the figure is a lower bound; at 224 px on a GPU it is the useful one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plsearch.config.schema import RunConfig

__all__ = ["plan_lines", "run_flops", "split_sizes"]


def split_sizes(cfg: RunConfig) -> dict[str, int]:
    """Images per split without decoding any: the split CSV's counts, else the fractions."""
    from pathlib import Path

    n = cfg.data.synthetic_count
    counts: dict[str, int] = {}
    if cfg.data.root:
        from plsearch.data.dataset import list_ids

        root = Path(cfg.data.root)
        n = len(list_ids(cfg.data))  # in any registered format
        csvs = [Path(cfg.data.split_csv)] if cfg.data.split_csv else sorted(root.glob("split*.csv"))
        if csvs and csvs[0].is_file():
            lines = csvs[0].read_text().splitlines()[1:]
            for s in ("train", "val", "test"):
                counts[s] = sum(1 for x in lines if x.rsplit(",", 1)[-1].strip().lower() == s)
            if not counts["val"]:
                counts["val"] = round(counts["train"] * cfg.data.val_fraction)
                counts["train"] -= counts["val"]
            return counts
    test, val = round(n * cfg.data.test_fraction), round(n * cfg.data.val_fraction)
    return {"train": n - test - val, "val": val, "test": test}


def run_flops(cfg: RunConfig, test_curve: bool = False) -> float:
    """FLOPs of one run at its maximum epochs (``2 x MACs`` per image and pass)."""
    from plsearch.graph.wiring import estimate

    macs = estimate(cfg.model, cfg.data.image_size).macs
    n = split_sizes(cfg)
    t = cfg.train
    steps = max(1, n["train"] // t.batch_size) if n["train"] > t.batch_size else 1
    if t.max_steps_per_epoch:
        steps = min(steps, t.max_steps_per_epoch)
    per_epoch = 3 * steps * t.batch_size + n["val"] + (n["test"] if test_curve else 0)
    return 2.0 * macs * (t.epochs * per_epoch + n["test"])


def plan_lines(jobs: Sequence[Any], flops_per_s: float, device: str) -> list[str]:
    """One line per config group (runs, FLOPs, predicted time) and the total."""
    groups: dict[str, list[float]] = {}
    for j in jobs:
        groups.setdefault(j.group or j.key, []).append(run_flops(j.config, j.test_curve))
    lines, total = [], 0.0
    for g, fl in groups.items():
        secs = sum(fl) / flops_per_s
        total += secs
        lines.append(f"{g:<32} {len(fl)} run(s)  {sum(fl) / 1e15:8.2f} PFLOP  ~{secs / 60:7.1f} min")
    lines.append(
        f"total {len(jobs)} runs ~{total / 3600:.2f} h on {device} at an assumed {flops_per_s / 1e12:g} "
        "TFLOP/s sustained (early stopping only shortens it; small nets run far below that rate, "
        "so for them this is a lower bound)"
    )
    return lines
