"""Small pure helpers every other part uses: the nine direction types, the
pixel grid as typed edges, sparse products and argument checks.

Nothing here imports another part of :mod:`pyg_hgconv`.
"""
from .directions import (
    HALF_DIRECTIONS,
    NUM_DIRECTIONS,
    OFFSETS,
    SELF_LOOP,
    direction_type,
    offsets_tensor,
    opposite,
)
from .grid import grid, pixel_neighbour_pairs

__all__ = [
    "HALF_DIRECTIONS",
    "NUM_DIRECTIONS",
    "OFFSETS",
    "SELF_LOOP",
    "direction_type",
    "grid",
    "offsets_tensor",
    "opposite",
    "pixel_neighbour_pairs",
]
