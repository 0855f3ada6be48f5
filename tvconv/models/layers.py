"""Building blocks shared by the face-embedding backbones.

Both backbones of the paper (MobileNetV2 and ShuffleNetV2, Sec. 4.1) use the
same three pieces: conv-BN-activation units, a depthwise 3x3 conv that
``conv='tvconv'`` swaps for :class:`~tvconv.TVConv`, and the 512-d embedding
head. Activations are modules (not functional calls) so that
:func:`tvconv.count_macs` sees them, as the paper's MAC counter did.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_image_batch, check_int, check_pair
from ..conv import TVConv

CONV_TYPES = ("depthwise", "tvconv")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (at least ``divisor``),
    never more than 10 % below ``value`` (the MobileNet rounding rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                  activation: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """``Conv2d(bias=False) -> BatchNorm2d -> activation`` (no activation if ``None``)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels)]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def spatial_conv(channels: int, stride: int, out_size: tuple[int, int], conv: str,
                 tvconv_kwargs: Mapping | None = None, kernel_size: int = 3) -> nn.Module:
    """The depthwise ``k x k`` conv of a block, or the :class:`TVConv` replacing it.

    Args:
        channels: channels of the depthwise conv.
        stride: its stride.
        out_size: its output size ``(h, w)`` (the TVConv affinity-map size).
        conv: ``"depthwise"`` or ``"tvconv"``.
        tvconv_kwargs: extra keyword arguments of :class:`TVConv`.
    """
    if conv == "depthwise":
        return nn.Conv2d(channels, channels, kernel_size, stride, kernel_size // 2,
                         groups=channels, bias=False)
    extra = dict(tvconv_kwargs or {})
    reserved = sorted(set(extra) & {"channels", "kernel_size", "stride", "size"})
    if reserved:
        raise ValueError(f"'tvconv_kwargs' must not set {reserved}: the backbone sets them "
                         "per layer")
    return TVConv(channels, kernel_size, stride, size=out_size, **extra)


def strided_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Output size of a padded ``k x k`` conv or pooling with ``stride``: ``ceil(n / s)``."""
    return (math.ceil(size[0] / stride), math.ceil(size[1] / stride))


class EmbeddingHead(nn.Module):
    """``BatchNorm2d -> Dropout -> global average pool -> Linear -> BatchNorm1d``.

    Maps ``[B, in_channels, h, w]`` to a ``[B, embedding_dim]`` face embedding.
    With this head the paper's MAC figures are reproduced exactly (e.g.
    22.47 M for MobileNetV2 x0.1 at 96x96, 31.95 M for ShuffleNetV2 x0.5).
    """

    def __init__(self, in_channels: int, embedding_dim: int = 512, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.dropout = nn.Dropout(dropout)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_channels, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.flatten(self.pool(self.dropout(self.norm(x))))
        return self.bn(self.linear(x))


class FaceEmbeddingNet(nn.Module):
    """Base class: ``features`` (a backbone) followed by an :class:`EmbeddingHead`.

    Subclasses build ``self.features`` and set ``self.feature_channels``.
    """

    def __init__(self, width_mult: float, conv: str, input_size: int | tuple[int, int],
                 embedding_dim: int, dropout: float, in_channels: int = 3):
        super().__init__()
        if isinstance(width_mult, bool) or not isinstance(width_mult, int | float):
            raise TypeError(f"'width_mult' must be a float, got {width_mult!r}")
        if not width_mult > 0:
            raise ValueError(f"'width_mult' must be > 0, got {width_mult}")
        self.width_mult = float(width_mult)
        self.conv = check_choice(conv, "conv", CONV_TYPES)
        self.input_size = check_pair(input_size, "input_size")
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", minimum=1)
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1), got {dropout}")
        self.dropout = dropout

    def build_head(self, feature_channels: int) -> None:
        self.head = EmbeddingHead(feature_channels, self.embedding_dim, self.dropout)

    def forward(self, x: Tensor, normalize: bool = False) -> Tensor:
        """Embed images ``[B, in_channels, H, W]`` -> ``[B, embedding_dim]``.

        ``normalize=True`` returns unit-length embeddings (for cosine scoring).
        Inputs of another size than ``input_size`` work; TVConv layers then
        resample their affinity maps.
        """
        check_image_batch(x, "x", channels=self.in_channels)
        embedding = self.head(self.features(x))
        return F.normalize(embedding, dim=1) if normalize else embedding
