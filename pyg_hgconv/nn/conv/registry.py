r"""One registry of the convolutions that can fill HG-Conv's slot.

Every entry is a :class:`ConvSpec` that carries all that is known of its conv:
how to build it, how to call it on a group graph, the graph attributes it
reads, its FLOP rule (:mod:`pyg_hgconv.profile.rules`), a line describing its
size settings, the compiled backend it needs and how it inherits a 3x3 grid
kernel ("w/ transfer", Table 3), if it can. Adding a conv is one
:func:`register_conv` call (see ``CONTRIBUTING.md``).

*Graph convolutions* (``kind='graph'``) run on the group graphs of
:class:`~pyg_hgconv.ImageToGroupGraph`; :class:`GraphConvStep` gives them one
signature, ``step(x, graph)``, and feeds each one the graph attributes it
understands. The library registers five:

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

*Grid convolutions* (``kind='grid'``, ``[B, C, H, W]`` in and out) can be
registered too, e.g. by a benchmark that compares the graph convs with the
grid convs they replace; the library registers none.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.transforms import Cartesian

from pyg_hgconv.nn.conv.hg_conv import HGConv
from pyg_hgconv.nn.conv.spline_conv import FusedSplineConv
from pyg_hgconv.profile import rules
from pyg_hgconv.profile.modules import is_linear, leaf_flops, linear_channels

GRAPH = "graph"
GRID = "grid"

#: ``flops(layer, size, in_channels, *, elementwise, weighted) -> int`` of a graph conv
GraphFlopRule = Callable[..., int]


@dataclass(frozen=True)
class ConvSpec:
    """A registered convolution.

    Attributes:
        name: registry key.
        kind: ``'graph'`` or ``'grid'``.
        factory: ``factory(in_channels, out_channels, **kwargs) -> nn.Module``.
        description: one line for tables.
        call: graph convs, ``call(layer, x, inputs) -> Tensor`` with ``inputs``
            the :class:`GraphInputs` of the group graph (attributes fall
            through to the graph; ``inputs.pseudo`` is derived once).
        inputs: the graph attributes ``call`` reads.
        layer_type: the class of the built layers (how the FLOP counter
            recognises one).
        flops: the FLOP rule. Graph convs: ``flops(layer, size, in_channels,
            *, elementwise, weighted)`` with ``size`` a
            :class:`~pyg_hgconv.profile.rules.GraphSize`; grid convs:
            ``flops(layer, inp, out, *, elementwise)`` (default: the leaf
            rules of :mod:`pyg_hgconv.profile.modules`).
        settings: ``settings(layer) -> str``, the hyper-parameters that set
            the conv's size, for tables.
        backend: the compiled extension the conv needs beyond torch and
            torch-geometric (``None``: none).
        transfer: ``transfer(layer, conv2d)`` copies a 3x3
            :class:`~torch.nn.Conv2d` into a built layer ("w/ transfer");
            ``None`` when no mapping exists. ``transfer_note`` says how exact
            the mapping is.
    """

    name: str
    kind: str
    factory: Callable[..., nn.Module]
    description: str
    call: Callable[[nn.Module, Tensor, Any], Tensor] | None = None
    inputs: tuple[str, ...] = ()
    layer_type: type | tuple[type, ...] | None = None
    flops: Callable[..., int] | None = None
    settings: Callable[[nn.Module], str] | None = None
    backend: str | None = None
    transfer: Callable[[nn.Module, nn.Conv2d], None] | None = None
    transfer_note: str = "no mapping from a 3x3 kernel: the layer keeps its own initialisation"

    def describe(self, layer: nn.Module) -> str:
        """The size settings of a built ``layer`` (its ``repr`` without a rule)."""
        return self.settings(layer) if self.settings is not None else repr(layer)


CONVS: dict[str, ConvSpec] = {}


def register_conv(spec: ConvSpec) -> ConvSpec:
    """Add ``spec`` to the registry (a name can be registered once)."""
    if spec.kind not in (GRAPH, GRID):
        raise ValueError(f"'kind' must be 'graph' or 'grid' (got {spec.kind!r})")
    if spec.kind == GRAPH and (spec.call is None or spec.flops is None
                               or spec.layer_type is None):
        raise ValueError(f"graph conv {spec.name!r} needs 'call', 'layer_type' and 'flops'")
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


def spec_of(layer: nn.Module, kind: str | None = GRAPH) -> ConvSpec | None:
    """The spec whose ``layer_type`` ``layer`` is (of ``kind``), or ``None``."""
    for spec in CONVS.values():
        if (kind is None or spec.kind == kind) and spec.layer_type is not None \
                and isinstance(layer, spec.layer_type):
            return spec
    return None


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


class GraphInputs:
    r"""What the graph convs of one forward pass read from a group graph.

    Attribute access falls through to the graph (``inputs.edge_index`` is
    ``graph.edge_index``); what the convs derive from it is computed on first
    use and shared by every layer that receives the same ``GraphInputs``:

    * :attr:`pseudo` -- the graph's ``pseudo`` attribute, or its Cartesian
      pseudo-coordinates (:func:`cartesian_pseudo`);
    * :meth:`slot_adjacency` -- HG-Conv's sparse ``[N, 9 N]`` aggregation
      matrix (:meth:`HGConv.slot_adjacency`) per ``(normalize, dtype)``.

    A module builds one per forward call and passes it to its layers, like an
    ``adj_t`` built once; the graph itself is never modified.

    Args:
        graph: a group graph (:class:`~pyg_hgconv.GroupGraph` or a PyG batch).
        pseudo (Tensor, optional): ``[E, 2]`` pseudo-coordinates to use (e.g. the
            ``edge_attr`` of PyG's :class:`~torch_geometric.transforms.Cartesian`,
            normalised per graph), instead of the graph's ``pseudo`` or the
            batch-normalised Cartesian ones.
    """

    def __init__(self, graph, pseudo: Tensor | None = None):
        if isinstance(graph, GraphInputs):
            raise TypeError("'graph' is already a GraphInputs")
        self.graph = graph
        self._derived: dict[Any, Tensor] = {}
        if pseudo is not None:
            self._derived["pseudo"] = pseudo

    @classmethod
    def of(cls, graph) -> GraphInputs:
        """``graph`` itself when it is a :class:`GraphInputs`, else a new one."""
        return graph if isinstance(graph, GraphInputs) else cls(graph)

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "graph":
            raise AttributeError(name)
        return getattr(self.graph, name)

    def derived(self, key: Any, build: Callable[[], Tensor]) -> Tensor:
        """The value stored under ``key``, built by ``build()`` on first use."""
        value = self._derived.get(key)
        if value is None:
            value = self._derived[key] = build()
        return value

    @property
    def pseudo(self) -> Tensor:
        """Pseudo-coordinates ``[E, 2]`` of the edges (see the class docstring)."""
        if "pseudo" in self._derived:
            return self._derived["pseudo"]
        given = getattr(self.graph, "pseudo", None)
        if given is not None:
            return given
        return self.derived("pseudo", lambda: cartesian_pseudo(self.graph))

    def slot_adjacency(self, normalize: bool = True, dtype: torch.dtype | None = None) -> Tensor:
        """:meth:`HGConv.slot_adjacency` of the graph's typed, weighted edges."""
        graph = self.graph
        return self.derived(("slot_adjacency", normalize, dtype), lambda: HGConv.slot_adjacency(
            graph.edge_index, graph.edge_type, graph.edge_weight, graph.num_nodes, normalize,
            dtype=dtype))

    def prepare(self, conv: str) -> GraphInputs:
        """Derive now what the registry conv ``conv`` reads (e.g. before timing it)."""
        if "pseudo" in get_conv(conv, GRAPH).inputs:
            self.pseudo  # noqa: B018 (computed for its side effect: the cache)
        return self


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
        """``x`` ``[N_grp, C_in]`` -> ``[N_grp, C_out]`` on ``graph`` (a group
        graph, or the :class:`GraphInputs` of one that the layers of a module share)."""
        return self.spec.call(self.layer, x, GraphInputs.of(graph))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.layer})"


