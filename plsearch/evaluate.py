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

from plsearch.checkpoint import load_checkpoint
from plsearch.config import DataConfig, RunConfig
from plsearch.metrics import logits_to_labels, per_image_dice, predict_counts, summarize

__all__ = ["load_eval_data", "evaluate_checkpoint", "plot_best_worst"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")


def _data_config(ckpt: dict[str, Any], root: str | Path | None) -> DataConfig:
    """The data settings the run trained with (size, split, seed), with ``root`` replaced if given."""
    run = ckpt.get("run_config")
    cfg = RunConfig.from_dict(run).data if run else DataConfig()
    return cfg if root is None else replace(cfg, root=str(root))


def load_eval_data(data_cfg: DataConfig, split: str, num_classes: int, in_channels: int):
    """One split (``train``/``val``/``test``) of ``data_cfg``, or ``all`` pairs of its folder.

    Channels follow the model (``in_channels``) so that a model trained on colour images also
    evaluates a greyscale folder.
    """
    from plsearch.data import load_folder, load_splits

    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {list(SPLITS)}; choose one of them")
    cfg = replace(data_cfg, channels="grey" if in_channels == 1 else "rgb")
    if split == "all":
        if not cfg.root:
            raise ValueError("split 'all' needs a data folder; pass --data DIR")
        return load_folder(cfg.root, cfg.image_size, channels=cfg.channels, num_classes=num_classes,
                           grey_world=cfg.grey_world, cache=cfg.cache)
    data = load_splits(cfg, num_classes=num_classes)[split]
    if len(data) == 0:
        raise ValueError(f"the {split} split is empty; choose another --split or use --split all")
    return data


@torch.no_grad()
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
    from plsearch.plots_train import plot_overlays

    dice = per_image_dice(counts)
    order = torch.argsort(dice, descending=True, stable=True)
    k = min(k, len(order))
    best = order[:k].tolist()
    worst = [i for i in reversed(order.tolist()) if i not in best][:k]
    chosen = torch.tensor(best + worst, dtype=torch.long)
    model.eval()
    x, y = data.batch(chosen)
    labels = logits_to_labels(model(x.to(device)).float()).cpu()
    titles = [f"{'best' if j < len(best) else 'worst'}: {data.ids[i][:14]}  Dice {dice[i]:.3f}"
              for j, i in enumerate(chosen.tolist())]
    return plot_overlays(data.images[chosen].cpu().numpy(), y.cpu().numpy(), labels.numpy(), titles, path,
                         columns=k, heading="top row(s): best, bottom: worst   green TP, red FP, blue FN")


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
    model, ckpt = load_checkpoint(checkpoint, device=device)
    mcfg = model.config
    dset = load_eval_data(_data_config(ckpt, data), split, mcfg.num_classes, mcfg.in_channels)
    counts = predict_counts(model, dset, num_classes=mcfg.num_classes, batch_size=batch_size, device=device)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "split": split, **summarize(counts)}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result["overlays"] = str(plot_best_worst(model, dset, counts, out / "best_worst.png", k=k, device=device))
        per_image = {i: float(d) for i, d in zip(dset.ids, per_image_dice(counts).tolist())}
        (out / "metrics.json").write_text(json.dumps({**result, "per_image_dice": per_image}, indent=2))
        result["metrics_json"] = str(out / "metrics.json")
    return result


if __name__ == "__main__":
    from plsearch.cli.evaluate import main

    raise SystemExit(main())
