r"""Direction types for any graph with positions: HG-Conv on graphs from elsewhere."""
from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.data.datapipes import functional_transform
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import add_remaining_self_loops

from pyg_hgconv.utils.directions import SELF_LOOP, displacement_direction

__all__ = ["DirectionTypes"]


@functional_transform("direction_types")
class DirectionTypes(BaseTransform):
    r"""Gives every edge of a graph with 2-D node positions one of the nine
    direction types of HG-Conv (functional name: :obj:`direction_types`), from
    the displacement of its endpoints: edge ``j -> i`` gets the 45° sector of
    ``pos[j] - pos[i]``
    (:func:`~pyg_hgconv.utils.directions.displacement_direction`), a self loop
    (or a zero displacement) the centre type 4.

    So :class:`~pyg_hgconv.HGConv` runs on graphs that did not come from its
    clustering, e.g. PyG's superpixels (``ToSLIC`` + ``KNNGraph``) or a point
    cloud's ``RadiusGraph``; on the pixel grid the types are exactly those of
    :func:`~pyg_hgconv.grid_graph`. Positions are ``(x, y)`` with ``y``
    pointing down the rows, PyG's image convention.

    Args:
        self_loops (bool): add a self loop (type 4) to every node that has none
            (HG-Conv's centre tap), with weight 1 (default ``True``).
        weight (bool): add ``edge_weight`` of ones where the graph has none
            (default ``True``).
    """

    def __init__(self, self_loops: bool = True, weight: bool = True):
        self.self_loops = self_loops
        self.weight = weight

    def forward(self, data: Data) -> Data:
        if not isinstance(data, Data):
            raise TypeError(f"'data' must be a torch_geometric Data (got {type(data).__name__})")
        pos = getattr(data, "pos", None)
        if pos is None:
            raise ValueError("'data' has no 'pos': direction types come from node positions "
                             "(e.g. ToSLIC's centroids)")
        if pos.dim() != 2 or pos.size(1) != 2:
            raise ValueError(f"'data.pos' must be [N, 2] (x, y) positions (got "
                             f"{tuple(pos.shape)})")
        edge_index = getattr(data, "edge_index", None)
        if edge_index is None:
            raise ValueError("'data' has no 'edge_index': build the edges first (e.g. with "
                             "KNNGraph or RadiusGraph)")
        weight = getattr(data, "edge_weight", None)
        if self.self_loops and getattr(data, "edge_attr", None) is not None:
            raise ValueError("'data' has an 'edge_attr' that new self loops would not match: "
                             "apply DirectionTypes before transforms that add one (e.g. "
                             "Cartesian), or pass self_loops=False")
        if self.self_loops:
            edge_index, weight = add_remaining_self_loops(
                edge_index, weight, fill_value=1.0, num_nodes=data.num_nodes)
        data.edge_index = edge_index
        source, target = edge_index
        edge_type = displacement_direction((pos[source] - pos[target]).float())
        data.edge_type = torch.where(source == target, SELF_LOOP, edge_type)
        if weight is None and self.weight:
            weight = pos.new_ones(edge_index.size(1))
        if weight is not None:
            data.edge_weight = weight
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(self_loops={self.self_loops})"
