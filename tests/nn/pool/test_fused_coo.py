"""The fused coordinate form of the tiled assignment (``pyg_hgconv::tiles_to_coo``)
against an explicit walk over the pixels and against the PyTorch path."""
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv.nn.pool import fused_coo
from pyg_hgconv.nn.pool.tiling import TiledAssignment
from tests.helpers.assignments import random_tiled

needs_fused = pytest.mark.skipif(fused_coo.BACKEND != "fused", reason="fused kernel not built")


def walk(assignment):
    """(pixel, group, weight) of every non-zero, pixel by pixel, slot by slot."""
    grid = assignment.grid
    rows = []
    for b in range(grid.batch_size):
        for y in range(grid.height):
            for x in range(grid.width):
                tile = (b * grid.tiles_y + y // grid.tile_h) * grid.tiles_x + x // grid.tile_w
                pos = (y % grid.tile_h) * grid.tile_w + x % grid.tile_w
                for j in range(assignment.candidates.size(1)):
                    w = float(assignment.weight[tile, j, pos])
                    if w > 0:
                        rows.append((b * grid.height * grid.width + y * grid.width + x,
                                     int(assignment.candidates[tile, j]), w))
    return rows


@needs_fused
@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(1, 8), width=st.integers(1, 9),
       tile_h=st.integers(1, 4), tile_w=st.integers(1, 5), groups=st.integers(1, 6),
       m=st.integers(1, 5), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**16))
def test_the_fused_coo_equals_a_walk_over_the_pixels_and_the_pytorch_path(
        batch, height, width, tile_h, tile_w, groups, m, dtype, seed):
    tiled = random_tiled(batch, height, width, tile_h, tile_w, groups, m, seed)
    tiled = TiledAssignment(tiled.grid, tiled.candidates, tiled.weight.to(dtype),
                            tiled.num_groups)
    assert fused_coo.fused_coo_applies(tiled.weight)
    index, weight = tiled.to_coo()
    expected = walk(tiled)
    assert index.T.tolist() == [[p, g] for p, g, _ in expected]
    torch.testing.assert_close(weight, torch.tensor([w for *_, w in expected], dtype=dtype))
    with mock.patch.object(fused_coo, "BACKEND", "pytorch"):
        ref_index, ref_weight = tiled.to_coo()
    assert torch.equal(index, ref_index)
    assert torch.equal(weight, ref_weight)


@needs_fused
def test_a_gradient_takes_the_differentiable_path():
    tiled = random_tiled(2, 4, 5, 2, 3, 3, 2, 0)
    weight = tiled.weight.clone().requires_grad_()
    tiled = TiledAssignment(tiled.grid, tiled.candidates, weight, tiled.num_groups)
    assert not fused_coo.fused_coo_applies(weight)
    _, values = tiled.to_coo()
    values.sum().backward()
    assert weight.grad is not None


@needs_fused
def test_the_op_passes_opcheck():
    tiled = random_tiled(2, 5, 6, 2, 3, 4, 3, 1)
    grid = tiled.grid
    torch.library.opcheck(torch.ops.pyg_hgconv.tiles_to_coo.default,
                          (tiled.weight.float(), tiled.candidates, grid.batch_size, grid.height,
                           grid.width, grid.tile_h, grid.tile_w))