# ------------------------------------------------------------------ helpers
def _bias(layer: nn.Module) -> bool:
    return getattr(layer, "bias", None) is not None


def _input_channels(layer: nn.Module, in_channels: int | None) -> int:
    """``in_channels`` as seen in the call, else the layer's own (not lazy)."""
    if in_channels is not None:
        return int(in_channels)
    cin = getattr(layer, "in_channels", None)
    if isinstance(cin, (tuple, list)):
        cin = cin[0]
    if cin is None or cin < 1:
        raise ValueError(f"the {type(layer).__name__} has lazy input channels: run it once "
                         "first or pass in_channels")
    return int(cin)


@torch.no_grad()
def per_row_flops(module: nn.Module, in_features: int, elementwise: bool = True) -> int:
    """FLOPs of pushing one row of ``in_features`` through ``module`` (eval mode),
    by the leaf rules of :mod:`pyg_hgconv.profile.modules`."""
    total = 0

    def hook(m, args, out):
        nonlocal total
        total += max(leaf_flops(m, args[0] if args else out, out, elementwise), 0)

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    reference = next(iter(module.parameters()), None)
    options = {} if reference is None else {"dtype": reference.dtype, "device": reference.device}
    was_training = module.training
    try:
        module.eval()
        module(torch.zeros(1, in_features, **options))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return total


