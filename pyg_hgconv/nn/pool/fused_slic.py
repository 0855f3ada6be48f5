r"""The fused CPU kernel of the SLIC iterations (Algorithm 1) as a custom op.

One iteration on the tiled assignment (:mod:`~pyg_hgconv.nn.pool.slic`):

.. math::
    X^c = \bar{S}^\top X,\ \bar{S} = S Z^{-1}; \qquad
    S_{ij} \propto \exp\{-\lVert X_i - X^c_j \rVert^2\},\ j \in \mathcal{C}(i),

then the filter :math:`S_{ij} < 10^{-3} \to 0` and the row normalisation.
``pyg_hgconv/csrc/slic.cpp`` runs all iterations of one image in one thread on
buffers the size of the image, threaded over images, instead of the ~10
batched products, gathers and scatters per iteration of the PyTorch path; on
small maps those many small ops are the clustering's fixed cost. It is
registered as the PyTorch custom op ``pyg_hgconv::slic_tiles`` (forward only);
this module adds its fake (meta) kernel, so ``torch.compile`` and
``torch.export`` trace it.

:func:`~pyg_hgconv.nn.pool.slic.slic_assignment` takes it where
:func:`fused_slic_applies` says so: the library is loaded
(:mod:`~pyg_hgconv.nn.pool.kernels`), CPU tensors of one float32/float64 dtype,
and no gradient is needed (inference, ``torch.no_grad()``, the parameter-free
:class:`~pyg_hgconv.transforms.ToGroupGraph`). Otherwise, and for every
gradient, the pure-PyTorch path runs; it stays the reference the tests compare
against.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND, FALLBACK_REASON, runs_without_grad


def backend_info() -> dict[str, str | None]:
    """What the benchmarks record: the SLIC backend in use and, for the
    fallback, why (``"pytorch"`` also runs wherever a gradient is needed)."""
    return {"slic_backend": BACKEND, "slic_fallback_reason": FALLBACK_REASON}


if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::slic_tiles")
    def _slic_tiles_fake(features, valid, origins, candidates, init, fallback, tiles_per_image,
                         num_iterations, threshold, softmax):
        return torch.empty_like(init, memory_format=torch.contiguous_format)


def fused_slic_applies(features: Tensor, origins: Tensor, fallback: Tensor) -> bool:
    """Whether :func:`fused_slic_assignment` runs: the library is loaded, the
    tensors are on the CPU in one float32/float64 dtype, and none of them
    needs a gradient."""
    return runs_without_grad(BACKEND, features, origins, fallback)


def fused_slic_assignment(features: Tensor, valid: Tensor, origins: Tensor, candidates: Tensor,
                          init: Tensor, fallback: Tensor, tiles_per_image: int,
                          num_iterations: int, threshold: float, softmax: bool) -> Tensor:
    r"""Algorithm 1 on tiles by the fused op, without gradient: the arguments
    and the result of :func:`~pyg_hgconv.nn.pool.slic.slic_assignment`
    (``features [T, D, P]``, ``valid [T, 1, P]``, ``origins [T, D]``,
    ``candidates [T, m]``, ``init [T, m, P]``, ``fallback [B K, D]`` ->
    ``[T, m, P]``), with ``tiles_per_image`` the tiles of one image, whose
    candidates index only that image's ``K`` centres."""
    return torch.ops.pyg_hgconv.slic_tiles(features, valid, origins, candidates, init, fallback,
                                           tiles_per_image, num_iterations, float(threshold),
                                           bool(softmax))
