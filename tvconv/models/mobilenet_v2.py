"""MobileNetV2 face-embedding backbone with depthwise or TVConv spatial convs.

The face setup of the TVConv paper (Sec. 4.1): MobileNetV2 (Sandler et al.,
2018) on 96x96 inputs with a stride-1 stem (following MobileFaceNets), a
512-channel last 1x1 conv and the 512-d :class:`EmbeddingHead`. This
reproduces the MACs of Fig. 5 exactly under the paper's counting convention
(:func:`tvconv.count_macs`): 22.47 M (x0.1), 28.00 M (x0.2), 44.20 M (x0.3),
74.03 M (x0.5), 225.72 M (x1.0), for both operators.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .._checks import check_int
from .layers import (
    FaceEmbeddingNet,
    conv_norm_act,
    make_divisible,
    spatial_conv,
    strided_size,
)

#: (expansion t, output channels c, repeats n, first stride s), Table 2 of MobileNetV2.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise/TVConv 3x3 -> project 1x1 (+ identity when shapes match).

    Args:
        in_channels, out_channels: block channels.
        stride: stride of the spatial conv.
        expand_ratio: expansion factor ``t``.
        out_size: output spatial size (the TVConv ``size``).
        conv: ``"depthwise"`` or ``"tvconv"``.
        tvconv_kwargs: extra :class:`~tvconv.TVConv` arguments.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                 out_size: tuple[int, int], conv: str, tvconv_kwargs: Mapping | None = None):
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_norm_act(in_channels, hidden, 1, activation=nn.ReLU6))
        layers += [spatial_conv(hidden, stride, out_size, conv, tvconv_kwargs),
                   nn.BatchNorm2d(hidden), nn.ReLU6(),
                   conv_norm_act(hidden, out_channels, 1, activation=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(FaceEmbeddingNet):
    """MobileNetV2 face-embedding network; see :func:`mobilenet_v2`."""

    def __init__(self, width_mult: float = 1.0, conv: str = "depthwise",
                 input_size: int | tuple[int, int] = 96, embedding_dim: int = 512,
                 last_channels: int = 512, stem_stride: int = 1, dropout: float = 0.0,
                 round_nearest: int = 8, tvconv_kwargs: Mapping | None = None,
                 in_channels: int = 3):
        super().__init__(width_mult, conv, input_size, embedding_dim, dropout, in_channels)
        check_int(round_nearest, "round_nearest", minimum=1)
        check_int(last_channels, "last_channels", minimum=1)
        check_int(stem_stride, "stem_stride", minimum=1)
        channels = make_divisible(32 * self.width_mult, round_nearest)
        size = strided_size(self.input_size, stem_stride)
        layers: list[nn.Module] = [conv_norm_act(self.in_channels, channels, 3, stem_stride,
                                                 activation=nn.ReLU6)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_channels = make_divisible(c * self.width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                size = strided_size(size, stride)
                layers.append(InvertedResidual(channels, out_channels, stride, t, size,
                                               self.conv, tvconv_kwargs))
                channels = out_channels
        layers.append(conv_norm_act(channels, last_channels, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.feature_size = size
        self.build_head(last_channels)


def mobilenet_v2(width_mult: float = 1.0, conv: str = "depthwise", **kwargs) -> MobileNetV2:
    """MobileNetV2 face-embedding network of the TVConv paper.

    Args:
        width_mult (float): width multiplier (0.1, 0.2, 0.3, 0.5, 1.0 in the paper);
            channels are rounded to multiples of ``round_nearest`` (8).
        conv (str): ``"depthwise"`` or ``"tvconv"`` (TVConv replaces all 17
            depthwise convs, strided ones included).
        **kwargs: ``input_size`` (96), ``embedding_dim`` (512), ``last_channels``
            (512), ``stem_stride`` (1, as in the paper), ``dropout`` (0),
            ``round_nearest`` (8), ``tvconv_kwargs`` (extra TVConv arguments,
            e.g. ``{"affinity_channels": 4, "hidden_layers": 3}``), ``in_channels`` (3).

    Shapes:
        - **input:** ``[B, 3, H, W]`` (``input_size`` for the learned layout)
        - **output:** ``[B, embedding_dim]``
    """
    return MobileNetV2(width_mult, conv, **kwargs)
