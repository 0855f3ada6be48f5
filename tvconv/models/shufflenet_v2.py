"""ShuffleNetV2 face-embedding backbone with depthwise or TVConv spatial convs.

The face setup of the TVConv paper (Sec. 4.1): ShuffleNetV2 (Ma et al.,
2018) on 96x96 inputs with a stride-1 first conv (the 3x3 max pool keeps its
stride 2), then the 512-d :class:`EmbeddingHead` on the last 1x1 conv. This
reproduces the MACs of Fig. 5 exactly under the paper's counting convention
(:func:`tvconv.count_macs`): 31.95 M (x0.5), 110.53 M (x1.0), 222.99 M (x1.5).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .._checks import check_int
from .layers import FaceEmbeddingNet, conv_norm_act, spatial_conv, strided_size

#: Stage output channels per width multiplier (Table 5 of ShuffleNetV2).
STAGE_CHANNELS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
                  1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048)}
STAGE_REPEATS = (4, 8, 4)
STEM_CHANNELS = 24


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups: ``[B, g*n, H, W]`` -> same shape."""

    def __init__(self, groups: int = 2):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleBlock(nn.Module):
    """ShuffleNetV2 unit: split (stride 1) or duplicate (stride 2) -> two branches -> shuffle.

    Each branch's 3x3 depthwise conv becomes a TVConv with ``conv="tvconv"``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 out_size: tuple[int, int], conv: str, tvconv_kwargs: Mapping | None = None):
        super().__init__()
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 ShuffleBlock needs in_channels == out_channels, "
                             f"got {in_channels} and {out_channels}")
        branch = out_channels // 2
        self.stride = stride
        self.branch1 = None
        if stride > 1:
            self.branch1 = nn.Sequential(
                spatial_conv(in_channels, stride, out_size, conv, tvconv_kwargs),
                nn.BatchNorm2d(in_channels),
                conv_norm_act(in_channels, branch, 1))
        self.branch2 = nn.Sequential(
            conv_norm_act(in_channels if stride > 1 else branch, branch, 1),
            spatial_conv(branch, stride, out_size, conv, tvconv_kwargs),
            nn.BatchNorm2d(branch),
            conv_norm_act(branch, branch, 1))
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        if self.branch1 is None:
            kept, x = x.chunk(2, dim=1)
            out = torch.cat([kept, self.branch2(x)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return self.shuffle(out)


class ShuffleNetV2(FaceEmbeddingNet):
    """ShuffleNetV2 face-embedding network; see :func:`shufflenet_v2`."""

    def __init__(self, width_mult: float = 1.0, conv: str = "depthwise",
                 input_size: int | tuple[int, int] = 96, embedding_dim: int = 512,
                 stem_stride: int = 1, dropout: float = 0.0,
                 tvconv_kwargs: Mapping | None = None, in_channels: int = 3):
        super().__init__(width_mult, conv, input_size, embedding_dim, dropout, in_channels)
        if self.width_mult not in STAGE_CHANNELS:
            raise ValueError(f"'width_mult' of ShuffleNetV2 must be one of "
                             f"{sorted(STAGE_CHANNELS)}, got {width_mult}")
        check_int(stem_stride, "stem_stride", minimum=1)
        *stages, last_channels = STAGE_CHANNELS[self.width_mult]
        size = strided_size(strided_size(self.input_size, stem_stride), 2)  # stem, max pool
        layers: list[nn.Module] = [
            conv_norm_act(self.in_channels, STEM_CHANNELS, 3, stem_stride),
            nn.MaxPool2d(3, 2, 1)]
        channels = STEM_CHANNELS
        for out_channels, repeats in zip(stages, STAGE_REPEATS, strict=True):
            for i in range(repeats):
                stride = 2 if i == 0 else 1
                size = strided_size(size, stride)
                layers.append(ShuffleBlock(channels, out_channels, stride, size, self.conv,
                                           tvconv_kwargs))
                channels = out_channels
        layers.append(conv_norm_act(channels, last_channels, 1))
        self.features = nn.Sequential(*layers)
        self.feature_size = size
        self.build_head(last_channels)


def shufflenet_v2(width_mult: float = 1.0, conv: str = "depthwise", **kwargs) -> ShuffleNetV2:
    """ShuffleNetV2 face-embedding network of the TVConv paper.

    Args:
        width_mult (float): 0.5, 1.0, 1.5 or 2.0 (the published channel tables).
        conv (str): ``"depthwise"`` or ``"tvconv"`` (TVConv replaces every
            depthwise conv of both branches).
        **kwargs: ``input_size`` (96), ``embedding_dim`` (512), ``stem_stride``
            (1, as in the paper), ``dropout`` (0), ``tvconv_kwargs``, ``in_channels`` (3).

    Shapes:
        - **input:** ``[B, 3, H, W]``
        - **output:** ``[B, embedding_dim]``
    """
    return ShuffleNetV2(width_mult, conv, **kwargs)
