r"""ResUNet and HG-ResUNet (paper, Sec. 4.4, 5.3, 5.4 and supplementary A).

**ResUNet.** A ResNet encoder (stem, stages 1-4) and a U-Net decoder of four
levels, one per skip (stage 3, stage 2, stage 1, stem): each
:class:`UpBlock` resizes the deeper map to the skip's size (bilinear; no-op
when the sizes already agree, e.g. at dilated stages), concatenates the skip
and applies a residual unit (a :class:`~.resnet.BasicBlock` with a 1x1
projection) to the skip's width. A 1x1 classifier at the stem's resolution
gives the logits, upsampled to the input size. ``stem='plus'`` gives the
paper's ResUNet18+ for roads (7x7 stride 1, no max-pool), ``dilated=True``
the dilated ResUNet50 of salient object detection.

**HG-ResUNet.** "We applied the HG-Conv module to the last and the first
block of the encoder and decoder, respectively. In the same way as HG-ResNet,
the output of each module is concatenated with the input, and refined by 1x1
convolution." Here:

* the last encoder block, stage 4, runs on the group graph of the stage-3
  output (:func:`~.base.lift_stage4`, stride dropped), fused with its input;
* the first decoder level (:class:`HGUpBlock`) runs its residual unit on the
  **same** group graph -- "we reuse the same assignment matrix S at the
  decoder (i.e., the clustering is only performed on the encoder)" -- and is
  fused with its input (the concatenated map) by a 1x1 conv. Its HG stage has
  no clustering of its own (``cluster=False``). Both maps have the stage-3
  resolution, so the assignment fits.
* active focus (``attention=``) adds the coarse head on the input of the
  encoder's HG module (the auxiliary head, Sec. 5.3); its logits are the
  output's ``aux`` (auxiliary loss, weight 0.4). Without focus there is no
  auxiliary head by default (supplementary A: "the auxiliary loss is
  eliminated when the active focus is not used").

Binary tasks (roads, saliency) use ``num_classes=1`` (one logit).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import SegmentationNet, backbone_from_args, lift_stage4
from .hg_stage import FusedHGStage, HGResidualStage
from .output import SegmentationOutput, upsample_to
from .resnet import BasicBlock, ResNet, ResNetFeatures, conv1x1


def merge_skip(x: Tensor, skip: Tensor) -> Tensor:
    """Resize ``x`` to the size of ``skip`` and concatenate them (channels ``x`` first)."""
    return torch.cat([upsample_to(x, tuple(skip.shape[-2:])), skip], dim=1)


class UpBlock(nn.Module):
    r"""A decoder level: :func:`merge_skip` then a residual unit to ``out_channels``.

    Shapes: ``x [B, C_in, h, w], skip [B, C_skip, H, W] -> [B, C_out, H, W]``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        total = in_channels + skip_channels
        downsample = (nn.Sequential(conv1x1(total, out_channels), nn.BatchNorm2d(out_channels))
                      if total != out_channels else None)
        self.block = BasicBlock(total, out_channels, downsample=downsample)
        self.in_channels, self.skip_channels, self.out_channels = (
            in_channels, skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.block(merge_skip(x, skip))


class HGUpBlock(nn.Module):
    r"""The first decoder level of HG-ResUNet: :func:`merge_skip`, then the
    residual unit on the encoder's group graph, fused with its input.

    Build it from a grid :class:`UpBlock` with :meth:`from_grid`.

    Shapes: ``x [B, C_in, h, w], skip [B, C_skip, H, W], graph -> [B, C_out, H, W]``
    (``graph`` of the images at ``H x W``).
    """

    def __init__(self, hg: FusedHGStage):
        super().__init__()
        if hg.stage.pool is not None:
            raise ValueError("the decoder's HG stage re-uses the encoder's assignment: build "
                             "it with cluster=False")
        self.hg = hg
        self.out_channels = hg.out_channels

    @classmethod
    def from_grid(cls, up: UpBlock, conv: str = "hgconv",
                  conv_kwargs: dict | None = None) -> HGUpBlock:
        """Move the residual unit of ``up`` onto the group graph (weights copied)."""
        stage = HGResidualStage.from_grid([up.block], conv=conv, conv_kwargs=conv_kwargs,
                                          cluster=False)
        reference = up.block.conv1.weight
        return cls(FusedHGStage(stage).to(reference))

    def forward(self, x: Tensor, skip: Tensor, graph) -> Tensor:
        return self.hg(merge_skip(x, skip), graph=graph)[0]


def build_decoder(channels: Sequence[int]) -> nn.ModuleList:
    """The four :class:`UpBlock` levels for backbone ``channels``
    ``(stem, stage1, .., stage4)``: each level ends at its skip's width."""
    c0, c1, c2, c3, c4 = channels
    return nn.ModuleList([UpBlock(c4, c3, c3), UpBlock(c3, c2, c2), UpBlock(c2, c1, c1),
                          UpBlock(c1, c0, c0)])


def decoder_skips(features: ResNetFeatures) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The skips of the four decoder levels, deepest first."""
    return features.stage3, features.stage2, features.stage1, features.stem


class ResUNet(SegmentationNet):
    r"""ResUNet: ResNet encoder, four-level residual U-Net decoder.

    Args:
        backbone (str or ResNet): ``'resnet18' | 'resnet34' | 'resnet50'`` or a
            built :class:`~.resnet.ResNet` (then the backbone options must be
            left unset).
        num_classes (int): output classes (1: binary, one logit).
        dilated (bool or pair of bool, optional): dilate stages 3 / 4 (default ``False``).
        aux (bool): auxiliary head on stage 3 (the input of HG-ResUNet's HG
            module; computed in training mode), default ``False``.
        aux_weight (float): its loss weight (paper 0.4).
        in_channels, width, stem: backbone options (defaults 3, 1.0,
            ``'standard'``; ``stem='plus'`` for the "+" models).
        dropout (float): dropout of the auxiliary head.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, any :math:`H, W`
        - **output:** :class:`~.output.SegmentationOutput` with ``out``
          :math:`(B, K, H, W)`
    """

    def __init__(self, backbone: str | ResNet, num_classes: int,
                 dilated: bool | Sequence[bool] | None = None, aux: bool = False,
                 aux_weight: float = 0.4, in_channels: int | None = None,
                 width: float | None = None, stem: str | None = None, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone_from_args(backbone, dilated, in_channels, width, stem)
        if self.backbone.layer4 is None:
            raise ValueError("the backbone has no stage 4")
        channels = self.backbone.channels
        self.decoder = build_decoder(channels)
        self.classifier = nn.Conv2d(channels[0], num_classes, 1)
        self._init_heads(num_classes, channels[3], aux, aux_weight, None, None, dropout)

    def forward(self, x: Tensor) -> SegmentationOutput:
        self._check_input(x)
        features = self.backbone(x)
        aux, _ = self._auxiliary(features.stage3)
        d = features.stage4
        for block, skip in zip(self.decoder, decoder_skips(features), strict=True):
            d = block(d, skip)
        return self._output(x, self.classifier(d), aux)


class HGResUNet(SegmentationNet):
    r"""HG-ResUNet: HG-Conv on the last encoder block (stage 4) and the first
    decoder level, which re-uses the encoder's assignment (module docstring).

    Args:
        backbone, num_classes, dilated, in_channels, width, stem, dropout: as
            for :class:`ResUNet` (a :class:`~.resnet.ResNet` instance is copied).
        aux (bool, optional): auxiliary / coarse head on the input of the HG
            module (default: only with active focus).
        aux_weight (float): its loss weight (paper 0.4).
        conv (str): registry graph conv of the 3x3 slots (default ``'hgconv'``).
        conv_kwargs (dict, optional): extra arguments of that conv.
        ratio (float, optional): groups per stage-3 pixel (default 1/64; the
            paper used 1/16 for roads and 1/4 for saliency, Table 12).
        num_groups (int, optional): groups per image instead of ``ratio``.
        attention (str, optional): ``'object'`` (Eq. 12) or ``'uncertainty'``
            (Eq. 13) active focus from the coarse head.
        focus_class (int, optional): class :math:`k` of object-aware focus
            (default 0 for a binary model).
        embed_channels (int, optional): clustering embedding width (default 16).
        **pool_kwargs: clustering options of :class:`~pyg_hgconv.ImageToGroupGraph`.

    Attributes:
        backbone (ResNet): stem and stages 1-3.
        encoder_hg (FusedHGStage): stage 4 on the group graph, fused.
        decoder (ModuleList): ``[HGUpBlock, UpBlock, UpBlock, UpBlock]``.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, any :math:`H, W`
        - **output:** :class:`~.output.SegmentationOutput` with ``out``
          :math:`(B, K, H, W)` and ``graphs = (encoder group graph,)``
    """

    def __init__(self, backbone: str | ResNet, num_classes: int,
                 dilated: bool | Sequence[bool] | None = None, aux: bool | None = None,
                 aux_weight: float = 0.4, conv: str = "hgconv", conv_kwargs: dict | None = None,
                 ratio: float | None = None, num_groups: int | None = None,
                 attention: str | None = None, focus_class: int | None = None,
                 embed_channels: int | None = 16, in_channels: int | None = None,
                 width: float | None = None, stem: str | None = None, dropout: float = 0.1,
                 **pool_kwargs):
        super().__init__()
        grid_backbone = backbone_from_args(backbone, dilated, in_channels, width, stem)
        self.backbone, self.encoder_hg = lift_stage4(
            grid_backbone, conv=conv, conv_kwargs=conv_kwargs,
            copy_backbone=isinstance(backbone, ResNet), ratio=ratio, num_groups=num_groups,
            embed_channels=embed_channels, **pool_kwargs)
        reference = self.backbone.conv1.weight
        channels = self.backbone.channels
        decoder = build_decoder(channels).to(reference)
        decoder[0] = HGUpBlock.from_grid(decoder[0], conv=conv, conv_kwargs=conv_kwargs)
        self.decoder = decoder
        self.classifier = nn.Conv2d(channels[0], num_classes, 1).to(reference)
        self._init_heads(num_classes, channels[3], aux, aux_weight, attention, focus_class,
                         dropout)
        if self.aux_head is not None:
            self.aux_head.to(reference)

    @property
    def conv_name(self) -> str:
        """The registry graph conv of the HG modules."""
        return self.encoder_hg.stage.conv_name

    def forward(self, x: Tensor) -> SegmentationOutput:
        self._check_input(x)
        features = self.backbone(x, num_stages=3)
        aux, attention = self._auxiliary(features.stage3)
        d, graph = self.encoder_hg(features.stage3, attention)
        skips = decoder_skips(features)
        d = self.decoder[0](d, skips[0], graph)
        for block, skip in zip(self.decoder[1:], skips[1:], strict=True):
            d = block(d, skip)
        return self._output(x, self.classifier(d), aux, attention, (graph,))

    @classmethod
    def from_grid(cls, grid: ResUNet, conv: str = "hgconv", **kwargs) -> HGResUNet:
        """Convert a trained :class:`ResUNet` ("w/ transfer"): the encoder's
        stage 4 and the first decoder level move onto the group graph with
        their weights, every other weight is copied, the two fusion convs start
        as pass-throughs. ``kwargs`` are the HG options of the constructor."""
        if not isinstance(grid, ResUNet):
            raise TypeError(f"'grid' must be a ResUNet (got {type(grid).__name__})")
        kwargs.setdefault("aux", grid.aux_head is not None)
        kwargs.setdefault("aux_weight", grid.aux_weight)
        kwargs.setdefault("dropout", grid.dropout)
        hg = cls(grid.backbone, grid.num_classes, conv=conv, **kwargs)
        hg.decoder[0] = HGUpBlock.from_grid(grid.decoder[0], conv=conv,
                                            conv_kwargs=kwargs.get("conv_kwargs"))
        for target, source in zip(hg.decoder[1:], grid.decoder[1:], strict=True):
            target.load_state_dict(source.state_dict())
        hg.classifier.load_state_dict(grid.classifier.state_dict())
        hg._copy_aux_head(grid)
        hg.encoder_hg.init_passthrough()
        hg.decoder[0].hg.init_passthrough()
        return hg.train(grid.training)
