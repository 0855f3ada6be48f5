r"""The node features times a stack of K transforms, :math:`X W_k` for every k at
once: HG-Conv's nine per-direction transforms (paper, Eq. 2) and SplineConv's K
kernels.

:func:`stacked_products` returns them stacked kernel-major, the rows the layers'
sparse ``[N, K N]`` aggregations read. Outside autograd, on CPU, in float32 and
for products large enough (unless ``torch.backends.mkldnn`` is disabled), it runs
as one oneDNN matrix product of ``X`` with the K transforms side by side
(``torch.ops.mkldnn._linear_pointwise``), which on the AVX-512 machine the project
is measured on outran the batched (MKL) product of ``torch.matmul``, the
kernel-major copy included (``python -m benchmarks.hgconv_perf`` times the HG-Conv
module). Everywhere else (autograd, other devices and dtypes, small products,
builds without oneDNN, tracing) it is ``torch.matmul``.

The weight is read as a ``[K C_out, C_in]`` matrix: a view where the parameter is
stored ``(kernel, out, in)`` in memory (:func:`kernel_major_empty`, HGConv's
storage), else a copy (FusedSplineConv keeps PyG's storage).
"""
from __future__ import annotations

import torch
from torch import Tensor

#: multiply-adds from which the oneDNN product pays for its fixed cost
ONEDNN_MIN_MACS = 1 << 22
#: dtypes the oneDNN path takes (bfloat16 would need AVX-512 BF16 support on the CPU)
ONEDNN_DTYPES = (torch.float32,)


def onednn_linear_available() -> bool:
    """Whether this PyTorch build has oneDNN's linear kernel."""
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


_ONEDNN = onednn_linear_available()


def backend_info() -> dict[str, str | int | None]:
    """What the benchmarks record: the library of the large products outside
    autograd on CPU (``"onednn"``, or ``"matmul"`` where this build lacks oneDNN's
    linear kernel or ``torch.backends.mkldnn`` is disabled), why not oneDNN, and
    the multiply-adds from which a product takes it."""
    if not _ONEDNN:
        reason = "this PyTorch build has no oneDNN linear kernel"
    elif not torch.backends.mkldnn.enabled:
        reason = "torch.backends.mkldnn is disabled"
    else:
        reason = None
    return {"products_backend": "matmul" if reason else "onednn",
            "products_fallback_reason": reason, "products_onednn_min_macs": ONEDNN_MIN_MACS}


def kernel_major_empty(kernels: int, in_channels: int, out_channels: int,
                       **kwargs) -> Tensor:
    """An uninitialised ``[kernels, in_channels, out_channels]`` tensor stored
    ``(kernel, out, in)`` in memory, so that :func:`stacked_products` reads it as a
    ``[kernels * out_channels, in_channels]`` matrix without a copy."""
    return torch.empty(kernels, out_channels, in_channels, **kwargs).transpose(1, 2)


def runs_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`stacked_products` takes the oneDNN product for these operands."""
    if not _ONEDNN or not torch.backends.mkldnn.enabled:
        return False
    if x.device.type != "cpu" or x.dim() != 2:
        return False
    if x.dtype not in ONEDNN_DTYPES or weight.dtype != x.dtype:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    if torch.compiler.is_compiling():
        return False
    return x.numel() > 0 and x.size(0) * weight.numel() >= ONEDNN_MIN_MACS


def stacked_products(x: Tensor, weight: Tensor) -> Tensor:
    r""":math:`X W_k` for every transform :math:`W_k` of a stack, stacked kernel-major.

    Args:
        x: node features ``[N, C_in]``.
        weight: the transforms ``[K, C_in, C_out]`` (any memory layout).

    Returns:
        ``[K N, C_out]``: row ``k N + j`` is :math:`x_j W_k`. Differentiable in
        both operands (the oneDNN path only runs where no gradient is needed).
    """
    if weight.dim() != 3:
        raise ValueError(f"'weight' must be [K, C_in, C_out] (got shape {tuple(weight.shape)})")
    kernels, in_channels, out_channels = weight.shape
    if x.dim() != 2 or x.size(1) != in_channels:
        raise ValueError(f"'x' must be [N, C_in] with C_in = {in_channels} as in 'weight' "
                         f"(got shape {tuple(x.shape)})")
    num_nodes = x.size(0)
    if not runs_onednn(x, weight):
        return torch.matmul(x, weight).reshape(kernels * num_nodes, out_channels)
    stacked = weight.transpose(1, 2).reshape(kernels * out_channels, in_channels)
    out = torch.ops.mkldnn._linear_pointwise(x.contiguous(), stacked, None, "none", [], "")
    return out.view(num_nodes, kernels, out_channels).transpose(0, 1).reshape(
        kernels * num_nodes, out_channels)
