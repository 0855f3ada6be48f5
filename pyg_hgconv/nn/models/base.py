"""What the segmentation networks share: backbone arguments, the auxiliary /
coarse head on the input of the HG module, active focus and the output."""
from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from pyg_hgconv.utils.checks import check_image_features, check_positive_int

from .heads import FCNHead, check_focus, coarse_attention
from .hg_stage import FusedHGStage, HGResidualStage
from .output import SegmentationOutput, upsample_to
from .resnet import ResNet, build_backbone


def dilation_pair(dilated: bool | Sequence[bool]) -> tuple[bool, bool]:
    """``dilated`` as ``(stage 3, stage 4)``; a bool applies to both."""
    if isinstance(dilated, bool):
        return dilated, dilated
    pair = tuple(dilated)
    if len(pair) != 2 or not all(isinstance(d, bool) for d in pair):
        raise ValueError(f"'dilated' must be a bool or a pair of bools (got {dilated!r})")
    return pair


def backbone_from_args(backbone: str | ResNet, dilated, in_channels, width, stem,
                       default_dilated: bool | Sequence[bool] = False,
                       default_stem: str = "standard") -> ResNet:
    """Build the backbone of a model from its name and options, or take a
    :class:`ResNet` instance (then the options must be left unset)."""
    options = {"dilated": dilated, "in_channels": in_channels, "width": width, "stem": stem}
    if isinstance(backbone, ResNet):
        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            raise ValueError(f"{given} cannot be applied to a ResNet instance; build the "
                             "backbone with them instead")
        return backbone
    if not isinstance(backbone, str):
        raise TypeError(f"'backbone' must be a name or a ResNet (got {type(backbone).__name__})")
    return build_backbone(
        backbone, dilate=dilation_pair(default_dilated if dilated is None else dilated),
        in_channels=3 if in_channels is None else in_channels,
        width=1.0 if width is None else width, stem=default_stem if stem is None else stem)


def lift_stage4(backbone: ResNet, conv: str = "hgconv", conv_kwargs: dict | None = None,
                copy_backbone: bool = True, **cluster_kwargs) -> tuple[ResNet, FusedHGStage]:
    """Move the stage 4 of ``backbone`` (or of a copy of it) onto the group graph.

    Returns ``(backbone without layer4, FusedHGStage)``: the HG stage carries
    stage 4's weights (:meth:`HGResidualStage.from_grid`), runs at stage 3's
    resolution (stride and dilation dropped) and its output is fused with the
    stage-3 output by a 1x1 conv to stage 4's width. With
    ``copy_backbone=False`` the given backbone itself loses its ``layer4``.
    """
    if not isinstance(backbone, ResNet):
        raise TypeError(f"'backbone' must be a ResNet (got {type(backbone).__name__})")
    if backbone.layer4 is None:
        raise ValueError("the backbone's stage 4 was already lifted out")
    if copy_backbone:
        backbone = copy.deepcopy(backbone)
    stage = HGResidualStage.from_grid(backbone.layer4, conv=conv, conv_kwargs=conv_kwargs,
                                      **cluster_kwargs)
    backbone.layer4 = None
    return backbone, FusedHGStage(stage).to(stage.blocks[0].bn1.module.weight)


class SegmentationNet(nn.Module):
    """Base of the segmentation networks: the auxiliary head on the input of
    the HG module (stage 3), active focus and the :class:`SegmentationOutput`.

    Subclasses call :meth:`_init_heads` and end ``forward`` with :meth:`_output`.
    """

    def _init_heads(self, num_classes: int, aux_channels: int, aux: bool | None,
                    aux_weight: float, attention: str | None, focus_class: int | None,
                    dropout: float) -> None:
        check_positive_int(num_classes, "num_classes")
        if aux_weight < 0:
            raise ValueError(f"'aux_weight' must be >= 0 (got {aux_weight!r})")
        self.focus_class = check_focus(attention, focus_class, num_classes)
        if aux is None:
            aux = attention is not None
        if attention is not None and not aux:
            raise ValueError("active focus needs the coarse (auxiliary) head: aux=True")
        self.num_classes = num_classes
        self.aux_weight = float(aux_weight)
        self.attention = attention
        self.dropout = dropout
        self.aux_head = FCNHead(aux_channels, num_classes, dropout=dropout) if aux else None

    def _auxiliary(self, feature: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Auxiliary / coarse logits on ``feature`` (training mode, or when
        active focus needs them) and the attention map derived from them."""
        if self.aux_head is None or not (self.training or self.attention is not None):
            return None, None
        logits = self.aux_head(feature)
        if self.attention is None:
            return logits, None
        return logits, coarse_attention(logits, self.attention, self.focus_class)

    def _check_input(self, x: Tensor) -> None:
        check_image_features(x)

    def _output(self, x: Tensor, logits: Tensor, aux: Tensor | None = None,
                attention: Tensor | None = None, graphs: tuple = ()) -> SegmentationOutput:
        size = tuple(x.shape[-2:])
        return SegmentationOutput(out=upsample_to(logits, size), aux=upsample_to(aux, size),
                                  aux_weight=self.aux_weight, attention=attention,
                                  graphs=graphs)

    def _copy_aux_head(self, grid: SegmentationNet) -> None:
        if self.aux_head is not None and grid.aux_head is not None:
            self.aux_head.load_state_dict(grid.aux_head.state_dict())
