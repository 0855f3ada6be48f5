r"""Group graphs <-> :mod:`networkx`.

A group graph of one image becomes a :class:`networkx.DiGraph` whose nodes
are the groups and whose edges are the typed, weighted edges of
:math:`\hat{A}^\delta` (paper, Eq. 4 and Eq. 7). The conversion goes through
:func:`torch_geometric.utils.to_networkx` / :func:`~torch_geometric.utils.from_networkx`
and keeps PyG's edge direction: an edge ``u -> v`` is ``source -> target``
(``edge_index = [source; target]``), and its ``edge_type`` :math:`\delta`
says that the source lies at displacement :math:`\delta = (d_y, d_x)` from
the target (see :mod:`pyg_hgconv.utils.directions`).

Node attributes: ``pos`` (centroid ``(x, y)`` in pixels), ``mass`` (soft pixel
count :math:`\sum_p S_{pg}`), ``center`` (the sampled cluster centre ``(x, y)``)
and ``feature_norm`` (:math:`\lVert \hat{\mathbf{x}}_g \rVert_2` of the pooled
feature, Eq. 5) when the graph has features. Edge attributes: ``edge_type``
(0..8), ``direction`` (its name, e.g. ``'up-left'``) and ``edge_weight``.
Graph attributes: ``image_size`` ``(H, W)`` and ``image_index``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from pyg_hgconv.data.group_graph import GroupGraph
from pyg_hgconv.utils.directions import NUM_DIRECTIONS, OFFSETS

_NAMES = {(-1, -1): "up-left", (-1, 0): "up", (-1, 1): "up-right", (0, -1): "left",
          (0, 0): "self", (0, 1): "right", (1, -1): "down-left", (1, 0): "down",
          (1, 1): "down-right"}
#: ``DIRECTION_NAMES[t]``: where the source of an edge of type ``t`` lies seen from its target
DIRECTION_NAMES: tuple[str, ...] = tuple(_NAMES[offset] for offset in OFFSETS)

_REQUIRED = ("edge_index", "edge_type", "edge_weight", "pos", "image_size")


def select_image(graph: Batch | Data, index: int = 0) -> GroupGraph:
    """Return the group graph of image ``index`` with local node and pixel indices.

    Args:
        graph: a batch from :class:`~pyg_hgconv.ImageToGroupGraph` or
            :func:`~pyg_hgconv.grid_graph`, or the graph of a single image
            (``batch[i]``).
        index (int): the image in the batch; negative values count from the end.

    Raises:
        TypeError: ``graph`` is not a group graph.
        IndexError: ``index`` is out of range.
    """
    if not isinstance(graph, Data):
        raise TypeError(f"'graph' must be a group graph (a torch_geometric Batch or Data from "
                        f"ImageToGroupGraph or grid_graph), got {type(graph).__name__}")
    missing = [key for key in _REQUIRED if getattr(graph, key, None) is None]
    if missing:
        raise TypeError(f"'graph' is not a group graph: it has no {missing}; pass the output "
                        "of ImageToGroupGraph or grid_graph")
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"'index' must be an int (got {type(index).__name__})")
    num_images = _num_images(graph)
    if not -num_images <= index < num_images:
        raise IndexError(f"'index' {index} is out of range for a batch of {num_images} images")
    if isinstance(graph, Batch):
        return graph.get_example(index % num_images)
    if isinstance(graph, GroupGraph) and "ptr" in graph:  # a disjoint union of images
        return graph.split_images()[index % num_images]
    if num_images != 1:
        raise ValueError(f"'graph' holds {num_images} images but is neither a Batch nor a "
                         "group-graph union; index a Batch instead")
    return graph


def _num_images(graph: Data) -> int:
    if isinstance(graph, Batch):
        return int(graph.num_graphs)
    if isinstance(graph, GroupGraph):
        return graph.num_images
    return int(graph.image_size.size(0))


def image_size_of(graph: Data) -> tuple[int, int]:
    """``(H, W)`` of the pixel grid of a single-image group graph."""
    height, width = (int(v) for v in graph.image_size.view(-1, 2)[0])
    return height, width


def to_networkx(graph: Batch | Data, index: int = 0, *, self_loops: bool = True,
                multigraph: bool = False) -> Any:
    r"""Turn the group graph of image ``index`` into a :class:`networkx.DiGraph`.

    Node ``g`` is group ``g`` of the image (local numbering, as in
    ``batch[index]``), edge ``(u, v)`` is the edge ``u -> v`` (source ->
    target) of type :math:`\delta` and weight :math:`\hat{A}^\delta_{vu}`.
    See the module docstring for the attributes.

    With ``max_direction=True`` (the default of
    :class:`~pyg_hgconv.ImageToGroupGraph`) an ordered pair of groups has at
    most one edge, so a :class:`~networkx.DiGraph` holds the graph exactly.
    Graphs built with ``max_direction=False`` can link a pair along several
    directions: pass ``multigraph=True`` for a :class:`~networkx.MultiDiGraph`.

    Args:
        graph: a group-graph batch (or the graph of one image).
        index (int): the image of the batch.
        self_loops (bool): keep the identity self loops (type 4).
        multigraph (bool): return a :class:`~networkx.MultiDiGraph`.

    Returns:
        :class:`networkx.DiGraph` (or :class:`~networkx.MultiDiGraph`).

    Raises:
        ValueError: the graph has several edges per ordered pair and
            ``multigraph`` is false.
    """
    from torch_geometric.utils import to_networkx as pyg_to_networkx

    data = select_image(graph, index)
    num_nodes = int(data.num_nodes)
    edge_index, edge_type = data.edge_index, data.edge_type
    if not multigraph and edge_index.numel():
        pairs = torch.unique(edge_index[0] * num_nodes + edge_index[1])
        if pairs.numel() != edge_index.size(1):
            raise ValueError(
                f"'graph' image {index} has {edge_index.size(1) - pairs.numel()} duplicate "
                "(source, target) pairs with different direction types (built with "
                "max_direction=False?); pass multigraph=True to get a MultiDiGraph")
    height, width = image_size_of(data)
    # Python lists, not tensors: PyG's to_networkx indexes every attribute per
    # node and per edge, which is much faster on a list than on a tensor.
    flat = Data(edge_index=edge_index.cpu(), num_nodes=num_nodes,
                edge_type=edge_type.tolist(), edge_weight=data.edge_weight.detach().tolist(),
                direction=[DIRECTION_NAMES[t] for t in edge_type.tolist()],
                image_size=(height, width), image_index=index)
    node_attrs = ["pos"]
    flat.pos = [tuple(p) for p in data.pos.detach().float().tolist()]
    if getattr(data, "mass", None) is not None:
        flat.mass = data.mass.detach().tolist()
        node_attrs.append("mass")
    if getattr(data, "center_pixel", None) is not None:
        flat.center = [(c % width, c // width) for c in data.center_pixel.tolist()]
        node_attrs.append("center")
    if getattr(data, "x", None) is not None:
        flat.feature_norm = data.x.detach().float().norm(dim=1).tolist()
        node_attrs.append("feature_norm")
    nx_graph = pyg_to_networkx(
        flat, node_attrs=node_attrs, edge_attrs=["edge_type", "direction", "edge_weight"],
        graph_attrs=["image_size", "image_index"], to_multi=multigraph,
        remove_self_loops=not self_loops)
    return nx_graph


def canonical_edge_order(edge_index: Tensor, edge_type: Tensor, num_nodes: int) -> Tensor:
    """The permutation that sorts edges by target, then direction type, then source:
    the order of the edges of :class:`~pyg_hgconv.ImageToGroupGraph` and
    :func:`~pyg_hgconv.grid_graph`."""
    key = (edge_index[1] * NUM_DIRECTIONS + edge_type) * max(num_nodes, 1) + edge_index[0]
    return torch.argsort(key)


def from_networkx(nx_graph: Any) -> GroupGraph:
    """Turn a graph made by :func:`to_networkx` back into tensors.

    Uses :func:`torch_geometric.utils.from_networkx` and puts the edges in the
    canonical order of the core (target, type, source), so that
    ``from_networkx(to_networkx(batch, i))`` reproduces ``edge_index``,
    ``edge_type``, ``edge_weight``, ``pos`` and ``mass`` of ``batch[i]``
    exactly (nodes must be numbered ``0 .. N-1``, as :func:`to_networkx`
    numbers them).

    Returns:
        :class:`~pyg_hgconv.GroupGraph` with ``edge_index``, ``edge_type``,
        ``edge_weight``, ``pos`` and, when present, ``mass``, ``feature_norm``,
        ``center_pixel`` and ``image_size``.

    Raises:
        ValueError: nodes are not ``0 .. N-1`` or edges lack ``edge_type``/``edge_weight``.
    """
    from torch_geometric.utils import from_networkx as pyg_from_networkx

    num_nodes = nx_graph.number_of_nodes()
    if list(nx_graph.nodes()) != list(range(num_nodes)):
        raise ValueError("'nx_graph' nodes must be the integers 0 .. N-1 in order "
                         "(as made by to_networkx)")
    data = pyg_from_networkx(nx_graph)
    if nx_graph.number_of_edges():
        for key in ("edge_type", "edge_weight"):
            if getattr(data, key, None) is None:
                raise ValueError(f"'nx_graph' edges have no '{key}' attribute")
        edge_type = data.edge_type.long()
        edge_weight = data.edge_weight.float()
    else:
        edge_type = torch.empty(0, dtype=torch.long)
        edge_weight = torch.empty(0)
    order = canonical_edge_order(data.edge_index, edge_type, num_nodes)
    out = GroupGraph(edge_index=data.edge_index[:, order], edge_type=edge_type[order],
                     edge_weight=edge_weight[order], num_nodes=num_nodes)
    pos = getattr(data, "pos", None)
    out.pos = pos.float().view(-1, 2) if pos is not None else torch.empty(0, 2)
    if getattr(data, "mass", None) is not None:
        out.mass = data.mass.float()
    if getattr(data, "feature_norm", None) is not None:
        out.feature_norm = data.feature_norm.float()
    size = nx_graph.graph.get("image_size")
    if size is not None:
        out.image_size = torch.tensor([list(size)], dtype=torch.long)
        center = getattr(data, "center", None)
        if center is not None:
            out.center_pixel = (center[:, 1] * int(size[1]) + center[:, 0]).long()
    return out
