r"""ResNet stages on group graphs: the HG-ResNet stage (paper, Sec. 4.4).

"The pooling (Eq. 8) is inserted at the beginning of stage 4; the subsequent
regular convolutions are replaced by the HG-Conv; and the unpooling (Eq. 10)
is inserted at the end of the stage. Finally, the module output is
concatenated to the stage 3 output and further refined by a 1x1 convolution."

A grid block becomes a graph block one layer at a time:

===============================  ==============================================
grid (:mod:`.resnet`)            graph (this module)
===============================  ==============================================
3x3 ``Conv2d`` (any stride,      registry graph conv (:class:`GraphConvStep`,
dilation)                        ``'hgconv'`` by default; its additive bias is
                                 removed, a BatchNorm follows)
1x1 ``Conv2d`` (incl. the        ``Linear`` on the node features
projection shortcut)
``BatchNorm2d``                  PyG :class:`~torch_geometric.nn.BatchNorm`
                                 (``allow_single_element=True``)
stride / dilation                dropped: the stage runs at the resolution of
                                 its input map, on the groups
===============================  ==============================================

so that an HG stage has exactly the parameters of its grid stage (for
``'hgconv'``, :math:`9 C_{in} C_{out}` per 3x3 conv). With
:meth:`HGResidualStage.from_grid` every weight is copied (the 3x3 kernels
through :meth:`~pyg_hgconv.HGConv.from_conv2d`, "w/ transfer"); on the pixel
grid (:func:`~pyg_hgconv.grid_graph`) the converted stage then computes what
the grid stage computes without stride and dilation.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import BatchNorm

from pyg_hgconv.nn.conv.registry import GraphConvStep
from pyg_hgconv.nn.models.hg_conv_module import GroupGraphModule
from pyg_hgconv.utils.checks import check_positive_int

from .resnet import BLOCKS, BasicBlock, Bottleneck


def graph_conv(conv: str, in_channels: int, out_channels: int,
               conv_kwargs: dict | None = None) -> GraphConvStep:
    """The registry graph conv that replaces a 3x3 grid conv.

    A BatchNorm follows it, so its additive bias is removed (ResNet convs have
    none), unless ``conv_kwargs`` sets ``bias`` explicitly.
    """
    kwargs = dict(conv_kwargs or {})
    step = GraphConvStep(conv, in_channels, out_channels, **kwargs)
    if "bias" not in kwargs and isinstance(getattr(step.layer, "bias", None), nn.Parameter):
        step.layer.register_parameter("bias", None)
    return step


def node_norm(channels: int) -> BatchNorm:
    """BatchNorm over the nodes (a single node uses the running statistics)."""
    return BatchNorm(channels, allow_single_element=True)


@torch.no_grad()
def load_linear_from_conv1x1(linear: nn.Linear, conv: nn.Conv2d) -> None:
    """Copy a bias-free 1x1 conv into a bias-free ``Linear`` (the stride is dropped)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.bias is not None:
        raise ValueError(f"expected a bias-free 1x1 convolution (got {conv})")
    linear.weight.copy_(conv.weight.flatten(1))


@torch.no_grad()
def load_graph_conv_from_conv3x3(step: GraphConvStep, conv: nn.Conv2d) -> None:
    """Transfer a 3x3 kernel into a graph conv step (stride and dilation dropped)
    with its registry entry's ``transfer`` mapping (``'hgconv'``: exact; see each
    entry's ``transfer_note``); a conv without a mapping keeps its own weights."""
    if conv.kernel_size != (3, 3) or conv.groups != 1:
        raise ValueError(f"expected a 3x3 convolution with groups=1 (got {conv})")
    if step.spec.transfer is None:
        return
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1,
                      bias=conv.bias is not None).to(conv.weight)
    plain.weight.copy_(conv.weight)
    if conv.bias is not None:
        plain.bias.copy_(conv.bias)
    step.spec.transfer(step.layer, plain)


