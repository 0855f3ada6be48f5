"""The quantities the figures show, against dense references built from the stored graph."""
from __future__ import annotations

import pytest
import torch
from _viz_helpers import build_graph

import pyg_hgconv as H
from pyg_hgconv import viz
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES, finalize_adjacency
from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE, EDGE_THRESHOLD
from pyg_hgconv.utils.directions import NUM_DIRECTIONS, SELF_LOOP


def dense_assignment(data):
    """``S`` of one image as a dense ``[H*W, N]`` matrix."""
    h, w = data.image_size[0].tolist()
    s = torch.zeros(h * w, data.num_nodes)
    s[data.assign_index[0], data.assign_index[1]] = data.assign_weight
    return s


def dense_typed(edges, num_nodes):
    """``[9, N, N]`` with ``[t, target, source]`` = weight."""
    edge_index, edge_type, edge_weight = edges
    out = torch.zeros(NUM_DIRECTIONS, num_nodes, num_nodes)
    out.index_put_((edge_type, edge_index[1], edge_index[0]), edge_weight, accumulate=True)
    return out


def test_maps_read_the_stored_graph(graph):
    for index in range(graph.num_graphs):
        data = graph[index]
        h, w = data.image_size[0].tolist()
        assert torch.equal(viz.importance_image(graph, index), data.importance.view(h, w))
        xy = viz.center_coordinates(graph, index)
        assert torch.equal(xy[:, 1] * w + xy[:, 0], data.center_pixel)
        labels = viz.group_labels(graph, index)
        # each pixel's strongest group (first on ties), all groups non-empty
        s = dense_assignment(data)
        best = s.max(1, keepdim=True).values
        first = torch.where(s == best, torch.arange(data.num_nodes), data.num_nodes).amin(1)
        assert torch.equal(labels.view(-1), first)
        assert labels.min() >= 0 and labels.max() < data.num_nodes


def test_labels_and_boundaries_of_the_pixel_grid():
    grid = H.grid_graph(3, 5)
    labels = viz.group_labels(grid)
    assert torch.equal(labels, torch.arange(15).view(3, 5))
    segments = viz.boundary_segments(labels)
    assert segments.shape == (3 * 4 + 2 * 5, 2, 2)
    # unit segments on the pixel edges (half-integer lines), inside the image
    lengths = (segments[:, 1] - segments[:, 0]).norm(dim=1)
    assert torch.allclose(lengths, torch.ones_like(lengths))
    assert segments.min() >= -0.5 and segments[..., 0].max() <= 4.5
    assert viz.boundary_segments(torch.zeros(4, 4, dtype=torch.long)).shape == (0, 2, 2)
    with pytest.raises(TypeError, match="labels"):
        viz.boundary_segments(torch.zeros(4, 4))


def test_summed_adjacency_sums_all_directions_both_ways(graph):
    data = graph[1]
    pairs, weight = viz.summed_adjacency(graph, 1)
    assert (pairs[0] < pairs[1]).all()
    edges = (data.edge_index, data.edge_type, data.edge_weight)
    dense = dense_typed(edges, data.num_nodes)
    dense[SELF_LOOP] = 0
    total = dense.sum(0)
    total = total + total.t()
    total.fill_diagonal_(0)
    expected = torch.zeros_like(total)
    expected[pairs[0], pairs[1]] = weight
    torch.testing.assert_close(expected, total.triu())


@pytest.mark.parametrize("kwargs", [{"max_direction": False}] + [
    {"direction_rule": rule} for rule in DIRECTION_RULES])
def test_stages_recompute_the_stored_adjacency(images, kwargs):
    graph = build_graph(images, **kwargs)
    rule = kwargs.get("direction_rule", DIRECTION_RULE)
    for index in range(graph.num_graphs):
        data = graph[index]
        n = data.num_nodes
        stages = viz.adjacency_stages(graph, index, direction_rule=rule)
        assert tuple(stages) == viz.ADJACENCY_STAGES
        last = stages["noise_canceled" if "max_direction" in kwargs else "max_direction"]
        edge_index, edge_type, edge_weight = finalize_adjacency(*last, n, EDGE_THRESHOLD)
        assert torch.equal(edge_index, data.edge_index)
        assert torch.equal(edge_type, data.edge_type)
        torch.testing.assert_close(edge_weight, data.edge_weight)
        # Eq. 7 entry by entry: A <- max(0, A - A_opposite)
        raw = dense_typed(stages["raw"], n)
        canceled = dense_typed(stages["noise_canceled"], n)
        torch.testing.assert_close(canceled, (raw - raw.flip(0)).clamp_min(0))
        for stage, edges in stages.items():
            dense = dense_typed(edges, n)
            for t in (1, 3, 5, 7):
                torch.testing.assert_close(viz.dense_adjacency(edges, t, n), dense[t],
                                           msg=stage)


def test_dense_adjacency_is_target_by_source():
    edges = (torch.tensor([[2], [0]]), torch.tensor([5]), torch.tensor([0.5]))  # 2 -> 0
    dense = viz.dense_adjacency(edges, 5, 3)
    assert dense[0, 2] == 0.5 and dense.sum() == 0.5
    assert viz.dense_adjacency(edges, 3, 3).sum() == 0
    with pytest.raises(ValueError, match="direction"):
        viz.dense_adjacency(edges, 9, 3)


def test_missing_attributes_are_named():
    grid = H.grid_graph(2, 2)
    with pytest.raises(ValueError, match="importance"):
        viz.importance_image(grid)
