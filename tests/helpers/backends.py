"""Running a test under either backend of the clustering's SLIC iterations."""
from __future__ import annotations

import contextlib
from unittest import mock

import pytest

from pyg_hgconv.nn.pool import fused_slic

#: the SLIC backends a test can run under: the fused kernel (where it is
#: built) and the pure-PyTorch path
SLIC_BACKENDS = [
    pytest.param("fused", marks=pytest.mark.skipif(
        fused_slic.BACKEND != "fused", reason=f"fused kernel: {fused_slic.FALLBACK_REASON}")),
    "pytorch",
]


@contextlib.contextmanager
def slic_backend(name: str):
    """Run the enclosed code with the fused SLIC kernel (``"fused"``, as loaded)
    or the pure-PyTorch path (``"pytorch"``)."""
    if name == "fused":
        yield
        return
    with mock.patch.object(fused_slic, "BACKEND", "pytorch"):
        yield
