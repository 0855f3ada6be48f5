"""Importance maps, active focus (Eqs. 11-13) and the centre samplers."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import focus_map, importance_map, object_attention, uncertainty_attention
from pyg_hgconv.nn.pool.sampling import sample_centers


def importance_reference(x):
    b, _, h, w = x.shape
    out = torch.zeros(b, h, w, dtype=x.dtype)
    for y in range(h):
        for xx in range(w):
            dists = [(x[:, :, y, xx] - x[:, :, y + dy, xx + dx]).norm(dim=1)
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if (dy, dx) != (0, 0) and 0 <= y + dy < h and 0 <= xx + dx < w]
            if dists:
                out[:, y, xx] = torch.stack(dists).mean(0)
    return out


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 3), seed=st.integers(0, 99))
def test_importance_map_matches_the_neighbour_mean(h, w, c, seed):
    torch.manual_seed(seed)
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    torch.testing.assert_close(importance_map(x), importance_reference(x))


def test_focus_map_is_eq_11():
    imp = torch.rand(2, 5, 6) * 3
    attn = torch.rand(2, 1, 5, 6)
    expected = imp / imp.flatten(1).amax(1).view(-1, 1, 1) + 10 * attn[:, 0]
    torch.testing.assert_close(focus_map(imp, attn), expected)
    flat = focus_map(torch.zeros(1, 4, 4), torch.ones(1, 1, 4, 4), alpha=2.0)
    torch.testing.assert_close(flat, torch.full((1, 4, 4), 2.0))


def test_attention_maps_eq_12_13():
    probs = torch.softmax(torch.randn(2, 4, 3, 3), dim=1)
    torch.testing.assert_close(object_attention(probs, 2), probs[:, 2:3])
    entropy = -(probs * probs.log()).sum(1, keepdim=True) / math.log(4)
    torch.testing.assert_close(uncertainty_attention(probs), entropy)
    uniform = torch.full((1, 4, 2, 2), 0.25)
    one_hot = torch.zeros(1, 4, 2, 2)
    one_hot[:, 1] = 1.0
    torch.testing.assert_close(uncertainty_attention(uniform), torch.ones(1, 1, 2, 2))
    torch.testing.assert_close(uncertainty_attention(one_hot), torch.zeros(1, 1, 2, 2))
    binary = torch.tensor([0.5, 1.0, 0.0]).view(1, 1, 1, 3)
    torch.testing.assert_close(uncertainty_attention(binary), torch.tensor([1.0, 0, 0]).view(
        1, 1, 1, 3))
    with pytest.raises(ValueError, match="probabilities"):
        uncertainty_attention(torch.randn(1, 3, 2, 2) * 5)
    with pytest.raises(ValueError, match="class_index"):
        object_attention(probs, 4)


@pytest.mark.parametrize("sampler", ["random", "importance", "topk_random"])
def test_samplers_draw_distinct_sorted_pixels(sampler):
    imp = torch.rand(3, 200)
    g = torch.Generator().manual_seed(0)
    idx = sample_centers(imp, 50, sampler, generator=g)
    assert idx.shape == (3, 50)
    assert all(row.unique().numel() == 50 for row in idx)
    assert (idx[:, 1:] > idx[:, :-1]).all()
    again = sample_centers(imp, 50, sampler, generator=torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)
    # flat importance (a constant image) still works
    assert sample_centers(torch.zeros(1, 30), 30, sampler).unique().numel() == 30


def test_importance_driven_samplers_prefer_important_pixels():
    imp = torch.zeros(1, 1000)
    imp[0, :200] = 1.0  # 20% of the pixels are important
    g = torch.Generator().manual_seed(0)
    weighted = sample_centers(imp, 40, "importance", generator=g)
    topk = sample_centers(imp, 40, "topk_random", oversample=7, beta=0.75, generator=g)
    random = sample_centers(imp, 40, "random", generator=g)
    share = lambda idx: (idx < 200).float().mean().item()  # noqa: E731
    assert share(weighted) > 0.9
    # PointRend: the kK = 280 candidates hold ~56 important pixels, so all
    # beta*K = 30 importance-driven centres are important; the other 10 are uniform
    assert 0.75 <= share(topk) < 0.95
    assert share(random) < 0.4


def test_sampler_errors():
    with pytest.raises(ValueError, match="sampler"):
        sample_centers(torch.rand(1, 10), 3, "grid")
    with pytest.raises(ValueError, match="num_centers"):
        sample_centers(torch.rand(1, 10), 11)
    with pytest.raises(ValueError, match="beta"):
        sample_centers(torch.rand(1, 10), 3, beta=1.5)
