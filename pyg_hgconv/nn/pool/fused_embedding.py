r"""The fused CPU kernel of the clustering embedding as a custom op.

.. math::
    \mathbf{e}_p = W \mathbf{x}_p + \mathbf{b}

for every pixel :math:`p` of ``x`` ``[B, C, H, W]`` (the 1x1 convolution of
:class:`~pyg_hgconv.ImageToGroupGraph`, ``W`` ``[D, C]``). ``pyg_hgconv/csrc/
embedding.cpp`` adds every output's products one by one in channel order, on
contiguous or channels-last maps (the output keeps the input's memory format),
threaded over blocks of pixels: an output depends only on its own pixel, so an
image's embedding has the same bits alone or in any batch and on any number of
threads, as the evaluation-mode clustering requires (a batched matrix product
may block its sums by the batch's shape). Registered as the PyTorch custom op
``pyg_hgconv::pixel_embedding`` (forward only); taken where
:func:`fused_embedding_applies` says so (the library is loaded,
:mod:`~pyg_hgconv.nn.pool.kernels`, CPU, float32/float64, no gradient needed).
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND, runs_without_grad
from pyg_hgconv.utils.kernels import reads_channels_last

if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::pixel_embedding")
    def _pixel_embedding_fake(x, weight, bias):
        b, _, h, w = x.shape
        out = x.new_empty((b, weight.size(0), h, w))
        return out.contiguous(memory_format=torch.channels_last) if reads_channels_last(x) else out


def fused_embedding_applies(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    """Whether :func:`fused_pixel_embedding` runs: the library is loaded, the map
    and the parameters are CPU tensors of one float32/float64 dtype, and none of
    them needs a gradient."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return runs_without_grad(BACKEND, *tensors)


def fused_pixel_embedding(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The embedding ``[B, D, H, W]`` of ``x`` ``[B, C, H, W]`` by ``weight``
    ``[D, C]`` and ``bias`` ``[D]`` (optional), in the memory format of ``x``."""
    return torch.ops.pyg_hgconv.pixel_embedding(x, weight, bias)
