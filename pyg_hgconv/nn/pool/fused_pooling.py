r"""Fused CPU kernels of pooling (Eq. 5) and unpooling (Eq. 6) on channels-last maps.

.. math::
    \hat{X} = \bar{S}^\top X = Z^{-1} S^\top X \quad (5), \qquad
    X = \tilde{Z}^{-1} S X' \quad (6),

straight from the tiled assignment. A channels-last map holds every pixel's
channels contiguously, so ``pyg_hgconv/csrc/pooling.cpp`` walks the few
non-zero entries of every pixel and adds or reads whole channel rows
(vectorised over the channels), without the copies into and out of the tile
layout that the batched products of
:class:`~pyg_hgconv.nn.pool.tiling.TiledAssignment` need. Registered as the
PyTorch custom ops ``pyg_hgconv::pool_channels_last`` and
``pyg_hgconv::unpool_channels_last`` (forward only; the fake kernels are here).

Taken where :func:`fused_pool_applies` / :func:`fused_unpool_applies` say so:
the library is loaded (:mod:`~pyg_hgconv.nn.pool.kernels`), CPU, float32/float64,
no gradient needed, and for pooling a channels-last input. The unpooled map is
channels-last (as the coordinate-form unpooling gives it); the PyTorch path runs
otherwise and is the reference the tests compare against.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND, runs_without_grad

if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::pool_channels_last")
    def _pool_fake(x, weight, candidates, num_groups, tile_h, tile_w, eps):
        return x.new_empty((num_groups, x.size(1)))

    @torch.library.register_fake("pyg_hgconv::unpool_channels_last")
    def _unpool_fake(z, weight, candidates, batch, height, width, tile_h, tile_w, eps):
        return z.new_empty((batch, z.size(1), height, width)).contiguous(
            memory_format=torch.channels_last)


def fused_pool_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`fused_pool` runs: ``x`` channels-last, CPU, float32/64
    (``weight`` too), and no gradient needed."""
    return (x.is_contiguous(memory_format=torch.channels_last)
            and runs_without_grad(BACKEND, x, weight))


def fused_unpool_applies(z: Tensor, weight: Tensor) -> bool:
    """Whether :func:`fused_unpool` runs: CPU, float32/64, no gradient needed."""
    return runs_without_grad(BACKEND, z, weight)


def fused_pool(x: Tensor, weight: Tensor, candidates: Tensor, num_groups: int, grid,
               eps: float) -> Tensor:
    """Eq. 5: ``x [B, C, H, W]`` (channels-last) -> ``[N_grp, C]``, with the
    tiled ``weight [T, m, P]`` (the dtype of ``x``), ``candidates [T, m]``
    and the mass guard ``eps``."""
    return torch.ops.pyg_hgconv.pool_channels_last(x, weight, candidates, num_groups,
                                                   grid.tile_h, grid.tile_w, float(eps))


def fused_unpool(z: Tensor, weight: Tensor, candidates: Tensor, grid, eps: float) -> Tensor:
    """Eq. 6: ``z [N_grp, C]`` -> ``[B, C, H, W]`` (channels-last)."""
    return torch.ops.pyg_hgconv.unpool_channels_last(z, weight, candidates, grid.batch_size,
                                                     grid.height, grid.width, grid.tile_h,
                                                     grid.tile_w, float(eps))
