r"""One registry of the convolutions that can fill HG-Conv's slot, and of the
grid convolutions they are compared with.

*Graph convolutions* (``kind='graph'``) run on the group graphs of
:class:`~pyg_hgconv.ImageToGroupGraph`; they are wrapped in
:class:`GraphConvStep`, which gives them one signature, ``step(x, graph)``,
and feeds each one the graph attributes it understands:

==================  =====================================  ==============================
name                layer                                  graph input
==================  =====================================  ==============================
``'hgconv'``        :class:`~pyg_hgconv.HGConv`            edge_index, edge_type, weight
``'gcn'``           :class:`~torch_geometric.nn.GCNConv`   edge_index, edge_weight
``'gmm'``           :class:`~torch_geometric.nn.GMMConv`   edge_index, pseudo-coordinates
``'spline'``        :class:`~torch_geometric.nn.SplineConv`  edge_index, pseudo-coordinates
``'dynamic_edge'``  :class:`~torch_geometric.nn.DynamicEdgeConv`  features, batch (k-NN)
==================  =====================================  ==============================

Default sizes aim at HG-Conv's parameter count, :math:`9 C_{in} C_{out}`:
GMM with ``kernel_size=8`` (8 kernels + root weight, :math:`9 C_{in} C_{out}`),
Spline with ``kernel_size=3`` per dimension (9 kernels + root,
:math:`10 C_{in} C_{out}`), DynamicEdgeConv with an MLP
:math:`2C_{in} \to 3C_{out} \to C_{out}` (:math:`9 C_{in} C_{out}` for
:math:`C_{in} = C_{out}`) and ``k=8`` neighbours; GCN has a single weight
(:math:`C_{in} C_{out}`), as in the paper's comparison (Table 3).
Pseudo-coordinates are the Cartesian offsets between group centroids,
normalised to ``[0, 1]`` as PyG's :class:`~torch_geometric.transforms.Cartesian`
does (one maximum over the batch).

*Grid convolutions* (``kind='grid'``) take ``[B, C, H, W]``: ``'conv2d'``
(dense 3x3), ``'depthwise'`` (3x3, ``groups=C``) and ``'tvconv'``
(:class:`tvconv.TVConv`, needs ``size=(H, W)``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.transforms import Cartesian

from pyg_hgconv.hg_conv import HGConv

GRAPH = "graph"
GRID = "grid"


@dataclass(frozen=True)
class ConvSpec:
    """A registered convolution.

    Attributes:
        name: registry key.
        kind: ``'graph'`` or ``'grid'``.
        factory: ``factory(in_channels, out_channels, **kwargs) -> nn.Module``.
        call: graph convs only, ``call(layer, x, graph) -> Tensor``.
        inputs: the graph attributes ``call`` reads (documentation and
            :func:`prepare_graph`).
        description: one line for tables.
    """

    name: str
    kind: str
    factory: Callable[..., nn.Module]
    description: str
    call: Callable[[nn.Module, Tensor, Any], Tensor] | None = None
    inputs: tuple[str, ...] = ()


CONVS: dict[str, ConvSpec] = {}


def register_conv(spec: ConvSpec) -> ConvSpec:
    """Add ``spec`` to the registry (a name can be registered once)."""
    if spec.kind not in (GRAPH, GRID):
        raise ValueError(f"'kind' must be 'graph' or 'grid' (got {spec.kind!r})")
    if spec.kind == GRAPH and spec.call is None:
        raise ValueError(f"graph conv {spec.name!r} needs a 'call'")
    if spec.name in CONVS:
        raise ValueError(f"a conv named {spec.name!r} is already registered")
    CONVS[spec.name] = spec
    return spec


def conv_names(kind: str | None = None) -> list[str]:
    """Registered names, optionally of one ``kind`` (registration order)."""
    return [name for name, spec in CONVS.items() if kind is None or spec.kind == kind]


def get_conv(name: str, kind: str | None = None) -> ConvSpec:
    """Return the spec registered as ``name`` (of ``kind`` when given)."""
    if name not in CONVS or (kind is not None and CONVS[name].kind != kind):
        raise ValueError(f"unknown {kind + ' ' if kind else ''}conv {name!r}; "
                         f"choose one of {conv_names(kind)}")
    return CONVS[name]


def build_conv(name: str, in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    """Instantiate the registered conv ``name``."""
    return get_conv(name).factory(in_channels, out_channels, **kwargs)


def cartesian_pseudo(graph) -> Tensor:
    r"""Cartesian pseudo-coordinates ``[E, 2]`` of a group graph, as PyG's
    :class:`~torch_geometric.transforms.Cartesian` computes them
    (``pos[source] - pos[target]`` scaled into ``[0, 1]`` by the largest
    absolute offset of the batch). A graph with only self loops gets 0.5
    everywhere instead of PyG's 0/0."""
    edge_index, pos = graph.edge_index, graph.pos
    if edge_index.numel() == 0:
        return pos.new_zeros(0, pos.size(1))
    offset = (pos[edge_index[0]] - pos[edge_index[1]]).detach()
    max_value = max(float(offset.abs().max()), 1e-12)
    # PyG's own transform, on a light copy so that ``graph`` is not mutated.
    data = Data(edge_index=edge_index, pos=pos.detach())
    return Cartesian(norm=True, max_value=max_value, cat=False)(data).edge_attr


