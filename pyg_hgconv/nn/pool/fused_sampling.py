r"""The fused CPU kernel of the cluster-centre samplers as a custom op.

Given the random keys that :func:`~pyg_hgconv.nn.pool.sampling.sample_centers`
draws, ``pyg_hgconv/csrc/sampling.cpp`` selects the centres of every image in
one call, threaded over images: the ``K`` largest keys (``'random'``, and
``'importance'`` on its Gumbel keys), or PointRend's candidates, their most
important part and the rest by a second row of keys (``'topk_random'``). Equal
keys or importances are taken in index order, the rule of the PyTorch path's
stable sorts, so both give the same pixels; keys shared by the batch
(evaluation) are ordered once. Registered as the PyTorch custom op
``pyg_hgconv::select_centers`` (no gradient: the output is integer); taken
where :func:`fused_sampling_applies` says so (the library is loaded,
:mod:`~pyg_hgconv.nn.pool.kernels`, and the importance map is on the CPU).
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.kernels import BACKEND

if BACKEND == "fused":
    @torch.library.register_fake("pyg_hgconv::select_centers")
    def _select_centers_fake(keys, importance, rest_keys, batch, num_centers, num_important,
                             num_candidates):
        return keys.new_empty((batch, num_centers), dtype=torch.long)


def fused_sampling_applies(importance: Tensor) -> bool:
    """Whether :func:`fused_select_centers` runs: the library is loaded and the
    ``[B, N]`` importance map (float32) is on the CPU."""
    return BACKEND == "fused" and importance.device.type == "cpu"


def fused_select_centers(keys: Tensor, importance: Tensor | None, rest_keys: Tensor | None,
                         batch: int, num_centers: int, num_important: int,
                         num_candidates: int) -> Tensor:
    """The sorted ``[B, K]`` centres of every image from the keys ``[1 or B, N]``
    (float32): the ``K`` largest, or with ``importance`` ``[B, N]`` and
    ``rest_keys`` PointRend's scheme (``num_important`` of the ``num_candidates``
    largest keys by importance, the rest by ``rest_keys``)."""
    return torch.ops.pyg_hgconv.select_centers(keys, importance, rest_keys, batch, num_centers,
                                               num_important, num_candidates)
