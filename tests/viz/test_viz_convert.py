"""Group graph <-> networkx: the DiGraph holds exactly the graph of one image."""
from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest
import torch
from _viz_helpers import build_graph, scene_images
from hypothesis import given, settings
from hypothesis import strategies as st

import pyg_hgconv as H
from pyg_hgconv import viz
from pyg_hgconv.utils.directions import OFFSETS, SELF_LOOP


def non_empty_groups(graph, index):
    """Groups of image ``index`` that received a pixel, counted from the assignment."""
    h, w = graph.image_size[0].tolist()
    pixel, group = graph.assign_index
    mine = (pixel // (h * w)) == index
    return torch.unique(group[mine]).numel()


def check_same_graph(nx_graph, data):
    """The DiGraph of ``to_networkx`` equals the single-image graph ``data``."""
    assert nx_graph.number_of_nodes() == data.num_nodes
    assert nx_graph.number_of_edges() == data.num_edges
    edges = {(u, v): attrs for u, v, attrs in nx_graph.edges(data=True)}
    for (u, v), t, w in zip(data.edge_index.t().tolist(), data.edge_type.tolist(),
                            data.edge_weight.tolist(), strict=True):
        assert edges[(u, v)]["edge_type"] == t
        assert edges[(u, v)]["edge_weight"] == w
        assert edges[(u, v)]["direction"] == viz.DIRECTION_NAMES[t]
    for g, attrs in nx_graph.nodes(data=True):
        assert attrs["pos"] == tuple(data.pos[g].tolist())
        assert attrs["mass"] == float(data.mass[g])


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 3), height=st.integers(8, 20), width=st.integers(8, 20),
       num_groups=st.integers(2, 24), seed=st.integers(0, 3))
def test_networkx_holds_the_graph_of_one_image_exactly(batch, height, width, num_groups, seed):
    images = scene_images(batch, (20, 20), seed)[:, :, :height, :width]
    graph = build_graph(images, num_groups=num_groups)
    for index in range(batch):
        data = graph[index]
        nx_graph = viz.to_networkx(graph, index)
        assert isinstance(nx_graph, nx.DiGraph) and not nx_graph.is_multigraph()
        # nodes = the non-empty groups of that image, edges = its edges
        assert nx_graph.number_of_nodes() == non_empty_groups(graph, index)
        check_same_graph(nx_graph, data)
        counts = Counter(t for *_, t in nx_graph.edges(data="edge_type"))
        assert counts == Counter(data.edge_type.tolist())
        assert nx.number_of_selfloops(nx_graph) == data.num_nodes  # identity self loops
        norms = data.x.norm(dim=1)
        for g, value in nx_graph.nodes(data="feature_norm"):
            assert value == pytest.approx(float(norms[g]), rel=1e-6)
        assert nx_graph.graph["image_size"] == (height, width)
        # ... and back: the tensors of that image, exactly
        back = viz.from_networkx(nx_graph)
        for key in ("edge_index", "edge_type", "edge_weight", "pos", "mass", "center_pixel",
                    "image_size"):
            assert torch.equal(getattr(back, key), getattr(data, key)), key


def test_directions_point_from_target_to_source_on_the_grid():
    grid = H.grid_graph(3, 4)
    nx_graph = viz.to_networkx(grid)
    assert nx_graph.number_of_nodes() == 12
    # 9 directions, each present where the shifted pixel stays inside the image
    assert nx_graph.number_of_edges() == sum((3 - abs(dy)) * (4 - abs(dx)) for dy, dx in OFFSETS)
    assert all("feature_norm" not in attrs for _, attrs in nx_graph.nodes(data=True))
    for u, v, t in nx_graph.edges(data="edge_type"):
        (xu, yu), (xv, yv) = nx_graph.nodes[u]["pos"], nx_graph.nodes[v]["pos"]
        assert (yu - yv, xu - xv) == OFFSETS[t]
    back = viz.from_networkx(nx_graph)
    assert torch.equal(back.edge_index, grid.edge_index)
    assert torch.equal(back.edge_type, grid.edge_type)


def test_self_loops_can_be_left_out(graph):
    with_loops = viz.to_networkx(graph, 1)
    without = viz.to_networkx(graph, 1, self_loops=False)
    assert nx.number_of_selfloops(without) == 0
    assert without.number_of_edges() == with_loops.number_of_edges() - graph[1].num_nodes
    assert viz.to_networkx(graph, -1).edges == with_loops.edges


def test_several_directions_per_pair_need_a_multigraph(images):
    graph = build_graph(images, max_direction=False)
    data = graph[0]
    with pytest.raises(ValueError, match="multigraph=True"):
        viz.to_networkx(graph, 0)
    multi = viz.to_networkx(graph, 0, multigraph=True)
    assert isinstance(multi, nx.MultiDiGraph)
    assert multi.number_of_edges() == data.num_edges
    back = viz.from_networkx(multi)
    assert torch.equal(back.edge_index, data.edge_index)
    assert torch.equal(back.edge_type, data.edge_type)
    assert torch.equal(back.edge_weight, data.edge_weight)


def test_bad_input(graph):
    with pytest.raises(TypeError, match="group graph"):
        viz.to_networkx(torch.zeros(3))
    with pytest.raises(TypeError, match="no \\["):
        viz.to_networkx(H.GroupGraph(edge_index=torch.zeros(2, 0, dtype=torch.long)))
    with pytest.raises(IndexError, match="out of range"):
        viz.to_networkx(graph, 2)
    with pytest.raises(TypeError, match="'index' must be an int"):
        viz.to_networkx(graph, True)
    relabelled = nx.relabel_nodes(viz.to_networkx(graph, 0), lambda n: n + 1)
    with pytest.raises(ValueError, match=r"0 \.\. N-1"):
        viz.from_networkx(relabelled)
    bare = nx.DiGraph()
    bare.add_edge(0, 1)
    with pytest.raises(ValueError, match="edge_type"):
        viz.from_networkx(bare)


def test_direction_names_follow_the_offsets():
    assert viz.DIRECTION_NAMES[SELF_LOOP] == "self"
    for t, (dy, dx) in enumerate(OFFSETS):
        name = viz.DIRECTION_NAMES[t]
        assert ("up" in name) == (dy < 0) and ("down" in name) == (dy > 0)
        assert ("left" in name) == (dx < 0) and ("right" in name) == (dx > 0)
