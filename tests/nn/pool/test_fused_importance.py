"""The fused importance-map kernel (``pyg_hgconv::importance_map``) against the
PyTorch path (bit for bit on one-channel maps) and an independent loop over the
neighbours; contiguous and channels-last maps; its registration."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv.nn.pool import fused_importance
from pyg_hgconv.nn.pool.importance import importance_map
from tests.helpers.backends import kernels_backend, needs_kernels


def neighbour_loop(x):
    """Mean L2 distance of every pixel to its up to eight neighbours, by loops."""
    b, _, h, w = x.shape
    out = torch.zeros(b, h, w, dtype=x.dtype)
    for y in range(h):
        for i in range(w):
            dists = [(x[:, :, y, i] - x[:, :, ny, nx]).norm(dim=1)
                     for ny in range(y - 1, y + 2) for nx in range(i - 1, i + 2)
                     if (ny, nx) != (y, i) and 0 <= ny < h and 0 <= nx < w]
            if dists:
                out[:, y, i] = torch.stack(dists).mean(0)
    return out


@needs_kernels
@settings(max_examples=60, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       channels_last=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**16))
def test_the_fused_map_equals_the_pytorch_path(b, c, h, w, channels_last, dtype, seed):
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert fused_importance.fused_importance_applies(x)
    fused = importance_map(x)
    with kernels_backend("pytorch"):
        reference = importance_map(x)
    if c == 1:  # the same additions in the same order
        assert torch.equal(fused, reference)
    else:
        torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(fused, neighbour_loop(x.double()).to(dtype))


@needs_kernels
def test_the_op_passes_opcheck():
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.library.opcheck(torch.ops.pyg_hgconv.importance_map.default, (x,))
    torch.library.opcheck(torch.ops.pyg_hgconv.importance_map.default,
                          (x.contiguous(memory_format=torch.channels_last),))


@needs_kernels
def test_bad_input_is_named():
    with pytest.raises(RuntimeError, match="'x' must be"):
        fused_importance.fused_importance_map(torch.rand(3, 4, 5))
