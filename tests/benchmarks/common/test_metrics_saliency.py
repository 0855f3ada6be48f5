"""Saliency metrics: MaxF over 256 thresholds (SOD protocol) and MAE."""
import pytest
import torch

from benchmarks.common.metrics import f_measure_curve, max_f_measure, mean_absolute_error

GT = torch.zeros(4, 4)
GT[:2, :2] = 1.0  # 4 of 16 pixels salient


def test_perfect_and_inverted_by_hand():
    assert max_f_measure(GT, GT) == pytest.approx(1.0)
    assert mean_absolute_error(GT, GT) == 0.0
    # inverted: every threshold > 0 gives TP = 0 (F = 0); threshold 0 marks all
    # pixels salient: P = 4/16, R = 1, F = 1.3 * 0.25 / (0.3 * 0.25 + 1)
    assert max_f_measure(1 - GT, GT) == pytest.approx(1.3 * 0.25 / 1.075)
    assert mean_absolute_error(1 - GT, GT) == 1.0


def test_curve_is_image_averaged():
    soft = GT * 0.6 + 0.2  # salient 0.8, background 0.2
    p_a, r_a = f_measure_curve(soft, GT)
    assert p_a.shape == (256,)
    k_lo, k_mid, k_hi = 0, 128, 255  # thresholds 0, ~0.502, 1
    assert p_a[k_lo] == pytest.approx(0.25) and r_a[k_lo] == 1.0
    assert p_a[k_mid] == 1.0 and r_a[k_mid] == 1.0
    assert p_a[k_hi] == 0.0 and r_a[k_hi] == 0.0  # nothing >= 1: precision defined 0
    # a batch averages the per-image curves; maps of different sizes are accepted
    other_gt = torch.zeros(3, 5)
    other_gt[0] = 1.0
    other = torch.rand(3, 5, generator=torch.Generator().manual_seed(1))
    p_b, r_b = f_measure_curve(other, other_gt)
    p, r = f_measure_curve([soft, other], [GT, other_gt])
    assert torch.allclose(p, (p_a + p_b) / 2) and torch.allclose(r, (r_a + r_b) / 2)
    p2, _ = f_measure_curve(torch.stack([soft, soft]), torch.stack([GT, GT]))
    assert torch.allclose(p2, p_a)
    assert (r[1:] <= r[:-1]).all()  # recall never increases with the threshold
    assert mean_absolute_error([soft, other], [GT, other_gt]) == pytest.approx(
        (0.2 + (other - other_gt).abs().mean().item()) / 2)


def test_threshold_on_exact_levels_and_errors():
    pred = torch.full((2, 2), 100 / 255)
    gt = torch.ones(2, 2)
    _, r = f_measure_curve(pred, gt)
    # pred >= t_k for k <= 100 exactly (no float round-off at the boundary)
    assert r[100] == 1.0 and r[101] == 0.0
    with pytest.raises(TypeError, match="floats"):
        max_f_measure(GT.long(), GT)
    with pytest.raises(ValueError, match="shape"):
        max_f_measure(GT, GT[:2])
    with pytest.raises(ValueError, match="beta2"):
        max_f_measure(GT, GT, beta2=0.0)
    # empty ground truth: finite
    assert max_f_measure(torch.rand(4, 4), torch.zeros(4, 4)) == 0.0
