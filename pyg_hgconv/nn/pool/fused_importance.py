r"""The fused CPU kernel of the importance map as a custom op.

.. math::
    C_{imp}[p] = \frac{1}{|\mathcal{N}(p)|} \sum_{q \in \mathcal{N}(p)}
    \lVert \mathbf{x}_p - \mathbf{x}_q \rVert_2

``pyg_hgconv/csrc/importance.cpp`` computes it for every image in one pass per
half direction, threaded over images, on contiguous or channels-last maps,
adding the pair distances in the order of the PyTorch path
(:func:`~pyg_hgconv.nn.pool.importance.importance_map`), so a one-channel map
gives the same bits and a wider one the same values to float tolerance.
Registered as the PyTorch custom op ``pyg_hgconv::importance_map`` (forward
only: the map is detached); taken where :func:`fused_importance_applies` says
so (the library is loaded, :mod:`~pyg_hgconv.nn.pool.kernels`, CPU,
float32/float64).
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND, runs_without_grad

if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::importance_map")
    def _importance_map_fake(x):
        return x.new_empty((x.size(0), x.size(2), x.size(3)))


def fused_importance_applies(x: Tensor) -> bool:
    """Whether :func:`fused_importance_map` runs on ``x`` (the library is loaded,
    CPU, float32/float64, no gradient needed)."""
    return runs_without_grad(BACKEND, x)


def fused_importance_map(x: Tensor) -> Tensor:
    """The importance map ``[B, H, W]`` of features ``x`` ``[B, C, H, W]``."""
    return torch.ops.pyg_hgconv.importance_map(x)
