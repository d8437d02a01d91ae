"""Segmentation metrics as the paper tabulates them: Acc, IoU, Dice, Sens, Spec.

Binary models (one logit channel) predict foreground where ``sigmoid(logit) > 0.5``, i.e.
``logit > 0``; multi-class models predict ``argmax`` over classes.

Averaging: every figure is computed **per image, then averaged over images** (``acc``, ``iou``,
...); the same figures pooled over all pixels of all images are reported as ``global_*``.
Multi-class: ``iou_class{c}`` / ``dice_class{c}`` for each foreground class ``c >= 1`` and ``iou`` /
``dice`` their mean (background excluded, as ACDC tables report RV, Myo, LV); ``acc`` is pixel
accuracy over all classes.

Empty masks: a ratio whose denominator is 0 counts as **1**. So Dice and IoU are 1 when prediction
and target are both empty and 0 when only one of them is; Sens is 1 on an image without foreground,
Spec is 1 on an image without background.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from plsearch.nn.speed import autocast as bf16_autocast
from plsearch.nn.speed import memory_format

TP, FP, FN, TN = range(4)


def logits_to_labels(logits: torch.Tensor) -> torch.Tensor:
    """``(b, k, *spatial)`` logits -> ``(b, *spatial)`` int64 labels (binary: ``logit > 0``)."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int = 1) -> torch.Tensor:
    """Per-image, per-class confusion counts.

    Args:
        pred, target: ``(n, *spatial)`` integer labels (binary: 0/1, anything > 0 is foreground).
        num_classes: 1 for binary, else the number of classes including background.

    Returns:
        ``(n, k, 4)`` float64 counts ``[tp, fp, fn, tn]``; ``k = 1`` (foreground) for binary, else
        ``k = num_classes`` (class 0 is background).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    per_image = "n ... -> n 1 (...)"  # one row of pixels (or voxels) per image, 2D and 3D alike
    if num_classes == 1:
        p = rearrange(pred > 0, per_image)
        t = rearrange(target > 0, per_image)
    else:
        classes = rearrange(torch.arange(num_classes, device=pred.device), "k -> 1 k 1")
        p = rearrange(pred, per_image) == classes
        t = rearrange(target, per_image) == classes
    tp = (p & t).sum(-1)
    fp = (p & ~t).sum(-1)
    fn = (~p & t).sum(-1)
    tn = p.shape[-1] - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], -1).double().cpu()


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0/0 := 1 (see the module docstring)."""
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(num))


