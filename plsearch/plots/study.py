"""Search plots drawn from plain trial records (``plsearch.search.records``), matplotlib Agg backend.

Every function takes records (dicts) and a path, writes one PNG, and imports matplotlib itself,
so ``import plsearch`` stays light and a report can be redrawn from storage without training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

REF_COLORS = {"plnet": "tab:red", "plnet-small": "tab:orange", "bionet": "tab:purple", "unet": "tab:brown"}


def _plt() -> Any:
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # files only; leave a notebook's backend alone
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trained(records: Sequence[dict]) -> list[dict]:
    """Feasible, trained, non-duplicate COMPLETE trials."""
    return [
        r
        for r in records
        if r["state"] == "COMPLETE"
        and r.get("feasible")
        and r.get("duplicate_of") is None
        and (r.get("metrics") or {}).get("val_dice") is not None
    ]


def _front_2d(points: Sequence[tuple[float, float, Any]]) -> list[tuple[float, float, Any]]:
    """Points not beaten by a smaller-or-equal x with a higher-or-equal y (x minimized, y maximized)."""
    front, best = [], -math.inf
    for x, y, tag in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y, tag))
            best = y
    return front


def plot_pareto(
    records: Sequence[dict],
    path: str | Path,
    *,
    references: Mapping[str, dict] | None = None,
    constraints: Mapping[str, float] | None = None,
    pareto_numbers: Sequence[int] = (),
    title: str = "",
    beaten: Mapping[int, str] | None = None,
    beaten_on: Sequence[str] = ("macs", "params"),
) -> Path:
    """Validation Dice against MACs and against params (log x): trials, their 2-D front, presets.
    ``beaten``: front trial number -> the presets that dominate it (on the study's objectives), written
    under its label in the panels of ``beaten_on`` (the size objectives the dominance was judged on)."""
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), constrained_layout=True)
    good = trained(records)
    pruned = [r for r in records if r["state"] == "PRUNED" and r.get("val_dice_curve") and r.get("profile")]
    for ax, key, label in (
        (axes[0], "macs", "MACs per image (eval, log scale)"),
        (axes[1], "params", "trainable parameters (log scale)"),
    ):
        pts = [(r["profile"][key], r["metrics"]["val_dice"], r["number"]) for r in good]
        if pts:
            ax.scatter(
                [p[0] for p in pts], [p[1] for p in pts], s=28, c="tab:blue", alpha=0.55, label="trials", zorder=2
            )
            front = _front_2d(pts)
            xs = [p[0] for p in front]
            ys = [p[1] for p in front]
            ax.step(xs, ys, where="post", c="tab:blue", lw=1.5, zorder=3, label="Pareto front (this plane)")
            ax.scatter(xs, ys, s=60, facecolors="none", edgecolors="k", zorder=4)
            for x, y, n in pts:
                if n in pareto_numbers or any(n == f[2] for f in front):
                    ax.annotate(f"#{n}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
                    if beaten and n in beaten and key in beaten_on:
                        ax.annotate(
                            f"beaten by {beaten[n]}",
                            (x, y),
                            textcoords="offset points",
                            xytext=(-6, -12),
                            ha="right",
                            fontsize=8,
                            color="tab:red",
                        )
        if pruned:
            ax.scatter(
                [r["profile"][key] for r in pruned],
                [r["val_dice_curve"][-1] for r in pruned],
                s=28,
                facecolors="none",
                edgecolors="tab:gray",
                label="pruned (last epoch)",
                zorder=2,
            )
        labels: dict[tuple[float, float], list[str]] = {}
        for name, ref in (references or {}).items():
            m, prof = ref.get("metrics") or {}, ref.get("profile") or {}
            if m.get("val_dice") is None or prof.get(key) is None:
                continue
            ax.scatter(
                [prof[key]],
                [m["val_dice"]],
                marker="*",
                s=220,
                c=REF_COLORS.get(name, "tab:green"),
                edgecolors="k",
                zorder=5,
                label=f"preset {name}",
            )
            spot = min(
                labels, key=lambda p: abs(math.log(p[0] / prof[key])) + abs(p[1] - m["val_dice"]) * 10, default=None
            )
            if spot is not None and abs(math.log(spot[0] / prof[key])) < 0.05 and abs(spot[1] - m["val_dice"]) < 0.01:
                labels[spot].append(name)  # same place: one label "plnet / bionet"
            else:
                labels[(prof[key], m["val_dice"])] = [name]
        for i, ((x, y), names) in enumerate(sorted(labels.items())):  # alternate above/below: fewer collisions
            ax.annotate(
                " / ".join(names),
                (x, y),
                textcoords="offset points",
                xytext=(7, 5 if i % 2 else -12),
                fontsize=8,
                color=REF_COLORS.get(names[0], "tab:green"),
            )
        if constraints and key in constraints:
            ax.axvline(constraints[key], ls="--", c="tab:red", lw=1, label=f"max {key}")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a short log range
        ax.set_xlabel(label)
        ax.set_ylabel("validation Dice")
        ax.grid(True, which="both", alpha=0.3)
        # lower right is large and inaccurate: the corner nobody acts on (upper left is where the front lies)
        ax.legend(fontsize=8, loc="lower right", framealpha=0.85)
    fig.suptitle(title or "Validation Dice against size (same fidelity for trials and presets)")
    return save_figure(fig, path)


def plot_history(records: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Validation Dice per trial number and the best so far (pruned: last epoch's Dice)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    good = sorted(trained(records), key=lambda r: r["number"])
    xs, ys = [r["number"] for r in good], [r["metrics"]["val_dice"] for r in good]
    ax.scatter(xs, ys, c="tab:blue", s=30, label="trained trial", zorder=3)
    best, run = [], -math.inf
    for y in ys:
        run = max(run, y)
        best.append(run)
    if xs:
        ax.step(xs, best, where="post", c="tab:red", label="best so far")
    pr = [r for r in records if r["state"] == "PRUNED" and r.get("val_dice_curve")]
    if pr:
        ax.scatter(
            [r["number"] for r in pr],
            [r["val_dice_curve"][-1] for r in pr],
            facecolors="none",
            edgecolors="tab:gray",
            s=30,
            label="pruned (last epoch)",
        )
    bad = [r for r in records if r["state"] in ("COMPLETE", "FAIL") and r not in good]
    if bad:
        ax.scatter(
            [r["number"] for r in bad],
            [0.0] * len(bad),
            marker="x",
            c="tab:red",
            s=25,
            label="infeasible / failed (not trained)",
        )
    ax.set_xlabel("trial number")
    ax.set_ylabel("validation Dice")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Optimization history")
    return save_figure(fig, path)


def hypervolume(points: Any, ref: Any) -> float:
    """Exact hypervolume that ``points`` (minimisation form, ``(n, d)``) dominate up to ``ref`` (``(d,)``).

    Ours, not ``optuna._hypervolume`` (private): slices along the last objective and recurses, which is
    exact and fast for the few objectives and hundreds of trials a search has.
    """
    import numpy as np

    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    ref = np.asarray(ref, dtype=float)
    pts = pts[np.all(pts < ref, axis=1)]
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 1:
        return float(ref[0] - pts[:, 0].min())
    pts = pts[np.argsort(pts[:, -1], kind="stable")]
    volume = 0.0
    for i in range(len(pts)):
        top = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        if top > pts[i, -1]:
            volume += (top - pts[i, -1]) * hypervolume(pts[: i + 1, :-1], ref[:-1])
    return volume


def hypervolume_history(
    records: Sequence[dict], objectives: Sequence[tuple[str, str]], limits: Mapping[str, float] | None = None
) -> list[tuple[int, float]]:
    """Hypervolume of the feasible trained trials after each trial (minimization form; reference point:
    0 for maximized metrics; for minimized ones their budget in ``limits`` when given, which keeps the
    number comparable across runs, else 1.1 x the largest observed value)."""
    import numpy as np

    good = sorted(trained(records), key=lambda r: r["number"])
    vals = [[r["values"][n] for n, _ in objectives] for r in good if r.get("values")]
    if not vals:
        return []
    arr = np.asarray(vals, dtype=float)
    sign = np.array([-1.0 if d == "maximize" else 1.0 for _, d in objectives])
    arr = arr * sign
    limits = limits or {}
    ref = np.array(
        [
            0.0 if d == "maximize" else float(limits[n]) if n in limits else 1.1 * arr[:, i].max()
            for i, (n, d) in enumerate(objectives)
        ]
    )
    out = []
    for i, r in enumerate(good):
        pts = arr[: i + 1]
        pts = pts[np.all(pts < ref, axis=1)]
        out.append((r["number"], hypervolume(pts, ref)))
    return out


def plot_hypervolume(history: Sequence[tuple[int, float]], path: str | Path, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    if history:
        ax.plot([h[0] for h in history], [h[1] for h in history], marker="o", c="tab:green")
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume (objectives in minimization form)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "Hypervolume history")
    return save_figure(fig, path)


def plot_importances(importances: Mapping[str, float], path: str | Path, title: str = "") -> Path:
    plt = _plt()
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(items) + 1.5), constrained_layout=True)
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("importance for validation Dice (fANOVA)")
    ax.set_title(title or "Parameter importances")
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (folders made as needed), close it, return the path."""
    import matplotlib.pyplot as plt

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
