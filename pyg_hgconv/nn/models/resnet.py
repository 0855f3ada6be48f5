r"""ResNet-18/34/50 backbones for dense prediction (He et al., CVPR 2016).

Written here because there is no CPU torchvision. The layout and parameter
names are torchvision's (``conv1, bn1, layer1 .. layer4``, blocks with
``conv1, bn1, conv2, bn2[, conv3, bn3], downsample``; ResNet v1.5: the stride
of a bottleneck sits on its 3x3 conv), so a torchvision ImageNet checkpoint
loads with ``load_state_dict(state, strict=False)`` (its ``fc`` is ignored)
at ``width=1, in_channels=3``.

Dense-prediction options:

* ``dilate=(d3, d4)`` replaces the stride of stage 3 and/or 4 by a dilation
  (torchvision's ``replace_stride_with_dilation``: the first block of a dilated
  stage keeps the previous dilation, the others use the doubled one). Output
  strides of the stages: ``(4, 8, 16, 32)``, ``(4, 8, 8, 16)`` with stage 3
  dilated, ``(4, 8, 8, 8)`` with both ("ResNet-Dilation", output stride 8).
  Basic blocks dilate both of their 3x3 convs.
* ``stem='plus'``: the "+" variant of the HG-Conv paper (Sec. 5.3) for thin
  structures: the first 7x7 conv has stride 1 and there is no max-pool, so
  every output stride is 4x smaller.
* ``width``: a multiplier of all channel counts (``width=0.25`` gives
  ``16, 32, 64, 128`` stage widths for a basic-block net), for CPU-sized
  experiments.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor, nn

from pyg_hgconv.utils.checks import check_image_features, check_positive_int

STEMS = ("standard", "plus")
BLOCKS = ("basic", "bottleneck")

#: blocks per stage of the standard depths
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3))}


def scaled_width(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1."""
    return max(1, round(channels * width))


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias, zero padding ``dilation`` (size-preserving at stride 1)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    r"""Two 3x3 convs with a shortcut:
    :math:`y = \mathrm{ReLU}(\mathrm{BN}(W_2 * \mathrm{ReLU}(\mathrm{BN}(W_1 * x)))
    + P x)`, :math:`P` = identity or the 1x1 projection ``downsample``.

    Shapes: ``[B, C_in, H, W] -> [B, planes, ceil(H / stride), ceil(W / stride)]``.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    @property
    def out_channels(self) -> int:
        return self.bn2.num_features

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    r"""1x1 reduce, 3x3 (strided, dilated), 1x1 expand (x4), with a shortcut
    (ResNet v1.5: the stride sits on the 3x3 conv).

    Shapes: ``[B, C_in, H, W] -> [B, 4 planes, ceil(H / stride), ceil(W / stride)]``.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def out_channels(self) -> int:
        return self.bn3.num_features

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_BLOCK_TYPES = {"basic": BasicBlock, "bottleneck": Bottleneck}