def scores(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Acc, IoU, Dice, Sens, Spec from ``(..., 4)`` counts; each result has shape ``counts.shape[:-1]``."""
    tp, fp, fn, tn = counts.unbind(-1)
    return {
        "acc": _ratio(tp + tn, tp + fp + fn + tn),
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "sens": _ratio(tp, tp + fn),
        "spec": _ratio(tn, tn + fp),
    }


def per_image_dice(counts: torch.Tensor) -> torch.Tensor:
    """``(n, k, 4)`` counts -> ``(n,)`` Dice per image (multi-class: mean over foreground classes)."""
    dice = scores(counts)["dice"]
    return dice[:, 0] if dice.shape[1] == 1 else dice[:, 1:].mean(1)


def summarize(counts: torch.Tensor) -> dict[str, float]:
    """Table figures from ``(n, k, 4)`` counts (see the module docstring for averaging rules).

    Returns:
        Binary: ``acc, iou, dice, sens, spec`` (per-image means), ``global_*`` of the same, ``images``.
        Multi-class: ``acc, iou, dice``, ``iou_class{c}, dice_class{c}``, their ``global_*``, ``images``.
    """
    if counts.dim() != 3 or counts.shape[0] == 0:
        raise ValueError(f"need (n >= 1, k, 4) counts, got shape {tuple(counts.shape)}")
    out: dict[str, float] = {}
    per_image, pooled = scores(counts), scores(counts.sum(0))
    if counts.shape[1] == 1:
        for name in ("acc", "iou", "dice", "sens", "spec"):
            out[name] = per_image[name][:, 0].mean().item()
        for name in ("acc", "iou", "dice", "sens", "spec"):
            out[f"global_{name}"] = pooled[name][0].item()
    else:
        tp = counts[..., TP].sum(1)
        pixels = counts[:, 0].sum(-1)
        out["acc"] = (tp / pixels).mean().item()
        k = counts.shape[1]
        for name in ("iou", "dice"):
            out[name] = per_image[name][:, 1:].mean().item()
            for c in range(1, k):
                out[f"{name}_class{c}"] = per_image[name][:, c].mean().item()
        out["global_acc"] = (tp.sum() / pixels.sum()).item()
        for name in ("iou", "dice"):
            out[f"global_{name}"] = pooled[name][1:].mean().item()
            for c in range(1, k):
                out[f"global_{name}_class{c}"] = pooled[name][c].item()
    out["images"] = int(counts.shape[0])
    return out


def segmentation_metrics(pred: torch.Tensor, target: torch.Tensor, num_classes: int = 1) -> dict[str, float]:
    """``summarize(confusion_counts(pred, target, num_classes))`` for ``(n, *spatial)`` label tensors."""
    return summarize(confusion_counts(pred, target, num_classes))


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict_counts(
    model: nn.Module,
    data,
    *,
    num_classes: int = 1,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    amp: bool = False,
) -> torch.Tensor:
    """Run ``model`` in eval mode over ``data`` (a ``SegmentationData``) and count per image.

    Returns:
        ``(len(data), k, 4)`` counts in data order (see ``confusion_counts``).
    """
    device = torch.device(device) if device is not None else _device_of(model)
    was_training = model.training
    model.eval()
    autocast = bf16_autocast(device, enabled=amp)
    rows = torch.zeros(len(data), 1 if num_classes == 1 else num_classes, 4, dtype=torch.float64)
    try:
        for x, y, idx in data.batches(batch_size, shuffle=False, generator=None):
            x = x.to(device)
            layout = memory_format(device, x.dim())  # channels-last on CUDA, as fit() trains
            with autocast:
                logits = model(x if layout is None else x.contiguous(memory_format=layout))
            rows[idx.cpu()] = confusion_counts(logits_to_labels(logits.float()), y.to(device), num_classes)
    finally:
        model.train(was_training)
    return rows


def evaluate_model(
    model: nn.Module,
    data,
    *,
    num_classes: int = 1,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    amp: bool = False,
) -> dict[str, float]:
    """Table metrics of ``model`` (fused eval output) on ``data``; see ``summarize`` for the keys."""
    return summarize(
        predict_counts(model, data, num_classes=num_classes, batch_size=batch_size, device=device, amp=amp)
    )


def trivial_dice(masks: torch.Tensor, num_classes: int = 1) -> dict[str, float]:
    """Val Dice of the trivial predictors on ``masks`` ``(n, *spatial)``: every pixel background, and
    every pixel foreground (multi-class: the best single foreground class), averaged per image like
    ``summarize``'s ``dice``. ``best`` is the larger: a network no better than it has learned nothing.

    Returns:
        ``{"all_background": .., "all_foreground": .., "best": ..}``.
    """
    masks = torch.as_tensor(masks)
    if masks.dim() < 2 or masks.shape[0] == 0:
        raise ValueError(f"need (n >= 1, *spatial) masks, got shape {tuple(masks.shape)}")
    target = masks.long()

    def dice_of(label: int) -> float:
        pred = torch.full_like(target, label)
        return per_image_dice(confusion_counts(pred, target, num_classes)).mean().item()

    background = dice_of(0)
    foreground = max(dice_of(c) for c in range(1, max(2, num_classes)))
    return {"all_background": background, "all_foreground": foreground, "best": max(background, foreground)}


# -- 3D (and 2D) surface distance: the 95th-percentile Hausdorff distance in millimetres --------------


def _edges(mask):
    """Surface voxels: in the mask with a face neighbour outside it (the volume's border counts as outside)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hausdorff95(pred, target, spacing=None) -> float:
    """95th-percentile symmetric Hausdorff distance between two binary masks, in the units of ``spacing``.

    As MONAI's ``compute_hausdorff_distance(percentile=95)``: surfaces are mask voxels with a face
    neighbour outside, distances are exact Euclidean (scipy's distance transform with ``spacing``
    in mm from the image header), and the result is the larger of the two directed 95th percentiles.

    Args:
        pred, target: boolean arrays ``(*spatial)`` (numpy or torch).
        spacing: voxel size per axis (mm); None means 1.

    Returns:
        The distance; 0.0 when both masks are empty, ``nan`` when exactly one is (undefined).
    """
    import numpy as np
    from scipy import ndimage

    p, t = (np.asarray(a.cpu() if isinstance(a, torch.Tensor) else a).astype(bool) for a in (pred, target))
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape")
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("nan")
    sampling = None if spacing is None else [float(s) for s in spacing]
    ep, et = _edges(p), _edges(t)
    to_t = ndimage.distance_transform_edt(~et, sampling=sampling)[ep]
    to_p = ndimage.distance_transform_edt(~ep, sampling=sampling)[et]
    return float(max(np.percentile(to_t, 95), np.percentile(to_p, 95)))


def volume_metrics(
    pred, target, num_classes: int, spacing=None, names: dict[int, str] | None = None
) -> dict[str, float]:
    """Per-class Dice and HD95 (mm) of one volume (or image) of integer labels ``(*spatial)``.

    Keys: ``dice_<name>`` and ``hd95_<name>`` per foreground class (``name`` from ``names``, e.g.
    dataset.json's, else ``class<c>``; binary: one class ``fg``), plus ``dice`` and ``hd95``, their means.
    """
    import numpy as np

    p = torch.as_tensor(np.asarray(pred))[None]
    t = torch.as_tensor(np.asarray(target))[None]
    dice = scores(confusion_counts(p, t, num_classes))["dice"][0]
    out: dict[str, float] = {}
    classes = [1] if num_classes == 1 else list(range(1, num_classes))
    for j, c in enumerate(classes):
        name = (names or {}).get(c, "fg" if num_classes == 1 else f"class{c}")
        out[f"dice_{name}"] = float(dice[j if num_classes == 1 else c])
        pm, tm = (p[0] > 0, t[0] > 0) if num_classes == 1 else (p[0] == c, t[0] == c)
        out[f"hd95_{name}"] = hausdorff95(pm, tm, spacing)
    out["dice"] = float(np.mean([out[k] for k in out if k.startswith("dice_")]))
    hds = [out[k] for k in out if k.startswith("hd95_")]
    out["hd95"] = float(np.nanmean(hds)) if not all(np.isnan(hds)) else float("nan")
    return out
