r"""A small DeepLabV3+-style network whose ASPP uses inverted residual blocks.

The optic disc/cup experiment of the TVConv paper (Sec. 4.2) takes DeepLabV3+
(Chen et al., ECCV 2018) and "replace[s] the conv in its ASPP module with the
inverted residual block [of MobileNetV2], which is equipped with either the
original depthwise conv or our TVConv". This module builds a CPU-sized
version of that network for a one-channel (binary) segmentation:

* **Encoder** (identical for both variants, always depthwise): a stride-2
  3x3 stem and MobileNetV2 inverted residual blocks down to output stride 8;
  the stride-4 features are the decoder's low-level features.
* **ASPP** at output stride 8: a 1x1 branch, an image-pooling branch and
  three *inverted residual* branches with ``1, 2, 3`` stacked blocks
  (expand 1x1 -> 3x3 depthwise or :class:`~tvconv.TVConv` -> project 1x1).
  TVConv, like the official implementation, has no dilation, so the
  atrous rates of DeepLab's 3x3 branches are replaced by depth: the three
  branches see 3x3, 5x5 and 7x7 feature pixels (at output stride 8: 24,
  40 and 56 input pixels). Both variants use exactly this structure, so a
  difference between them comes from the operator alone (the paper's
  reason for its "w/ Depthwise" control).
  Every TVConv's ``size`` is the ASPP feature size ``input_size / 8`` --
  the layer resamples its affinity maps for any other size, so training
  and evaluating at ``input_size`` keeps the learned layout exact.
* **Decoder** (DeepLabV3+): 1x1-reduced low-level features concatenated
  with the upsampled ASPP output, two 3x3 conv-BN-ReLU, a 1x1 classifier,
  bilinear upsampling to the input size.

Shapes:
    - **input:** ``[B, in_channels, H, W]`` (``(H, W) = input_size`` for the
      learned layout)
    - **output:** logits ``[B, num_classes, H, W]``
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tvconv.models.layers import CONV_TYPES, conv_norm_act, strided_size
from tvconv.models.mobilenet_v2 import InvertedResidual

#: encoder stages: (expansion t, output channels c, repeats n, first stride s)
ENCODER_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 1))
#: index (into the encoder blocks) after which the stride-4 low-level features are taken
LOW_LEVEL_BLOCK = 2
OUTPUT_STRIDE = 8


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with inverted residual branches (see the module docstring).

    Args:
        in_channels: channels of the encoder output.
        channels: channels of every branch and of the output.
        size: spatial size ``(h, w)`` of the features (the TVConv ``size``).
        conv: ``"depthwise"`` or ``"tvconv"`` for the branches' 3x3 convs.
        depths: number of stacked inverted residual blocks of each 3x3 branch.
        expand_ratio: expansion factor of those blocks.
        tvconv_kwargs: extra :class:`~tvconv.TVConv` arguments.
    """

    def __init__(self, in_channels: int, channels: int, size: tuple[int, int], conv: str,
                 depths: Sequence[int] = (1, 2, 3), expand_ratio: int = 2,
                 tvconv_kwargs: Mapping | None = None):
        super().__init__()
        self.pointwise = conv_norm_act(in_channels, channels, 1)
        self.branches = nn.ModuleList()
        for depth in depths:
            blocks = [InvertedResidual(in_channels if i == 0 else channels, channels, 1,
                                       expand_ratio, size, conv, tvconv_kwargs)
                      for i in range(depth)]
            self.branches.append(nn.Sequential(*blocks, nn.ReLU()))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_norm_act(in_channels, channels, 1))
        self.project = nn.Sequential(
            conv_norm_act(channels * (len(depths) + 2), channels, 1), nn.Dropout(0.1))

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        outs = [self.pointwise(x), *(branch(x) for branch in self.branches), pooled]
        return self.project(torch.cat(outs, dim=1))


class SegmentationNet(nn.Module):
    """DeepLabV3+-style segmentation network with an inverted-residual ASPP.

    Args:
        conv (str): ``"depthwise"`` or ``"tvconv"``: the 3x3 conv of the ASPP's
            inverted residual blocks (the encoder always uses depthwise convs).
        input_size (int or tuple): training input size ``(H, W)``, divisible by 8.
        num_classes (int): output channels (1 for binary segmentation logits).
        in_channels (int): image channels.
        aspp_channels (int): channels of the ASPP branches and the decoder.
        low_level_channels (int): channels of the reduced low-level features.
        aspp_depths (sequence of int): blocks per inverted residual ASPP branch.
        expand_ratio (int): expansion of the ASPP inverted residual blocks.
        tvconv_kwargs (dict, optional): extra :class:`~tvconv.TVConv` arguments.
    """

    def __init__(self, conv: str = "depthwise", input_size: int | tuple[int, int] = 256,
                 num_classes: int = 1, in_channels: int = 3, aspp_channels: int = 64,
                 low_level_channels: int = 24, aspp_depths: Sequence[int] = (1, 2, 3),
                 expand_ratio: int = 2, tvconv_kwargs: Mapping | None = None):
        super().__init__()
        if conv not in CONV_TYPES:
            raise ValueError(f"'conv' must be one of {CONV_TYPES}, got {conv!r}")
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        if len(input_size) != 2 or any(s % OUTPUT_STRIDE for s in input_size):
            raise ValueError(f"'input_size' must be (H, W) divisible by {OUTPUT_STRIDE}, "
                             f"got {input_size!r}")
        self.conv = conv
        self.input_size = tuple(int(s) for s in input_size)
        channels, size = 16, strided_size(self.input_size, 2)
        self.stem = conv_norm_act(in_channels, channels, 3, 2, activation=nn.ReLU6)
        blocks: list[nn.Module] = []
        for t, c, n, s in ENCODER_SETTING:
            for i in range(n):
                stride = s if i == 0 else 1
                size = strided_size(size, stride)
                blocks.append(InvertedResidual(channels, c, stride, t, size, "depthwise"))
                channels = c
                if len(blocks) == LOW_LEVEL_BLOCK + 1:
                    low_channels = c
        self.low_level = nn.Sequential(*blocks[:LOW_LEVEL_BLOCK + 1])
        self.high_level = nn.Sequential(*blocks[LOW_LEVEL_BLOCK + 1:])
        self.aspp_size = size
        self.aspp = ASPP(channels, aspp_channels, size, conv, aspp_depths, expand_ratio,
                         tvconv_kwargs)
        self.reduce = conv_norm_act(low_channels, low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv_norm_act(aspp_channels + low_level_channels, aspp_channels, 3),
            conv_norm_act(aspp_channels, aspp_channels, 3))
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes, H, W]`` for images ``[B, in_channels, H, W]``."""
        low = self.low_level(self.stem(x))
        high = self.aspp(self.high_level(low))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        out = self.classifier(self.decoder(torch.cat([high, self.reduce(low)], dim=1)))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
