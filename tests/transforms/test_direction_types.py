"""DirectionTypes: HG-Conv's nine types for any graph with positions; exactly
grid_graph's types on the pixel grid; HGConv then runs on PyG's superpixels."""
import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data

from pyg_hgconv import SELF_LOOP, DirectionTypes, HGConv, grid_graph
from tests.helpers.images import structured_image


def as_set(edge_index, edge_type):
    return set(zip(edge_index[0].tolist(), edge_index[1].tolist(), edge_type.tolist(),
                   strict=True))


def test_reproduces_the_grid_graph_types():
    grid = grid_graph(5, 6)
    no_types = Data(pos=grid.pos, edge_index=grid.edge_index[:, grid.edge_type != SELF_LOOP],
                    num_nodes=30)
    typed = DirectionTypes()(no_types)
    assert as_set(typed.edge_index, typed.edge_type) == as_set(grid.edge_index, grid.edge_type)
    assert torch.equal(typed.edge_weight, torch.ones(typed.edge_index.size(1)))


def test_hgconv_runs_on_pyg_superpixels():
    image = structured_image(1, 1, 28, 28)[0]
    graph = T.Compose([T.ToSLIC(n_segments=40), T.KNNGraph(k=6), DirectionTypes()])(image)
    assert graph.edge_type.min() >= 0 and graph.edge_type.max() <= 8
    loops = graph.edge_index[0] == graph.edge_index[1]
    assert loops.sum() == graph.num_nodes and (graph.edge_type[loops] == SELF_LOOP).all()
    out = HGConv(1, 4)(graph.x, graph.edge_index, graph.edge_type, graph.edge_weight)
    assert out.shape == (graph.num_nodes, 4) and torch.isfinite(out).all()


def test_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="pos"):
        DirectionTypes()(Data(edge_index=torch.zeros(2, 1, dtype=torch.long), num_nodes=1))
    with pytest.raises(ValueError, match="edge_index"):
        DirectionTypes()(Data(pos=torch.rand(3, 2)))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        DirectionTypes()(Data(pos=torch.rand(3, 3), edge_index=torch.zeros(2, 1).long()))
    with pytest.raises(ValueError, match="edge_attr"):
        DirectionTypes()(Data(pos=torch.rand(3, 2), edge_index=torch.tensor([[0], [1]]),
                              edge_attr=torch.rand(1, 2)))
    with pytest.raises(TypeError, match="Data"):
        DirectionTypes()(torch.rand(3, 2))
