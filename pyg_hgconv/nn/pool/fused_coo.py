r"""The fused CPU kernel that lists the non-zero entries of the tiled assignment.

:meth:`~pyg_hgconv.nn.pool.tiling.TiledAssignment.to_coo` returns every
non-zero :math:`S_{pj}` as ``(pixel, group, weight)``, sorted by pixel, then by
candidate slot. ``pyg_hgconv/csrc/assignment_coo.cpp`` walks the tiles of every
image once to count and once to write (threaded over images), instead of a
permuting copy of the weights and of the candidates, a ``nonzero`` and two
gathers. Registered as the PyTorch custom op ``pyg_hgconv::tiles_to_coo``
(forward only; its output size depends on the data, so the fake kernel
declares a dynamic size). Taken where :func:`fused_coo_applies` says so: the
library is loaded (:mod:`~pyg_hgconv.nn.pool.kernels`), CPU, float32/float64,
and no gradient is needed; the PyTorch path runs otherwise and is the
reference the tests compare against.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND, runs_without_grad

if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::tiles_to_coo")
    def _tiles_to_coo_fake(weight, candidates, batch, height, width, tile_h, tile_w):
        nnz = torch.library.get_ctx().new_dynamic_size()
        return candidates.new_empty((2, nnz)), weight.new_empty((nnz,))


def fused_coo_applies(weight: Tensor) -> bool:
    """Whether :func:`fused_tiles_to_coo` runs on the tiled weights ``weight``."""
    return runs_without_grad(BACKEND, weight)


def fused_tiles_to_coo(weight: Tensor, candidates: Tensor, grid) -> tuple[Tensor, Tensor]:
    """``(assign_index [2, nnz] = (pixel, group), assign_weight [nnz])`` of the
    tiled ``weight [T, m, P]`` with ``candidates [T, m]`` on ``grid``'s tiling,
    sorted by pixel, then by slot (no gradient)."""
    return torch.ops.pyg_hgconv.tiles_to_coo(weight, candidates, grid.batch_size, grid.height,
                                             grid.width, grid.tile_h, grid.tile_w)
