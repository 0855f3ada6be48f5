r"""Seeing the groups: networkx graphs and paper-style figures of HG-Conv group graphs.

* :mod:`~pyg_hgconv.viz.convert`: :func:`to_networkx` / :func:`from_networkx`
  (a group graph of one image <-> :class:`networkx.DiGraph`);
* :mod:`~pyg_hgconv.viz.maps`: the quantities the figures show, as tensors
  (importance map, centres, hard clustering, summed adjacency, the adjacency
  before/after noise-canceling);
* :mod:`~pyg_hgconv.viz.plots`: ``draw_*(ax, ...)`` into your axes and
  ``plot_*(graph, path, ...)`` that write a PNG atomically and return its path
  (the paper's Fig. 5 top left and Figs. 11, 12, 14);
* :mod:`~pyg_hgconv.viz.figure`: Agg figures without ``pyplot`` and atomic PNG writing.

matplotlib is imported lazily, inside the plotting functions. TVConv's
affinity maps (the TVConv paper's Fig. 6) are plotted by :mod:`tvconv.viz`.

Example::

    import pyg_hgconv as H
    from pyg_hgconv import viz

    graph = H.ImageToGroupGraph(ratio=1 / 64, learnable=False).eval()(image[None])
    G = viz.to_networkx(graph, 0)                  # networkx.DiGraph
    viz.plot_group_graph(graph, "graph.png", image=image)
    viz.plot_group_panels(graph, "panels.png", images=image[None])
    viz.plot_adjacency_matrices(graph, "adjacency.png")
"""
from pyg_hgconv.viz.convert import (
    DIRECTION_NAMES,
    canonical_edge_order,
    from_networkx,
    select_image,
    to_networkx,
)
from pyg_hgconv.viz.figure import display_image, new_figure, save_figure
from pyg_hgconv.viz.maps import (
    ADJACENCY_STAGES,
    adjacency_stages,
    boundary_segments,
    center_coordinates,
    dense_adjacency,
    group_labels,
    importance_image,
    summed_adjacency,
)
from pyg_hgconv.viz.plots import (
    AXIS_DIRECTIONS,
    DIRECTION_ARROWS,
    direction_colors,
    draw_background,
    draw_centers,
    draw_clustering,
    draw_direction_key,
    draw_group_graph,
    draw_importance,
    draw_summed_adjacency,
    plot_adjacency_matrices,
    plot_group_graph,
    plot_group_panels,
)

__all__ = [
    "ADJACENCY_STAGES",
    "AXIS_DIRECTIONS",
    "DIRECTION_ARROWS",
    "DIRECTION_NAMES",
    "adjacency_stages",
    "boundary_segments",
    "canonical_edge_order",
    "center_coordinates",
    "dense_adjacency",
    "direction_colors",
    "display_image",
    "draw_background",
    "draw_centers",
    "draw_clustering",
    "draw_direction_key",
    "draw_group_graph",
    "draw_importance",
    "draw_summed_adjacency",
    "from_networkx",
    "group_labels",
    "importance_image",
    "new_figure",
    "plot_adjacency_matrices",
    "plot_group_graph",
    "plot_group_panels",
    "save_figure",
    "select_image",
    "summed_adjacency",
    "to_networkx",
]
