r"""The HG-Conv module (paper, Sec. 4.4, Eqs. 8-10) and its base class.

:class:`GroupGraphModule` holds what every module on a group graph shares:
pool a feature map to groups (Eq. 8, or with a given graph's assignment),
transform the node features (:meth:`GroupGraphModule.forward_groups`) and
unpool (Eq. 10). :class:`HGConvModule` fills the body with
``L x (graph conv, BN, ReLU)``; the HG residual stages of
:mod:`pyg_hgconv.nn.models` fill it with ResNet blocks.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import BatchNorm

from pyg_hgconv.nn.conv.registry import GraphConvStep, GraphInputs, conv_names, get_conv
from pyg_hgconv.nn.pool.image_to_group_graph import DEFAULT_RATIO, ImageToGroupGraph
from pyg_hgconv.nn.pool.pooling import pool, unpool
from pyg_hgconv.nn.pool.tiling import tiled_assignment_of
from pyg_hgconv.utils.checks import check_image_features, check_positive_int


@torch.no_grad()
def load_conv2d_kernels(step: GraphConvStep, conv: nn.Conv2d) -> GraphConvStep:
    """Copy the kernels (and bias) of a 3x3 :class:`~torch.nn.Conv2d` into a
    :class:`~pyg_hgconv.nn.conv.registry.GraphConvStep` with its registry
    entry's ``transfer`` mapping ("w/ transfer", Table 3): exact for
    ``'hgconv'`` (:meth:`HGConv.from_conv2d`), see ``transfer_note`` for the
    others. A layer without bias ignores the conv's bias; a conv without bias
    zeroes the layer's."""
    if step.spec.transfer is None:
        mapped = [name for name in conv_names("graph") if get_conv(name).transfer is not None]
        raise ValueError(f"{step.spec.name!r} layers have no mapping from a 3x3 kernel; "
                         f"the convs that have one: {mapped}")
    step.spec.transfer(step.layer, conv)
    return step


class GroupGraphModule(nn.Module, ABC):
    r"""Base of the modules that run on a group graph:

    .. math::
        Z_0 = \bar{S}^\top X \ \text{(Eq. 8)}, \qquad
        Z_L = f(Z_0; \mathcal{G}), \qquad
        Z = \tilde{S} Z_L \ \text{(Eq. 10)},

    where the group graph :math:`\mathcal{G}` comes from the module's own
    :class:`~pyg_hgconv.ImageToGroupGraph` (``self.pool``) or is passed in
    (``graph=``, e.g. a decoder re-using its encoder's assignment) and
    :math:`f` is :meth:`forward_groups`, which subclasses implement; it
    receives the :class:`~pyg_hgconv.nn.conv.registry.GraphInputs` of the
    graph, built once per call so that its layers share what they derive from
    it (pseudo-coordinates, HG-Conv's aggregation matrix). The graph passed in
    is never modified. ``self.conv_name`` names the registry graph conv of the
    body.

    Args:
        in_channels (int): channels :math:`C_{in}` of the input map.
        out_channels (int): channels :math:`C_{out}` of the output map.
        conv (str): registry graph conv of the body.
        ratio (float, optional): groups per pixel (default :math:`1/64`).
        num_groups (int, optional): groups per image (instead of ``ratio``).
        embed_channels (int, optional): width of the clustering embedding.
        cluster (bool): build the clustering transform ``self.pool``. A module
            built with ``cluster=False`` has no clustering parameters and must
            always receive ``graph=``.
        **pool_kwargs: further arguments of :class:`ImageToGroupGraph`.

    Shapes:
        - **input:** :math:`(B, C_{in}, H, W)`, attention :math:`(B, 1, H, W)` *(optional)*
        - **output:** :math:`(B, C_{out}, H, W)`
    """

    def __init__(self, in_channels: int, out_channels: int, conv: str = "hgconv",
                 ratio: float | None = None, num_groups: int | None = None,
                 embed_channels: int | None = 16, cluster: bool = True, **pool_kwargs):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        if conv not in conv_names("graph"):
            raise ValueError(f"'conv' must be one of {conv_names('graph')} (got {conv!r})")
        if ratio is None and num_groups is None:
            ratio = DEFAULT_RATIO
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_name = conv
        if cluster:
            self.pool = ImageToGroupGraph(in_channels, num_groups=num_groups, ratio=ratio,
                                          embed_channels=embed_channels, **pool_kwargs)
        else:
            if pool_kwargs:
                raise ValueError(f"clustering arguments {sorted(pool_kwargs)} given to a module "
                                 "built with cluster=False")
            self.pool = None

    @abstractmethod
    def forward_groups(self, z: Tensor, graph) -> Tensor:
        """Transform the node features ``z`` ``[N_grp, C_in]`` on ``graph``
        (pseudo-coordinates already attached) into ``[N_grp, C_out]``."""

    def reset_parameters(self) -> None:
        if self.pool is not None:
            self.pool.reset_parameters()

    def forward(self, x: Tensor, attention: Tensor | None = None, graph=None,
                return_graph: bool = False):
        """Run the module on ``x`` ``[B, C, H, W]``.

        Args:
            x (Tensor): input map.
            attention (Tensor, optional): active-focus map ``[B, 1, H, W]``.
            graph (optional): a group graph of the same images (e.g. from the
                encoder of a U-Net) whose assignment and edges are re-used;
                ``x`` is pooled with it instead of being clustered again.
            return_graph (bool): also return the group graph.

        Returns:
            ``[B, C_out, H, W]`` (and the graph when ``return_graph``).
        """
        check_image_features(x)
        if x.size(1) != self.in_channels:
            raise ValueError(f"'x' has {x.size(1)} channels but the module expects "
                             f"{self.in_channels}")
        if graph is None:
            if self.pool is None:
                raise ValueError("this module was built with cluster=False: pass 'graph' "
                                 "(e.g. the encoder's group graph)")
            graph = self.pool(x, attention, as_batch=False)  # the disjoint union
            z = graph.x
        else:
            z = self.pool_with(x, graph)
        if z.size(0) == 0:
            out = x.new_zeros(x.size(0), self.out_channels, *x.shape[2:])
            return (out, graph) if return_graph else out
        out = unpool(self.forward_groups(z, GraphInputs(graph)), graph)
        return (out, graph) if return_graph else out

    @staticmethod
    def pool_with(x: Tensor, graph) -> Tensor:
        """Pool ``x`` ``[B, C, H, W]`` with the assignment of ``graph`` (Eq. 5)."""
        b, c, h, w = x.shape
        tiled = tiled_assignment_of(graph)
        if tiled is not None:  # the same S in tiled form: no pixel-major copy of x
            return tiled.pool(x)  # (checks the shape of x against the tiling)
        images = graph.num_images
        height, width = (int(v) for v in graph.image_size[0]) if images else (h, w)
        if (h, w) != (height, width) or b != images:
            raise ValueError(f"'x' of shape {tuple(x.shape)} does not match the graph's "
                             f"{images} images of size {(height, width)}")
        x_pix = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        return pool(x_pix, graph.assign_index, graph.assign_weight.to(x.dtype), graph.num_nodes)


