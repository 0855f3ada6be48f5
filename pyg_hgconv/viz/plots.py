r"""Paper-style figures of group graphs (HG-Conv paper, Fig. 5 top left and Figs. 11/12/14).

Two layers of functions:

* ``draw_*(ax, ...)`` draw into a matplotlib ``Axes`` you own (compose your
  own figures with :func:`~pyg_hgconv.viz.figure.new_figure`);
* ``plot_*(graph, path, ...)`` build a whole figure, write it as a PNG
  atomically and return the path.

Coordinates are the pixels of the grid the graph was built on (``image_size``):
an image of another size (e.g. the input frame of a network whose group
graph lives on a stride-8 feature map) is stretched over that grid, so
overlays always line up.

Edge colours encode the direction type :math:`\delta` by its angle, on a
colour wheel (:func:`direction_colors`): an edge ``u -> v`` of type
:math:`\delta` means that ``u`` lies at :math:`\delta` from ``v``. In
:func:`draw_group_graph` every edge is drawn as the half segment from its
target ``v`` towards its source ``u``, so the two halves of a pair show both
directions (they have opposite types, :math:`\bar\delta = 8 - \delta`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch_geometric.data import Batch, Data

from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE
from pyg_hgconv.utils.directions import NUM_DIRECTIONS, SELF_LOOP
from pyg_hgconv.viz.convert import (
    DIRECTION_NAMES,
    _num_images,
    image_size_of,
    select_image,
    to_networkx,
)
from pyg_hgconv.viz.figure import as_numpy, display_image, new_figure, save_figure
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

#: arrows for the legend, one per direction type (row-major, like ``OFFSETS``)
DIRECTION_ARROWS = ("↖", "↑", "↗", "←", "•", "→", "↙", "↓", "↘")
#: the four axis-aligned directions of Fig. 5 (top left): up, left, right, down
AXIS_DIRECTIONS = (1, 3, 5, 7)
#: row labels of :func:`plot_adjacency_matrices`
STAGE_TITLES = {"raw": "before noise-canceling (Eq. 4)",
                "noise_canceled": "after noise-canceling (Eq. 7)",
                "max_direction": "strongest direction only"}
#: column titles of :func:`plot_group_panels` (the order of the paper's Figs. 11/12/14)
PANEL_TITLES = ("importance map", "cluster centres", "clustering", "adjacency (summed)")

ImageLike = Tensor | np.ndarray


#: distinct colours placed around the colour wheel by the angle of each direction
#: (matplotlib's tab10: right red, up-right orange, up olive, up-left green, left cyan,
#: down-left blue, down purple, down-right pink), self loop grey
_DIRECTION_HEX = ("#2ca02c", "#bcbd22", "#ff7f0e", "#17becf", "#7f7f7f", "#d62728",
                  "#1f77b4", "#9467bd", "#e377c2")


def direction_colors() -> list[tuple[float, float, float]]:
    """RGB colour of each direction type 0..8, in ``[0, 1]``.

    The colours follow the angle of the displacement around the colour wheel
    (right red, up-right orange, up olive, up-left green, left cyan, down-left
    blue, down purple, down-right pink), so neighbouring directions have
    neighbouring hues; the self loop is grey.
    """
    return [tuple(int(h[i:i + 2], 16) / 255.0 for i in (1, 3, 5)) for h in _DIRECTION_HEX]


def _check_axes(ax: Any) -> None:
    if not hasattr(ax, "imshow") or not hasattr(ax, "add_collection"):
        raise TypeError(f"'ax' must be a matplotlib Axes (got {type(ax).__name__})")


def draw_background(ax: Any, size: tuple[int, int], image: ImageLike | None = None, *,
                    dim: float = 0.0) -> None:
    """Show ``image`` stretched over the ``(H, W)`` pixel grid of a graph (or a blank
    grid), with image axes (y down), no ticks and equal aspect.

    Args:
        dim: blend the image towards white by this fraction, so overlays stand out.
    """
    _check_axes(ax)
    height, width = size
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    if image is not None:
        picture = display_image(image)
        if dim:
            picture = picture * (1.0 - dim) + dim
        ax.imshow(picture, extent=extent, interpolation="bilinear")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_direction_key(ax: Any, *, loc: str = "upper left",
                       bbox_to_anchor: tuple[float, float] | None = (1.01, 1.0),
                       fontsize: float = 7.0) -> Any:
    """Add a legend of the eight direction colours to ``ax`` and return it."""
    from matplotlib.lines import Line2D

    colors = direction_colors()
    handles = [Line2D([], [], color=colors[t], lw=2.5,
                      label=f"{DIRECTION_ARROWS[t]} {DIRECTION_NAMES[t]}")
               for t in range(NUM_DIRECTIONS) if t != SELF_LOOP]
    return ax.legend(handles=handles, loc=loc, bbox_to_anchor=bbox_to_anchor,
                     fontsize=fontsize, title="neighbour lies", title_fontsize=fontsize,
                     frameon=False)


def _nx_image_size(nx_graph: Any) -> tuple[int, int]:
    size = tuple(nx_graph.graph.get("image_size", ()))
    if len(size) != 2:
        raise ValueError("'graph' has no 'image_size' graph attribute; make it with "
                         "pyg_hgconv.viz.to_networkx")
    return int(size[0]), int(size[1])


def draw_group_graph(ax: Any, graph: Any, image: ImageLike | None = None, *, index: int = 0,
                     legend: bool = True, colorbar: bool = True, max_width: float = 2.0,
                     node_scale: float = 60.0) -> dict[str, Any]:
    """Draw a group graph over its image: nodes at their centroids, edges coloured by
    direction, line width proportional to the edge weight.

    Args:
        ax: the matplotlib ``Axes``.
        graph: a :class:`networkx.DiGraph` from :func:`~pyg_hgconv.viz.to_networkx`,
            or a group-graph batch (image ``index`` is converted).
        image: the image behind the graph (optional).
        legend: add the direction key (:func:`draw_direction_key`).
        colorbar: colour nodes by ``feature_norm`` with a colour bar (when the
            graph has features; otherwise nodes are white).
        max_width: line width of the heaviest edge.
        node_scale: marker area of the largest group (areas scale with ``mass``).

    Returns:
        ``{'edges': LineCollection, 'nodes': PathCollection}``.
    """
    import networkx as nx
    from matplotlib.collections import LineCollection

    _check_axes(ax)
    if not isinstance(graph, nx.Graph):
        graph = to_networkx(graph, index, self_loops=False, multigraph=True)
    draw_background(ax, _nx_image_size(graph), image, dim=0.35)
    pos = nx.get_node_attributes(graph, "pos")
    if len(pos) != graph.number_of_nodes():
        raise ValueError("every node of 'graph' needs a 'pos' attribute")

    colors = direction_colors()
    segments, edge_colors, weights = [], [], []
    for u, v, attrs in graph.edges(data=True):
        edge_type = int(attrs["edge_type"])
        if u == v or edge_type == SELF_LOOP:
            continue
        (xu, yu), (xv, yv) = pos[u], pos[v]
        segments.append(((xv, yv), ((xu + xv) / 2.0, (yu + yv) / 2.0)))
        edge_colors.append(colors[edge_type])
        weights.append(float(attrs.get("edge_weight", 1.0)))
    weights_np = np.asarray(weights, dtype=np.float64)
    top = float(weights_np.max()) if weights_np.size else 1.0
    widths = 0.25 + (max_width - 0.25) * weights_np / (top if top > 0 else 1.0)
    edges = LineCollection(segments, colors=edge_colors, linewidths=widths, alpha=0.9,
                           capstyle="round", zorder=2)
    ax.add_collection(edges)

    nodes = list(graph.nodes())
    xy = np.asarray([pos[n] for n in nodes], dtype=np.float64).reshape(-1, 2)
    mass = np.asarray([graph.nodes[n].get("mass", 1.0) for n in nodes], dtype=np.float64)
    areas = 4.0 + node_scale * mass / (mass.max() if mass.size and mass.max() > 0 else 1.0)
    norms = [graph.nodes[n].get("feature_norm") for n in nodes]
    style = dict(s=areas, edgecolors="black", linewidths=0.4, zorder=3)
    if colorbar and nodes and all(v is not None for v in norms):
        points = ax.scatter(xy[:, 0], xy[:, 1], c=norms, cmap="viridis", **style)
        bar = ax.figure.colorbar(points, ax=ax, shrink=0.6, pad=0.01)
        bar.set_label("pooled feature norm ‖x‖", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    else:
        points = ax.scatter(xy[:, 0], xy[:, 1], color="white", **style)
    if legend:
        draw_direction_key(ax)
    return {"edges": edges, "nodes": points}


def draw_importance(ax: Any, graph: Batch | Data, index: int = 0, *,
                    cmap: str = "inferno") -> Any:
    """Show the importance (or focus) map of image ``index``; returns the ``AxesImage``."""
    importance = importance_image(graph, index)
    draw_background(ax, tuple(importance.shape))
    return ax.imshow(as_numpy(importance), cmap=cmap, interpolation="nearest",
                     extent=(-0.5, importance.shape[1] - 0.5, importance.shape[0] - 0.5, -0.5))


def draw_centers(ax: Any, graph: Batch | Data, image: ImageLike | None = None,
                 index: int = 0, *, color: str = "red", size: float = 9.0) -> Any:
    """Mark the sampled cluster centres of image ``index`` over the image."""
    data = select_image(graph, index)
    draw_background(ax, image_size_of(data), image, dim=0.2)
    xy = as_numpy(center_coordinates(data))
    return ax.scatter(xy[:, 0], xy[:, 1], s=size, color=color, edgecolors="white",
                      linewidths=0.4, zorder=3)


def draw_clustering(ax: Any, graph: Batch | Data, image: ImageLike | None = None,
                    index: int = 0, *, color: Any = (1.0, 0.9, 0.0), linewidth: float = 0.6,
                    alpha: float = 1.0) -> Any:
    """Outline the groups of image ``index`` (each pixel's strongest group, see
    :func:`~pyg_hgconv.viz.group_labels`) over the image: thin lines along the pixel
    edges between groups. Returns the ``LineCollection``."""
    from matplotlib.collections import LineCollection

    data = select_image(graph, index)
    draw_background(ax, image_size_of(data), image)
    segments = as_numpy(boundary_segments(group_labels(data)))
    lines = LineCollection(segments, colors=[color], linewidths=linewidth, alpha=alpha,
                           zorder=2)
    ax.add_collection(lines)
    return lines


def draw_summed_adjacency(ax: Any, graph: Batch | Data, image: ImageLike | None = None,
                          index: int = 0, *, cmap: str = "plasma", max_width: float = 2.5
                          ) -> Any:
    r"""Draw :func:`~pyg_hgconv.viz.summed_adjacency` as lines between group centroids:
    width and colour grow with the summed weight (Figs. 11/12/14, right column)."""
    from matplotlib.collections import LineCollection

    data = select_image(graph, index)
    draw_background(ax, image_size_of(data), image, dim=0.55)
    pairs, weight = summed_adjacency(data)
    pos = as_numpy(data.pos)
    w = as_numpy(weight)
    scale = w / w.max() if w.size and w.max() > 0 else w
    pairs_np = as_numpy(pairs)
    segments = np.stack([pos[pairs_np[0]], pos[pairs_np[1]]], axis=1) if w.size \
        else np.zeros((0, 2, 2))
    lines = LineCollection(segments, array=scale, cmap=cmap, linewidths=0.3 + max_width * scale,
                           zorder=2)
    lines.set_clim(0.0, 1.0)
    ax.add_collection(lines)
    ax.scatter(pos[:, 0], pos[:, 1], s=3, color="black", zorder=3, linewidths=0)
    return lines


def plot_group_graph(graph: Any, path: str | os.PathLike, *, index: int = 0,
                     image: ImageLike | None = None, title: str | None = None,
                     figsize: tuple[float, float] | None = None, dpi: int = 150) -> Path:
    """Draw one group graph over its image (see :func:`draw_group_graph`) and write a PNG.

    Args:
        graph: a group-graph batch or a :class:`networkx.DiGraph` from
            :func:`~pyg_hgconv.viz.to_networkx`.
        path: the ``.png`` to write (atomically).
        index: the image of the batch.
        image: the image behind the graph.
        title: figure title (default: node and edge counts).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import networkx as nx

    nx_graph = graph if isinstance(graph, nx.Graph) else to_networkx(
        graph, index, self_loops=False, multigraph=True)
    height, width = _nx_image_size(nx_graph)
    if figsize is None:
        figsize = (7.5, max(2.5, 6.0 * height / width))
    fig, axes = new_figure(figsize=figsize)
    draw_group_graph(axes[0, 0], nx_graph, image)
    loops = sum(1 for u, v in nx_graph.edges() if u == v)
    axes[0, 0].set_title(title if title is not None else
                         f"group graph: {nx_graph.number_of_nodes()} groups, "
                         f"{nx_graph.number_of_edges() - loops} directed edges", fontsize=9)
    return save_figure(fig, path, dpi)


