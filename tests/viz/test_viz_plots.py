"""Figures: real PNGs written atomically, drawn from the graph's own numbers, no pyplot."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from _viz_helpers import assert_real_png

from pyg_hgconv import viz
from pyg_hgconv.utils.directions import SELF_LOOP


@pytest.fixture(autouse=True)
def no_pyplot():
    """Plotting never imports pyplot (no global figure state, no backend switch)."""
    loaded = "matplotlib.pyplot" in sys.modules
    yield
    assert loaded or "matplotlib.pyplot" not in sys.modules


def test_group_graph_drawing_shows_every_edge_in_its_direction_colour(graph, images):
    nx_graph = viz.to_networkx(graph, 1)
    _, axes = viz.new_figure()
    artists = viz.draw_group_graph(axes[0, 0], nx_graph, images[1])
    edges = [(u, v, t) for u, v, t in nx_graph.edges(data="edge_type")
             if u != v and t != SELF_LOOP]
    segments = artists["edges"].get_segments()
    colours = artists["edges"].get_colors()
    table = viz.direction_colors()
    assert len(segments) == len(edges) == graph[1].num_edges - graph[1].num_nodes
    for (u, v, t), segment, colour in zip(edges, segments, colours, strict=True):
        target, source = np.array(nx_graph.nodes[v]["pos"]), np.array(nx_graph.nodes[u]["pos"])
        np.testing.assert_allclose(segment[0], target, rtol=1e-6)  # starts at the target
        np.testing.assert_allclose(segment[1], (target + source) / 2, rtol=1e-6)
        np.testing.assert_allclose(colour[:3], table[t])
    offsets = artists["nodes"].get_offsets()
    np.testing.assert_allclose(offsets, graph[1].pos.numpy(), rtol=1e-6)
    legend = axes[0, 0].get_legend()
    assert [t.get_text().split()[-1] for t in legend.get_texts()] == \
        [n for n in viz.DIRECTION_NAMES if n != "self"]
    assert len(set(map(tuple, table))) == 9  # nine distinct colours


def test_plot_functions_write_real_pngs(graph, images, tmp_path):
    path = viz.plot_group_graph(graph, tmp_path / "graph.png", index=1, image=images[1],
                                dpi=60)
    assert path == tmp_path / "graph.png"
    assert_real_png(path, (400, 250))
    panels = viz.plot_group_panels(graph, tmp_path / "panels.png", images=images,
                                   row_titles=["a", "b"], dpi=60)
    pixels = assert_real_png(panels, (500, 200))
    assert pixels.shape[1] > 1.5 * pixels.shape[0]  # 4 panels side by side, 2 rows
    matrices = viz.plot_adjacency_matrices(graph, tmp_path / "adjacency.png",
                                           stages=viz.ADJACENCY_STAGES, max_groups=None, dpi=60)
    pixels = assert_real_png(matrices, (400, 300))
    assert pixels.shape[0] > pixels.shape[1] / 2  # 3 stages x 4 directions
    # rewriting replaces the file atomically, nothing else appears in the folder
    before = path.stat().st_mtime_ns
    viz.plot_group_graph(viz.to_networkx(graph, 0), path, dpi=40)
    assert path.stat().st_mtime_ns >= before
    assert_real_png(path, (250, 150))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adjacency.png", "graph.png",
                                                          "panels.png"]


def test_panels_draw_the_graph_numbers(graph, images):
    _, axes = viz.new_figure(1, 3)
    centres = viz.draw_centers(axes[0, 0], graph, images[0], 0)
    np.testing.assert_array_equal(centres.get_offsets(),
                                  viz.center_coordinates(graph, 0).numpy())
    lines = viz.draw_clustering(axes[0, 1], graph, images[0], 0)
    assert len(lines.get_segments()) == len(viz.boundary_segments(viz.group_labels(graph, 0)))
    summed = viz.draw_summed_adjacency(axes[0, 2], graph, None, 0)
    pairs, weight = viz.summed_adjacency(graph, 0)
    assert len(summed.get_segments()) == pairs.size(1)
    np.testing.assert_allclose(summed.get_array(), (weight / weight.max()).numpy(), rtol=1e-6)
    # overlays use the graph's pixel grid whatever the image size
    h, w = graph.image_size[0].tolist()
    big = torch.rand(3, 4 * h, 4 * w)
    viz.draw_background(axes[0, 0], (h, w), big)
    assert axes[0, 0].get_xlim() == (-0.5, w - 0.5)


def test_display_image_conventions():
    grey = viz.display_image(torch.full((1, 4, 5), 0.25))
    assert grey.shape == (4, 5, 3) and np.allclose(grey, 0.25)
    standardised = viz.display_image(torch.linspace(-2, 3, 12).view(3, 2, 2))
    assert standardised.min() == 0 and standardised.max() == 1
    assert np.allclose(viz.display_image(np.full((3, 3), 7.0)), 0.5)
    assert viz.display_image(np.full((2, 2, 3), 255, dtype=np.uint8)).max() == 1.0
    with pytest.raises(ValueError, match="image"):
        viz.display_image(torch.zeros(2, 5, 4, 4))
    with pytest.raises(TypeError, match="image"):
        viz.display_image([[0.0]])


def test_bad_arguments(graph, tmp_path):
    with pytest.raises(ValueError, match="png"):
        viz.plot_group_graph(graph, tmp_path / "graph.jpg")
    with pytest.raises(ValueError, match="stages"):
        viz.plot_adjacency_matrices(graph, tmp_path / "a.png", stages=("before",))
    with pytest.raises(ValueError, match="directions"):
        viz.plot_adjacency_matrices(graph, tmp_path / "a.png", directions=(4,))
    with pytest.raises(ValueError, match="max_groups"):
        viz.plot_adjacency_matrices(graph, tmp_path / "a.png", max_groups=0)
    with pytest.raises(ValueError, match="row_titles"):
        viz.plot_group_panels(graph, tmp_path / "p.png", row_titles=["only one"])
    with pytest.raises(ValueError, match="images"):
        viz.plot_group_panels(graph, tmp_path / "p.png", images=[None])
    with pytest.raises(TypeError, match="Axes"):
        viz.draw_group_graph(object(), graph)
    assert not list(tmp_path.iterdir())
