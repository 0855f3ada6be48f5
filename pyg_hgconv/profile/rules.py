r"""The FLOP rules: pure functions of sizes, one per operation.

HG-Conv's graph differs per image, so its cost does too (paper, Sec. 5.1: "we
evaluate the FLOPs of the HG-Conv by the average over the validation
images"). :func:`~pyg_hgconv.profile.count_flops` runs one forward pass with
hooks that read the actual group graphs;
:func:`~pyg_hgconv.profile.conv_flops` prices a single registry convolution on
a given graph or map.

Convention
----------
**One multiply-accumulate (MAC) is one FLOP**, the convention of fvcore /
mmcv / ptflops that most segmentation papers (and the HG-Conv paper's GFLOPs)
use; a lone multiplication, division, square root or exponential also counts
1. Additions that accumulate products are the "A" of a MAC and free; pure
additions, subtractions, comparisons, sorting, top-k and index operations
(residual sums, ``torch.cat``, max aggregation, random sampling) count 0.
Leaf modules follow the ptflops rules of :mod:`pyg_hgconv.profile.modules`
(the rules the TVConv paper's figures use; :mod:`tvconv` registers its layers'
rules there, so ``tvconv.count_macs`` is this counter): a bias adds 1 per output
element, and with
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
``TVConv`` (cached)    ``out.numel() * (k^2 + [bias])`` (registered by
                       :mod:`tvconv.macs`; ``include_generator=True`` adds
                       generating the kernels)
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
``spline`` (PyG)       degree :math:`d`, :math:`D` dimensions, :math:`S = (d + 1)^D`
                       active kernels per edge: :math:`E S D` (B-spline basis
                       products) :math:`+ E S (C_{in} C_{out} + C_{out})` (the
                       active kernels, scaled by their basis)
                       :math:`+ [\text{mean}] N_t C_{out} + [\text{root}] N_t C_{in}
                       C_{out} + [\text{bias}] N_t C_{out}`
``spline`` (fused)     :class:`~pyg_hgconv.nn.conv.spline_conv.FusedSplineConv`,
                       :math:`K` kernels: :math:`N_s C_{in} K C_{out}` (all kernels on
                       all sources) :math:`+ E S D + E S C_{out}` (basis, sparse
                       product) and the same target terms
``dynamic_edge``       :math:`\sum_b n_b^2 C_{in}` (brute-force k-NN distances within
                       each of the batch's graphs of :math:`n_b` nodes)
                       :math:`+ E \cdot \mathrm{MLP}` (the MLP's layers by the rules
                       here, for one edge; :math:`E = \sum_b n_b \min(k, n_b)`)
                       :math:`+ [\text{mean}] N_t C_{out}`; max aggregation is free
clustering             :class:`~pyg_hgconv.ImageToGroupGraph` on :math:`B` images of
                       :math:`n = HW` pixels, embedding width :math:`D` (:math:`D' =
                       D + 2` with the coordinates), :math:`K` centres, :math:`T`
                       SLIC iterations, :math:`G` groups; the tiled assignment has
                       :math:`T_t` tiles of :math:`P` pixels (padding included)
                       and :math:`m` candidates, :math:`E_S = T_t m P` stored
                       entries. As the code runs, by step (``name[step]``):

                       * ``embedding`` (with ``embed_channels``): the 1x1
                         projection, :math:`B n C D` :math:`+ [\text{bias}] B n D`;
                       * ``importance``: :math:`P_{px} (D + 1) + B n` over the
                         :math:`P_{px}` neighbouring pixel pairs (:math:`C` instead of
                         :math:`D` with ``importance_from='features'``);
                       * ``focus`` (with attention, Eq. 11): :math:`2 B n`;
                       * ``features``: :math:`4 B n D + 2 n`;
                       * ``candidates``: :math:`2 T_t K + 2 E_S` (tile-to-centre
                         distances, every pixel's nearest candidate);
                       * ``slic``: :math:`T [E_S (2 D' + 3) + B K D'] + E_S`;
                       * ``pooling`` (Eq. 5): :math:`(E_S + G)(C + 2)` (features
                         and centroids);
                       * ``adjacency`` (Eq. 4): :math:`m^2 \sum L` over the
                         ``[m, L] x [L, m]`` block products of neighbouring tiles
                         (4 directions; noise cancelling and the direction choice
                         are subtractions and comparisons); the counter replaces
                         it by :func:`assignment_pairs` where the fused kernel,
                         which multiplies the non-zero entries only, runs.

                       :func:`clustering_flops_ideal` gives what a perfectly sparse
                       implementation would cost (products over the ``nnz``
                       non-zeros of :math:`S` only), for reference.
group-graph module     :class:`~pyg_hgconv.nn.models.hg_conv_module.GroupGraphModule` (e.g.
                       :class:`~pyg_hgconv.HGConvModule`), by step: ``unpool``
                       (Eq. 6) :math:`E_S (C_{out} + 1)` (tiled; :math:`(nnz + B n)
                       C_{out}` in coordinate form); ``pool`` with a given graph
                       (Eq. 5) :math:`(E_S + G) C_{in}` (tiled; :math:`(nnz + G)
                       C_{in}` in coordinate form); ``pseudo``
                       (Cartesian pseudo-coordinates of gmm/spline, once per graph)
                       :math:`2E`
=====================  ==========================================================

The rules here know nothing of modules; each graph conv's registry entry
(:class:`~pyg_hgconv.nn.conv.registry.ConvSpec`) applies its rule to a built
layer, leaf modules are priced by :mod:`pyg_hgconv.profile.modules`, and
:mod:`pyg_hgconv.profile.counter` runs a model with hooks that call them.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from pyg_hgconv.utils.directions import HALF_DIRECTIONS, OFFSETS


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


def fused_spline_flops(num_sources: int, num_targets: int, num_edges: int, in_channels: int,
                       out_channels: int, num_kernels: int, dim: int = 2, degree: int = 1,
                       root_weight: bool = True, bias: bool = True, mean: bool = True) -> int:
    """FLOPs of :class:`~pyg_hgconv.nn.conv.spline_conv.FusedSplineConv` as it
    runs: :math:`N_s C_{in} K C_{out}` (every kernel on every source node)
    :math:`+ E S D` (basis products) :math:`+ E S C_{out}` (the sparse product,
    one entry per edge and basis product) and the target terms of ``spline``."""
    s = (degree + 1) ** dim
    flops = (num_sources * in_channels * num_kernels * out_channels + num_edges * s * dim
             + num_edges * s * out_channels)
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


@dataclasses.dataclass(frozen=True)
class TilingSize:
    r"""The sizes of a tiled assignment the clustering's products run over.

    Attributes:
        tiles: tiles of the batch :math:`T_t`.
        tile_pixels: pixels per tile :math:`P` (padding included).
        candidates: candidate groups per tile :math:`m`.
        adjacency_elements: :math:`\sum` over the ``[m, L] x [L, m]`` block
            products of Eq. 4 of :math:`L` (block positions, padding included),
            so that the products cost ``adjacency_elements * m * m``.
    """

    tiles: int
    tile_pixels: int
    candidates: int
    adjacency_elements: int

    @property
    def entries(self) -> int:
        """Stored entries of the tiled ``S``, :math:`T_t m P` (zeros included)."""
        return self.tiles * self.candidates * self.tile_pixels


def clustering_flops(batch_size: int, height: int, width: int, in_channels: int,
                     embed_channels: int, num_centers: int, num_iterations: int,
                     num_groups: int, tiling: TilingSize, attention: bool = False,
                     embedding: bool = False, embedding_bias: bool = True,
                     importance_channels: int | None = None) -> dict[str, int]:
    """FLOPs of :class:`~pyg_hgconv.ImageToGroupGraph` by step as the code runs
    them (row ``clustering``): the tiled products cost every stored entry of
    ``S``, zeros and padding included. ``embedding`` says whether the transform
    has its 1x1 projection; ``importance_channels`` is the width of the map the
    importance is computed on (default ``embed_channels``)."""
    b, n, d, k, t = batch_size, height * width, embed_channels, num_centers, num_iterations
    d2 = d + 2
    entries, tiles = tiling.entries, tiling.tiles
    m = tiling.candidates
    c_imp = d if importance_channels is None else importance_channels
    return {
        "embedding": embedding * (b * n * in_channels * d + embedding_bias * b * n * d),
        "importance": pixel_pairs(b, height, width) * (c_imp + 1) + b * n,
        "focus": 2 * b * n * attention,
        "features": 4 * b * n * d + 2 * n,
        # tile -> centre distances (brute force) and every pixel's nearest candidate
        "candidates": 2 * tiles * k + 2 * entries,
        # per iteration: centre sums [m, P] x [P, D' + 1], distances [m, D'] x [D', P],
        # the softmax (exp, divide); then the filter and the final normalisation
        "slic": t * (entries * (2 * d2 + 3) + b * k * d2) + entries,
        # [m, P] x [P, C] per tile, centroids [m, P] x [P, 2], the group averages
        "pooling": entries * (in_channels + 2) + num_groups * (in_channels + 2),
        # one [m, L] x [L, m] product per pair of neighbouring tiles and direction
        "adjacency": tiling.adjacency_elements * m * m,
    }


def clustering_flops_ideal(batch_size: int, height: int, width: int, in_channels: int,
                           embed_channels: int, num_centers: int, num_candidates: int,
                           num_iterations: int, num_groups: int, nnz: int,
                           adjacency_pairs: int) -> dict[str, int]:
    """The steps of :func:`clustering_flops` that a perfectly sparse
    implementation would cost less: products over the ``nnz`` non-zero entries
    of ``S`` and the ``adjacency_pairs`` pairs of non-zero entries of
    neighbouring pixels (:func:`assignment_pairs`) only. For reference; the
    counter reports what runs."""
    b, n, d, k, m, t = (batch_size, height * width, embed_channels, num_centers,
                        num_candidates, num_iterations)
    d2 = d + 2
    return {
        "candidates": 2 * b * n * m,
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