def _image_for(images: Any, i: int) -> ImageLike | None:
    if images is None:
        return None
    return images[i]


def plot_group_panels(graph: Batch | Data, path: str | os.PathLike, *,
                      images: Any = None, indices: Sequence[int] | None = None,
                      row_titles: Sequence[str] | None = None,
                      titles: Sequence[str] = PANEL_TITLES, panel_size: float = 2.6,
                      dpi: int = 150) -> Path:
    """The four panels of the paper's Figs. 11, 12 and 14, one row per image:
    importance map, sampled cluster centres, clustering, summed adjacency.

    Args:
        graph: a group-graph batch from :class:`~pyg_hgconv.ImageToGroupGraph`.
        path: the ``.png`` to write (atomically).
        images: the images, indexable by batch index (e.g. the ``[B, C, H, W]``
            input); ``None`` draws the overlays on white.
        indices: the images to show (default: all images of the batch).
        row_titles: a label per row.
        titles: the four column titles.
        panel_size: width of one panel in inches.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    num_images = _num_images(graph)
    rows = list(range(num_images)) if indices is None else list(indices)
    if not rows:
        raise ValueError("'indices' must name at least one image")
    if row_titles is not None and len(row_titles) != len(rows):
        raise ValueError(f"'row_titles' has {len(row_titles)} entries for {len(rows)} rows")
    if len(titles) != 4:
        raise ValueError(f"'titles' must have 4 entries (got {len(titles)})")
    if images is not None and len(images) < num_images:
        raise ValueError(f"'images' has {len(images)} entries but the batch has "
                         f"{num_images} images")
    height, width = image_size_of(select_image(graph, rows[0]))
    fig, axes = new_figure(len(rows), 4, figsize=(4 * panel_size,
                                                  len(rows) * panel_size * height / width + 0.4))
    for r, i in enumerate(rows):
        image = _image_for(images, i)
        draw_importance(axes[r, 0], graph, i)
        draw_centers(axes[r, 1], graph, image, i)
        draw_clustering(axes[r, 2], graph, image, i)
        draw_summed_adjacency(axes[r, 3], graph, image, i)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
    for c, title in enumerate(titles):
        axes[0, c].set_title(title, fontsize=9)
    return save_figure(fig, path, dpi)


def _off_diagonal_max(block: np.ndarray) -> float:
    if not block.size:
        return 0.0
    off = block.copy()
    np.fill_diagonal(off, 0.0)
    return float(off.max())


def plot_adjacency_matrices(graph: Batch | Data, path: str | os.PathLike, *, index: int = 0,
                            stages: Sequence[str] = ("raw", "noise_canceled"),
                            directions: Sequence[int] = AXIS_DIRECTIONS,
                            max_groups: int | None = 80, gamma: float = 0.5,
                            direction_rule: str = DIRECTION_RULE,
                            panel_size: float = 2.2, dpi: int = 150) -> Path:
    r"""The direction-wise adjacency matrices before and after noise-canceling
    (the paper's Fig. 5, top left), recomputed from the stored assignment with
    :func:`~pyg_hgconv.viz.adjacency_stages`.

    One row per stage (``'raw'`` = Eq. 4, ``'noise_canceled'`` = Eq. 7,
    ``'max_direction'`` = strongest direction only), one column per direction
    (default: up, left, right, down; the paper leaves the diagonals out to avoid
    clutter). Entry ``[g, h]`` is :math:`\hat{A}^\delta_{gh}`, the weight of
    ``h -> g``; all panels share one power-law colour scale so that weak
    "noise" entries stay visible. The scale ends at the largest off-diagonal
    entry: the raw diagonal (a group next to itself, which noise-canceling
    removes) saturates. Panel titles count the non-zero entries.

    Args:
        max_groups: show the block of the first ``max_groups`` groups
            (groups are numbered in raster order of their centres, so this is a
            band of the image); ``None`` shows all.
        gamma: exponent of the colour scale (1 = linear).
        direction_rule: the rule the graph was built with (for the
            ``'max_direction'`` stage).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from matplotlib.colors import PowerNorm

    if not stages or any(s not in ADJACENCY_STAGES for s in stages):
        raise ValueError(f"'stages' must be a non-empty sequence of {ADJACENCY_STAGES} "
                         f"(got {list(stages)!r})")
    if not directions or any(not 0 <= d < NUM_DIRECTIONS or d == SELF_LOOP
                             for d in directions):
        raise ValueError(f"'directions' must be non-centre direction types in 0..8 "
                         f"(got {list(directions)!r})")
    if max_groups is not None and max_groups < 1:
        raise ValueError(f"'max_groups' must be >= 1 or None (got {max_groups})")
    if gamma <= 0:
        raise ValueError(f"'gamma' must be > 0 (got {gamma})")
    data = select_image(graph, index)
    num_groups = int(data.num_nodes)
    shown = num_groups if max_groups is None else min(num_groups, max_groups)
    computed = adjacency_stages(data, direction_rule=direction_rule)
    blocks = {(s, d): as_numpy(dense_adjacency(computed[s], d, num_groups)[:shown, :shown])
              for s in stages for d in directions}
    vmax = max((_off_diagonal_max(b) for b in blocks.values()), default=0.0) \
        or max((float(b.max()) for b in blocks.values() if b.size), default=0.0) or 1.0
    norm = PowerNorm(gamma, vmin=0.0, vmax=vmax)
    fig, axes = new_figure(len(stages), len(directions),
                           figsize=(panel_size * len(directions) + 1.0,
                                    panel_size * len(stages) + 0.6))
    image = None
    for r, stage in enumerate(stages):
        for c, direction in enumerate(directions):
            ax = axes[r, c]
            block = blocks[(stage, direction)]
            image = ax.imshow(block, cmap="magma", norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{DIRECTION_ARROWS[direction]} {DIRECTION_NAMES[direction]}: "
                         f"{int(np.count_nonzero(block))} entries", fontsize=8)
            if c == 0:
                ax.set_ylabel(STAGE_TITLES[stage], fontsize=8)
    bar = fig.colorbar(image, ax=axes, shrink=0.8)
    bar.set_label("adjacency weight (target row, source column)", fontsize=7)
    fig.suptitle(f"direction-wise adjacency of groups 0-{shown - 1} of {num_groups}",
                 fontsize=9)
    return save_figure(fig, path, dpi)
