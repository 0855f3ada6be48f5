r"""Importance maps and active focus (paper, Sec. 4.1 and supplementary D).

The importance of a pixel is the L2 distance between its feature and the
features of its adjacent pixels (here: the mean over the up to eight
neighbours inside the image). Active focus modulates it with a task-specific
attention map (Eq. 11); two attention maps are defined, object-aware (Eq. 12)
and uncertainty-aware (Eq. 13).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.fused_importance import fused_importance_applies, fused_importance_map
from pyg_hgconv.utils.checks import check_float_tensor, check_image_features
from pyg_hgconv.utils.directions import HALF_DIRECTIONS, OFFSETS

#: weight :math:`\alpha` of the attention map in Eq. 11
FOCUS_ALPHA = 10.0


def _shifted(x: Tensor, dy: int, dx: int) -> tuple[Tensor, Tensor]:
    """Return the views ``(x[p], x[p + (dy, dx)])`` over all valid pixels ``p``."""
    h, w = x.shape[-2:]
    target = x[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    source = x[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return target, source


@torch.no_grad()
def importance_map(x: Tensor) -> Tensor:
    r"""Return the importance map ``[B, H, W]`` of features ``x`` ``[B, C, H, W]``.

    .. math::
        C_{imp}[p] = \frac{1}{|\mathcal{N}(p)|} \sum_{q \in \mathcal{N}(p)}
        \lVert \mathbf{x}_p - \mathbf{x}_q \rVert_2,

    with :math:`\mathcal{N}(p)` the 8-neighbours of ``p`` inside the image.
    Each unordered pair is computed once (four directions, shifted slices; on
    the CPU the fused kernel of :mod:`~pyg_hgconv.nn.pool.fused_importance`).
    The map is detached: it only decides where cluster centres are sampled.
    A single-pixel image has importance 0.
    """
    check_image_features(x)
    if fused_importance_applies(x):
        return fused_importance_map(x)
    b, _, h, w = x.shape
    total = x.new_zeros(b, h, w)
    count = x.new_zeros(1, h, w)
    for t in HALF_DIRECTIONS:
        dy, dx = OFFSETS[t]
        target, source = _shifted(x, dy, dx)
        dist = (target - source).pow(2).sum(1).sqrt()
        t_tot, s_tot = _shifted(total, dy, dx)
        t_tot.add_(dist)
        s_tot.add_(dist)
        t_cnt, s_cnt = _shifted(count, dy, dx)
        t_cnt.add_(1.0)
        s_cnt.add_(1.0)
    return total / count.clamp_min(1.0)


def _check_map(attention: Tensor, batch_size: int, height: int, width: int) -> Tensor:
    check_float_tensor(attention, "attention")
    if attention.dim() == 4 and attention.size(1) == 1:
        attention = attention[:, 0]
    if attention.dim() != 3 or tuple(attention.shape) != (batch_size, height, width):
        raise ValueError(f"'attention' must have shape [B, 1, H, W] = [{batch_size}, 1, "
                         f"{height}, {width}] (got {tuple(attention.shape)})")
    if not torch.isfinite(attention).all():
        raise ValueError("'attention' must be finite")
    if attention.numel() and (attention.min() < -1e-6 or attention.max() > 1 + 1e-6):
        raise ValueError("'attention' values must lie in [0, 1] (got "
                         f"[{float(attention.min()):.4g}, {float(attention.max()):.4g}])")
    return attention


@torch.no_grad()
def focus_map(importance: Tensor, attention: Tensor, alpha: float = FOCUS_ALPHA) -> Tensor:
    r"""Modulate an importance map with an attention map (active focus, Eq. 11).

    .. math::
        C_{focus} = \frac{1}{Z} C_{imp} + \alpha C_{attn},
        \qquad Z = \max_{i,j} C_{imp}[i, j],

    with :math:`Z` taken per image (a flat image, :math:`Z = 0`, keeps
    :math:`C_{imp} = 0`).

    Args:
        importance (Tensor): ``[B, H, W]``.
        attention (Tensor): ``[B, 1, H, W]`` or ``[B, H, W]``, values in ``[0, 1]``.
        alpha (float): attention weight :math:`\alpha` (paper: 10).

    Returns:
        Tensor ``[B, H, W]``.
    """
    check_float_tensor(importance, "importance", ndim=3, shape_hint="[B, H, W]")
    attention = _check_map(attention, *importance.shape)
    if alpha < 0:
        raise ValueError(f"'alpha' must be >= 0 (got {alpha})")
    z = importance.flatten(1).amax(1).clamp_min(torch.finfo(importance.dtype).tiny)
    return importance / z.view(-1, 1, 1) + alpha * attention.to(importance.dtype)


def _check_probs(probs: Tensor) -> Tensor:
    check_float_tensor(probs, "probs", ndim=4, shape_hint="[B, K, H, W]")
    if probs.numel() and (probs.min() < -1e-6 or probs.max() > 1 + 1e-6):
        raise ValueError("'probs' must hold probabilities in [0, 1]; apply softmax/sigmoid "
                         "to logits first")
    return probs


def object_attention(probs: Tensor, class_index: int) -> Tensor:
    r"""Object-aware attention :math:`C_{attn} = P_k` (Eq. 12).

    Args:
        probs (Tensor): class probabilities ``[B, K, H, W]`` (for a binary
            task, ``K = 1`` holds the foreground probability).
        class_index (int): the class :math:`k` to focus on.

    Returns:
        Tensor ``[B, 1, H, W]``.
    """
    probs = _check_probs(probs)
    if not 0 <= class_index < probs.size(1):
        raise ValueError(f"'class_index' must lie in [0, {probs.size(1)}) (got {class_index})")
    return probs[:, class_index:class_index + 1].detach()


def uncertainty_attention(probs: Tensor) -> Tensor:
    r"""Uncertainty-aware attention, the normalised entropy (Eq. 13).

    .. math::
        C_{attn} = \frac{1}{\log K} \sum_k -P_k \log P_k.

    A single-channel ``probs`` is read as the foreground probability of a
    binary task (:math:`K = 2` with :math:`P_0 = 1 - P_1`). ``0 log 0 = 0``.

    Returns:
        Tensor ``[B, 1, H, W]`` with values in ``[0, 1]``.
    """
    probs = _check_probs(probs).detach()
    if probs.size(1) == 1:
        probs = torch.cat([1 - probs, probs], dim=1)
    k = probs.size(1)
    entropy = -torch.special.xlogy(probs, probs).sum(1, keepdim=True)
    return (entropy / math.log(k)).clamp(0.0, 1.0)
