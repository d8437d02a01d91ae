"""What ``confirm`` writes: ``confirmed.csv``, ``confirmed.md`` and ``confirmed.png``."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RULE", "markdown", "plot_confirmed", "write_csv"]

RULE = (
    "A config is dominated when another is no larger in every size objective of the search ({sizes}) and its "
    "mean test Dice is higher by more than the pooled standard error sqrt(sd_A^2/n_A + sd_B^2/n_B); configs "
    "whose every run is no better than the trivial predictor (all background or all foreground) are never kept."
)
COLUMNS = [
    "label",
    "kind",
    "trial",
    "params",
    "macs",
    "search_val_dice",
    "n",
    "failed",
    "test_dice",
    "test_dice_sd",
    "test_iou",
    "test_iou_sd",
    "val_dice",
    "test_dice_runs",
    "degenerate",
    "trivial_dice",
    "non_dominated",
    "dominated_by",
]


def _f(x: Any, d: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def write_csv(items: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    p = Path(path)
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for it in items:
            row = {k: it.get(k) for k in COLUMNS}
            row["test_dice_runs"] = ";".join(str(v) for v in it.get("test_dice_runs") or [])
            row["dominated_by"] = ";".join(it.get("dominated_by") or [])
            w.writerow(row)
    return p


def markdown(
    items: Sequence[Mapping[str, Any]], *, study: str, fidelity: Mapping[str, Any], runs: str, sizes: Sequence[str]
) -> str:
    from plsearch.search.records import fmt_count

    fid = ", ".join(f"{k}={v}" for k, v in fidelity.items()) or "the search's own"
    lines = [
        f"# Confirmed front of study {study}",
        "",
        (f"Final fidelity: {fid}; {runs}; every run evaluated on the **test** split with its best-validation weights."),
        "",
        RULE.format(sizes=", ".join(sizes)),
        "",
        (
            "| config | params | MACs | search val Dice | test Dice (mean ± sd) | test IoU | runs | each run | "
            "degenerate | non-dominated | dominated by |"
        ),
        "|---|---:|---:|---:|---|---|---:|---|---:|---|---|",
    ]
    for it in sorted(items, key=lambda i: (i["macs"] or 0, i["label"])):
        name = f"{it['label']} (preset)" if it["kind"] == "preset" else it["label"]
        failed = f" ({it['failed']} failed)" if it["failed"] else ""
        lines.append(
            f"| {name} | {fmt_count(it['params'])} | {fmt_count(it['macs'])} | {_f(it['search_val_dice'])} | "
            f"{_f(it['test_dice'])} ± {_f(it['test_dice_sd'])} | {_f(it['test_iou'])} ± "
            f"{_f(it['test_iou_sd'])} | {it['n']}{failed} | "
            f"{', '.join(f'{v:.3f}' for v in it['test_dice_runs'])} | {it['degenerate']} | "
            f"{'**yes**' if it['non_dominated'] else 'no'} | {', '.join(it['dominated_by']) or '-'} |"
        )
    trivial = next((it["trivial_dice"] for it in items if it.get("trivial_dice") is not None), None)
    if trivial is not None:
        lines += ["", f"Trivial predictor on the test split: Dice {trivial:.4f}."]
    return "\n".join(lines) + "\n"


def plot_confirmed(
    items: Sequence[Mapping[str, Any]], path: str | Path, *, title: str, search_front: Sequence[Mapping[str, Any]] = ()
) -> Path:
    """Test Dice (mean ± sd) against MACs and against params; presets as stars; non-dominated configs
    filled, dominated ones hollow; the search's validation front faint beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plsearch.plots.study import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, size, xlabel in ((axes[0], "macs", "MACs (forward, search fidelity)"), (axes[1], "params", "parameters")):
        front = sorted(
            (f for f in search_front if f.get(size) and f.get("val_dice") is not None), key=lambda f: f[size]
        )
        if front:
            ax.plot(
                [f[size] for f in front],
                [f["val_dice"] for f in front],
                color="tab:gray",
                alpha=0.35,
                marker=".",
                linestyle=":",
                label="search front (val Dice, 1 seed, search fidelity)",
            )
        for it in items:
            if not it["n"] or not it.get(size):
                continue
            star = it["kind"] == "preset"
            color = "tab:red" if star else "tab:blue"
            sd = 0.0 if math.isnan(it["test_dice_sd"]) else it["test_dice_sd"]
            ax.errorbar(it[size], it["test_dice"], yerr=sd, fmt="none", ecolor=color, capsize=3, alpha=0.8)
            ax.scatter(
                it[size],
                it["test_dice"],
                marker="*" if star else "o",
                s=160 if star else 50,
                zorder=3,
                facecolor=color if it["non_dominated"] else "white",
                edgecolor=color,
                linewidth=1.2,
            )
            ax.annotate(
                it["label"].replace("trial_", "#"),
                (it[size], it["test_dice"]),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
            )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test Dice, mean ± sd over runs")
    handles = [
        plt.Line2D([], [], marker="o", color="tab:blue", linestyle="none", label="front trial, non-dominated"),
        plt.Line2D(
            [],
            [],
            marker="o",
            color="tab:blue",
            markerfacecolor="white",
            linestyle="none",
            label="front trial, dominated",
        ),
        plt.Line2D([], [], marker="*", color="tab:red", markersize=11, linestyle="none", label="preset"),
        plt.Line2D([], [], color="tab:gray", alpha=0.35, marker=".", label="search front (val Dice)"),
    ]
    axes[0].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