def prepare_graph(graph, conv: str):
    """Attach what ``conv`` needs beyond the group graph (pseudo-coordinates)."""
    if "pseudo" in get_conv(conv, GRAPH).inputs and getattr(graph, "pseudo", None) is None:
        graph.pseudo = cartesian_pseudo(graph)
    return graph


class GraphConvStep(nn.Module):
    r"""A registered graph convolution behind one signature, ``step(x, graph)``.

    Args:
        conv (str): registry name (see :func:`conv_names` with ``'graph'``).
        in_channels (int): input size (``-1`` for lazy where the layer allows it).
        out_channels (int): output size.
        **kwargs: passed to the layer's factory (e.g. ``kernel_size``).
    """

    def __init__(self, conv: str, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.spec = get_conv(conv, GRAPH)
        self.layer = self.spec.factory(in_channels, out_channels, **kwargs)

    def reset_parameters(self) -> None:
        self.layer.reset_parameters()

    def forward(self, x: Tensor, graph) -> Tensor:
        """``x`` ``[N_grp, C_in]`` -> ``[N_grp, C_out]`` on ``graph``."""
        return self.spec.call(self.layer, x, graph)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.layer})"


# ---------------------------------------------------------------- graph convs
def _gcn(in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    from torch_geometric.nn import GCNConv

    # Group graphs already carry identity self loops.
    kwargs.setdefault("add_self_loops", False)
    return GCNConv(in_channels, out_channels, **kwargs)


def _gmm(in_channels: int, out_channels: int, kernel_size: int = 8, **kwargs) -> nn.Module:
    from torch_geometric.nn import GMMConv

    return GMMConv(in_channels, out_channels, dim=2, kernel_size=kernel_size, **kwargs)


def _spline(in_channels: int, out_channels: int, kernel_size: int = 3, **kwargs) -> nn.Module:
    from torch_geometric.nn import SplineConv

    return SplineConv(in_channels, out_channels, dim=2, kernel_size=kernel_size, **kwargs)


def _dynamic_edge(in_channels: int, out_channels: int, k: int = 8, hidden_factor: int = 3,
                  **kwargs) -> nn.Module:
    from torch_geometric.nn import MLP, DynamicEdgeConv

    if in_channels < 1:
        raise ValueError("'dynamic_edge' needs a positive 'in_channels' (no lazy init)")
    mlp = MLP([2 * in_channels, hidden_factor * out_channels, out_channels], norm=None,
              plain_last=True)
    return DynamicEdgeConv(mlp, k=k, **kwargs)


def slot_adjacency_of(graph, normalize: bool, dtype: torch.dtype) -> Tensor:
    """:meth:`HGConv.slot_adjacency` of ``graph``, built once per graph (and
    setting) and kept on it, so that the layers of a module share it; it is
    rebuilt when the graph's edge tensors are replaced."""
    edges = (graph.edge_index, graph.edge_type, graph.edge_weight)
    cache = graph.__dict__.setdefault("_slot_adjacency", {})
    key = (normalize, dtype)
    cached = cache.get(key)
    if cached is None or any(a is not b for a, b in zip(cached[0], edges, strict=True)):
        cached = cache[key] = (edges, HGConv.slot_adjacency(*edges, graph.num_nodes, normalize,
                                                            dtype=dtype))
    return cached[1]


def _call_hgconv(layer: HGConv, x: Tensor, graph) -> Tensor:
    if layer.uses_fused_aggregation():
        return layer(x, slot_adjacency_of(graph, layer.normalize, x.dtype))
    return layer(x, graph.edge_index, graph.edge_type, graph.edge_weight)


register_conv(ConvSpec(
    "hgconv", GRAPH, lambda i, o, **kw: HGConv(i, o, **kw),
    "HG-Conv: direction-typed, degree-normalised graph conv (Eq. 3)",
    call=_call_hgconv, inputs=("edge_index", "edge_type", "edge_weight")))
register_conv(ConvSpec(
    "gcn", GRAPH, _gcn, "GCNConv (Kipf & Welling), weighted, symmetric normalisation",
    call=lambda layer, x, g: layer(x, g.edge_index, g.edge_weight),
    inputs=("edge_index", "edge_weight")))
register_conv(ConvSpec(
    "gmm", GRAPH, _gmm, "GMMConv (MoNet), Gaussian kernels on Cartesian pseudo-coords",
    call=lambda layer, x, g: layer(x, g.edge_index, g.pseudo),
    inputs=("edge_index", "pseudo")))
register_conv(ConvSpec(
    "spline", GRAPH, _spline, "SplineConv (SplineCNN), B-spline kernels on pseudo-coords",
    call=lambda layer, x, g: layer(x, g.edge_index, g.pseudo),
    inputs=("edge_index", "pseudo")))
register_conv(ConvSpec(
    "dynamic_edge", GRAPH, _dynamic_edge,
    "DynamicEdgeConv (DGCNN), EdgeConv on a k-NN graph in feature space",
    call=lambda layer, x, g: layer(x, g.batch),
    inputs=("batch",)))


# ----------------------------------------------------------------- grid convs
def _conv2d(in_channels: int, out_channels: int, bias: bool = True, **kwargs) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias, **kwargs)


