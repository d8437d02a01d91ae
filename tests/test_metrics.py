"""Metrics against hand-computed values, including the empty-mask convention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from plsearch.data.dataset import SegmentationData
from plsearch.train.metrics import (
    confusion_counts,
    evaluate_model,
    logits_to_labels,
    per_image_dice,
    segmentation_metrics,
)

# image 0: tp 1, fp 1, fn 1, tn 1. image 1: both empty. image 2: prediction empty, target 1 pixel.
PRED = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]])
TARGET = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]], [[0, 1], [0, 0]]])


def test_confusion_counts():
    c = confusion_counts(PRED, TARGET)
    assert c.shape == (3, 1, 4)
    assert c[:, 0].tolist() == [[1, 1, 1, 1], [0, 0, 0, 4], [0, 0, 1, 3]]


def test_binary_per_image_and_global():
    m = segmentation_metrics(PRED, TARGET)
    # per image: dice 0.5, 1 (both empty), 0 (only target has foreground)
    assert m["dice"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["iou"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert m["acc"] == pytest.approx((0.5 + 1 + 0.75) / 3)
    assert m["sens"] == pytest.approx((0.5 + 1 + 0) / 3)  # no foreground to find -> 1
    assert m["spec"] == pytest.approx((0.5 + 1 + 1) / 3)
    # pooled: tp 1, fp 1, fn 2, tn 8
    assert m["global_dice"] == pytest.approx(2 / (2 + 1 + 2))
    assert m["global_iou"] == pytest.approx(1 / 4)
    assert m["global_acc"] == pytest.approx(9 / 12)
    assert m["global_sens"] == pytest.approx(1 / 3)
    assert m["global_spec"] == pytest.approx(8 / 9)
    assert m["images"] == 3


def test_empty_mask_convention():
    empty = torch.zeros(1, 3, 3, dtype=torch.long)
    full = torch.ones(1, 3, 3, dtype=torch.long)
    both = segmentation_metrics(empty, empty)
    assert both["dice"] == both["iou"] == both["sens"] == both["spec"] == both["acc"] == 1.0
    only_pred = segmentation_metrics(full, empty)
    assert only_pred["dice"] == only_pred["iou"] == only_pred["spec"] == 0.0 and only_pred["sens"] == 1.0
    only_target = segmentation_metrics(empty, full)
    assert only_target["dice"] == only_target["iou"] == only_target["sens"] == 0.0
    assert only_target["spec"] == 1.0  # no background pixel to get wrong


def test_multiclass_hand_values():
    pred = torch.tensor([[[0, 1], [2, 2]]])
    target = torch.tensor([[[0, 1], [1, 2]]])
    m = segmentation_metrics(pred, target, num_classes=3)
    # class 1: tp 1, fn 1 -> dice 2/3, iou 1/2; class 2: tp 1, fp 1 -> dice 2/3, iou 1/2
    assert m["dice_class1"] == pytest.approx(2 / 3) and m["dice_class2"] == pytest.approx(2 / 3)
    assert m["iou_class1"] == pytest.approx(0.5) and m["iou"] == pytest.approx(0.5)
    assert m["dice"] == pytest.approx(2 / 3)
    assert m["acc"] == pytest.approx(0.75)
    assert "dice_class0" not in m  # background is not reported
    # class 2 absent from both in the second image counts as Dice 1
    pred2 = torch.stack([pred[0], torch.tensor([[1, 1], [0, 0]])])
    target2 = torch.stack([target[0], torch.tensor([[1, 0], [0, 0]])])
    m2 = segmentation_metrics(pred2, target2, num_classes=3)
    assert m2["dice_class2"] == pytest.approx((2 / 3 + 1) / 2)
    assert m2["dice_class1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert per_image_dice(confusion_counts(pred2, target2, 3)).tolist() == pytest.approx([2 / 3, (2 / 3 + 1) / 2])


def test_logits_to_labels_threshold_and_argmax():
    assert logits_to_labels(torch.tensor([[[[-1.0, 0.0, 0.1]]]])).tolist() == [[[0, 0, 1]]]
    assert logits_to_labels(torch.tensor([[[[1.0]], [[3.0]], [[2.0]]]])).tolist() == [[[1]]]


class _Threshold(nn.Module):
    """Eval output: logit > 0 where the first image channel is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        return (x[:, :1] - 0.5) * self.scale


def test_evaluate_model_perfect_toy():
    masks = torch.zeros(5, 8, 8, dtype=torch.uint8)
    masks[:3, 2:5, 2:6] = 1  # images 3 and 4 are empty
    images = (masks * 255)[:, None].repeat(1, 3, 1, 1)
    data = SegmentationData(images, masks, tuple(f"i{k}" for k in range(5)))
    m = evaluate_model(_Threshold(), data, batch_size=2)
    assert m["dice"] == 1.0 and m["global_dice"] == 1.0 and m["images"] == 5
