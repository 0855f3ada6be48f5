r"""pyg-hgconv: heterogeneous grid convolution for PyTorch Geometric.

HG-Conv (Hamaguchi et al., "Heterogeneous Grid Convolution for Adaptive,
Efficient, and Controllable Computation", CVPR 2021) clusters a CNN feature
map into data-adaptive groups, builds a graph whose edges carry one of nine
direction types, runs a direction-aware graph convolution on it and unpools
the result to the grid.

The package mirrors PyTorch Geometric's layout, in the order of the data path:

* :mod:`pyg_hgconv.nn.pool`: importance map, centre sampling, differentiable
  SLIC on tiles, group adjacency, pooling / unpooling and the learnable
  :class:`ImageToGroupGraph` that wires them together;
* :mod:`pyg_hgconv.nn.conv`: :class:`HGConv` and the registry of graph convs
  that can fill its slot;
* :mod:`pyg_hgconv.nn.models`: :class:`HGConvModule`, HG-ResNet, HG-ResUNet;
* :mod:`pyg_hgconv.data`: the :class:`GroupGraph` data class and
  :func:`grid_graph`; :mod:`pyg_hgconv.transforms`, :mod:`pyg_hgconv.datasets`;
* :mod:`pyg_hgconv.utils` (direction types, the pixel grid, sparse products,
  argument checks), :mod:`pyg_hgconv.profile` (the FLOP counter),
  :mod:`pyg_hgconv.io` (atomic writes), :mod:`pyg_hgconv.viz` (figures).

Names are imported on first use (PEP 562), so ``import pyg_hgconv`` and the
command-line ``--help`` of the benchmarks stay fast.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> defining module
_EXPORTS = {
    "NUM_DIRECTIONS": "pyg_hgconv.utils.directions",
    "OFFSETS": "pyg_hgconv.utils.directions",
    "SELF_LOOP": "pyg_hgconv.utils.directions",
    "direction_type": "pyg_hgconv.utils.directions",
    "grid_graph": "pyg_hgconv.data.grid_graph",
    "GroupGraph": "pyg_hgconv.data.group_graph",
    "HGConv": "pyg_hgconv.nn.conv.hg_conv",
    "focus_map": "pyg_hgconv.nn.pool.importance",
    "importance_map": "pyg_hgconv.nn.pool.importance",
    "object_attention": "pyg_hgconv.nn.pool.importance",
    "uncertainty_attention": "pyg_hgconv.nn.pool.importance",
    "GroupGraphModule": "pyg_hgconv.nn.models.hg_conv_module",
    "HGConvModule": "pyg_hgconv.nn.models.hg_conv_module",
    "GraphConvStep": "pyg_hgconv.nn.conv.registry",
    "build_conv": "pyg_hgconv.nn.conv.registry",
    "conv_names": "pyg_hgconv.nn.conv.registry",
    "ImageToGroupGraph": "pyg_hgconv.nn.pool.image_to_group_graph",
    "ToGroupGraph": "pyg_hgconv.transforms.to_group_graph",
    "DirectionTypes": "pyg_hgconv.transforms.direction_types",
    "pool": "pyg_hgconv.nn.pool.pooling",
    "unpool": "pyg_hgconv.nn.pool.pooling",
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
    from pyg_hgconv.data.grid_graph import grid_graph
    from pyg_hgconv.data.group_graph import GroupGraph
    from pyg_hgconv.nn.conv.hg_conv import HGConv
    from pyg_hgconv.nn.conv.registry import GraphConvStep, build_conv, conv_names
    from pyg_hgconv.nn.models.hg_conv_module import GroupGraphModule, HGConvModule
    from pyg_hgconv.nn.pool.image_to_group_graph import ImageToGroupGraph
    from pyg_hgconv.nn.pool.importance import (
        focus_map,
        importance_map,
        object_attention,
        uncertainty_attention,
    )
    from pyg_hgconv.nn.pool.pooling import pool, unpool
    from pyg_hgconv.transforms import DirectionTypes, ToGroupGraph
    from pyg_hgconv.utils.directions import NUM_DIRECTIONS, OFFSETS, SELF_LOOP, direction_type
