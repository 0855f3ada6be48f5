r"""Modules and networks built on group graphs: :class:`HGConvModule` (Eqs. 8-10)
and the HG-CNNs of the paper with their grid counterparts.

Backbones (:mod:`.resnet`): :func:`resnet18`, :func:`resnet34`,
:func:`resnet50` returning :class:`ResNetFeatures` (stem and the four stages;
``dilate`` replaces strides by dilation, ``stem='plus'`` is the paper's "+"
variant, ``width`` scales the channels).

Segmentation networks, grid and HG (all return a :class:`SegmentationOutput`,
``out`` at the input resolution; see :mod:`.output` for the contract):

=====================  ===========================================================
:class:`ResNetSeg`     ResNet-Dilation: FCN head on stage 4, auxiliary head on stage 3
:class:`HGResNetSeg`   HG-ResNet: stage 4 on the group graph, fused with stage 3
:class:`ResUNet`       ResNet encoder + residual U-Net decoder
:class:`HGResUNet`     HG on stage 4 and on the first decoder level (same assignment)
=====================  ===========================================================

HG models take ``conv=`` (any registry graph conv name), the clustering
options (``ratio``, ``num_groups``, ``sampler``, ...) and active focus
(``attention='object' | 'uncertainty'``). :func:`hg_from_grid` converts a
trained grid model, reusing every weight.

Example (the irregular-convolution benchmark's slot is ``conv=``)::

    from pyg_hgconv.profile.counter import count_flops
    from pyg_hgconv.nn.models import HGResNetSeg, ResNetSeg, hg_from_grid

    grid = ResNetSeg("resnet18", num_classes=11)       # ResNet18-Dilation
    hg = hg_from_grid(grid)                            # HG-ResNet18, "w/ transfer"
    gcn = HGResNetSeg("resnet18", 11, conv="gcn")      # GCNConv in the same slot
    out = hg(images)                                   # SegmentationOutput
    loss, logs = out.loss(labels)                      # main + 0.4 * aux
    flops = count_flops(hg, images)                    # from the actual group graphs
    flops.per_image, flops.under("stage4"), flops.components

Building blocks: :class:`HGResidualStage` (a ResNet stage on the group graph,
``from_grid``), :class:`FusedHGStage` (+ concatenation and 1x1 fusion),
:class:`GraphBasicBlock`, :class:`GraphBottleneck`, :class:`FCNHead`,
:func:`coarse_attention`.
"""
from .convert import HG_COUNTERPARTS, hg_from_grid
from .heads import FOCUS_MODES, FCNHead, class_probabilities, coarse_attention
from .hg_conv_module import GroupGraphModule, HGConvModule
from .hg_stage import FusedHGStage, GraphBasicBlock, GraphBottleneck, HGResidualStage
from .output import IGNORE_INDEX, SegmentationOutput, segmentation_loss
from .resnet import (
    BACKBONES,
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetFeatures,
    build_backbone,
    resnet18,
    resnet34,
    resnet50,
    resnet_stage,
)
from .segmentation import HGResNetSeg, ResNetSeg
from .unet import HGResUNet, HGUpBlock, ResUNet, UpBlock

__all__ = [
    "BACKBONES",
    "FOCUS_MODES",
    "HG_COUNTERPARTS",
    "IGNORE_INDEX",
    "BasicBlock",
    "Bottleneck",
    "FCNHead",
    "FusedHGStage",
    "GraphBasicBlock",
    "GraphBottleneck",
    "GroupGraphModule",
    "HGConvModule",
    "HGResNetSeg",
    "HGResUNet",
    "HGResidualStage",
    "HGUpBlock",
    "ResNet",
    "ResNetFeatures",
    "ResNetSeg",
    "ResUNet",
    "SegmentationOutput",
    "UpBlock",
    "build_backbone",
    "class_probabilities",
    "coarse_attention",
    "hg_from_grid",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_stage",
    "segmentation_loss",
]
