"""Group graphs as PyG data: the :class:`GroupGraph` class and the pixel grid as one."""
from .grid_graph import grid_graph
from .group_graph import GroupGraph, make_group_graph

__all__ = ["GroupGraph", "grid_graph", "make_group_graph"]
