"""Dice losses, deep supervision over EPL stages, and the EPL loss schedule.

The paper trains every stage's head with the Dice loss of eq. (4),
``L = 1 - (2 * sum(p * g) + s) / (sum(p) + sum(g) + s)``, and sums the stage losses.
Sums run over every pixel of the batch (as BiO-Net's code flattens the batch), with ``s = 1``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, reduce

from plsearch.config.schema import TrainConfig


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss of one prediction.

    Args:
        logits: ``(b, k, *spatial)`` raw scores. ``k == 1``: binary, probability ``sigmoid``;
            ``k > 1``: multi-class, probabilities ``softmax`` over dim 1 and a one-hot target.
        target: ``(b, *spatial)`` integer class indices (binary: 0/1).
        smooth: added to numerator and denominator (eq. 4); keeps empty masks finite.

    Returns:
        Scalar loss in ``[0, 1)``. Multi-class: the mean of every class's Dice loss, background
        included (each class's sums run over the whole batch).
    """
    if logits.dim() != target.dim() + 1:
        raise ValueError(
            f"logits {tuple(logits.shape)} must have one more dim (classes) than target {tuple(target.shape)}"
        )
    logits = logits.float()  # bf16 autocast: reduce in float32
    k = logits.shape[1]
    if k == 1:
        prob = torch.sigmoid(logits)
        onehot = rearrange(target > 0, "b ... -> b 1 ...").to(prob.dtype)
    else:
        prob = torch.softmax(logits, dim=1)
        onehot = rearrange(F.one_hot(target.long(), k), "b ... k -> b k ...").to(prob.dtype)
    # per class, summed over the batch and every pixel or voxel (2D and 3D alike)
    inter = reduce(prob * onehot, "b k ... -> k", "sum")
    denom = reduce(prob, "b k ... -> k", "sum") + reduce(onehot, "b k ... -> k", "sum")
    dice = (2 * inter + smooth) / (denom + smooth)
    return (1 - dice).mean()


def fuse_logits(outputs: Sequence[torch.Tensor], fusion: str = "sum") -> torch.Tensor:
    """Fused prediction from per-stage logits: their sum (eq. 5) or the last stage's alone."""
    if fusion == "last":
        return outputs[-1]
    return torch.stack(list(outputs)).sum(0)


def active_stages(epoch: int, cfg: TrainConfig, stages: int) -> int:
    """How many stages (shallowest first) carry a loss in ``epoch`` (0-based).

    ``joint``: all of them, every epoch (the paper). ``progressive``: stage ``j`` (1-based) joins at
    epoch ``(j - 1) * P`` where ``P = cfg.progressive_epochs``, or, when that is 0,
    ``P = max(1, cfg.epochs // (2 * stages))`` so the last stage trains for at least half the run.
    """
    if cfg.schedule == "joint" or stages <= 1:
        return stages
    period = cfg.progressive_epochs or max(1, cfg.epochs // (2 * stages))
    return min(stages, 1 + epoch // period)


def deep_supervision_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    *,
    stages: int | None = None,
    loss_on_fused: bool = False,
    fusion: str = "sum",
    smooth: float = 1.0,
) -> torch.Tensor:
    """Sum of the Dice losses of the first ``stages`` stage predictions (deep supervision).

    Args:
        outputs: a list of per-stage logits, each ``(b, k, *spatial)``, or one tensor.
        target: ``(b, *spatial)`` class indices.
        stages: how many stages (shallowest first) contribute; ``None`` means all.
        loss_on_fused: also add the loss of the fused logits (``fuse_logits`` of the active stages).
        fusion: ``"sum"`` or ``"last"``, the model's fusion rule.
    """
    outs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    if not outs:
        raise ValueError("the model returned no stage outputs")
    used = outs[: stages or len(outs)]
    loss = sum(soft_dice_loss(o, target, smooth) for o in used)
    if loss_on_fused and len(outs) > 1:
        loss = loss + soft_dice_loss(fuse_logits(used, fusion), target, smooth)
    return loss  # type: ignore[return-value]
