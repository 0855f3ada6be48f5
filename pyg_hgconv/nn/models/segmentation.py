r"""ResNet segmentation networks: the grid baseline and HG-ResNet (Sec. 4.4, 5.1).

* :class:`ResNetSeg` -- "ResNet-Dilation": a ResNet (stages 3 and 4 dilated
  by default, output stride 8), an :class:`~.heads.FCNHead` on stage 4 and an
  auxiliary FCN head on stage 3 (loss weight 0.4, Table 12).
* :class:`HGResNetSeg` -- "HG-ResNet-Dilation": stage 4 runs on the group
  graph of the stage-3 output (:class:`~.hg_stage.HGResidualStage`, any
  registry graph conv in the 3x3 slots), its unpooled output is concatenated
  with the stage-3 output and fused by a 1x1 conv
  (:class:`~.hg_stage.FusedHGStage`); the auxiliary head sits on the input of
  the HG module (stage 3), and with ``attention`` it is the coarse head whose
  prediction drives the centre allocation (active focus, Eqs. 11-13).

"The parameter size is equal to the original ResNet except the final 1x1
convolution": an :class:`HGResNetSeg` has the parameters of the
:class:`ResNetSeg` it is converted from (:meth:`HGResNetSeg.from_grid`), plus
the fusion conv (and its BN) and the clustering's 1x1 embedding and two scales.

Both return a :class:`~.output.SegmentationOutput`.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .base import SegmentationNet, backbone_from_args, lift_stage4
from .heads import FCNHead
from .output import SegmentationOutput
from .resnet import ResNet


class ResNetSeg(SegmentationNet):
    r"""ResNet segmentation baseline (FCN head on stage 4, auxiliary head on stage 3).

    Args:
        backbone (str or ResNet): ``'resnet18' | 'resnet34' | 'resnet50'``,
            or a built :class:`~.resnet.ResNet` (then ``dilated``,
            ``in_channels``, ``width`` and ``stem`` must be left unset).
        num_classes (int): output classes (1: binary, one logit).
        dilated (bool or pair of bool, optional): dilate stages 3 and 4
            (default ``True``, "ResNet-Dilation", output stride 8).
        aux (bool): auxiliary head on stage 3 (computed in training mode).
        aux_weight (float): its loss weight (paper 0.4).
        in_channels, width, stem: backbone options (defaults 3, 1.0, ``'standard'``).
        dropout (float): dropout of the heads.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, any :math:`H, W`
        - **output:** :class:`~.output.SegmentationOutput` with ``out``
          :math:`(B, K, H, W)`
    """

    def __init__(self, backbone: str | ResNet, num_classes: int,
                 dilated: bool | Sequence[bool] | None = None, aux: bool = True,
                 aux_weight: float = 0.4, in_channels: int | None = None,
                 width: float | None = None, stem: str | None = None, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone_from_args(backbone, dilated, in_channels, width, stem,
                                           default_dilated=True)
        if self.backbone.layer4 is None:
            raise ValueError("the backbone has no stage 4")
        channels = self.backbone.channels
        self.head = FCNHead(channels[4], num_classes, dropout=dropout)
        self._init_heads(num_classes, channels[3], aux, aux_weight, None, None, dropout)

    def forward(self, x: Tensor) -> SegmentationOutput:
        self._check_input(x)
        features = self.backbone(x)
        aux, _ = self._auxiliary(features.stage3)
        return self._output(x, self.head(features.stage4), aux)


class HGResNetSeg(SegmentationNet):
    r"""HG-ResNet segmentation network: stage 4 on the group graph of the
    stage-3 output, fused with it by a 1x1 conv (Sec. 4.4).

    Args:
        backbone (str or ResNet): as for :class:`ResNetSeg`; a
            :class:`~.resnet.ResNet` instance is copied and its stage 4 moved
            into the HG stage with its weights.
        num_classes (int): output classes (1: binary, one logit).
        dilated (bool or pair of bool, optional): dilate stage 3 (default
            ``True``: the HG stage works at output stride 8; stage 4 loses its
            stride and dilation anyway).
        aux (bool): auxiliary head on the input of the HG module.
        aux_weight (float): its loss weight (paper 0.4).
        conv (str): registry graph conv of the 3x3 slots of stage 4 (default
            ``'hgconv'``; ``'gcn' | 'gmm' | 'spline' | 'dynamic_edge'``).
        conv_kwargs (dict, optional): extra arguments of that conv.
        ratio (float, optional): groups per stage-3 pixel (default 1/64).
        num_groups (int, optional): groups per image instead of ``ratio``.
        attention (str, optional): active focus driven by the auxiliary
            (coarse) head: ``'object'`` (Eq. 12) or ``'uncertainty'`` (Eq. 13).
        focus_class (int, optional): class :math:`k` of object-aware focus
            (default 0 for a binary model).
        embed_channels (int, optional): clustering embedding width (default 16).
        in_channels, width, stem: backbone options (defaults 3, 1.0, ``'standard'``).
        dropout (float): dropout of the heads.
        **pool_kwargs: clustering options of :class:`~pyg_hgconv.ImageToGroupGraph`
            (``sampler``, ``num_iterations``, ``oversample``, ``beta``,
            ``noise_cancel``, ``max_direction``, ``alpha``, ``seed``, ...).

    Attributes:
        backbone (ResNet): stem and stages 1-3 (``layer4`` is ``None``).
        stage4 (FusedHGStage): the HG stage and its fusion conv.
        head (FCNHead): main head; ``aux_head`` the auxiliary / coarse head.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, any :math:`H, W`
        - **output:** :class:`~.output.SegmentationOutput` with ``out``
          :math:`(B, K, H, W)` and ``graphs = (stage-4 group graph,)``
    """

    def __init__(self, backbone: str | ResNet, num_classes: int,
                 dilated: bool | Sequence[bool] | None = None, aux: bool = True,
                 aux_weight: float = 0.4, conv: str = "hgconv", conv_kwargs: dict | None = None,
                 ratio: float | None = None, num_groups: int | None = None,
                 attention: str | None = None, focus_class: int | None = None,
                 embed_channels: int | None = 16, in_channels: int | None = None,
                 width: float | None = None, stem: str | None = None, dropout: float = 0.1,
                 **pool_kwargs):
        super().__init__()
        grid_backbone = backbone_from_args(backbone, dilated, in_channels, width, stem,
                                           default_dilated=True)
        self.backbone, self.stage4 = lift_stage4(
            grid_backbone, conv=conv, conv_kwargs=conv_kwargs,
            copy_backbone=isinstance(backbone, ResNet), ratio=ratio, num_groups=num_groups,
            embed_channels=embed_channels, **pool_kwargs)
        channels = self.backbone.channels
        self.head = FCNHead(channels[4], num_classes, dropout=dropout).to(
            self.backbone.conv1.weight)
        self._init_heads(num_classes, channels[3], aux, aux_weight, attention, focus_class,
                         dropout)
        if self.aux_head is not None:
            self.aux_head.to(self.backbone.conv1.weight)

    @property
    def conv_name(self) -> str:
        """The registry graph conv of the HG stage."""
        return self.stage4.stage.conv_name

    def forward(self, x: Tensor) -> SegmentationOutput:
        self._check_input(x)
        x3 = self.backbone(x, num_stages=3).stage3
        aux, attention = self._auxiliary(x3)
        fused, graph = self.stage4(x3, attention)
        return self._output(x, self.head(fused), aux, attention, (graph,))

    @classmethod
    def from_grid(cls, grid: ResNetSeg, conv: str = "hgconv", **kwargs) -> HGResNetSeg:
        """Convert a trained :class:`ResNetSeg` ("w/ transfer", Table 3).

        Every weight is reused: stages 1-3 and the heads are copied, stage 4
        moves onto the group graph with its weights (3x3 kernels through
        :meth:`~pyg_hgconv.HGConv.from_conv2d` when ``conv='hgconv'``), and the
        new fusion conv starts as a pass-through of the HG output
        (:meth:`~.hg_stage.FusedHGStage.init_passthrough`). ``kwargs`` are the
        HG options of the constructor (``ratio``, ``attention``, ...).
        """
        if not isinstance(grid, ResNetSeg):
            raise TypeError(f"'grid' must be a ResNetSeg (got {type(grid).__name__})")
        kwargs.setdefault("aux", grid.aux_head is not None)
        kwargs.setdefault("aux_weight", grid.aux_weight)
        kwargs.setdefault("dropout", grid.dropout)
        hg = cls(grid.backbone, grid.num_classes, conv=conv, **kwargs)
        hg.head.load_state_dict(grid.head.state_dict())
        hg._copy_aux_head(grid)
        hg.stage4.init_passthrough()
        return hg.train(grid.training)
