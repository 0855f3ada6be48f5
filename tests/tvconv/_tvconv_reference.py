"""Slow, obviously-correct references for the TVConv tests."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


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
