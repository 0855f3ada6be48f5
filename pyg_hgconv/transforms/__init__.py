"""PyG transforms: images to group graphs, and direction types for any graph with positions."""
from .direction_types import DirectionTypes
from .to_group_graph import ToGroupGraph

__all__ = ["DirectionTypes", "ToGroupGraph"]
