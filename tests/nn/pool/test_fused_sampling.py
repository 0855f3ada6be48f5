"""The fused sampler kernel (``pyg_hgconv::select_centers``) against the PyTorch
samplers, equal keys and importances included (both take them in index order),
shared and per-image keys; the tie rule against an independent reference; the
op's registration and argument checks."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv.nn.pool import fused_sampling
from pyg_hgconv.nn.pool.sampling import SAMPLERS, sample_centers
from tests.helpers.backends import kernels_backend, needs_kernels


@needs_kernels
@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 4), n=st.integers(1, 120), k=st.integers(1, 120),
       sampler=st.sampled_from(SAMPLERS), shared=st.booleans(),
       levels=st.sampled_from([1, 2, 5, None]), oversample=st.sampled_from([1.0, 2.5, 7.0]),
       beta=st.sampled_from([0.0, 0.5, 0.75, 1.0]), seed=st.integers(0, 2**16))
def test_the_fused_sampler_picks_the_pytorch_samplers_pixels(b, n, k, sampler, shared, levels,
                                                             oversample, beta, seed):
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    importance = torch.rand(b, n, generator=g)
    if levels is not None:  # few distinct values: many equal importances
        importance = (importance * levels).floor()
    options = dict(oversample=oversample, beta=beta, batch_invariant=shared)
    fused = sample_centers(importance, k, sampler, generator=torch.Generator().manual_seed(seed),
                           **options)
    with kernels_backend("pytorch"):
        reference = sample_centers(importance, k, sampler,
                                   generator=torch.Generator().manual_seed(seed), **options)
    assert torch.equal(fused, reference)
    assert fused.shape == (b, k)
    assert (fused.diff(dim=1) > 0).all()  # distinct pixels, sorted


@needs_kernels
def test_equal_keys_and_importances_go_to_the_lower_index():
    n = 10
    keys = torch.zeros(1, n)  # every key equal: the first pixels
    out = fused_sampling.fused_select_centers(keys, None, None, 2, 4, 0, 0)
    assert out.tolist() == [[0, 1, 2, 3]] * 2
    # PointRend: the candidates are the 6 largest keys (pixels 4..9 by key); among
    # equally important candidates the one with the larger key (earlier in the list)
    keys = torch.arange(n, dtype=torch.float32).view(1, n) / n
    importance = torch.zeros(1, n)
    importance[0, [5, 6, 8]] = 1.0
    rest = torch.full((1, n), 0.5)  # equal rest keys: the lowest free pixels
    out = fused_sampling.fused_select_centers(keys, importance, rest, 1, 5, 3, 6)
    # the 3 important candidates 8, 6, 5, then the lowest free pixels 0, 1
    assert out.tolist() == [[0, 1, 5, 6, 8]]
    out = fused_sampling.fused_select_centers(keys, importance, rest, 1, 5, 4, 6)
    # a fourth important one among the equally unimportant candidates 4, 7, 9: the
    # largest key, pixel 9
    assert out.tolist() == [[0, 5, 6, 8, 9]]


@needs_kernels
def test_the_op_passes_opcheck():
    g = torch.Generator().manual_seed(0)
    keys, rest = torch.rand(1, 50, generator=g), torch.rand(1, 50, generator=g)
    importance = torch.rand(3, 50, generator=g)
    op = torch.ops.pyg_hgconv.select_centers.default
    torch.library.opcheck(op, (keys, importance, rest, 3, 10, 7, 30))
    torch.library.opcheck(op, (torch.rand(3, 50, generator=g), None, None, 3, 10, 0, 0))


@needs_kernels
def test_bad_arguments_are_named():
    keys = torch.rand(1, 20)
    with pytest.raises(RuntimeError, match="'keys' must be a float32 tensor"):
        fused_sampling.fused_select_centers(keys.double(), None, None, 1, 5, 0, 0)
    with pytest.raises(RuntimeError, match="'keys' must be a float32 tensor"):
        fused_sampling.fused_select_centers(torch.rand(2, 20), None, None, 3, 5, 0, 0)
    with pytest.raises(RuntimeError, match="'num_centers' must lie in"):
        fused_sampling.fused_select_centers(keys, None, None, 1, 21, 0, 0)
    with pytest.raises(RuntimeError, match="'importance' and 'rest_keys' come together"):
        fused_sampling.fused_select_centers(keys, torch.rand(1, 20), None, 1, 5, 2, 8)
    with pytest.raises(RuntimeError, match="'importance' must be"):
        fused_sampling.fused_select_centers(keys, torch.rand(2, 20), keys, 1, 5, 2, 8)
    with pytest.raises(RuntimeError, match="num_important"):
        fused_sampling.fused_select_centers(keys, torch.rand(1, 20), keys, 1, 5, 6, 8)
