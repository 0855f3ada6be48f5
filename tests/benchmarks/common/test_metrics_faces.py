"""Face metrics: identification accuracy and k-fold verification accuracy."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.common.metrics import (
    best_threshold,
    identification_accuracy,
    verification_accuracy,
    verification_folds,
)


def _unit_pairs(similarities):
    """Pairs of 2-D unit vectors whose cosine similarities are ``similarities``."""
    s = torch.tensor(similarities, dtype=torch.float64)
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(len(s), 2)
    b = torch.stack([s, (1 - s**2).sqrt()], 1)
    return a, b


def test_identification_from_logits_by_hand():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    labels = torch.tensor([1, 0, 0])
    assert identification_accuracy(logits, labels) == pytest.approx(2 / 3)
    assert identification_accuracy(logits, labels, topk=2) == 1.0


def test_identification_against_a_gallery_by_hand():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    gallery_labels = torch.tensor([5, 7, 7])
    probes = torch.tensor([[0.9, 0.1], [0.2, 0.8], [1.0, 1e-3]])
    labels = torch.tensor([5, 7, 7])
    # probe 3 is nearest to gallery item 0 (identity 5): wrong
    assert identification_accuracy(probes, labels, gallery=gallery,
                                   gallery_labels=gallery_labels) == pytest.approx(2 / 3)
    assert identification_accuracy(probes, labels, gallery=gallery, gallery_labels=gallery_labels,
                                   topk=2) == 1.0
    with pytest.raises(ValueError, match="gallery_labels"):
        identification_accuracy(probes, labels, gallery=gallery)


def test_best_threshold_by_hand():
    sims = torch.tensor([0.1, 0.2, 0.8, 0.9])
    same = torch.tensor([False, False, True, True])
    assert best_threshold(sims, same) == pytest.approx(0.5)


def test_verification_leave_one_out_by_hand():
    # 4 pairs -> 4 folds (fewer than the default 10): leave-one-out.
    # genuine 0.9, 0.6; impostor 0.4, 0.7. Held out 0.9: tau = 0.5 -> right;
    # 0.6: tau = 0.8 -> wrong; 0.4: tau below all -> wrong; 0.7: tau = 0.5 -> wrong.
    a, b = _unit_pairs([0.9, 0.6, 0.4, 0.7])
    same = torch.tensor([True, True, False, False])
    folds = verification_folds(a, b, same)
    assert folds["accuracy"].numel() == 4
    assert verification_accuracy(a, b, same) == pytest.approx(0.25)


def test_separable_pairs_score_one_and_scale_is_ignored():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 16, generator=gen)
    same = torch.arange(40) % 2 == 0
    y = torch.where(same[:, None], 3.0 * x, -x + 0.01 * torch.randn(40, 16, generator=gen))
    assert verification_accuracy(x, y, same) == 1.0
    random = torch.randn(40, 16, generator=gen)
    assert verification_accuracy(x, random, same) < 0.8


@settings(max_examples=20, deadline=None)
@given(st.integers(4, 30), st.integers(0, 1000), st.floats(0.1, 10.0))
def test_verification_invariant_to_embedding_scale(n, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 4, generator=gen), torch.randn(n, 4, generator=gen)
    same = torch.arange(n) % 2 == 0
    acc = verification_accuracy(a, b, same)
    assert acc == verification_accuracy(a * scale, b, same)
    assert 0.0 <= acc <= 1.0 and math.isfinite(acc)
    with pytest.raises(ValueError, match="at least 2"):
        verification_accuracy(a[:1], b[:1], same[:1])
