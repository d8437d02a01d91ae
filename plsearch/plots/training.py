"""Pictures of one training run: loss and validation Dice per epoch, best and worst predictions.

matplotlib is imported inside the functions (``import plsearch`` stays light) with the Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from plsearch.plots.study import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training loss and validation Dice/IoU against epoch, the best epoch marked; writes a PNG."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(epochs, [r["train_loss"] for r in history], marker=".", color="tab:red")
    ax1.set(xlabel="epoch", ylabel="training loss (sum of stage Dice losses)", title="loss")
    ax2.plot(epochs, [r["val_dice"] for r in history], marker=".", label="Dice")
    ax2.plot(epochs, [r["val_iou"] for r in history], marker=".", label="IoU", alpha=0.7)
    if history:
        best = max(history, key=lambda r: r["val_dice"])
        ax2.axvline(best["epoch"], color="grey", ls=":", lw=1)
        ax2.annotate(
            f"best {best['val_dice']:.3f}",
            (best["epoch"], best["val_dice"]),
            fontsize=8,
            xytext=(4, -12),
            textcoords="offset points",
        )
    ax2.set(xlabel="epoch", ylabel="validation", title="validation (fused output)")
    ax2.legend(loc="lower right", fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _overlay(image: np.ndarray, target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``(c, h, w)`` uint8 image -> RGB float with green TP, red FP, blue FN blended in."""
    rgb = image.astype(np.float32) / 255.0
    rgb = np.repeat(rgb, 3, 0) if rgb.shape[0] == 1 else rgb[:3]
    rgb = rgb.transpose(1, 2, 0).copy()
    t, p = target > 0, pred > 0
    for mask, colour in ((p & t, (0.1, 0.9, 0.1)), (p & ~t, (1.0, 0.1, 0.1)), (~p & t, (0.1, 0.4, 1.0))):
        rgb[mask] = 0.5 * rgb[mask] + 0.5 * np.asarray(colour, dtype=np.float32)
    return rgb


def plot_overlays(
    images: np.ndarray,
    targets: np.ndarray,
    preds: np.ndarray,
    titles: Sequence[str],
    path: str | Path,
    *,
    columns: int = 4,
    heading: str = "",
) -> Path:
    """A grid of images with prediction against target blended in (green TP, red FP, blue FN).

    Args:
        images: uint8 ``(n, c, h, w)``; targets, preds: ``(n, h, w)`` labels (multi-class: any
            class > 0 counts as foreground in the picture); titles: one per image.
    """
    plt = _pyplot()
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(_overlay(images[i], targets[i], preds[i]), interpolation="nearest")
        ax.set_title(titles[i], fontsize=7)
    if heading:
        fig.suptitle(heading, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
