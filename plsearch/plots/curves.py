"""Learning curves of a search: every trial's validation Dice per epoch, pruned ones marked where they stopped.

Two views of the same records (``plsearch.search.records``): a PNG (matplotlib) and, for
optuna-dashboard, a plotly figure and a Markdown note stored in the study itself, because the
dashboard draws intermediate values only for single-objective studies and multi-objective studies
cannot report them. The figure is written as plotly JSON, so plotly itself is not needed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DASHBOARD_ID = "learning-curves"


def _kind(r: dict) -> str:
    if r["state"] == "PRUNED":
        return "pruned"
    if r["state"] == "COMPLETE" and r.get("feasible"):
        return "complete"
    return "infeasible"


def curves(records: Sequence[dict]) -> list[tuple[int, str, list[float]]]:
    """``(number, kind, curve)`` for every trial that trained at least one epoch; kind is complete,
    pruned or infeasible (degenerate or non-finite after training). Duplicates are left out."""
    out = []
    for r in records:
        curve = r.get("val_dice_curve")
        if curve and r.get("duplicate_of") is None and r["state"] in ("COMPLETE", "PRUNED"):
            out.append((r["number"], _kind(r), [float("nan") if v is None else float(v) for v in curve]))
    return out


def plot_learning_curves(
    records: Sequence[dict], path: str | Path, *, floor: float | None = None, rungs: Sequence[int] = (), title: str = ""
) -> Path:
    """One line per trial (val Dice after each epoch); an x where a pruned trial stopped; the trivial
    predictors' Dice (``floor``) and the pruner's rung epochs as dotted lines."""
    from plsearch.plots.study import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    style = {"complete": ("tab:blue", 0.8, "-"), "pruned": ("tab:gray", 0.6, "-"), "infeasible": ("tab:red", 0.6, "--")}
    counts = {k: 0 for k in style}
    for _number, kind, curve in curves(records):
        color, alpha, ls = style[kind]
        epochs = list(range(1, len(curve) + 1))
        ax.plot(epochs, curve, color=color, alpha=alpha, ls=ls, lw=1.2)
        if kind == "pruned":
            ax.plot(epochs[-1], curve[-1], "x", color="tab:red", ms=7, mew=2)
        counts[kind] += 1
    for e in rungs:
        ax.axvline(e, color="0.7", ls=":", lw=1)
    if floor is not None:
        ax.axhline(floor, color="tab:red", ls=":", lw=1.2)
    labels = [
        plt.Line2D([], [], color=style["complete"][0], label=f"complete ({counts['complete']})"),
        plt.Line2D(
            [],
            [],
            color=style["pruned"][0],
            marker="x",
            mec="tab:red",
            label=f"pruned, x = stopped ({counts['pruned']})",
        ),
        plt.Line2D(
            [], [], color=style["infeasible"][0], ls="--", label=f"infeasible after training ({counts['infeasible']})"
        ),
    ]
    if floor is not None:
        labels.append(plt.Line2D([], [], color="tab:red", ls=":", label=f"trivial predictors' Dice {floor:.3f}"))
    if rungs:
        labels.append(plt.Line2D([], [], color="0.7", ls=":", label="rungs (pruning decisions)"))
    ax.legend(handles=labels, loc="lower right", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "learning curves")
    return save_figure(fig, path)


class PlotlyJSON:
    """A plotly figure as plain JSON (what ``optuna_dashboard.save_plotly_graph_object`` stores)."""

    def __init__(self, data: list[dict], layout: dict) -> None:
        self.data, self.layout = data, layout

    def to_json(self) -> str:
        return json.dumps({"data": self.data, "layout": self.layout}, allow_nan=False)


def curves_figure(records: Sequence[dict], *, floor: float | None = None, title: str = "") -> PlotlyJSON:
    colors = {"complete": "#1f77b4", "pruned": "#7f7f7f", "infeasible": "#d62728"}
    data: list[dict] = []
    for number, kind, curve in curves(records):
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if kind == "pruned" else "lines",
                "name": f"trial {number} ({kind})",
                "x": list(range(1, len(curve) + 1)),
                "y": [None if math.isnan(v) else v for v in curve],
                "line": {"color": colors[kind], "dash": "dash" if kind == "infeasible" else "solid"},
                "marker": {"symbol": ["circle"] * (len(curve) - 1) + ["x"], "size": [0] * (len(curve) - 1) + [9]}
                if kind == "pruned"
                else {},
            }
        )
    layout: dict[str, Any] = {
        "title": {"text": title or "learning curves"},
        "xaxis": {"title": {"text": "epoch"}},
        "yaxis": {"title": {"text": "validation Dice"}, "range": [0, 1]},
    }
    if floor is not None:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": floor,
                "y1": floor,
                "line": {"color": "#d62728", "dash": "dot"},
            }
        ]
    return PlotlyJSON(data, layout)


def curves_note(records: Sequence[dict], floor: float | None = None) -> str:
    """A Markdown note: how many trials completed, were pruned (and at which epoch), or were infeasible."""
    rows = curves(records)
    stopped: dict[int, int] = {}
    for _, kind, curve in rows:
        if kind == "pruned":
            stopped[len(curve)] = stopped.get(len(curve), 0) + 1
    degenerate = sum(1 for r in records if str(r.get("fail_reason") or "").startswith("degenerate"))
    summary = (
        f"{sum(k == 'complete' for _, k, _ in rows)} trials trained to the end, "
        f"{sum(k == 'pruned' for _, k, _ in rows)} pruned, {degenerate} degenerate "
        "(no better than the trivial predictors on validation; infeasible)."
    )
    lines = ["## Learning curves", "", summary]
    if stopped:
        lines.append("Pruned after epoch: " + ", ".join(f"{e}: {n}" for e, n in sorted(stopped.items())) + ".")
    if floor is not None:
        lines.append(f"Trivial predictors' validation Dice: {floor:.4f}.")
    lines.append("The figure 'learning-curves' draws every trial's validation Dice per epoch.")
    return "\n".join(lines) + "\n"


def save_to_dashboard(study: Any, records: Sequence[dict], floor: float | None = None) -> str:
    """Store the curves figure and note in ``study`` for optuna-dashboard; returns what was done.

    Does nothing (and says so) when optuna-dashboard is not installed.
    """
    try:
        import optuna_dashboard
    except ImportError:
        return "skipped: optuna-dashboard is not installed"
    title = f"{study.study_name}: validation Dice per epoch"
    optuna_dashboard.save_plotly_graph_object(
        study,
        curves_figure(records, floor=floor, title=title),  # type: ignore[arg-type]
        graph_object_id=DASHBOARD_ID,
    )
    optuna_dashboard.save_note(study, curves_note(records, floor))
    return f"optuna-dashboard figure {DASHBOARD_ID!r} and study note"