@torch.no_grad()
def load_norm_from_bn2d(norm: BatchNorm, bn: nn.BatchNorm2d) -> None:
    """Copy a ``BatchNorm2d`` (affine parameters and running statistics)."""
    norm.module.load_state_dict(bn.state_dict())


class _GraphBlock(nn.Module):
    """Shared parts of the graph blocks: the shortcut and grid loading."""

    grid_type: type[nn.Module]
    expansion: int

    def _make_shortcut(self, in_channels: int, out_channels: int, projection: bool | None):
        if projection is None:
            projection = in_channels != out_channels
        if not projection and in_channels != out_channels:
            raise ValueError(f"a block from {in_channels} to {out_channels} channels needs a "
                             "projection shortcut")
        self.downsample = (nn.Sequential(nn.Linear(in_channels, out_channels, bias=False),
                                         node_norm(out_channels)) if projection else None)

    def _shortcut(self, z: Tensor) -> Tensor:
        return z if self.downsample is None else self.downsample(z)

    def _load_shortcut(self, block: nn.Module) -> None:
        if (block.downsample is None) != (self.downsample is None):
            raise ValueError("the grid block and the graph block disagree on the projection "
                             "shortcut")
        if block.downsample is not None:
            conv, bn = block.downsample
            load_linear_from_conv1x1(self.downsample[0], conv)
            load_norm_from_bn2d(self.downsample[1], bn)

    @property
    def out_channels(self) -> int:
        return self.expansion * self.planes


class GraphBasicBlock(_GraphBlock):
    r"""A :class:`~.resnet.BasicBlock` on a group graph:
    :math:`z' = \mathrm{ReLU}(\mathrm{BN}(g_2(\mathrm{ReLU}(\mathrm{BN}(g_1(z)))))
    + P z)` with registry graph convs :math:`g_1, g_2`.

    Shapes: ``z [N_grp, C_in], graph -> [N_grp, planes]``.
    """

    grid_type = BasicBlock
    expansion = 1

    def __init__(self, in_channels: int, planes: int, conv: str = "hgconv",
                 conv_kwargs: dict | None = None, projection: bool | None = None):
        super().__init__()
        self.planes = planes
        self.conv1 = graph_conv(conv, in_channels, planes, conv_kwargs)
        self.bn1 = node_norm(planes)
        self.conv2 = graph_conv(conv, planes, planes, conv_kwargs)
        self.bn2 = node_norm(planes)
        self.relu = nn.ReLU()
        self._make_shortcut(in_channels, planes, projection)

    def forward(self, z: Tensor, graph) -> Tensor:
        out = self.relu(self.bn1(self.conv1(z, graph)))
        out = self.bn2(self.conv2(out, graph))
        return self.relu(out + self._shortcut(z))

    def load_grid(self, block: BasicBlock) -> None:
        """Copy the weights of a grid :class:`~.resnet.BasicBlock`."""
        load_graph_conv_from_conv3x3(self.conv1, block.conv1)
        load_norm_from_bn2d(self.bn1, block.bn1)
        load_graph_conv_from_conv3x3(self.conv2, block.conv2)
        load_norm_from_bn2d(self.bn2, block.bn2)
        self._load_shortcut(block)


