r"""The fused CPU kernel of the whole clustering after the centre sampling.

:class:`~pyg_hgconv.ImageToGroupGraph` turns sampled centres into group graphs
in about a dozen steps (clustering features, tile candidates, Algorithm 1, the
kept centres, Eq. 5 for the centroids and the features, the coordinate form of
:math:`S`, Eq. 4, Eq. 7 and the ``'centroid'`` direction rule); in PyTorch each
is a handful of small ops, whose fixed cost dominates on small maps.
``pyg_hgconv/csrc/clustering.cpp`` runs all of them for one image in one
thread, threaded over images, with the arithmetic of the PyTorch path (the
SLIC iterations of :mod:`~pyg_hgconv.nn.pool.fused_slic`, the per-pixel
entries of :mod:`~pyg_hgconv.nn.pool.fused_adjacency`), and returns the
tensors of the union graph. Registered as the PyTorch custom op
``pyg_hgconv::cluster_images`` (forward only; its output sizes depend on the
data, so the fake kernel declares dynamic sizes).

Taken where :func:`fused_clustering_applies` says so: the library is loaded
(:mod:`~pyg_hgconv.nn.pool.kernels`), CPU tensors of one float32/float64 dtype,
and no gradient is needed (inference, ``torch.no_grad()``, the parameter-free
:class:`~pyg_hgconv.transforms.ToGroupGraph`). Otherwise the step-by-step
PyTorch path runs; it stays the reference the tests compare against.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND, FALLBACK_REASON, FUSED_DTYPES, runs_without_grad
from pyg_hgconv.nn.pool.tiling import TileGrid
from pyg_hgconv.utils.sparse import HALF_DTYPES

#: bytes of the vectors the kernel computes with: Algorithm 1 runs on rows of
#: tile positions padded to a whole number of them (``csrc/vec.h``)
VECTOR_BYTES = 64


def backend_info() -> dict[str, str | None]:
    """What the benchmarks record: the clustering backend in use and, for the
    fallback, why (``"pytorch"`` also runs wherever a gradient is needed)."""
    return {"clustering_backend": BACKEND, "clustering_fallback_reason": FALLBACK_REASON}


class ClusteredImages(NamedTuple):
    """What :func:`fused_cluster_images` returns (the union graph of the batch)."""

    tile_weight: Tensor       # [T, m, P]
    tile_candidates: Tensor   # [T, m] global group ids
    groups_per_image: Tensor  # [B]
    mass: Tensor              # [N_grp]
    center_pixel: Tensor      # [N_grp] within the image
    pos: Tensor               # [N_grp, 2] centroids (x, y)
    x: Tensor                 # [N_grp, C] pooled features (C = 0 without a map)
    assign_index: Tensor      # [2, nnz] (pixel, group)
    assign_weight: Tensor     # [nnz]
    edge_index: Tensor        # [2, E] (empty without edges)
    edge_type: Tensor         # [E]
    edge_weight: Tensor       # [E]


if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::cluster_images")
    def _cluster_images_fake(embedding, centers, x, tile_h, tile_w, num_candidates,
                             feature_scale, position_scale, num_iterations, threshold, softmax,
                             edges, noise_cancel, edge_threshold, tan_sector, eps):
        ctx = torch.library.get_ctx()
        b, _, h, w = embedding.shape
        tiles = b * (-(-h // tile_h)) * (-(-w // tile_w))
        groups, nnz, num_edges = (ctx.new_dynamic_size() for _ in range(3))
        channels = 0 if x is None else x.size(1)
        long = dict(dtype=torch.long)
        return (embedding.new_empty((tiles, num_candidates, tile_h * tile_w)),
                embedding.new_empty((tiles, num_candidates), **long),
                embedding.new_empty((b,), **long), embedding.new_empty((groups,)),
                embedding.new_empty((groups,), **long), embedding.new_empty((groups, 2)),
                embedding.new_empty((groups, channels)), embedding.new_empty((2, nnz), **long),
                embedding.new_empty((nnz,)), embedding.new_empty((2, num_edges), **long),
                embedding.new_empty((num_edges,), **long), embedding.new_empty((num_edges,)))


def fused_clustering_applies(embedding: Tensor, x: Tensor, scales: Tensor) -> bool:
    """Whether :func:`fused_cluster_images` runs: the library is loaded, the
    embedding and the map are CPU tensors of one float32/float64 dtype, and
    none of them nor the clustering scales needs a gradient."""
    return (runs_without_grad(BACKEND, embedding, x)
            and not (torch.is_grad_enabled() and scales.requires_grad))


def runs_without_grad_on(x: Tensor) -> bool:
    """Whether :class:`~pyg_hgconv.ImageToGroupGraph` clusters ``x`` with this
    kernel where no gradient is needed (what the FLOP counter prices): the library
    is loaded and ``x`` is a CPU tensor of float32/float64 (or of half precision,
    which the module clusters in float32)."""
    return (BACKEND == "fused" and x.device.type == "cpu"
            and (x.dtype in FUSED_DTYPES or x.dtype in HALF_DTYPES))


def padded_positions(tile_pixels: int, dtype: torch.dtype) -> int:
    """The positions of a tile's row in the kernel's SLIC: ``tile_pixels``
    rounded up to whole vectors of :data:`VECTOR_BYTES` (half precision is
    clustered in float32)."""
    itemsize = 8 if dtype == torch.float64 else 4
    lanes = VECTOR_BYTES // itemsize
    return -(-tile_pixels // lanes) * lanes


def fused_cluster_images(embedding: Tensor, centers: Tensor, x: Tensor | None, grid: TileGrid,
                         num_candidates: int, feature_scale: float, position_scale: float,
                         num_iterations: int, threshold: float, softmax: bool, edges: bool,
                         noise_cancel: bool, edge_threshold: float, tan_sector: float,
                         eps: float) -> ClusteredImages:
    r"""Steps 3-5 of :class:`~pyg_hgconv.ImageToGroupGraph` by the fused op.

    Args:
        embedding (Tensor): ``[B, D, H, W]`` clustering features before their
            standardisation.
        centers (LongTensor): ``[B, K]`` sampled centre pixels of every image.
        x (Tensor, optional): ``[B, C, H, W]`` map to pool (Eq. 5), channels-last
            (row by row) or contiguous (the planes of every tile transposed in
            registers first).
        grid (TileGrid): the tiling.
        num_candidates (int): candidates per tile :math:`m \le K`.
        feature_scale, position_scale (float): :math:`s_f / \sqrt{D}` and
            :math:`s_p / r`.
        num_iterations, threshold, softmax: Algorithm 1
            (:func:`~pyg_hgconv.nn.pool.slic.slic_assignment`).
        edges (bool): build the ``'centroid'`` rule's edges (Eqs. 4, 7) with
            ``noise_cancel``, ``edge_threshold`` and the sector bound
            ``tan_sector``.
        eps (float): the guard of the divisions by a group's mass.
    """
    return ClusteredImages(*torch.ops.pyg_hgconv.cluster_images(
        embedding, centers, x, grid.tile_h, grid.tile_w, num_candidates, float(feature_scale),
        float(position_scale), num_iterations, float(threshold), bool(softmax), bool(edges),
        bool(noise_cancel), float(edge_threshold), float(tan_sector), float(eps)))
