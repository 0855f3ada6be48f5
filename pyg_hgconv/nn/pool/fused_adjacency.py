r"""The fused CPU kernel of the per-image group adjacency (Eq. 4) as a custom op.

.. math::
    \hat{A}^\delta_{b, g h} = \sum_p S_{p g}\, S_{p + \delta, h} \qquad (4)

for the four half directions :math:`\delta` of
:data:`~pyg_hgconv.utils.directions.HALF_DIRECTIONS` and the groups
:math:`g, h` of image :math:`b` (local indices), as dense ``[B, 4, n, n]``
blocks. ``pyg_hgconv/csrc/group_adjacency.cpp`` visits only the non-zero
entries of the tiled assignment (a few per pixel after Algorithm 1's
:math:`10^{-3}` filter), threaded over images. ``make`` builds it
(``tools/build_kernels.py``) into ``pyg_hgconv/_lib``
(:mod:`~pyg_hgconv.nn.pool.kernels`); it is registered as the
PyTorch custom ops ``pyg_hgconv::half_direction_blocks`` and
``pyg_hgconv::half_direction_blocks_backward``, and this module adds their fake
(meta) kernels and the autograd formula (first order).

:func:`~pyg_hgconv.nn.pool.adjacency.dense_half_blocks` is the one entry
point: the fused op where it applies (the library is loaded, CPU tensors,
float32/float64), otherwise the pure-PyTorch tile-block products, which stay
the reference the tests compare against. :data:`BACKEND` says which is in use and
:data:`FALLBACK_REASON` why the fused one is not; ``PYG_HGCONV_KERNELS=0`` in
the environment forces the fallback.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import (
    BACKEND,
    FALLBACK_REASON,
    FUSED_DTYPES,
    runs_without_grad,
)


def backend_info() -> dict[str, str | None]:
    """What the benchmarks record: the backend in use and, for the fallback, why."""
    return {"adjacency_backend": BACKEND, "adjacency_fallback_reason": FALLBACK_REASON}


if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::centroid_edges")
    def _centroid_edges_fake(half, pos, counts, noise_cancel, threshold, tan_sector):
        num_edges = torch.library.get_ctx().new_dynamic_size()
        return (counts.new_empty((2, num_edges)), counts.new_empty((num_edges,)),
                half.new_empty((num_edges,)))

    @torch.library.register_fake("pyg_hgconv::half_direction_blocks")
    def _half_direction_blocks_fake(weight, local, batch, height, width, tile_h, tile_w, n):
        return weight.new_empty((batch, 4, n, n))

    @torch.library.register_fake("pyg_hgconv::half_direction_blocks_backward")
    def _half_direction_blocks_backward_fake(grad, weight, local, batch, height, width,
                                             tile_h, tile_w, n):
        return torch.empty_like(weight)

    def _setup_context(ctx, inputs, output):
        weight, local, *sizes = inputs
        ctx.sizes = sizes
        ctx.save_for_backward(weight, local)

    def _backward(ctx, grad):
        weight, local = ctx.saved_tensors
        grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_weight = torch.ops.pyg_hgconv.half_direction_blocks_backward(
                grad, weight, local, *ctx.sizes)
        return (grad_weight, *([None] * (1 + len(ctx.sizes))))

    torch.library.register_autograd("pyg_hgconv::half_direction_blocks", _backward,
                                    setup_context=_setup_context)


def fused_applies(weight: Tensor) -> bool:
    """Whether the fused op runs on ``weight`` (the library is loaded, CPU, float32/64)."""
    return BACKEND == "fused" and weight.device.type == "cpu" and weight.dtype in FUSED_DTYPES


def fused_half_direction_blocks(weight: Tensor, local_candidates: Tensor, grid,
                                 n: int) -> Tensor:
    r"""The ``[B, 4, n, n]`` blocks :math:`\hat{A}^\delta` of every image (Eq. 4)
    for the four half directions by the fused op (see :func:`fused_applies`).

    Args:
        weight (Tensor): ``[T, m, P]`` the tiled :math:`S`.
        local_candidates (LongTensor): ``[T, m]`` the candidates' group index
            within their image (``< n``).
        grid (TileGrid): the tiling (``batch_size`` images).
        n (int): the largest number of groups of an image.

    Returns:
        ``[B, 4, n, n]``, entry ``[b, d, g, h]`` the weight of ``h -> g`` in
        half direction ``d``; differentiable in ``weight``.
    """
    return torch.ops.pyg_hgconv.half_direction_blocks(
        weight, local_candidates, grid.batch_size, grid.height, grid.width, grid.tile_h,
        grid.tile_w, n)


def fused_centroid_applies(half: Tensor, pos: Tensor) -> bool:
    """Whether :func:`fused_centroid_edges` runs: the library is loaded, CPU,
    ``half`` and ``pos`` of one float32/float64 dtype, no gradient needed."""
    return runs_without_grad(BACKEND, half, pos.detach())


def fused_centroid_edges(half: Tensor, pos: Tensor, counts: Tensor, noise_cancel: bool,
                         threshold: float, tan_sector: float):
    r"""The ``'centroid'`` rule's edges from the dense half blocks, by the fused
    op ``pyg_hgconv::centroid_edges`` (``pyg_hgconv/csrc/centroid_edges.cpp``,
    no gradient): Eq. 7 when ``noise_cancel``, one edge per pair whose whole
    contact :math:`\sum_\delta \hat{A}^\delta_{ts} + \hat{A}^\delta_{st}`
    reaches ``threshold``, typed by the sector of the centroid displacement,
    and the identity self loops.

    Args:
        half (Tensor): ``[B, 4, n, n]`` blocks of Eq. 4 before Eq. 7.
        pos (Tensor): ``[N, 2]`` group centroids ``(x, y)`` in node order.
        counts (LongTensor): ``[B]`` groups of every image.

    Returns:
        ``(edge_index [2, E], edge_type [E], edge_weight [E])`` sorted by
        target, then type, then source.
    """
    return torch.ops.pyg_hgconv.centroid_edges(half, pos, counts, bool(noise_cancel),
                                               float(threshold), float(tan_sector))