class HGConvModule(GroupGraphModule):
    r"""Pool a feature map to groups, convolve the group graph ``L`` times and
    unpool (Eqs. 8-10):

    .. math::
        Z_0 &= \bar{S}^\top X, \\
        Z_l &= F_{\mathrm{BN\text{-}ReLU}}\Big(\sum_{\delta \in \Delta}
              (\hat{D}^\delta)^{-1} \hat{A}^\delta Z_{l-1} W^l_\delta\Big),
              \quad l = 1, \dots, L, \\
        Z &= \tilde{S} Z_L.

    Eq. 8 writes :math:`S^\top X`; pooling here is the group average of Eq. 5
    (:math:`\bar{S}^\top X`), which keeps the scale of the features
    independent of the group sizes. With ``residual=True`` every layer adds
    its input, :math:`Z_l \leftarrow Z_l + Z_{l-1}` (after the ReLU).

    The graph-convolution step is looked up by name in
    :mod:`pyg_hgconv.nn.conv.registry` (``'hgconv' | 'gcn' | 'gmm' | 'spline' |
    'dynamic_edge'``), so the baselines run on the very same group graphs.

    Args:
        channels (int): channels :math:`C` of the input and output map.
        num_layers (int): :math:`L \ge 1`.
        ratio (float, optional): groups per pixel (default :math:`1/64`).
        num_groups (int, optional): groups per image (instead of ``ratio``).
        conv (str): graph convolution of the registry (default ``'hgconv'``).
        residual (bool): residual connection around every layer.
        conv_kwargs (dict, optional): extra arguments of the graph conv.
        embed_channels (int, optional): width of the clustering embedding
            (default 16; ``None`` clusters the features directly).
        **pool_kwargs: further arguments of :class:`ImageToGroupGraph`
            (``sampler``, ``num_iterations``, ``noise_cancel``, ...) and
            ``cluster`` (see :class:`GroupGraphModule`).

    Shapes:
        - **input:** :math:`(B, C, H, W)`, attention :math:`(B, 1, H, W)` *(optional)*
        - **output:** :math:`(B, C, H, W)`
    """

    def __init__(
        self,
        channels: int,
        num_layers: int = 1,
        ratio: float | None = None,
        conv: str = "hgconv",
        num_groups: int | None = None,
        residual: bool = False,
        conv_kwargs: dict | None = None,
        embed_channels: int | None = 16,
        **pool_kwargs,
    ):
        check_positive_int(channels, "channels")
        check_positive_int(num_layers, "num_layers")
        super().__init__(channels, channels, conv, ratio=ratio, num_groups=num_groups,
                         embed_channels=embed_channels, **pool_kwargs)
        self.channels = channels
        self.num_layers = num_layers
        self.residual = residual
        self.convs = nn.ModuleList(
            GraphConvStep(conv, channels, channels, **(conv_kwargs or {}))
            for _ in range(num_layers))
        self.norms = nn.ModuleList(
            BatchNorm(channels, allow_single_element=True) for _ in range(num_layers))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward_groups(self, z: Tensor, graph) -> Tensor:
        """``L x (graph conv, BN, ReLU)`` (Eq. 9) on the node features."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = torch.relu(norm(conv(z, graph)))
            z = h + z if self.residual else h
        return z

    @torch.no_grad()
    def load_conv2d(self, convs: Sequence[nn.Conv2d], norms: Sequence[nn.BatchNorm2d] = ()):
        """Copy the kernels of ``num_layers`` 3x3 convolutions (and optionally
        their BatchNorms) into the graph-conv layers ("w/ transfer", Table 3),
        with the registry's ``transfer`` mapping of ``conv`` (exact for
        ``'hgconv'``)."""
        if get_conv(self.conv_name).transfer is None:
            raise ValueError(f"only convs with a mapping from a 3x3 kernel can inherit one, "
                             f"not {self.conv_name!r}")
        if len(convs) != self.num_layers:
            raise ValueError(f"'convs' must hold {self.num_layers} convolutions "
                             f"(got {len(convs)})")
        for step, conv in zip(self.convs, convs, strict=True):
            load_conv2d_kernels(step, conv)
        for norm, bn in zip(self.norms, norms, strict=False):
            norm.module.load_state_dict(bn.state_dict())
        return self

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_layers={self.num_layers}, "
                f"conv={self.conv_name!r}, residual={self.residual}")
