r"""FLOPs of grid and HG networks, counted on the group graphs each image gets.

HG-Conv's graph differs per image, so its cost does too (paper, Sec. 5.1: "we
evaluate the FLOPs of the HG-Conv by the average over the validation
images"). :func:`count_flops` runs one forward pass with hooks that read the
actual group graphs; :func:`conv_flops` prices a single registry convolution
on a given graph or map.

Convention
----------
**One multiply-accumulate (MAC) is one FLOP**, the convention of fvcore /
mmcv / ptflops that most segmentation papers (and the HG-Conv paper's GFLOPs)
use; a lone multiplication, division, square root or exponential also counts
1. Additions that accumulate products are the "A" of a MAC and free; pure
additions, subtractions, comparisons, sorting, top-k and index operations
(residual sums, ``torch.cat``, max aggregation, random sampling) count 0.
Grid modules follow :func:`tvconv.macs.module_macs` (the ptflops rules this
repository's TVConv figures use), so a grid network's count here equals
``tvconv.count_macs``: a bias adds 1 per output element, and with
``elementwise=True`` (default) norms count 1 per element (2 if affine),
activations, pooling and ``nn.Upsample`` 1 per element. Functional calls
(``F.interpolate``, ``torch.relu``) are not counted, as in ptflops.

Counting rules
--------------
Notation: :math:`N` nodes (:math:`N_s` sources, :math:`N_t` targets),
:math:`E` edges, :math:`C_{in}, C_{out}` channels, :math:`[\cdot]` = 1 if
the layer has that part.

=====================  ==========================================================
module                 FLOPs per call
=====================  ==========================================================
``Conv*d``, depthwise  ``out.numel() * (C_in / groups * prod(k) + [bias])``
``TVConv`` (cached)    ``out.numel() * (k^2 + [bias])`` (its kernels are cached at
                       inference; ``include_generator=True`` adds generating them)
``Linear``             ``in.numel() * C_out + [bias] * out.numel()`` (also PyG's
                       ``Linear``)
``hgconv``             :math:`N C_{in} \cdot 9 C_{out}` (:math:`X W_\delta`, all nine
                       directions) :math:`+ E C_{out}` (per-edge weighting)
                       :math:`+ [\text{normalize}] E` (:math:`a_e / \hat D`)
                       :math:`+ [\text{bias}] N C_{out}`
``gcn``                :math:`N C_{in} C_{out} + [\text{normalize}] (N + 2E')`
                       (:math:`\hat d^{-1/2}`, two products per edge)
                       :math:`+ [\text{weighted}] E' C_{out} + [\text{bias}] N C_{out}`;
                       :math:`E'` includes the self loops GCN adds
``gmm``                :math:`K` kernels in :math:`D` dimensions:
                       :math:`N_s C_{in} K C_{out}` (:math:`X g`)
                       :math:`+ E K (3D + 1)` (Gaussian weight per edge and kernel:
                       square, scale, divide per dimension, one exp)
                       :math:`+ E K C_{out}` (weighted sum over kernels)
                       :math:`+ [\text{mean}] N_t C_{out} + [\text{root}] N_t C_{in}
                       C_{out} + [\text{bias}] N_t C_{out}`;
                       ``separate_gaussians``: :math:`E C_{in} C_{out} K (3D + 2)
                       + E C_{in} C_{out}` instead of the first three terms
``spline``             degree :math:`d`, :math:`D` dimensions, :math:`S = (d + 1)^D`
                       active kernels per edge: :math:`E S D` (B-spline basis
                       products) :math:`+ E S (C_{in} C_{out} + C_{out})` (the
                       active kernels, scaled by their basis)
                       :math:`+ [\text{mean}] N_t C_{out} + [\text{root}] N_t C_{in}
                       C_{out} + [\text{bias}] N_t C_{out}`
``dynamic_edge``       :math:`\sum_b n_b^2 C_{in}` (brute-force k-NN distances within
                       each of the batch's graphs of :math:`n_b` nodes)
                       :math:`+ E \cdot \mathrm{MLP}` (the MLP's layers by the rules
                       here, for one edge; :math:`E = \sum_b n_b \min(k, n_b)`)
                       :math:`+ [\text{mean}] N_t C_{out}`; max aggregation is free
clustering             :class:`~pyg_hgconv.ImageToGroupGraph` on :math:`B` images of
                       :math:`n = HW` pixels, embedding width :math:`D` (:math:`D' =
                       D + 2` with the coordinates), :math:`K` centres, :math:`m`
                       candidates, :math:`T` SLIC iterations, :math:`G` groups,
                       ``nnz`` assignment entries, by step (``name[step]``):

                       * ``importance``: :math:`P (D + 1) + B n` over the :math:`P`
                         neighbouring pixel pairs (squared distance, root, mean);
                       * ``focus`` (with attention, Eq. 11): :math:`2 B n`;
                       * ``features``: :math:`4 B n D + 2 n` (standardisation,
                         scaling, coordinates);
                       * ``candidates``: :math:`2 B t K + 2 B n m` over the
                         :math:`t` tiles of an image (spatial distance from every
                         tile to every centre; every pixel's nearest candidate);
                       * ``slic``: :math:`T [B n m (2 D' + 3) + B K D'] + B n m`
                         (centre update, distances, softmax; final normalisation);
                       * ``pooling`` (Eq. 5): :math:`(nnz + G)(C + 2)` (features
                         and centroids);
                       * ``adjacency`` (Eq. 4): one product
                         :math:`S_{pg} S_{p+\delta,h}` per pair of assignment
                         entries of neighbouring pixels, 4 directions (the other 4
                         are transposes; noise cancelling and max direction are
                         subtractions and comparisons).

                       * ``embedding`` (with ``embed_channels``): the 1x1
                         projection, :math:`B n C D` :math:`+ [\text{bias}] B n D`
                         (a ``Linear``'s rule).
group-graph module     :class:`~pyg_hgconv.module.GroupGraphModule` (e.g.
                       :class:`~pyg_hgconv.HGConvModule`), by step: ``unpool``
                       (Eq. 6) :math:`(nnz + B n) C_{out}`; ``pool`` with a given
                       graph (Eq. 5) :math:`(nnz + G) C_{in}`; ``pseudo``
                       (Cartesian pseudo-coordinates of gmm/spline, once per graph)
                       :math:`2E`
=====================  ==========================================================

Components
----------
Every count belongs to one of :data:`COMPONENTS`: ``grid_conv`` (convs and
TVConv on maps), ``graph_conv`` (registry graph convs with everything inside
them, pseudo-coordinates), ``linear`` (``Linear`` layers, e.g. the 1x1 convs
of an HG stage on the nodes), ``clustering`` (everything in
:class:`~pyg_hgconv.ImageToGroupGraph`, pooling and unpooling) and
``elementwise`` (norms, activations, pooling layers). :attr:`FlopCount.modules`
breaks the total down by qualified module name (``"name[step]"`` for the
steps above) and :meth:`FlopCount.under` sums a subtree, e.g. ``"stage4"``.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pyg_hgconv.directions import HALF_DIRECTIONS, OFFSETS
from pyg_hgconv.registry import GraphConvStep, build_conv, get_conv
from pyg_hgconv.tiling import tiled_assignment_of
from tvconv.conv import TVConv
from tvconv.inference import FrozenTVConv
from tvconv.macs import generator_macs, module_macs

COMPONENTS = ("grid_conv", "graph_conv", "linear", "clustering", "elementwise")
#: default hyper-parameters of the registry's graph convs (as their factories build them)
GRAPH_CONV_DEFAULTS: dict[str, dict[str, Any]] = {
    "hgconv": {"bias": True, "normalize": True},
    "gcn": {"bias": True, "normalize": True, "add_self_loops": False},
    "gmm": {"kernel_size": 8, "dim": 2, "separate_gaussians": False, "root_weight": True,
            "bias": True, "aggr": "mean"},
    "spline": {"kernel_size": 3, "dim": 2, "degree": 1, "root_weight": True, "bias": True,
               "aggr": "mean"},  # kernel_size does not change the cost (S active kernels)
    "dynamic_edge": {"k": 8, "hidden_factor": 3, "aggr": "max"},
}


# ------------------------------------------------------------------ pure rules
def hgconv_flops(num_nodes: int, num_edges: int, in_channels: int, out_channels: int,
                 bias: bool = True, normalize: bool = True) -> int:
    """FLOPs of :class:`~pyg_hgconv.HGConv` (module docstring, row ``hgconv``)."""
    return (num_nodes * in_channels * 9 * out_channels + num_edges * out_channels
            + num_edges * normalize + num_nodes * out_channels * bias)


def gcn_flops(num_nodes: int, num_edges: int, in_channels: int, out_channels: int,
              bias: bool = True, normalize: bool = True, weighted: bool = True) -> int:
    """FLOPs of :class:`~torch_geometric.nn.conv.GCNConv`; ``num_edges``
    includes the self loops the layer adds, ``weighted``: messages are
    multiplied by an edge weight (always with ``normalize``)."""
    return (num_nodes * in_channels * out_channels
            + (num_nodes + 2 * num_edges) * normalize
            + num_edges * out_channels * (weighted or normalize)
            + num_nodes * out_channels * bias)


def gmm_flops(num_sources: int, num_targets: int, num_edges: int, in_channels: int,
              out_channels: int, kernel_size: int, dim: int = 2,
              separate_gaussians: bool = False, root_weight: bool = True, bias: bool = True,
              mean: bool = True) -> int:
    """FLOPs of :class:`~torch_geometric.nn.conv.GMMConv` (row ``gmm``)."""
    k = kernel_size
    if separate_gaussians:
        pairs = num_edges * in_channels * out_channels
        flops = pairs * k * (3 * dim + 2) + pairs
    else:
        flops = (num_sources * in_channels * k * out_channels
                 + num_edges * k * (3 * dim + 1) + num_edges * k * out_channels)
    return flops + _target_terms(num_targets, in_channels, out_channels, root_weight, bias, mean)


def spline_flops(num_targets: int, num_edges: int, in_channels: int, out_channels: int,
                 dim: int = 2, degree: int = 1, root_weight: bool = True, bias: bool = True,
                 mean: bool = True) -> int:
    """FLOPs of :class:`~torch_geometric.nn.conv.SplineConv` (row ``spline``)."""
    s = (degree + 1) ** dim
    flops = num_edges * s * dim + num_edges * s * (in_channels * out_channels + out_channels)
    return flops + _target_terms(num_targets, in_channels, out_channels, root_weight, bias, mean)


def _target_terms(num_targets: int, in_channels: int, out_channels: int, root_weight: bool,
                  bias: bool, mean: bool) -> int:
    return (num_targets * out_channels * (mean + bias)
            + num_targets * in_channels * out_channels * root_weight)


def knn_edges(nodes_per_graph: Sequence[int], k: int) -> int:
    """Edges of a k-NN graph (self included) built within each graph."""
    return sum(n * min(k, n) for n in nodes_per_graph)


def dynamic_edge_flops(nodes_per_graph: Sequence[int], k: int, in_channels: int,
                       out_channels: int, mlp_per_edge: int, mean: bool = False) -> int:
    """FLOPs of :class:`~torch_geometric.nn.conv.DynamicEdgeConv` (row
    ``dynamic_edge``); ``mlp_per_edge`` is the MLP's cost for one edge."""
    knn = sum(n * n for n in nodes_per_graph) * in_channels
    num_targets = sum(nodes_per_graph)
    return knn + knn_edges(nodes_per_graph, k) * mlp_per_edge + num_targets * out_channels * mean


