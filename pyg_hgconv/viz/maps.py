r"""What the figures show, as tensors (no matplotlib here).

Everything is computed from what a group graph stores (``assign_index``,
``assign_weight``, ``edge_*``, ``pos``, ``center_pixel``, ``importance``), never
by clustering again, so a figure shows exactly the groups a model used:

* :func:`importance_image`: the importance / focus map that drove the
  centre sampling (Sec. 4.1, Eq. 11), ``[H, W]``;
* :func:`center_coordinates`: the sampled cluster centres;
* :func:`group_labels` / :func:`boundary_segments`: the hard clustering
  (each pixel's strongest group) and its outlines;
* :func:`summed_adjacency`: :math:`\sum_\delta (\hat{A}^\delta + \hat{A}^{\delta\top})`
  per unordered pair of groups (the "adjacency connection" panels of the
  paper's Figs. 11, 12 and 14);
* :func:`adjacency_stages` / :func:`dense_adjacency`: the direction-wise
  matrices before and after noise-canceling (Eq. 4 vs. Eq. 7, Fig. 5 top left),
  recomputed with the pure functions of :mod:`pyg_hgconv.nn.pool.adjacency` from the
  stored assignment.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import coalesce, to_dense_adj

from pyg_hgconv.nn.pool.adjacency import (
    TypedEdges,
    cancel_noise,
    group_adjacency,
    select_directions,
)
from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE
from pyg_hgconv.nn.pool.tiling import TiledAssignment
from pyg_hgconv.utils.directions import NUM_DIRECTIONS, SELF_LOOP
from pyg_hgconv.viz.convert import image_size_of, select_image

#: the stages of :func:`adjacency_stages`, in pipeline order
ADJACENCY_STAGES = ("raw", "noise_canceled", "max_direction")


def _require(data: Data, key: str, what: str) -> Tensor:
    value = getattr(data, key, None)
    if value is None:
        raise ValueError(f"'graph' has no '{key}', needed for {what} (graphs from "
                         "ImageToGroupGraph have it)")
    return value


def importance_image(graph: Batch | Data, index: int = 0) -> Tensor:
    """The importance (or, with attention, focus) map of image ``index``, ``[H, W]``."""
    data = select_image(graph, index)
    height, width = image_size_of(data)
    return _require(data, "importance", "the importance map").detach().view(height, width)


def center_coordinates(graph: Batch | Data, index: int = 0) -> Tensor:
    """Pixel coordinates ``(x, y)`` of the sampled cluster centres of image ``index``,
    ``[N_grp, 2]`` (one per kept group, in node order)."""
    data = select_image(graph, index)
    _, width = image_size_of(data)
    center = _require(data, "center_pixel", "the cluster centres")
    return torch.stack([center % width, center // width], dim=1)


def group_labels(graph: Batch | Data, index: int = 0) -> Tensor:
    r"""The hard clustering of image ``index``: ``[H, W]`` group ids.

    Pixel ``p`` gets the group with the largest assignment weight
    :math:`\arg\max_g S_{pg}` (ties: the smaller group id); a pixel without
    any entry (never produced by the core) gets ``-1``.
    """
    data = select_image(graph, index)
    height, width = image_size_of(data)
    pixel, group = _require(data, "assign_index", "the clustering")
    weight = _require(data, "assign_weight", "the clustering").detach()
    num_pixels = height * width
    best = weight.new_full((num_pixels,), float("-inf")).scatter_reduce(
        0, pixel, weight, reduce="amax")
    none = int(data.num_nodes)
    candidate = torch.where(weight == best[pixel], group, none)
    label = torch.full((num_pixels,), none, dtype=torch.long, device=group.device)
    label = label.scatter_reduce(0, pixel, candidate, reduce="amin")
    return torch.where(label == none, -1, label).view(height, width)


def boundary_segments(labels: Tensor) -> Tensor:
    """The outlines of a label map as line segments along pixel edges.

    Every pair of 4-neighbouring pixels with different labels contributes the
    unit segment of the pixel edge between them, in pixel coordinates
    ``(x, y)`` (pixel centres at integers), so the outlines can be drawn as thin
    lines at any zoom.

    Args:
        labels (Tensor): integer label map ``[H, W]`` (see :func:`group_labels`).

    Returns:
        Tensor ``[S, 2, 2]``: ``S`` segments of two ``(x, y)`` end points.
    """
    if not isinstance(labels, Tensor) or labels.dim() != 2 or labels.is_floating_point():
        raise TypeError("'labels' must be an integer tensor [H, W] (see group_labels)")
    ys, xs = torch.nonzero(labels[:, 1:] != labels[:, :-1], as_tuple=True)
    x = xs.float() + 0.5
    vertical = torch.stack([torch.stack([x, ys - 0.5], -1), torch.stack([x, ys + 0.5], -1)], 1)
    ys, xs = torch.nonzero(labels[1:, :] != labels[:-1, :], as_tuple=True)
    y = ys.float() + 0.5
    horizontal = torch.stack([torch.stack([xs - 0.5, y], -1), torch.stack([xs + 0.5, y], -1)], 1)
    return torch.cat([vertical.float(), horizontal.float()])


def summed_adjacency(graph: Batch | Data, index: int = 0) -> tuple[Tensor, Tensor]:
    r"""Sum the direction-wise adjacency of image ``index`` over all directions and
    both orientations (self loops left out).

    .. math::
        w_{\{g, h\}} = \sum_{\delta \ne 0} \big(\hat{A}^\delta_{gh} + \hat{A}^\delta_{hg}\big).

    Returns:
        ``(pairs [2, P], weight [P])`` with ``pairs[0] < pairs[1]``, sorted.
    """
    data = select_image(graph, index)
    edge_index = data.edge_index
    keep = (data.edge_type != SELF_LOOP) & (edge_index[0] != edge_index[1])
    source, target = edge_index[:, keep]
    pairs = torch.stack([torch.minimum(source, target), torch.maximum(source, target)])
    return coalesce(pairs, data.edge_weight.detach()[keep], num_nodes=int(data.num_nodes),
                    reduce="sum")


def adjacency_stages(graph: Batch | Data, index: int = 0,
                     direction_rule: str = DIRECTION_RULE) -> dict[str, TypedEdges]:
    r"""Recompute the adjacency pipeline of image ``index`` from its stored assignment.

    Returns the typed edges ``(edge_index, edge_type, edge_weight)`` after each
    stage of :mod:`pyg_hgconv.nn.pool.adjacency`, keys in :data:`ADJACENCY_STAGES`:

    * ``'raw'``: :math:`\hat{A}^\delta = S^\top A^\delta S` (Eq. 4,
      :func:`~pyg_hgconv.nn.pool.adjacency.group_adjacency`);
    * ``'noise_canceled'``: :math:`\max(0, \hat{A}^\delta - \hat{A}^{\bar\delta})`
      (Eq. 7, :func:`~pyg_hgconv.nn.pool.adjacency.cancel_noise`);
    * ``'max_direction'``: then one direction per pair, chosen by
      ``direction_rule`` (:func:`~pyg_hgconv.nn.pool.adjacency.select_directions`;
      the ``'centroid'`` rule reads the stored centroids ``pos``).

    Finalising the last stage (:func:`~pyg_hgconv.nn.pool.adjacency.finalize_adjacency`)
    gives the stored edges of a graph built with ``noise_cancel=True,
    max_direction=True`` and the same ``direction_rule`` (pass the rule the graph
    was built with). Node indices are local to the image.
    """
    data = select_image(graph, index)
    height, width = image_size_of(data)
    num_groups = int(data.num_nodes)
    assign_index = _require(data, "assign_index", "the adjacency")
    assign_weight = _require(data, "assign_weight", "the adjacency").detach()
    raw = group_adjacency(TiledAssignment.from_coo(assign_index, assign_weight, 1, height,
                                                   width, num_groups))
    canceled = cancel_noise(*raw, num_groups)
    pos = None if data.pos is None else data.pos.detach()
    strongest = select_directions(*canceled, num_groups, direction_rule, pos)
    return dict(zip(ADJACENCY_STAGES, (raw, canceled, strongest), strict=True))


def dense_adjacency(edges: TypedEdges, direction: int, num_nodes: int) -> Tensor:
    r"""The dense matrix :math:`\hat{A}^\delta` ``[N, N]`` of one direction.

    Entry ``[g, h]`` is the weight of the edge ``h -> g`` (row = target,
    column = source) of type ``direction``.
    """
    if isinstance(direction, bool) or not isinstance(direction, int) \
            or not 0 <= direction < NUM_DIRECTIONS:
        raise ValueError(f"'direction' must be an int in [0, {NUM_DIRECTIONS}) "
                         f"(got {direction!r})")
    edge_index, edge_type, edge_weight = edges
    keep = edge_type == direction
    if num_nodes == 0:
        return edge_weight.new_zeros(0, 0)
    return to_dense_adj(edge_index[:, keep].flip(0), edge_attr=edge_weight[keep].detach(),
                        max_num_nodes=num_nodes)[0]