def resnet_stage(block: str, in_channels: int, planes: int, num_blocks: int, stride: int = 1,
                 dilation: int = 1, first_dilation: int | None = None) -> nn.Sequential:
    """One ResNet stage: ``num_blocks`` blocks, the first one strided (and
    projected when the stride or the width changes).

    Args:
        block (str): ``'basic'`` or ``'bottleneck'``.
        in_channels (int): input channels.
        planes (int): block width (output ``planes * expansion``).
        num_blocks (int): number of blocks.
        stride (int): stride of the first block.
        dilation (int): dilation of the other blocks.
        first_dilation (int, optional): dilation of the first block (default ``dilation``).
    """
    if block not in _BLOCK_TYPES:
        raise ValueError(f"'block' must be one of {BLOCKS} (got {block!r})")
    check_positive_int(num_blocks, "num_blocks")
    cls = _BLOCK_TYPES[block]
    out_channels = planes * cls.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride),
                                   nn.BatchNorm2d(out_channels))
    first = dilation if first_dilation is None else first_dilation
    blocks = [cls(in_channels, planes, stride, downsample, first)]
    blocks += [cls(out_channels, planes, 1, None, dilation) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class ResNetFeatures(NamedTuple):
    """Outputs of a :class:`ResNet`: the stem (before the max-pool) and the
    four stages; a stage that was not run (``num_stages`` or a stage lifted
    out of the backbone) is ``None``."""

    stem: Tensor
    stage1: Tensor | None = None
    stage2: Tensor | None = None
    stage3: Tensor | None = None
    stage4: Tensor | None = None


class ResNet(nn.Module):
    r"""A ResNet feature extractor returning every stage's output.

    Args:
        block (str): ``'basic'`` (ResNet-18/34) or ``'bottleneck'`` (ResNet-50).
        layers (sequence of int): blocks per stage (four numbers).
        in_channels (int): input image channels.
        width (float): channel multiplier (``1.0``: 64, 128, 256, 512 block widths).
        dilate (pair of bool): replace the stride of stage 3 / stage 4 by dilation.
        stem (str): ``'standard'`` (7x7 stride 2 + max-pool) or ``'plus'``
            (7x7 stride 1, no max-pool; the paper's "+" models).
        zero_init_residual (bool): zero the last BN of every block.

    Attributes:
        channels (tuple of int): channels of ``(stem, stage1, .., stage4)``.
        strides (tuple of int): output strides of ``(stem, stage1, .., stage4)``.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, any :math:`H, W \ge 1`
        - **output:** :class:`ResNetFeatures`; stage :math:`i` has
          :math:`\lceil H / s_i \rceil \times \lceil W / s_i \rceil` pixels for
          its stride :math:`s_i`.
    """

    def __init__(self, block: str, layers: Sequence[int], in_channels: int = 3,
                 width: float = 1.0, dilate: Sequence[bool] = (False, False),
                 stem: str = "standard", zero_init_residual: bool = False):
        super().__init__()
        if block not in _BLOCK_TYPES:
            raise ValueError(f"'block' must be one of {BLOCKS} (got {block!r})")
        if len(layers) != 4:
            raise ValueError(f"'layers' must give the blocks of 4 stages (got {list(layers)})")
        for n in layers:
            check_positive_int(n, "layers")
        check_positive_int(in_channels, "in_channels")
        if not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"'width' must be a positive number (got {width!r})")
        if len(dilate) != 2:
            raise ValueError(f"'dilate' must be a pair (stage 3, stage 4) (got {dilate!r})")
        if stem not in STEMS:
            raise ValueError(f"'stem' must be one of {STEMS} (got {stem!r})")
        self.block = block
        self.layers = tuple(int(n) for n in layers)
        self.in_channels = in_channels
        self.width = float(width)
        self.dilate = tuple(bool(d) for d in dilate)
        self.stem_type = stem
        expansion = _BLOCK_TYPES[block].expansion

        stem_channels = scaled_width(64, width)
        plus = stem == "plus"
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=1 if plus else 2,
                               padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if plus else nn.MaxPool2d(3, stride=2, padding=1)

        channels, strides = [stem_channels], [1 if plus else 2]
        stride_so_far = 1 if plus else 4
        dilation = 1
        stage_dilate = (False, False, *self.dilate)
        for i, (base, n, dil) in enumerate(
                zip((64, 128, 256, 512), self.layers, stage_dilate, strict=True)):
            stride = 1 if i == 0 else 2
            previous = dilation
            if dil:
                dilation *= stride
                stride = 1
            stride_so_far *= stride
            planes = scaled_width(base, width)
            stage = resnet_stage(block, channels[-1], planes, n, stride, dilation, previous)
            setattr(self, f"layer{i + 1}", stage)
            channels.append(planes * expansion)
            strides.append(stride_so_far)
        self.channels = tuple(channels)
        self.strides = tuple(strides)
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool = False) -> None:
        """torchvision's initialisation (Kaiming normal, fan-out; BN 1/0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    last = m.bn2 if isinstance(m, BasicBlock) else m.bn3
                    nn.init.zeros_(last.weight)

    @property
    def stages(self) -> list[nn.Module | None]:
        """``[layer1, layer2, layer3, layer4]`` (``None`` for a lifted stage)."""
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: Tensor, num_stages: int = 4) -> ResNetFeatures:
        """Run the stem and the first ``num_stages`` stages (those present)."""
        check_image_features(x)
        if x.size(1) != self.in_channels:
            raise ValueError(f"'x' has {x.size(1)} channels but the backbone expects "
                             f"{self.in_channels}")
        if num_stages not in (0, 1, 2, 3, 4):
            raise ValueError(f"'num_stages' must lie in 0..4 (got {num_stages!r})")
        stem = self.relu(self.bn1(self.conv1(x)))
        out: list[Tensor | None] = [stem]
        h = self.maxpool(stem)
        for i, stage in enumerate(self.stages):
            if i >= num_stages or stage is None:
                break
            h = stage(h)
            out.append(h)
        return ResNetFeatures(*out)

    def extra_repr(self) -> str:
        return (f"block={self.block!r}, layers={self.layers}, width={self.width:g}, "
                f"dilate={self.dilate}, stem={self.stem_type!r}")


def _resnet(depth: int, in_channels: int, dilate: Sequence[bool], stem: str, width: float,
            **kwargs) -> ResNet:
    block, layers = DEPTHS[depth]
    return ResNet(block, layers, in_channels=in_channels, width=width, dilate=dilate,
                  stem=stem, **kwargs)


def resnet18(in_channels: int = 3, dilate: Sequence[bool] = (False, False),
             stem: str = "standard", width: float = 1.0, **kwargs) -> ResNet:
    """ResNet-18 backbone (basic blocks, 2-2-2-2); see :class:`ResNet`."""
    return _resnet(18, in_channels, dilate, stem, width, **kwargs)


def resnet34(in_channels: int = 3, dilate: Sequence[bool] = (False, False),
             stem: str = "standard", width: float = 1.0, **kwargs) -> ResNet:
    """ResNet-34 backbone (basic blocks, 3-4-6-3); see :class:`ResNet`."""
    return _resnet(34, in_channels, dilate, stem, width, **kwargs)


def resnet50(in_channels: int = 3, dilate: Sequence[bool] = (False, False),
             stem: str = "standard", width: float = 1.0, **kwargs) -> ResNet:
    """ResNet-50 backbone (bottlenecks, 3-4-6-3); see :class:`ResNet`."""
    return _resnet(50, in_channels, dilate, stem, width, **kwargs)


#: backbone factories by name
BACKBONES = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def build_backbone(backbone: str | ResNet, **kwargs) -> ResNet:
    """A :class:`ResNet` from its name (``'resnet18' | 'resnet34' | 'resnet50'``)
    and keyword arguments; a :class:`ResNet` instance is returned as is
    (then ``kwargs`` must be empty)."""
    if isinstance(backbone, ResNet):
        if kwargs:
            raise ValueError(f"{sorted(kwargs)} cannot be applied to a ResNet instance; "
                             "build the backbone with them instead")
        return backbone
    if backbone not in BACKBONES:
        raise ValueError(f"'backbone' must be one of {sorted(BACKBONES)} or a ResNet "
                         f"(got {backbone!r})")
    return BACKBONES[backbone](**kwargs)
