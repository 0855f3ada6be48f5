"""Slow, obviously-correct references for the TVConv tests."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor

from tvconv.apply import conv_output_size


def per_pixel_shapes(min_batch: int = 1, max_channels: int = 5) -> st.SearchStrategy[dict]:
    """Random per-pixel conv problems: the keyword arguments of :func:`per_pixel_case`."""
    return st.fixed_dictionaries({
        "batch": st.integers(min_batch, 3),
        "channels": st.integers(1, max_channels),
        "height": st.integers(1, 9),
        "width": st.integers(1, 9),
        "kernel_size": st.sampled_from([1, 3, 5]),
        "stride": st.sampled_from([1, 2, 3]),
        "bias": st.booleans(),
        "channels_last": st.booleans(),
        "seed": st.integers(0, 2**16),
    })


def per_pixel_case(batch, channels, height, width, kernel_size, stride, bias, channels_last,
                   seed, dtype=torch.float64) -> tuple[Tensor, Tensor, Tensor | None]:
    """Input ``x``, kernels ``[C, k*k, H_out, W_out]`` and optional bias of one problem."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=gen, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out_size = conv_output_size((height, width), kernel_size, stride)
    w = torch.randn(channels, kernel_size ** 2, *out_size, generator=gen, dtype=dtype)
    b = torch.randn(channels, *out_size, generator=gen, dtype=dtype) if bias else None
    return x, w, b


def unfold_reference(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """Eq. (2) via ``F.unfold``: every k x k patch times its own kernel, summed.

    ``weight`` is ``[C, k*k, H_out, W_out]``, ``bias`` ``[C, H_out, W_out]``.
    """
    batch, channels = x.shape[:2]
    k = math.isqrt(weight.shape[1])
    out_h, out_w = weight.shape[-2:]
    patches = F.unfold(x, k, padding=(k - 1) // 2, stride=stride)
    patches = patches.view(batch, channels, k * k, out_h, out_w)
    out = (patches * weight).sum(dim=2)
    return out if bias is None else out + bias


def uncached_output(layer, x: Tensor) -> Tensor:
    """What ``layer(x)`` must return: kernels freshly generated from the current parameters."""
    size = layer.output_size(x.shape[-2:])
    with torch.no_grad():
        weight, bias = layer.generate(size)
        return unfold_reference(x, weight, bias, layer.stride)
