"""Dice losses against hand-computed values, deep supervision and the EPL schedule."""

from __future__ import annotations

import pytest
import torch

from plsearch.config.schema import TrainConfig
from plsearch.train.losses import active_stages, deep_supervision_loss, fuse_logits, soft_dice_loss


def test_binary_dice_loss_hand_value():
    # p = 0.5 everywhere, one foreground pixel of four: (2*0.5 + 1) / (2 + 1 + 1) = 0.5
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[1, 0], [0, 0]]])
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.5)
    # smooth 0: 2*0.5 / 3
    assert soft_dice_loss(logits, target, smooth=0.0).item() == pytest.approx(1 - 1 / 3)


def test_binary_dice_loss_perfect_and_empty():
    target = torch.tensor([[[1, 0], [0, 1]]])
    perfect = (target.float() * 40 - 20)[:, None]
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    empty = torch.zeros(1, 2, 2, dtype=torch.long)
    assert soft_dice_loss(torch.full((1, 1, 2, 2), -30.0), empty).item() == pytest.approx(0.0, abs=1e-6)


def test_multiclass_dice_loss_hand_value():
    # uniform softmax over 2 classes (p = 0.5); class 0 on 3 pixels, class 1 on 1 pixel.
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[0, 0], [0, 1]]])
    d0 = (2 * 1.5 + 1) / (2 + 3 + 1)
    d1 = (2 * 0.5 + 1) / (2 + 1 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - (d0 + d1) / 2)


def test_deep_supervision_sums_stages_and_fused():
    target = torch.tensor([[[1, 0], [0, 0]]])
    a, b = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0)
    la, lb = soft_dice_loss(a, target), soft_dice_loss(b, target)
    assert deep_supervision_loss([a, b], target).item() == pytest.approx((la + lb).item())
    assert deep_supervision_loss([a, b], target, stages=1).item() == pytest.approx(la.item())
    fused = soft_dice_loss(a + b, target)
    got = deep_supervision_loss([a, b], target, loss_on_fused=True).item()
    assert got == pytest.approx((la + lb + fused).item())
    assert torch.equal(fuse_logits([a, b], "last"), b)
    assert deep_supervision_loss(a, target).item() == pytest.approx(la.item())


def test_loss_has_gradient():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    deep_supervision_loss([logits, logits * 2], target).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one more dim"):
        soft_dice_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_active_stages_schedules():
    joint = TrainConfig(epochs=40)
    assert [active_stages(e, joint, 2) for e in (0, 39)] == [2, 2]
    prog = TrainConfig(epochs=40, schedule="progressive")  # default period 40 // (2 * 2) = 10
    assert [active_stages(e, prog, 2) for e in (0, 9, 10, 39)] == [1, 1, 2, 2]
    three = TrainConfig(epochs=40, schedule="progressive", progressive_epochs=3)
    assert [active_stages(e, three, 3) for e in (0, 2, 3, 5, 6, 30)] == [1, 1, 2, 2, 3, 3]
    assert active_stages(0, prog, 1) == 1
