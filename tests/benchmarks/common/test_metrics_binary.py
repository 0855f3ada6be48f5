"""Binary segmentation metrics: IoU, Dice, Hausdorff / HD95, rates, ROC AUC."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from benchmarks.common.metrics import (
    ConfusionMatrix,
    binary_iou,
    binary_rates,
    dice,
    hausdorff_distance,
    hd95,
    roc_auc,
)

PRED = torch.tensor([[1, 1, 0], [0, 1, 0]], dtype=torch.bool)
TARGET = torch.tensor([[1, 0, 0], [0, 1, 1]], dtype=torch.bool)


def test_iou_and_dice_by_hand():
    # intersection 2, union 4, |P| = |G| = 3
    assert binary_iou(PRED, TARGET) == pytest.approx(0.5)
    assert dice(PRED, TARGET) == pytest.approx(4 / 6)
    # probabilities are thresholded, 0/255 masks binarised
    assert binary_iou(PRED.float() * 0.9, TARGET.long() * 255) == pytest.approx(0.5)
    # a valid mask removes the false positive at (0, 1) -> 2 / 3
    valid = torch.ones(2, 3, dtype=torch.bool)
    valid[0, 1] = False
    assert binary_iou(PRED, TARGET, valid=valid) == pytest.approx(2 / 3)


def test_reductions_mean_none_global():
    pred = torch.stack([PRED, TARGET])  # image 2 is perfect
    target = torch.stack([TARGET, TARGET])
    assert binary_iou(pred, target, reduction="none").tolist() == pytest.approx([0.5, 1.0])
    assert binary_iou(pred, target) == pytest.approx(0.75)
    assert binary_iou(pred, target, reduction="global") == pytest.approx(5 / 7)
    with pytest.raises(ValueError, match="reduction"):
        binary_iou(pred, target, reduction="sum")
    with pytest.raises(ValueError, match="same shape"):
        binary_iou(PRED, TARGET[:1])


def test_empty_masks_are_defined():
    empty = torch.zeros(3, 3, dtype=torch.bool)
    full = torch.ones(3, 3, dtype=torch.bool)
    assert binary_iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert binary_iou(full, empty) == 0.0 and dice(empty, full) == 0.0
    assert hausdorff_distance(empty, empty) == 0.0
    # one empty mask: the image diagonal, finite
    assert hausdorff_distance(full, empty) == pytest.approx(math.hypot(3, 3))
    assert hd95(empty, full) == pytest.approx(math.hypot(3, 3))
    rates = binary_rates(empty, empty)
    assert all(math.isfinite(v) for v in rates.values())
    assert roc_auc(torch.rand(3, 3), empty) == 0.5


@settings(max_examples=30, deadline=None)
@given(arrays(np.bool_, (2, 5, 6)), arrays(np.bool_, (2, 5, 6)))
def test_iou_agrees_with_confusion_matrix_and_dice(pred, target):
    cm = ConfusionMatrix(2).update(torch.from_numpy(pred).long(), torch.from_numpy(target).long())
    union = cm.matrix[1].sum() + cm.matrix[:, 1].sum() - cm.matrix[1, 1]
    expected = cm.iou_per_class()[1].item() if union > 0 else 1.0
    assert binary_iou(pred, target, reduction="global") == pytest.approx(expected)
    iou = binary_iou(pred, target, reduction="none")
    assert dice(pred, target, reduction="none").tolist() == pytest.approx(
        (2 * iou / (1 + iou)).tolist())


def test_hausdorff_of_point_sets_by_hand():
    a = torch.zeros(6, 6, dtype=torch.bool)
    a[0, 0] = True
    b = torch.zeros(6, 6, dtype=torch.bool)
    b[0, 3] = b[4, 0] = True
    # a -> b: min(3, 4) = 3; b -> a: max(3, 4) = 4
    assert hausdorff_distance(a, b) == pytest.approx(4.0)
    assert hausdorff_distance(b, a) == pytest.approx(4.0)
    # HD95: directed 95th percentiles 3 and 3 + 0.95 * (4 - 3)
    assert hd95(a, b) == pytest.approx(3.95)


def test_hausdorff_of_shifted_squares_and_batch():
    square = torch.zeros(12, 12, dtype=torch.bool)
    square[2:7, 2:7] = True
    shifted = torch.roll(square, shifts=(2, 0), dims=(0, 1))
    assert hausdorff_distance(square, shifted) == pytest.approx(2.0)
    diagonal = torch.roll(square, shifts=(3, 4), dims=(0, 1))
    assert hausdorff_distance(square, diagonal) == pytest.approx(5.0)  # 3-4-5 triangle
    batch = hausdorff_distance(torch.stack([square, square]), torch.stack([shifted, square]),
                               reduction="none")
    assert batch.tolist() == pytest.approx([2.0, 0.0])


@settings(max_examples=25, deadline=None)
@given(arrays(np.bool_, (7, 8)), arrays(np.bool_, (7, 8)))
def test_hausdorff_symmetric_and_hd95_below_hd(a, b):
    hd = hausdorff_distance(a, b)
    assert hd == pytest.approx(hausdorff_distance(b, a))
    assert 0.0 <= hd95(a, b) <= hd + 1e-9
    assert math.isfinite(hd) and hd <= math.hypot(7, 8) + 1e-9


def test_binary_rates_by_hand():
    # tp = 2, fp = 1, fn = 1, tn = 2
    rates = binary_rates(PRED, TARGET)
    assert rates["accuracy"] == pytest.approx(4 / 6)
    assert rates["sensitivity"] == pytest.approx(2 / 3)
    assert rates["specificity"] == pytest.approx(2 / 3)
    assert rates["precision"] == pytest.approx(2 / 3)
    assert rates["f1"] == pytest.approx(2 / 3)


def test_roc_auc_by_hand_and_against_pair_counting():
    # 3 of the 4 (positive, negative) pairs are ranked correctly
    assert roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    assert roc_auc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == 0.5  # a tie counts 1/2
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (60,), generator=gen).float()  # many ties
    target = torch.rand(60, generator=gen) > 0.6
    pos, neg = scores[target], scores[~target]
    diff = pos[:, None] - neg[None, :]
    expected = ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()
    assert roc_auc(scores, target) == pytest.approx(expected)
    valid = torch.zeros(60, dtype=torch.bool)
    valid[:30] = True
    sub = roc_auc(scores[:30], target[:30])
    assert roc_auc(scores, target, valid=valid) == pytest.approx(sub)
