"""Road metrics: road IoU and the APLS-like topology score on pixel graphs."""
import math

import pytest
import torch

from benchmarks.common.metrics import road_iou, topology_score

EVERY_PAIR = {"num_sources": 100, "targets_per_source": 100, "snap_radius": 0.0}


def _road_grid(size: int = 48) -> torch.Tensor:
    road = torch.zeros(size, size, dtype=torch.bool)
    road[10:13, :] = True   # a horizontal street
    road[:, 30:33] = True   # a vertical street
    return road


def test_perfect_prediction_scores_one():
    road = _road_grid()
    assert topology_score(road, road) == pytest.approx(1.0)
    assert road_iou(road, road) == 1.0


def test_broken_road_scores_lower_although_iou_stays_high():
    road = _road_grid()
    broken = road.clone()
    broken[10:13, 14:18] = False  # a 4-pixel gap cuts the horizontal street
    score = topology_score(broken, road)
    assert 0.0 < score < 0.9
    assert road_iou(broken, road) > 0.95  # pixel overlap barely notices
    # deterministic for a seed, depends on it
    assert topology_score(broken, road) == score
    assert topology_score(broken, road, seed=1) != score


def test_line_with_a_gap_by_hand():
    # gt: 5 pixels in a row; pred misses the middle one. All 20 ordered gt pairs:
    # 8 touch the missing pixel (cannot snap) -> 0, 8 cross the gap -> 0, 4 stay
    # on one side -> 1: C_gt->pred = 4/20. The 4 connected pred pairs are exact in
    # gt: C_pred->gt = 1. Harmonic mean 2 * 0.2 * 1 / 1.2 = 1/3.
    gt = torch.ones(1, 5, dtype=torch.bool)
    pred = gt.clone()
    pred[0, 2] = False
    assert topology_score(pred, gt, **EVERY_PAIR) == pytest.approx(1 / 3)


def test_detour_by_hand():
    # gt: (0,0)-(0,1)-(0,2), length 2 end to end. pred: (0,0)-(1,1)-(0,2), a
    # diagonal detour of length 2*sqrt(2); (0,1) and (1,1) cannot be snapped.
    gt = torch.zeros(2, 3, dtype=torch.bool)
    gt[0] = True
    pred = torch.zeros(2, 3, dtype=torch.bool)
    pred[0, 0] = pred[1, 1] = pred[0, 2] = True
    forward = 2 * (1 - (2 * math.sqrt(2) - 2) / 2) / 6    # 2 of 6 pairs measurable
    backward = 2 * (1 - (2 * math.sqrt(2) - 2) / (2 * math.sqrt(2))) / 6
    expected = 2 * forward * backward / (forward + backward)
    assert topology_score(pred, gt, **EVERY_PAIR) == pytest.approx(expected)


def test_spurious_roads_are_penalised_symmetrically():
    road = _road_grid()
    extra = road.clone()
    extra[40:43, 0:20] = True  # a road that is not in the ground truth
    assert topology_score(extra, road) < 1.0
    assert topology_score(road, road) == 1.0


def test_empty_cases_and_downsampling():
    empty = torch.zeros(20, 20, dtype=torch.bool)
    road = torch.zeros(20, 20, dtype=torch.bool)
    road[5, :] = True
    assert topology_score(empty, empty) == 1.0
    assert topology_score(empty, road) == 0.0
    assert topology_score(road, empty) == 0.0
    # a 1-pixel road in a big mask survives max-pool downsampling
    big = torch.zeros(300, 300, dtype=torch.bool)
    big[150, 10:290] = True
    assert topology_score(big, big, max_size=64) == pytest.approx(1.0)
    batch = topology_score(torch.stack([road, empty]), torch.stack([road, road]),
                           reduction="none")
    assert batch.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="num_sources"):
        topology_score(road, road, num_sources=0)
