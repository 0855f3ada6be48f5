"""Running a test under either backend of the clustering's fused CPU kernels."""
from __future__ import annotations

import contextlib
from unittest import mock

import pytest

from pyg_hgconv.nn.pool import (
    fused_adjacency,
    fused_clustering,
    fused_coo,
    fused_embedding,
    fused_importance,
    fused_pooling,
    fused_sampling,
    fused_slic,
    kernels,
)

#: the SLIC backends a test can run under: the fused kernel (where it is
#: built) and the pure-PyTorch path
SLIC_BACKENDS = [
    pytest.param("fused", marks=pytest.mark.skipif(
        fused_slic.BACKEND != "fused", reason=f"fused kernel: {fused_slic.FALLBACK_REASON}")),
    "pytorch",
]

#: every module that decides by its BACKEND whether a fused op runs
KERNEL_MODULES = (fused_adjacency, fused_clustering, fused_coo, fused_embedding, fused_importance,
                  fused_pooling, fused_sampling, fused_slic)

#: skip a test that needs the compiled library
needs_kernels = pytest.mark.skipif(kernels.BACKEND != "fused",
                                   reason=f"fused kernels: {kernels.FALLBACK_REASON}")


@contextlib.contextmanager
def slic_backend(name: str):
    """Run the enclosed code with the fused SLIC kernel (``"fused"``, as loaded)
    or the pure-PyTorch path (``"pytorch"``)."""
    if name == "fused":
        yield
        return
    with mock.patch.object(fused_slic, "BACKEND", "pytorch"):
        yield


@contextlib.contextmanager
def kernels_backend(name: str):
    """Run the enclosed code with every fused kernel of the clustering
    (``"fused"``, as loaded) or with none: the step-by-step PyTorch path
    (``"pytorch"``)."""
    if name == "fused":
        yield
        return
    with contextlib.ExitStack() as stack:
        for module in KERNEL_MODULES:
            stack.enter_context(mock.patch.object(module, "BACKEND", "pytorch"))
        yield


def use_pytorch_kernels(monkeypatch) -> None:
    """For the rest of a test: none of the clustering's fused kernels, the
    step-by-step PyTorch path (``monkeypatch`` restores them)."""
    for module in KERNEL_MODULES:
        monkeypatch.setattr(module, "BACKEND", "pytorch")