# -------------------------------------------------------------- hgconv
def _call_hgconv(layer: HGConv, x: Tensor, inputs: GraphInputs) -> Tensor:
    if layer.uses_fused_aggregation():  # one [N, 9 N] matrix for all layers
        return layer(x, inputs.slot_adjacency(layer.normalize, x.dtype))
    return layer(x, inputs.edge_index, inputs.edge_type, inputs.edge_weight)


def _hgconv_flops(layer: HGConv, size: rules.GraphSize, in_channels: int | None = None, *,
                  elementwise: bool = True, weighted: bool = True) -> int:
    if in_channels is None and not isinstance(layer.weight, nn.parameter.UninitializedParameter):
        in_channels = layer.weight.size(1)
    return rules.hgconv_flops(size.num_targets, size.num_edges,
                              _input_channels(layer, in_channels), layer.out_channels,
                              _bias(layer), layer.normalize)


def _hgconv_settings(layer: HGConv) -> str:
    return (f"9 direction weights, degree-normalised={layer.normalize}, "
            f"bias={_bias(layer)}")


def _hgconv_transfer(layer: HGConv, conv: nn.Conv2d) -> None:
    source = HGConv.from_conv2d(conv)
    with torch.no_grad():
        layer.weight.copy_(source.weight)
        if layer.bias is not None:
            layer.bias.copy_(source.bias if source.bias is not None else 0.0)


register_conv(ConvSpec(
    "hgconv", GRAPH, lambda i, o, **kw: HGConv(i, o, **kw),
    "HG-Conv: direction-typed, degree-normalised graph conv (Eq. 3)",
    call=_call_hgconv, inputs=("edge_index", "edge_type", "edge_weight"), layer_type=HGConv,
    flops=_hgconv_flops, settings=_hgconv_settings, transfer=_hgconv_transfer,
    transfer_note="exact: tap (ky, kx) of the 3x3 kernel becomes W of direction type "
                  "3 ky + kx (HGConv.from_conv2d)"))


