"""The tiled (block-sparse) assignment: layout, Eqs. 5-6 against the coordinate
form and dense references, and what a group graph keeps of it."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch

from pyg_hgconv import HGConvModule, ImageToGroupGraph, grid_graph, pool, unpool
from pyg_hgconv.nn.pool.pooling import unpool_features
from pyg_hgconv.nn.pool.tiling import TiledAssignment, TileGrid, tiled_assignment_of
from tests.helpers.assignments import random_assignment, random_tiled
from tests.helpers.images import structured_image

shapes = dict(batch=st.integers(1, 2), height=st.integers(1, 9), width=st.integers(1, 9),
              tile_h=st.integers(1, 4), tile_w=st.integers(1, 5))


@settings(max_examples=30, deadline=None)
@given(channels=st.integers(1, 3), **shapes)
def test_tiles_round_trip_and_padding(batch, channels, height, width, tile_h, tile_w):
    grid = TileGrid(batch, height, width, min(tile_h, height), min(tile_w, width))
    x = torch.randn(batch, channels, height, width)
    tiles = grid.to_tiles(x)
    assert tiles.shape == (grid.num_tiles, channels, grid.tile_pixels)
    assert torch.equal(grid.from_tiles(tiles), x)
    valid = grid.valid()
    assert valid.shape == (grid.num_tiles, 1, grid.tile_pixels)
    assert int(valid.sum()) == batch * height * width
    assert torch.equal(tiles * valid, tiles)  # padding is zero
    # pixel-major view: row p of to_pixels is pixel p (b, y, x) row-major
    assert torch.equal(grid.to_pixels(tiles), x.permute(0, 2, 3, 1).reshape(-1, channels))
    # origins and local positions give every pixel's coordinates back
    local, origins = grid.local_yx(), grid.origins().repeat(batch, 1)
    yx = origins.unsqueeze(2) + local.unsqueeze(0)  # [T, 2, P]
    ys, xs = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)),
                            indexing="ij")
    expected = torch.stack([ys, xs]).expand(batch, -1, -1, -1)
    assert torch.equal(grid.from_tiles(yx * valid), expected)


@settings(max_examples=30, deadline=None)
@given(groups=st.integers(1, 5), m=st.integers(1, 4), seed=st.integers(0, 2**16), **shapes)
def test_tiled_pool_and_unpool_equal_the_dense_equations(batch, height, width, tile_h, tile_w,
                                                         groups, m, seed):
    assignment = random_tiled(batch, height, width, tile_h, tile_w, groups, m, seed)
    index, weight = assignment.to_coo()
    n_pix, n = batch * height * width, assignment.num_groups
    s = torch.zeros(n_pix, n, dtype=torch.float64)
    s[index[0], index[1]] = weight
    assert torch.equal(index[0], index[0].sort().values)  # sorted by pixel
    x = torch.randn(batch, 3, height, width, dtype=torch.float64)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3)
    mass = s.sum(0)
    torch.testing.assert_close(assignment.mass(), mass)
    # Eq. 5: S_bar^T X (groups without pixels get zeros)
    s_bar = s / mass.clamp_min(1e-12)
    torch.testing.assert_close(assignment.pool(x), s_bar.T @ pixels)
    torch.testing.assert_close(assignment.pool(x), pool(pixels, index, weight, n))
    # Eq. 6: S_tilde X' back to the grid
    z = torch.randn(n, 4, dtype=torch.float64)
    s_tilde = s / s.sum(1, keepdim=True).clamp_min(1e-12)
    out = assignment.unpool(z)
    torch.testing.assert_close(out.permute(0, 2, 3, 1).reshape(-1, 4), s_tilde @ z)
    torch.testing.assert_close(out.permute(0, 2, 3, 1).reshape(-1, 4),
                               unpool_features(z, index, weight, n_pix))
    # centroids: Eq. 5 on the (x, y) pixel coordinates
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    xy = torch.stack([xs, ys], -1).reshape(-1, 2).double().repeat(batch, 1)
    torch.testing.assert_close(assignment.centroids(), s_bar.T @ xy)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 2), height=st.integers(1, 5), width=st.integers(1, 5),
       groups=st.integers(1, 4), max_nnz=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_coordinate_form_round_trip(batch, height, width, groups, max_nnz, seed):
    index, weight, n = random_assignment(batch, height, width, groups, max_nnz, seed)
    assignment = TiledAssignment.from_coo(index, weight, batch, height, width, n)
    back_index, back_weight = assignment.to_coo()
    assert torch.equal(back_index, index)
    torch.testing.assert_close(back_weight, weight)


def test_pooling_is_differentiable_in_features_and_weights():
    assignment = random_tiled(1, 3, 4, 2, 3, 3, 2, seed=5)
    weight = assignment.weight.clone().requires_grad_()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    z = torch.randn(assignment.num_groups, 2, dtype=torch.float64, requires_grad=True)

    def run(weight, x, z):
        tiled = TiledAssignment(assignment.grid, assignment.candidates, weight,
                                assignment.num_groups)
        return tiled.pool(x).sum() + tiled.unpool(z).square().sum()

    assert torch.autograd.gradcheck(run, (weight, x, z))


def test_bad_inputs_are_named():
    assignment = random_tiled(1, 3, 4, 2, 2, 3, 2, seed=0)
    with pytest.raises(ValueError, match="'x'"):
        assignment.pool(torch.randn(1, 2, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="'z'"):
        assignment.unpool(torch.randn(assignment.num_groups + 1, 2))
    with pytest.raises(TypeError, match="'x'"):
        assignment.pool(torch.ones(1, 2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="tile_w"):
        TileGrid(1, 3, 4, 2, 0)
    with pytest.raises(TypeError, match="height"):
        TileGrid(1, 3.5, 4, 2, 2)
    with pytest.raises(ValueError, match="weight"):
        TiledAssignment(assignment.grid, assignment.candidates, assignment.weight[..., :-1],
                        assignment.num_groups)
    with pytest.raises(ValueError, match="candidates"):
        TiledAssignment(assignment.grid, assignment.candidates[:-1], assignment.weight,
                        assignment.num_groups)
    with pytest.raises(ValueError, match="candidates"):
        TiledAssignment(assignment.grid, assignment.candidates + assignment.num_groups,
                        assignment.weight, assignment.num_groups).validate()
    index, weight = assignment.to_coo()
    with pytest.raises(TypeError, match="assign_index"):
        TiledAssignment.from_coo(index.float(), weight, 1, 3, 4, assignment.num_groups)
    with pytest.raises(ValueError, match="assign_weight"):
        TiledAssignment.from_coo(index, weight[:-1], 1, 3, 4, assignment.num_groups)


def test_the_tiled_assignment_is_a_declared_attribute_that_survives_pyg_operations():
    image = structured_image(2, 3, 16, 20)
    transform = ImageToGroupGraph(ratio=1 / 16, learnable=False).eval()
    graph = transform(image)
    tiled = tiled_assignment_of(graph)
    assert tiled is not None and tiled.num_groups == graph.num_nodes
    z = torch.randn(graph.num_nodes, 5)
    fast = unpool(z, graph)
    # the coordinate form gives the same unpooling (the two are one matrix)
    coordinate = graph.clone()
    del coordinate.tile_weight
    assert tiled_assignment_of(coordinate) is None
    torch.testing.assert_close(unpool(z, coordinate), fast)
    # .to(), .clone(), indexing and collation keep it, with local indices
    for same in (graph.to("cpu"), graph.clone(),
                 Batch.from_data_list(graph.to_data_list())):
        assert tiled_assignment_of(same) is not None
        torch.testing.assert_close(unpool(z, same), fast)
    for i, one in enumerate(graph.to_data_list()):
        part = tiled_assignment_of(one)
        assert part is not None and part.num_groups == one.num_nodes
        rows = slice(int(graph.ptr[i]), int(graph.ptr[i + 1]))
        torch.testing.assert_close(unpool(z[rows], one), fast[i:i + 1])
        assert int(one.tile_candidates.min()) >= 0
        assert int(one.tile_candidates.max()) < one.num_nodes
    # grid graphs have only the coordinate form
    assert tiled_assignment_of(grid_graph(3, 4)) is None


def test_module_pools_a_second_map_with_the_graph_of_the_first():
    torch.manual_seed(0)
    module = HGConvModule(3, num_layers=1, ratio=1 / 16).eval()
    image = structured_image(2, 3, 16, 20)
    _, graph = module(image, return_graph=True)
    other = torch.randn_like(image)
    pixels = other.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = pool(pixels, graph.assign_index, graph.assign_weight, graph.num_nodes)
    torch.testing.assert_close(module.pool_with(other, graph), expected)


@pytest.mark.parametrize("num_candidates", [1, 9, 12, 16])
def test_default_tiles_are_a_spacing_tall_and_two_wide(num_candidates):
    grid = TileGrid.for_spacing(2, 64, 80, 8.2, num_candidates)
    assert (grid.tile_h, grid.tile_w) == ((8, 16) if num_candidates >= 12 else (8, 8))
    assert ImageToGroupGraph().num_candidates == 12
    # capped at the image
    assert TileGrid.for_spacing(1, 3, 5, 8.0).tile_h == 3
    assert TileGrid.for_spacing(1, 3, 5, 8.0).tile_w == 5