def mlp_flops(channels: Sequence[int], bias: bool = True, elementwise: bool = True,
              plain_last: bool = True) -> int:
    """FLOPs of one row through an MLP of ``Linear`` layers ``channels[i] ->
    channels[i + 1]`` with an activation after each hidden layer (counted with
    ``elementwise``)."""
    flops = 0
    for i, (a, b) in enumerate(itertools.pairwise(channels)):
        flops += a * b + b * bias
        if elementwise and not (plain_last and i == len(channels) - 2):
            flops += b
    return flops


def pixel_pairs(batch_size: int, height: int, width: int) -> int:
    """Unordered pairs of 8-neighbouring pixels (the four half directions)."""
    return sum(batch_size * max(0, height - abs(OFFSETS[t][0]))
               * max(0, width - abs(OFFSETS[t][1])) for t in HALF_DIRECTIONS)


def assignment_pairs(assign_index: Tensor, batch_size: int, height: int, width: int) -> int:
    r"""Pairs of assignment entries of neighbouring pixels over the four half
    directions, :math:`\sum_\delta \sum_p n_p n_{p+\delta}` with :math:`n_p`
    the entries of pixel ``p``: the products of Eq. 4."""
    counts = torch.bincount(assign_index[0], minlength=batch_size * height * width)
    counts = counts.view(batch_size, height, width)
    total = 0
    for t in HALF_DIRECTIONS:
        dy, dx = OFFSETS[t]
        target = counts[:, max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
        source = counts[:, max(0, dy):height - max(0, -dy), max(0, dx):width - max(0, -dx)]
        total += int((target * source).sum())
    return total


def clustering_flops(batch_size: int, height: int, width: int, in_channels: int,
                     embed_channels: int, num_centers: int, num_candidates: int,
                     num_iterations: int, num_groups: int, nnz: int, adjacency_pairs: int,
                     attention: bool = False, tiles_per_image: int | None = None,
                     embedding: bool = False, embedding_bias: bool = True) -> dict[str, int]:
    """FLOPs of :class:`~pyg_hgconv.ImageToGroupGraph` by step (row
    ``clustering``); ``tiles_per_image`` defaults to one tile per pixel,
    ``embedding`` says whether the transform has its 1x1 projection."""
    b, n, d, k, m, t = (batch_size, height * width, embed_channels, num_centers,
                        num_candidates, num_iterations)
    tiles = n if tiles_per_image is None else tiles_per_image
    d2 = d + 2
    return {
        "embedding": embedding * (b * n * in_channels * d + embedding_bias * b * n * d),
        "importance": pixel_pairs(b, height, width) * (d + 1) + b * n,
        "focus": 2 * b * n * attention,
        "features": 4 * b * n * d + 2 * n,
        "candidates": 2 * b * tiles * k + 2 * b * n * m,
        "slic": t * (b * n * m * (2 * d2 + 3) + b * k * d2) + b * n * m,
        "pooling": (nnz + num_groups) * (in_channels + 2),
        "adjacency": adjacency_pairs,
    }


# ------------------------------------------------------------ graph conv layers
@dataclasses.dataclass(frozen=True)
class GraphSize:
    """The sizes a graph conv's cost depends on."""

    num_sources: int
    num_targets: int
    num_edges: int
    num_loop_edges: int
    nodes_per_graph: tuple[int, ...]

    @classmethod
    def of(cls, graph=None, *, edge_index: Tensor | None = None, num_nodes: int | None = None,
           batch: Tensor | None = None, num_targets: int | None = None) -> GraphSize:
        """Sizes of a PyG graph (``edge_index``, ``num_nodes``, ``batch``) or of
        the given tensors."""
        if graph is not None:
            edge_index = getattr(graph, "edge_index", None)
            num_nodes = graph.num_nodes
            batch = getattr(graph, "batch", None)
        if num_nodes is None:
            raise ValueError("the graph's number of nodes is unknown")
        num_targets = num_nodes if num_targets is None else num_targets
        if edge_index is not None:
            num_edges = int(edge_index.size(1))
            loops = int((edge_index[0] == edge_index[1]).sum())
        else:
            num_edges = loops = 0
        if batch is not None and batch.numel():
            per_graph = tuple(int(v) for v in torch.bincount(batch))
        else:
            per_graph = (int(num_nodes),) if num_nodes else ()
        return cls(int(num_nodes), int(num_targets), num_edges, loops, per_graph)


def _graph_conv_types() -> dict[str, type[nn.Module]]:
    from torch_geometric.nn import DynamicEdgeConv, GCNConv, GMMConv, SplineConv

    from pyg_hgconv.hg_conv import HGConv

    return {"hgconv": HGConv, "gcn": GCNConv, "gmm": GMMConv, "spline": SplineConv,
            "dynamic_edge": DynamicEdgeConv}


def graph_conv_name(layer: nn.Module) -> str | None:
    """Registry name of a graph conv layer (``None`` for another module)."""
    for name, cls in _graph_conv_types().items():
        if isinstance(layer, cls):
            return name
    return None


def _out_channels(layer: nn.Module, name: str) -> int:
    if name == "dynamic_edge":
        return _channels(layer, name)[1]
    return int(layer.out_channels)


def _channels(layer: nn.Module, name: str) -> tuple[int, int]:
    """``(C_in, C_out)`` of a built graph conv layer."""
    if name == "dynamic_edge":
        lins = [m for m in layer.nn.modules() if _is_linear(m)]
        if not lins:
            raise ValueError("cannot read the channels of a DynamicEdgeConv without Linear layers")
        return _linear_in(lins[0]) // 2, _linear_out(lins[-1])
    cin = layer.in_channels
    if isinstance(cin, (tuple, list)):
        cin = cin[0]
    if name == "gmm":
        cin = layer.rel_in_channels
    if name == "hgconv" and not isinstance(layer.weight, nn.parameter.UninitializedParameter):
        cin = layer.weight.size(1)
    if cin is None or cin < 1:
        raise ValueError(f"the {name} layer has lazy input channels: run it once first")
    return int(cin), int(layer.out_channels)


def _layer_params(layer: nn.Module, name: str, elementwise: bool) -> dict[str, Any]:
    bias = getattr(layer, "bias", None) is not None
    if name == "hgconv":
        return {"bias": bias, "normalize": layer.normalize}
    if name == "gcn":
        return {"bias": bias, "normalize": layer.normalize,
                "add_self_loops": layer.add_self_loops}
    if name == "gmm":
        return {"kernel_size": layer.kernel_size, "dim": layer.dim,
                "separate_gaussians": layer.separate_gaussians,
                "root_weight": layer.root_weight, "bias": bias, "aggr": layer.aggr}
    if name == "spline":
        return {"dim": layer.dim, "degree": layer.degree, "root_weight": layer.root_weight,
                "bias": bias, "aggr": layer.aggr}
    cin = _channels(layer, name)[0]
    return {"k": layer.k, "aggr": layer.aggr,
            "mlp_per_edge": _per_row_flops(layer.nn, 2 * cin, elementwise)}


def graph_flops(name: str, in_channels: int, out_channels: int, size: GraphSize,
                params: Mapping[str, Any], elementwise: bool = True,
                weighted: bool = True) -> int:
    """Cost of the registry graph conv ``name`` with hyper-parameters ``params``
    on a graph of ``size`` (the rules of the module docstring)."""
    p = {**GRAPH_CONV_DEFAULTS[name], **params}
    cin, cout = in_channels, out_channels
    if name == "hgconv":
        return hgconv_flops(size.num_targets, size.num_edges, cin, cout, p["bias"],
                            p["normalize"])
    if name == "gcn":
        edges = size.num_edges
        if p["add_self_loops"]:
            # add_remaining_self_loops: every node gets exactly one loop
            edges = edges - size.num_loop_edges + size.num_targets
        return gcn_flops(size.num_targets, edges, cin, cout, p["bias"], p["normalize"],
                         weighted)
    mean = p["aggr"] == "mean"
    if name == "gmm":
        return gmm_flops(size.num_sources, size.num_targets, size.num_edges, cin, cout,
                         p["kernel_size"], p["dim"], p["separate_gaussians"], p["root_weight"],
                         p["bias"], mean)
    if name == "spline":
        return spline_flops(size.num_targets, size.num_edges, cin, cout, p["dim"], p["degree"],
                            p["root_weight"], p["bias"], mean)
    if name == "dynamic_edge":
        per_edge = p.get("mlp_per_edge")
        if per_edge is None:
            hidden = p["hidden_factor"] * cout
            per_edge = mlp_flops([2 * cin, hidden, cout], elementwise=elementwise)
        return dynamic_edge_flops(size.nodes_per_graph, p["k"], cin, cout, per_edge, mean)
    raise ValueError(f"no FLOP rule for graph conv {name!r}")


# -------------------------------------------------------------- leaf modules
def _is_linear(module: nn.Module) -> bool:
    from torch_geometric.nn.dense.linear import Linear as PyGLinear

    return isinstance(module, (nn.Linear, PyGLinear))


def _linear_in(module: nn.Module) -> int:
    return module.in_features if isinstance(module, nn.Linear) else module.in_channels


def _linear_out(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.out_channels


def leaf_flops(module: nn.Module, inp: Tensor, out: Tensor, elementwise: bool = True) -> int:
    """FLOPs of one call of a leaf module (``-1`` for an unknown type): PyG's
    ``Linear`` here, everything else by :func:`tvconv.macs.module_macs`."""
    if _is_linear(module) and not isinstance(module, nn.Linear):
        return inp.numel() * _linear_out(module) + out.numel() * int(module.bias is not None)
    return module_macs(module, inp, out, elementwise)


@torch.no_grad()
def _per_row_flops(module: nn.Module, in_features: int, elementwise: bool) -> int:
    """Cost of pushing one row of ``in_features`` through ``module`` (eval mode)."""
    total = 0

    def hook(m, args, out):
        nonlocal total
        value = leaf_flops(m, args[0] if args else out, out, elementwise)
        total += max(value, 0)

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


def _meta(*shape: int) -> Tensor:
    return torch.empty(shape, device="meta")


# ------------------------------------------------------------------ conv_flops
def conv_flops(name: str, layer_or_channels: nn.Module | int | tuple[int, int], graph=None,
               size: tuple[int, int] | None = None, *, batch_size: int = 1,
               elementwise: bool = True, **conv_kwargs) -> int:
    """FLOPs of one call of the registry convolution ``name``.

    Args:
        name (str): registry name (``'hgconv' | 'gcn' | 'gmm' | 'spline' |
            'dynamic_edge' | 'conv2d' | 'depthwise' | 'tvconv'``).
        layer_or_channels: the layer (or its :class:`GraphConvStep`), or its
            channels: ``C`` (in = out) or ``(C_in, C_out)``; then the
            registry's default hyper-parameters apply, overridden by
            ``conv_kwargs`` (e.g. ``kernel_size=4``, ``k=16``, ``bias=False``).
        graph: graph convs: the graph it runs on (``edge_index``,
            ``num_nodes``, ``batch`` for ``dynamic_edge``).
        size (pair of int): grid convs: the output map size ``(H, W)``.
        batch_size (int): grid convs: images in the batch.
        elementwise (bool): count per-element work (activations inside
            ``dynamic_edge``'s MLP), as :func:`count_flops`.

    Returns:
        int, by the rules of the module docstring.
    """
    spec = get_conv(name)
    if isinstance(layer_or_channels, GraphConvStep):
        layer_or_channels = layer_or_channels.layer
    if isinstance(layer_or_channels, nn.Module):
        if conv_kwargs:
            raise ValueError(f"{sorted(conv_kwargs)} cannot be applied to a built layer")
        layer, channels = layer_or_channels, None
    else:
        layer, channels = None, _channel_pair(layer_or_channels)

    if spec.kind == "graph":
        if graph is None:
            raise ValueError(f"graph conv {name!r} needs the 'graph' it runs on")
        gsize = GraphSize.of(graph)
        weighted = getattr(graph, "edge_weight", None) is not None
        if layer is not None:
            found = graph_conv_name(layer)
            if found != name:
                raise ValueError(f"the layer is a {type(layer).__name__}, not a {name!r} conv")
            cin, cout = _channels(layer, name)
            return int(graph_flops(name, cin, cout, gsize,
                                   _layer_params(layer, name, elementwise), elementwise,
                                   weighted=weighted))
        unknown = sorted(set(conv_kwargs) - set(GRAPH_CONV_DEFAULTS[name]))
        if unknown:
            raise ValueError(f"{unknown} are not FLOP-relevant options of {name!r}; known: "
                             f"{sorted(GRAPH_CONV_DEFAULTS[name])}")
        return int(graph_flops(name, *channels, gsize, conv_kwargs, elementwise,
                               weighted=weighted))

    if size is None:
        raise ValueError(f"grid conv {name!r} needs its output 'size' (H, W)")
    h, w = size
    if layer is None:
        kwargs = dict(conv_kwargs)
        if name == "tvconv":
            kwargs.setdefault("size", (h, w))
        layer = build_conv(name, *channels, **kwargs)
    cin = getattr(layer, "in_channels", getattr(layer, "channels", None))
    cout = getattr(layer, "out_channels", getattr(layer, "channels", None))
    value = module_macs(layer, _meta(batch_size, cin, h, w), _meta(batch_size, cout, h, w),
                        elementwise)
    if value < 0:
        raise ValueError(f"no FLOP rule for {type(layer).__name__}")
    return int(value)


def _channel_pair(channels) -> tuple[int, int]:
    if isinstance(channels, int) and not isinstance(channels, bool):
        channels = (channels, channels)
    if (not isinstance(channels, (tuple, list)) or len(channels) != 2
            or not all(isinstance(c, int) and c >= 1 for c in channels)):
        raise TypeError("'layer_or_channels' must be a layer, a channel count or a pair "
                        f"(C_in, C_out) (got {channels!r})")
    return int(channels[0]), int(channels[1])


# ------------------------------------------------------------------ FlopCount
@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of a forward pass (see the module docstring for the rules).

    Attributes:
        total (int): FLOPs of the whole batch.
        num_images (int): images in the batch(es) counted.
        components (dict): FLOPs per component of :data:`COMPONENTS`.
        modules (dict): FLOPs per qualified module name (``"name[step]"`` for
            the steps of clustering and group-graph modules).
        image_totals (tuple of int): per-image totals, when counted image by
            image (``count_flops(..., per_image=True)``).
        uncounted (tuple of str): module types met without a rule (counted 0).
    """

    total: int
    num_images: int
    components: Mapping[str, int]
    modules: Mapping[str, int]
    image_totals: tuple[int, ...] = ()
    uncounted: tuple[str, ...] = ()

    @classmethod
    def zero(cls) -> FlopCount:
        """The neutral element of ``+``."""
        return cls(0, 0, dict.fromkeys(COMPONENTS, 0), {})

    @property
    def per_image(self) -> float:
        """Mean FLOPs per image (``total / num_images``)."""
        return self.total / self.num_images if self.num_images else 0.0

    @property
    def per_image_std(self) -> float:
        """Standard deviation of the per-image totals (0 if not counted per image)."""
        if len(self.image_totals) < 2:
            return 0.0
        mean = sum(self.image_totals) / len(self.image_totals)
        return math.sqrt(sum((v - mean) ** 2 for v in self.image_totals)
                         / (len(self.image_totals) - 1))

    def under(self, prefix: str) -> int:
        """FLOPs of the module ``prefix`` and everything inside it (``''``: all)."""
        if prefix == "":
            return self.total
        return sum(v for k, v in self.modules.items()
                   if k == prefix or k.startswith((prefix + ".", prefix + "[")))

    def __add__(self, other: FlopCount) -> FlopCount:
        if not isinstance(other, FlopCount):
            return NotImplemented
        modules: dict[str, int] = defaultdict(int, self.modules)
        for k, v in other.modules.items():
            modules[k] += v
        return FlopCount(
            self.total + other.total, self.num_images + other.num_images,
            {c: self.components.get(c, 0) + other.components.get(c, 0) for c in COMPONENTS},
            dict(modules), self.image_totals + other.image_totals,
            tuple(sorted(set(self.uncounted) | set(other.uncounted))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``per_image`` included)."""
        out = dataclasses.asdict(self)
        out["components"] = dict(self.components)
        out["modules"] = dict(self.modules)
        out["image_totals"] = list(self.image_totals)
        out["uncounted"] = list(self.uncounted)
        out["per_image"] = self.per_image
        out["per_image_std"] = self.per_image_std
        return out

    def table(self, scale: float = 1e9, unit: str = "GFLOPs") -> str:
        """Markdown table of the per-image FLOPs by component."""
        n = max(self.num_images, 1)
        lines = [f"| component | {unit} / image | share |", "|---|---:|---:|"]
        for c in COMPONENTS:
            v = self.components.get(c, 0)
            share = v / self.total if self.total else 0.0
            lines.append(f"| {c} | {v / n / scale:.4g} | {100 * share:.1f} % |")
        lines.append(f"| **total** | **{self.per_image / scale:.4g}** | 100 % |")
        return "\n".join(lines)


def _slot_edges(adjacency: Tensor) -> Tensor:
    """``[2, E]`` (source, target) of the sparse ``[N, 9 N]`` matrix of
    :meth:`~pyg_hgconv.HGConv.slot_adjacency`."""
    num_nodes = adjacency.size(0)
    crow, col = adjacency.crow_indices(), adjacency.col_indices()
    target = torch.repeat_interleave(torch.arange(num_nodes, device=crow.device), crow.diff())
    return torch.stack([col % num_nodes, target])


# ------------------------------------------------------------------ the counter
class _Counter:
    """Forward hooks that price every module call of one model."""

    def __init__(self, model: nn.Module, elementwise: bool, include_generator: bool):
        from pyg_hgconv.module import GroupGraphModule
        from pyg_hgconv.transform import ImageToGroupGraph

        self.elementwise = elementwise
        self.include_generator = include_generator
        self.flops: dict[str, int] = defaultdict(int)
        self.component: dict[str, str] = {}
        self.graphs: dict[int, Any] = {}
        self.pending: dict[int, tuple] = {}
        self.unknown: set[str] = set()
        self.handles: list = []

        atomic: list[str] = []
        clustering: list[str] = []
        for name, module in model.named_modules():
            if any(_inside(name, a) for a in atomic):
                continue
            key = name or type(module).__name__
            in_clustering = any(_inside(name, c) for c in clustering)
            conv_name = graph_conv_name(module)
            if conv_name is not None:
                atomic.append(name)
                self._hook(module, self._graph_conv_hook(key, conv_name), with_kwargs=True)
            elif isinstance(module, (TVConv, FrozenTVConv)):
                atomic.append(name)
                self._hook(module, self._leaf_hook(key, "clustering" if in_clustering
                                                   else "grid_conv"))
            elif isinstance(module, ImageToGroupGraph):
                clustering.append(name)
                self._hook(module, self._clustering_hook(key), with_kwargs=True)
            elif isinstance(module, GroupGraphModule):
                module_hook = self._group_module_hooks(key, module)
                self.handles.append(module.register_forward_pre_hook(module_hook[0],
                                                                     with_kwargs=True))
                self._hook(module, module_hook[1], with_kwargs=True)
            elif not any(True for _ in module.children()):
                self._hook(module, self._leaf_hook(key, "clustering" if in_clustering else None))

    def _hook(self, module: nn.Module, fn: Callable, with_kwargs: bool = False) -> None:
        self.handles.append(module.register_forward_hook(fn, with_kwargs=with_kwargs))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def add(self, key: str, component: str, value: int) -> None:
        self.flops[key] += int(value)
        self.component[key] = component

    # -- hooks
    def _leaf_hook(self, key: str, component: str | None):
        def hook(module, args, out):
            inp = args[0] if args and isinstance(args[0], Tensor) else out
            if not isinstance(out, Tensor):
                return
            value = leaf_flops(module, inp, out, self.elementwise)
            if value < 0:
                if any(True for _ in module.parameters(recurse=False)) or any(
                        True for _ in module.buffers(recurse=False)):
                    self.unknown.add(type(module).__name__)
                return
            if self.include_generator and isinstance(module, TVConv):
                value += generator_macs(module, tuple(out.shape[-2:]), self.elementwise)
            self.add(key, component or _leaf_component(module), value)
        return hook

    def _graph_conv_hook(self, key: str, name: str):
        def hook(module, args, kwargs, out):
            bound = _bind(module, args, kwargs)
            x = bound["x"]
            if isinstance(x, (tuple, list)):
                x_src, x_dst = x[0], x[1] if x[1] is not None else x[0]
            else:
                x_src = x_dst = x
            edge_index = bound.get("edge_index")
            if edge_index is not None and edge_index.layout == torch.sparse_csr:
                # HGConv.slot_adjacency: entry (target, type * N + source)
                edge_index = _slot_edges(edge_index)
            batch = bound.get("batch")
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            size = GraphSize.of(edge_index=edge_index, num_nodes=x_src.size(0), batch=batch,
                                num_targets=x_dst.size(0))
            weighted = bound.get("edge_weight") is not None
            value = graph_flops(name, x_src.size(-1), _out_channels(module, name), size,
                                _layer_params(module, name, self.elementwise),
                                self.elementwise, weighted=weighted)
            self.add(key, "graph_conv", value)
        return hook

    def _clustering_hook(self, key: str):
        def hook(module, args, kwargs, graph):
            bound = _bind(module, args, kwargs)
            x = bound["x"]
            self.graphs[id(module)] = graph
            b, c, h, w = x.shape
            if b == 0:
                return
            from pyg_hgconv.transform import num_groups_for

            k = num_groups_for(h * w, module.num_groups, module.ratio)
            tiled = tiled_assignment_of(graph)
            embed = module.embed
            steps = clustering_flops(
                b, h, w, c, module.embed_channels or c, k, min(module.num_candidates, k),
                module.num_iterations, graph.num_nodes, int(graph.assign_index.size(1)),
                assignment_pairs(graph.assign_index, b, h, w),
                attention=bound.get("attention") is not None,
                tiles_per_image=tiled.grid.tiles_per_image if tiled is not None else None,
                embedding=embed is not None,
                embedding_bias=embed is not None and embed.bias is not None)
            for step, value in steps.items():
                if value:
                    self.add(f"{key}[{step}]", "clustering", value)
        return hook

    def _group_module_hooks(self, key: str, module):
        def pre_hook(mod, args, kwargs):
            bound = _bind(mod, args, kwargs)
            given = bound.get("graph")
            needs_pseudo = "pseudo" in get_conv(mod.conv_name, "graph").inputs and (
                given is None or getattr(given, "pseudo", None) is None)
            self.pending[id(mod)] = (given, needs_pseudo, bound["x"])

        def hook(mod, args, kwargs, output):
            given, needs_pseudo, x = self.pending.pop(id(mod))
            graph = given if given is not None else self.graphs.get(id(mod.pool))
            if graph is None or graph.num_nodes == 0:
                return
            out = output[0] if isinstance(output, tuple) else output
            b, c_in, h, w = x.shape
            nnz = int(graph.assign_index.size(1))
            if given is not None:
                self.add(f"{key}[pool]", "clustering", (nnz + graph.num_nodes) * c_in)
            if needs_pseudo:
                self.add(f"{key}[pseudo]", "graph_conv", 2 * int(graph.edge_index.size(1)))
            self.add(f"{key}[unpool]", "clustering", (nnz + b * h * w) * out.size(1))
        return pre_hook, hook


def _inside(name: str, prefix: str) -> bool:
    return prefix == "" or name.startswith(prefix + ".")


def _leaf_component(module: nn.Module) -> str:
    if isinstance(module, (nn.modules.conv._ConvNd, TVConv, FrozenTVConv)):
        return "grid_conv"
    if _is_linear(module):
        return "linear"
    return "elementwise"


_SIGNATURES: dict[type, inspect.Signature] = {}


def _bind(module: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    cls = type(module)
    if cls not in _SIGNATURES:
        _SIGNATURES[cls] = inspect.signature(cls.forward)
    bound = _SIGNATURES[cls].bind(module, *args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _num_images(inputs: tuple) -> int:
    """Images behind a forward call: the batch size of the first image-like
    tensor (``[B, C, H, W]``, any tensor of rank >= 3), else the number of
    graphs of the first PyG batch, else 1."""
    for value in inputs:
        if isinstance(value, Tensor) and value.dim() >= 3:
            return int(value.size(0))
    for value in inputs:
        if hasattr(value, "num_graphs"):
            return int(value.num_graphs)
    return 1


def count_flops(model: nn.Module, inputs: Tensor | Sequence[Any], *,
                kwargs: Mapping[str, Any] | None = None, per_image: bool = False,
                elementwise: bool = True, include_generator: bool = False,
                progress: bool = False) -> FlopCount:
    """Count the FLOPs of one inference forward pass of ``model`` on ``inputs``.

    The model runs in eval mode under ``torch.no_grad()`` (HG clustering is
    then deterministic) and is put back in its previous mode. Hooks read the
    group graphs each image actually gets; the rules are in the module
    docstring.

    Args:
        model: any ``nn.Module``.
        inputs: the input batch (a tensor ``[B, ...]``) or a tuple of
            positional arguments.
        kwargs: keyword arguments of the forward call.
        per_image (bool): run the images of a tensor batch one by one and
            record their totals (``image_totals``; the clustering then sees
            every image alone, as at batch size 1).
        elementwise (bool): count norms, activations and pooling layers.
        include_generator (bool): add generating every TVConv's kernels.
        progress (bool): a progress bar over the images (``per_image``).

    Returns:
        :class:`FlopCount`; ``per_image`` is the mean per image. Sum counts
        with ``+`` to average over a data set.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module (got {type(model).__name__})")
    kwargs = dict(kwargs or {})
    if per_image:
        if not isinstance(inputs, Tensor) or inputs.dim() < 1:
            raise ValueError("per_image=True needs a batch tensor as 'inputs'")
        total = FlopCount.zero()
        for i in tqdm(range(inputs.size(0)), disable=not progress, desc="FLOPs", unit="img"):
            count = count_flops(model, inputs[i:i + 1], kwargs=kwargs,
                                elementwise=elementwise, include_generator=include_generator)
            total = total + dataclasses.replace(count, image_totals=(count.total,))
        return total
    args = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    counter = _Counter(model, elementwise, include_generator)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        counter.remove()
        model.train(was_training)
    if counter.unknown:
        warnings.warn(f"count_flops: no FLOP rule for {sorted(counter.unknown)}; counted as 0",
                      stacklevel=2)
    components = dict.fromkeys(COMPONENTS, 0)
    for key, value in counter.flops.items():
        components[counter.component[key]] += value
    return FlopCount(total=sum(components.values()), num_images=_num_images(args),
                     components=components, modules=dict(counter.flops),
                     uncounted=tuple(sorted(counter.unknown)))


def average_flops(model: nn.Module, batches: Iterable[Tensor], *, elementwise: bool = True,
                  include_generator: bool = False, progress: bool = True) -> FlopCount:
    """Count ``model`` on every image of ``batches`` (tensors ``[B, ...]``, e.g.
    the images of a validation loader), image by image; ``per_image`` of the
    result is the paper's average over the validation images and
    ``per_image_std`` its fluctuation."""
    total = FlopCount.zero()
    for batch in tqdm(batches, disable=not progress, desc="FLOPs", unit="batch"):
        total = total + count_flops(model, batch, per_image=True, elementwise=elementwise,
                                    include_generator=include_generator)
    return total


__all__ = [
    "COMPONENTS",
    "GRAPH_CONV_DEFAULTS",
    "FlopCount",
    "GraphSize",
    "assignment_pairs",
    "average_flops",
    "clustering_flops",
    "conv_flops",
    "count_flops",
    "dynamic_edge_flops",
    "gcn_flops",
    "gmm_flops",
    "graph_conv_name",
    "graph_flops",
    "hgconv_flops",
    "knn_edges",
    "leaf_flops",
    "mlp_flops",
    "pixel_pairs",
    "spline_flops",
]