def _depthwise(in_channels: int, out_channels: int, bias: bool = True, **kwargs) -> nn.Module:
    if in_channels != out_channels:
        raise ValueError("'depthwise' needs in_channels == out_channels "
                         f"(got {in_channels} and {out_channels})")
    return nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=bias,
                     **kwargs)


def _tvconv(in_channels: int, out_channels: int, size: tuple[int, int] | None = None,
            **kwargs) -> nn.Module:
    from tvconv import TVConv

    if in_channels != out_channels:
        raise ValueError("'tvconv' is depthwise: it needs in_channels == out_channels "
                         f"(got {in_channels} and {out_channels})")
    if size is None:
        raise ValueError("'tvconv' needs the output size: pass size=(H, W)")
    return TVConv(in_channels, size=size, **kwargs)


register_conv(ConvSpec("conv2d", GRID, _conv2d, "dense 3x3 nn.Conv2d"))
register_conv(ConvSpec("depthwise", GRID, _depthwise, "depthwise 3x3 nn.Conv2d (groups=C)"))
register_conv(ConvSpec("tvconv", GRID, _tvconv,
                       "TVConv: translation-variant depthwise 3x3, cached at inference"))

__all__ = [
    "CONVS", "GRAPH", "GRID", "ConvSpec", "GraphConvStep", "build_conv", "cartesian_pseudo",
    "conv_names", "get_conv", "prepare_graph", "register_conv",
]
