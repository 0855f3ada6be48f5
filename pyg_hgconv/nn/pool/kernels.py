"""The compiled library of the clustering's fused CPU kernels, loaded once.

``pyg_hgconv/csrc`` holds the kernels of one library,
``pyg_hgconv/_lib/pyg_hgconv_kernels.so`` (``make`` builds it with
``tools/build_kernels.py``): the whole no-grad clustering after the centre
sampling (:mod:`~pyg_hgconv.nn.pool.fused_clustering`), the clustering
embedding (:mod:`~pyg_hgconv.nn.pool.fused_embedding`), the importance map
(:mod:`~pyg_hgconv.nn.pool.fused_importance`), the centre samplers
(:mod:`~pyg_hgconv.nn.pool.fused_sampling`), and the separate steps: the group
adjacency of Eq. 4 (:mod:`~pyg_hgconv.nn.pool.fused_adjacency`), the SLIC
iterations of Algorithm 1 (:mod:`~pyg_hgconv.nn.pool.fused_slic`), the
coordinate form of the assignment (:mod:`~pyg_hgconv.nn.pool.fused_coo`), and
pooling and unpooling on channels-last maps
(:mod:`~pyg_hgconv.nn.pool.fused_pooling`). :data:`BACKEND` says
whether it is loaded and :data:`FALLBACK_REASON` why not;
``PYG_HGCONV_KERNELS=0`` in the environment forces the pure-PyTorch paths.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pyg_hgconv.utils.kernels import load_kernel_library

LIBRARY = Path(__file__).resolve().parents[2] / "_lib" / "pyg_hgconv_kernels.so"
#: the dtypes the kernels are compiled for
FUSED_DTYPES = (torch.float32, torch.float64)

FALLBACK_REASON: str | None = load_kernel_library(LIBRARY, "PYG_HGCONV_KERNELS")
#: ``"fused"`` when the library is loaded, else ``"pytorch"``.
BACKEND: str = "pytorch" if FALLBACK_REASON else "fused"


def runs_without_grad(backend: str, *tensors: Tensor) -> bool:
    """Whether a forward-only fused op may run on ``tensors``: ``backend`` (the
    calling module's :data:`BACKEND`, which tests may switch off) is ``"fused"``,
    the tensors are on the CPU in one float32/float64 dtype, and none of them
    needs a gradient."""
    if backend != "fused":
        return False
    dtype = tensors[0].dtype
    if dtype not in FUSED_DTYPES or any(t.device.type != "cpu" or t.dtype != dtype
                                        for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
