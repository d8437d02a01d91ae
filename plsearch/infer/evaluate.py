"""Evaluate a trained checkpoint: table metrics on a split, and a picture of its best and worst images.

Run it from the shell with ``python -m plsearch.evaluate --checkpoint RUN/best.pt --data DIR``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from plsearch.config.schema import DataConfig, RunConfig
from plsearch.nn.checkpoint import load_checkpoint
from plsearch.train.metrics import logits_to_labels, per_image_dice, predict_counts, summarize

__all__ = ["load_eval_data", "evaluate_checkpoint", "plot_best_worst", "volume_scores"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")


def _data_config(ckpt: dict[str, Any], root: str | Path | None) -> DataConfig:
    """The data settings the run trained with (size, split, seed), with ``root`` replaced if given."""
    run = ckpt.get("run_config")
    cfg = RunConfig.from_dict(run).data if run else DataConfig()
    return cfg if root is None else replace(cfg, root=str(root))


def load_eval_data(data_cfg: DataConfig, split: str, num_classes: int, in_channels: int):
    """One split (``train``/``val``/``test``) of ``data_cfg``, or ``all`` samples of its folder, in whichever
    registered data format the folder is (:mod:`plsearch.data.formats`).

    Channels follow the model (``in_channels``) so that a model trained on colour images also
    evaluates a greyscale folder.
    """
    from plsearch.data.dataset import load_data, load_splits

    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {list(SPLITS)}; choose one of them")
    cfg = replace(data_cfg, channels="grey" if in_channels == 1 else "rgb")
    if split == "all":
        if not cfg.root:
            raise ValueError("split 'all' needs a data folder; pass --data DIR")
        return load_data(cfg, num_classes)
    data = load_splits(cfg, num_classes=num_classes)[split]
    if len(data) == 0:
        raise ValueError(f"the {split} split is empty; choose another --split or use --split all")
    return data


@torch.no_grad()
def _short_id(name: str, width: int = 20) -> str:
    """An image id that fits a panel title, keeping its end (``hippocampus_330`` and ``_331`` differ there)."""
    return name if len(name) <= width else "\u2026" + name[-(width - 1) :]


def plot_best_worst(
    model: nn.Module,
    data,
    counts: torch.Tensor,
    path: str | Path,
    *,
    k: int = 4,
    device: torch.device | str = "cpu",
) -> Path:
    """Grid of the ``k`` best and ``k`` worst images by per-image Dice, prediction overlaid.

    Args:
        counts: ``(n, classes, 4)`` from ``predict_counts`` on the same ``data``.
    """
    from plsearch.plots.training import plot_overlays

    dice = per_image_dice(counts)
    order = torch.argsort(dice, descending=True, stable=True)
    k = min(k, len(order))
    best = order[:k].tolist()
    worst = [i for i in reversed(order.tolist()) if i not in best][:k]
    chosen = torch.tensor(best + worst, dtype=torch.long)
    model.eval()
    x, y = data.batch(chosen)
    labels = logits_to_labels(model(x.to(device)).float()).cpu()
    titles = [
        f"{'best' if j < len(best) else 'worst'}: {_short_id(data.ids[i])}  Dice {dice[i]:.3f}"
        for j, i in enumerate(chosen.tolist())
    ]
    images, y = data.images[chosen].cpu(), y.cpu()
    if images.dim() == 5:  # volumes: the slice with the most foreground, intensities stretched to 0..255
        pick = (y > 0).flatten(2).sum(-1).argmax(1)
        rows = torch.arange(len(pick))
        images, y, labels = images[rows, :, pick], y[rows, pick], labels[rows, pick]
        lo = images.amin(dim=(1, 2, 3), keepdim=True)
        hi = images.amax(dim=(1, 2, 3), keepdim=True)
        images = ((images - lo) / (hi - lo).clamp_min(1e-6) * 255).round().to(torch.uint8)
    return plot_overlays(
        images.numpy(),
        y.numpy(),
        labels.numpy(),
        titles,
        path,
        columns=k,
        heading="top row(s): best, bottom: worst   green TP, red FP, blue FN",
    )


@torch.no_grad()
def volume_scores(model: nn.Module, data, *, device: torch.device | str = "cpu", batch_size: int = 2) -> dict[str, Any]:
    """Per-class Dice and HD95 (mm, from each volume's spacing) of a 3D model on volumes (``SegmentationData``
    with ``spacing``).

    Computed on the grid the network sees (volumes resized to the training size; the spacing is
    scaled to match, so distances stay in mm). Returns the means over volumes (HD95 over the volumes
    where both prediction and label hold the class) and ``per_volume`` rows.
    """
    import math

    import numpy as np

    from plsearch.train.metrics import volume_metrics

    k = model.config.num_classes
    names = {c: n.lower().replace(" ", "_") for c, n in getattr(data, "class_names", {}).items()}
    rows = []
    model.eval()
    for start in range(0, len(data), batch_size):
        idx = list(range(start, min(len(data), start + batch_size)))
        x, y = data.batch(idx)
        labels = logits_to_labels(model(x.to(device)).float()).cpu()
        for j, i in enumerate(idx):
            m = volume_metrics(labels[j].numpy(), y[j].numpy(), k, spacing=data.spacing[i], names=names)
            rows.append({"id": data.ids[i], **m})
    out: dict[str, Any] = {}
    for key in rows[0]:
        if key == "id":
            continue
        vals = [r[key] for r in rows if not math.isnan(r[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    out["volumes"] = len(rows)
    out["per_volume"] = rows
    return out


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    data: str | Path | None = None,
    split: str = "test",
    out_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    k: int = 4,
) -> dict[str, Any]:
    """Metrics of a checkpoint on a split; with ``out_dir``: ``metrics.json`` and ``best_worst.png``.

    Args:
        data: data folder; ``None`` uses the folder the run trained on (``""``: synthetic set).
        split: ``train``, ``val``, ``test`` (the run's own split of ``data``) or ``all``.

    Returns:
        ``summarize`` figures plus ``split``, ``checkpoint`` and (with ``out_dir``) file paths.
    """
    from plsearch.infer.segmenter import resolve_checkpoint

    model, ckpt = load_checkpoint(resolve_checkpoint(checkpoint), device=device)  # a file, run folder or NAME:N
    mcfg = model.config
    dset = load_eval_data(_data_config(ckpt, data), split, mcfg.num_classes, mcfg.in_channels)
    counts = predict_counts(model, dset, num_classes=mcfg.num_classes, batch_size=batch_size, device=device)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "split": split, **summarize(counts)}
    per_volume = None
    if mcfg.spatial_dims == 3 and dset.spacing is not None:  # volumes: per-class Dice and HD95 in mm
        vol = volume_scores(model, dset, device=device)
        per_volume = vol.pop("per_volume")
        result["volumes"] = vol.pop("volumes")
        result.update({f"volume_{k}": v for k, v in vol.items()})
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["overlays"] = str(plot_best_worst(model, dset, counts, out / "best_worst.png", k=k, device=device))
        per_image = {i: float(d) for i, d in zip(dset.ids, per_image_dice(counts).tolist())}
        extra = {"per_volume": per_volume} if per_volume is not None else {}
        (out / "metrics.json").write_text(json.dumps({**result, "per_image_dice": per_image, **extra}, indent=2))
        result["metrics_json"] = str(out / "metrics.json")
    return result
