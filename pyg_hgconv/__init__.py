r"""pyg-hgconv: heterogeneous grid convolution for PyTorch Geometric.

HG-Conv (Hamaguchi et al., "Heterogeneous Grid Convolution for Adaptive,
Efficient, and Controllable Computation", CVPR 2021) clusters a CNN feature
map into data-adaptive groups, builds a graph whose edges carry one of nine
direction types, runs a direction-aware graph convolution on it and unpools
the result to the grid.

Main entry points:

* :class:`HGConv`: the direction-aware graph convolution (a PyG
  ``MessagePassing`` layer).
* :class:`ImageToGroupGraph`: feature map -> batch of group graphs.
* :func:`unpool`: group features -> feature map.
* :class:`HGConvModule`: pool -> L x (graph conv, BN, ReLU) -> unpool.
* :func:`grid_graph`: the pixel grid as a group graph.

Names are imported on first use (PEP 562), so ``import pyg_hgconv`` and the
command-line ``--help`` of the benchmarks stay fast.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> defining module
_EXPORTS = {
    "NUM_DIRECTIONS": "pyg_hgconv.directions",
    "OFFSETS": "pyg_hgconv.directions",
    "SELF_LOOP": "pyg_hgconv.directions",
    "direction_type": "pyg_hgconv.directions",
    "grid_graph": "pyg_hgconv.grid",
    "GroupGraph": "pyg_hgconv.group_graph",
    "HGConv": "pyg_hgconv.hg_conv",
    "focus_map": "pyg_hgconv.importance",
    "importance_map": "pyg_hgconv.importance",
    "object_attention": "pyg_hgconv.importance",
    "uncertainty_attention": "pyg_hgconv.importance",
    "GroupGraphModule": "pyg_hgconv.module",
    "HGConvModule": "pyg_hgconv.module",
    "GraphConvStep": "pyg_hgconv.registry",
    "build_conv": "pyg_hgconv.registry",
    "conv_names": "pyg_hgconv.registry",
    "ImageToGroupGraph": "pyg_hgconv.transform",
    "pool": "pyg_hgconv.assignment",
    "unpool": "pyg_hgconv.assignment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pyg_hgconv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from pyg_hgconv.assignment import pool, unpool
    from pyg_hgconv.directions import NUM_DIRECTIONS, OFFSETS, SELF_LOOP, direction_type
    from pyg_hgconv.grid import grid_graph
    from pyg_hgconv.group_graph import GroupGraph
    from pyg_hgconv.hg_conv import HGConv
    from pyg_hgconv.importance import (
        focus_map,
        importance_map,
        object_attention,
        uncertainty_attention,
    )
    from pyg_hgconv.module import GroupGraphModule, HGConvModule
    from pyg_hgconv.registry import GraphConvStep, build_conv, conv_names
    from pyg_hgconv.transform import ImageToGroupGraph