# ----------------------------------------------------------------- gcn
def _gcn(in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    from torch_geometric.nn import GCNConv

    # Group graphs already carry identity self loops.
    kwargs.setdefault("add_self_loops", False)
    return GCNConv(in_channels, out_channels, **kwargs)


def _gcn_flops(layer, size: rules.GraphSize, in_channels: int | None = None, *,
               elementwise: bool = True, weighted: bool = True) -> int:
    edges = size.num_edges
    if layer.add_self_loops:
        # add_remaining_self_loops: every node gets exactly one loop
        edges = edges - size.num_loop_edges + size.num_targets
    return rules.gcn_flops(size.num_targets, edges, _input_channels(layer, in_channels),
                           layer.out_channels, _bias(layer), layer.normalize, weighted)


def _gcn_type():
    from torch_geometric.nn import GCNConv

    return GCNConv


register_conv(ConvSpec(
    "gcn", GRAPH, _gcn, "GCNConv (Kipf & Welling), weighted, symmetric normalisation",
    call=lambda layer, x, g: layer(x, g.edge_index, g.edge_weight),
    inputs=("edge_index", "edge_weight"), layer_type=_gcn_type(), flops=_gcn_flops,
    settings=lambda layer: (f"1 weight, symmetric normalisation={layer.normalize}, "
                            f"add_self_loops={layer.add_self_loops}, bias={_bias(layer)}")))


# ----------------------------------------------------------------- gmm
def _gmm(in_channels: int, out_channels: int, kernel_size: int = 8, **kwargs) -> nn.Module:
    from torch_geometric.nn import GMMConv

    return GMMConv(in_channels, out_channels, dim=2, kernel_size=kernel_size, **kwargs)


def _gmm_flops(layer, size: rules.GraphSize, in_channels: int | None = None, *,
               elementwise: bool = True, weighted: bool = True) -> int:
    cin = in_channels if in_channels is not None else layer.rel_in_channels
    return rules.gmm_flops(size.num_sources, size.num_targets, size.num_edges,
                           _input_channels(layer, cin), layer.out_channels, layer.kernel_size,
                           layer.dim, layer.separate_gaussians, layer.root_weight, _bias(layer),
                           layer.aggr == "mean")


def _gmm_type():
    from torch_geometric.nn import GMMConv

    return GMMConv


register_conv(ConvSpec(
    "gmm", GRAPH, _gmm, "GMMConv (MoNet), Gaussian kernels on Cartesian pseudo-coords",
    call=lambda layer, x, g: layer(x, g.edge_index, g.pseudo),
    inputs=("edge_index", "pseudo"), layer_type=_gmm_type(), flops=_gmm_flops,
    settings=lambda layer: (f"kernel_size={layer.kernel_size} Gaussians in dim={layer.dim}, "
                            f"root weight={layer.root_weight}, aggr={layer.aggr}, "
                            f"bias={_bias(layer)}")))


# -------------------------------------------------------------- spline
#: implementations of ``'spline'``: the same function and parameters
SPLINE_IMPLS = ("fused", "pyg")


def _spline(in_channels: int, out_channels: int, kernel_size: int = 3, impl: str = "fused",
            **kwargs) -> nn.Module:
    """SplineConv: :class:`~pyg_hgconv.nn.conv.spline_conv.FusedSplineConv`
    (``impl='fused'``, plain torch) or PyG's layer (``impl='pyg'``, needs
    torch-spline-conv); both compute the same function with the same parameters."""
    if impl not in SPLINE_IMPLS:
        raise ValueError(f"'impl' must be one of {SPLINE_IMPLS} (got {impl!r})")
    if impl == "pyg":
        from torch_geometric.nn import SplineConv

        return SplineConv(in_channels, out_channels, dim=2, kernel_size=kernel_size, **kwargs)
    return FusedSplineConv(in_channels, out_channels, dim=2, kernel_size=kernel_size, **kwargs)


def _spline_flops(layer, size: rules.GraphSize, in_channels: int | None = None, *,
                  elementwise: bool = True, weighted: bool = True) -> int:
    cin = _input_channels(layer, in_channels)
    mean = layer.aggr == "mean"
    if isinstance(layer, FusedSplineConv):
        return rules.fused_spline_flops(size.num_sources, size.num_targets, size.num_edges, cin,
                                        layer.out_channels, layer.K, layer.dim, layer.degree,
                                        layer.root_weight, _bias(layer), mean)
    return rules.spline_flops(size.num_targets, size.num_edges, cin, layer.out_channels,
                              layer.dim, layer.degree, layer.root_weight, _bias(layer), mean)


def _spline_settings(layer) -> str:
    sizes = [int(v) for v in layer.kernel_size.tolist()]
    impl = "fused" if isinstance(layer, FusedSplineConv) else "PyG"
    return (f"{'x'.join(map(str, sizes))} B-spline kernels ({math.prod(sizes)}), "
            f"degree={layer.degree}, root weight={layer.root_weight}, aggr={layer.aggr}, "
            f"bias={_bias(layer)}, {impl} implementation")


def _spline_types():
    from torch_geometric.nn import SplineConv

    return (FusedSplineConv, SplineConv)


@torch.no_grad()
def _spline_transfer(layer, conv: nn.Conv2d) -> None:
    sizes = [int(v) for v in layer.kernel_size.tolist()]
    if sizes != [3, 3] or layer.degree != 1 or not bool(layer.is_open_spline.all()):
        raise ValueError("a 3x3 kernel maps onto an open 3x3 degree-1 spline only "
                         f"(got kernel_size={sizes}, degree={layer.degree})")
    # pseudo-coordinate dimension 0 is x, 1 is y: kernel dx + 1 + 3 (dy + 1) is the
    # tap (ky, kx) = (dy + 1, dx + 1), i.e. tap t = 3 ky + kx, as for HGConv
    taps = conv.weight.flatten(2).permute(2, 1, 0)  # [9, C_in, C_out]
    scale = 9.0 if layer.aggr == "mean" else 1.0  # mean over the 9 neighbours of a pixel
    layer.weight.copy_(scale * taps)
    if layer.root_weight:
        layer.lin.weight.zero_()  # the centre tap comes with the self loop
    if layer.bias is not None:
        layer.bias.copy_(conv.bias if conv.bias is not None else 0.0)


register_conv(ConvSpec(
    "spline", GRAPH, _spline, "SplineConv (SplineCNN), B-spline kernels on pseudo-coords",
    call=lambda layer, x, g: layer(x, g.edge_index, g.pseudo),
    inputs=("edge_index", "pseudo"), layer_type=_spline_types(), flops=_spline_flops,
    settings=_spline_settings, transfer=_spline_transfer,
    transfer_note="tap (ky, kx) becomes kernel 3 ky + kx, times 9 for the mean "
                  "aggregation, root weight zero: exact on the interior of the pixel grid "
                  "with pseudo-coordinates normalised by one pixel (Cartesian max_value=1); "
                  "on group graphs an initialisation"))


# -------------------------------------------------------- dynamic_edge
def _dynamic_edge(in_channels: int, out_channels: int, k: int = 8, hidden_factor: int = 3,
                  **kwargs) -> nn.Module:
    from torch_geometric.nn import MLP, DynamicEdgeConv

    if in_channels < 1:
        raise ValueError("'dynamic_edge' needs a positive 'in_channels' (no lazy init)")
    mlp = MLP([2 * in_channels, hidden_factor * out_channels, out_channels], norm=None,
              plain_last=True)
    return DynamicEdgeConv(mlp, k=k, **kwargs)


def _mlp_channels(layer) -> list[tuple[int, int]]:
    lins = [m for m in layer.nn.modules() if is_linear(m)]
    if not lins:
        raise ValueError("cannot read the channels of a DynamicEdgeConv without Linear layers")
    return [linear_channels(m) for m in lins]


def _dynamic_edge_flops(layer, size: rules.GraphSize, in_channels: int | None = None, *,
                        elementwise: bool = True, weighted: bool = True) -> int:
    sizes = _mlp_channels(layer)
    cin = sizes[0][0] // 2 if in_channels is None else int(in_channels)
    per_edge = per_row_flops(layer.nn, 2 * cin, elementwise)
    return rules.dynamic_edge_flops(size.nodes_per_graph, layer.k, cin, sizes[-1][1], per_edge,
                                    layer.aggr == "mean")


def _dynamic_edge_settings(layer) -> str:
    sizes = _mlp_channels(layer)
    chain = " -> ".join([str(sizes[0][0])] + [str(o) for _, o in sizes])
    return f"k={layer.k} feature-space neighbours, MLP {chain}, aggr={layer.aggr}"


def _dynamic_edge_type():
    from torch_geometric.nn import DynamicEdgeConv

    return DynamicEdgeConv


register_conv(ConvSpec(
    "dynamic_edge", GRAPH, _dynamic_edge,
    "DynamicEdgeConv (DGCNN), EdgeConv on a k-NN graph in feature space",
    call=lambda layer, x, g: layer(x, g.batch),
    inputs=("batch",), layer_type=_dynamic_edge_type(), flops=_dynamic_edge_flops,
    settings=_dynamic_edge_settings, backend="torch_cluster"))

__all__ = [
    "CONVS",
    "GRAPH",
    "GRID",
    "ConvSpec",
    "GraphConvStep",
    "GraphInputs",
    "build_conv",
    "cartesian_pseudo",
    "conv_names",
    "get_conv",
    "per_row_flops",
    "register_conv",
    "spec_of",
]