class GraphBottleneck(_GraphBlock):
    r"""A :class:`~.resnet.Bottleneck` on a group graph: 1x1 convs become
    ``Linear`` layers, the 3x3 conv a registry graph conv.

    Shapes: ``z [N_grp, C_in], graph -> [N_grp, 4 planes]``.
    """

    grid_type = Bottleneck
    expansion = 4

    def __init__(self, in_channels: int, planes: int, conv: str = "hgconv",
                 conv_kwargs: dict | None = None, projection: bool | None = None):
        super().__init__()
        self.planes = planes
        out_channels = planes * self.expansion
        self.conv1 = nn.Linear(in_channels, planes, bias=False)
        self.bn1 = node_norm(planes)
        self.conv2 = graph_conv(conv, planes, planes, conv_kwargs)
        self.bn2 = node_norm(planes)
        self.conv3 = nn.Linear(planes, out_channels, bias=False)
        self.bn3 = node_norm(out_channels)
        self.relu = nn.ReLU()
        self._make_shortcut(in_channels, out_channels, projection)

    def forward(self, z: Tensor, graph) -> Tensor:
        out = self.relu(self.bn1(self.conv1(z)))
        out = self.relu(self.bn2(self.conv2(out, graph)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self._shortcut(z))

    def load_grid(self, block: Bottleneck) -> None:
        """Copy the weights of a grid :class:`~.resnet.Bottleneck`."""
        load_linear_from_conv1x1(self.conv1, block.conv1)
        load_norm_from_bn2d(self.bn1, block.bn1)
        load_graph_conv_from_conv3x3(self.conv2, block.conv2)
        load_norm_from_bn2d(self.bn2, block.bn2)
        load_linear_from_conv1x1(self.conv3, block.conv3)
        load_norm_from_bn2d(self.bn3, block.bn3)
        self._load_shortcut(block)


_GRAPH_BLOCKS = {"basic": GraphBasicBlock, "bottleneck": GraphBottleneck}


class HGResidualStage(GroupGraphModule):
    r"""A ResNet stage on the group graph of its input map: pool (Eq. 8),
    ``num_blocks`` residual blocks whose 3x3 convs are registry graph convs,
    unpool (Eq. 10).

    Args:
        block (str): ``'basic'`` or ``'bottleneck'``.
        in_channels (int): channels of the input map.
        planes (int): block width (output ``planes * expansion``).
        num_blocks (int): number of blocks.
        conv (str): registry graph conv of the 3x3 slots (default
            ``'hgconv'``; ``'gcn' | 'gmm' | 'spline' | 'dynamic_edge'`` run in
            the very same slot).
        conv_kwargs (dict, optional): extra arguments of the graph conv.
        projection (bool, optional): projection shortcut on the first block
            (default: when the width changes).
        ratio, num_groups, embed_channels, cluster, **pool_kwargs: the
            clustering, see :class:`~pyg_hgconv.nn.models.hg_conv_module.GroupGraphModule` and
            :class:`~pyg_hgconv.ImageToGroupGraph`.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, attention :math:`(B, 1, H, W)` *(optional)*
        - **output:** :math:`(B, \mathrm{planes} \cdot \mathrm{expansion}, H, W)`
    """

    def __init__(self, block: str, in_channels: int, planes: int, num_blocks: int,
                 conv: str = "hgconv", conv_kwargs: dict | None = None,
                 projection: bool | None = None, ratio: float | None = None,
                 num_groups: int | None = None, embed_channels: int | None = 16,
                 cluster: bool = True, **pool_kwargs):
        if block not in _GRAPH_BLOCKS:
            raise ValueError(f"'block' must be one of {BLOCKS} (got {block!r})")
        check_positive_int(planes, "planes")
        check_positive_int(num_blocks, "num_blocks")
        cls = _GRAPH_BLOCKS[block]
        out_channels = planes * cls.expansion
        super().__init__(in_channels, out_channels, conv, ratio=ratio, num_groups=num_groups,
                         embed_channels=embed_channels, cluster=cluster, **pool_kwargs)
        self.block = block
        blocks = [cls(in_channels, planes, conv, conv_kwargs, projection)]
        blocks += [cls(out_channels, planes, conv, conv_kwargs, False)
                   for _ in range(num_blocks - 1)]
        self.blocks = nn.ModuleList(blocks)

    def forward_groups(self, z: Tensor, graph) -> Tensor:
        for block in self.blocks:
            z = block(z, graph)
        return z

    @classmethod
    def from_grid(cls, stage: Sequence[nn.Module], conv: str = "hgconv",
                  conv_kwargs: dict | None = None, **kwargs) -> HGResidualStage:
        """Build the HG version of a grid stage (an ``nn.Sequential`` or a list
        of :class:`~.resnet.BasicBlock` / :class:`~.resnet.Bottleneck`) and copy
        every weight into it (the 3x3 kernels when ``conv='hgconv'``).

        ``kwargs`` go to the constructor (clustering options, ``cluster``).
        The result has the dtype and device of the grid stage.
        """
        blocks = list(stage)
        if not blocks:
            raise ValueError("'stage' holds no block")
        kinds = {type(b) for b in blocks}
        if len(kinds) != 1 or not kinds <= {BasicBlock, Bottleneck}:
            raise TypeError("'stage' must hold BasicBlock or Bottleneck blocks of one kind (got "
                            f"{sorted(k.__name__ for k in kinds)})")
        if any(b.downsample is not None for b in blocks[1:]):
            raise ValueError("only the first block of a stage may have a projection shortcut")
        first = blocks[0]
        block = "basic" if isinstance(first, BasicBlock) else "bottleneck"
        planes = first.bn1.num_features
        hg = cls(block, first.conv1.in_channels, planes, len(blocks), conv=conv,
                 conv_kwargs=conv_kwargs, projection=first.downsample is not None, **kwargs)
        # convert first, so that the copies keep the grid stage's precision
        hg = hg.to(device=first.conv1.weight.device, dtype=first.conv1.weight.dtype)
        for graph_block, grid_block in zip(hg.blocks, blocks, strict=True):
            graph_block.load_grid(grid_block)
        return hg

    def extra_repr(self) -> str:
        return (f"block={self.block!r}, in_channels={self.in_channels}, "
                f"out_channels={self.out_channels}, num_blocks={len(self.blocks)}, "
                f"conv={self.conv_name!r}")


class FusedHGStage(nn.Module):
    r"""An HG stage whose output is concatenated with its input and refined by
    a 1x1 convolution (Sec. 4.4, HG-ResNet and HG-ResUNet):

    .. math::
        Y = \mathrm{ReLU}(\mathrm{BN}(W_{1\times1} [X, \mathrm{HG}(X)])).

    The 1x1 conv (with its BN) is the only layer an HG network adds to its
    grid counterpart, besides the clustering embedding.

    Args:
        stage (GroupGraphModule): the module on the group graph.
        out_channels (int, optional): output channels (default: the stage's).

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, attention, graph *(optional)*
        - **output:** ``(Y [B, C_out, H, W], graph)``
    """

    def __init__(self, stage: GroupGraphModule, out_channels: int | None = None):
        super().__init__()
        if not isinstance(stage, GroupGraphModule):
            raise TypeError(f"'stage' must be a GroupGraphModule (got {type(stage).__name__})")
        self.stage = stage
        out_channels = stage.out_channels if out_channels is None else out_channels
        check_positive_int(out_channels, "out_channels")
        self.in_channels = stage.in_channels
        self.out_channels = out_channels
        self.fuse = nn.Sequential(
            nn.Conv2d(stage.in_channels + stage.out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        nn.init.kaiming_normal_(self.fuse[0].weight, mode="fan_out", nonlinearity="relu")

    @torch.no_grad()
    def init_passthrough(self) -> FusedHGStage:
        """Initialise the 1x1 conv to pass the HG output through and ignore the
        input (weights ``[0, I]``), so that a network converted from a grid
        network starts out computing the grid network on groups."""
        if self.out_channels != self.stage.out_channels:
            raise ValueError("a pass-through needs out_channels == the stage's out_channels")
        weight = self.fuse[0].weight
        weight.zero_()
        eye = torch.eye(self.out_channels, dtype=weight.dtype, device=weight.device)
        weight[:, self.in_channels:, 0, 0] = eye
        return self

    def forward(self, x: Tensor, attention: Tensor | None = None, graph=None):
        y, graph = self.stage(x, attention=attention, graph=graph, return_graph=True)
        return self.fuse(torch.cat([x, y], dim=1)), graph
