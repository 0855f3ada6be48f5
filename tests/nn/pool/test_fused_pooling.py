"""The fused pooling (Eq. 5) and unpooling (Eq. 6) kernels on channels-last maps
against a dense S and against the batched products of the PyTorch path."""
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv.nn.pool import fused_pooling
from pyg_hgconv.nn.pool.tiling import TiledAssignment
from tests.helpers.assignments import random_tiled

needs_fused = pytest.mark.skipif(fused_pooling.BACKEND != "fused",
                                 reason="fused kernel not built")


def dense(tiled):
    """``[N_pix, N_grp]`` S from the coordinate form."""
    index, weight = tiled.to_coo()
    s = torch.zeros(tiled.grid.batch_size * tiled.grid.height * tiled.grid.width,
                    tiled.num_groups, dtype=weight.dtype)
    return s.index_put((index[0], index[1]), weight)


@needs_fused
@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(1, 8), width=st.integers(1, 9),
       tile_h=st.integers(1, 4), tile_w=st.integers(1, 5), groups=st.integers(1, 6),
       m=st.integers(1, 5), channels=st.integers(1, 40),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_fused_pooling_and_unpooling_equal_a_dense_s_and_the_pytorch_path(
        batch, height, width, tile_h, tile_w, groups, m, channels, dtype, seed):
    tiled = random_tiled(batch, height, width, tile_h, tile_w, groups, m, seed)
    tiled = TiledAssignment(tiled.grid, tiled.candidates, tiled.weight.to(dtype),
                            tiled.num_groups)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=g, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    z = torch.randn(tiled.num_groups, channels, generator=g, dtype=dtype)
    assert fused_pooling.fused_pool_applies(x, tiled.weight)
    pooled, unpooled = tiled.pool(x), tiled.unpool(z)
    assert unpooled.is_contiguous(memory_format=torch.channels_last)

    s = dense(tiled)
    x_pix = x.permute(0, 2, 3, 1).reshape(-1, channels)
    mass = s.sum(0, keepdim=True).T
    expected_pool = torch.where(mass > 0, s.T @ x_pix / mass.clamp_min(1e-300), 0.0)
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(pooled, expected_pool, **tolerance)
    rows = s / s.sum(1, keepdim=True).clamp_min(1e-300)
    expected_unpool = (rows @ z).view(batch, height, width, channels).permute(0, 3, 1, 2)
    torch.testing.assert_close(unpooled, expected_unpool, **tolerance)

    with mock.patch.object(fused_pooling, "BACKEND", "pytorch"):
        torch.testing.assert_close(pooled, tiled.pool(x), **tolerance)
        torch.testing.assert_close(unpooled, tiled.unpool(z), **tolerance)


@needs_fused
def test_contiguous_maps_and_gradients_take_the_pytorch_path():
    tiled = random_tiled(2, 5, 6, 2, 3, 4, 3, 0)
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    assert not fused_pooling.fused_pool_applies(x, tiled.weight)  # contiguous, C > 1
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    assert not fused_pooling.fused_pool_applies(x_cl, tiled.weight)
    tiled.pool(x_cl).sum().backward()
    assert x_cl.grad is not None
    z = torch.randn(tiled.num_groups, 8, dtype=torch.float64, requires_grad=True)
    assert not fused_pooling.fused_unpool_applies(z, tiled.weight)
    tiled.unpool(z).sum().backward()
    assert z.grad is not None


@needs_fused
def test_the_ops_pass_opcheck():
    tiled = random_tiled(2, 5, 6, 2, 3, 4, 3, 1)
    grid = tiled.grid
    weight = tiled.weight.float()
    x = torch.randn(2, 7, 5, 6).contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.pyg_hgconv.pool_channels_last.default,
                          (x, weight, tiled.candidates, tiled.num_groups, grid.tile_h,
                           grid.tile_w, 1e-12))
    torch.library.opcheck(torch.ops.pyg_hgconv.unpool_channels_last.default,
                          (torch.randn(tiled.num_groups, 7), weight, tiled.candidates,
                           grid.batch_size, grid.height, grid.width, grid.tile_h, grid.tile_w,
                           1e-12))
